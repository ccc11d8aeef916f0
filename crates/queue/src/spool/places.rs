//! The spool's places besides `active/`: `hold/` (set aside by an operator, never scheduled)
//! and `done/` (the final envelope and history of a finished message, in the day's history file
//! (`history.rs`), kept for `queue show` until `queue.keep_history` passes).
//!
//! Moves between places rename the envelope last into the destination and sync both
//! directories, so a crash leaves every file somewhere (at worst one half in `corrupt/` after
//! the next start), never lost. Ids are validated before they become paths.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use std::collections::BTreeMap;
use std::sync::PoisonError;

use super::files::remove_if_present;
use super::history;
use super::{ACTIVE_DIR, ENVELOPE_SUFFIX, HOLD_DIR, MESSAGE_SUFFIX, Spool, not_found_or};
use crate::dirsync::sync_directory;
use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::id::QueueId;
use crate::{Place, record};

pub(crate) const DONE_DIR: &str = "done";

impl Spool {
    pub(super) fn place_dir(&self, id: &QueueId, place: Place) -> PathBuf {
        match place {
            Place::Active => self.root.join(ACTIVE_DIR).join(id.bucket()),
            Place::Held => self.root.join(HOLD_DIR),
            Place::Done => self.root.join(DONE_DIR),
        }
    }

    pub(super) fn place_path(&self, id: &QueueId, place: Place, suffix: &str) -> PathBuf {
        self.place_dir(id, place).join(format!("{id}.{suffix}"))
    }

    /// Ids in `place`, sorted (for `done/`, those of the history files too).
    pub(super) fn list_place(&self, place: Place) -> Result<Vec<QueueId>, QueueError> {
        let mut ids = self.list_files(place)?;
        if place == Place::Done {
            for path in history::files(&self.root.join(DONE_DIR))? {
                ids.extend(history::records(&path)?.into_iter().map(|(id, _)| id));
            }
            ids.sort();
            ids.dedup();
        }
        Ok(ids)
    }

    /// Ids with a `<id>.env` file in `place`, sorted.
    fn list_files(&self, place: Place) -> Result<Vec<QueueId>, QueueError> {
        if place == Place::Active {
            return crate::Queue::list(self);
        }
        let dir = match place {
            Place::Held => self.root.join(HOLD_DIR),
            _ => self.root.join(DONE_DIR),
        };
        let mut ids: Vec<QueueId> = fs::read_dir(dir)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name();
                let stem = name
                    .to_str()?
                    .strip_suffix(ENVELOPE_SUFFIX)?
                    .strip_suffix('.')?
                    .to_owned();
                QueueId::parse(&stem)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Moves both files of `id` from one place to another (active <-> held).
    pub(super) fn move_entry(
        &self,
        id: &QueueId,
        from: Place,
        to: Place,
    ) -> Result<(), QueueError> {
        let source = self.place_path(id, from, ENVELOPE_SUFFIX);
        if let Err(error) = fs::symlink_metadata(&source) {
            return Err(not_found_or(id, error));
        }
        if to == Place::Active {
            self.ensure_bucket(id)?;
        }
        for suffix in [MESSAGE_SUFFIX, ENVELOPE_SUFFIX] {
            fs::rename(
                self.place_path(id, from, suffix),
                self.place_path(id, to, suffix),
            )?;
        }
        sync_directory(&self.place_dir(id, to))?;
        sync_directory(&self.place_dir(id, from))?;
        Ok(())
    }

    /// Keeps the envelope of a finished message in today's `done/` history file and removes
    /// the message from `active/`.
    pub(super) fn archive_entry(
        &self,
        id: &QueueId,
        envelope: &Envelope,
    ) -> Result<(), QueueError> {
        let done_dir = self.root.join(DONE_DIR);
        let bytes = record::encode(id, envelope);
        let is_created = self
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&done_dir, &bytes, self.files_synced())?;
        if is_created || self.sync_mode() != crate::SyncMode::Fsync {
            self.settle(&done_dir)?;
        }
        crate::Queue::remove(self, id)
    }

    /// Envelopes in `place`; for `done/`, the per-message files and the history files
    /// (the latest record of an id wins).
    pub(super) fn envelopes_of(
        &self,
        place: Place,
    ) -> Result<Vec<(QueueId, Envelope)>, QueueError> {
        let mut found: BTreeMap<QueueId, Envelope> = BTreeMap::new();
        for id in self.list_files(place)? {
            if let Ok(envelope) = crate::Queue::load_in(self, &id, place) {
                found.insert(id, envelope);
            }
        }
        if place == Place::Done {
            // Oldest file first, so a later record of the same id replaces an earlier one.
            for path in history::files(&self.root.join(DONE_DIR))?.iter().rev() {
                for (id, envelope) in history::records(path)? {
                    found.insert(id, envelope);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Removes kept histories older than `keep`; returns how many.
    pub(super) fn purge_done(&self, keep: Duration) -> Result<usize, QueueError> {
        let Some(cutoff) = SystemTime::now().checked_sub(keep) else {
            return Ok(0);
        };
        let mut purged = 0;
        for entry in fs::read_dir(self.root.join(DONE_DIR))? {
            let entry = entry?;
            let is_old = entry.metadata()?.modified().is_ok_and(|m| m < cutoff);
            if !is_old {
                continue;
            }
            let path = entry.path();
            let is_history = path
                .extension()
                .is_some_and(|e| e == history::HISTORY_SUFFIX);
            // A history file's last append is older than `keep`: so is every record in it.
            let records = if is_history {
                history::records(&path).map_or(1, |r| r.len())
            } else {
                1
            };
            if remove_if_present(&path)? {
                purged += records;
            }
        }
        Ok(purged)
    }
}

/// Reads a file, `NotFound` for a missing one.
pub(super) fn read_in(
    spool: &Spool,
    id: &QueueId,
    place: Place,
    suffix: &str,
) -> Result<Vec<u8>, QueueError> {
    fs::read(spool.place_path(id, place, suffix))
        .map_err(|error: io::Error| not_found_or(id, error))
}

/// A file's size, `NotFound` for a missing one.
pub(super) fn size_in(
    spool: &Spool,
    id: &QueueId,
    place: Place,
    suffix: &str,
) -> Result<usize, QueueError> {
    fs::metadata(spool.place_path(id, place, suffix))
        .map(|metadata| usize::try_from(metadata.len()).unwrap_or(usize::MAX))
        .map_err(|error: io::Error| not_found_or(id, error))
}
