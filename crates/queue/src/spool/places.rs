//! The spool's places besides `active/`: `hold/` (set aside by an operator, never scheduled)
//! and `done/` (the envelope and history of a finished message, kept for `queue show` until
//! `queue.keep_history` passes).
//!
//! Moves between places rename the envelope last into the destination and sync both
//! directories, so a crash leaves every file somewhere (at worst one half in `corrupt/` after
//! the next start), never lost. Ids are validated before they become paths.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::files::{remove_if_present, remove_quietly, write_new_file};
use super::{ACTIVE_DIR, ENVELOPE_SUFFIX, HOLD_DIR, MESSAGE_SUFFIX, Spool, TMP_DIR, not_found_or};
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

    /// Ids in `place`, sorted.
    pub(super) fn list_place(&self, place: Place) -> Result<Vec<QueueId>, QueueError> {
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

    /// Keeps the envelope of a finished message in `done/` and removes it from `active/`.
    pub(super) fn archive_entry(
        &self,
        id: &QueueId,
        envelope: &Envelope,
    ) -> Result<(), QueueError> {
        let tmp = self.root.join(TMP_DIR).join(format!("{id}.done"));
        let target = self.place_path(id, Place::Done, ENVELOPE_SUFFIX);
        let written = write_new_file(&tmp, &record::encode(id, envelope), self.files_synced())
            .and_then(|()| fs::rename(&tmp, &target));
        if let Err(error) = written {
            remove_quietly(&tmp);
            return Err(error.into());
        }
        self.settle(&self.root.join(DONE_DIR))?;
        crate::Queue::remove(self, id)
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
            if is_old && remove_if_present(&entry.path())? {
                purged += 1;
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
