//! Scenarios for petrel-proto, the crate's one integration-test binary: the server session
//! (golden transcripts, property tests, fuzz corpus replay) and the client session against the
//! server session in memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod client_auth;
mod client_lmtp;
mod client_probe;
mod named_values;
mod server;
mod tls_auth;
