//! What a server offers in its EHLO reply (RFC 5321 §4.1.1.1 and each extension's RFC), as
//! the client session reads it. The reply is untrusted: unknown keywords are kept as text,
//! malformed values read as absent.

use super::auth;
use crate::reply::Reply;

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub is_esmtp: bool,
    pub pipelining: bool,
    /// SIZE's limit; `Some(0)` means no fixed limit.
    pub size_bytes: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// RFC 8689: the server takes messages that must go over verified TLS.
    pub requiretls: bool,
    /// The SASL mechanisms of the AUTH line, upper-case.
    pub auth_mechanisms: Vec<String>,
    /// Every keyword line, as offered.
    pub keywords: Vec<String>,
}

impl Capabilities {
    pub(super) fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut capabilities = Capabilities {
            is_esmtp: true,
            ..Capabilities::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => capabilities.pipelining = true,
                "SIZE" => {
                    capabilities.size_bytes =
                        Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0))
                }
                "8BITMIME" => capabilities.eight_bit_mime = true,
                "SMTPUTF8" => capabilities.smtputf8 = true,
                "CHUNKING" => capabilities.chunking = true,
                "DSN" => capabilities.dsn = true,
                "STARTTLS" => capabilities.starttls = true,
                "ENHANCEDSTATUSCODES" => capabilities.enhanced_status_codes = true,
                "REQUIRETLS" => capabilities.requiretls = true,
                _ => {}
            }
            if let Some(mechanisms) = auth::mechanisms(line) {
                capabilities.auth_mechanisms.extend(mechanisms);
            }
            capabilities.keywords.push(line.clone());
        }
        capabilities
    }
}
