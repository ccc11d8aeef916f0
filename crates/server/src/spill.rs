//! Streaming DATA (issue 18, item 1): the content of a message goes to a file in the queue's
//! spill directory as it arrives, so a session holds at most `SPILL_AT` octets of it (plus one
//! read) whatever the message size. The first part taken stays in memory as the message's
//! head: it holds the header section, which the end-of-data steps read and prepend to
//! (Received, Authentication-Results, Date and Message-ID of submission, DKIM-Signature); the
//! rest is in the file, which the queue copies after the head (`NewMessage::rest`).
//!
//! A message is only spilled once it passes `SPILL_AT`, so small messages (the common case and
//! the benchmark's 10 KiB) never touch this path. The steps that need the whole message at once
//! (DKIM checks and signing through mail-auth, milters, a queue without a spill directory) read
//! it back under the bound on message data in flight (`limits.max_data_memory`), waiting for
//! room.
//!
//! Failure policy: a write that fails (a full disk) drops the spill and the message is refused
//! with 452 4.3.1 at its end (the session goes on); the file is removed when the message is
//! stored, refused or abandoned, and anything left by a crash is removed when the queue opens.
//! Never panics.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Content a session holds before it writes it out (and the size of each write).
pub const SPILL_AT: usize = 64 * 1024;

/// The spilled part of the message being read.
#[derive(Debug, Default)]
pub struct Spill {
    /// The session's transaction this content belongs to (`ServerSession::transaction_number`).
    pub transaction: u64,
    /// The first content taken (the header section is in it).
    head: Vec<u8>,
    /// The file the content after the head goes to, made at the first write.
    file: Option<(PathBuf, std::fs::File)>,
    written: u64,
}

/// Where the rest of a stored message is: a spill file of this many octets.
#[derive(Debug)]
pub struct Rest {
    pub path: PathBuf,
    pub bytes: u64,
}

impl Drop for Rest {
    /// Removes the file: the queue has copied it, or the message was refused or read whole.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Spill {
    /// True once content was taken from the session for this message.
    pub fn is_active(&self) -> bool {
        !self.head.is_empty()
    }

    /// The octets the spill holds in memory (its head), for the bound on data in flight.
    pub fn memory_bytes(&self) -> usize {
        self.head.len()
    }

    /// Adds content taken from the session: the first part becomes the head, the rest is
    /// written to `dir/<name>.spill`.
    ///
    /// # Errors
    /// The write failed (no space, an IO error): the caller drops the spill and refuses the
    /// message.
    pub async fn push(
        &mut self,
        transaction: u64,
        dir: &Path,
        name: &str,
        part: Vec<u8>,
    ) -> std::io::Result<()> {
        if part.is_empty() {
            return Ok(());
        }
        if self.head.is_empty() {
            self.transaction = transaction;
            self.head = part;
            return Ok(());
        }
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let path = dir.join(format!("{name}.spill"));
                let opened = path.clone();
                let file = blocking(move || create_private(&opened)).await?;
                (path, file)
            }
        };
        let (path, mut file) = file;
        let length = part.len() as u64;
        let file = blocking(move || file.write_all(&part).map(|()| file)).await;
        match file {
            Ok(file) => {
                self.file = Some((path, file));
                self.written += length;
                Ok(())
            }
            Err(error) => {
                let _ = blocking(move || std::fs::remove_file(path)).await;
                Err(error)
            }
        }
    }

    /// Ends the spill with the message's last content: the head and, when content went to
    /// the file, the file with `tail` written after the rest.
    ///
    /// # Errors
    /// Writing the tail failed; the file is removed.
    pub async fn finish(mut self, tail: Vec<u8>) -> std::io::Result<(Vec<u8>, Option<Rest>)> {
        let Some((path, mut file)) = self.file.take() else {
            let mut head = std::mem::take(&mut self.head);
            head.extend_from_slice(&tail);
            return Ok((head, None));
        };
        let bytes = self.written + tail.len() as u64;
        let written = blocking(move || file.write_all(&tail)).await;
        if let Err(error) = written {
            let _ = blocking(move || std::fs::remove_file(path)).await;
            return Err(error);
        }
        Ok((std::mem::take(&mut self.head), Some(Rest { path, bytes })))
    }

    /// Drops what was spilled (the message was refused or abandoned).
    pub fn discard(&mut self) {
        self.head = Vec::new();
        self.written = 0;
        if let Some((path, _)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        // A session that ended in the middle of a message (disconnect, timeout).
        self.discard();
    }
}

/// Reads the whole message, the head then the rest, for a step that needs it at once.
///
/// # Errors
/// The file cannot be read.
pub async fn read_whole(head: Vec<u8>, rest: &Rest) -> std::io::Result<Vec<u8>> {
    let path = rest.path.clone();
    blocking(move || {
        let mut whole = head;
        let mut file = std::fs::File::open(path)?;
        std::io::Read::read_to_end(&mut file, &mut whole)?;
        Ok(whole)
    })
    .await
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(std::io::Error::other(error)))
}
