//! Durability (S-DATA-6): no message that got a 250 is lost when the server is SIGKILLed under
//! load, and the 250 is written only after the message file, its envelope and the queue
//! directory were fsynced (checked on the real system calls with strace).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Petrel, RawClient, Scratch, maildir_messages};

#[test]
fn sigkill_under_load_loses_no_acknowledged_message() {
    const CLIENTS: usize = 16;
    const KILL_AFTER: usize = 120;
    let scratch = Scratch::new("crash");
    let mut petrel = Petrel::start(&scratch.0, "");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for client in 0..CLIENTS {
        let (acknowledged, count, stop) = (acknowledged.clone(), count.clone(), stop.clone());
        let address = petrel.address;
        threads.push(std::thread::spawn(move || {
            let mut raw = RawClient::connect(address);
            raw.reply();
            raw.command("EHLO load.test");
            // Bounded: at most 1000 messages per client, and only until the kill.
            for n in 0..1000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let tag = format!("crash-{client}-{n}");
                let content = format!(
                    "Subject: {tag}\r\nX-Tag: {tag}\r\n\r\n{}\r\n",
                    "x".repeat(2000)
                );
                let reply = raw.send_message(
                    "load@example.test",
                    &["crash@localhost"],
                    content.as_bytes(),
                );
                if reply.starts_with("250 ") {
                    acknowledged.lock().unwrap().push(tag);
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    return;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < KILL_AFTER && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    petrel.child.kill().unwrap(); // SIGKILL
    petrel.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= KILL_AFTER,
        "only {} acknowledged",
        acknowledged.len()
    );

    let mut restarted = Petrel::start_with(&petrel.config_path, &petrel.data_dir, &[]);
    restarted.dns = petrel.dns.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        seen.clear();
        for file in maildir_messages(&restarted.data_dir, "localhost", "crash") {
            let text = String::from_utf8_lossy(&file);
            if let Some(tag) = text.lines().find_map(|l| l.strip_prefix("X-Tag: ")) {
                *seen.entry(tag.to_owned()).or_default() += 1;
            }
        }
        let missing = acknowledged
            .iter()
            .filter(|t| !seen.contains_key(*t))
            .count();
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !seen.contains_key(*t))
        .collect();
    let duplicates = seen.values().filter(|&&n| n > 1).count();
    let unacknowledged_but_delivered = seen.keys().filter(|t| !acknowledged.contains(t)).count();
    eprintln!(
        "crash test: {} acknowledged, {} lost, {} duplicated, {} delivered without a 250 (killed between fsync and reply)",
        acknowledged.len(),
        lost.len(),
        duplicates,
        unacknowledged_but_delivered
    );
    assert!(
        lost.is_empty(),
        "lost after SIGKILL: {lost:?}\n{}",
        restarted.log_text()
    );
}

/// One strace line: which thread, and the rest.
fn split_pid(line: &str) -> (&str, &str) {
    let (pid, rest) = match line.strip_prefix("[pid ") {
        Some(rest) => rest.split_once(']').unwrap_or(("main", line)),
        None => line.split_once(' ').unwrap_or(("main", line)),
    };
    (pid.trim(), rest.trim_start())
}

/// Sends SIGKILL to a process this test started (by PID) unless disarmed.
struct KillOnDrop(Option<String>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .status();
        }
    }
}

/// One completed system call of the trace: where it started and where it completed (a call
/// may be split into "<unfinished ...>" and "<... resumed>" lines).
struct Call {
    started: usize,
    finished: usize,
    text: String,
}

/// Sends one message through a petrel under strace with `extra` configuration; returns the
/// completed calls in order of completion, the queue id and the index of the 250's write.
fn trace_one_message(name: &str, extra: &str) -> (Vec<Call>, String, usize, String) {
    let scratch = Scratch::new(name);
    let trace_path = scratch.0.join("trace.txt");
    let trace_arg = trace_path.display().to_string();
    let petrel = Petrel::start_wrapped(
        &scratch.0,
        extra,
        &[
            "strace",
            "-f",
            "-y",
            "-s",
            // Enough to show the queue id in a journal write (after the segment and record
            // headers).
            "160",
            "-o",
            &trace_arg,
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,pwrite64,sendto,writev",
        ],
    );
    // The traced petrel is strace's child; make sure it never outlives a failing test.
    let strace_pid = petrel.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let traced_pid = children.split_whitespace().next().unwrap().to_owned();
    let mut guard = KillOnDrop(Some(traced_pid.clone()));
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO strace.test");
    let reply = client.send_message(
        "a@example.test",
        &["traced@localhost"],
        b"Subject: traced\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    let id = reply.trim_end().rsplit(' ').next().unwrap().to_owned();
    client.command("QUIT");
    // Stop petrel itself (the traced process, whose PID starts the trace) with SIGTERM, so it
    // exits cleanly and strace, exiting with it, has written the whole trace.
    let mut petrel = petrel;
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &traced_pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(petrel.wait_exit(), Some(0));
    guard.0 = None;
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let mut pending: HashMap<String, (usize, String)> = HashMap::new();
    let mut completed: Vec<Call> = Vec::new();
    for (index, line) in trace.lines().enumerate() {
        let (pid, rest) = split_pid(line);
        if let Some(call) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), (index, call.to_owned()));
        } else if rest.starts_with("<... ") {
            let (started, start) = pending.remove(pid).unwrap_or((index, String::new()));
            completed.push(Call {
                started,
                finished: index,
                text: format!("{start} {rest}"),
            });
        } else {
            completed.push(Call {
                started: index,
                finished: index,
                text: rest.to_owned(),
            });
        }
    }
    let reply_at = completed
        .iter()
        .position(|c| {
            (c.text.starts_with("write(") || c.text.starts_with("sendto("))
                && c.text.contains("250 2.0.0 queued as")
        })
        .unwrap_or_else(|| panic!("no 250 written in:\n{trace}"));
    (completed, id, reply_at, trace)
}

#[test]
fn strace_shows_fsyncs_before_the_250() {
    if crate::backend::skip_on_postgres("traces the spool's file system calls") {
        return;
    }
    let (completed, id, reply_at, trace) =
        trace_one_message("strace-fsync", "[queue]\nsync = \"fsync\"\n");
    let position = |what: &dyn Fn(&str) -> bool| completed.iter().position(|c| what(&c.text));
    let message_fsync =
        position(&|c: &str| c.contains("fsync(") && c.contains(&format!("{id}.msg")));
    let envelope_fsync =
        position(&|c: &str| c.contains("fsync(") && c.contains(&format!("{id}.env")));
    let bucket = &id[..2];
    let directory_fsync = position(&|c: &str| {
        c.contains("fsync(") && c.contains(&format!("/queue/active/{bucket}>"))
    });
    let rename = position(&|c: &str| c.starts_with("rename") && c.contains(&format!("{id}.env")));
    for (name, at) in [
        ("message fsync", message_fsync),
        ("envelope fsync", envelope_fsync),
        ("rename into active/", rename),
        ("queue directory fsync", directory_fsync),
    ] {
        let at = at.unwrap_or_else(|| panic!("no {name} for {id} in:\n{trace}"));
        assert!(at < reply_at, "{name} came after the 250:\n{trace}");
    }
    assert!(
        rename < directory_fsync,
        "the directory fsync must follow the rename"
    );
}

#[test]
fn strace_shows_a_syncfs_begun_after_the_renames_before_the_250() {
    if crate::backend::skip_on_postgres("traces the spool's file system calls") {
        return;
    }
    let (completed, id, reply_at, trace) =
        trace_one_message("strace-syncfs", "[queue]\nsync = \"syncfs\"\n");
    let renames: Vec<usize> = completed
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.text.starts_with("rename")
                && (c.text.contains(&format!("/queue/tmp/{id}.env\""))
                    || c.text.contains(&format!("/queue/tmp/{id}.msg\"")))
        })
        .map(|(index, _)| index)
        .collect();
    assert_eq!(
        renames.len(),
        2,
        "message and envelope renamed into active/:\n{trace}"
    );
    let last_rename_line = renames
        .iter()
        .map(|&index| completed[index].finished)
        .max()
        .unwrap();
    let syncfs = completed
        .iter()
        .enumerate()
        .find(|(_, c)| c.text.starts_with("syncfs(") && c.started > last_rename_line)
        .map(|(index, _)| index)
        .unwrap_or_else(|| panic!("no syncfs begun after the renames:\n{trace}"));
    assert!(
        syncfs < reply_at,
        "the syncfs completed after the 250:\n{trace}"
    );
    assert!(
        renames.iter().all(|&r| r < reply_at),
        "renames after the 250:\n{trace}"
    );
}

#[test]
fn strace_shows_the_journal_written_and_fdatasynced_before_the_250() {
    if crate::backend::skip_on_postgres("traces the spool's file system calls") {
        return;
    }
    // The default on Linux: queue.sync = "journal". The message is written into a journal
    // segment (its body is in the pwrite) and that segment is fdatasynced, both before the 250;
    // no file of the message is created on the way.
    let (completed, id, reply_at, trace) = trace_one_message("strace-journal", "");
    let segment = "/queue/journal/seg-";
    let written = completed
        .iter()
        .position(|c| {
            c.text.starts_with("pwrite64(") && c.text.contains(segment) && c.text.contains(&id)
        })
        .unwrap_or_else(|| panic!("no pwrite of {id} into a journal segment:\n{trace}"));
    let synced = completed
        .iter()
        .enumerate()
        .find(|(_, c)| {
            c.text.starts_with("fdatasync(")
                && c.text.contains(segment)
                && c.started > completed[written].finished
        })
        .map(|(index, _)| index)
        .unwrap_or_else(|| panic!("no fdatasync of the segment after the write:\n{trace}"));
    assert!(
        synced < reply_at,
        "the fdatasync completed after the 250:\n{trace}"
    );
    let renamed_before_250 = completed[..reply_at]
        .iter()
        .any(|c| c.text.starts_with("rename") && c.text.contains(&id));
    assert!(!renamed_before_250, "the 250 waited for files:\n{trace}");
}

#[test]
fn full_disk_answers_452_and_keeps_serving() {
    if crate::backend::skip_on_postgres(
        "fills the spool's file system; the database's full disk is its own",
    ) {
        return;
    }
    // The queue lives on a 256 KiB tmpfs, mounted in a private user and mount namespace so the
    // test needs no root: a message larger than the space left cannot be stored.
    let scratch = Scratch::new("diskfull");
    let queue_dir = scratch.0.join("data").join("queue");
    std::fs::create_dir_all(&queue_dir).unwrap();
    let queue_arg = queue_dir.display().to_string();
    // No free-space reserve (queue.min_free_bytes): the tmpfs itself runs out.
    let petrel = Petrel::start_wrapped(
        &scratch.0,
        "[queue]\nmin_free_bytes = 0\n",
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"",
            &queue_arg,
        ],
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO full.test");
    let line = format!("{}\r\n", "z".repeat(998));
    let big = format!("Subject: big\r\n\r\n{}", line.repeat(400));
    let reply = client.send_message("a@example.test", &["full@localhost"], big.as_bytes());
    // S-DATA-10: no storage is 452 4.3.1, a transient refusal; nothing is queued.
    assert_eq!(
        reply,
        "452 4.3.1 Insufficient system storage, try again later\r\n",
        "{}",
        petrel.log_text()
    );
    let reply = client.send_message(
        "a@example.test",
        &["full@localhost"],
        b"Subject: small\r\n\r\nfits\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    let delivered = petrel.wait_for_maildir("localhost", "full", 1);
    assert_eq!(delivered.len(), 1);
    assert!(String::from_utf8_lossy(&delivered[0]).contains("Subject: small"));
}
