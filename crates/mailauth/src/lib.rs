//! petrel-mailauth: message authentication around the queue. DKIM signing of mail that leaves
//! for the Internet (RFC 6376), the key pairs and DNS records of `petrel dkim keygen`, and the
//! checks of inbound port-25 mail: SPF (RFC 7208), DKIM and DMARC (RFC 7489), reported in an
//! `Authentication-Results` header (RFC 8601); and the sender rewriting of forwarded mail (SRS).
//!
//! Built on mail-auth 0.13 with the ring provider; DNS goes through petrel-dns's resolver, so the
//! checks ask the configured servers and share one cache with MX routing. Depends on dns only;
//! the server crate calls it. Handles untrusted messages and DNS answers: a message that cannot
//! be parsed or a record that cannot be read gives a `none`/`permerror` result, never a panic.

pub mod fuzzing;
pub mod keygen;
pub mod sign;
pub mod srs;
pub mod verify;

pub use keygen::{GeneratedKey, KeyAlgorithm, generate};
pub use sign::{DkimKey, Signer};
pub use verify::{Verdict, Verifier, VerifyRequest};

/// Standard base64 (RFC 4648 §4) with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What went wrong loading or making a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The private key file is not a PEM RSA or Ed25519 key.
    BadKey(String),
    /// The key could not be generated.
    Generate(String),
    /// Signing a message failed (no signed header field in it, or the key refused).
    Sign { domain: String, detail: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadKey(detail) => write!(f, "not a usable DKIM private key: {detail}"),
            Error::Generate(detail) => write!(f, "cannot generate a DKIM key: {detail}"),
            Error::Sign { domain, detail } => {
                write!(f, "DKIM signing for {domain} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The domain of the first address of the message's `From:` field, lower-case (RFC 5322
/// §3.6.2); the domain DKIM signs for and DMARC aligns with.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_auth::AuthenticatedMessage::parse(message)?;
    let address = parsed.from.first()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase()).filter(|d| !d.is_empty())
}
