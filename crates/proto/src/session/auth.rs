//! STARTTLS (RFC 3207) and AUTH (RFC 4954) in the server session: the commands, the SASL
//! exchange, and what the driver reports back (the handshake done, the credentials checked).
//!
//! docs/conformance.md §8-9: bytes pipelined after STARTTLS are discarded and never executed
//! (S-TLS-2; the session then ends with 421 4.7.0 after the handshake); all state is forgotten
//! after TLS (S-TLS-3); AUTH only inside TLS (538 5.7.11, S-AUTH-8), never twice, never in a
//! transaction (503 5.5.1); five failures end the session (421 4.7.0, S-AUTH-9).

use super::{Event, Phase, ServerSession, Step, find_crlf};
use crate::reply::standard;
use crate::sasl::{SaslExchange, SaslStep};

/// Longest AUTH line or SASL response, without CR LF (RFC 4954 §4).
pub const MAX_AUTH_LINE_BYTES: usize = 12_288;

/// Failed AUTH attempts before the session ends (S-AUTH-9).
const MAX_AUTH_FAILURES: u32 = 5;

impl ServerSession {
    /// True once the session runs inside TLS.
    pub fn is_tls(&self) -> bool {
        self.is_tls
    }

    /// The user the client authenticated as, if it did.
    pub fn authenticated_as(&self) -> Option<&str> {
        self.authenticated_as.as_deref()
    }

    /// The TLS handshake after STARTTLS succeeded: everything learnt before is forgotten and
    /// the client must EHLO again (S-TLS-3).
    pub fn tls_started(&mut self) {
        if !matches!(self.phase, Phase::AwaitTls) {
            return;
        }
        self.phase = Phase::Command;
        self.is_tls = true;
        self.helo = None;
        self.transaction = None;
        self.authenticated_as = None;
        if self.is_tls_injected {
            self.close_with(standard::STARTTLS_INJECTION.reply());
        }
    }

    /// The credentials are good: 235 2.7.0.
    pub fn accept_auth(&mut self, username: &str) {
        if matches!(self.phase, Phase::AwaitAuth) {
            self.phase = Phase::Command;
            self.authenticated_as = Some(username.to_owned());
            self.send(standard::AUTH_OK.reply());
        }
    }

    /// The credentials are bad (535 5.7.8) or could not be checked now (454 4.7.0).
    pub fn refuse_auth(&mut self, is_temporary: bool) {
        if matches!(self.phase, Phase::AwaitAuth) {
            self.phase = Phase::Command;
            if is_temporary {
                self.send(standard::AUTH_TEMPORARY.reply());
            } else {
                self.auth_failed(standard::AUTH_FAILED);
            }
        }
    }

    /// STARTTLS (S-TLS-1, S-TLS-2).
    pub(super) fn start_tls(&mut self) -> Step {
        if self.is_tls {
            return self.fail(standard::BAD_SEQUENCE);
        }
        if !self.config.can_start_tls {
            return self.fail(standard::TLS_NOT_AVAILABLE);
        }
        if self.consumed < self.input.len() {
            // Plaintext sent after STARTTLS must never be executed inside TLS.
            self.is_tls_injected = true;
        }
        self.input.clear();
        self.consumed = 0;
        self.send(standard::READY_TO_START_TLS.reply());
        self.phase = Phase::AwaitTls;
        Step::Event(Event::StartTls)
    }

    /// AUTH mechanism [initial-response] (S-AUTH-1, S-AUTH-2, S-AUTH-8).
    pub(super) fn auth(&mut self, mechanism: &str, initial: Option<&str>) -> Step {
        if !self.config.offers_auth {
            return self.fail(standard::AUTH_NOT_OFFERED);
        }
        if self.helo.is_none() || self.transaction.is_some() || self.authenticated_as.is_some() {
            return self.fail(standard::BAD_SEQUENCE);
        }
        if !self.is_tls {
            return self.fail(standard::AUTH_NEEDS_TLS);
        }
        match SaslExchange::start(mechanism, initial) {
            Ok((exchange, step)) => self.sasl_step(exchange, step),
            Err(template) => self.fail(template),
        }
    }

    fn sasl_step(&mut self, exchange: SaslExchange, step: SaslStep) -> Step {
        match step {
            SaslStep::Challenge(challenge) => {
                self.send(standard::AUTH_CHALLENGE.with_text(challenge));
                self.phase = Phase::Sasl(exchange);
                Step::Continue
            }
            SaslStep::Done(credentials) => {
                if !credentials.authorization_id.is_empty()
                    && credentials.authorization_id != credentials.username
                {
                    // Acting as someone else needs a permission we never grant (S-AUTH-7).
                    self.auth_failed(standard::AUTH_FAILED);
                    return Step::Continue;
                }
                self.phase = Phase::AwaitAuth;
                Step::Event(Event::Auth(credentials))
            }
            SaslStep::Failed(template) if template == standard::AUTH_FAILED => {
                self.auth_failed(template);
                Step::Continue
            }
            SaslStep::Failed(template) => self.fail(template),
        }
    }

    fn auth_failed(&mut self, template: crate::Template) {
        self.send(template.reply());
        self.auth_failures = self.auth_failures.saturating_add(1);
        if self.auth_failures >= MAX_AUTH_FAILURES && !self.is_closed() {
            self.close_with(standard::TOO_MANY_AUTH_FAILURES.reply());
        }
    }

    /// Reads one SASL response line.
    pub(super) fn poll_sasl(&mut self) -> Step {
        let pending = &self.input[self.consumed..];
        let Some(end) = find_crlf(pending) else {
            if pending.len() > MAX_AUTH_LINE_BYTES + 2 {
                let keep = usize::from(self.input.last() == Some(&b'\r'));
                self.consumed = self.input.len() - keep;
                self.phase = Phase::LongSaslLine;
            }
            return Step::NeedInput;
        };
        let line = String::from_utf8_lossy(&pending[..end]).into_owned();
        self.consumed += end + 2;
        let Phase::Sasl(mut exchange) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Step::Continue;
        };
        if end > MAX_AUTH_LINE_BYTES {
            return self.fail(standard::AUTH_LINE_TOO_LONG);
        }
        let step = exchange.respond(&line);
        self.sasl_step(exchange, step)
    }

    /// Skips the rest of an over-long SASL line, then ends the exchange with 500 5.5.6.
    pub(super) fn poll_long_sasl_line(&mut self) -> Step {
        match find_crlf(&self.input[self.consumed..]) {
            Some(end) => {
                self.consumed += end + 2;
                self.phase = Phase::Command;
                self.fail(standard::AUTH_LINE_TOO_LONG)
            }
            None => {
                let keep = usize::from(self.input.last() == Some(&b'\r'));
                self.consumed = self.input.len() - keep;
                Step::NeedInput
            }
        }
    }
}
