//! The write-ahead journal of `SyncMode::Journal`: a few preallocated segment files under
//! `<spool>/journal/`, written by one thread `petrel-journal` with one `fdatasync` per batch
//! (group commit), so the 250 of a message waits for a sequential overwrite of blocks that are
//! already allocated: no inode, no directory entry, no file-system-wide sync.
//!
//! Layout: `journal/seg-<n>` of `segment_size` bytes each, zero-filled when created. A segment
//! starts with a header (magic, a random nonce chosen each time the segment is (re)used, the
//! sequence number of its first record); records follow back to back, 8-byte aligned:
//! `magic, kind, nonce, seq, payload length, checksum, payload`. A record is valid only with the
//! segment's current nonce and a matching checksum, and the reader walks a segment from its
//! start by the lengths of valid records, stopping at the first invalid one: stale records of an
//! earlier use (another nonce), a torn tail (bad checksum) and message bytes (never read as a
//! header, since the walk skips payloads by length) all end the walk. The nonce is random, so a
//! message crafted to look like a record cannot become one after a segment is reused.
//!
//! Kinds: an *entry* (queue id, envelope record, message bytes) makes a message durable; a
//! *forget* (queue id) says the id needs no recovery from the journal any more (delivered, or
//! its files became durable). Recovery takes every entry without a later forget.
//!
//! Space: every entry holds its segment live until `release`; segments are reused oldest first
//! and only when nothing in them is live, so a forget is always in a segment newer than its
//! entry and is overwritten only after it. When no segment is free and `max_segments` exist,
//! the writer asks for a checkpoint (the spool makes its resident messages files, syncs the
//! file system and releases them) and waits for space. A new segment file is made ahead, by a
//! helper thread, once the current one is half written and no other is free: the writer does
//! not stop every store for 16 MiB of zeros and their sync when it needs one.
//!
//! Failure policy: a failed write or fdatasync fails every entry of that batch (the callers
//! answer 451), the next record opens a new segment, and each failed entry gets a forget
//! there (best effort: written with the next batch, so what may have reached the disk anyway
//! is not delivered after a restart, as its client will send it again; if that write fails
//! too, a restart may deliver it, a duplicate and never a loss); nothing here panics. Handles untrusted bytes only as opaque payload, and parses
//! its own files without trusting them (lengths are bounded by the segment).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

const THREAD_NAME: &str = "petrel-journal";
const AHEAD_THREAD_NAME: &str = "petrel-journal-ahead";
const SEGMENT_MAGIC: u32 = 0x5045_4a53; // "PEJS"
const RECORD_MAGIC: u32 = 0x5045_4a52; // "PEJR"
/// Segment header: magic u32, pad u32, nonce u64, first seq u64, pad to 32.
const SEGMENT_HEADER: u64 = 32;
/// Record header: magic u32, kind u8 + pad 3, nonce u64, seq u64, length u32, pad u32,
/// checksum u64.
const RECORD_HEADER: usize = 40;
const KIND_ENTRY: u8 = 1;
const KIND_FORGET: u8 = 2;
/// How long a batch waits for a checkpoint to free a segment when the disk is full.
const FULL_DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long after a failed attempt a new segment file is tried again (space may have returned).
const SEGMENT_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Where an entry lives, to release it when the message needs the journal no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryRef {
    segment: usize,
}

/// Called on the journal thread once an entry is durable (or failed).
pub(crate) type EntryDone = Box<dyn FnOnce(io::Result<EntryRef>) + Send>;

/// Called on the journal thread when it needs space: the spool should checkpoint at once.
pub(crate) type SpaceWanted = Box<dyn Fn() + Send + Sync>;

/// An entry found by recovery: not forgotten, so its message may need its files rewritten.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) id: String,
    pub(crate) envelope: Vec<u8>,
    pub(crate) message: Vec<u8>,
}

enum Pending {
    Entry {
        id: String,
        envelope: Vec<u8>,
        message: Arc<Vec<u8>>,
        done: EntryDone,
    },
    Forget(String),
}

impl Pending {
    /// The bytes its record takes in a segment.
    fn size(&self) -> usize {
        match self {
            Pending::Entry {
                id,
                envelope,
                message,
                ..
            } => record_size(8 + id.len() + envelope.len() + message.len()),
            Pending::Forget(id) => record_size(id.len()),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Segment {
    /// Entries written into it and not released.
    live: usize,
}

#[derive(Default)]
struct State {
    /// Entries and forget records to write.
    pending: Vec<Pending>,
    /// Forget records were written by a batch without an fdatasync and none followed yet.
    has_unsynced: bool,
    flush_wanted: u64,
    flushed: u64,
    segments: Vec<Segment>,
    is_stopping: bool,
    /// The writer waits for a segment to be released (`changed` wakes it).
    is_writer_waiting: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    /// Wakes flush callers and a writer waiting for space.
    changed: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The journal: `append` makes an entry durable through the writer thread.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    max_entry: usize,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal(max entry {} bytes)", self.max_entry)
    }
}

/// The sizes of a journal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) segment_size: u64,
    pub(crate) max_segments: usize,
}

impl Journal {
    /// Reads what the segments under `dir` hold (creating `dir` if needed): the entries not
    /// forgotten, oldest first. Call `start` after their messages are safe elsewhere.
    ///
    /// # Errors
    /// The directory or a segment cannot be read.
    pub(crate) fn recover(dir: &Path) -> io::Result<(Vec<Recovered>, u64)> {
        fs::create_dir_all(dir)?;
        let mut records = Vec::new();
        for path in segment_paths(dir)?.into_values() {
            read_segment(&fs::read(&path)?, &mut records);
        }
        records.sort_by_key(|record| record.seq);
        let next_seq = records
            .last()
            .map_or(1, |record| record.seq.saturating_add(1));
        let mut live: BTreeMap<String, (u64, Recovered)> = BTreeMap::new();
        for record in records {
            match record.kind {
                KIND_ENTRY => {
                    if let Some((id, envelope, message)) = split_entry(&record.payload) {
                        let entry = Recovered {
                            id: id.clone(),
                            envelope,
                            message,
                        };
                        live.insert(id, (record.seq, entry));
                    }
                }
                _ => {
                    if let Ok(id) = String::from_utf8(record.payload) {
                        live.remove(&id);
                    }
                }
            }
        }
        let mut entries: Vec<(u64, Recovered)> = live.into_values().collect();
        entries.sort_by_key(|(seq, _)| *seq);
        Ok((entries.into_iter().map(|(_, e)| e).collect(), next_seq))
    }

    /// Invalidates every segment under `dir` (what they held is safe elsewhere now), makes the
    /// first one when there is none, and starts the writer thread; sequence numbers continue
    /// from `next_seq`.
    ///
    /// # Errors
    /// A segment cannot be rewritten or made (no space for it), or the thread cannot start.
    pub(crate) fn start(
        dir: &Path,
        sizes: Sizes,
        next_seq: u64,
        space_wanted: SpaceWanted,
    ) -> io::Result<Journal> {
        let mut files = Vec::new();
        for (index, file) in invalidate(dir)? {
            // Used when numbered without a gap and of the size in use; the others stay
            // invalid (and are made again when their number comes).
            if index == files.len() && file.metadata()?.len() == sizes.segment_size {
                files.push(file);
            }
        }
        if files.is_empty() {
            files.push(create_segment(dir, 0, sizes.segment_size)?);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                segments: vec![Segment::default(); files.len()],
                ..State::default()
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
        });
        let mut writer = Writer {
            shared: Arc::clone(&shared),
            dir: dir.to_owned(),
            sizes,
            order: (0..files.len()).collect(),
            files,
            current: None,
            position: 0,
            nonce: 0,
            seq: next_seq,
            space_wanted,
            out_of_space_at: None,
            unsynced: BTreeSet::new(),
            ahead: None,
        };
        let thread = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || writer.run())?;
        let max_entry = usize::try_from(sizes.segment_size / 4).unwrap_or(usize::MAX);
        Ok(Journal {
            shared,
            thread: Some(thread),
            max_entry,
        })
    }

    /// The largest message the journal takes; larger ones are stored as files directly.
    pub(crate) fn max_entry(&self) -> usize {
        self.max_entry
    }

    /// Queues an entry; `done` runs on the journal thread once it is durable.
    pub(crate) fn append(
        &self,
        id: String,
        envelope: Vec<u8>,
        message: Arc<Vec<u8>>,
        done: EntryDone,
    ) {
        let mut state = lock(&self.shared);
        let is_first = state.pending.is_empty();
        state.pending.push(Pending::Entry {
            id,
            envelope,
            message,
            done,
        });
        // With something pending already the writer is awake or woken: no second wake-up.
        if is_first {
            self.shared.work.notify_one();
        }
    }

    /// Says `id` needs no recovery any more and releases its entry. The forget record is
    /// written at once (it survives the process; a crash of the machine before the next
    /// fdatasync may bring the message back: at-least-once), without a wait.
    pub(crate) fn forget(&self, id: &str, entry: EntryRef) {
        let mut state = lock(&self.shared);
        if state.pending.is_empty() {
            self.shared.work.notify_one();
        }
        state.pending.push(Pending::Forget(id.to_owned()));
        release_in(&mut state, entry);
        if state.is_writer_waiting {
            self.shared.changed.notify_all();
        }
    }

    /// Releases entries without forget records (tests: what a checkpoint does with forgets).
    #[cfg(test)]
    pub(crate) fn release_all(&self, entries: &[EntryRef]) {
        let mut state = lock(&self.shared);
        for entry in entries {
            release_in(&mut state, *entry);
        }
        self.shared.changed.notify_all();
    }

    /// Asks for an fdatasync of the forget records written without one (so a machine crash
    /// does not bring those messages back), without waiting; nothing when there are none.
    pub(crate) fn sync_forgets(&self) {
        let mut state = lock(&self.shared);
        if state.has_unsynced || !state.pending.is_empty() {
            state.flush_wanted += 1;
            self.shared.work.notify_one();
        }
    }

    /// Writes what is pending (forget records too) and waits for its fdatasync (tests).
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        let mut state = lock(&self.shared);
        state.flush_wanted += 1;
        let target = state.flush_wanted;
        self.shared.work.notify_one();
        while state.flushed < target && !state.is_stopping {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many segments hold live entries.
    pub(crate) fn live_segments(&self) -> usize {
        lock(&self.shared)
            .segments
            .iter()
            .filter(|s| s.live > 0)
            .count()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.shared);
            state.is_stopping = true;
            self.shared.work.notify_all();
            self.shared.changed.notify_all();
        }
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != thread::current().id()
        {
            // Dropped by the writer itself (its last callback held the last owner): it ends
            // on its own once nothing is pending.
            let _ = thread.join();
        }
    }
}

fn release_in(state: &mut State, entry: EntryRef) {
    if let Some(segment) = state.segments.get_mut(entry.segment) {
        segment.live = segment.live.saturating_sub(1);
    }
}

/// The writer thread's own state.
struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    sizes: Sizes,
    files: Vec<File>,
    /// Segments in the order they were taken into use, oldest first; the back is current.
    order: VecDeque<usize>,
    current: Option<usize>,
    position: u64,
    nonce: u64,
    seq: u64,
    space_wanted: SpaceWanted,
    /// When making another segment last failed (a full disk): until `SEGMENT_RETRY` has
    /// passed only the existing ones are used.
    out_of_space_at: Option<std::time::Instant>,
    /// Segments written by batches without an fdatasync since their last one.
    unsynced: BTreeSet<usize>,
    /// The segment file numbered `files.len()`, being made by a helper thread
    /// (`prepare_ahead`).
    ahead: Option<JoinHandle<io::Result<File>>>,
}

/// A batch's bytes for one segment, written with one pwrite.
struct Run {
    segment: usize,
    offset: u64,
    bytes: Vec<u8>,
}

impl Writer {
    fn run(&mut self) {
        loop {
            let (batch, flush_target) = {
                let mut state = lock(&self.shared);
                while !state.is_stopping
                    && state.pending.is_empty()
                    && state.flush_wanted == state.flushed
                {
                    state = self
                        .shared
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.is_stopping && state.pending.is_empty() {
                    drop(state);
                    if let Some(ahead) = self.ahead.take() {
                        // Its file is whole or removed when it ends; nothing waits on it.
                        let _ = ahead.join();
                    }
                    return;
                }
                // At most a segment's worth a batch, so a batch always fits in the journal
                // next to what is live; the rest waits for the next round.
                let mut bytes = 0usize;
                let budget = usize::try_from(self.sizes.segment_size).unwrap_or(usize::MAX);
                let take = state
                    .pending
                    .iter()
                    .take_while(|pending| {
                        bytes = bytes.saturating_add(pending.size());
                        bytes <= budget
                    })
                    .count()
                    .max(1)
                    .min(state.pending.len());
                let batch: Vec<Pending> = state.pending.drain(..take).collect();
                // Forget records alone are written without an fdatasync of their own.
                let has_entry = batch.iter().any(|p| matches!(p, Pending::Entry { .. }));
                let is_synced = has_entry || state.flush_wanted != state.flushed;
                (batch, is_synced.then_some(state.flush_wanted))
            };
            self.write_batch(batch, flush_target.is_some());
            let mut state = lock(&self.shared);
            state.has_unsynced = !self.unsynced.is_empty();
            let Some(flush_target) = flush_target else {
                continue;
            };
            state.flushed = state.flushed.max(flush_target);
            self.shared.changed.notify_all();
        }
    }

    /// Writes one batch; with `is_synced` fdatasyncs it and every segment an earlier batch
    /// wrote without one.
    fn write_batch(&mut self, batch: Vec<Pending>, is_synced: bool) {
        let mut runs: Vec<Run> = Vec::new();
        let mut written: Vec<(EntryDone, usize, String)> = Vec::new();
        let mut failed: Vec<(EntryDone, io::Error)> = Vec::new();
        for pending in batch {
            let size = pending.size();
            let (kind, head, envelope, message, done) = match pending {
                Pending::Entry {
                    id,
                    envelope,
                    message,
                    done,
                } => (
                    KIND_ENTRY,
                    entry_head(&id, &envelope),
                    envelope,
                    Some(message),
                    Some((done, id)),
                ),
                Pending::Forget(id) => (KIND_FORGET, id.into_bytes(), Vec::new(), None, None),
            };
            let parts: [&[u8]; 3] = [&head, &envelope, message.as_deref().map_or(&[], |m| m)];
            let segment = match self.place(size, &mut runs) {
                Ok(segment) => segment,
                Err(error) => {
                    if let Some((done, _)) = done {
                        failed.push((done, error));
                    }
                    continue;
                }
            };
            let Some(run) = runs.last_mut() else { continue };
            encode_record(&mut run.bytes, kind, self.nonce, self.seq, &parts);
            self.seq += 1;
            self.position += size as u64;
            if let Some((done, id)) = done {
                lock(&self.shared).segments[segment].live += 1;
                written.push((done, segment, id));
            }
        }
        let outcome = self.write_runs(&runs, is_synced);
        if outcome.is_err() {
            // What follows must not come after a hole the recovery walk would stop at: the
            // next record opens a segment with a new header.
            self.current = None;
        }
        for (done, segment, id) in written {
            match &outcome {
                Ok(()) => done(Ok(EntryRef { segment })),
                Err(error) => {
                    // The entries never became durable: nothing will release them. Their
                    // bytes may still reach the disk (a failed fdatasync says nothing of
                    // what did), so a forget follows, in the new segment: a restart must not
                    // deliver a message whose client was told 451 and will send it again.
                    let mut state = lock(&self.shared);
                    release_in(&mut state, EntryRef { segment });
                    // First in line: an entry that reuses the id can only come after
                    // `done` below, so after this forget.
                    state.pending.insert(0, Pending::Forget(id));
                    drop(state);
                    done(Err(io::Error::new(error.kind(), error.to_string())));
                }
            }
        }
        for (done, error) in failed {
            done(Err(error));
        }
        self.prepare_ahead();
    }

    /// Starts making the next segment file on a helper thread when the current segment is
    /// half written and no other segment is free, so that the writer finds it made when the
    /// current one fills.
    fn prepare_ahead(&mut self) {
        let Some(current) = self.current else { return };
        if self.ahead.is_some()
            || self.files.len() >= self.sizes.max_segments
            || self.position < self.sizes.segment_size / 2
            || !self.may_create()
        {
            return;
        }
        let is_other_free = {
            let state = lock(&self.shared);
            self.order
                .iter()
                .any(|&segment| segment != current && state.segments[segment].live == 0)
        };
        if is_other_free {
            return;
        }
        let (dir, index, size) = (self.dir.clone(), self.files.len(), self.sizes.segment_size);
        // Without a thread the writer makes the file itself when it needs it, as before.
        self.ahead = thread::Builder::new()
            .name(AHEAD_THREAD_NAME.to_owned())
            .spawn(move || create_segment(&dir, index, size))
            .ok();
    }

    /// Whether a new segment file may be tried: none failed for lack of space within
    /// `SEGMENT_RETRY`.
    fn may_create(&self) -> bool {
        self.out_of_space_at
            .is_none_or(|at| at.elapsed() >= SEGMENT_RETRY)
    }

    fn write_runs(&mut self, runs: &[Run], is_synced: bool) -> io::Result<()> {
        for run in runs {
            let file = &self.files[run.segment];
            file.write_all_at(&run.bytes, run.offset)?;
            self.unsynced.insert(run.segment);
        }
        if is_synced {
            for &segment in &self.unsynced {
                self.files[segment].sync_data()?;
            }
            self.unsynced.clear();
        }
        Ok(())
    }

    /// Makes room for a record of `size` bytes in the current run, switching segments when
    /// the current one is full; returns the segment.
    fn place(&mut self, size: usize, runs: &mut Vec<Run>) -> io::Result<usize> {
        let capacity = self.sizes.segment_size.saturating_sub(SEGMENT_HEADER);
        if size as u64 > capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "entry larger than a journal segment",
            ));
        }
        let fits = self
            .current
            .is_some_and(|_| self.position + size as u64 <= self.sizes.segment_size);
        if !fits {
            let segment = self.next_segment(runs)?;
            self.current = Some(segment);
            self.nonce = RandomState::new().build_hasher().finish() | 1;
            let mut header = Vec::with_capacity(SEGMENT_HEADER as usize);
            header.extend_from_slice(&SEGMENT_MAGIC.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            header.extend_from_slice(&self.nonce.to_le_bytes());
            header.extend_from_slice(&self.seq.to_le_bytes());
            header.resize(SEGMENT_HEADER as usize, 0);
            runs.push(Run {
                segment,
                offset: 0,
                bytes: header,
            });
            self.position = SEGMENT_HEADER;
        } else if runs
            .last()
            .is_none_or(|run| Some(run.segment) != self.current)
        {
            runs.push(Run {
                segment: self.current.unwrap_or(0),
                offset: self.position,
                bytes: Vec::new(),
            });
        }
        Ok(self.current.unwrap_or(0))
    }

    /// The segment to continue in: the oldest one when nothing in it is live, else a new file,
    /// else (all exist and are live) waits for a checkpoint to release some. With the disk full
    /// (no new file could be made) the wait is bounded: after `FULL_DISK_WAIT` the batch fails
    /// with "storage full", so its clients get 452 4.3.1 in seconds instead of no answer.
    fn next_segment(&mut self, runs: &[Run]) -> io::Result<usize> {
        let mut asked_at: Option<std::time::Instant> = None;
        loop {
            {
                let state = lock(&self.shared);
                let oldest = self.order.front().copied();
                // The current segment too, when it is the only one and nothing in it is live.
                if let Some(oldest) = oldest
                    && state.segments[oldest].live == 0
                    && !runs.iter().any(|run| run.segment == oldest)
                {
                    self.order.pop_front();
                    self.order.push_back(oldest);
                    return Ok(oldest);
                }
                if self.files.len() < self.sizes.max_segments && self.may_create() {
                    drop(state);
                    let index = self.files.len();
                    let made = match self.ahead.take() {
                        // Made ahead (or still being made: waits for it).
                        Some(ahead) => ahead.join().unwrap_or_else(|_| {
                            Err(io::Error::other("the journal's helper thread failed"))
                        }),
                        None => create_segment(&self.dir, index, self.sizes.segment_size),
                    };
                    match made {
                        Ok(file) => {
                            self.out_of_space_at = None;
                            self.files.push(file);
                            lock(&self.shared).segments.push(Segment::default());
                            self.order.push_back(index);
                            return Ok(index);
                        }
                        // Goes on with the segments it has, as if all were made.
                        Err(_) => self.out_of_space_at = Some(std::time::Instant::now()),
                    }
                    continue;
                }
                if state.is_stopping {
                    return Err(io::Error::other("the journal is stopping"));
                }
                if self.out_of_space_at.is_some()
                    && asked_at.is_some_and(|at| at.elapsed() >= FULL_DISK_WAIT)
                {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "every journal segment is in use and the disk has no room for another",
                    ));
                }
                if asked_at.is_some() {
                    let mut state = state;
                    state.is_writer_waiting = true;
                    let (mut next, _) = self
                        .shared
                        .changed
                        .wait_timeout(state, std::time::Duration::from_millis(100))
                        .unwrap_or_else(PoisonError::into_inner);
                    next.is_writer_waiting = false;
                }
            }
            if asked_at.is_none() {
                (self.space_wanted)();
                asked_at = Some(std::time::Instant::now());
            }
        }
    }
}

/// Makes `seg-<index>` of `size` zero bytes, durable with its directory entry; a partial file
/// is removed.
fn create_segment(dir: &Path, index: usize, size: u64) -> io::Result<File> {
    let path = dir.join(format!("seg-{index}"));
    let made = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let chunk = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..chunk])?;
            left -= chunk as u64;
        }
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(file)
    })();
    if made.is_err() {
        let _ = fs::remove_file(&path);
    }
    made
}

/// Zeroes the header of every segment under `dir` (what they held is safe elsewhere), so no
/// later recovery reads them again; returns them open, by number.
///
/// # Errors
/// A segment cannot be opened, written or synced.
pub(crate) fn invalidate(dir: &Path) -> io::Result<Vec<(usize, File)>> {
    let mut files = Vec::new();
    for (index, path) in segment_paths(dir)? {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        file.write_all_at(&[0u8; SEGMENT_HEADER as usize], 0)?;
        file.sync_data()?;
        files.push((index, file));
    }
    Ok(files)
}

/// `seg-<n>` files under `dir`, by n.
fn segment_paths(dir: &Path) -> io::Result<BTreeMap<usize, PathBuf>> {
    let mut paths = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(index) = index {
            paths.insert(index, entry.path());
        }
    }
    Ok(paths)
}

/// The id and envelope lengths in front of an entry's payload.
fn entry_head(id: &str, envelope: &[u8]) -> Vec<u8> {
    let mut head = Vec::with_capacity(8 + id.len());
    head.extend_from_slice(&(id.len() as u32).to_le_bytes());
    head.extend_from_slice(&(envelope.len() as u32).to_le_bytes());
    head.extend_from_slice(id.as_bytes());
    head
}

fn split_entry(payload: &[u8]) -> Option<(String, Vec<u8>, Vec<u8>)> {
    let id_length = u32_at(payload, 0)? as usize;
    let envelope_length = u32_at(payload, 4)? as usize;
    let id_end = 8usize.checked_add(id_length)?;
    let envelope_end = id_end.checked_add(envelope_length)?;
    let id = std::str::from_utf8(payload.get(8..id_end)?)
        .ok()?
        .to_owned();
    let envelope = payload.get(id_end..envelope_end)?.to_vec();
    let message = payload.get(envelope_end..)?.to_vec();
    Some((id, envelope, message))
}

fn record_size(payload: usize) -> usize {
    (RECORD_HEADER + payload).next_multiple_of(8)
}

fn encode_record(out: &mut Vec<u8>, kind: u8, nonce: u64, seq: u64, parts: &[&[u8]]) {
    let length: usize = parts.iter().map(|p| p.len()).sum();
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&nonce.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut sum = Checksum::new(&out[start..]);
    for part in parts {
        sum.add(part);
    }
    out.extend_from_slice(&sum.finish().to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out.resize(start + record_size(length), 0);
}

struct RawRecord {
    kind: u8,
    seq: u64,
    payload: Vec<u8>,
}

/// Appends the valid records of one segment's bytes to `records`.
fn read_segment(bytes: &[u8], records: &mut Vec<RawRecord>) {
    if u32_at(bytes, 0) != Some(SEGMENT_MAGIC) {
        return;
    }
    let Some(nonce) = u64_at(bytes, 8) else {
        return;
    };
    let mut position = SEGMENT_HEADER as usize;
    loop {
        let Some(header) = bytes.get(position..position + RECORD_HEADER) else {
            return;
        };
        let is_ours = u32_at(header, 0) == Some(RECORD_MAGIC) && u64_at(header, 8) == Some(nonce);
        let kind = header[4];
        let (Some(seq), Some(length), Some(sum)) =
            (u64_at(header, 16), u32_at(header, 24), u64_at(header, 32))
        else {
            return;
        };
        let length = length as usize;
        let start = position + RECORD_HEADER;
        let Some(payload) = start
            .checked_add(length)
            .and_then(|end| bytes.get(start..end))
        else {
            return;
        };
        let mut check = Checksum::new(&header[..32]);
        check.add(payload);
        if !is_ours || check.finish() != sum || !(kind == KIND_ENTRY || kind == KIND_FORGET) {
            return;
        }
        records.push(RawRecord {
            kind,
            seq,
            payload: payload.to_vec(),
        });
        position += record_size(length);
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

/// A fast 64-bit checksum of the bytes given in pieces (torn-write detection, not a MAC: the
/// nonce keeps crafted records out).
struct Checksum {
    state: u64,
    tail: Vec<u8>,
}

const PRIME: u64 = 0x9e37_79b9_7f4a_7c15;

impl Checksum {
    fn new(first: &[u8]) -> Checksum {
        let mut sum = Checksum {
            state: 0xcbf2_9ce4_8422_2325,
            tail: Vec::new(),
        };
        sum.add(first);
        sum
    }

    fn add(&mut self, mut bytes: &[u8]) {
        if !self.tail.is_empty() {
            let want = 8 - self.tail.len();
            let take = want.min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() == 8 {
                let word = u64::from_le_bytes([
                    self.tail[0],
                    self.tail[1],
                    self.tail[2],
                    self.tail[3],
                    self.tail[4],
                    self.tail[5],
                    self.tail[6],
                    self.tail[7],
                ]);
                self.mix(word);
                self.tail.clear();
            }
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        self.tail.extend_from_slice(chunks.remainder());
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(PRIME);
        self.state ^= self.state >> 29;
    }

    fn finish(mut self) -> u64 {
        let length = self.tail.len() as u64;
        let mut word = [0u8; 8];
        word[..self.tail.len()].copy_from_slice(&self.tail);
        self.mix(u64::from_le_bytes(word) ^ (length << 56));
        self.state
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;

/// Fuzzing the recovery walk (`crate::fuzzing::journal_segment`): the input read as a whole
/// segment, then as the entries of a segment this writer would make (their ids and bodies cut
/// from the input), torn at a point the input chooses. What the walk keeps of a torn segment
/// is exactly the records wholly before the tear, each split back into what was written.
pub(crate) fn fuzz_segment(input: &[u8]) {
    let mut records = Vec::new();
    read_segment(input, &mut records);
    for record in &records {
        let _ = split_entry(&record.payload);
    }
    let Some((&tear, rest)) = input.split_first() else {
        return;
    };
    let nonce = 0x5eed_u64 | 1;
    let mut segment = Vec::new();
    segment.extend_from_slice(&SEGMENT_MAGIC.to_le_bytes());
    segment.extend_from_slice(&0u32.to_le_bytes());
    segment.extend_from_slice(&nonce.to_le_bytes());
    segment.resize(SEGMENT_HEADER as usize, 0);
    let mut written = Vec::new();
    let mut ends = Vec::new();
    for (seq, chunk) in rest.chunks(37).enumerate() {
        let id = format!("ID{seq}");
        let (envelope, message) = chunk.split_at(chunk.len() / 2);
        let head = entry_head(&id, envelope);
        // A record is whole once its header and payload are there; its padding is not needed.
        let end = segment.len() + RECORD_HEADER + head.len() + envelope.len() + message.len();
        encode_record(
            &mut segment,
            KIND_ENTRY,
            nonce,
            seq as u64,
            &[&head, envelope, message],
        );
        written.push((id, envelope.to_vec(), message.to_vec()));
        ends.push(end);
    }
    let cut = segment.len() * usize::from(tear) / 255;
    let torn = &segment[..cut];
    let mut found = Vec::new();
    read_segment(torn, &mut found);
    let whole = ends.iter().filter(|&&end| end <= cut).count();
    assert_eq!(
        found.len(),
        whole,
        "records before the tear are kept, none after"
    );
    for (record, expected) in found.iter().zip(&written) {
        assert_eq!(split_entry(&record.payload).as_ref(), Some(expected));
    }
}
