//! One milter for one SMTP session (issue 16, item 5): the connection (TCP or a Unix socket),
//! the negotiation (version 6, every action petrel carries out, the steps the milter skips or
//! does not answer), then each step: connect and HELO (sent together with the first MAIL),
//! MAIL, RCPT, and the message (DATA, each header field, end of headers, the body in 64-KiB
//! chunks, end of body), with the macros real milters read (`j`, `{client_addr}`,
//! `{client_name}`, `{mail_addr}`, `{auth_authen}`, `{rcpt_addr}`, `i`).
//!
//! Failure policy: a milter that cannot be reached, times out or breaks the protocol is dropped
//! for the rest of the session, and what the step then gets is its `default_action` (tempfail:
//! 451 4.7.1; accept: go on without it). Its replies are untrusted: a reply line that does not
//! parse, or one that is not 4xx/5xx, is its plain reject or tempfail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use petrel_proto::{Reply, standard};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{Change, Command, Decoder, Response, action, encode, protocol};

/// Where a milter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// What a step gets when the milter cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Tempfail,
    Accept,
}

/// One `[[milter]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilterSettings {
    /// What listeners name it by (`[[listener]] milters`): its `name`, else its address.
    pub name: String,
    pub address: MilterAddress,
    pub default_action: DefaultAction,
    /// For each exchange with the milter.
    pub timeout: Duration,
}

/// What a milter decided at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    /// Accept the message without asking this milter again.
    Accept,
    Reject(Reply),
    Tempfail(Reply),
    /// Take the message and drop it.
    Discard,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// The client's facts for the connect step.
#[derive(Debug, Clone)]
pub struct ClientFacts {
    pub address: std::net::IpAddr,
    pub port: u16,
    pub helo: String,
    pub hostname: String,
}

/// A session with one milter.
pub struct MilterClient {
    stream: Box<dyn Stream>,
    decoder: Decoder,
    /// The steps the milter skips or does not answer.
    protocol: u32,
    settings: MilterSettings,
}

impl std::fmt::Debug for MilterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MilterClient({:?})", self.settings.address)
    }
}

/// The reply of a milter's reject or tempfail, from its reply line when it gave a valid one.
fn refusal(line: Option<&str>, is_temporary: bool) -> Decision {
    let parsed = line.and_then(parse_line);
    match parsed {
        Some(reply) if reply.code >= 500 && !is_temporary => Decision::Reject(reply),
        Some(reply) if (400..500).contains(&reply.code) => Decision::Tempfail(reply),
        Some(reply) if reply.code >= 500 => Decision::Reject(reply),
        _ if is_temporary => Decision::Tempfail(standard::MILTER_TEMPFAIL.reply()),
        _ => Decision::Reject(standard::MILTER_REJECT.reply()),
    }
}

impl MilterClient {
    /// Connects and negotiates.
    ///
    /// # Errors
    /// A sentence: unreachable, no answer in time, or a negotiation that fails.
    pub async fn open(settings: &MilterSettings) -> Result<MilterClient, String> {
        let connect = async {
            let stream: Box<dyn Stream> = match &settings.address {
                MilterAddress::Tcp(address) => Box::new(
                    tokio::net::TcpStream::connect(address)
                        .await
                        .map_err(|e| format!("milter {address}: {e}"))?,
                ),
                MilterAddress::Unix(path) => Box::new(
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| format!("milter {}: {e}", path.display()))?,
                ),
            };
            Ok::<_, String>(stream)
        };
        let stream = tokio::time::timeout(settings.timeout, connect)
            .await
            .map_err(|_| format!("milter {:?}: no connection in time", settings.address))??;
        let mut client = MilterClient {
            stream,
            decoder: Decoder::default(),
            protocol: 0,
            settings: settings.clone(),
        };
        let offer = Command::OptNeg {
            actions: action::ALL,
            protocol: protocol::ALL & !protocol::HEADER_LEADING_SPACE,
        };
        match client.exchange(&offer).await? {
            Response::OptNeg {
                version, protocol, ..
            } if version >= 2 => {
                client.protocol = protocol;
                Ok(client)
            }
            other => Err(format!("milter negotiation failed: {other:?}")),
        }
    }

    async fn send(&mut self, command: &Command<'_>) -> Result<(), String> {
        let packet = encode(command);
        tokio::time::timeout(self.settings.timeout, self.stream.write_all(&packet))
            .await
            .map_err(|_| "the milter did not take a command in time".to_owned())?
            .map_err(|e| format!("milter: {e}"))
    }

    async fn read(&mut self) -> Result<Response, String> {
        let mut buffer = [0_u8; 8192];
        loop {
            if let Some(response) = self
                .decoder
                .next_response()
                .map_err(|e| format!("milter: {}", e.0))?
            {
                return Ok(response);
            }
            let count = tokio::time::timeout(self.settings.timeout, self.stream.read(&mut buffer))
                .await
                .map_err(|_| "the milter did not answer in time".to_owned())?
                .map_err(|e| format!("milter: {e}"))?;
            if count == 0 {
                return Err("the milter closed the connection".into());
            }
            self.decoder.push(&buffer[..count]);
        }
    }

    /// Sends a command and reads its answer (progress reports skipped).
    async fn exchange(&mut self, command: &Command<'_>) -> Result<Response, String> {
        self.send(command).await?;
        loop {
            match self.read().await? {
                Response::Progress => {}
                other => return Ok(other),
            }
        }
    }

    /// Sends a step's macros, then the step, unless the milter skips it; its decision.
    async fn step(
        &mut self,
        macros: &[(String, String)],
        command: Command<'_>,
        skipped: u32,
        unanswered: u32,
    ) -> Result<Decision, String> {
        if self.protocol & skipped != 0 {
            return Ok(Decision::Continue);
        }
        if !macros.is_empty() {
            let stage = match &command {
                Command::Connect { .. } => b'C',
                Command::Helo(_) => b'H',
                Command::Mail(_) => b'M',
                Command::Rcpt(_) => b'R',
                Command::Data => b'T',
                Command::EndOfHeaders => b'N',
                _ => b'E',
            };
            self.send(&Command::Macro {
                stage,
                pairs: macros,
            })
            .await?;
        }
        if self.protocol & unanswered != 0 {
            self.send(&command).await?;
            return Ok(Decision::Continue);
        }
        Ok(decision(self.exchange(&command).await?))
    }

    /// The connect and HELO steps.
    ///
    /// # Errors
    /// As `open`.
    pub async fn connect(&mut self, client: &ClientFacts) -> Result<Decision, String> {
        let address = client.address.to_string();
        let family = if client.address.is_ipv4() { b'4' } else { b'6' };
        let macros = vec![
            ("j".to_owned(), client.hostname.clone()),
            ("{client_addr}".to_owned(), address.clone()),
            ("{client_name}".to_owned(), format!("[{address}]")),
            ("{daemon_name}".to_owned(), "petrel".to_owned()),
        ];
        let connect = Command::Connect {
            hostname: &format!("[{address}]"),
            family,
            port: client.port,
            address: &address,
        };
        let decided = self
            .step(
                &macros,
                connect,
                protocol::NO_CONNECT,
                protocol::NO_REPLY_CONNECT,
            )
            .await?;
        if decided != Decision::Continue {
            return Ok(decided);
        }
        let helo = Command::Helo(&client.helo);
        self.step(&[], helo, protocol::NO_HELO, protocol::NO_REPLY_HELO)
            .await
    }

    /// The MAIL step: the sender and its ESMTP arguments.
    ///
    /// # Errors
    /// As `open`.
    pub async fn mail(
        &mut self,
        sender: &str,
        authenticated_as: Option<&str>,
    ) -> Result<Decision, String> {
        let mut macros = vec![("{mail_addr}".to_owned(), sender.to_owned())];
        if let Some(user) = authenticated_as {
            macros.push(("{auth_authen}".to_owned(), user.to_owned()));
            macros.push(("{auth_type}".to_owned(), "PLAIN".to_owned()));
        }
        let args = [format!("<{sender}>")];
        self.step(
            &macros,
            Command::Mail(&args),
            protocol::NO_MAIL,
            protocol::NO_REPLY_MAIL,
        )
        .await
    }

    /// The RCPT step.
    ///
    /// # Errors
    /// As `open`.
    pub async fn rcpt(&mut self, recipient: &str) -> Result<Decision, String> {
        let macros = vec![("{rcpt_addr}".to_owned(), recipient.to_owned())];
        let args = [format!("<{recipient}>")];
        self.step(
            &macros,
            Command::Rcpt(&args),
            protocol::NO_RCPT,
            protocol::NO_REPLY_RCPT,
        )
        .await
    }

    /// The message: DATA, its header fields, end of headers, the body, end of body; the
    /// decision and the changes asked for.
    ///
    /// # Errors
    /// As `open`.
    pub async fn message(
        &mut self,
        content: &[u8],
        queue_label: &str,
    ) -> Result<(Decision, Vec<Change>), String> {
        let macros = vec![("i".to_owned(), queue_label.to_owned())];
        let decided = self
            .step(
                &macros,
                Command::Data,
                protocol::NO_DATA,
                protocol::NO_REPLY_DATA,
            )
            .await?;
        if decided != Decision::Continue {
            return Ok((decided, Vec::new()));
        }
        let (fields, body) = split_message(content);
        for (name, value) in &fields {
            let header = Command::Header { name, value };
            let decided = self
                .step(&[], header, protocol::NO_HEADERS, protocol::NO_REPLY_HEADER)
                .await?;
            if decided != Decision::Continue {
                return Ok((decided, Vec::new()));
            }
        }
        let decided = self
            .step(
                &macros,
                Command::EndOfHeaders,
                protocol::NO_EOH,
                protocol::NO_REPLY_EOH,
            )
            .await?;
        if decided != Decision::Continue {
            return Ok((decided, Vec::new()));
        }
        if self.protocol & protocol::NO_BODY == 0 {
            for chunk in body.chunks(65_535) {
                let decided = self
                    .step(&[], Command::Body(chunk), 0, protocol::NO_REPLY_BODY)
                    .await?;
                match decided {
                    Decision::Continue => {}
                    other => return Ok((other, Vec::new())),
                }
            }
        }
        self.send(&Command::EndOfBody).await?;
        let mut changes = Vec::new();
        let mut replaced: Option<Vec<u8>> = None;
        loop {
            let response = self.read().await?;
            match response {
                Response::Change(Change::ReplaceBody(chunk)) => replaced
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&chunk),
                Response::Change(change) => changes.push(change),
                Response::Progress => {}
                final_response => {
                    if let Some(body) = replaced {
                        changes.push(Change::ReplaceBody(body));
                    }
                    return Ok((decision(final_response), changes));
                }
            }
        }
    }

    /// A transaction ends without a message (RSET, a refused message): the milter forgets it.
    pub async fn abort(&mut self) {
        let _ = self.send(&Command::Abort).await;
    }

    /// The session ends.
    pub async fn quit(mut self) {
        let _ = self.send(&Command::Quit).await;
    }
}

/// A milter's reply line (or lines, CRLF-separated) as a reply.
fn parse_line(line: &str) -> Option<Reply> {
    let text = format!("{}\r\n", line.trim_end());
    match petrel_proto::reply::parse::parse_reply(text.as_bytes()) {
        Ok(Some((reply, _))) => Some(reply),
        _ => None,
    }
}

fn decision(response: Response) -> Decision {
    match response {
        Response::Accept => Decision::Accept,
        Response::Reject => refusal(None, false),
        Response::Tempfail => refusal(None, true),
        Response::ReplyCode(line) => {
            let is_temporary = line.starts_with('4');
            refusal(Some(&line), is_temporary)
        }
        Response::Discard => Decision::Discard,
        _ => Decision::Continue,
    }
}

/// A message's header fields (name, unfolded value without the leading space) and body.
pub fn split_message(content: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |at| at + 2);
    let header = String::from_utf8_lossy(&content[..end]);
    let body = content.get(end + 2..).unwrap_or_default().to_vec();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in header.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str("\r\n");
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    (fields, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_splits_into_fields_and_body() {
        let (fields, body) =
            split_message(b"Subject: hi\r\nX-Long: a\r\n b\r\nFrom: x@y\r\n\r\nbody\r\n");
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1], ("X-Long".into(), "a\r\n b".into()));
        assert_eq!(body, b"body\r\n");
        assert_eq!(
            decision(Response::ReplyCode("554 5.7.1 Spam".into())),
            Decision::Reject(parse_line("554 5.7.1 Spam").unwrap())
        );
        assert!(matches!(
            decision(Response::ReplyCode("junk".into())),
            Decision::Reject(_)
        ));
        assert!(matches!(
            decision(Response::Tempfail),
            Decision::Tempfail(_)
        ));
    }
}
