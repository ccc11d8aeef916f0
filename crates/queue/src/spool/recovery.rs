//! Start-up recovery of the file spool and the move of entries into `corrupt/`.
//!
//! Contract: `purge_tmp` empties `tmp/` (everything there belongs to a receive that never
//! finished, so no client got a 250 for it). `scan_active` checks every entry of `active/`:
//! - `<id>.msg` without `<id>.env`: a store interrupted between its two renames (the envelope
//!   is renamed last) or a remove interrupted between its unlinks (the envelope goes first)
//!   -> `corrupt/`, where it is kept rather than delivered again;
//! - `<id>.env` without `<id>.msg`, or an `.env` that does not decode or names another id ->
//!   `corrupt/` (with its message, if any);
//! - any other name, or a file in the wrong bucket -> `corrupt/`.
//!
//! Failure policy: nothing in the queue is ever deleted except `tmp/`. A move into `corrupt/`
//! never overwrites: a taken name gets a `.1`, `.2`, ... suffix. Each moved file gets a
//! `<name>.reason` text file beside it, written best-effort (the reason is also returned to the
//! caller for its log). IO errors while reading stop the scan and are returned. Reads envelope
//! files, which may be damaged, through the panic-free `record::decode`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::files::create_new_file;
use super::{ACTIVE_DIR, CORRUPT_DIR, ENVELOPE_SUFFIX, MESSAGE_SUFFIX};
use crate::dirsync::sync_directory;
use crate::id::QueueId;
use crate::record;

/// Reason given for an `.msg` without `.env`: a store crashed between its renames, or a
/// remove between its unlinks.
const ORPHAN_MESSAGE: &str = "message without envelope (interrupted store or remove)";

/// Highest numeric suffix tried for a free name in `corrupt/`.
const MAX_CORRUPT_SUFFIX: u32 = 10_000;

/// What the scan of `active/` found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Messages with a readable envelope.
    pub(super) active: usize,
    /// `(file name, reason)` of everything moved to `corrupt/`.
    pub(super) quarantined: Vec<(String, String)>,
    /// Bucket directories present.
    pub(super) buckets: BTreeSet<String>,
}

/// Removes everything in `tmp_dir`; returns how many entries were removed.
pub(super) fn purge_tmp(tmp_dir: &Path) -> io::Result<usize> {
    let mut count = 0;
    for entry in fs::read_dir(tmp_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
        count += 1;
    }
    if count > 0 {
        sync_directory(tmp_dir)?;
    }
    Ok(count)
}

/// Checks every entry of `<root>/active/`, moving what is unusable into `<root>/corrupt/`.
pub(super) fn scan_active(root: &Path) -> io::Result<Scan> {
    let active_dir = root.join(ACTIVE_DIR);
    let mut scan = Scan::default();
    for entry in fs::read_dir(&active_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !entry.file_type()?.is_dir() {
            let reason = "not a bucket directory";
            move_to_corrupt(root, &entry.path(), reason)?;
            scan.quarantined.push((lossy(&name), reason.to_owned()));
            continue;
        }
        scan_bucket(root, &entry.path(), &lossy(&name), &mut scan)?;
        scan.buckets.insert(lossy(&name));
    }
    if !scan.quarantined.is_empty() {
        sync_directory(&active_dir)?;
    }
    Ok(scan)
}

fn lossy(name: &OsString) -> String {
    name.to_string_lossy().into_owned()
}

/// Which files of one id a bucket holds.
#[derive(Default)]
struct Pair {
    has_message: bool,
    has_envelope: bool,
}

fn scan_bucket(root: &Path, bucket_dir: &Path, bucket: &str, scan: &mut Scan) -> io::Result<()> {
    let before = scan.quarantined.len();
    let mut pairs: BTreeMap<QueueId, Pair> = BTreeMap::new();
    for entry in fs::read_dir(bucket_dir)? {
        let name = entry?.file_name();
        let text = name.to_str().unwrap_or("");
        let parsed = text.split_once('.').and_then(|(stem, suffix)| {
            let id = QueueId::parse(stem).filter(|id| id.bucket() == bucket)?;
            Some((id, suffix))
        });
        match parsed {
            Some((id, MESSAGE_SUFFIX)) => pairs.entry(id).or_default().has_message = true,
            Some((id, ENVELOPE_SUFFIX)) => pairs.entry(id).or_default().has_envelope = true,
            _ => {
                let reason = "unexpected file name in a bucket";
                move_to_corrupt(root, &bucket_dir.join(&name), reason)?;
                scan.quarantined.push((lossy(&name), reason.to_owned()));
            }
        }
    }
    for (id, pair) in pairs {
        let message = bucket_dir.join(format!("{id}.{MESSAGE_SUFFIX}"));
        let envelope = bucket_dir.join(format!("{id}.{ENVELOPE_SUFFIX}"));
        let problem = match (pair.has_message, pair.has_envelope) {
            (true, false) => Some(ORPHAN_MESSAGE.to_owned()),
            (false, true) => Some("envelope without message".to_owned()),
            _ => check_envelope(&id, &envelope)?,
        };
        if let Some(reason) = problem {
            for path in [envelope, message] {
                if path.exists() {
                    move_to_corrupt(root, &path, &reason)?;
                    let name = path.file_name().map(OsString::from).unwrap_or_default();
                    scan.quarantined.push((lossy(&name), reason.clone()));
                }
            }
        } else {
            scan.active += 1;
        }
    }
    if scan.quarantined.len() > before {
        sync_directory(bucket_dir)?;
    }
    Ok(())
}

/// `Some(reason)` when the envelope file of `id` does not decode or names another id.
fn check_envelope(id: &QueueId, path: &Path) -> io::Result<Option<String>> {
    let bytes = fs::read(path)?;
    Ok(match record::decode(&bytes) {
        Err(error) => Some(format!("envelope unreadable: {error}")),
        Ok((named, _)) if named != *id => Some(format!("envelope names another id {named}")),
        Ok(_) => None,
    })
}

/// Moves `source` into `<root>/corrupt/` under a free name and writes `<name>.reason` beside it.
/// fsyncs `corrupt/`; the caller fsyncs the source's directory.
pub(super) fn move_to_corrupt(root: &Path, source: &Path, reason: &str) -> io::Result<()> {
    let corrupt_dir = root.join(CORRUPT_DIR);
    let name = source.file_name().map(OsString::from).unwrap_or_default();
    let target = move_without_overwrite(source, &corrupt_dir, &name)?;
    let mut reason_name = target.file_name().map(OsString::from).unwrap_or_default();
    reason_name.push(".reason");
    if let Ok(mut file) = create_new_file(&corrupt_dir.join(reason_name)) {
        // Best effort: the reason also goes to the caller's report and log.
        let _ = file
            .write_all(format!("{reason}\n").as_bytes())
            .and_then(|()| file.sync_all());
    }
    sync_directory(&corrupt_dir)
}

/// Moves `source` to `dir/name`, or `dir/name.N` for the first free N; never replaces a file.
fn move_without_overwrite(source: &Path, dir: &Path, name: &OsString) -> io::Result<PathBuf> {
    for suffix in 0..=MAX_CORRUPT_SUFFIX {
        let mut candidate = name.clone();
        if suffix > 0 {
            candidate.push(format!(".{suffix}"));
        }
        let target = dir.join(candidate);
        // A hard link fails atomically if the target exists, unlike rename.
        match fs::hard_link(source, &target) {
            Ok(()) => {
                fs::remove_file(source)?;
                return Ok(target);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            // Directories, or file systems without hard links: check, then rename.
            Err(_) if !target.exists() => {
                fs::rename(source, &target)?;
                return Ok(target);
            }
            Err(_) => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {} in {}", source.display(), dir.display()),
    ))
}
