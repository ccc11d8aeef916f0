//! Small records kept beside the queue by its backend: one value per (shelf, key), such as a
//! recipient domain's MTA-STS policy. On the spool they are files under `<root>/state/<shelf>/`;
//! on the PostgreSQL queue rows of one table, so every node of a cluster sees what any node
//! learnt (RFC 8461 §5.1 asks senders to cache policies; a cluster should cache one copy).
//!
//! A value is opaque bytes to the queue: the module that owns a shelf writes and parses it, and
//! treats an unreadable value as absent. A `put` replaces the value whole (the spool writes a
//! temporary file and renames it), so a reader sees the old value or the new, never a mixture.

use crate::QueueError;

/// What a shelf holds; each owner has its own, so keys never collide between owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// MTA-STS policies by recipient domain (`petrel_delivery::mta_sts`).
    MtaSts,
    /// TLS report counts by day, policy domain and node, and the days already reported
    /// (`petrel_delivery::tlsrpt`).
    TlsReports,
    /// Greylisting triplets and the client networks that retried (`petrel_server::greylist`).
    Greylist,
}

impl Shelf {
    /// The directory name on the spool and the `shelf` column in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Shelf::MtaSts => "mta-sts",
            Shelf::TlsReports => "tls-reports",
            Shelf::Greylist => "greylist",
        }
    }
}

/// The records of one queue backend.
pub trait Records: Send + Sync {
    /// The value under `key`, if there is one.
    ///
    /// # Errors
    /// `QueueError::Io` when the store cannot be read.
    fn get(&self, shelf: Shelf, key: &str) -> Result<Option<Vec<u8>>, QueueError>;

    /// Sets the value under `key`, replacing any.
    ///
    /// # Errors
    /// `QueueError::NoSpace` or `QueueError::Io`; then the old value, if any, is still there.
    fn put(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<(), QueueError>;

    /// Sets the value under `key` only if there is none: `true` when this call set it. Of
    /// several callers (nodes) exactly one gets `true`.
    ///
    /// # Errors
    /// As `put`.
    fn put_new(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<bool, QueueError>;

    /// The values of every key that starts with `prefix` (compared as `file_name` makes keys:
    /// lower-case), in no particular order.
    ///
    /// # Errors
    /// `QueueError::Io` when the store cannot be read.
    fn values_with_prefix(&self, shelf: Shelf, prefix: &str) -> Result<Vec<Vec<u8>>, QueueError>;
}

/// `key` as a file name: letters, digits, `.`, `-` and `_` as they are (lower-cased), every
/// other byte as `%XX`, and a leading `.` escaped, so no key can name another directory.
pub fn file_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for (index, byte) in key.bytes().enumerate() {
        let is_plain = byte.is_ascii_alphanumeric()
            || byte == b'-'
            || byte == b'_'
            || (byte == b'.' && index > 0);
        if is_plain {
            name.push(char::from(byte.to_ascii_lowercase()));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.is_empty() {
        name.push('%');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_file_names_that_stay_in_their_directory() {
        assert_eq!(file_name("Example.ORG"), "example.org");
        assert_eq!(file_name("../etc/passwd"), "%2E.%2Fetc%2Fpasswd");
        assert_eq!(file_name(".."), "%2E.");
        assert_eq!(file_name(""), "%");
        assert_eq!(file_name("bücher.de"), "b%C3%BCcher.de");
    }
}
