//! TLS reporting (RFC 8460) for outbound mail: what each session with a recipient domain's MX
//! hosts came to, counted per policy domain and UTC day, and the daily aggregate report sent
//! to the addresses the domain publishes.
//!
//! - `report`: the counts (`Tally`) and the report's JSON (pure).
//! - `collect`: this node's counts, kept in the queue backend's records (one record per day,
//!   domain and node; a cluster's report is the sum).
//! - `send`: the `_smtp._tls` record, the gzipped report by mail and by HTTPS POST.
//! - `reporter`: what `remote` counts, the daily job, and `petrel tls-report`.

pub mod collect;
pub mod report;
pub mod reporter;
pub mod send;

pub use collect::Collector;
pub use report::{FailureKey, PolicyKey, ResultType, SessionResult, Tally};
pub use reporter::Reporter;

/// `bytes` as base64 in lines of 76 characters, each ending in CRLF (RFC 2045 §6.8).
pub(crate) fn base64_lines(bytes: &[u8]) -> String {
    let encoded = petrel_proto::base64::encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}
