//! Maildir delivery (the Maildir format of D. J. Bernstein, as Dovecot and Courier read it):
//! write into `tmp/`, fsync, rename into `new/`, fsync `new/`.
//!
//! The message goes in with LF line ends (what Maildir readers expect) under `Return-Path:`
//! (RFC 5321 §4.4, S-TRACE-3) and `Delivered-To:`. Folder names come from
//! `petrel_proto::address::mailbox_folder`, which refuses anything that could leave the
//! Maildir. IO errors are returned, and the caller keeps the message queued.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use petrel_proto::trace::return_path_header;

static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One copy to write.
pub struct MaildirCopy<'a> {
    /// `<data_dir>/mail`.
    pub mail_root: &'a Path,
    /// Lower-case domain; already a valid domain name.
    pub domain: &'a str,
    /// From `mailbox_folder`: never empty, no `/`, no leading `.`.
    pub folder: &'a str,
    pub reverse_path: &'a str,
    pub delivered_to: &'a str,
    pub hostname: &'a str,
    /// The queued message, CR LF line ends.
    pub message: &'a [u8],
}

/// Writes the copy durably and returns the path of the file in `new/`.
///
/// # Errors
/// Any IO error; nothing is left in `new/` when one occurs.
pub fn deliver(copy: &MaildirCopy<'_>) -> io::Result<PathBuf> {
    let maildir = copy.mail_root.join(copy.domain).join(copy.folder);
    ensure_maildir(&maildir)?;
    let name = unique_name(copy.hostname);
    let tmp_path = maildir.join("tmp").join(&name);
    let new_path = maildir.join("new").join(&name);
    let result = write_file(&tmp_path, copy).and_then(|()| {
        fs::rename(&tmp_path, &new_path)?;
        sync_directory(&maildir.join("new"))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result.map(|()| new_path)
}

fn write_file(path: &Path, copy: &MaildirCopy<'_>) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    // Converted as it is written, through a small buffer: no copy of the message is made.
    let mut out = io::BufWriter::with_capacity(64 * 1024, file);
    write_lf(&mut out, return_path_header(copy.reverse_path).as_bytes())?;
    write_lf(
        &mut out,
        format!("Delivered-To: {}\r\n", copy.delivered_to).as_bytes(),
    )?;
    write_lf(&mut out, copy.message)?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

/// Creates `tmp/`, `new/`, `cur/` when missing, syncing each directory that gained an entry.
fn ensure_maildir(maildir: &Path) -> io::Result<()> {
    if maildir.join("new").is_dir() {
        return Ok(());
    }
    let mut created = Vec::new();
    let mut ancestor = Some(maildir);
    while let Some(dir) = ancestor {
        if dir.is_dir() {
            break;
        }
        created.push(dir.to_path_buf());
        ancestor = dir.parent();
    }
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub))?;
    }
    sync_directory(maildir)?;
    for dir in &created {
        if let Some(parent) = dir.parent() {
            sync_directory(parent)?;
        }
    }
    Ok(())
}

fn sync_directory(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// `<seconds>.M<micros>P<pid>Q<counter>.<host>`, unique per delivery on this host.
fn unique_name(hostname: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let counter = DELIVERY_COUNTER.fetch_add(1, Ordering::Relaxed);
    let host: String = hostname
        .chars()
        .map(|c| {
            if c == '/' || c == ':' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(
        "{}.M{}P{}Q{}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        counter
    )
}

/// Writes `content` with each CR LF turned into LF; other octets unchanged. (The header
/// lines written before a message end with CR LF, so no CR LF is split between two calls.)
fn write_lf(out: &mut impl Write, content: &[u8]) -> io::Result<()> {
    let mut rest = content;
    while let Some(at) = rest.windows(2).position(|pair| pair == b"\r\n") {
        out.write_all(&rest[..at])?;
        out.write_all(b"\n")?;
        rest = &rest[at + 2..];
    }
    out.write_all(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_lf_turns_only_crlf_into_lf() {
        let mut out = Vec::new();
        write_lf(&mut out, b"a\r\nb\r\r\nc\rd\ne\r").unwrap();
        assert_eq!(out, b"a\nb\r\nc\rd\ne\r");
    }

    #[test]
    fn delivers_with_lf_and_trace_headers() {
        let root = std::env::temp_dir().join(format!("petrel-maildir-{}", std::process::id()));
        let path = deliver(&MaildirCopy {
            mail_root: &root,
            domain: "example.org",
            folder: "alice",
            reverse_path: "bob@example.net",
            delivered_to: "alice+x@example.org",
            hostname: "mx/host:1",
            message: b"Subject: hi\r\n\r\nbody\r\n",
        })
        .unwrap();
        assert!(path.starts_with(root.join("example.org/alice/new")));
        assert!(!path.file_name().unwrap().to_string_lossy().contains('/'));
        assert_eq!(
            fs::read(&path).unwrap(),
            b"Return-Path: <bob@example.net>\nDelivered-To: alice+x@example.org\nSubject: hi\n\nbody\n"
        );
        assert_eq!(
            fs::read_dir(root.join("example.org/alice/tmp"))
                .unwrap()
                .count(),
            0
        );
        fs::remove_dir_all(root).unwrap();
    }
}
