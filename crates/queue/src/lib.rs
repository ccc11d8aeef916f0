//! petrel-queue: the durable mail queue where receiving and delivering meet.
//!
//! Contents: the [`Queue`] trait (storage behind a small interface; the scheduler decides when,
//! the queue only stores), [`QueueId`], the [`Envelope`] with per-recipient state, its versioned
//! text record ([`record`]) and the file [`Spool`] with its write-ahead journal (the default:
//! one shared fdatasync per group of messages) or group commit of directory fsyncs.
//! Depends on std and `petrel-proto` (for the typed ESMTP parameters and xtext) only.
//!
//! Failure policy: no panics; every failure is a [`QueueError`] that says whether it is
//! transient (4xx, retry) or permanent. Nothing queued is ever silently dropped: unreadable
//! entries are moved to `corrupt/`. Message bytes from peers are stored opaquely; envelope
//! records read from disk are parsed without trusting them.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod claims;
mod dirsync;
pub mod envelope;
pub mod error;
pub mod fuzzing;
pub mod id;
mod journal;
pub mod record;
pub mod records;
pub mod spool;
pub mod status;
pub mod sync;

use std::path::{Path, PathBuf};

pub use claims::Claims;
pub use envelope::{Envelope, Recipient, RecipientState};
pub use error::QueueError;
pub use id::QueueId;
pub use record::RecordError;
pub use records::{Records, Shelf};
pub use spool::{OpenReport, Spool, SyncMode};
pub use status::{Cause, DeliveryStatus, RemoteMta, Verdict};

/// Where a loaded message lives, which says what the calls that follow cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    /// In memory (the spool's journal): `read_message`, `update`, `remove` and `archive` of
    /// it need no disk, so a caller may make them on its own thread.
    Memory,
    /// In files or a database: make the calls on a blocking thread.
    Storage,
}

/// What `Queue::load` gives: the envelope and where the message lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub envelope: Envelope,
    pub residence: Residence,
}

/// Where a queued message is: being delivered, held by an operator, or finished (only its
/// envelope and history are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Active,
    Held,
    Done,
}

/// Called by `Queue::store_then` when a store is durable (or failed); must be quick (it runs on
/// the group-commit thread), e.g. send on a channel.
pub type StoreDone = Box<dyn FnOnce(Result<QueueId, QueueError>) + Send>;

/// A message to store: a header rendered once the queue id is known (the receiver's
/// `Received:` field names the id), then the content exactly as received: `content`, followed
/// by the whole of the file `rest` when there is one.
pub struct NewMessage<'a> {
    pub header: &'a (dyn Fn(&QueueId) -> String + Sync),
    pub content: &'a [u8],
    /// The rest of the content, written to a file in `Queue::spill_dir` as it arrived
    /// (issue 18: streaming DATA); the queue copies it and leaves the file to the caller.
    /// Only for a queue that has a `spill_dir`.
    pub rest: Option<&'a Path>,
}

impl<'a> NewMessage<'a> {
    /// A message stored as `content` alone, with no header added.
    pub fn without_header(content: &'a [u8]) -> NewMessage<'a> {
        NewMessage {
            header: &|_| String::new(),
            content,
            rest: None,
        }
    }
}

/// Durable storage of queued messages: each is immutable message bytes plus a mutable
/// [`Envelope`], named by a [`QueueId`].
///
/// Implementations are shared between threads (receiver sessions, the scheduler, the CLI).
/// A caller must not `update`, `remove` or `quarantine` one id from two places at once; the
/// scheduler owns a message while it works on it.
pub trait Queue: Send + Sync {
    /// Stores a new message durably: returns only when message, envelope and the directory
    /// entry are on disk, so the receiver may answer 250 (RFC 5321 §6.1).
    ///
    /// # Errors
    /// `QueueError::NoSpace` or `QueueError::Io` (both transient); what was written is removed
    /// again, best-effort, and no id is handed out.
    fn store(&self, envelope: &Envelope, message: &NewMessage<'_>) -> Result<QueueId, QueueError>;

    /// `store` without waiting: returns once the files are written and in place, and calls
    /// `done` (perhaps on another thread, from the group commit) when the message is durable,
    /// or with the error that kept it from being so. The default waits, then calls `done`.
    fn store_then(&self, envelope: &Envelope, message: &NewMessage<'_>, done: StoreDone) {
        done(self.store(envelope, message));
    }

    /// `store_then` when it needs no waiting on the calling thread (the spool's journal only
    /// queues the write): `None`, and `done` will be called. Otherwise `done` comes back and
    /// the caller runs `store_then` on a blocking thread. The default always gives it back.
    fn try_store_then(
        &self,
        _envelope: &Envelope,
        _message: &NewMessage<'_>,
        done: StoreDone,
    ) -> Option<StoreDone> {
        Some(done)
    }

    /// Where a receiver may write the content of a message as it arrives, to pass it to
    /// `store` as `NewMessage::rest`: a directory on the queue's own file system, emptied when
    /// the queue is opened. `None` when the queue takes content only from memory.
    fn spill_dir(&self) -> Option<PathBuf> {
        None
    }

    /// The size of message `id` when the queue knows it without reading the message or asking
    /// a server (a file's metadata, a message in memory), so that a caller can wait for room
    /// before reading a large one. `None` otherwise.
    fn message_size_hint(&self, _id: &QueueId) -> Option<u64> {
        None
    }

    /// The ids of all active messages, sorted.
    ///
    /// # Errors
    /// `QueueError::Io` when the queue cannot be read.
    fn list(&self) -> Result<Vec<QueueId>, QueueError>;

    /// Reads the envelope of message `id`, and says where the message lives.
    ///
    /// # Errors
    /// `QueueError::NotFound` for an unknown id, `QueueError::Corrupt` when the stored record
    /// does not decode (the caller should `quarantine` it), `QueueError::Io` otherwise.
    fn load(&self, id: &QueueId) -> Result<Loaded, QueueError>;

    /// `load`, when the queue can answer it from memory without waiting for a disk or a
    /// database (a message in the spool's journal); `None`: call `load` on a blocking thread.
    fn load_resident(&self, _id: &QueueId) -> Option<Result<Loaded, QueueError>> {
        None
    }

    /// Reads the message bytes of `id`, exactly as they were stored.
    ///
    /// # Errors
    /// `QueueError::NotFound` for an unknown id, `QueueError::Io` otherwise.
    fn read_message(&self, id: &QueueId) -> Result<Vec<u8>, QueueError>;

    /// Replaces the envelope of `id` durably (write a temporary file, fsync, rename over the
    /// old record, fsync the directory).
    ///
    /// # Errors
    /// `QueueError::NotFound` when `id` is not queued (it is not recreated), `QueueError::NoSpace`
    /// or `QueueError::Io` otherwise; then the old or the new record is in place.
    fn update(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError>;

    /// Removes message `id` (envelope first, then the message bytes) durably.
    ///
    /// # Errors
    /// `QueueError::NotFound` when neither file exists, `QueueError::Io` otherwise.
    fn remove(&self, id: &QueueId) -> Result<(), QueueError>;

    /// The ids in `place`, sorted.
    ///
    /// # Errors
    /// `QueueError::Io` when the place cannot be read.
    fn list_in(&self, place: Place) -> Result<Vec<QueueId>, QueueError>;

    /// Every readable envelope in `place` (unreadable ones are left out), for searches such as
    /// `queue show <Message-ID>`.
    ///
    /// # Errors
    /// `QueueError::Io` when the place cannot be read.
    fn envelopes_in(&self, place: Place) -> Result<Vec<(QueueId, Envelope)>, QueueError> {
        Ok(self
            .list_in(place)?
            .into_iter()
            .filter_map(|id| self.load_in(&id, place).ok().map(|e| (id, e)))
            .collect())
    }

    /// Every readable envelope in `place` with the size of its message (0 when it cannot be
    /// told), for `queue list`; a backend that can answers in one read.
    ///
    /// # Errors
    /// `QueueError::Io` when the place cannot be read.
    fn summaries_in(&self, place: Place) -> Result<Vec<(QueueId, Envelope, usize)>, QueueError> {
        Ok(self
            .envelopes_in(place)?
            .into_iter()
            .map(|(id, envelope)| {
                let size = self.message_size_in(&id, place).unwrap_or(0);
                (id, envelope, size)
            })
            .collect())
    }

    /// Reads the envelope of `id` in `place`.
    ///
    /// # Errors
    /// As [`Queue::load`].
    fn load_in(&self, id: &QueueId, place: Place) -> Result<Envelope, QueueError>;

    /// Reads the message of `id` in `place` (a finished message has none left).
    ///
    /// # Errors
    /// As [`Queue::read_message`].
    fn read_message_in(&self, id: &QueueId, place: Place) -> Result<Vec<u8>, QueueError>;

    /// The size in octets of the message of `id` in `place`, without reading it where the
    /// backend can tell (`queue list` shows it for every message).
    ///
    /// # Errors
    /// As [`Queue::read_message`].
    fn message_size_in(&self, id: &QueueId, place: Place) -> Result<usize, QueueError> {
        self.read_message_in(id, place).map(|message| message.len())
    }

    /// Sets `id` aside: it stays queued but is never scheduled until released.
    ///
    /// # Errors
    /// `QueueError::NotFound` when `id` is not active, `QueueError::Io` otherwise.
    fn hold(&self, id: &QueueId) -> Result<(), QueueError>;

    /// Puts a held message back into delivery.
    ///
    /// # Errors
    /// `QueueError::NotFound` when `id` is not held, `QueueError::Io` otherwise.
    fn release(&self, id: &QueueId) -> Result<(), QueueError>;

    /// Ends a message: its envelope (with history) is kept in `done/`, the rest removed.
    ///
    /// # Errors
    /// `QueueError::Io`; then the message is still active.
    fn archive(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError>;

    /// Removes kept histories older than `keep`; returns how many went.
    ///
    /// # Errors
    /// `QueueError::Io`.
    fn purge_history(&self, keep: std::time::Duration) -> Result<usize, QueueError>;

    /// The coordination half when several nodes share this queue (the PostgreSQL queue): then
    /// a node delivers a message only while it holds a claim on it, and looks for due mail with
    /// `Claims::claim_due` instead of walking `list`. `None` for a queue of one node.
    fn claims(&self) -> Option<&dyn Claims> {
        None
    }

    /// The small records kept beside the queue (MTA-STS policies), shared by every node that
    /// shares the queue.
    fn records(&self) -> &dyn Records;

    /// Bytes free for the queue on its filesystem (for the reserve below which new mail is
    /// refused); `None` when the queue keeps its data elsewhere (a database).
    fn free_bytes(&self) -> Option<u64> {
        None
    }

    /// Moves both files of `id` into `corrupt/` for a human to look at, with `reason`.
    ///
    /// # Errors
    /// `QueueError::NotFound` when neither file exists, `QueueError::Io` otherwise.
    fn quarantine(&self, id: &QueueId, reason: &str) -> Result<(), QueueError>;
}
