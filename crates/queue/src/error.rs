//! The one error type of the queue crate, with transient vs permanent made explicit.
//!
//! Contract: every fallible queue operation returns [`QueueError`]. `is_transient` decides the
//! caller's reaction: a transient error (disk full, an IO failure) means "try again later"
//! (a 4xx reply to the SMTP client, a deferred delivery); a permanent one (a corrupt entry, an
//! unknown id) will not go away by retrying.
//!
//! Failure policy: pure data, never panics. An `io::Error` meaning "no space left" or "quota
//! exceeded" becomes [`QueueError::NoSpace`] so the receiver can answer 452 4.3.1 for it.
//! Handles no untrusted bytes.

use std::fmt;
use std::io;

/// `ENOSPC` on Linux and the BSDs: no space left on device.
const ENOSPC: i32 = 28;
/// `EDQUOT` on Linux: disk quota exceeded.
const EDQUOT: i32 = 122;

/// Why a queue operation failed.
#[derive(Debug)]
pub enum QueueError {
    /// The file system is full or the quota is exhausted (transient: 452 4.3.1).
    NoSpace,
    /// Any other IO failure (transient).
    Io(io::Error),
    /// A queue entry exists but cannot be read as what it should be (permanent; the entry
    /// belongs in `corrupt/`).
    Corrupt {
        /// The queue id or file name of the entry.
        id: String,
        /// What was wrong with it.
        reason: String,
    },
    /// No entry with this queue id (permanent).
    NotFound(String),
    /// Another node took the message over after this node's lease on it ran out (shared queue):
    /// this node's change was not made, and it must stop working on the message.
    LeaseLost(String),
}

impl QueueError {
    /// Whether retrying later may succeed: true for [`QueueError::NoSpace`] and
    /// [`QueueError::Io`], false for [`QueueError::Corrupt`] and [`QueueError::NotFound`].
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::NoSpace | QueueError::Io(_) => true,
            QueueError::Corrupt { .. } | QueueError::NotFound(_) | QueueError::LeaseLost(_) => {
                false
            }
        }
    }
}

/// Whether an IO error means the file system (or the user's quota) is full.
pub(crate) fn is_no_space(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl From<io::Error> for QueueError {
    fn from(error: io::Error) -> QueueError {
        if is_no_space(&error) {
            QueueError::NoSpace
        } else {
            QueueError::Io(error)
        }
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NoSpace => f.write_str("no space left for the queue"),
            QueueError::Io(error) => write!(f, "queue IO error: {error}"),
            QueueError::Corrupt { id, reason } => {
                write!(f, "queue entry {id} is corrupt: {reason}")
            }
            QueueError::NotFound(id) => write!(f, "queue entry {id} not found"),
            QueueError::LeaseLost(id) => write!(
                f,
                "queue entry {id}: this node's lease ran out and another node took it over"
            ),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Io(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_errors_are_mapped() {
        for error in [
            io::Error::from_raw_os_error(ENOSPC),
            io::Error::from_raw_os_error(EDQUOT),
            io::Error::from(io::ErrorKind::StorageFull),
            io::Error::new(io::ErrorKind::StorageFull, "fsync of directory failed"),
        ] {
            assert!(matches!(QueueError::from(error), QueueError::NoSpace));
        }
        let other = QueueError::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(other, QueueError::Io(_)));
    }

    #[test]
    fn transience() {
        assert!(QueueError::NoSpace.is_transient());
        assert!(QueueError::Io(io::Error::other("x")).is_transient());
        assert!(!QueueError::NotFound("A".into()).is_transient());
        let corrupt = QueueError::Corrupt {
            id: "A".into(),
            reason: "bad".into(),
        };
        assert!(!corrupt.is_transient());
        assert_eq!(corrupt.to_string(), "queue entry A is corrupt: bad");
    }
}
