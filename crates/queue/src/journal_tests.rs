//! Unit tests of the journal: what is appended comes back, forgets cancel, a torn record and
//! the records of an earlier use end the walk, and segments are reused once free (the writer
//! asks for space and waits for it when all are live; the next one is made ahead).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "petrel-journal-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SMALL: Sizes = Sizes {
    segment_size: 4096,
    max_segments: 3,
};

fn start(dir: &Dir, sizes: Sizes, wanted: SpaceWanted) -> Journal {
    let (_, next) = Journal::recover(&dir.0).unwrap();
    Journal::start(&dir.0, sizes, next, wanted).unwrap()
}

fn append(journal: &Journal, id: &str, message: &[u8]) -> EntryRef {
    let (sender, receiver) = mpsc::channel();
    journal.append(
        id.to_owned(),
        format!("envelope of {id}").into_bytes(),
        Arc::new(message.to_vec()),
        Box::new(move |result| sender.send(result.unwrap()).unwrap()),
    );
    receiver.recv().unwrap()
}

fn ids(dir: &Dir) -> Vec<String> {
    let (entries, _) = Journal::recover(&dir.0).unwrap();
    entries.into_iter().map(|e| e.id).collect()
}

#[test]
fn entries_come_back_and_forgets_cancel_them() {
    let dir = Dir::new("basic");
    let journal = start(&dir, JOURNAL_TEST_SIZES, Box::new(|| {}));
    let a = append(&journal, "A", b"message a");
    append(&journal, "B", b"message b\r\n");
    journal.forget("A", a);
    journal.flush();
    let (entries, next) = Journal::recover(&dir.0).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, "B");
    assert_eq!(entries[0].envelope, b"envelope of B");
    assert_eq!(entries[0].message, b"message b\r\n");
    assert_eq!(next, 4, "seqs 1 to 3: two entries and a forget");
    drop(journal);
    // A new start invalidates what the segments held.
    let journal = start(&dir, JOURNAL_TEST_SIZES, Box::new(|| {}));
    assert!(ids(&dir).is_empty());
    append(&journal, "C", b"c");
    assert_eq!(ids(&dir), vec!["C"]);
}

const JOURNAL_TEST_SIZES: Sizes = Sizes {
    segment_size: 1 << 16,
    max_segments: 2,
};

#[test]
fn a_torn_record_ends_the_walk() {
    let dir = Dir::new("torn");
    let journal = start(&dir, JOURNAL_TEST_SIZES, Box::new(|| {}));
    append(&journal, "A", b"first");
    append(&journal, "B", b"second message");
    drop(journal);
    let path = dir.0.join("seg-0");
    let mut bytes = fs::read(&path).unwrap();
    // The last byte of B's payload: "second message" ends before the padding.
    let at = bytes
        .windows(b"second message".len())
        .position(|w| w == b"second message")
        .unwrap();
    bytes[at + 3] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(ids(&dir), vec!["A"]);
}

#[test]
fn a_message_that_looks_like_a_record_stays_a_message() {
    let dir = Dir::new("crafted");
    let journal = start(&dir, JOURNAL_TEST_SIZES, Box::new(|| {}));
    // A payload holding a well-formed record (with a nonce the attacker had to guess).
    let mut fake = Vec::new();
    encode_record(
        &mut fake,
        KIND_ENTRY,
        1,
        99,
        &[&entry_head("EVIL", b"e"), b"e"],
    );
    append(&journal, "A", &fake);
    drop(journal);
    assert_eq!(ids(&dir), vec!["A"]);
}

#[test]
fn full_segments_are_reused_once_released_and_the_writer_asks_for_space() {
    let dir = Dir::new("reuse");
    let asked = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<Vec<EntryRef>>> = Arc::default();
    let journal = Arc::new(start(&dir, SMALL, {
        let asked = Arc::clone(&asked);
        Box::new(move || {
            asked.fetch_add(1, Ordering::SeqCst);
        })
    }));
    let body = vec![b'x'; 900];
    // Three segments of 4 KiB hold 12 entries of about 1 KiB (4 a segment, with the header).
    for n in 0..12 {
        held.lock()
            .unwrap()
            .push(append(&journal, &format!("M{n}"), &body));
    }
    assert_eq!(journal.live_segments(), 3);
    assert_eq!(
        fs::read_dir(&dir.0).unwrap().count(),
        3,
        "three segments, all live"
    );
    // The 13th waits for space: it asks, and goes on once the oldest segment is released.
    let (sender, receiver) = mpsc::channel();
    journal.append(
        "M12".into(),
        b"e".to_vec(),
        Arc::new(body.clone()),
        Box::new(move |result| sender.send(result.is_ok()).unwrap()),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while asked.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(
        receiver.try_recv().is_err(),
        "waits while every segment is live"
    );
    let first_four: Vec<EntryRef> = held.lock().unwrap().drain(..4).collect();
    journal.release_all(&first_four);
    assert!(receiver.recv().unwrap());
    let found = ids(&dir);
    assert!(
        !found.contains(&"M0".to_owned()),
        "segment 0 was reused: {found:?}"
    );
    assert!(found.contains(&"M12".to_owned()) && found.contains(&"M11".to_owned()));
    assert!(
        found.contains(&"M4".to_owned()),
        "segment 1 kept: {found:?}"
    );
    assert_eq!(
        fs::read_dir(&dir.0).unwrap().count(),
        3,
        "no fourth segment"
    );
}

#[test]
fn forgets_written_without_a_sync_get_one_when_asked() {
    let dir = Dir::new("sync-forgets");
    let journal = start(&dir, JOURNAL_TEST_SIZES, Box::new(|| {}));
    let a = append(&journal, "A", b"a");
    journal.forget("A", a);
    // The writer takes the forget alone (no fdatasync); then nothing is pending.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lock(&journal.shared).has_unsynced && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(lock(&journal.shared).has_unsynced);
    journal.sync_forgets();
    journal.flush();
    assert!(!lock(&journal.shared).has_unsynced);
    // The writer is still there.
    append(&journal, "B", b"b");
    assert_eq!(ids(&dir), vec!["B"]);
}

#[test]
fn the_next_segment_is_made_before_the_current_one_fills() {
    let dir = Dir::new("ahead");
    let journal = start(&dir, SMALL, Box::new(|| {}));
    let body = vec![b'x'; 900];
    // Three entries of about 1 KiB, all live: segment 0 (4 KiB) is more than half written.
    for n in 0..3 {
        append(&journal, &format!("M{n}"), &body);
    }
    let next = dir.0.join("seg-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::metadata(&next).map_or(true, |m| m.len() < SMALL.segment_size)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let made = fs::read(&next).expect("segment 1 is made while segment 0 has room");
    assert_eq!(made.len() as u64, SMALL.segment_size);
    assert!(
        made.iter().all(|&b| b == 0),
        "nothing is written into it yet"
    );
    // The writer takes it into use when segment 0 is full, and recovery reads both.
    append(&journal, "M3", &body);
    append(&journal, "M4", &body);
    drop(journal);
    assert_eq!(ids(&dir), vec!["M0", "M1", "M2", "M3", "M4"]);
    assert_eq!(u32_at(&fs::read(&next).unwrap(), 0), Some(SEGMENT_MAGIC));
}
