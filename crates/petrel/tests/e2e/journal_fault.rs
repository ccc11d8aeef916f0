//! A journal write that fails (issue 18, item 6). No device-mapper here (dm-error, dm-flakey),
//! so the fault is a preloaded shim (`faults/fail_fdatasync.c`, built with the system's C
//! compiler) that makes the next fdatasync of a journal segment fail with EIO whenever a
//! trigger file exists. The batch it fails gets 451 4.3.0, the journal goes on in a new segment,
//! and after SIGKILL and a restart every message that got a 250 is delivered exactly once and
//! the refused one is not delivered at all (its client was told to send it again). A deferred
//! message keeps the failed segment live, so its stale entry is still there at the restart.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Petrel, RawClient, Scratch, maildir_messages};

fn message(tag: &str) -> Vec<u8> {
    format!("Subject: {tag}\r\nMessage-ID: <{tag}@fault.test>\r\n\r\ntag {tag}\r\n").into_bytes()
}

/// One message in its own session; the final reply.
fn send(address: std::net::SocketAddr, to: &str, tag: &str) -> String {
    let mut client = RawClient::connect(address);
    client.reply();
    client.command("EHLO client.test");
    let reply = client.send_message("sender@localhost", &[to], &message(tag));
    client.command("QUIT");
    reply
}

/// Builds the shim into `dir`; its path.
fn build_shim(dir: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/faults/fail_fdatasync.c");
    let shim = dir.join("fail_fdatasync.so");
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    shim
}

/// Tags delivered to user@localhost, with how often each arrived.
fn delivered(data_dir: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for file in maildir_messages(data_dir, "localhost", "user") {
        let text = String::from_utf8_lossy(&file);
        if let Some(tag) = text.lines().find_map(|line| line.strip_prefix("tag ")) {
            *seen.entry(tag.trim().to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn a_failed_journal_fdatasync_loses_no_acknowledged_message_and_delivers_no_refused_one() {
    let dir = Scratch::new("journal-fault");
    let shim = build_shim(&dir.0);
    let trigger = dir.0.join("fail-next-fdatasync");
    let preload = format!("LD_PRELOAD={}", shim.display());
    let trigger_variable = format!("PETREL_FAIL_FDATASYNC_TRIGGER={}", trigger.display());
    // Remote mail goes to a port where nothing listens, so it is deferred.
    let closed_port = crate::harness::closed_port();
    // The journal is the file spool's; the PostgreSQL queue has none.
    let mut petrel = Petrel::start_wrapped(
        &dir.0,
        &format!(
            "[delivery]\nport = {closed_port}\nretry = [\"1h\"]\n\n[queue]\nbackend = \"spool\"\n"
        ),
        &["env", &preload, &trigger_variable],
    );
    let mut acked = Vec::new();
    // Deferred: it keeps the journal's first segment live.
    let reply = send(petrel.address, "user@relay.test", "deferred");
    assert!(reply.starts_with("250"), "{reply}");
    for n in 0..3 {
        let tag = format!("before-{n}");
        let reply = send(petrel.address, "user@localhost", &tag);
        assert!(reply.starts_with("250"), "{tag}: {reply}");
        acked.push(tag);
    }
    // The deliveries so far are done (their forget records written).
    crate::harness::wait_until("the first messages to be delivered", || {
        delivered(&petrel.data_dir).len() == acked.len()
    });
    // The fault: the next fdatasync of a segment fails. It is meant for a message's batch; when
    // something else took it (a flush of forget records), that message got its 250 and
    // counts as acknowledged, and the fault is set again.
    let mut refused = None;
    for attempt in 0..5 {
        std::fs::write(&trigger, b"").unwrap();
        let tag = format!("faulted-{attempt}");
        let reply = send(petrel.address, "user@localhost", &tag);
        if reply.starts_with("250") {
            acked.push(tag);
            continue;
        }
        assert!(
            reply.starts_with("451 4.3.0"),
            "{reply}\n{}",
            petrel.log_text()
        );
        refused = Some(tag);
        break;
    }
    let refused = refused.expect("no message met the failed fdatasync in five tries");
    assert!(!trigger.exists(), "the shim did not fail an fdatasync");
    // The journal goes on, in a new segment.
    for n in 0..3 {
        let tag = format!("after-{n}");
        let reply = send(petrel.address, "user@localhost", &tag);
        assert!(reply.starts_with("250"), "{tag}: {reply}");
        acked.push(tag);
    }
    petrel.child.kill().unwrap(); // SIGKILL
    petrel.child.wait().unwrap();

    let mut restarted = Petrel::start_with(&petrel.config_path, &petrel.data_dir, &[]);
    restarted.dns = petrel.dns.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = delivered(&restarted.data_dir);
        if acked.iter().all(|tag| seen.contains_key(tag)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged but not delivered after restart: {seen:?}\n{}",
            restarted.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What recovery restored is delivered or deferred now: only the deferred message is left.
    let (_, listed) = crate::harness::poll(
        || restarted.queue(&["list"]),
        |(_, listed)| listed.matches("user@").count() == 1,
    );
    assert!(listed.contains("user@relay.test"), "{listed}");
    let seen = delivered(&restarted.data_dir);
    assert!(
        !seen.contains_key(&refused),
        "a message refused with 451 was delivered after the restart: {seen:?}"
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "delivered more than once: {seen:?}"
    );
}
