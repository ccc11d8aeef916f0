//! petrel-proto: sans-IO SMTP (RFC 5321 and its extensions).
//!
//! Takes bytes and returns events, decisions and bytes; never touches sockets, files, the clock
//! or a logger (time arrives as arguments). Depends on std only. Everything here handles
//! untrusted peer bytes and must never panic: malformed input becomes a `Reply`.

pub mod address;
pub mod base64;
pub mod chunk;
pub mod client;
pub mod command;
pub mod data;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod trace;
pub mod xtext;

pub use reply::{EnhancedCode, Reply, Template, standard, status};
pub use session::{Awaiting, Event, Message, Refusal, ServerSession, SessionConfig};
#[doc(hidden)]
pub mod fuzzing;
