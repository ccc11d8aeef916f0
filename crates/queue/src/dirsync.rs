//! Group commit of directory fsyncs: the `DirectorySyncer` and its background thread
//! `petrel-dirsync`. In `SyncMode::Syncfs` a pass is one `syncfs(2)` of the spool's
//! filesystem instead of one fsync per directory (it covers the callers' unsynced files too);
//! a failed syncfs fails every caller of that generation.
//!
//! Why: a message is durable only when its directory entry is, which needs an fsync of the
//! directory after the rename. One directory fsync per message would cap the receive rate at the
//! disk's flush rate; instead, callers that renamed at about the same time share one pass.
//!
//! Protocol (all under one mutex):
//! - `started` counts passes begun, `completed` passes finished, `pending` holds the
//!   directories registered since the last pass began.
//! - A caller, after its own rename, adds its directory to `pending`, takes
//!   `target = started + 1`, wakes the thread and sleeps until `completed >= target`.
//! - The thread waits for `pending` to be non-empty, takes the whole set and increments
//!   `started` (that is generation `g`), releases the lock, fsyncs every directory of the set,
//!   then records `completed = g` and wakes all callers.
//!
//! Correctness: registration and the taking of the set happen under the same lock, so the pass
//! numbered `target` is the first pass to begin after the caller registered (hence after its
//! rename), and it includes the caller's directory. A pass already running when the caller
//! registered began before the rename and is not trusted. Batching comes for free: while one
//! pass is in its fsync, every caller that registers joins the next one.
//!
//! Failure policy: when fsync of a directory fails, exactly the callers of that generation
//! that registered that directory get the error (kind and message preserved, so "no space"
//! stays recognisable); callers of other directories or generations are unaffected. The outcome
//! of a generation is kept until its last caller has read it. A poisoned mutex is recovered
//! (no code here panics while holding it). The thread stops when the syncer is dropped, after
//! draining what is pending. Handles no untrusted bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

/// Name of the background thread.
const THREAD_NAME: &str = "petrel-dirsync";

/// A directory whose fsync failed in one generation.
#[derive(Debug)]
struct SyncFailure {
    directory: PathBuf,
    kind: io::ErrorKind,
    message: String,
}

/// Called with the outcome of the pass that makes a directory durable.
pub(crate) type Callback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The outcome of one generation, kept while callers still have to read it.
#[derive(Default)]
struct Generation {
    waiters: usize,
    failures: Vec<SyncFailure>,
    /// `sync_then` callers: called by the thread once the pass is over.
    callbacks: Vec<(PathBuf, Callback)>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Generation({} waiting, {} callbacks, {} failures)",
            self.waiters,
            self.callbacks.len(),
            self.failures.len()
        )
    }
}

#[derive(Debug, Default)]
struct State {
    started: u64,
    completed: u64,
    pending: BTreeSet<PathBuf>,
    /// Callers (sync, sync_then) waiting for the next pass; a pass runs only for them, and
    /// `request`ed directories ride along.
    pending_waiters: usize,
    generations: BTreeMap<u64, Generation>,
    is_stopping: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the thread: work is pending or it should stop.
    work: Condvar,
    /// Wakes callers: a generation completed.
    done: Condvar,
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shares directory fsyncs between concurrent callers (group commit).
#[derive(Debug)]
pub(crate) struct DirectorySyncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What one pass does.
#[derive(Debug)]
enum Pass {
    /// fsync each pending directory.
    Directories,
    /// syncfs of the filesystem holding this open directory.
    Filesystem(File),
}

impl DirectorySyncer {
    /// Starts the background thread.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub(crate) fn start(mode: crate::SyncMode, root: &Path) -> io::Result<DirectorySyncer> {
        let pass = match mode {
            crate::SyncMode::Fsync => Pass::Directories,
            crate::SyncMode::Syncfs | crate::SyncMode::Journal => {
                Pass::Filesystem(File::open(root)?)
            }
        };
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || run(&for_thread, &pass))?;
        Ok(DirectorySyncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Returns once a directory fsync of `directory` that began after this call completed.
    ///
    /// The caller must have finished the directory operations (renames, unlinks) it wants to
    /// make durable before calling.
    ///
    /// # Errors
    /// The fsync of `directory` in that pass failed, or the syncer is stopping.
    pub(crate) fn sync(&self, directory: &Path) -> io::Result<()> {
        let mut state = lock(&self.shared.state);
        if state.is_stopping {
            return Err(io::Error::other("the directory syncer has stopped"));
        }
        state.pending.insert(directory.to_path_buf());
        state.pending_waiters += 1;
        let target = state.started + 1;
        state.generations.entry(target).or_default().waiters += 1;
        self.shared.work.notify_one();
        while state.completed < target {
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let mut result = Ok(());
        if let Some(generation) = state.generations.get_mut(&target) {
            if let Some(failure) = generation
                .failures
                .iter()
                .find(|failure| failure.directory == directory)
            {
                result = Err(io::Error::new(
                    failure.kind,
                    format!(
                        "fsync of directory {}: {}",
                        failure.directory.display(),
                        failure.message
                    ),
                ));
            }
            generation.waiters -= 1;
            if generation.waiters == 0 {
                state.generations.remove(&target);
            }
        }
        result
    }

    /// Like `sync`, without waiting: `done` is called from the syncer thread with the outcome of
    /// the first pass that began after this call (the caller's renames are done).
    pub(crate) fn sync_then(&self, directory: &Path, done: Callback) {
        let mut state = lock(&self.shared.state);
        if state.is_stopping {
            drop(state);
            return done(Err(io::Error::other("the directory syncer has stopped")));
        }
        state.pending.insert(directory.to_path_buf());
        state.pending_waiters += 1;
        let target = state.started + 1;
        state
            .generations
            .entry(target)
            .or_default()
            .callbacks
            .push((directory.to_path_buf(), done));
        self.shared.work.notify_one();
    }

    /// Adds `directory` to the next pass without waiting for it or starting one: it becomes
    /// durable with the next pass a caller waits for, or the last one when the syncer stops.
    pub(crate) fn request(&self, directory: &Path) {
        let mut state = lock(&self.shared.state);
        if !state.is_stopping {
            // No wake-up: the next pass someone waits for (or the last, at stop) covers it.
            state.pending.insert(directory.to_path_buf());
        }
    }

    /// How many directory fsync passes have completed.
    pub(crate) fn passes(&self) -> u64 {
        lock(&self.shared.state).completed
    }
}

impl Drop for DirectorySyncer {
    fn drop(&mut self) {
        lock(&self.shared.state).is_stopping = true;
        self.shared.work.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread never panics; if it did, there is nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// syncfs(2) of the filesystem that holds `directory` (Linux); elsewhere unsupported.
pub(crate) fn syncfs(directory: &File) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        nix::unistd::syncfs(directory.as_raw_fd()).map_err(io::Error::from)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = directory;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "syncfs is Linux-only",
        ))
    }
}

/// The background loop: one pass per batch of pending directories.
fn run(shared: &Shared, pass: &Pass) {
    let mut state = lock(&shared.state);
    loop {
        while state.pending_waiters == 0 && !state.is_stopping {
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.pending.is_empty() {
            return;
        }
        let directories = std::mem::take(&mut state.pending);
        state.pending_waiters = 0;
        state.started += 1;
        let generation = state.started;
        drop(state);

        let failures: Vec<SyncFailure> = match pass {
            Pass::Directories => directories
                .into_iter()
                .filter_map(|directory| match sync_directory(&directory) {
                    Ok(()) => None,
                    Err(error) => Some(SyncFailure {
                        directory,
                        kind: error.kind(),
                        message: error.to_string(),
                    }),
                })
                .collect(),
            Pass::Filesystem(root) => match syncfs(root) {
                Ok(()) => Vec::new(),
                Err(error) => directories
                    .into_iter()
                    .map(|directory| SyncFailure {
                        directory,
                        kind: error.kind(),
                        message: format!("syncfs: {error}"),
                    })
                    .collect(),
            },
        };

        state = lock(&shared.state);
        // Callbacks are answered now, outside the lock; waiters read the failures kept here.
        let callbacks = state
            .generations
            .get_mut(&generation)
            .map(|g| std::mem::take(&mut g.callbacks))
            .unwrap_or_default();
        let answers: Vec<(Callback, io::Result<()>)> = callbacks
            .into_iter()
            .map(|(directory, callback)| {
                let outcome = match failures.iter().find(|f| f.directory == directory) {
                    Some(failure) => Err(io::Error::new(
                        failure.kind,
                        format!(
                            "fsync of directory {}: {}",
                            failure.directory.display(),
                            failure.message
                        ),
                    )),
                    None => Ok(()),
                };
                (callback, outcome)
            })
            .collect();
        // Only a generation someone waits for keeps its failures (a `request` has no waiter).
        match state.generations.get_mut(&generation) {
            Some(waiting) if waiting.waiters > 0 => waiting.failures = failures,
            Some(_) => {
                state.generations.remove(&generation);
            }
            None => {}
        }
        state.completed = generation;
        shared.done.notify_all();
        if !answers.is_empty() {
            drop(state);
            for (callback, outcome) in answers {
                callback(outcome);
            }
            state = lock(&shared.state);
        }
    }
}

/// Makes the entries of `directory` durable.
pub(crate) fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn unique_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "petrel-queue-dirsync-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn concurrent_callers_share_passes_and_failures_reach_only_their_callers() {
        let dir = unique_dir("share");
        let missing = dir.join("does-not-exist");
        let syncer = DirectorySyncer::start(crate::SyncMode::Fsync, Path::new("/")).unwrap();
        thread::scope(|scope| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let syncer = &syncer;
                    let target = if i % 4 == 0 {
                        missing.clone()
                    } else {
                        dir.clone()
                    };
                    scope.spawn(move || (i, syncer.sync(&target)))
                })
                .collect();
            for handle in handles {
                let (i, result) = handle.join().unwrap();
                assert_eq!(result.is_err(), i % 4 == 0, "caller {i}: {result:?}");
                if let Err(error) = result {
                    assert_eq!(error.kind(), io::ErrorKind::NotFound);
                }
            }
        });
        assert!(syncer.passes() >= 1);
        assert!(syncer.passes() <= 32);
        assert!(lock(&syncer.shared.state).generations.is_empty());
        drop(syncer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drop_stops_the_thread() {
        let dir = unique_dir("drop");
        let syncer = DirectorySyncer::start(crate::SyncMode::Fsync, Path::new("/")).unwrap();
        syncer.sync(&dir).unwrap();
        assert_eq!(syncer.passes(), 1);
        drop(syncer);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
