//! The server session state machine (RFC 5321 §3, §4; RFC 2920 PIPELINING; RFC 3030 CHUNKING).
//!
//! Sans-IO: the driver feeds bytes with `receive`, calls `poll` until it returns
//! `Event::NeedInput` (then writes `take_output` and reads more) or `Event::Close`. MAIL, RCPT
//! and the finished message are handed out as events for the driver's policy and queue to
//! decide, and the session replies with what the driver answers. Replies to pipelined commands
//! collect in the output until input is drained (S-PIPE-1, S-PIPE-2).
//!
//! Handles untrusted bytes; never panics: every malformed input becomes one reply. Command lines
//! end only at CR LF (S-LINE-1, S-SMUG-3); bytes sent after DATA before our 354 end the session
//! (S-SMUG-5).

mod auth;
mod commands;

use crate::address::{ForwardPath, ReversePath};
use crate::chunk::BareNewlineFilter;
use crate::data::{BareNewline, DataDecoder};
use crate::params::{MailParameters, RcptParameters};
use crate::reply::{Reply, Template, standard};
use crate::sasl::{Credentials, SaslExchange};

/// Limits and names a session needs, fixed before it starts.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name: greeting, EHLO reply.
    pub hostname: String,
    /// SIZE limit (S-SIZE-1).
    pub max_message_bytes: u64,
    /// Recipients per transaction before 452 4.5.3 (S-LINE-4: at least 100).
    pub max_recipients: usize,
    /// A command line including CR LF (S-LINE-3: at least 512).
    pub max_command_line_bytes: usize,
    /// A data line without CR LF (S-LINE-7).
    pub max_data_line_bytes: usize,
    /// Error replies before 421 4.7.0 (S-SESS-9).
    pub max_errors: u32,
    /// `Received:` fields at which a message is a loop (S-DATA-12: at least 100).
    pub max_received_headers: usize,
    /// Bare CR/LF in content (S-SMUG-2).
    pub bare_newline: BareNewline,
    /// The session runs inside TLS from its start (implicit TLS, RFC 8314).
    pub is_tls: bool,
    /// STARTTLS is offered: a certificate is configured (RFC 3207).
    pub can_start_tls: bool,
    /// AUTH is offered, inside TLS only (RFC 4954, S-AUTH-8).
    pub offers_auth: bool,
    /// MAIL needs AUTH first (submission, S-SUB-1).
    pub requires_auth: bool,
    /// The door refused this client (`None`: it did not).
    pub refusal: Option<Refusal>,
    /// EHLO/HELO names are checked (a port-25 client of the Internet): one with characters no
    /// host name has gets 501 5.5.4, one that claims to be this host 550 5.7.1; and a client
    /// that sends commands before the reply to its EHLO is refused at MAIL (554 5.5.1).
    pub checks_helo: bool,
}

/// How a session refuses a client the door turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// S-SESS-1: this reply (a 554) instead of the greeting, then 503 5.5.1 to every command
    /// but QUIT, until QUIT.
    Greeting(Reply),
    /// The greeting was already under way (pre-greet): greet as usual, and answer every MAIL
    /// with this reply.
    Mail(Reply),
    /// Greet and take MAIL as usual; answer every RCPT with this reply (DNS lists decided at
    /// RCPT, so the log has the sender and recipients).
    Recipient(Reply),
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            hostname: "localhost".into(),
            max_message_bytes: 36_700_160,
            max_recipients: 100,
            max_command_line_bytes: 2048,
            max_data_line_bytes: 65_536,
            max_errors: 20,
            max_received_headers: 100,
            bare_newline: BareNewline::Reject,
            is_tls: false,
            can_start_tls: false,
            offers_auth: false,
            requires_auth: false,
            refusal: None,
            checks_helo: false,
        }
    }
}

/// A MAIL command for the driver's policy to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRequest {
    pub reverse_path: ReversePath,
    pub parameters: MailParameters,
}

/// A RCPT command for the driver's policy to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptRequest {
    pub forward_path: ForwardPath,
    pub parameters: RcptParameters,
}

/// A complete message: envelope and content (CR LF line ends, unstuffed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub helo: String,
    pub is_esmtp: bool,
    pub reverse_path: ReversePath,
    pub parameters: MailParameters,
    pub recipients: Vec<RcptRequest>,
    pub content: Vec<u8>,
    /// Whether the message came over TLS, and as whom the client authenticated (Received's
    /// "with" ESMTPS/ESMTPA/ESMTPSA, RFC 3848).
    pub is_tls: bool,
    pub authenticated_as: Option<String>,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write `take_output()`, then read and `receive` more input.
    NeedInput,
    /// Decide with `accept` or `refuse`.
    Mail(MailRequest),
    /// Decide with `accept` or `refuse`.
    Rcpt(RcptRequest),
    /// Store it, then answer with `finish_message`.
    Message(Message),
    /// Write `take_output()`, run the TLS handshake, then call `tls_started` (RFC 3207).
    StartTls,
    /// Check the credentials, then answer with `accept_auth` or `refuse_auth` (RFC 4954).
    Auth(Credentials),
    /// Write `take_output()`, then close the connection.
    Close,
}

#[derive(Debug, Clone)]
struct Helo {
    name: String,
    is_esmtp: bool,
}

/// The open mail transaction, from an accepted MAIL to the end of its message.
#[derive(Debug)]
struct Transaction {
    reverse_path: ReversePath,
    parameters: MailParameters,
    recipients: Vec<RcptRequest>,
    /// Set once BDAT was used: the content so far and the bare-newline scan.
    chunking: Option<Chunking>,
    /// The `Received:` fields counted in the first content the driver took
    /// (`take_content`), which holds the header section: the hop count of S-TRACE-3 is then
    /// this, not a count over the rest.
    received_in_taken: Option<usize>,
}

#[derive(Debug)]
struct Chunking {
    content: Vec<u8>,
    /// Octets announced by the chunks so far (RFC 1870's size, before any repair).
    received_bytes: u64,
    filter: BareNewlineFilter,
    /// A refused chunk: this and every further chunk of the transaction is read and dropped.
    failure: Option<Template>,
}

#[derive(Debug)]
enum Phase {
    Command,
    /// Skipping the rest of an over-long command line up to its CR LF, then this reply
    /// (S-LINE-6; 500 5.5.6 for AUTH lines, S-AUTH-5).
    LongLine(Template),
    /// Skipping an over-long SASL response line.
    LongSaslLine,
    /// Between 220 Ready to start TLS and the driver's `tls_started`.
    AwaitTls,
    /// Reading SASL responses.
    Sasl(SaslExchange),
    AwaitAuth,
    Data(DataDecoder),
    /// Reading a BDAT chunk's octets; `failure` when they are to be dropped.
    Bdat {
        remaining_bytes: u64,
        is_last: bool,
        failure: Option<Template>,
    },
    AwaitMail(MailRequest),
    AwaitRcpt(RcptRequest),
    AwaitMessage,
    Closed,
}

/// What a session waits for from the client (`ServerSession::awaiting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// A new command or SASL line, nothing of which has arrived.
    Request,
    /// The rest of a command or SASL line that has begun.
    RestOfRequest,
    /// Message content: after 354, or a BDAT chunk's octets.
    Content,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    input: Vec<u8>,
    /// Octets of `input` already consumed.
    consumed: usize,
    output: Vec<u8>,
    phase: Phase,
    helo: Option<Helo>,
    transaction: Option<Transaction>,
    errors: u32,
    is_shutting_down: bool,
    data_content: Vec<u8>,
    is_tls: bool,
    /// Input arrived after STARTTLS before the handshake: refused after it (S-TLS-2).
    is_tls_injected: bool,
    authenticated_as: Option<String>,
    auth_failures: u32,
    /// A checked client sent commands before the reply to its EHLO (postscreen's pipelining
    /// test): its MAIL is refused.
    pipelined_before_ehlo: bool,
    /// The door's checks that refused something since the server last asked
    /// (`take_door_refusals`), by name: "helo", "pipelining", "non_smtp", "bare_newline".
    door_refusals: Vec<&'static str>,
    /// The server has no room for more message data now: the content after DATA is read and
    /// refused with 452 4.3.1 at its end, and the first BDAT of a transaction gets 452 4.3.1
    /// (`set_short_of_storage`).
    is_short_of_storage: bool,
    /// Transactions begun (accepted MAIL) so far.
    transactions: u64,
}

impl ServerSession {
    /// Starts a session; the greeting is already in the output (S-SESS-1).
    pub fn new(config: SessionConfig) -> ServerSession {
        let mut session = ServerSession {
            config,
            input: Vec::new(),
            consumed: 0,
            output: Vec::new(),
            phase: Phase::Command,
            helo: None,
            transaction: None,
            errors: 0,
            is_shutting_down: false,
            data_content: Vec::new(),
            is_tls: false,
            is_tls_injected: false,
            authenticated_as: None,
            auth_failures: 0,
            pipelined_before_ehlo: false,
            door_refusals: Vec::new(),
            is_short_of_storage: false,
            transactions: 0,
        };
        session.is_tls = session.config.is_tls;
        if let Some(Refusal::Greeting(reply)) = &session.config.refusal {
            reply.render(&mut session.output);
            return session;
        }
        let greeting = format!("{} ESMTP", session.config.hostname);
        standard::GREETING
            .with_text(greeting)
            .render(&mut session.output);
        session
    }

    /// Adds bytes read from the peer.
    pub fn receive(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// Takes the replies waiting to be written.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The door's checks that refused a command since the last call, by name ("helo",
    /// "pipelining", "non_smtp", "bare_newline"), for the server to count.
    pub fn take_door_refusals(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.door_refusals)
    }

    /// True once the session has ended; only `take_output` is left to do.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The name the client gave in EHLO/HELO, once it has.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_ref().map(|h| h.name.as_str())
    }

    /// Octets of content of the message being read held now, for the server's bound on
    /// message data in flight. 0 once handed over.
    pub fn content_bytes(&self) -> usize {
        let chunked = self
            .transaction
            .as_ref()
            .and_then(|t| t.chunking.as_ref())
            .map_or(0, |c| c.content.len());
        self.data_content.len() + chunked
    }

    /// Counts the transactions begun (accepted MAIL) in this session: content the driver took
    /// (`take_content`) belongs to the transaction of this number, and to no later one.
    pub fn transaction_number(&self) -> u64 {
        self.transactions
    }

    /// Takes the message content decoded so far (after 354, or of the BDAT chunks), so the
    /// driver can write it to disk as it arrives (issue 18: memory per session stays bounded
    /// whatever the message size); decoding goes on, and the content after it comes in the
    /// next call or in `Message::content`. The content the driver took comes first in the
    /// message, in the order taken. Nothing when no message is being read.
    pub fn take_content(&mut self) -> Vec<u8> {
        let Some(transaction) = self.transaction.as_mut() else {
            return Vec::new();
        };
        let taken = match (&self.phase, transaction.chunking.as_mut()) {
            (Phase::Data(_), _) => std::mem::take(&mut self.data_content),
            (_, Some(chunking)) => std::mem::take(&mut chunking.content),
            _ => Vec::new(),
        };
        if transaction.received_in_taken.is_none() && !taken.is_empty() {
            transaction.received_in_taken = Some(crate::trace::count_received(&taken));
        }
        taken
    }

    /// The server has no room for the message being read: what it holds is dropped, the rest
    /// is read to its end, and the message gets 452 4.3.1.
    pub fn refuse_content(&mut self) {
        if let Phase::Data(decoder) = &mut self.phase {
            decoder.refuse_for_storage(&mut self.data_content);
        }
        if let Some(chunking) = self.transaction.as_mut().and_then(|t| t.chunking.as_mut()) {
            chunking
                .failure
                .get_or_insert(standard::INSUFFICIENT_STORAGE);
            chunking.content = Vec::new();
        }
    }

    /// Whether the server has room for more message data: while it has not, the content after
    /// DATA is read and refused with 452 4.3.1 at its end (RFC 5321 §4.3.2 gives 452 to the
    /// data, not to DATA), and the first BDAT of a transaction gets 452 4.3.1 (RFC 3030
    /// answers each chunk).
    pub fn set_short_of_storage(&mut self, is_short: bool) {
        self.is_short_of_storage = is_short;
    }

    /// What the session waits for, once `poll` asked for input: the driver's deadlines
    /// depend on it (a whole request within the timeout; content at a minimum rate).
    pub fn awaiting(&self) -> Awaiting {
        match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } => Awaiting::Content,
            Phase::LongLine(_) | Phase::LongSaslLine => Awaiting::RestOfRequest,
            _ if !self.input.is_empty() => Awaiting::RestOfRequest,
            _ => Awaiting::Request,
        }
    }

    /// True between an accepted MAIL and the reply to its message.
    pub fn has_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Runs until the session needs input, a decision, or is closed.
    pub fn poll(&mut self) -> Event {
        loop {
            let step = match &self.phase {
                Phase::Closed => return Event::Close,
                Phase::AwaitMail(request) => return Event::Mail(request.clone()),
                Phase::AwaitRcpt(request) => return Event::Rcpt(request.clone()),
                // The driver owes `finish_message`; nothing is read meanwhile.
                Phase::AwaitMessage => Step::NeedInput,
                Phase::Command => self.poll_command(),
                Phase::LongLine(_) => self.poll_long_line(),
                Phase::LongSaslLine => self.poll_long_sasl_line(),
                Phase::AwaitTls | Phase::AwaitAuth => Step::NeedInput,
                Phase::Sasl(_) => self.poll_sasl(),
                Phase::Data(_) => self.poll_data(),
                Phase::Bdat { .. } => self.poll_bdat(),
            };
            match step {
                Step::Continue => {}
                Step::Event(event) => return event,
                Step::NeedInput => {
                    self.input.drain(..self.consumed);
                    self.consumed = 0;
                    return Event::NeedInput;
                }
            }
        }
    }

    /// Accepts the pending MAIL or RCPT.
    pub fn accept(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AwaitMail(request) => {
                self.transactions += 1;
                self.transaction = Some(Transaction {
                    reverse_path: request.reverse_path,
                    parameters: request.parameters,
                    recipients: Vec::new(),
                    chunking: None,
                    received_in_taken: None,
                });
                self.send(standard::MAIL_OK.reply());
            }
            Phase::AwaitRcpt(request) => {
                if let Some(transaction) = &mut self.transaction {
                    transaction.recipients.push(request);
                }
                self.send(standard::RCPT_OK.reply());
            }
            other => self.phase = other,
        }
    }

    /// Refuses the pending MAIL or RCPT with `reply`.
    pub fn refuse(&mut self, reply: Reply) {
        if matches!(self.phase, Phase::AwaitMail(_) | Phase::AwaitRcpt(_)) {
            self.phase = Phase::Command;
            self.send(reply);
        }
    }

    /// Answers the end of a message (`250 ... queued as ID` or an error); the transaction ends
    /// whatever the reply (S-DATA-8).
    pub fn finish_message(&mut self, reply: Reply) {
        if matches!(self.phase, Phase::AwaitMessage) {
            self.phase = Phase::Command;
            self.transaction = None;
            self.send(reply);
        }
    }

    /// The peer was idle too long: 421 4.4.2 and close (S-SESS-13).
    pub fn idle_timeout(&mut self) {
        self.close_with(standard::IDLE_TIMEOUT.reply());
    }

    /// The server is stopping: a session with no transaction gets 421 4.3.2 now; one in a
    /// transaction may finish it, then gets 421 4.3.2 (S-SESS-9). Returns true if closed now.
    pub fn begin_shutdown(&mut self) -> bool {
        self.is_shutting_down = true;
        if self.transaction.is_none() && matches!(self.phase, Phase::Command | Phase::LongLine(_)) {
            self.close_with(standard::SHUTTING_DOWN.reply());
        }
        self.is_closed()
    }

    /// The shutdown grace period is over: 421 4.3.2 and close, whatever is in flight.
    pub fn end_shutdown(&mut self) {
        if !self.is_closed() {
            self.close_with(standard::SHUTTING_DOWN.reply());
        }
    }

    /// Queues a reply; error replies count toward the limit of S-SESS-9.
    fn send(&mut self, reply: Reply) {
        let is_counted = reply.code >= 400 && reply.code != standard::TOO_MANY_RECIPIENTS.code;
        reply.render(&mut self.output);
        if is_counted {
            self.errors = self.errors.saturating_add(1);
            if self.errors >= self.config.max_errors && !self.is_closed() {
                self.close_with(standard::TOO_MANY_ERRORS.reply());
            }
        }
    }

    /// Sends a final reply and ends the session; nothing more is read.
    fn close_with(&mut self, reply: Reply) {
        reply.render(&mut self.output);
        self.phase = Phase::Closed;
        self.transaction = None;
        self.input.clear();
        self.consumed = 0;
    }

    /// Finds the next CR LF-terminated line in the input.
    fn poll_command(&mut self) -> Step {
        let pending = &self.input[self.consumed..];
        let (limit, too_long) = command_line_limit(pending, self.config.max_command_line_bytes);
        let Some(end) = find_crlf(pending) else {
            if pending.len() >= limit {
                self.skip_to_trailing_cr();
                self.phase = Phase::LongLine(too_long);
            }
            return Step::NeedInput;
        };
        let line_start = self.consumed;
        self.consumed += end + 2;
        if end + 2 > limit {
            self.send(too_long.reply());
            return Step::Continue;
        }
        let line = self.input[line_start..line_start + end].to_vec();
        self.handle_line(&line)
    }

    fn poll_long_line(&mut self) -> Step {
        match find_crlf(&self.input[self.consumed..]) {
            Some(end) => {
                self.consumed += end + 2;
                let reply = match std::mem::replace(&mut self.phase, Phase::Command) {
                    Phase::LongLine(template) => template,
                    _ => standard::LINE_TOO_LONG,
                };
                self.send(reply.reply());
                Step::Continue
            }
            None => {
                self.skip_to_trailing_cr();
                Step::NeedInput
            }
        }
    }

    /// Drops the pending input but a final CR, which may be half of the CR LF to come.
    fn skip_to_trailing_cr(&mut self) {
        let keep = usize::from(self.input.last() == Some(&b'\r'));
        self.consumed = self.input.len() - keep;
    }

    fn poll_data(&mut self) -> Step {
        let Phase::Data(decoder) = &mut self.phase else {
            return Step::Continue;
        };
        let (used, is_end) = decoder.decode(&self.input[self.consumed..], &mut self.data_content);
        self.consumed += used;
        if !is_end {
            return Step::NeedInput;
        }
        let outcome = decoder.outcome();
        self.phase = Phase::Command;
        self.end_of_data(outcome)
    }

    fn poll_bdat(&mut self) -> Step {
        let Phase::Bdat {
            remaining_bytes,
            is_last,
            failure,
        } = &mut self.phase
        else {
            return Step::Continue;
        };
        let available = self.input.len() - self.consumed;
        let take = usize::try_from(*remaining_bytes).map_or(available, |r| r.min(available));
        let chunk = &self.input[self.consumed..self.consumed + take];
        if failure.is_none()
            && let Some(chunking) = self.transaction.as_mut().and_then(|t| t.chunking.as_mut())
            && chunking.failure.is_none()
        {
            chunking.filter.push(chunk, &mut chunking.content);
        }
        self.consumed += take;
        *remaining_bytes -= take as u64;
        if *remaining_bytes > 0 {
            return Step::NeedInput;
        }
        let (is_last, mut failure) = (*is_last, *failure);
        if failure.is_none() {
            // Refused while its octets were read (`refuse_content`).
            failure = self
                .transaction
                .as_ref()
                .and_then(|t| t.chunking.as_ref())
                .and_then(|c| c.failure);
        }
        self.phase = Phase::Command;
        self.end_of_chunk(is_last, failure)
    }

    /// Hands the finished message out; the session then waits for `finish_message`.
    fn hand_over_message(&mut self, content: Vec<u8>) -> Step {
        let Some(transaction) = self.transaction.as_mut() else {
            return Step::Continue;
        };
        let helo = self.helo.as_ref();
        let message = Message {
            helo: helo.map(|h| h.name.clone()).unwrap_or_default(),
            is_esmtp: helo.is_some_and(|h| h.is_esmtp),
            reverse_path: transaction.reverse_path.clone(),
            parameters: transaction.parameters.clone(),
            recipients: std::mem::take(&mut transaction.recipients),
            content,
            is_tls: self.is_tls,
            authenticated_as: self.authenticated_as.clone(),
        };
        self.phase = Phase::AwaitMessage;
        Step::Event(Event::Message(message))
    }
}

/// What one step of `poll` came to. Lives only on the stack between two calls; boxing the
/// event would cost an allocation per command for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Continue,
    NeedInput,
    Event(Event),
}

/// Longest line including CR LF, and the reply when over it: AUTH lines may carry a
/// 12,288-octet response and get 500 5.5.6 beyond (S-AUTH-5); others 500 5.5.2 (S-LINE-6).
fn command_line_limit(pending: &[u8], max_command_line_bytes: usize) -> (usize, Template) {
    let is_auth = pending.len() >= 5 && pending[..5].eq_ignore_ascii_case(b"AUTH ");
    if is_auth {
        let limit = max_command_line_bytes.max(auth::MAX_AUTH_LINE_BYTES + 2);
        (limit, standard::AUTH_LINE_TOO_LONG)
    } else {
        (max_command_line_bytes, standard::LINE_TOO_LONG)
    }
}

/// The index of the first CR LF, if any.
fn find_crlf(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| b == b'\n') {
        let index = start + offset;
        if index > 0 && bytes[index - 1] == b'\r' {
            return Some(index - 1);
        }
        start = index + 1;
    }
    None
}
