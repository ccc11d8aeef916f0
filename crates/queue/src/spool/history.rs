//! The history of finished messages: `done/<YYYY-MM-DD>.history`, one append-only file a day
//! holding the final envelope records (crate::record, each ending with its `end` line) of the
//! messages archived that day (UTC). One file a day instead of one per message: a delivery
//! creates and later frees no inode for its history, which keeps ext4's inode allocator (and
//! its scan past recently freed inodes) out of the hot path.
//!
//! Records are appended with one write each under a lock; a torn last record (a crash in the
//! middle of a write) fails to decode and is skipped when reading, never stops the reading of
//! the others. `done/<id>.env` files of earlier versions are still read. Whole files are purged
//! when their last append is older than `queue.keep_history`. Handles bytes from disk that may
//! be damaged: never panics.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::record;

/// Ending of the daily history files.
pub(crate) const HISTORY_SUFFIX: &str = "history";

/// The open history file of the current day.
#[derive(Debug, Default)]
pub(crate) struct HistoryLog {
    open: Option<(String, File)>,
}

impl HistoryLog {
    /// Appends `record` to today's file in `done_dir`, fsyncing it when `is_synced`; returns
    /// true when the file was created (its directory entry then needs to become durable).
    pub(crate) fn append(
        &mut self,
        done_dir: &Path,
        bytes: &[u8],
        is_synced: bool,
    ) -> io::Result<bool> {
        let today = day_name(SystemTime::now());
        let mut is_created = false;
        if self.open.as_ref().is_none_or(|(day, _)| *day != today) {
            let path = done_dir.join(format!("{today}.{HISTORY_SUFFIX}"));
            is_created = !path.exists();
            let mut options = OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            self.open = Some((today, options.open(path)?));
        }
        if let Some((_, file)) = self.open.as_mut() {
            file.write_all(bytes)?;
            if is_synced {
                file.sync_data()?;
            }
        }
        Ok(is_created)
    }
}

/// The history files of `done_dir`, newest first.
pub(crate) fn files(done_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(done_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == HISTORY_SUFFIX))
        .collect();
    paths.sort();
    paths.reverse();
    Ok(paths)
}

/// Every readable record of one history file, in file order.
pub(crate) fn records(path: &Path) -> io::Result<Vec<(QueueId, Envelope)>> {
    Ok(parse(&fs::read(path)?))
}

/// The records of a history file's bytes; a torn or damaged one is skipped.
fn parse(bytes: &[u8]) -> Vec<(QueueId, Envelope)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        let line_end = bytes[index..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| index + p + 1);
        if &bytes[index..line_end] == b"end\n" {
            if let Ok(record) = record::decode(&bytes[start..line_end]) {
                out.push(record);
            }
            start = line_end;
        }
        index = line_end;
    }
    out
}

/// The latest record of `id` in the history files, if any.
pub(crate) fn find(done_dir: &Path, id: &QueueId) -> io::Result<Option<Envelope>> {
    let needle = format!("\nid {id}\n");
    for path in files(done_dir)? {
        let bytes = fs::read(&path)?;
        if !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            continue;
        }
        if let Some((_, envelope)) = records(&path)?
            .into_iter()
            .rev()
            .find(|(named, _)| named == id)
        {
            return Ok(Some(envelope));
        }
    }
    Ok(None)
}

/// `YYYY-MM-DD` (UTC) of `time`.
fn day_name(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    petrel_proto::trace::iso_date(i64::try_from(seconds).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(day_name(UNIX_EPOCH), "1970-01-01");
        assert_eq!(
            day_name(UNIX_EPOCH + Duration::from_secs(1_796_118_574)),
            "2026-12-01"
        );
        assert_eq!(
            day_name(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29"
        );
    }
}
