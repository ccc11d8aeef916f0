//! Small file-system helpers of the spool: private files and directories, durable writes,
//! quiet removal, the spool lock.
//!
//! Contract: files are created with mode 0600 and directories 0700 (mail is private);
//! `write_new_file` with `is_synced` returns only after the data is fsynced (without, the
//! caller's group commit makes it durable: `SyncMode::Syncfs`).
//!
//! Failure policy: IO errors are returned as they are; `remove_quietly` is the one place that
//! ignores them (best-effort cleanup on a path that is already failing). Handles no untrusted
//! bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `path`, which must not exist yet, with owner-only permissions.
pub(crate) fn create_new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes all of `parts`, in order, to `file`, and fsyncs its data and size when `is_synced`.
pub(crate) fn write_and_sync(
    mut file: File,
    parts: &[&[u8]],
    rest: Option<&Path>,
    is_synced: bool,
) -> io::Result<()> {
    for part in parts {
        file.write_all(part)?;
    }
    if let Some(rest) = rest {
        // File to file: the kernel copies (copy_file_range), no buffer of the message's size.
        io::copy(&mut File::open(rest)?, &mut file)?;
    }
    if is_synced { file.sync_all() } else { Ok(()) }
}

/// Creates `path` (which must not exist), writes `bytes` and fsyncs it when `is_synced`.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], is_synced: bool) -> io::Result<()> {
    write_and_sync(create_new_file(path)?, &[bytes], None, is_synced)
}

/// Creates directory `path` with owner-only permissions; `Ok(false)` when it already existed.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<bool> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes a file, ignoring every error: for cleanup after a failure already being reported.
pub(crate) fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Removes a file; `Ok(false)` when it did not exist.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Takes the exclusive lock on `<root>/lock`, held as long as the returned file is open.
///
/// # Errors
/// `WouldBlock` when another `Spool` (in this or another process) holds the lock.
pub(crate) fn lock_spool(root: &Path) -> io::Result<File> {
    let path = root.join("lock");
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("spool {} is in use by another Spool", root.display()),
        )),
        Err(fs::TryLockError::Error(error)) => Err(error),
    }
}
