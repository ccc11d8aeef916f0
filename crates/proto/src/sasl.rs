//! SASL exchanges of AUTH (RFC 4954 §4) for the PLAIN (RFC 4616) and LOGIN mechanisms:
//! challenges out, credentials in. Sans-IO; the session frames the lines.
//!
//! Handles untrusted bytes: malformed base64 (501 5.5.2), a cancelled exchange (`*`, 501 5.7.0)
//! and malformed PLAIN messages (535 5.7.8) each become one reply; never a panic.

use crate::base64;
use crate::reply::{Template, standard};

/// What the client proved it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as; empty means the authentication identity (RFC 4616 §2).
    pub authorization_id: String,
    pub username: String,
    pub password: String,
}

/// The next step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send `334 <base64 challenge>` and read a response line.
    Challenge(String),
    Done(Credentials),
    Failed(Template),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    PlainResponse,
    LoginUsername,
    LoginPassword(String),
}

/// One AUTH exchange in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslExchange {
    state: State,
}

/// The mechanisms offered, for the EHLO keyword.
pub const MECHANISMS: &str = "PLAIN LOGIN";

impl SaslExchange {
    /// Starts `AUTH <mechanism> [initial-response]`.
    ///
    /// # Errors
    /// 504 5.5.4 for a mechanism we do not offer.
    pub fn start(
        mechanism: &str,
        initial: Option<&str>,
    ) -> Result<(SaslExchange, SaslStep), Template> {
        let state = if mechanism.eq_ignore_ascii_case("PLAIN") {
            State::PlainResponse
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            State::LoginUsername
        } else {
            return Err(standard::AUTH_MECHANISM_UNKNOWN);
        };
        let mut exchange = SaslExchange { state };
        let step = match initial {
            Some(response) => exchange.respond(response),
            None => exchange.challenge(),
        };
        Ok((exchange, step))
    }

    fn challenge(&self) -> SaslStep {
        match self.state {
            State::PlainResponse => SaslStep::Challenge(String::new()),
            State::LoginUsername => SaslStep::Challenge(base64::encode(b"Username:")),
            State::LoginPassword(_) => SaslStep::Challenge(base64::encode(b"Password:")),
        }
    }

    /// Takes one response line from the client.
    pub fn respond(&mut self, line: &str) -> SaslStep {
        if line == "*" {
            return SaslStep::Failed(standard::AUTH_CANCELLED);
        }
        // An initial response of "=" is an empty one (RFC 4954 §4).
        let decoded = if line == "=" {
            Some(Vec::new())
        } else {
            base64::decode(line)
        };
        let Some(decoded) = decoded else {
            return SaslStep::Failed(standard::AUTH_BAD_BASE64);
        };
        match std::mem::replace(&mut self.state, State::PlainResponse) {
            State::PlainResponse => parse_plain(&decoded),
            State::LoginUsername => match String::from_utf8(decoded) {
                Ok(username) => {
                    self.state = State::LoginPassword(username);
                    self.challenge()
                }
                Err(_) => SaslStep::Failed(standard::AUTH_FAILED),
            },
            State::LoginPassword(username) => match String::from_utf8(decoded) {
                Ok(password) if !username.is_empty() && !password.is_empty() => {
                    SaslStep::Done(Credentials {
                        authorization_id: String::new(),
                        username,
                        password,
                    })
                }
                _ => SaslStep::Failed(standard::AUTH_FAILED),
            },
        }
    }
}

/// `[authzid] NUL authcid NUL passwd`, UTF-8, authcid and passwd non-empty (RFC 4616 §2).
fn parse_plain(message: &[u8]) -> SaslStep {
    let parts: Vec<&[u8]> = message.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts.as_slice() else {
        return SaslStep::Failed(standard::AUTH_FAILED);
    };
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).ok();
    match (text(authzid), text(authcid), text(password)) {
        (Some(authorization_id), Some(username), Some(password))
            if !username.is_empty() && !password.is_empty() =>
        {
            SaslStep::Done(Credentials {
                authorization_id,
                username,
                password,
            })
        }
        _ => SaslStep::Failed(standard::AUTH_FAILED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_auth_7_plain_with_initial_response() {
        let (_, step) =
            SaslExchange::start("plain", Some(&base64::encode(b"\0alice\0secret"))).unwrap();
        assert_eq!(
            step,
            SaslStep::Done(Credentials {
                authorization_id: String::new(),
                username: "alice".into(),
                password: "secret".into()
            })
        );
        let (_, step) = SaslExchange::start("PLAIN", Some("=")).unwrap();
        assert_eq!(step, SaslStep::Failed(standard::AUTH_FAILED));
    }

    #[test]
    fn login_and_cancel_and_bad_base64() {
        let (mut exchange, step) = SaslExchange::start("LOGIN", None).unwrap();
        assert_eq!(step, SaslStep::Challenge("VXNlcm5hbWU6".into()));
        assert_eq!(
            exchange.respond(&base64::encode(b"bob")),
            SaslStep::Challenge("UGFzc3dvcmQ6".into())
        );
        assert!(
            matches!(exchange.respond(&base64::encode(b"pw")), SaslStep::Done(c) if c.username == "bob")
        );
        let (mut exchange, _) = SaslExchange::start("PLAIN", None).unwrap();
        assert_eq!(
            exchange.respond("*"),
            SaslStep::Failed(standard::AUTH_CANCELLED)
        );
        let (mut exchange, _) = SaslExchange::start("PLAIN", None).unwrap();
        assert_eq!(
            exchange.respond("!!!!"),
            SaslStep::Failed(standard::AUTH_BAD_BASE64)
        );
        assert_eq!(
            SaslExchange::start("CRAM-MD5", None).unwrap_err(),
            standard::AUTH_MECHANISM_UNKNOWN
        );
    }
}
