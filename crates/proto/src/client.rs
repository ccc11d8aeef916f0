//! The client session state machine (RFC 5321 §3-4, RFC 2920 PIPELINING, RFC 1870 SIZE,
//! RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 4954 AUTH in `auth.rs`), the sending
//! side of `session`; also LMTP (RFC 2033: LHLO, and one reply per accepted recipient after
//! the data) for handing local mail to a mailbox server.
//!
//! Sans-IO: the driver writes `take_output`, feeds the server's bytes with `receive`, and calls
//! `poll`. After the greeting and EHLO (HELO when EHLO is refused) the session is `Ready`; the
//! driver `send`s one transaction at a time and gets one result with a reply per recipient,
//! then may send another on the same connection, or `quit`. Only parameters of advertised
//! extensions are sent (S-TXN-8); content is normalised to CR LF and dot-stuffed (S-SMUG-4).
//! Replies from the server are untrusted: malformed ones end the session with an error.

mod auth;
mod capabilities;
mod commands;
mod probe;
mod stage;
mod transcript;

use std::collections::VecDeque;

pub use auth::ClientCredentials;
pub use capabilities::Capabilities;
use commands::{mail_command, rcpt_command};
pub use stage::{RecipientReply, Stage};
pub use transcript::TranscriptLine;

use crate::EnhancedCode;
use crate::data::dot_stuff;
use crate::params::{Body, MailParameters, RcptParameters};
use crate::reply::Reply;
use crate::reply::parse::{ReplyError, parse_reply};
use crate::reply::status;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Without brackets; empty for the null reverse path.
    pub reverse_path: String,
    pub parameters: MailParameters,
    pub recipients: Vec<(String, RcptParameters)>,
    /// The message; any line ends, normalised to CR LF when sent.
    pub content: Vec<u8>,
}

/// Why a message cannot go to this server at all (checked before MAIL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsendable {
    pub status: EnhancedCode,
    pub reason: String,
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    pub mail: Reply,
    /// One per recipient, in order: the MAIL refusal, its RCPT reply when that refused it, else
    /// the reply to the content (or to DATA when DATA was refused).
    pub recipients: Vec<RecipientReply>,
}

/// Why the session cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// The greeting was not 220 (e.g. 421, 521, 554): try the next host (C-521-2).
    Greeting(Reply),
    /// Both EHLO and HELO were refused.
    Hello(Reply),
    /// The server sent something that is not a reply.
    Protocol(String),
    /// The server refused our AUTH credentials (or the exchange went wrong).
    Auth(Reply),
    /// Credentials are configured but cannot be used here: no TLS, or no mechanism we speak.
    AuthUnavailable(String),
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Write `take_output`, then read and `receive` more.
    NeedInput,
    /// Send a transaction or quit.
    Ready,
    /// A transaction ended; the session is ready again.
    Sent(TransactionResult),
    Failed(SessionFailure),
    /// The server said 220 to STARTTLS: run the TLS handshake, then call `tls_started`.
    StartTls,
    /// QUIT was answered; close the connection.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    Mail,
    Rcpt(usize),
    Data,
    Content,
    /// LMTP: the reply after the data for the recipient at this index (RFC 2033 §4.2).
    LmtpContent(usize),
    Rset,
    /// The RSET that ends a probe (MAIL and RCPT without DATA): its reply finishes it.
    ProbeRset,
    StartTls,
    Auth,
    AuthLoginUser,
    AuthLoginPassword,
    Quit,
}

impl Expect {
    /// The stage a reply to this answers.
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo
            | Expect::Helo
            | Expect::Rset
            | Expect::StartTls
            | Expect::Auth
            | Expect::AuthLoginUser
            | Expect::AuthLoginPassword => Stage::Hello,
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) | Expect::ProbeRset => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::Content | Expect::LmtpContent(_) => Stage::DataEnd,
            Expect::Quit => Stage::Quit,
        }
    }
}

#[derive(Debug)]
struct Transaction {
    message: Outgoing,
    mail: Option<Reply>,
    recipients: Vec<Option<Reply>>,
    data: Option<RecipientReply>,
    /// LMTP: each accepted recipient's reply after the data.
    lmtp_data: Vec<Option<Reply>>,
    /// MAIL and RCPT only, then RSET (`probe.rs`).
    is_probe: bool,
}

/// One client session.
#[derive(Debug)]
pub struct ClientSession {
    helo_name: String,
    input: Vec<u8>,
    output: Vec<u8>,
    expected: VecDeque<Expect>,
    capabilities: Capabilities,
    transaction: Option<Transaction>,
    event: Option<ClientEvent>,
    /// Set once the session failed or quit: nothing more happens on it.
    is_over: bool,
    /// The stage of the reply being handled, and of the failure once the session failed.
    stage: Option<Stage>,
    /// Ask for STARTTLS when the server offers it (opportunistic TLS, RFC 3207).
    wants_tls: bool,
    is_tls: bool,
    /// AUTH credentials for a smarthost (`auth.rs`).
    credentials: Option<ClientCredentials>,
    is_authenticated: bool,
    /// LMTP instead of SMTP (RFC 2033).
    is_lmtp: bool,
    /// What was said, for people, when asked for (`transcript.rs`).
    transcript: Option<Vec<TranscriptLine>>,
}

impl ClientSession {
    /// A session that will greet with `helo_name`; it first waits for the server's greeting.
    pub fn new(helo_name: &str) -> ClientSession {
        ClientSession {
            helo_name: helo_name.to_owned(),
            input: Vec::new(),
            output: Vec::new(),
            expected: VecDeque::from([Expect::Greeting]),
            capabilities: Capabilities::default(),
            transaction: None,
            event: None,
            is_over: false,
            stage: None,
            wants_tls: false,
            is_tls: false,
            credentials: None,
            is_authenticated: false,
            is_lmtp: false,
            transcript: None,
        }
    }

    /// An LMTP session (RFC 2033): LHLO, and a reply per recipient after the data.
    pub fn lmtp(helo_name: &str) -> ClientSession {
        ClientSession {
            is_lmtp: true,
            ..ClientSession::new(helo_name)
        }
    }

    /// A session that upgrades to TLS with STARTTLS whenever the server offers it.
    pub fn with_starttls(helo_name: &str) -> ClientSession {
        ClientSession {
            wants_tls: true,
            ..ClientSession::new(helo_name)
        }
    }

    /// A session on a connection that is TLS from its first byte (implicit TLS, RFC 8314 §3):
    /// no STARTTLS, and credentials may be sent.
    pub fn over_tls(mut self) -> ClientSession {
        self.is_tls = true;
        self
    }

    /// True once the session runs inside TLS.
    pub fn is_tls(&self) -> bool {
        self.is_tls
    }

    /// The handshake after STARTTLS succeeded: greet again, inside TLS (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.is_tls = true;
        self.capabilities = Capabilities::default();
        self.hello("EHLO", Expect::Ehlo);
    }

    /// The stage of the last reply handled: after a failure, the stage that failed (the
    /// greeting, EHLO, a garbled reply's).
    pub fn last_stage(&self) -> Option<Stage> {
        self.stage
    }

    /// What the server offered.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Adds bytes read from the server.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Takes the commands waiting to be written.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// What reply the session waits for, if any.
    pub fn waiting(&self) -> Option<Stage> {
        self.expected.front().map(|expect| expect.stage())
    }

    /// Checks whether `message` can go to this server (C-8BIT-2, C-UTF8-3, RFC 1870, and
    /// C-RTLS-2: a REQUIRETLS message only inside TLS, to a server that offers REQUIRETLS).
    ///
    /// # Errors
    /// The DSN status and reason when it cannot.
    pub fn check(&self, message: &Outgoing) -> Result<(), Unsendable> {
        let caps = &self.capabilities;
        if message.parameters.requires_tls && !(self.is_tls && caps.requiretls) {
            let why = if self.is_tls {
                "the receiving server does not offer REQUIRETLS"
            } else {
                "the session is not inside TLS"
            };
            return Err(Unsendable {
                status: status::REQUIRETLS_NEEDED,
                reason: format!("the message was sent with REQUIRETLS and {why}"),
            });
        }
        let needs_utf8 = message.parameters.is_smtputf8
            || !message.reverse_path.is_ascii()
            || message.recipients.iter().any(|(r, _)| !r.is_ascii());
        if needs_utf8 && !caps.smtputf8 {
            return Err(Unsendable {
                status: status::NON_ASCII_ADDRESS_NOT_PERMITTED,
                reason: "the message needs SMTPUTF8, which the receiving server does not offer"
                    .into(),
            });
        }
        let is_eight_bit =
            message.parameters.body == Body::EightBitMime || !message.content.is_ascii();
        if is_eight_bit && !caps.eight_bit_mime {
            return Err(Unsendable {
                status: status::CONVERSION_NOT_SUPPORTED,
                reason:
                    "the message has 8-bit content and the receiving server does not offer 8BITMIME"
                        .into(),
            });
        }
        if let Some(limit) = caps.size_bytes.filter(|l| *l > 0)
            && message.content.len() as u64 > limit
        {
            return Err(Unsendable {
                status: status::MESSAGE_TOO_BIG_FOR_SYSTEM,
                reason: format!(
                    "the message ({} octets) is over the receiving server's SIZE limit of {limit}",
                    message.content.len()
                ),
            });
        }
        Ok(())
    }

    /// Starts a transaction; call only after `Ready` (or `Sent`), and after `check`.
    pub fn send(&mut self, message: Outgoing) {
        self.start(message, false);
    }

    /// MAIL, then (pipelined when offered) every RCPT and DATA, or RSET for a probe.
    fn start(&mut self, message: Outgoing, is_probe: bool) {
        let count = message.recipients.len();
        self.push_line(&mail_command(&self.capabilities, &message, is_probe));
        self.expected.push_back(Expect::Mail);
        if self.capabilities.pipelining {
            for index in 0..count {
                self.push_line(&rcpt_command(&self.capabilities, &message, index));
                self.expected.push_back(Expect::Rcpt(index));
            }
            let (line, expect) = if is_probe {
                ("RSET", Expect::ProbeRset)
            } else {
                ("DATA", Expect::Data)
            };
            self.push_line(line);
            self.expected.push_back(expect);
        }
        self.transaction = Some(Transaction {
            message,
            mail: None,
            recipients: vec![None; count],
            data: None,
            lmtp_data: vec![None; count],
            is_probe,
        });
    }

    /// Ends the session politely.
    pub fn quit(&mut self) {
        self.push_line("QUIT");
        self.expected.push_back(Expect::Quit);
    }

    /// Processes replies until input runs out or something happens.
    pub fn poll(&mut self) -> ClientEvent {
        loop {
            if let Some(event) = self.event.take() {
                if matches!(event, ClientEvent::Failed(_) | ClientEvent::Closed) {
                    self.is_over = true;
                }
                return event;
            }
            if self.is_over {
                return ClientEvent::Closed;
            }
            let Some(&expect) = self.expected.front() else {
                return ClientEvent::Ready;
            };
            let (reply, used) = match parse_reply(&self.input) {
                Ok(Some(found)) => found,
                Ok(None) => return ClientEvent::NeedInput,
                Err(ReplyError::TooLong) => return self.protocol_error("reply too long".into()),
                Err(ReplyError::Malformed(line)) => {
                    return self.protocol_error(format!("not an SMTP reply: {line:?}"));
                }
            };
            self.input.drain(..used);
            self.expected.pop_front();
            self.stage = Some(expect.stage());
            self.note_reply(expect.stage(), &reply);
            self.on_reply(expect, reply);
        }
    }

    fn protocol_error(&mut self, reason: String) -> ClientEvent {
        self.stage = self.expected.front().map(|expect| expect.stage());
        self.expected.clear();
        self.is_over = true;
        ClientEvent::Failed(SessionFailure::Protocol(reason))
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply) {
        match expect {
            Expect::Greeting if reply.code == 220 => {
                let verb = if self.is_lmtp { "LHLO" } else { "EHLO" };
                self.hello(verb, Expect::Ehlo)
            }
            Expect::Greeting => self.fail(SessionFailure::Greeting(reply)),
            Expect::Ehlo if reply.code == 250 => {
                self.capabilities = Capabilities::from_ehlo(&reply);
                if self.wants_tls && !self.is_tls && self.capabilities.starttls {
                    self.push_line("STARTTLS");
                    self.expected.push_back(Expect::StartTls);
                } else if !self.start_auth() {
                    self.event = Some(ClientEvent::Ready);
                }
            }
            // A refused STARTTLS leaves the session usable in plaintext (C-TLS-6), but never
            // for credentials.
            Expect::StartTls if reply.code == 220 => self.event = Some(ClientEvent::StartTls),
            Expect::StartTls => {
                if !self.start_auth() {
                    self.event = Some(ClientEvent::Ready);
                }
            }
            Expect::Auth | Expect::AuthLoginUser | Expect::AuthLoginPassword => {
                self.on_auth_reply(expect, reply)
            }
            Expect::Ehlo if reply.is_permanent() && !self.is_lmtp => {
                self.hello("HELO", Expect::Helo)
            }
            Expect::Ehlo | Expect::Helo if reply.code != 250 => {
                self.fail(SessionFailure::Hello(reply))
            }
            Expect::Ehlo | Expect::Helo => {
                self.capabilities = Capabilities::default();
                self.event = Some(ClientEvent::Ready);
            }
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(index) => self.on_rcpt(index, reply),
            Expect::Data => self.on_data(reply),
            Expect::Content => {
                if let Some(transaction) = &mut self.transaction {
                    transaction.data = Some(RecipientReply {
                        stage: Stage::DataEnd,
                        reply,
                    });
                }
                self.finish();
            }
            Expect::LmtpContent(index) => {
                if let Some(slot) = self
                    .transaction
                    .as_mut()
                    .and_then(|t| t.lmtp_data.get_mut(index))
                {
                    *slot = Some(reply);
                }
                if !self
                    .expected
                    .iter()
                    .any(|e| matches!(e, Expect::LmtpContent(_)))
                {
                    self.finish();
                }
            }
            Expect::Rset => {}
            Expect::ProbeRset => self.finish(),
            Expect::Quit => self.event = Some(ClientEvent::Closed),
        }
    }

    fn hello(&mut self, verb: &str, expect: Expect) {
        let line = format!("{verb} {}", self.helo_name);
        self.push_line(&line);
        self.expected.push_back(expect);
    }

    fn fail(&mut self, failure: SessionFailure) {
        self.expected.clear();
        self.event = Some(ClientEvent::Failed(failure));
    }

    fn on_mail(&mut self, reply: Reply) {
        let is_ok = reply.code == 250;
        let Some(transaction) = &mut self.transaction else {
            return;
        };
        transaction.mail = Some(reply);
        if !self.capabilities.pipelining {
            if is_ok {
                let line = rcpt_command(&self.capabilities, &transaction.message, 0);
                self.push_line(&line);
                self.expected.push_back(Expect::Rcpt(0));
            } else {
                self.finish();
            }
        }
    }

    fn on_rcpt(&mut self, index: usize, reply: Reply) {
        let Some(transaction) = &mut self.transaction else {
            return;
        };
        if let Some(slot) = transaction.recipients.get_mut(index) {
            *slot = Some(reply);
        }
        if self.capabilities.pipelining {
            return;
        }
        let next = index + 1;
        if next < transaction.recipients.len() {
            let line = rcpt_command(&self.capabilities, &transaction.message, next);
            self.push_line(&line);
            self.expected.push_back(Expect::Rcpt(next));
        } else if transaction.is_probe {
            self.push_line("RSET");
            self.expected.push_back(Expect::ProbeRset);
        } else if self.has_accepted_recipient() {
            self.push_line("DATA");
            self.expected.push_back(Expect::Data);
        } else {
            self.push_line("RSET");
            self.expected.push_back(Expect::Rset);
            self.finish();
        }
    }

    fn on_data(&mut self, reply: Reply) {
        if reply.code == 354 {
            let content = match &self.transaction {
                // RFC 2920 §3.1: a 354 after every RCPT failed still needs an end of data.
                Some(t)
                    if self.has_accepted_recipient()
                        && t.mail.as_ref().is_some_and(|m| m.code == 250) =>
                {
                    dot_stuff(&t.message.content)
                }
                _ => b".\r\n".to_vec(),
            };
            self.note_content(content.len());
            self.output.extend_from_slice(&content);
            let accepted = self.accepted_indexes();
            if self.is_lmtp && !accepted.is_empty() {
                for index in accepted {
                    self.expected.push_back(Expect::LmtpContent(index));
                }
            } else {
                self.expected.push_back(Expect::Content);
            }
            return;
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.data = Some(RecipientReply {
                stage: Stage::Data,
                reply,
            });
        }
        self.finish();
    }

    /// The recipients RCPT accepted, in order (each gets an LMTP reply after the data).
    fn accepted_indexes(&self) -> Vec<usize> {
        self.transaction.as_ref().map_or_else(Vec::new, |t| {
            t.recipients
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_ref().is_some_and(|r| r.code == 250 || r.code == 251))
                .map(|(index, _)| index)
                .collect()
        })
    }

    fn has_accepted_recipient(&self) -> bool {
        self.transaction.as_ref().is_some_and(|t| {
            t.recipients
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.code == 250 || r.code == 251))
        })
    }

    /// Builds the result: each recipient gets its RCPT refusal, or the MAIL refusal, or the
    /// reply that ended the data.
    fn finish(&mut self) {
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        let fallback = Reply {
            code: 451,
            enhanced: Some(status::BAD_CONNECTION),
            lines: vec!["no reply received".into()],
        };
        let mail = transaction.mail.unwrap_or_else(|| fallback.clone());
        let recipients = transaction
            .recipients
            .into_iter()
            .zip(transaction.lmtp_data)
            .map(|(rcpt, lmtp_data)| {
                let (stage, reply) = if mail.code != 250 {
                    (Stage::Mail, mail.clone())
                } else {
                    match rcpt {
                        Some(reply) if transaction.is_probe => (Stage::Rcpt, reply),
                        Some(reply) if reply.code == 250 || reply.code == 251 => {
                            match (lmtp_data, &transaction.data) {
                                (Some(reply), _) => (Stage::DataEnd, reply),
                                (None, Some(data)) => (data.stage, data.reply.clone()),
                                (None, None) => (Stage::DataEnd, fallback.clone()),
                            }
                        }
                        Some(reply) => (Stage::Rcpt, reply),
                        None => (Stage::Rcpt, fallback.clone()),
                    }
                };
                RecipientReply { stage, reply }
            })
            .collect();
        self.event = Some(ClientEvent::Sent(TransactionResult { mail, recipients }));
    }

    fn push_line(&mut self, line: &str) {
        self.note_command(line);
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }
}
