//! Sendmail's milter protocol, version 6 (the one Postfix speaks), the MTA's side as bytes:
//! commands encoded, responses decoded (sans-IO). A packet is a 32-bit big-endian length (the
//! command byte included), one command byte and its data; strings end in NUL.
//!
//! The milter is a separate program and its bytes are untrusted: a packet over
//! `MAX_PACKET_BYTES`, an unknown response or a truncated field is an error value, never a
//! panic.

/// The protocol version petrel speaks.
pub const VERSION: u32 = 6;
/// The largest response packet taken (a replaced body comes in chunks of 64 KiB).
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// What a milter may ask to change (SMFIF_*).
pub mod action {
    pub const ADD_HEADERS: u32 = 0x01;
    pub const CHANGE_BODY: u32 = 0x02;
    pub const ADD_RCPT: u32 = 0x04;
    pub const DELETE_RCPT: u32 = 0x08;
    pub const CHANGE_HEADERS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHANGE_FROM: u32 = 0x40;
    pub const ADD_RCPT_PAR: u32 = 0x80;
    /// Every action petrel carries out.
    pub const ALL: u32 = ADD_HEADERS
        | CHANGE_BODY
        | ADD_RCPT
        | DELETE_RCPT
        | CHANGE_HEADERS
        | QUARANTINE
        | CHANGE_FROM
        | ADD_RCPT_PAR;
}

/// Protocol steps a milter may skip or not answer (SMFIP_*).
pub mod protocol {
    pub const NO_CONNECT: u32 = 0x01;
    pub const NO_HELO: u32 = 0x02;
    pub const NO_MAIL: u32 = 0x04;
    pub const NO_RCPT: u32 = 0x08;
    pub const NO_BODY: u32 = 0x10;
    pub const NO_HEADERS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NO_REPLY_HEADER: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const NO_REPLY_CONNECT: u32 = 0x1000;
    pub const NO_REPLY_HELO: u32 = 0x2000;
    pub const NO_REPLY_MAIL: u32 = 0x4000;
    pub const NO_REPLY_RCPT: u32 = 0x8000;
    pub const NO_REPLY_DATA: u32 = 0x10000;
    pub const NO_REPLY_EOH: u32 = 0x40000;
    pub const NO_REPLY_BODY: u32 = 0x80000;
    pub const HEADER_LEADING_SPACE: u32 = 0x100000;
    /// Everything petrel understands, offered in the negotiation.
    pub const ALL: u32 = 0x1F_FFFF;
}

/// A command from petrel to the milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    OptNeg {
        actions: u32,
        protocol: u32,
    },
    /// Macros for the step `stage` (the command byte they go with).
    Macro {
        stage: u8,
        pairs: &'a [(String, String)],
    },
    /// The client: its name, and its address (`4` IPv4, `6` IPv6) and port.
    Connect {
        hostname: &'a str,
        family: u8,
        port: u16,
        address: &'a str,
    },
    Helo(&'a str),
    /// The sender in brackets, then ESMTP arguments.
    Mail(&'a [String]),
    Rcpt(&'a [String]),
    Data,
    Header {
        name: &'a str,
        value: &'a str,
    },
    EndOfHeaders,
    Body(&'a [u8]),
    EndOfBody,
    Abort,
    Quit,
}

impl Command<'_> {
    fn code(&self) -> u8 {
        match self {
            Command::OptNeg { .. } => b'O',
            Command::Macro { .. } => b'D',
            Command::Connect { .. } => b'C',
            Command::Helo(_) => b'H',
            Command::Mail(_) => b'M',
            Command::Rcpt(_) => b'R',
            Command::Data => b'T',
            Command::Header { .. } => b'L',
            Command::EndOfHeaders => b'N',
            Command::Body(_) => b'B',
            Command::EndOfBody => b'E',
            Command::Abort => b'A',
            Command::Quit => b'Q',
        }
    }
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // A NUL inside would end the field early: such bytes are dropped.
    out.extend(text.bytes().filter(|b| *b != 0));
    out.push(0);
}

/// The packet of `command`.
pub fn encode(command: &Command<'_>) -> Vec<u8> {
    let mut data = vec![command.code()];
    match command {
        Command::OptNeg { actions, protocol } => {
            data.extend_from_slice(&VERSION.to_be_bytes());
            data.extend_from_slice(&actions.to_be_bytes());
            data.extend_from_slice(&protocol.to_be_bytes());
        }
        Command::Macro { stage, pairs } => {
            data.push(*stage);
            for (name, value) in pairs.iter() {
                push_string(&mut data, name);
                push_string(&mut data, value);
            }
        }
        Command::Connect {
            hostname,
            family,
            port,
            address,
        } => {
            push_string(&mut data, hostname);
            data.push(*family);
            data.extend_from_slice(&port.to_be_bytes());
            push_string(&mut data, address);
        }
        Command::Helo(name) => push_string(&mut data, name),
        Command::Mail(args) | Command::Rcpt(args) => {
            for arg in args.iter() {
                push_string(&mut data, arg);
            }
        }
        Command::Header { name, value } => {
            push_string(&mut data, name);
            push_string(&mut data, value);
        }
        Command::Body(chunk) => data.extend_from_slice(chunk),
        Command::Data
        | Command::EndOfHeaders
        | Command::EndOfBody
        | Command::Abort
        | Command::Quit => {}
    }
    let mut packet = u32::try_from(data.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    packet.extend_from_slice(&data);
    packet
}

/// A response from the milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    OptNeg {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    Continue,
    Accept,
    Reject,
    Tempfail,
    Discard,
    /// A full reply line, e.g. `554 5.7.1 Spam`.
    ReplyCode(String),
    Skip,
    Progress,
    /// A modification action (at the end of the message).
    Change(Change),
}

/// A change the milter asks for at the end of the message (its modification actions; a
/// replaced body may come in several chunks, which the client joins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddHeader {
        name: String,
        value: String,
    },
    /// The `index`-th (from 1) header field called `name`; an empty value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// Inserted before the `index`-th (from 0) header field.
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    AddRcpt(String),
    DeleteRcpt(String),
    ChangeFrom(String),
    ReplaceBody(Vec<u8>),
    Quarantine(String),
}

/// Why a response is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Takes response bytes as they come and gives whole responses.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

fn strings(data: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = data
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if data.last() == Some(&0) {
        parts.pop();
    }
    parts
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

impl Decoder {
    /// Adds bytes read from the milter.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole response, if one has arrived.
    ///
    /// # Errors
    /// A packet that is too large, empty or not a response.
    pub fn next_response(&mut self) -> Result<Option<Response>, DecodeError> {
        let Some(length) = u32_at(&self.buffer, 0) else {
            return Ok(None);
        };
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length == 0 || length > MAX_PACKET_BYTES {
            return Err(DecodeError(format!("a milter packet of {length} octets")));
        }
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        let packet: Vec<u8> = self.buffer.drain(..4 + length).skip(4).collect();
        let (code, data) = packet
            .split_first()
            .ok_or_else(|| DecodeError("an empty milter packet".into()))?;
        let bad = |what: &str| DecodeError(format!("a malformed milter {what} response"));
        let fields = strings(data);
        let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
        Ok(Some(match code {
            b'O' => Response::OptNeg {
                version: u32_at(data, 0).ok_or_else(|| bad("negotiation"))?,
                actions: u32_at(data, 4).ok_or_else(|| bad("negotiation"))?,
                protocol: u32_at(data, 8).ok_or_else(|| bad("negotiation"))?,
            },
            b'c' => Response::Continue,
            b'a' => Response::Accept,
            b'r' => Response::Reject,
            b't' => Response::Tempfail,
            b'd' => Response::Discard,
            b's' => Response::Skip,
            b'p' => Response::Progress,
            b'y' => Response::ReplyCode(field(0)),
            b'h' => Response::Change(Change::AddHeader {
                name: field(0),
                value: field(1),
            }),
            b'm' | b'i' => {
                let index = u32_at(data, 0).ok_or_else(|| bad("header"))?;
                let rest = strings(data.get(4..).unwrap_or_default());
                let name = rest.first().cloned().unwrap_or_default();
                let value = rest.get(1).cloned().unwrap_or_default();
                Response::Change(if *code == b'm' {
                    Change::ChangeHeader { index, name, value }
                } else {
                    Change::InsertHeader { index, name, value }
                })
            }
            b'+' | b'2' => Response::Change(Change::AddRcpt(field(0))),
            b'-' => Response::Change(Change::DeleteRcpt(field(0))),
            b'e' => Response::Change(Change::ChangeFrom(field(0))),
            b'b' => Response::Change(Change::ReplaceBody(data.to_vec())),
            b'q' => Response::Change(Change::Quarantine(field(0))),
            other => {
                return Err(DecodeError(format!(
                    "an unknown milter response {:?}",
                    char::from(*other)
                )));
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u8, data: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(data.len() + 1)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.push(code);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn commands_are_length_prefixed_with_nul_ended_strings() {
        assert_eq!(
            encode(&Command::Helo("client.test")),
            [&[0, 0, 0, 13][..], b"H", b"client.test\0"].concat()
        );
        let negotiation = encode(&Command::OptNeg {
            actions: action::ALL,
            protocol: 0,
        });
        assert_eq!(&negotiation[..5], &[0, 0, 0, 13, b'O']);
        assert_eq!(&negotiation[5..9], &6_u32.to_be_bytes());
        let connect = encode(&Command::Connect {
            hostname: "host",
            family: b'4',
            port: 25,
            address: "192.0.2.1",
        });
        assert_eq!(
            &connect[5..],
            &[b"host\0".as_slice(), b"4", &[0, 25], b"192.0.2.1\0"].concat()[..]
        );
        let mail = encode(&Command::Mail(&["<a@b.test>".into(), "SIZE=10".into()]));
        assert_eq!(&mail[4..], b"M<a@b.test>\0SIZE=10\0");
    }

    #[test]
    fn responses_arrive_whole_or_not_at_all() {
        let mut decoder = Decoder::default();
        let mut bytes = packet(b'h', b"X-Spam\0yes\0");
        bytes.extend(packet(b'y', b"554 5.7.1 no\0"));
        decoder.push(&bytes[..7]);
        assert_eq!(decoder.next_response(), Ok(None));
        decoder.push(&bytes[7..]);
        assert_eq!(
            decoder.next_response(),
            Ok(Some(Response::Change(Change::AddHeader {
                name: "X-Spam".into(),
                value: "yes".into()
            })))
        );
        assert_eq!(
            decoder.next_response(),
            Ok(Some(Response::ReplyCode("554 5.7.1 no".into())))
        );
        assert_eq!(decoder.next_response(), Ok(None));
        let mut change = 2_u32.to_be_bytes().to_vec();
        change.extend_from_slice(b"Subject\0new\0");
        decoder.push(&packet(b'm', &change));
        assert_eq!(
            decoder.next_response(),
            Ok(Some(Response::Change(Change::ChangeHeader {
                index: 2,
                name: "Subject".into(),
                value: "new".into()
            })))
        );
        decoder.push(&packet(b'Z', b""));
        assert!(decoder.next_response().is_err());
        let mut huge = Decoder::default();
        huge.push(&(u32::MAX).to_be_bytes());
        assert!(huge.next_response().is_err());
        let mut short = Decoder::default();
        short.push(&packet(b'O', &[0, 0]));
        assert!(short.next_response().is_err(), "a truncated negotiation");
    }
}
