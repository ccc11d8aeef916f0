//! One handler per SMTP command of the server session, and the end of DATA and BDAT content.
//!
//! RFC 5321 §4.1.1 (commands), §3.3 and §4.1.4 (sequencing), RFC 1870, 6152, 6531, 3461
//! (parameters), RFC 3030 (BDAT), docs/conformance.md §2-§7. Handles untrusted bytes: each
//! handler answers exactly one reply or hands a request to the driver.

use super::{Chunking, Helo, MailRequest, Phase, RcptRequest, Refusal, ServerSession, Step};
use crate::address::{ForwardPath, PathError, ReversePath, parse_forward_path, parse_reverse_path};
use crate::chunk::BareNewlineFilter;
use crate::command::{Command, CommandError, parse_command};
use crate::data::{DataDecoder, DataOutcome};
use crate::params::{ParamError, parse_mail_parameters, parse_rcpt_parameters};
use crate::reply::{Template, standard};
use crate::trace::count_received;

impl ServerSession {
    /// Handles one command line (without CR LF).
    pub(super) fn handle_line(&mut self, line: &[u8]) -> Step {
        if line.contains(&b'\r') || line.contains(&b'\n') {
            // A bare CR or LF in a command (S-SMUG-3): also a door check, as postscreen's
            // bare newline test.
            self.door_refusals.push("bare_newline");
            return self.fail(standard::BARE_NEWLINE_IN_COMMAND);
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return self.fail(standard::UNRECOGNISED_COMMAND);
        };
        // Postfix's smtpd_forbidden_commands: an HTTP request (or proxy probe) on port 25 is
        // answered once and the connection closed.
        let verb = text.split(' ').next().unwrap_or("");
        if ["CONNECT", "GET", "POST", "HEAD", "PUT"]
            .iter()
            .any(|v| verb.eq_ignore_ascii_case(v))
        {
            self.door_refusals.push("non_smtp");
            self.close_with(standard::NON_SMTP_COMMAND.reply());
            return Step::Continue;
        }
        let command = match parse_command(text) {
            Ok(command) => command,
            Err(error) => return self.fail(command_error_reply(error)),
        };
        if self.is_shutting_down && self.transaction.is_none() && command != Command::Quit {
            self.close_with(standard::SHUTTING_DOWN.reply());
            return Step::Continue;
        }
        match &self.config.refusal {
            Some(Refusal::Greeting(_)) if command != Command::Quit => {
                return self.fail(standard::BAD_SEQUENCE);
            }
            Some(Refusal::Mail(reply)) if matches!(command, Command::Mail { .. }) => {
                let reply = reply.clone();
                self.send(reply);
                return Step::Continue;
            }
            Some(Refusal::Recipient(reply))
                if matches!(command, Command::Rcpt { .. }) && self.transaction.is_some() =>
            {
                let reply = reply.clone();
                self.send(reply);
                return Step::Continue;
            }
            _ => {}
        }
        match command {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail { path, parameters } => self.mail(path, parameters),
            Command::Rcpt { path, parameters } => self.rcpt(path, parameters),
            Command::Data => self.data(),
            Command::Bdat {
                size_bytes,
                is_last,
            } => self.bdat(size_bytes, is_last),
            Command::Rset => {
                self.transaction = None;
                self.ok(standard::OK)
            }
            Command::Noop => self.ok(standard::OK),
            Command::Quit => {
                self.close_with(standard::CLOSING.reply());
                Step::Continue
            }
            Command::Vrfy => self.ok(standard::CANNOT_VERIFY),
            Command::Help => self.ok(standard::HELP),
            Command::NotImplemented => self.fail(standard::NOT_IMPLEMENTED),
            Command::StartTls => self.start_tls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn ok(&mut self, template: Template) -> Step {
        self.send(template.reply());
        Step::Continue
    }

    pub(super) fn fail(&mut self, template: Template) -> Step {
        self.send(template.reply());
        Step::Continue
    }

    /// EHLO/HELO: resets like RSET (S-SESS-5); EHLO lists the extensions (S-SESS-4).
    fn hello(&mut self, name: &str, is_esmtp: bool) -> Step {
        // S-SESS-5: a refused EHLO leaves the state as it was.
        if self.config.checks_helo {
            if !is_plausible_helo(name) {
                self.door_refusals.push("helo");
                return self.fail(standard::HELO_INVALID);
            }
            let bare = name.trim_end_matches('.');
            if bare.eq_ignore_ascii_case(self.config.hostname.trim_end_matches('.')) {
                self.door_refusals.push("helo");
                return self.fail(standard::HELO_CLAIMS_TO_BE_US);
            }
        }
        if self.config.checks_helo && self.input.len() > self.consumed {
            // More commands already arrived, before the EHLO reply was even sent.
            self.pipelined_before_ehlo = true;
        }
        self.transaction = None;
        self.helo = Some(Helo {
            name: name.to_owned(),
            is_esmtp,
        });
        let mut lines = vec![format!("{} Hello {name}", self.config.hostname)];
        if is_esmtp {
            if self.config.can_start_tls && !self.is_tls {
                lines.push("STARTTLS".to_owned());
            }
            if self.config.offers_auth && self.is_tls {
                lines.push(format!("AUTH {}", crate::sasl::MECHANISMS));
            }
            if self.is_tls {
                // S-RTLS-1: only inside TLS.
                lines.push("REQUIRETLS".to_owned());
            }
            lines.extend([
                "PIPELINING".to_owned(),
                format!("SIZE {}", self.config.max_message_bytes),
                "8BITMIME".to_owned(),
                "SMTPUTF8".to_owned(),
                "ENHANCEDSTATUSCODES".to_owned(),
                "CHUNKING".to_owned(),
                "DSN".to_owned(),
            ]);
        }
        self.send(standard::HELLO.with_lines(lines));
        Step::Continue
    }

    /// MAIL FROM (S-TXN-1, S-TXN-4, S-TXN-7, S-SIZE-1, S-UTF8-1, S-DSN-1, S-RTLS-1).
    fn mail(&mut self, path: &str, parameters: &str) -> Step {
        if self.helo.is_none() || self.transaction.is_some() {
            return self.fail(standard::BAD_SEQUENCE);
        }
        if self.config.requires_auth && self.authenticated_as.is_none() {
            return self.fail(standard::AUTH_REQUIRED);
        }
        let reverse_path = match parse_reverse_path(path) {
            Ok(path) => path,
            Err(PathError::Syntax | PathError::TooLong) => {
                return self.fail(standard::BAD_SENDER_SYNTAX);
            }
        };
        let parameters = match parse_mail_parameters(words(parameters)) {
            Ok(parameters) => parameters,
            Err(error) => return self.fail(param_error_reply(&error)),
        };
        if self.pipelined_before_ehlo {
            self.door_refusals.push("pipelining");
            return self.fail(standard::PIPELINED_BEFORE_EHLO);
        }
        if parameters.requires_tls && !self.is_tls {
            return self.fail(standard::REQUIRETLS_NEEDS_TLS);
        }
        let is_utf8 = matches!(&reverse_path, ReversePath::Mailbox(m) if m.is_utf8());
        if is_utf8 && !parameters.is_smtputf8 {
            return self.fail(standard::UTF8_NOT_NEGOTIATED);
        }
        if parameters
            .size_bytes
            .is_some_and(|size| size > self.config.max_message_bytes)
        {
            return self.fail(standard::MESSAGE_TOO_BIG);
        }
        let request = MailRequest {
            reverse_path,
            parameters,
        };
        self.phase = Phase::AwaitMail(request.clone());
        Step::Event(super::Event::Mail(request))
    }

    /// RCPT TO (S-TXN-1, S-TXN-4, S-LINE-4, S-LINE-5, S-UTF8-1, S-DSN-1).
    fn rcpt(&mut self, path: &str, parameters: &str) -> Step {
        let Some(transaction) = &self.transaction else {
            return self.fail(standard::BAD_SEQUENCE);
        };
        if transaction.chunking.is_some() {
            return self.fail(standard::BAD_SEQUENCE);
        }
        let is_smtputf8 = transaction.parameters.is_smtputf8;
        let recipient_count = transaction.recipients.len();
        let forward_path = match parse_forward_path(path) {
            Ok(path) => path,
            Err(PathError::Syntax | PathError::TooLong) => {
                return self.fail(standard::BAD_RECIPIENT_SYNTAX);
            }
        };
        let parameters = match parse_rcpt_parameters(words(parameters)) {
            Ok(parameters) => parameters,
            Err(error) => return self.fail(param_error_reply(&error)),
        };
        if matches!(&forward_path, ForwardPath::Mailbox(m) if m.is_utf8()) && !is_smtputf8 {
            return self.fail(standard::UTF8_NOT_NEGOTIATED);
        }
        if recipient_count >= self.config.max_recipients {
            return self.fail(standard::TOO_MANY_RECIPIENTS);
        }
        let request = RcptRequest {
            forward_path,
            parameters,
        };
        self.phase = Phase::AwaitRcpt(request.clone());
        Step::Event(super::Event::Rcpt(request))
    }

    /// DATA (S-DATA-1, S-TXN-2, S-BDAT-3, S-SMUG-5).
    fn data(&mut self) -> Step {
        if self.consumed < self.input.len() {
            // The client sent more without waiting for our reply: whatever follows must never
            // be read as content or as commands.
            self.close_with(standard::IMPROPER_PIPELINING.reply());
            return Step::Continue;
        }
        let Some(transaction) = &self.transaction else {
            return self.fail(standard::BAD_SEQUENCE);
        };
        if transaction.chunking.is_some() {
            return self.fail(standard::BAD_SEQUENCE);
        }
        if transaction.recipients.is_empty() {
            return self.fail(standard::NO_VALID_RECIPIENTS);
        }
        self.data_content = Vec::new();
        let mut decoder = DataDecoder::new(
            self.config.max_data_line_bytes,
            self.config.max_message_bytes,
            self.config.bare_newline,
        );
        if self.is_short_of_storage {
            // 452 answers the data, not DATA (RFC 5321 §4.3.2): the content is read and
            // refused at its end.
            decoder.refuse_for_storage(&mut self.data_content);
        }
        self.phase = Phase::Data(decoder);
        self.send(standard::START_MAIL_INPUT.reply());
        Step::Continue
    }

    /// BDAT: the chunk is always read; a refused one is dropped (S-BDAT-1, S-BDAT-2).
    fn bdat(&mut self, size_bytes: u64, is_last: bool) -> Step {
        let max_message_bytes = self.config.max_message_bytes;
        let policy = self.config.bare_newline;
        let is_short_of_storage = self.is_short_of_storage;
        let failure = match &mut self.transaction {
            None => Some(standard::BAD_SEQUENCE),
            Some(transaction) if transaction.recipients.is_empty() => {
                Some(standard::NO_VALID_RECIPIENTS)
            }
            Some(transaction) => {
                let is_first = transaction.chunking.is_none();
                let chunking = transaction.chunking.get_or_insert_with(|| Chunking {
                    content: Vec::new(),
                    received_bytes: 0,
                    filter: BareNewlineFilter::new(policy),
                    failure: None,
                });
                chunking.received_bytes = chunking.received_bytes.saturating_add(size_bytes);
                if chunking.failure.is_none() && chunking.received_bytes > max_message_bytes {
                    chunking.failure = Some(standard::MESSAGE_TOO_BIG);
                    chunking.content = Vec::new();
                }
                if chunking.failure.is_none() && is_first && is_short_of_storage {
                    chunking.failure = Some(standard::INSUFFICIENT_STORAGE);
                }
                chunking.failure
            }
        };
        self.phase = Phase::Bdat {
            remaining_bytes: size_bytes,
            is_last,
            failure,
        };
        Step::Continue
    }

    /// All octets of a chunk are in.
    pub(super) fn end_of_chunk(&mut self, is_last: bool, failure: Option<Template>) -> Step {
        if let Some(failure) = failure {
            if is_last {
                self.transaction = None;
            }
            return self.fail(failure);
        }
        let Some(chunking) = self.transaction.as_mut().and_then(|t| t.chunking.as_mut()) else {
            return self.fail(standard::BAD_SEQUENCE);
        };
        if !is_last {
            let received = chunking.received_bytes;
            self.send(standard::CHUNK_OK.with_text(format!("{received} octets received in total")));
            return Step::Continue;
        }
        let mut content = std::mem::take(&mut chunking.content);
        chunking.filter.finish(&mut content);
        let outcome = if chunking.filter.has_bare_newline()
            && self.config.bare_newline == crate::data::BareNewline::Reject
        {
            DataOutcome::BareNewline
        } else {
            DataOutcome::Complete
        };
        self.end_of_content(outcome, content)
    }

    /// The CR LF . CR LF arrived.
    pub(super) fn end_of_data(&mut self, outcome: DataOutcome) -> Step {
        let content = std::mem::take(&mut self.data_content);
        self.end_of_content(outcome, content)
    }

    /// Refuses a bad message (S-DATA-10) or hands a good one to the driver.
    fn end_of_content(&mut self, outcome: DataOutcome, content: Vec<u8>) -> Step {
        // The header section is in the first content the driver took, when it took any.
        let hops = self
            .transaction
            .as_ref()
            .and_then(|t| t.received_in_taken)
            .unwrap_or_else(|| count_received(&content));
        let refusal = match outcome {
            DataOutcome::Complete if hops >= self.config.max_received_headers => {
                Some(standard::MAIL_LOOP)
            }
            DataOutcome::Complete => None,
            DataOutcome::BareNewline => Some(standard::BARE_NEWLINE_IN_DATA),
            DataOutcome::LineTooLong => Some(standard::DATA_LINE_TOO_LONG),
            DataOutcome::TooBig => Some(standard::MESSAGE_TOO_BIG),
            DataOutcome::NoStorage => Some(standard::INSUFFICIENT_STORAGE),
        };
        if let Some(refusal) = refusal {
            self.transaction = None;
            return self.fail(refusal);
        }
        self.hand_over_message(content)
    }
}

fn words(parameters: &str) -> impl Iterator<Item = &str> {
    parameters.split(' ').filter(|word| !word.is_empty())
}

/// Whether an EHLO/HELO argument could name a host: letters, digits, `-`, `_` and `.` (a
/// name), or an address literal in brackets, at most 255 octets. Lenient on purpose (single
/// labels and underscores are common on real clients); it catches garbage, not style.
fn is_plausible_helo(name: &str) -> bool {
    if name.len() > 255 {
        return false;
    }
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return !literal.is_empty()
            && literal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':'));
    }
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn command_error_reply(error: CommandError) -> Template {
    match error {
        CommandError::Unrecognised => standard::UNRECOGNISED_COMMAND,
        CommandError::Syntax => standard::SYNTAX_ERROR,
        CommandError::SenderSyntax => standard::BAD_SENDER_SYNTAX,
        CommandError::RecipientSyntax => standard::BAD_RECIPIENT_SYNTAX,
    }
}

fn param_error_reply(error: &ParamError) -> Template {
    match error {
        ParamError::Unknown(_) => standard::UNKNOWN_PARAMETER,
        ParamError::Invalid(_) => standard::SYNTAX_ERROR,
    }
}
