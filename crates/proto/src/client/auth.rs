//! The client side of AUTH (RFC 4954) for a smarthost: PLAIN (RFC 4616) with an initial
//! response, or LOGIN when that is all the server offers. Credentials are only ever sent
//! inside TLS: a server that does not offer STARTTLS, or refuses it, gets none, and the
//! session fails with `AuthUnavailable` (the driver defers the mail).
//!
//! The server's replies are untrusted; anything but 334 in the exchange and 235 at its end
//! fails the session with `Auth(reply)`.

use super::{ClientEvent, ClientSession, Expect, SessionFailure};
use crate::base64;
use crate::reply::Reply;

/// A user name and password for AUTH.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCredentials({}, <password>)", self.username)
    }
}

impl ClientSession {
    /// Authenticates with `credentials` after EHLO, inside TLS only.
    pub fn with_auth(mut self, credentials: ClientCredentials) -> ClientSession {
        self.credentials = Some(credentials);
        self.wants_tls = true;
        self
    }

    /// True once the server accepted our credentials.
    pub fn is_authenticated(&self) -> bool {
        self.is_authenticated
    }

    /// After a successful EHLO: starts AUTH when credentials are set and not yet used; returns
    /// false when there is nothing to do.
    pub(super) fn start_auth(&mut self) -> bool {
        let Some(credentials) = self.credentials.clone() else {
            return false;
        };
        if self.is_authenticated {
            return false;
        }
        if !self.is_tls {
            self.fail(SessionFailure::AuthUnavailable(
                "the server offers no STARTTLS; credentials are never sent in plaintext".into(),
            ));
            return true;
        }
        let offers = |name: &str| {
            self.capabilities
                .auth_mechanisms
                .iter()
                .any(|m| m.eq_ignore_ascii_case(name))
        };
        if offers("PLAIN") {
            let mut response = vec![0u8];
            response.extend_from_slice(credentials.username.as_bytes());
            response.push(0);
            response.extend_from_slice(credentials.password.as_bytes());
            let line = format!("AUTH PLAIN {}", base64::encode(&response));
            self.push_secret(&line, "AUTH PLAIN <credentials>");
            self.expected.push_back(Expect::Auth);
        } else if offers("LOGIN") {
            self.push_line("AUTH LOGIN");
            self.expected.push_back(Expect::AuthLoginUser);
        } else {
            let offered = self.capabilities.auth_mechanisms.join(" ");
            self.fail(SessionFailure::AuthUnavailable(format!(
                "the server offers no PLAIN or LOGIN authentication (AUTH {offered})"
            )));
        }
        true
    }

    /// A reply during the AUTH exchange.
    pub(super) fn on_auth_reply(&mut self, expect: Expect, reply: Reply) {
        let Some(credentials) = self.credentials.clone() else {
            return self.fail(SessionFailure::Auth(reply));
        };
        match expect {
            Expect::Auth if reply.code == 235 => {
                self.is_authenticated = true;
                self.event = Some(ClientEvent::Ready);
            }
            Expect::AuthLoginUser if reply.code == 334 => {
                self.push_secret(
                    &base64::encode(credentials.username.as_bytes()),
                    "<user name>",
                );
                self.expected.push_back(Expect::AuthLoginPassword);
            }
            Expect::AuthLoginPassword if reply.code == 334 => {
                self.push_secret(
                    &base64::encode(credentials.password.as_bytes()),
                    "<password>",
                );
                self.expected.push_back(Expect::Auth);
            }
            _ => self.fail(SessionFailure::Auth(reply)),
        }
    }
}

/// The mechanisms of an `AUTH PLAIN LOGIN` (or old-style `AUTH=PLAIN LOGIN`) EHLO line.
pub(super) fn mechanisms(line: &str) -> Option<Vec<String>> {
    let upper = line.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("AUTH ")
        .or_else(|| upper.strip_prefix("AUTH="))?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}
