//! Scenarios of the file spool, the crate's one integration-test binary: round trips, reopen,
//! recovery at open (tmp purge, quarantine of half-stored and unreadable entries), group commit
//! under concurrency, update and remove.
//!
//! The journal of `SyncMode::Journal` has its scenarios in `spool/journal.rs`, a module of this
//! binary. Each test works in its own directory under `std::env::temp_dir()`, removed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use petrel_proto::params::{Body, Notify};
use petrel_queue::{
    DeliveryStatus, Envelope, NewMessage, Place, Queue, QueueError, QueueId, Recipient,
    RecipientState, Spool, SyncMode,
};

/// A unique scratch directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "petrel-queue-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        ScratchDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn envelope() -> Envelope {
    let mut second = Recipient::new("\"j smith\"@example.org");
    second.notify = Some(Notify {
        is_never: false,
        on_success: false,
        on_failure: true,
        on_delay: true,
    });
    Envelope {
        arrival_unix_seconds: 1_767_225_600,
        client_address: "127.0.0.1".into(),
        client_helo: "client.example.net".into(),
        reverse_path: String::new(),
        body: Body::EightBitMime,
        is_smtputf8: true,
        requires_tls: false,
        ret: None,
        envelope_id: Some("id=1 +x".into()),
        recipients: vec![Recipient::new("b\u{fc}ro@example.org"), second],
        message_id: Some("<a1@example.org>".into()),
        history: vec!["received; from \"x\" = y".into()],
    }
}

#[path = "spool/fixtures.rs"]
mod fixtures;
#[path = "spool/journal.rs"]
mod journal;

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nbody\r\n.. not a dot line\r\n";

fn open(dir: &ScratchDir) -> Spool {
    Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs)
        .unwrap()
        .0
}

#[test]
fn store_load_and_read_message_round_trip() {
    let dir = ScratchDir::new("round-trip");
    let spool = open(&dir);
    let id = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    assert_eq!(spool.load(&id).unwrap().envelope, envelope());
    assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    assert!(
        spool
            .message_path(&id)
            .starts_with(dir.path().join("active").join(id.bucket()))
    );
    assert!(spool.envelope_path(&id).is_file());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(dir.path().join("hold").is_dir());
    assert!(spool.directory_sync_passes() >= 1);
    assert_eq!(spool.list().unwrap(), vec![id]);
}

#[test]
fn unknown_id_is_not_found() {
    let dir = ScratchDir::new("not-found");
    let spool = open(&dir);
    let id = QueueId::parse("00000000000000000").unwrap();
    assert!(matches!(spool.load(&id), Err(QueueError::NotFound(_))));
    assert!(matches!(
        spool.read_message(&id),
        Err(QueueError::NotFound(_))
    ));
    assert!(matches!(
        spool.update(&id, &envelope()),
        Err(QueueError::NotFound(_))
    ));
    assert!(matches!(spool.remove(&id), Err(QueueError::NotFound(_))));
    assert!(matches!(
        spool.quarantine(&id, "x"),
        Err(QueueError::NotFound(_))
    ));
}

#[test]
fn list_after_reopen() {
    let dir = ScratchDir::new("reopen");
    let mut ids: Vec<QueueId> = {
        let spool = open(&dir);
        (0..5)
            .map(|_| {
                spool
                    .store(&envelope(), &NewMessage::without_header(MESSAGE))
                    .unwrap()
            })
            .collect()
    };
    ids.sort();
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    assert_eq!(report.active, 5);
    assert_eq!(report.purged_tmp, 0);
    assert!(report.quarantined.is_empty(), "{report:?}");
    assert_eq!(spool.list().unwrap(), ids);
}

#[test]
fn a_second_spool_on_the_same_root_is_refused() {
    let dir = ScratchDir::new("lock");
    let spool = open(&dir);
    match Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs) {
        Err(QueueError::Io(error)) => assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock),
        other => panic!("expected WouldBlock, got {:?}", other.map(|(_, r)| r)),
    }
    drop(spool);
    open(&dir);
}

#[test]
fn tmp_leftovers_are_purged_on_open() {
    let dir = ScratchDir::new("purge");
    drop(open(&dir));
    let tmp = dir.path().join("tmp");
    fs::write(tmp.join("0654A1B2C3D4E0001.msg"), MESSAGE).unwrap();
    fs::write(tmp.join("0654A1B2C3D4E0001.env"), b"petrel-envelope 1\n").unwrap();
    fs::write(tmp.join("0654A1B2C3D4E0002.update-3"), b"x").unwrap();
    let (_spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    assert_eq!(report.purged_tmp, 3);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn garbage_envelope_is_moved_to_corrupt_on_open() {
    let dir = ScratchDir::new("garbage");
    let (id, good) = {
        let spool = open(&dir);
        let id = spool
            .store(&envelope(), &NewMessage::without_header(MESSAGE))
            .unwrap();
        let good = spool
            .store(&envelope(), &NewMessage::without_header(MESSAGE))
            .unwrap();
        fs::write(
            spool.envelope_path(&id),
            b"petrel-envelope 1\nid 0\ngarbage\n",
        )
        .unwrap();
        (id, good)
    };
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    assert_eq!(report.active, 1);
    let names: Vec<&str> = report.quarantined.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [format!("{id}.env"), format!("{id}.msg")]);
    assert!(
        report.quarantined[0].1.contains("envelope unreadable"),
        "{report:?}"
    );
    let corrupt = dir.path().join("corrupt");
    assert_eq!(
        fs::read(corrupt.join(format!("{id}.env"))).unwrap(),
        b"petrel-envelope 1\nid 0\ngarbage\n"
    );
    assert_eq!(
        fs::read(corrupt.join(format!("{id}.msg"))).unwrap(),
        MESSAGE
    );
    let reason = fs::read_to_string(corrupt.join(format!("{id}.env.reason"))).unwrap();
    assert!(reason.contains("envelope unreadable"));
    assert!(!spool.envelope_path(&id).exists());
    assert_eq!(spool.list().unwrap(), vec![good]);
}

#[test]
fn message_without_envelope_is_moved_to_corrupt_on_open() {
    let dir = ScratchDir::new("orphan");
    let id = {
        let spool = open(&dir);
        let id = spool
            .store(&envelope(), &NewMessage::without_header(MESSAGE))
            .unwrap();
        fs::remove_file(spool.envelope_path(&id)).unwrap();
        id
    };
    let (spool, report) = Spool::open_with(dir.path().to_path_buf(), SyncMode::Syncfs).unwrap();
    assert_eq!(report.active, 0);
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].0, format!("{id}.msg"));
    assert!(report.quarantined[0].1.contains("interrupted store"));
    let moved = dir.path().join("corrupt").join(format!("{id}.msg"));
    assert_eq!(fs::read(moved).unwrap(), MESSAGE);
    assert!(!spool.message_path(&id).exists());
    assert!(spool.list().unwrap().is_empty());
}

#[test]
fn quarantine_never_overwrites() {
    let dir = ScratchDir::new("quarantine");
    let spool = open(&dir);
    let id = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    let corrupt = dir.path().join("corrupt");
    fs::write(corrupt.join(format!("{id}.msg")), b"older").unwrap();
    spool.quarantine(&id, "operator said so").unwrap();
    assert_eq!(
        fs::read(corrupt.join(format!("{id}.msg"))).unwrap(),
        b"older"
    );
    assert_eq!(
        fs::read(corrupt.join(format!("{id}.msg.1"))).unwrap(),
        MESSAGE
    );
    assert!(corrupt.join(format!("{id}.env")).is_file());
    let reason = fs::read_to_string(corrupt.join(format!("{id}.msg.1.reason"))).unwrap();
    assert_eq!(reason, "operator said so\n");
    assert!(spool.list().unwrap().is_empty());
}

#[test]
fn concurrent_stores_share_directory_fsyncs() {
    const THREADS: usize = 16;
    const STORES: usize = 200;
    let dir = ScratchDir::new("group-commit");
    let spool = open(&dir);
    let ids: Vec<QueueId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let spool = &spool;
                let count = STORES / THREADS + usize::from(thread < STORES % THREADS);
                scope.spawn(move || {
                    (0..count)
                        .map(|_| {
                            spool
                                .store(&envelope(), &NewMessage::without_header(MESSAGE))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), STORES);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), STORES);
    assert_eq!(spool.list().unwrap(), sorted);
    let passes = spool.directory_sync_passes();
    assert!(passes >= 1);
    assert!(
        passes < STORES as u64,
        "{passes} directory fsync passes for {STORES} stores"
    );
}

#[test]
fn update_then_load_sees_the_change() {
    let dir = ScratchDir::new("update");
    let spool = open(&dir);
    let id = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    let mut changed = spool.load(&id).unwrap().envelope;
    changed.recipients[0].state = RecipientState::Delivered;
    changed.recipients[1].attempts = 3;
    changed.recipients[1].next_attempt_unix_seconds = 1_767_229_200;
    let greylisted = petrel_proto::Reply {
        code: 451,
        enhanced: petrel_proto::EnhancedCode::parse("4.7.1"),
        lines: vec!["greylisted, try again".into()],
    };
    changed.recipients[1].last = Some(DeliveryStatus::from_reply(
        &greylisted,
        petrel_proto::client::Stage::Rcpt,
        None,
    ));
    spool.update(&id, &changed).unwrap();
    assert_eq!(spool.load(&id).unwrap().envelope, changed);
    assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    drop(spool);
    let spool = open(&dir);
    assert_eq!(spool.load(&id).unwrap().envelope, changed);
}

#[test]
fn remove_removes_both_files() {
    let dir = ScratchDir::new("remove");
    let spool = open(&dir);
    let id = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    let kept = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    spool.remove(&id).unwrap();
    assert!(!spool.message_path(&id).exists());
    assert!(!spool.envelope_path(&id).exists());
    assert!(matches!(spool.load(&id), Err(QueueError::NotFound(_))));
    assert_eq!(spool.list().unwrap(), vec![kept]);
}

#[test]
fn corrupt_envelope_found_by_load_is_reported() {
    let dir = ScratchDir::new("load-corrupt");
    let spool = open(&dir);
    let id = spool
        .store(&envelope(), &NewMessage::without_header(MESSAGE))
        .unwrap();
    let record = fs::read_to_string(spool.envelope_path(&id)).unwrap();
    fs::write(spool.envelope_path(&id), record.replace("end\n", "")).unwrap();
    match spool.load(&id) {
        Err(error @ QueueError::Corrupt { .. }) => {
            assert!(!error.is_transient());
            assert!(error.to_string().contains("truncated"), "{error}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn every_sync_mode_stores_updates_and_reopens() {
    for mode in [SyncMode::Fsync, SyncMode::Syncfs, SyncMode::Journal] {
        let dir = ScratchDir::new("modes");
        let id = {
            let (spool, _) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
            assert_eq!(spool.sync_mode(), mode);
            let id = spool
                .store(&envelope(), &NewMessage::without_header(MESSAGE))
                .unwrap();
            let mut changed = envelope();
            changed.history.push("updated".into());
            spool.update(&id, &changed).unwrap();
            id
        };
        let (spool, report) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
        assert_eq!(report.active, 1, "{mode:?}");
        assert_eq!(
            spool.load(&id).unwrap().envelope.history.last().unwrap(),
            "updated"
        );
        assert_eq!(spool.read_message(&id).unwrap(), MESSAGE);
    }
}

/// Streaming (issue 18): content written to a file in `spill_dir` as it arrived is stored
/// after the header and the content in memory, in every mode (the journal hands such a
/// message to files), survives a reopen, and its size is known without reading it; the spill
/// file is the caller's, and a reopen empties the spill directory.
#[test]
fn a_streamed_rest_is_stored_after_the_content_in_every_mode() {
    for mode in [SyncMode::Fsync, SyncMode::Syncfs, SyncMode::Journal] {
        let dir = ScratchDir::new("rest");
        let rest: Vec<u8> = (0..300_000u32)
            .map(|i| b"abcdefgh\r\n"[i as usize % 10])
            .collect();
        let id = {
            let (spool, _) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
            let spill = spool.spill_dir().unwrap().join("session-1.spill");
            fs::write(&spill, &rest).unwrap();
            let header = |id: &QueueId| format!("Received: by test; id {id}\r\n");
            let id = spool
                .store(
                    &envelope(),
                    &NewMessage {
                        header: &header,
                        content: b"Subject: big\r\n\r\n",
                        rest: Some(&spill),
                    },
                )
                .unwrap();
            assert!(
                spill.exists(),
                "{mode:?}: the spill file is left to the caller"
            );
            id
        };
        let (spool, _) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
        let mut expected =
            format!("Received: by test; id {id}\r\nSubject: big\r\n\r\n").into_bytes();
        expected.extend_from_slice(&rest);
        assert_eq!(spool.read_message(&id).unwrap(), expected, "{mode:?}");
        assert_eq!(spool.message_size_hint(&id), Some(expected.len() as u64));
        let spill_dir = spool.spill_dir().unwrap();
        assert_eq!(
            fs::read_dir(&spill_dir).unwrap().count(),
            0,
            "emptied at open"
        );
    }
}

#[test]
fn finished_messages_are_kept_in_the_days_history_file() {
    for mode in [SyncMode::Syncfs, SyncMode::Fsync, SyncMode::Journal] {
        let dir = ScratchDir::new("history");
        let (spool, _) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
        let mut ids = Vec::new();
        for note in ["first", "second"] {
            let id = spool
                .store(&envelope(), &NewMessage::without_header(MESSAGE))
                .unwrap();
            let mut finished = envelope();
            finished.history.push(format!("{note} delivered"));
            spool.archive(&id, &finished).unwrap();
            assert!(spool.load(&id).is_err(), "gone from active/");
            ids.push(id);
        }
        // One history file for the day, no file per message.
        let done: Vec<String> = fs::read_dir(dir.path().join("done"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].ends_with(".history"), "{done:?}");
        // An archive of an earlier version, one file a message, is still found.
        let old_id = QueueId::parse("0654A1B2C3D4E0001").unwrap();
        fs::write(
            dir.path().join("done").join(format!("{old_id}.env")),
            petrel_queue::record::encode(&old_id, &envelope()),
        )
        .unwrap();
        drop(spool);
        let (spool, _) = Spool::open_with(dir.path().to_path_buf(), mode).unwrap();
        for (id, note) in ids.iter().zip(["first", "second"]) {
            let kept = spool.load_in(id, Place::Done).unwrap();
            assert_eq!(kept.history.last().unwrap(), &format!("{note} delivered"));
        }
        assert!(spool.load_in(&old_id, Place::Done).is_ok());
        let mut listed = spool.list_in(Place::Done).unwrap();
        listed.sort();
        let mut expected = vec![ids[0].clone(), ids[1].clone(), old_id.clone()];
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(spool.envelopes_in(Place::Done).unwrap().len(), 3);
        // Purged whole, with the count of its records.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            spool
                .purge_history(std::time::Duration::from_millis(1))
                .unwrap(),
            3
        );
        assert!(spool.list_in(Place::Done).unwrap().is_empty());
    }
}
