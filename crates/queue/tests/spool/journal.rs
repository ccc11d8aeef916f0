//! `SyncMode::Journal` scenarios: a stored message lives in the journal and in memory (no
//! files), is readable, updatable and removable there, becomes files when it stays, when it is
//! held and when the spool closes, and comes back from the journal after a crash (a child
//! process that aborts) while a removed one does not.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{MESSAGE, ScratchDir, envelope};
use petrel_queue::{NewMessage, Place, Queue, QueueId, Residence, Spool, SyncMode};

/// Set in the child process of the crash tests: the directory to work in.
const CHILD_DIR: &str = "PETREL_JOURNAL_TEST_CHILD";
/// Set too for the child that has a message written as files and delivered first.
const CHILD_MATERIALIZE: &str = "PETREL_JOURNAL_TEST_MATERIALIZE";

fn open(dir: &ScratchDir) -> Spool {
    Spool::open_with(dir.path().to_path_buf(), SyncMode::Journal)
        .unwrap()
        .0
}

fn store(spool: &Spool, body: &[u8]) -> QueueId {
    spool
        .store(&envelope(), &NewMessage::without_header(body))
        .unwrap()
}

fn files_of(dir: &ScratchDir, id: &QueueId) -> Vec<String> {
    files_under(dir.path(), id)
}

fn files_under(root: &std::path::Path, id: &QueueId) -> Vec<String> {
    let mut found = Vec::new();
    for place in ["active", "hold"] {
        let mut stack = vec![root.join(place)];
        while let Some(path) = stack.pop() {
            for entry in fs::read_dir(&path).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else if name.starts_with(&id.to_string()) {
                    found.push(format!("{place}/{name}"));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_stored_message_lives_in_the_journal_until_it_stays() {
    let dir = ScratchDir::new("journal-resident");
    let spool = open(&dir);
    assert_eq!(spool.sync_mode(), SyncMode::Journal);
    spool.set_resident_for(Duration::from_millis(300));
    let id = store(&spool, MESSAGE);
    assert!(dir.path().join("journal").join("seg-0").is_file());
    assert_eq!(spool.list().unwrap(), vec![id.clone()]);
    assert_eq!(spool.list_in(Place::Active).unwrap(), vec![id.clone()]);
    assert_eq!(spool.envelopes_in(Place::Active).unwrap().len(), 1);
    assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    let mut changed = envelope();
    changed.history.push("deferred".into());
    spool.update(&id, &changed).unwrap();
    assert_eq!(spool.load(&id).unwrap().envelope, changed);
    // Still queued after the resident time: the checkpoint writes its files.
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_of(&dir, &id).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let id_text = id.to_string();
    assert_eq!(
        files_of(&dir, &id),
        vec![
            format!("active/{id_text}.env"),
            format!("active/{id_text}.msg")
        ]
    );
    assert_eq!(
        spool.load(&id).unwrap().envelope,
        changed,
        "the update is in the file"
    );
    assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    spool.remove(&id).unwrap();
    assert!(spool.list().unwrap().is_empty());
}

#[test]
fn removed_residents_leave_no_files_and_closing_writes_the_rest() {
    let dir = ScratchDir::new("journal-close");
    let kept = {
        let spool = open(&dir);
        let gone = store(&spool, MESSAGE);
        let kept = store(&spool, b"Subject: kept\r\n\r\nstays\r\n");
        spool.remove(&gone).unwrap();
        assert!(files_of(&dir, &gone).is_empty());
        assert_eq!(spool.list().unwrap(), vec![kept.clone()]);
        kept
    };
    assert_eq!(files_of(&dir, &kept).len(), 2, "closing made it files");
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Journal).unwrap();
    assert_eq!(report.active, 1);
    assert_eq!(
        spool.read_message(&kept).unwrap(),
        b"Subject: kept\r\n\r\nstays\r\n"
    );
}

#[test]
fn hold_and_quarantine_of_a_resident_work_on_its_files() {
    let dir = ScratchDir::new("journal-hold");
    let spool = open(&dir);
    let held = store(&spool, MESSAGE);
    spool.hold(&held).unwrap();
    assert_eq!(spool.list_in(Place::Held).unwrap(), vec![held.clone()]);
    assert!(spool.list().unwrap().is_empty());
    spool.release(&held).unwrap();
    assert_eq!(spool.list().unwrap(), vec![held.clone()]);
    let bad = store(&spool, MESSAGE);
    spool.quarantine(&bad, "test").unwrap();
    assert!(spool.load(&bad).is_err());
    assert_eq!(spool.list().unwrap(), vec![held]);
}

/// The child of the crash tests: stores three messages, removes one, stores a fourth (whose
/// commit carries the forget record) and aborts without closing the spool. With
/// `CHILD_MATERIALIZE` set it first stores a message, waits until the checkpoint made it
/// files and forgot its journal entry, and removes those files, as a delivery from files does.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let root = std::path::PathBuf::from(dir);
    let (spool, _) = Spool::open_with(root.clone(), SyncMode::Journal).unwrap();
    if std::env::var(CHILD_MATERIALIZE).is_ok() {
        spool.set_resident_for(Duration::from_millis(100));
        let early = store(&spool, b"Subject: early\r\n\r\nwritten as files\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while files_under(&root, &early).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The checkpoint syncs and forgets right after writing the files.
        std::thread::sleep(Duration::from_millis(300));
        spool.set_resident_for(Duration::from_secs(3600));
        spool.remove(&early).unwrap();
    }
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(store(
            &spool,
            format!("Subject: {n}\r\n\r\nbody {n}\r\n").as_bytes(),
        ));
    }
    spool.remove(&ids[1]).unwrap();
    ids.push(store(&spool, b"Subject: 3\r\n\r\nbody 3\r\n"));
    println!(
        "IDS {}",
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::process::abort();
}

/// Runs `crash_child` in a child process on `dir`; returns the four ids it printed.
fn crash_in_child(dir: &ScratchDir, materialize: bool) -> Vec<QueueId> {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "journal::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path());
    if materialize {
        child.env(CHILD_MATERIALIZE, "1");
    }
    let output = child.output().unwrap();
    assert!(!output.status.success(), "the child aborts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .split_once("IDS ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("no ids from the child: {stdout}"));
    let ids: Vec<QueueId> = line
        .split(' ')
        .map(|t| QueueId::parse(t).unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    ids
}

/// Opens `dir` in `mode` after `crash_child` and checks that exactly its three acknowledged,
/// not removed messages are there.
fn open_after_crash(dir: &ScratchDir, mode: SyncMode, ids: &[QueueId]) -> Spool {
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
    assert_eq!(spool.sync_mode(), mode);
    assert_eq!(report.active, 3, "{report:?}");
    assert_eq!(
        spool.list().unwrap(),
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    spool
}

#[test]
fn after_a_crash_the_journal_gives_back_what_was_acknowledged() {
    let dir = ScratchDir::new("journal-crash");
    let ids = crash_in_child(&dir, false);
    let files = fs::read_dir(dir.path().join("active"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        files, 0,
        "the child never wrote files (it lived one checkpoint at most)"
    );
    let spool = open_after_crash(&dir, SyncMode::Journal, &ids);
    for n in [0, 2, 3] {
        assert_eq!(
            spool.read_message(&ids[n]).unwrap(),
            format!("Subject: {n}\r\n\r\nbody {n}\r\n").as_bytes()
        );
        assert_eq!(spool.load(&ids[n]).unwrap().envelope, envelope());
    }
    // Recovered into files; the journal starts afresh, so a second open finds the same three.
    drop(spool);
    let (_, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Journal).unwrap();
    assert_eq!(report.active, 3);
}

#[test]
fn a_message_delivered_from_its_files_does_not_come_back_after_a_crash() {
    let dir = ScratchDir::new("journal-crash-files");
    let ids = crash_in_child(&dir, true);
    open_after_crash(&dir, SyncMode::Journal, &ids);
}

#[test]
fn a_spool_opened_in_another_mode_takes_the_journal_back_first() {
    let dir = ScratchDir::new("journal-crash-syncfs");
    let ids = crash_in_child(&dir, false);
    drop(open_after_crash(&dir, SyncMode::Syncfs, &ids));
    // The segments were invalidated: back in journal mode nothing is restored twice.
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Journal).unwrap();
    assert_eq!(report.active, 3);
    for id in [&ids[0], &ids[2], &ids[3]] {
        spool.remove(id).unwrap();
    }
    drop(spool);
    let (_, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Journal).unwrap();
    assert_eq!(report.active, 0);
}

#[test]
fn a_full_journal_makes_its_residents_files_and_stores_go_on() {
    // 8 segments of 16 MiB: 160 messages of 1 MiB from 4 threads overflow it, with residents
    // kept for an hour, so only the journal's pressure (the checkpoint when half is in use,
    // and the writer waiting for a free segment) makes room.
    let dir = ScratchDir::new("journal-full");
    let spool = std::sync::Arc::new(open(&dir));
    spool.set_resident_for(Duration::from_secs(3600));
    let (sender, receiver) = std::sync::mpsc::channel();
    for thread in 0..4 {
        let (spool, sender) = (spool.clone(), sender.clone());
        std::thread::spawn(move || {
            for n in 0..40 {
                let mut body = format!("Subject: {thread}-{n}\r\n\r\n").into_bytes();
                body.resize(1 << 20, b'x');
                let _ = sender.send((body.clone(), store(&spool, &body)));
            }
        });
    }
    drop(sender);
    let mut stored = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored.len() < 160 {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(one) => stored.push(one),
            Err(error) => panic!("stores stopped after {}: {error}", stored.len()),
        }
    }
    assert_eq!(spool.list().unwrap().len(), 160);
    let segments = fs::read_dir(dir.path().join("journal")).unwrap().count();
    assert!(segments <= 8, "{segments} segments");
    let files = files_of(&dir, &stored[0].1);
    assert_eq!(
        files.len(),
        2,
        "the first message was made files under pressure"
    );
    for (body, id) in stored.iter().step_by(16) {
        assert_eq!(&spool.read_message(id).unwrap(), body);
    }
}

/// Where a message lives is a property of what `load` gives: in memory while it is in the
/// journal (and `load_resident` answers without a disk), in storage once it is files (after a
/// hold and release) and in a spool without a journal.
#[test]
fn load_says_where_the_message_lives() {
    let dir = ScratchDir::new("journal-residence");
    let spool = open(&dir);
    spool.set_resident_for(Duration::from_secs(3600));
    let id = store(&spool, MESSAGE);
    let resident = spool.load_resident(&id).unwrap().unwrap();
    assert_eq!(resident.residence, Residence::Memory);
    assert_eq!(resident.envelope, envelope());
    assert_eq!(spool.load(&id).unwrap().residence, Residence::Memory);
    spool.hold(&id).unwrap();
    spool.release(&id).unwrap();
    assert!(spool.load_resident(&id).is_none(), "held: written as files");
    assert_eq!(spool.load(&id).unwrap().residence, Residence::Storage);

    let files = ScratchDir::new("files-residence");
    let (spool, _) = Spool::open_with(files.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    let id = store(&spool, MESSAGE);
    assert!(spool.load_resident(&id).is_none());
    assert_eq!(spool.load(&id).unwrap().residence, Residence::Storage);
}

/// `try_store_then` takes a message the journal can hold without waiting (the callback brings
/// the id), and hands back the callback for one too large for it, or without a journal.
#[test]
fn try_store_then_takes_what_the_journal_holds_and_gives_back_the_rest() {
    let dir = ScratchDir::new("journal-try-store");
    let spool = open(&dir);
    let (sender, receiver) = std::sync::mpsc::channel();
    let done = |sender: std::sync::mpsc::Sender<_>| -> petrel_queue::StoreDone {
        Box::new(move |result| {
            let _ = sender.send(result);
        })
    };
    let small = NewMessage::without_header(MESSAGE);
    assert!(
        spool
            .try_store_then(&envelope(), &small, done(sender.clone()))
            .is_none()
    );
    let id = receiver
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    let huge = vec![b'x'; 20 * 1024 * 1024];
    let returned = spool.try_store_then(
        &envelope(),
        &NewMessage::without_header(&huge),
        done(sender.clone()),
    );
    assert!(
        returned.is_some(),
        "over a segment: stored as files, by the caller"
    );
    assert!(receiver.try_recv().is_err(), "no id taken for it");

    let files = ScratchDir::new("files-try-store");
    let (spool, _) = Spool::open_with(files.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    assert!(
        spool
            .try_store_then(&envelope(), &small, done(sender))
            .is_some()
    );
}
