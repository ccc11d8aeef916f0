//! `Spool`: the [`Queue`] on files, readable with `ls` and `cat`.
//!
//! Layout under the root:
//! ```text
//! lock                            held (flock) by the one open Spool
//! tmp/<id>.msg, tmp/<id>.env      being received; purged by Spool::open
//! active/<bucket>/<id>.msg        the message bytes exactly as given (immutable)
//! active/<bucket>/<id>.env        the envelope record (crate::record), rewritten by update
//! hold/<id>.msg, hold/<id>.env    held by an operator: kept, never scheduled
//! done/<YYYY-MM-DD>.history       final envelopes of the messages finished that day (keep_history)
//! done/<id>.env                   the same, one file a message, as earlier versions wrote it
//! corrupt/                        unreadable entries, never deleted, with <name>.reason
//! state/<shelf>/<key>             small records beside the queue (spool/records.rs)
//! journal/seg-<n>                 SyncMode::Journal's preallocated segments (crate::journal)
//! ```
//!
//! In `SyncMode::Journal` (the default on Linux) `store` appends the message to the journal
//! instead and answers after its shared fdatasync; the message lives in memory until it is
//! delivered or, still queued, written as the files below by the checkpoint (`resident`).
//!
//! Durability contract of `store` (the 250 of the receiver waits for it), in `SyncMode::Fsync`:
//! write and fsync `tmp/<id>.msg`, write and fsync `tmp/<id>.env`, rename the message and then
//! the envelope into `active/<bucket>/`, and return only after an fsync of that directory which
//! began after the renames. The directory fsync is a group commit: every concurrent caller
//! fsyncs its own files, and the directory fsyncs are shared through the [`crate::dirsync`]
//! thread `petrel-dirsync`, so a burst of N stores costs N file fsyncs but only a few directory
//! fsyncs. In `SyncMode::Syncfs` (the default on Linux) the files are written and renamed
//! without their own fsyncs, and the shared pass is one `syncfs(2)` of the spool's filesystem,
//! which makes every file's data, inode and directory entry durable at once: a burst of N
//! stores costs a few syncfs calls in all; changes after delivery (`update`, `remove`,
//! `archive`) are then made durable by the next pass without waiting for it (see `settle`).
//! Because the envelope is renamed last, an `.msg` without `.env` in `active/` is an interrupted
//! store; `open` moves it to `corrupt/` (see `recovery`). `update` writes a new record in `tmp/`,
//! fsyncs it, renames it over the old one and group-commits the directory; `remove` unlinks the
//! envelope first, then the message, and group-commits too (so a delivered message does not
//! come back after a crash).
//!
//! One `Spool` per root at a time: `open` takes an exclusive lock on `<root>/lock`, because it
//! purges `tmp/` and quarantines half-stored entries, which would destroy the work of another
//! live spool. The caller must not update or remove one id from two threads at once (the
//! scheduler owns a message while it works on it).
//!
//! Failure policy: every IO error is returned (ENOSPC/EDQUOT as `QueueError::NoSpace`); a
//! failed store removes what it created, best-effort, and no id is returned. Nothing in
//! `active/` is ever deleted except by `remove`; unreadable entries go to `corrupt/`. Handles
//! untrusted bytes only as opaque message content; ids are validated before becoming paths.

mod files;
mod history;
mod places;
mod records;
mod recovery;
mod resident;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::SystemTime;

use crate::dirsync::{DirectorySyncer, sync_directory};
use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::id::QueueId;
use crate::{Loaded, NewMessage, Place, Queue, Residence, record};
use files::{create_new_file, create_private_dir, remove_if_present, remove_quietly};
use resident::{Checkpoint, Residents};

pub(crate) const TMP_DIR: &str = "tmp";
pub(crate) const ACTIVE_DIR: &str = "active";
pub(crate) const HOLD_DIR: &str = "hold";
pub(crate) const CORRUPT_DIR: &str = "corrupt";
pub(crate) const MESSAGE_SUFFIX: &str = "msg";
pub(crate) const ENVELOPE_SUFFIX: &str = "env";

/// Room kept for the trace header a store prepends, when deciding whether a message fits the
/// journal.
const HEADER_ALLOWANCE: usize = 1024;

/// How many fresh ids `store` tries before giving up on a collision.
const MAX_ID_ATTEMPTS: usize = 16;

/// What [`Spool::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// Entries removed from `tmp/` (receives that never finished).
    pub purged_tmp: usize,
    /// Messages in `active/` with a readable envelope.
    pub active: usize,
    /// `(file name, reason)` of every file moved to `corrupt/`.
    pub quarantined: Vec<(String, String)>,
    /// `SyncMode::Journal` asked for, but its segment could not be made (a full disk): why.
    /// The spool then works as `SyncMode::Syncfs`.
    pub journal_unavailable: Option<String>,
}

/// The file spool: a [`Queue`] whose states are directories.
#[derive(Debug)]
pub struct Spool {
    /// `SyncMode::Journal`'s checkpoint thread, stopped (after a last pass) before the rest.
    _checkpoint: Option<Checkpoint>,
    /// `SyncMode::Journal`: messages in memory and the journal, not yet files.
    residents: Option<Arc<Residents>>,
    root: PathBuf,
    syncer: DirectorySyncer,
    /// Buckets whose directory entry in `active/` is known to be durable.
    durable_buckets: Arc<Mutex<BTreeSet<String>>>,
    /// Today's history file, appended to by `archive`.
    history: Mutex<history::HistoryLog>,
    /// The newest id on disk at open or made since: a fresh id above it cannot be taken, so
    /// only one that is not (a clock stepped back) is checked against the directories.
    newest_id: Mutex<Option<QueueId>>,
    /// Makes the temporary names of concurrent updates unique.
    update_sequence: AtomicU64,
    /// Holds the exclusive lock on `<root>/lock` while the spool is open.
    _lock: File,
    mode: SyncMode,
}

/// How stores are made durable before they return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Each file fsynced by its writer; directory fsyncs shared.
    Fsync,
    /// Files written without fsync; one shared `syncfs(2)` per group of stores (Linux).
    Syncfs,
    /// Messages appended to a preallocated journal with one shared `fdatasync` per group of
    /// stores; they become files only if still queued after 30 s (Linux; see
    /// `spool/resident.rs`).
    Journal,
}

impl Default for SyncMode {
    fn default() -> SyncMode {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            SyncMode::Journal
        } else {
            SyncMode::Fsync
        }
    }
}

impl Spool {
    /// Opens (creating if needed) the spool at `root`: purges `tmp/`, moves unusable entries
    /// of `active/` to `corrupt/` and starts the directory syncer thread.
    ///
    /// # Errors
    /// `QueueError::Io` when a directory cannot be created or read, the syncer thread cannot
    /// start, or another `Spool` holds the root (`ErrorKind::WouldBlock`).
    pub fn open(root: PathBuf) -> Result<(Spool, OpenReport), QueueError> {
        Spool::open_with(root, SyncMode::default())
    }

    /// `open` with a chosen [`SyncMode`].
    ///
    /// # Errors
    /// As `open`; `Syncfs` where the system has no syncfs is an `Unsupported` error.
    pub fn open_with(root: PathBuf, mode: SyncMode) -> Result<(Spool, OpenReport), QueueError> {
        fs::create_dir_all(&root)?;
        let lock = files::lock_spool(&root)?;
        let mut is_created = false;
        for dir in [TMP_DIR, ACTIVE_DIR, HOLD_DIR, CORRUPT_DIR, places::DONE_DIR] {
            is_created |= create_private_dir(&root.join(dir))?;
        }
        if is_created {
            sync_directory(&root)?;
        }
        let purged_tmp = recovery::purge_tmp(&root.join(TMP_DIR))?;
        let durable_buckets = Arc::new(Mutex::new(BTreeSet::new()));
        // The journal first: what it restores is then scanned like every other entry.
        let mut journal_unavailable = None;
        let (residents, checkpoint, mode) = if mode == SyncMode::Journal {
            match Residents::open(&root, Arc::clone(&durable_buckets))? {
                Ok((residents, checkpoint)) => (Some(residents), Some(checkpoint), mode),
                Err(error) => {
                    journal_unavailable = Some(error.to_string());
                    (None, None, SyncMode::Syncfs)
                }
            }
        } else {
            // Switched away from the journal: what it still holds becomes files first.
            resident::restore_only(&root)?;
            (None, None, mode)
        };
        let scan = recovery::scan_active(&root)?;
        // Makes the bucket entries found durable, so stores into them need no fsync of active/.
        sync_directory(&root.join(ACTIVE_DIR))?;
        durable_buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(scan.buckets);
        let syncer = DirectorySyncer::start(mode, &root)?;
        let spool = Spool {
            _checkpoint: checkpoint,
            residents,
            root,
            syncer,
            durable_buckets,
            history: Mutex::default(),
            newest_id: Mutex::default(),
            update_sequence: AtomicU64::new(0),
            _lock: lock,
            mode,
        };
        let newest = Queue::list(&spool)?
            .into_iter()
            .chain(spool.list_place(Place::Held)?)
            .max();
        *spool
            .newest_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = newest;
        let report = OpenReport {
            purged_tmp,
            active: scan.active,
            quarantined: scan.quarantined,
            journal_unavailable,
        };
        Ok((spool, report))
    }

    /// The root directory of the spool.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `SyncMode::Journal`: how long a message stays in memory and the journal before it is
    /// written as files (30 s unless set); no effect in the other modes.
    pub fn set_resident_for(&self, time: std::time::Duration) {
        if let Some(residents) = &self.residents {
            residents.set_resident_for(time);
        }
    }

    /// How stores are made durable.
    pub fn sync_mode(&self) -> SyncMode {
        self.mode
    }

    /// True when writers fsync their own files (else the shared syncfs pass does).
    fn files_synced(&self) -> bool {
        self.mode == SyncMode::Fsync
    }

    /// Makes a change after delivery (an envelope update, a removal, an archive) durable: in
    /// `Fsync` mode now (a group-committed directory fsync); in `Syncfs` mode with the next
    /// shared pass, without waiting for it. Losing such a change in a crash can only make a
    /// recipient be tried again (at-least-once, RFC 5321 §6.1), never lose a message: the
    /// message and its envelope were durable when they were stored.
    pub(crate) fn settle(&self, directory: &Path) -> Result<(), QueueError> {
        match (self.mode, &self.residents) {
            (SyncMode::Fsync, _) => Ok(self.syncer.sync(directory)?),
            (SyncMode::Journal, Some(residents)) => {
                residents.settle();
                Ok(())
            }
            _ => {
                self.syncer.request(directory);
                Ok(())
            }
        }
    }

    /// Where the message bytes of `id` live while it is active.
    pub fn message_path(&self, id: &QueueId) -> PathBuf {
        self.bucket_dir(id).join(format!("{id}.{MESSAGE_SUFFIX}"))
    }

    /// Where the envelope record of `id` lives while it is active.
    pub fn envelope_path(&self, id: &QueueId) -> PathBuf {
        self.bucket_dir(id).join(format!("{id}.{ENVELOPE_SUFFIX}"))
    }

    /// How many shared directory fsync passes the syncer has completed (for tests and metrics).
    pub fn directory_sync_passes(&self) -> u64 {
        self.syncer.passes()
    }

    fn bucket_dir(&self, id: &QueueId) -> PathBuf {
        self.root.join(ACTIVE_DIR).join(id.bucket())
    }

    fn tmp_path(&self, id: &QueueId, suffix: &str) -> PathBuf {
        self.root.join(TMP_DIR).join(format!("{id}.{suffix}"))
    }

    /// Creates `active/<bucket>/` if needed and makes its entry durable before anyone uses it.
    fn ensure_bucket(&self, id: &QueueId) -> io::Result<PathBuf> {
        resident::ensure_bucket(&self.root, &self.durable_buckets, id)
    }

    /// Whether a message of `size` bytes goes to the journal (else it is stored as files).
    fn fits_journal(&self, size: usize) -> bool {
        self.residents
            .as_ref()
            .is_some_and(|r| size + HEADER_ALLOWANCE <= r.journal.max_entry())
    }

    /// The resident table when it holds `id`.
    fn resident(&self, id: &QueueId) -> Option<&Residents> {
        self.residents.as_deref().filter(|r| r.contains(id))
    }

    /// Makes a resident `id` files before an operation that works on files.
    fn materialize(&self, id: &QueueId) -> Result<(), QueueError> {
        if let Some(residents) = self.resident(id) {
            residents.materialize_now(id)?;
        }
        Ok(())
    }

    /// `SyncMode::Journal`'s store: the message goes to the journal and the resident table;
    /// `done` runs once the journal entry is durable. Gives `message` back when it is too
    /// large for the journal (stored as files instead).
    fn store_in_journal<'m>(
        &self,
        residents: &Arc<Residents>,
        envelope: &Envelope,
        message: &'m NewMessage<'m>,
        done: crate::StoreDone,
    ) -> Option<crate::StoreDone> {
        // A message that came in streamed (`rest`) is large: it is stored as files.
        if message.rest.is_some() || !self.fits_journal(message.content.len()) {
            return Some(done);
        }
        let id = match self.fresh_id(residents) {
            Ok(id) => id,
            Err(error) => {
                done(Err(error));
                return None;
            }
        };
        let header = (message.header)(&id);
        let mut bytes = Vec::with_capacity(header.len() + message.content.len());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(message.content);
        let bytes = Arc::new(bytes);
        residents.insert(&id, envelope, Arc::clone(&bytes));
        let for_commit = Arc::clone(residents);
        let committed_id = id.clone();
        residents.journal.append(
            id.to_string(),
            record::encode(&id, envelope),
            bytes,
            Box::new(move |result| match result {
                Ok(entry) => {
                    for_commit.committed(&committed_id, entry);
                    done(Ok(committed_id));
                }
                Err(error) => {
                    for_commit.discard(&committed_id);
                    done(Err(error.into()));
                }
            }),
        );
        None
    }

    /// An id neither resident nor on disk.
    fn fresh_id(&self, residents: &Residents) -> Result<QueueId, QueueError> {
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = QueueId::generate(SystemTime::now());
            let is_newest = {
                let mut newest = self
                    .newest_id
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let is_newest = newest.as_ref().is_none_or(|n| id > *n);
                if is_newest {
                    *newest = Some(id.clone());
                }
                is_newest
            };
            if is_newest {
                return Ok(id);
            }
            let on_disk = [
                self.envelope_path(&id),
                self.place_path(&id, Place::Held, ENVELOPE_SUFFIX),
            ];
            if !residents.contains(&id) && !on_disk.iter().any(|path| path.exists()) {
                return Ok(id);
            }
        }
        Err(QueueError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no unused queue id found",
        )))
    }

    /// Picks a fresh id and creates `tmp/<id>.msg` for it; `create_new` makes the id ours.
    fn reserve_id(&self) -> Result<(QueueId, File), QueueError> {
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = QueueId::generate(SystemTime::now());
            let file = match create_new_file(&self.tmp_path(&id, MESSAGE_SUFFIX)) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error.into()),
            };
            // A clock stepped backwards could repeat an id that is still queued.
            if self.message_path(&id).exists() || self.envelope_path(&id).exists() {
                remove_quietly(&self.tmp_path(&id, MESSAGE_SUFFIX));
                continue;
            }
            return Ok((id, file));
        }
        Err(QueueError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no unused queue id found",
        )))
    }

    /// The part of `store` after the id is reserved, up to the renames into `active/`; returns
    /// the bucket directory to group-commit. The caller cleans up on error.
    fn write_reserved(
        &self,
        id: &QueueId,
        message_file: File,
        envelope: &Envelope,
        message: &NewMessage<'_>,
    ) -> io::Result<PathBuf> {
        let header = (message.header)(id);
        let is_synced = self.files_synced();
        files::write_and_sync(
            message_file,
            &[header.as_bytes(), message.content],
            message.rest,
            is_synced,
        )?;
        let envelope_tmp = self.tmp_path(id, ENVELOPE_SUFFIX);
        files::write_new_file(&envelope_tmp, &record::encode(id, envelope), is_synced)?;
        let bucket_dir = self.ensure_bucket(id)?;
        fs::rename(self.tmp_path(id, MESSAGE_SUFFIX), self.message_path(id))?;
        fs::rename(&envelope_tmp, self.envelope_path(id))?;
        Ok(bucket_dir)
    }

    /// Every path a store of `id` may have created, envelope first (an active .msg without
    /// .env is harmless: it is quarantined at open).
    fn store_paths(&self, id: &QueueId) -> [PathBuf; 4] {
        [
            self.envelope_path(id),
            self.message_path(id),
            self.tmp_path(id, ENVELOPE_SUFFIX),
            self.tmp_path(id, MESSAGE_SUFFIX),
        ]
    }
}

impl Queue for Spool {
    fn store(&self, envelope: &Envelope, message: &NewMessage<'_>) -> Result<QueueId, QueueError> {
        if self.residents.is_some() {
            let (sender, receiver) = mpsc::channel();
            self.store_then(
                envelope,
                message,
                Box::new(move |result| {
                    let _ = sender.send(result);
                }),
            );
            return receiver
                .recv()
                .unwrap_or_else(|_| Err(QueueError::Io(io::Error::other("the journal stopped"))));
        }
        let (id, message_file) = self.reserve_id()?;
        let stored = self
            .write_reserved(&id, message_file, envelope, message)
            .and_then(|bucket_dir| self.syncer.sync(&bucket_dir));
        if let Err(error) = stored {
            for path in self.store_paths(&id) {
                remove_quietly(&path);
            }
            return Err(error.into());
        }
        Ok(id)
    }

    fn store_then(&self, envelope: &Envelope, message: &NewMessage<'_>, done: crate::StoreDone) {
        let done = match &self.residents {
            Some(residents) => match self.store_in_journal(residents, envelope, message, done) {
                Some(done) => done,
                None => return,
            },
            None => done,
        };
        let (id, message_file) = match self.reserve_id() {
            Ok(reserved) => reserved,
            Err(error) => return done(Err(error)),
        };
        let paths = self.store_paths(&id);
        match self.write_reserved(&id, message_file, envelope, message) {
            Ok(bucket_dir) => self.syncer.sync_then(
                &bucket_dir,
                Box::new(move |result| match result {
                    Ok(()) => done(Ok(id)),
                    Err(error) => {
                        for path in &paths {
                            remove_quietly(path);
                        }
                        done(Err(error.into()));
                    }
                }),
            ),
            Err(error) => {
                for path in &paths {
                    remove_quietly(path);
                }
                done(Err(error.into()));
            }
        }
    }

    fn try_store_then(
        &self,
        envelope: &Envelope,
        message: &NewMessage<'_>,
        done: crate::StoreDone,
    ) -> Option<crate::StoreDone> {
        match &self.residents {
            Some(residents) => self.store_in_journal(residents, envelope, message, done),
            None => Some(done),
        }
    }

    fn load_resident(&self, id: &QueueId) -> Option<Result<Loaded, QueueError>> {
        let envelope = self.residents.as_ref()?.envelope(id)?;
        Some(Ok(Loaded {
            envelope,
            residence: Residence::Memory,
        }))
    }

    fn list(&self) -> Result<Vec<QueueId>, QueueError> {
        // Residents first: one written as files meanwhile is then found as files.
        let mut ids = self.residents.as_ref().map(|r| r.ids()).unwrap_or_default();
        for bucket in fs::read_dir(self.root.join(ACTIVE_DIR))? {
            let bucket = bucket?;
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            let bucket_name = bucket.file_name();
            for entry in fs::read_dir(bucket.path())? {
                let name = entry?.file_name();
                let id = name
                    .to_str()
                    .and_then(|name| name.strip_suffix(ENVELOPE_SUFFIX))
                    .and_then(|stem| stem.strip_suffix('.'))
                    .and_then(QueueId::parse)
                    .filter(|id| bucket_name.to_str() == Some(id.bucket()));
                ids.extend(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn load(&self, id: &QueueId) -> Result<Loaded, QueueError> {
        if let Some(loaded) = self.load_resident(id) {
            return loaded;
        }
        Ok(Loaded {
            envelope: self.load_in(id, Place::Active)?,
            residence: Residence::Storage,
        })
    }

    fn load_in(&self, id: &QueueId, place: Place) -> Result<Envelope, QueueError> {
        if let Some(envelope) = self
            .residents
            .as_ref()
            .filter(|_| place == Place::Active)
            .and_then(|r| r.envelope(id))
        {
            return Ok(envelope);
        }
        let bytes = match places::read_in(self, id, place, ENVELOPE_SUFFIX) {
            Err(QueueError::NotFound(_)) if place == Place::Done => {
                return history::find(&self.root.join(places::DONE_DIR), id)?
                    .ok_or_else(|| QueueError::NotFound(id.to_string()));
            }
            other => other?,
        };
        let corrupt = |reason: String| QueueError::Corrupt {
            id: id.to_string(),
            reason,
        };
        let (named, envelope) =
            record::decode(&bytes).map_err(|error| corrupt(error.to_string()))?;
        if named != *id {
            return Err(corrupt(format!("envelope names another id {named}")));
        }
        Ok(envelope)
    }

    fn read_message(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        self.read_message_in(id, Place::Active)
    }

    fn read_message_in(&self, id: &QueueId, place: Place) -> Result<Vec<u8>, QueueError> {
        if let Some(message) = self
            .residents
            .as_ref()
            .filter(|_| place == Place::Active)
            .and_then(|r| r.message(id))
        {
            return Ok(message.as_ref().clone());
        }
        places::read_in(self, id, place, MESSAGE_SUFFIX)
    }

    /// `tmp/`, emptied at open.
    fn spill_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(TMP_DIR))
    }

    fn message_size_hint(&self, id: &QueueId) -> Option<u64> {
        self.message_size_in(id, Place::Active)
            .ok()
            .map(|size| size as u64)
    }

    /// A resident message's length, else its file's.
    fn message_size_in(&self, id: &QueueId, place: Place) -> Result<usize, QueueError> {
        if let Some(message) = self
            .residents
            .as_ref()
            .filter(|_| place == Place::Active)
            .and_then(|r| r.message(id))
        {
            return Ok(message.len());
        }
        places::size_in(self, id, place, MESSAGE_SUFFIX)
    }

    fn list_in(&self, place: Place) -> Result<Vec<QueueId>, QueueError> {
        if place == Place::Active {
            return self.list();
        }
        self.list_place(place)
    }

    fn envelopes_in(&self, place: Place) -> Result<Vec<(QueueId, Envelope)>, QueueError> {
        // Active: `list` and `load_in` include the residents.
        self.envelopes_of(place)
    }

    fn hold(&self, id: &QueueId) -> Result<(), QueueError> {
        self.materialize(id)?;
        self.move_entry(id, Place::Active, Place::Held)
    }

    fn release(&self, id: &QueueId) -> Result<(), QueueError> {
        self.move_entry(id, Place::Held, Place::Active)
    }

    fn archive(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        self.archive_entry(id, envelope)
    }

    fn purge_history(&self, keep: std::time::Duration) -> Result<usize, QueueError> {
        self.purge_done(keep)
    }

    fn records(&self) -> &dyn crate::Records {
        self
    }

    fn free_bytes(&self) -> Option<u64> {
        let stats = nix::sys::statvfs::statvfs(&self.root).ok()?;
        Some(
            stats
                .blocks_available()
                .saturating_mul(stats.fragment_size()),
        )
    }

    fn update(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        if self
            .residents
            .as_ref()
            .is_some_and(|r| r.update(id, envelope))
        {
            return Ok(());
        }
        let envelope_path = self.envelope_path(id);
        if let Err(error) = fs::symlink_metadata(&envelope_path) {
            return Err(not_found_or(id, error));
        }
        let sequence = self.update_sequence.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{id}.update-{sequence}"));
        let renamed =
            files::write_new_file(&tmp, &record::encode(id, envelope), self.files_synced())
                .and_then(|()| fs::rename(&tmp, &envelope_path));
        if let Err(error) = renamed {
            remove_quietly(&tmp);
            return Err(error.into());
        }
        self.settle(&self.bucket_dir(id))
    }

    fn remove(&self, id: &QueueId) -> Result<(), QueueError> {
        if self.residents.as_ref().is_some_and(|r| r.remove(id)) {
            return Ok(());
        }
        let had_envelope = remove_if_present(&self.envelope_path(id))?;
        let had_message = remove_if_present(&self.message_path(id))?;
        if !had_envelope && !had_message {
            return Err(QueueError::NotFound(id.to_string()));
        }
        self.settle(&self.bucket_dir(id))
    }

    fn quarantine(&self, id: &QueueId, reason: &str) -> Result<(), QueueError> {
        self.materialize(id)?;
        let mut is_moved = false;
        for path in [self.envelope_path(id), self.message_path(id)] {
            match fs::symlink_metadata(&path) {
                Ok(_) => {
                    recovery::move_to_corrupt(&self.root, &path, reason)?;
                    is_moved = true;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        if !is_moved {
            return Err(QueueError::NotFound(id.to_string()));
        }
        Ok(self.syncer.sync(&self.bucket_dir(id))?)
    }
}

fn not_found_or(id: &QueueId, error: io::Error) -> QueueError {
    if error.kind() == io::ErrorKind::NotFound {
        QueueError::NotFound(id.to_string())
    } else {
        error.into()
    }
}
