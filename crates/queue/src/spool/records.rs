//! The spool's [`Records`]: one file per key under `<root>/state/<shelf>/`, replaced whole
//! through a temporary file in the same directory and a rename (readers see the old value or
//! the new). Not fsynced: records are caches that a lost write only makes refetch.
//!
//! Failure policy: IO errors are returned (ENOSPC as `QueueError::NoSpace`); a missing file is
//! no value. Keys are turned into safe file names by `records::file_name`.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::Spool;
use super::files::{create_private_dir, remove_quietly, write_new_file};
use crate::QueueError;
use crate::records::{Records, Shelf, file_name};

impl Spool {
    fn shelf_dir(&self, shelf: Shelf) -> PathBuf {
        self.root.join("state").join(shelf.as_str())
    }
}

impl Records for Spool {
    fn get(&self, shelf: Shelf, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        match fs::read(self.shelf_dir(shelf).join(file_name(key))) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn put(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<(), QueueError> {
        create_private_dir(&self.root.join("state"))?;
        let dir = self.shelf_dir(shelf);
        create_private_dir(&dir)?;
        let name = file_name(key);
        let sequence = self.update_sequence.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{name}.{sequence}.tmp"));
        let written = write_new_file(&temporary, value, false)
            .and_then(|()| fs::rename(&temporary, dir.join(&name)));
        if written.is_err() {
            remove_quietly(&temporary);
        }
        Ok(written?)
    }

    fn put_new(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<bool, QueueError> {
        create_private_dir(&self.root.join("state"))?;
        let dir = self.shelf_dir(shelf);
        create_private_dir(&dir)?;
        let path = dir.join(file_name(key));
        match write_new_file(&path, value, false) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => {
                remove_quietly(&path);
                Err(error.into())
            }
        }
    }

    fn values_with_prefix(&self, shelf: Shelf, prefix: &str) -> Result<Vec<Vec<u8>>, QueueError> {
        let wanted = file_name(prefix);
        let entries = match fs::read_dir(self.shelf_dir(shelf)) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let mut values = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.starts_with(&wanted)) {
                match fs::read(entry.path()) {
                    Ok(bytes) => values.push(bytes),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_is_replaced_whole() {
        let root = std::env::temp_dir().join(format!("petrel-records-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (spool, _) = Spool::open_with(root.clone(), crate::SyncMode::Fsync).unwrap();
        assert_eq!(spool.get(Shelf::MtaSts, "example.org").unwrap(), None);
        spool.put(Shelf::MtaSts, "example.org", b"first").unwrap();
        spool.put(Shelf::MtaSts, "Example.Org", b"second").unwrap();
        assert_eq!(
            spool.get(Shelf::MtaSts, "example.org").unwrap().as_deref(),
            Some(&b"second"[..])
        );
        spool.put(Shelf::MtaSts, "../escape", b"x").unwrap();
        assert!(root.join("state/mta-sts/%2E.%2Fescape").is_file());
        let leftovers = fs::read_dir(root.join("state/mta-sts")).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary file is left behind");
        assert!(
            spool
                .put_new(Shelf::TlsReports, "day/a.test/n1", b"1")
                .unwrap()
        );
        assert!(
            !spool
                .put_new(Shelf::TlsReports, "day/a.test/n1", b"2")
                .unwrap()
        );
        spool.put(Shelf::TlsReports, "day/a.test/n2", b"3").unwrap();
        spool.put(Shelf::TlsReports, "day/b.test/n1", b"4").unwrap();
        let mut values = spool
            .values_with_prefix(Shelf::TlsReports, "day/a.test/")
            .unwrap();
        values.sort();
        assert_eq!(values, [b"1".to_vec(), b"3".to_vec()]);
        drop(spool);
        let _ = fs::remove_dir_all(&root);
    }
}
