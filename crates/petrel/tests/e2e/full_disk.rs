//! A full disk (issue 18, item 2), on a real one: `data_dir` on a 16 MiB ext4 filesystem on a
//! loop device (the tests run as root), filled by four clients sending 100 KiB messages for
//! local mailboxes. Every reply is a 250 or a 4xx (the client's 60 s read timeout would catch a
//! reply that never comes), the server keeps answering (NOOP, `queue list`), accepts again once
//! space is freed, stops on SIGTERM within its grace period, and after a restart (and a queue
//! flush, for what the full Maildir deferred) every message that got a 250 is in the mailbox.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::harness::{Petrel, RawClient, Scratch};

/// A small ext4 filesystem on a loop device, mounted at `mount`; unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    fn new(image: &Path, mount: &Path, megabytes: u32) -> SmallDisk {
        let run = |program: &str, args: &[&str]| {
            let output = Command::new(program).args(args).output().unwrap();
            assert!(
                output.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(
            "truncate",
            &["-s", &format!("{megabytes}M"), image.to_str().unwrap()],
        );
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        std::fs::create_dir_all(mount).unwrap();
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                mount.to_str().unwrap(),
            ],
        );
        SmallDisk {
            mount: mount.to_owned(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn message(tag: &str) -> Vec<u8> {
    let mut text = format!("Subject: {tag}\r\nMessage-ID: <{tag}@full.test>\r\n\r\n");
    for _ in 0..1300 {
        text.push_str(&"y".repeat(76));
        text.push_str("\r\n");
    }
    text.push_str(&format!("tag {tag}\r\n"));
    text.into_bytes()
}

/// One message in its own session; the final reply.
fn send(address: std::net::SocketAddr, tag: &str) -> String {
    let mut client = RawClient::connect(address);
    client.reply();
    client.command("EHLO client.test");
    let reply = client.send_message("sender@localhost", &["user@localhost"], &message(tag));
    client.command("QUIT");
    reply
}

#[test]
fn a_full_disk_gets_4xx_answers_and_loses_no_acknowledged_message() {
    if !is_root() {
        panic!("this test needs root (a loop device), as CI runs it");
    }
    let dir = Scratch::new("full-disk");
    let disk = SmallDisk::new(&dir.0.join("disk.img"), &dir.0.join("data"), 16);
    // Room to give back later.
    std::fs::write(disk.mount.join("filler"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    // The file spool (with its journal) is what fills the disk; the PostgreSQL queue keeps
    // its data elsewhere.
    // No free-space reserve here: the disk itself runs out.
    let mut petrel = Petrel::start(&dir.0, "[queue]\nbackend = \"spool\"\nmin_free_bytes = 0\n");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (acked, refused, address) = (acked.clone(), refused.clone(), petrel.address);
            std::thread::spawn(move || {
                let mut refusals_in_a_row = 0;
                for n in 0..80 {
                    let tag = format!("m{worker}-{n}");
                    let reply = send(address, &tag);
                    if reply.starts_with("250") {
                        acked.lock().unwrap().push(tag);
                        refusals_in_a_row = 0;
                    } else {
                        assert!(reply.starts_with('4'), "{tag}: {reply:?}");
                        *refused.lock().unwrap() += 1;
                        refusals_in_a_row += 1;
                        if refusals_in_a_row >= 5 {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let mut acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    assert!(
        *refused.lock().unwrap() > 0,
        "the disk never filled: {} accepted",
        acked.len()
    );
    // The server still answers.
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    assert!(client.command("NOOP").starts_with("250"));
    client.command("QUIT");
    let (listed, _) = petrel.queue(&["list"]);
    assert!(listed, "queue list works on a full disk");
    // Space comes back: mail is accepted again, by itself.
    std::fs::remove_file(disk.mount.join("filler")).unwrap();
    let mut accepted_again = false;
    for attempt in 0..20 {
        let tag = format!("after-{attempt}");
        if send(petrel.address, &tag).starts_with("250") {
            accepted_again = true;
            acked.push(tag);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(accepted_again, "no 250 after space was freed");
    // SIGTERM stops it within the grace period (the harness waits at most 60 s).
    petrel.signal("TERM");
    assert_eq!(petrel.wait_exit(), Some(0), "{}", petrel.log_text());
    // Restarted, it delivers everything it acknowledged.
    let restarted = Petrel::start_with(&petrel.config_path, &petrel.data_dir, &[]);
    // Mail the full Maildir deferred is due again now, not at its next retry.
    let (flushed, said) = restarted.queue(&["flush"]);
    assert!(flushed, "{said}");
    // A Maildir write that meets the still nearly full disk defers; flushing again retries it
    // once earlier deliveries have freed their queue files.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut flushed_at = std::time::Instant::now();
    loop {
        if flushed_at.elapsed() > std::time::Duration::from_secs(3) {
            restarted.queue(&["flush"]);
            flushed_at = std::time::Instant::now();
        }
        let delivered: Vec<String> = restarted
            .maildir("localhost", "user")
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|tag| {
                // Maildir files end lines with LF.
                let line = format!("tag {tag}\n");
                !delivered
                    .iter()
                    .any(|m| m.replace("\r\n", "\n").contains(&line))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledged but not delivered after restart: {missing:?}\n{}",
            restarted.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(restarted);
    drop(disk);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `queue.min_free_bytes` (Postfix's queue_minfree): with a 6 MiB reserve on the 16 MiB disk,
/// MAIL gets 452 4.3.1 once less is free, so the disk never fills; freeing space lets mail in
/// again.
#[test]
fn the_free_space_reserve_refuses_mail_before_the_disk_is_full() {
    assert!(
        is_root(),
        "this test needs root (a loop device), as CI runs it"
    );
    let dir = Scratch::new("min-free");
    let disk = SmallDisk::new(&dir.0.join("disk.img"), &dir.0.join("data"), 16);
    std::fs::write(disk.mount.join("filler"), vec![0u8; 4 * 1024 * 1024]).unwrap();
    let reserve = 6 * 1024 * 1024;
    let petrel = Petrel::start(
        &dir.0,
        &format!("[queue]\nbackend = \"spool\"\nmin_free_bytes = {reserve}\n"),
    );
    let mut refusal = None;
    for n in 0..200 {
        let mut client = RawClient::connect(petrel.address);
        client.reply();
        client.command("EHLO client.test");
        let mail = client.command("MAIL FROM:<sender@localhost>");
        if !mail.starts_with("250") {
            refusal = Some(mail);
            break;
        }
        client.command("RCPT TO:<user@localhost>");
        assert!(client.command("DATA").starts_with("354"));
        client.send(&message(&format!("r{n}")));
        let reply = client.command(".");
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert_eq!(
        refusal.as_deref(),
        Some("452 4.3.1 Insufficient system storage, try again later\r\n")
    );
    let stats = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(&disk.mount)
        .output()
        .unwrap();
    let free: u64 = String::from_utf8_lossy(&stats.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        free > 4 * 1024 * 1024,
        "the reserve kept room: {free} bytes free"
    );
    assert!(petrel.log_text().contains("queue.min_free_bytes"));
    std::fs::remove_file(disk.mount.join("filler")).unwrap();
    assert!(send(petrel.address, "after").starts_with("250"));
    drop(petrel);
    drop(disk);
}
