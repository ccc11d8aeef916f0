//! The one SMTP/LMTP client driver of petrel: remote delivery, LMTP, `petrel send` and
//! `petrel probe` all run `proto`'s sans-IO `ClientSession` through a [`Connection`].
//!
//! - [`stream`]: the byte stream (TCP, a Unix socket, or TLS over TCP) and connecting, with
//!   typed failures.
//! - [`tls`]: the TLS client (STARTTLS or implicit), which verifies every certificate against
//!   the system's trust store (and an extra CA file) and reports what it found; whether a
//!   failed verification ends the session is the caller's policy.
//! - [`connection`]: one session to one server: timeouts by stage (C-TIME-1), STARTTLS,
//!   AUTH (inside the session), a transaction or a probe, QUIT; an [`Observer`] sees the
//!   transcript and the TLS result.
//! - [`walk`]: the hosts of a destination in the order to try them (MX plan, addresses) and
//!   the mail-loop check.
//!
//! Failures are [`Broken`]: a typed `Cause` and words for people. Nothing here panics on what
//! a server sends.

pub mod connection;
pub mod dane;
pub mod stream;
pub mod tls;
pub mod walk;

pub use connection::{Broken, Connection, Observer, Quiet, Step, Timeouts, Work};
pub use stream::Stream;
pub use tls::{TlsClient, TlsReport};
