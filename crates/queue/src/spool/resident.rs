//! `SyncMode::Journal`: messages that live in memory and in the journal (crate::journal) from
//! their 250 until they are delivered or a checkpoint makes them files, and the checkpoint
//! thread `petrel-checkpoint`.
//!
//! Why: most mail leaves the queue within milliseconds of arriving. Such a message costs one
//! shared fdatasync of the journal and nothing else on disk: no files are created, synced and
//! unlinked for it. A message still queued after `RESIDENT_FOR` (a deferral, a hold, a slow
//! peer), or every resident once half the journal is in use, is written as the usual `active/`
//! files by the checkpoint, which then syncs the file system once and releases its journal
//! entries; closing the spool does the same for all, so the spool at rest is files, as before.
//!
//! Contract: a resident message is durable from the moment its store callback runs (its
//! journal entry is fdatasynced). `update` of a resident changes the memory copy only (a crash
//! falls back to the stored envelope: a recipient may be tried again, never lost, as with
//! syncfs's lazy settle); `remove` drops it and writes a forget record with the next batch.
//! The checkpoint takes a snapshot, writes the files without holding the table lock, then moves
//! the message from the table to the files only if nobody changed it meanwhile (a version
//! number); otherwise it deletes what it wrote and tries again on its next pass.
//! Recovery (`restore`) runs at open before the active scan: every entry the journal still
//! holds gets its files back unless they are present and whole.
//!
//! Failure policy: a failed materialization leaves the message resident (and durable in the
//! journal) and is logged to nobody: it is tried again on the next pass. Handles untrusted
//! bytes only as opaque message content.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::files::{create_private_dir, remove_quietly, write_new_file};
use super::{ACTIVE_DIR, CORRUPT_DIR, ENVELOPE_SUFFIX, HOLD_DIR, MESSAGE_SUFFIX, TMP_DIR};
use crate::dirsync::{sync_directory, syncfs};
use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::journal::{EntryRef, Journal, Recovered, Sizes};
use crate::record;

/// How long a message may stay resident before the checkpoint makes it files: long enough for
/// a first attempt and a quick retry (a flush, a peer back after a moment) to need no files.
/// Memory is bounded by the journal's size, since a full half journal makes all residents files.
const RESIDENT_FOR: Duration = Duration::from_secs(30);
/// How often the checkpoint thread looks.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
const THREAD_NAME: &str = "petrel-checkpoint";
/// The journal's directory under the spool root.
pub(crate) const JOURNAL_DIR: &str = "journal";
/// Default journal sizes: 8 segments of 16 MiB.
pub(crate) const JOURNAL_SIZES: Sizes = Sizes {
    segment_size: 16 << 20,
    max_segments: 8,
};

/// A message held in memory and in the journal.
#[derive(Debug)]
pub(super) struct Resident {
    pub(super) envelope: Envelope,
    pub(super) message: Arc<Vec<u8>>,
    version: u64,
    since: Instant,
    /// Set once the journal entry is durable.
    entry: Option<EntryRef>,
}

/// The checkpoint thread's wake-up: a pass is wanted now (journal space) or the spool closes.
#[derive(Debug, Default)]
struct Wake {
    state: Mutex<WakeFlags>,
    condvar: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct WakeFlags {
    is_urgent: bool,
    is_stopping: bool,
}

impl Wake {
    fn lock(&self) -> MutexGuard<'_, WakeFlags> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The resident table, the journal, and what the checkpoint needs to write files.
#[derive(Debug)]
pub(crate) struct Residents {
    root: PathBuf,
    table: Mutex<HashMap<QueueId, Resident>>,
    pub(super) journal: Journal,
    buckets: Arc<Mutex<BTreeSet<String>>>,
    /// A change to files wants the next checkpoint's syncfs (`Spool::settle`).
    is_dirty: AtomicBool,
    /// `RESIDENT_FOR`, or what `Spool::set_resident_for` chose, in milliseconds.
    resident_for_ms: AtomicU64,
    /// Held while one message is written as files.
    materializing: Mutex<()>,
    /// Messages written as files whose sync failed: forgotten once a sync succeeds.
    unsettled: Mutex<Vec<(QueueId, EntryRef)>>,
    wake: Arc<Wake>,
    filesystem: File,
}

impl Residents {
    /// Recovers the journal under `root` (restoring the files of every entry it still holds),
    /// starts it and the checkpoint thread. The inner error: the journal could not start (its
    /// first segment cannot be made, say on a full disk); what it held is files by then.
    ///
    /// # Errors
    /// The journal cannot be read or a message cannot be restored.
    pub(super) fn open(
        root: &Path,
        buckets: Arc<Mutex<BTreeSet<String>>>,
    ) -> io::Result<io::Result<(Arc<Residents>, Checkpoint)>> {
        let dir = root.join(JOURNAL_DIR);
        let filesystem = File::open(root)?;
        let next_seq = take_back(root, &dir, &filesystem)?;
        Ok(Residents::start(root, &dir, next_seq, buckets, filesystem))
    }

    fn start(
        root: &Path,
        dir: &Path,
        next_seq: u64,
        buckets: Arc<Mutex<BTreeSet<String>>>,
        filesystem: File,
    ) -> io::Result<(Arc<Residents>, Checkpoint)> {
        let wake = Arc::new(Wake::default());
        let for_journal = Arc::clone(&wake);
        let journal = Journal::start(
            dir,
            JOURNAL_SIZES,
            next_seq,
            Box::new(move || {
                for_journal.lock().is_urgent = true;
                for_journal.condvar.notify_all();
            }),
        )?;
        let residents = Arc::new(Residents {
            root: root.to_owned(),
            table: Mutex::default(),
            journal,
            buckets,
            is_dirty: AtomicBool::new(false),
            resident_for_ms: AtomicU64::new(RESIDENT_FOR.as_millis() as u64),
            materializing: Mutex::default(),
            unsettled: Mutex::default(),
            wake,
            filesystem,
        });
        let for_thread = Arc::clone(&residents);
        let thread = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || for_thread.run_checkpoints())?;
        let checkpoint = Checkpoint {
            wake: Arc::clone(&residents.wake),
            thread: Some(thread),
        };
        Ok((residents, checkpoint))
    }

    fn table(&self) -> MutexGuard<'_, HashMap<QueueId, Resident>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a new message into the table (before its journal entry is durable).
    pub(super) fn insert(&self, id: &QueueId, envelope: &Envelope, message: Arc<Vec<u8>>) {
        self.table().insert(
            id.clone(),
            Resident {
                envelope: envelope.clone(),
                message,
                version: 0,
                since: Instant::now(),
                entry: None,
            },
        );
    }

    /// The journal entry of `id` is durable.
    pub(super) fn committed(&self, id: &QueueId, entry: EntryRef) {
        match self.table().get_mut(id) {
            Some(resident) => resident.entry = Some(entry),
            // Removed before its commit completed: nothing left to keep.
            None => self.journal.forget(&id.to_string(), entry),
        }
    }

    /// The store failed: the message was never acknowledged.
    pub(super) fn discard(&self, id: &QueueId) {
        self.table().remove(id);
    }

    pub(super) fn contains(&self, id: &QueueId) -> bool {
        self.table().contains_key(id)
    }

    /// Acknowledged residents (their journal entry is durable); one still being stored is
    /// nobody's to see yet.
    pub(super) fn ids(&self) -> Vec<QueueId> {
        self.table()
            .iter()
            .filter(|(_, r)| r.entry.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(super) fn envelope(&self, id: &QueueId) -> Option<Envelope> {
        self.table()
            .get(id)
            .filter(|r| r.entry.is_some())
            .map(|r| r.envelope.clone())
    }

    pub(super) fn message(&self, id: &QueueId) -> Option<Arc<Vec<u8>>> {
        self.table()
            .get(id)
            .filter(|r| r.entry.is_some())
            .map(|r| Arc::clone(&r.message))
    }

    /// Replaces the envelope of a resident; false when `id` is not resident.
    pub(super) fn update(&self, id: &QueueId, envelope: &Envelope) -> bool {
        let mut table = self.table();
        let Some(resident) = table.get_mut(id) else {
            return false;
        };
        resident.envelope = envelope.clone();
        resident.version += 1;
        true
    }

    /// Drops a resident; false when `id` is not resident.
    pub(super) fn remove(&self, id: &QueueId) -> bool {
        let Some(resident) = self.table().remove(id) else {
            return false;
        };
        if let Some(entry) = resident.entry {
            self.journal.forget(&id.to_string(), entry);
        }
        true
    }

    /// How long a message stays resident before the checkpoint makes it files.
    pub(super) fn set_resident_for(&self, time: Duration) {
        let ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
        self.resident_for_ms.store(ms, Ordering::Relaxed);
    }

    /// A change to files (an update, a removal) to make durable with the next checkpoint.
    pub(super) fn settle(&self) {
        self.is_dirty.store(true, Ordering::Release);
    }

    /// Makes `id` files now (for an operation on files: hold, quarantine), synced. False
    /// when it is not resident.
    ///
    /// # Errors
    /// The files cannot be written (the message stays resident) or synced (they are, and the
    /// journal keeps the message until a later checkpoint's sync succeeds).
    pub(super) fn materialize_now(&self, id: &QueueId) -> io::Result<bool> {
        // A concurrent update makes a pass give up; it is tried again.
        for _ in 0..3 {
            let Some(entry) = self.materialize(id)? else {
                if self.contains(id) {
                    continue;
                }
                return Ok(false);
            };
            self.settle_files(entry.into_iter().map(|e| (id.clone(), e)).collect())?;
            return Ok(true);
        }
        Err(io::Error::other(
            "the message changed while being written; try again",
        ))
    }

    /// Syncs the file system and forgets the journal entries of messages that are files now
    /// (with those of earlier passes whose sync failed).
    fn settle_files(&self, written: Vec<(QueueId, EntryRef)>) -> io::Result<()> {
        let mut unsettled = self
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        unsettled.extend(written);
        syncfs(&self.filesystem)?;
        for (id, entry) in unsettled.drain(..) {
            // The files are the message's durable copy now: recovery must not restore it
            // from the journal (it may be delivered and removed later).
            self.journal.forget(&id.to_string(), entry);
        }
        Ok(())
    }

    /// Writes the files of resident `id` and takes it out of the table; `None` when it is not
    /// resident (or changed while being written: it stays resident), else its entry. One
    /// materialization at a time, so two never write the same id's files.
    fn materialize(&self, id: &QueueId) -> io::Result<Option<Option<EntryRef>>> {
        let _one = self
            .materializing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((envelope, message, version)) = self
            .table()
            .get(id)
            .filter(|r| r.entry.is_some())
            .map(|r| (r.envelope.clone(), Arc::clone(&r.message), r.version))
        else {
            return Ok(None);
        };
        let paths = write_files(
            &self.root,
            &self.buckets,
            id,
            &record::encode(id, &envelope),
            &message,
        )?;
        let mut table = self.table();
        let is_unchanged = table.get(id).is_some_and(|r| r.version == version);
        if !is_unchanged {
            drop(table);
            for path in &paths {
                remove_quietly(path);
            }
            return Ok(None);
        }
        let entry = table.remove(id).and_then(|r| r.entry);
        Ok(Some(entry))
    }

    fn run_checkpoints(&self) {
        loop {
            let WakeFlags {
                is_urgent,
                is_stopping,
            } = {
                let mut state = self.wake.lock();
                if !state.is_urgent && !state.is_stopping {
                    state = self
                        .wake
                        .condvar
                        .wait_timeout(state, CHECKPOINT_EVERY)
                        .map_or_else(|e| e.into_inner().0, |(s, _)| s);
                }
                let flags = *state;
                state.is_urgent = false;
                flags
            };
            let is_pressed = self.journal.live_segments() * 2 >= JOURNAL_SIZES.max_segments;
            self.checkpoint(is_urgent || is_pressed || is_stopping);
            if is_stopping {
                return;
            }
        }
    }

    /// One pass: residents older than `RESIDENT_FOR` (all with `is_all`) become files, the
    /// file system is synced once, and their journal entries are released.
    fn checkpoint(&self, is_all: bool) {
        let now = Instant::now();
        let resident_for = Duration::from_millis(self.resident_for_ms.load(Ordering::Relaxed));
        let due: Vec<QueueId> = self
            .table()
            .iter()
            .filter(|(_, r)| {
                r.entry.is_some() && (is_all || now.duration_since(r.since) >= resident_for)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut written = Vec::new();
        for id in due {
            if let Ok(Some(Some(entry))) = self.materialize(&id) {
                written.push((id, entry));
            }
        }
        let is_dirty = self.is_dirty.swap(false, Ordering::AcqRel);
        let is_unsettled = !self
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        let is_wanted = !written.is_empty() || is_dirty || is_unsettled;
        if is_wanted && self.settle_files(written).is_err() {
            // The files may not be durable: their journal entries stay (recovery would
            // restore them) and the settled changes wait for the next pass.
            self.is_dirty.store(true, Ordering::Release);
        }
        // Never waits, so the writer, even while it waits for space, cannot hold this up.
        self.journal.sync_forgets();
    }
}

/// The running checkpoint thread; dropping it runs a last pass over every resident.
#[derive(Debug)]
pub(super) struct Checkpoint {
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        self.wake.lock().is_stopping = true;
        self.wake.condvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Creates `active/<bucket>/` for `id` if needed, its entry made durable before use.
pub(super) fn ensure_bucket(
    root: &Path,
    buckets: &Mutex<BTreeSet<String>>,
    id: &QueueId,
) -> io::Result<PathBuf> {
    let dir = root.join(ACTIVE_DIR).join(id.bucket());
    let mut durable = buckets.lock().unwrap_or_else(PoisonError::into_inner);
    if !durable.contains(id.bucket()) {
        create_private_dir(&dir)?;
        sync_directory(&root.join(ACTIVE_DIR))?;
        durable.insert(id.bucket().to_owned());
    }
    Ok(dir)
}

/// Writes `active/<bucket>/<id>.msg` and `.env` through `tmp/` (message first, envelope last,
/// as a store does), without fsync; returns the two final paths.
fn write_files(
    root: &Path,
    buckets: &Mutex<BTreeSet<String>>,
    id: &QueueId,
    envelope: &[u8],
    message: &[u8],
) -> io::Result<[PathBuf; 2]> {
    let bucket = ensure_bucket(root, buckets, id)?;
    let mut finals: Vec<PathBuf> = Vec::with_capacity(2);
    for (suffix, bytes) in [(MESSAGE_SUFFIX, message), (ENVELOPE_SUFFIX, envelope)] {
        let tmp = root.join(TMP_DIR).join(format!("{id}.{suffix}"));
        remove_quietly(&tmp);
        let target = bucket.join(format!("{id}.{suffix}"));
        let written = write_new_file(&tmp, bytes, false).and_then(|()| fs::rename(&tmp, &target));
        if let Err(error) = written {
            remove_quietly(&tmp);
            for path in &finals {
                remove_quietly(path);
            }
            return Err(error);
        }
        finals.push(target);
    }
    let envelope_path = finals.pop().unwrap_or_default();
    let message_path = finals.pop().unwrap_or_default();
    Ok([message_path, envelope_path])
}

/// For a spool opened in another mode: gives every message the journal under `root` still
/// holds its files back, syncs, and invalidates the segments (a switch away from `journal`
/// loses nothing).
///
/// # Errors
/// The journal cannot be read, a message cannot be restored, or the sync fails.
pub(super) fn restore_only(root: &Path) -> io::Result<()> {
    let dir = root.join(JOURNAL_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    take_back(root, &dir, &File::open(root)?)?;
    crate::journal::invalidate(&dir)?;
    Ok(())
}

/// Reads the journal in `dir`, gives every entry it holds its files back and syncs the file
/// system on `filesystem` (when anything was restored); returns the next sequence number.
fn take_back(root: &Path, dir: &Path, filesystem: &File) -> io::Result<u64> {
    let (entries, next_seq) = Journal::recover(dir)?;
    if !entries.is_empty() {
        // One set for the whole recovery: each bucket directory is made (and synced) once.
        let buckets = Mutex::new(BTreeSet::new());
        for entry in &entries {
            restore(root, &buckets, entry)?;
        }
        syncfs(filesystem)?;
    }
    Ok(next_seq)
}

/// Gives a recovered entry its files back unless they are there and whole: an envelope that
/// decodes (it may be newer than the journal's) and the same message bytes.
fn restore(root: &Path, buckets: &Mutex<BTreeSet<String>>, entry: &Recovered) -> io::Result<()> {
    let Some(id) = QueueId::parse(&entry.id) else {
        return Ok(());
    };
    let corrupt = root
        .join(CORRUPT_DIR)
        .join(format!("{id}.{ENVELOPE_SUFFIX}"));
    if corrupt.exists() {
        return Ok(());
    }
    for dir in [root.join(ACTIVE_DIR).join(id.bucket()), root.join(HOLD_DIR)] {
        let envelope = dir.join(format!("{id}.{ENVELOPE_SUFFIX}"));
        let is_whole = fs::read(&envelope)
            .ok()
            .and_then(|bytes| record::decode(&bytes).ok())
            .is_some_and(|(named, _)| named == id);
        if !is_whole {
            continue;
        }
        let message = dir.join(format!("{id}.{MESSAGE_SUFFIX}"));
        if fs::read(&message).ok().as_deref() != Some(entry.message.as_slice()) {
            let tmp = root.join(TMP_DIR).join(format!("{id}.{MESSAGE_SUFFIX}"));
            remove_quietly(&tmp);
            write_new_file(&tmp, &entry.message, false)?;
            fs::rename(&tmp, &message)?;
        }
        return Ok(());
    }
    write_files(root, buckets, &id, &entry.envelope, &entry.message)?;
    Ok(())
}
