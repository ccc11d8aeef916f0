//! `QueueId`: the name of one queued message, used in file names, logs and replies.
//!
//! Contract: an id is exactly 17 upper-case hexadecimal characters: 13 hex digits of the
//! microseconds since the Unix epoch at generation time, then 4 hex digits of a process-wide
//! wrapping counter. Ids of one process are therefore unique unless more than 65,536 are made in
//! one microsecond or the clock steps backwards; the spool still checks for an existing entry
//! before it uses a new id. Ids sort roughly by age.
//!
//! Failure policy: never panics; a clock before 1970 counts as the epoch. `parse` handles
//! untrusted text (file names, operator input) and refuses anything that is not an id, so an id
//! can always be used as a file name without escaping.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of characters of an id.
pub const QUEUE_ID_LENGTH: usize = 17;

/// 13 hex digits hold 52 bits of microseconds (until the year 2112).
const TIMESTAMP_MASK: u128 = (1 << 52) - 1;

/// The process-wide counter; only its low 16 bits are used.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The name of one queued message: 17 upper-case hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

/// Starts the counter at a value derived from `node` and the process id, so that nodes
/// sharing one queue (and restarts of one node) do not begin at the same ids.
pub fn seed_counter(node: &str) {
    let mut seed = std::process::id();
    for byte in node.bytes() {
        seed = seed.wrapping_mul(31).wrapping_add(u32::from(byte));
    }
    COUNTER.store(seed, Ordering::Relaxed);
}

impl QueueId {
    /// Makes a new id from the clock reading `now` and the process-wide counter.
    pub fn generate(now: SystemTime) -> QueueId {
        let micros = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros()
            & TIMESTAMP_MASK;
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFFF;
        QueueId(format!("{micros:013X}{counter:04X}"))
    }

    /// When the message arrived (the id's first 13 hex digits are microseconds since the Unix
    /// epoch).
    pub fn arrival_unix_seconds(&self) -> Option<u64> {
        let micros = u64::from_str_radix(self.0.get(..13)?, 16).ok()?;
        Some(micros / 1_000_000)
    }

    /// Parses an id: exactly 17 characters of `[0-9A-F]`, anything else is `None`.
    pub fn parse(text: &str) -> Option<QueueId> {
        let is_id = text.len() == QUEUE_ID_LENGTH
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        is_id.then(|| QueueId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The spool bucket (sub-directory of `active/`) of this id: its first two characters.
    pub fn bucket(&self) -> &str {
        self.0.get(..2).unwrap_or("")
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    #[test]
    fn generated_ids_are_well_formed_and_unique() {
        let now = UNIX_EPOCH + Duration::from_micros(0x0001_2345_6789_ABCD);
        let ids: BTreeSet<QueueId> = (0..1000).map(|_| QueueId::generate(now)).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(QueueId::parse(id.as_str()).as_ref(), Some(id));
            assert!(id.as_str().starts_with("123456789ABCD"));
            assert_eq!(id.bucket(), "12");
            assert_eq!(id.to_string(), id.as_str());
        }
    }

    #[test]
    fn clock_before_epoch_does_not_panic() {
        let id = QueueId::generate(UNIX_EPOCH - Duration::from_secs(5));
        assert!(id.as_str().starts_with("0000000000000"));
    }

    #[test]
    fn parse_refuses_non_ids() {
        for text in [
            "",
            "0123456789ABCDEF",
            "0123456789ABCDEF01",
            "0123456789abcdef0",
            "0123456789ABCDEFG",
            "../3456789ABCDEF0",
            "0123456789ABCDE\u{e9}",
        ] {
            assert_eq!(QueueId::parse(text), None, "{text:?}");
        }
        assert!(QueueId::parse("0123456789ABCDEF0").is_some());
    }
}
