//! The PostgreSQL queue against a real PostgreSQL (a private cluster on a loopback port,
//! started here with initdb): the same contract run against the file spool and the database,
//! then what only a shared queue does: disjoint claims of two nodes, a lease that runs out and
//! is taken over, LISTEN/NOTIFY wake-ups, migrations, and a database that goes away and comes
//! back (transient errors, never a stored id that is not there).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use petrel_pgqueue::cluster::{Cluster, Shutdown};
use petrel_pgqueue::{PgQueue, PgSettings};
use petrel_proto::params::Body;
use petrel_queue::spool::Spool;
use petrel_queue::{
    Claims, Envelope, NewMessage, Place, Queue, QueueError, Recipient, RecipientState, Shelf,
};

fn cluster() -> std::sync::MutexGuard<'static, Cluster> {
    static CLUSTER: OnceLock<Mutex<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| Mutex::new(Cluster::start().expect("a private PostgreSQL cluster")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A new database and its URL.
fn database(name: &str) -> String {
    let cluster = cluster();
    cluster.create_database(name).unwrap();
    cluster.url(name)
}

fn settings(url: &str, node: &str, lease: Duration) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        node_name: node.to_owned(),
        lease,
        pool_size: 4,
        claim_ahead: 0,
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        arrival_unix_seconds: 1_767_225_600,
        client_address: "127.0.0.1".into(),
        client_helo: "client.test".into(),
        reverse_path: "alice@example.test".into(),
        body: Body::EightBitMime,
        is_smtputf8: false,
        requires_tls: false,
        ret: None,
        envelope_id: None,
        recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
        message_id: Some("<contract@example.test>".into()),
        history: Vec::new(),
    }
}

fn store(queue: &dyn Queue, content: &[u8]) -> petrel_queue::QueueId {
    let header = |id: &petrel_queue::QueueId| format!("X-Queue-Id: {id}\r\n");
    queue
        .store(
            &envelope(&["bob@example.test", "carol@example.test"]),
            &NewMessage {
                header: &header,
                content,
                rest: None,
            },
        )
        .unwrap()
}

/// What every Queue must do, the same for both implementations.
fn contract(queue: &dyn Queue) {
    let id = store(queue, b"Subject: one\r\n\r\nbody\r\n");
    assert_eq!(queue.list().unwrap(), vec![id.clone()]);
    let stored = queue.read_message(&id).unwrap();
    assert_eq!(
        stored,
        format!("X-Queue-Id: {id}\r\nSubject: one\r\n\r\nbody\r\n").into_bytes()
    );
    assert_eq!(
        queue.message_size_in(&id, Place::Active).unwrap(),
        stored.len(),
        "the size without reading the message"
    );
    assert!(matches!(
        queue.message_size_in(&id, Place::Held),
        Err(QueueError::NotFound(_))
    ));
    let mut loaded = queue.load(&id).unwrap().envelope;
    assert_eq!(
        loaded,
        envelope(&["bob@example.test", "carol@example.test"])
    );
    assert_eq!(
        queue.summaries_in(Place::Active).unwrap(),
        vec![(id.clone(), loaded.clone(), stored.len())],
        "what `queue list` shows, in one read"
    );
    assert!(queue.summaries_in(Place::Held).unwrap().is_empty());

    loaded.recipients[0].state = RecipientState::Delivered;
    loaded.recipients[1].attempts = 1;
    loaded.recipients[1].next_attempt_unix_seconds = 4_000_000_000;
    loaded.history.push("attempt 1: 451 4.4.1 later".into());
    queue.update(&id, &loaded).unwrap();
    assert_eq!(queue.load(&id).unwrap().envelope, loaded);

    queue.hold(&id).unwrap();
    assert!(queue.list().unwrap().is_empty());
    assert_eq!(queue.list_in(Place::Held).unwrap(), vec![id.clone()]);
    assert!(matches!(queue.hold(&id), Err(QueueError::NotFound(_))));
    queue.release(&id).unwrap();
    assert!(matches!(queue.release(&id), Err(QueueError::NotFound(_))));
    assert_eq!(queue.list().unwrap(), vec![id.clone()]);

    loaded.recipients[1].state = RecipientState::Failed;
    queue.archive(&id, &loaded).unwrap();
    assert!(queue.list().unwrap().is_empty());
    assert_eq!(queue.load_in(&id, Place::Done).unwrap(), loaded);
    let done = queue.envelopes_in(Place::Done).unwrap();
    assert_eq!(done, vec![(id.clone(), loaded.clone())]);
    assert!(matches!(queue.load(&id), Err(QueueError::NotFound(_))));
    assert!(matches!(
        queue.update(&id, &loaded),
        Err(QueueError::NotFound(_))
    ));
    // Kept histories younger than a day survive a purge.
    assert_eq!(queue.purge_history(Duration::from_secs(86_400)).unwrap(), 0);
    assert_eq!(queue.list_in(Place::Done).unwrap(), vec![id.clone()]);
    std::thread::sleep(Duration::from_millis(1100));
    assert!(queue.purge_history(Duration::from_secs(1)).unwrap() >= 1);
    assert!(queue.list_in(Place::Done).unwrap().is_empty());

    let second = store(queue, b"Subject: two\r\n\r\nx\r\n");
    queue
        .quarantine(&second, "unreadable for the test")
        .unwrap();
    assert!(queue.list().unwrap().is_empty());
    assert!(matches!(
        queue.quarantine(&second, "again"),
        Err(QueueError::NotFound(_))
    ));

    let third = store(queue, b"Subject: three\r\n\r\nx\r\n");
    queue.remove(&third).unwrap();
    assert!(matches!(queue.remove(&third), Err(QueueError::NotFound(_))));
    assert!(matches!(
        queue.read_message(&third),
        Err(QueueError::NotFound(_))
    ));
    assert!(queue.list().unwrap().is_empty());

    // A burst of concurrent stores: every id handed out is there, none twice.
    let ids: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| (0..25).map(|_| store(queue, b"x\r\n")).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut listed = queue.list().unwrap();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 100);
    assert_eq!(listed, expected);

    // The records beside the queue: absent, set, replaced whole, keys case-blind.
    let records = queue.records();
    assert_eq!(records.get(Shelf::MtaSts, "example.org").unwrap(), None);
    records.put(Shelf::MtaSts, "example.org", b"first").unwrap();
    records
        .put(Shelf::MtaSts, "Example.ORG", b"second")
        .unwrap();
    assert_eq!(
        records
            .get(Shelf::MtaSts, "example.org")
            .unwrap()
            .as_deref(),
        Some(&b"second"[..])
    );
    // Set once: of two writers one wins; and read back by prefix.
    assert!(
        records
            .put_new(Shelf::TlsReports, "day/a.test/n1", b"1")
            .unwrap()
    );
    assert!(
        !records
            .put_new(Shelf::TlsReports, "day/a.test/n1", b"2")
            .unwrap()
    );
    records
        .put(Shelf::TlsReports, "day/a.test/n2", b"3")
        .unwrap();
    records
        .put(Shelf::TlsReports, "day/b.test/n1", b"4")
        .unwrap();
    let mut values = records
        .values_with_prefix(Shelf::TlsReports, "day/a.test/")
        .unwrap();
    values.sort();
    assert_eq!(values, [b"1".to_vec(), b"3".to_vec()]);
}

#[test]
fn the_contract_holds_for_the_spool() {
    let root = std::env::temp_dir().join(format!("petrel-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (spool, _) = Spool::open(root.clone()).unwrap();
    contract(&spool);
    assert!(
        spool.claims().is_none(),
        "a queue of one node has no claims"
    );
    drop(spool);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_contract_holds_for_postgres() {
    let url = database("contract");
    let (queue, report) = PgQueue::open(&settings(&url, "a", Duration::from_secs(60))).unwrap();
    assert_eq!(report.schema_version, 5);
    assert_eq!(report.active, 0);
    contract(&queue);
    assert!(
        queue.claims().is_some(),
        "a shared queue coordinates its nodes"
    );
    // The rows are where an operator looks: one table, with place and the storing node.
    let rows = cluster()
        .psql(
            "contract",
            "SELECT place, stored_by, count(*) FROM petrel_messages GROUP BY 1, 2 ORDER BY 1",
        )
        .unwrap();
    assert_eq!(rows.trim(), "active|a|100\ncorrupt|a|1");
}

#[test]
fn two_nodes_claim_disjoint_messages_and_a_dead_nodes_lease_is_taken_over() {
    let url = database("claims");
    let (a, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(60))).unwrap();
    let (b, _) = PgQueue::open(&settings(&url, "b", Duration::from_secs(60))).unwrap();
    let ids: Vec<_> = (0..20).map(|_| store(&a, b"x\r\n")).collect();
    let from_a = a.claim_due(8).unwrap();
    let from_b = b.claim_due(100).unwrap();
    assert_eq!(from_a.len(), 8);
    assert_eq!(from_b.len(), 12);
    let mut all: Vec<_> = from_a.iter().chain(&from_b).cloned().collect();
    all.sort();
    assert_eq!(all, ids, "every message claimed once, by one node");
    // Held by a, so b may not take it; a's own claim holds.
    assert!(!b.claim(&from_a[0]).unwrap());
    assert!(a.claim(&from_a[0]).unwrap());
    // The claim hands out what it fetched, and the message bytes are right.
    assert_eq!(
        a.read_message(&from_a[0]).unwrap(),
        format!("X-Queue-Id: {}\r\nx\r\n", from_a[0]).into_bytes()
    );
    // Given back, it is b's to take.
    a.unclaim(&from_a[0]).unwrap();
    assert!(b.claim(&from_a[0]).unwrap());

    // Node c claims with a 1 s lease and dies (no renewal, no unclaim).
    let (c, _) = PgQueue::open(&settings(&url, "c", Duration::from_secs(1))).unwrap();
    let late = store(&a, b"late\r\n");
    assert_eq!(c.claim_due(10).unwrap(), vec![late.clone()]);
    assert!(!a.claim(&late).unwrap(), "c's lease is fresh");
    let takeovers = || petrel_metrics::registry().value(petrel_metrics::QUEUE_LEASE_TAKEOVERS, &[]);
    let before = takeovers();
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(15);
    let taken = loop {
        let claimed = a.claim_due(10).unwrap();
        if !claimed.is_empty() || Instant::now() > deadline {
            break claimed;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(taken, vec![late]);
    assert_eq!(takeovers(), before + 1);
}

#[test]
fn a_live_nodes_lease_is_renewed_past_its_length() {
    let url = database("renewal");
    let (a, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(1))).unwrap();
    let (b, _) = PgQueue::open(&settings(&url, "b", Duration::from_secs(1))).unwrap();
    let id = store(&a, b"x\r\n");
    assert!(a.claim(&id).unwrap());
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !b.claim(&id).unwrap(),
        "a still works on it, its lease was renewed"
    );
    a.unclaim(&id).unwrap();
    assert!(b.claim(&id).unwrap());
}

#[test]
fn a_store_on_one_node_wakes_the_other_but_not_itself() {
    let url = database("notify");
    let (a, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(60))).unwrap();
    let (b, _) = PgQueue::open(&settings(&url, "b", Duration::from_secs(60))).unwrap();
    let woken_a = Arc::new(AtomicUsize::new(0));
    let woken_b = Arc::new(AtomicUsize::new(0));
    let (count_a, count_b) = (woken_a.clone(), woken_b.clone());
    a.on_wake(Box::new(move || {
        count_a.fetch_add(1, Ordering::SeqCst);
    }));
    b.on_wake(Box::new(move || {
        count_b.fetch_add(1, Ordering::SeqCst);
    }));
    // b's LISTEN may not be up yet: store again until a notification reaches it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while woken_b.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        store(&a, b"x\r\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        woken_b.load(Ordering::SeqCst) > 0,
        "b was woken by a's stores"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        woken_a.load(Ordering::SeqCst),
        0,
        "a is not woken by its own stores"
    );
    // A release from any node wakes the others (and itself).
    let id = a.list().unwrap()[0].clone();
    while woken_a.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        b.hold(&id).unwrap();
        b.release(&id).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        woken_a.load(Ordering::SeqCst) > 0,
        "a was woken by b's release"
    );
}

#[test]
fn migrations_are_applied_once_and_a_newer_schema_is_refused() {
    let url = database("migrations");
    let opened: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = ["m1", "m2", "m3"]
            .into_iter()
            .map(|node| {
                let url = url.clone();
                scope.spawn(move || PgQueue::open(&settings(&url, node, Duration::from_secs(60))))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for result in &opened {
        assert_eq!(result.as_ref().unwrap().1.schema_version, 5);
    }
    drop(opened);
    let versions = cluster()
        .psql(
            "migrations",
            "SELECT version FROM petrel_schema_migrations ORDER BY version",
        )
        .unwrap();
    assert_eq!(
        versions.split_whitespace().collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5"]
    );
    // Debian's PostgreSQL is built with lz4: migration 5 gives the content column lz4.
    let compression = cluster()
        .psql(
            "migrations",
            "SELECT attcompression FROM pg_attribute \
             WHERE attrelid = 'petrel_messages'::regclass AND attname = 'message'",
        )
        .unwrap();
    assert_eq!(compression.trim(), "l");
    assert!(
        PgQueue::check(&url)
            .unwrap()
            .contains("petrel schema version 5 of 5")
    );
    cluster()
        .psql(
            "migrations",
            "INSERT INTO petrel_schema_migrations (version) VALUES (99)",
        )
        .unwrap();
    let refused = PgQueue::open(&settings(&url, "m4", Duration::from_secs(60)));
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("schema version 99"), "{message}");
}

#[test]
fn a_lost_database_gives_transient_errors_and_the_queue_recovers_by_itself() {
    // A cluster of its own: the other tests keep theirs while this one goes down.
    let mut cluster = Cluster::start().unwrap();
    cluster.create_database("outage").unwrap();
    let url = cluster.url("outage");
    let (queue, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(60))).unwrap();
    let before = store(&queue, b"before\r\n");
    cluster.stop(Shutdown::Immediate).unwrap();
    let header = |_: &petrel_queue::QueueId| String::new();
    let failed = queue.store(
        &envelope(&["bob@example.test"]),
        &NewMessage {
            header: &header,
            content: b"during\r\n",
            rest: None,
        },
    );
    let error = failed.expect_err("no store without a database");
    assert!(error.is_transient(), "{error}");
    assert!(queue.list().err().is_some_and(|e| e.is_transient()));
    cluster.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        match queue.list() {
            Ok(listed) => break listed,
            Err(error) if Instant::now() > deadline => panic!("no recovery: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    // What was committed before the crash is there; the failed store left nothing.
    assert_eq!(listed, vec![before]);
    store(&queue, b"after\r\n");
    assert_eq!(queue.list().unwrap().len(), 2);
}

#[test]
fn a_restarted_node_gives_back_the_leases_of_its_earlier_run() {
    let url = database("restart_leases");
    let (a, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(600))).unwrap();
    let id = store(&a, b"x\r\n");
    assert!(a.claim(&id).unwrap());
    drop(a);
    // A command opening the queue under a's name leaves the lease alone...
    let (command, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(600))).unwrap();
    let (b, _) = PgQueue::open(&settings(&url, "b", Duration::from_secs(600))).unwrap();
    assert!(!b.claim(&id).unwrap());
    drop(command);
    // ...the daemon starting again under that name gives it back at once.
    let (restarted, _) = PgQueue::open(&settings(&url, "a", Duration::from_secs(600))).unwrap();
    assert_eq!(restarted.release_leases_of_earlier_run().unwrap(), 1);
    assert!(b.claim(&id).unwrap());
}

#[test]
fn a_node_keeps_the_new_mail_it_has_room_for_and_shares_the_rest() {
    let url = database("keep");
    let mut keeping = settings(&url, "a", Duration::from_secs(60));
    keeping.claim_ahead = 2;
    let (a, _) = PgQueue::open(&keeping).unwrap();
    let (b, _) = PgQueue::open(&settings(&url, "b", Duration::from_secs(60))).unwrap();
    let kept: Vec<_> = (0..2).map(|_| store(&a, b"kept\r\n")).collect();
    let shared = store(&a, b"shared\r\n");
    // The first two are a's from the start; the third is there for any node.
    assert_eq!(b.claim_due(10).unwrap(), vec![shared]);
    for id in &kept {
        assert!(!b.claim(id).unwrap(), "kept by a");
    }
    // Leased to a in the same INSERT; the shared one is claimed by b now.
    let owners = cluster()
        .psql(
            "keep",
            "SELECT stored_by, lease_owner FROM petrel_messages ORDER BY id",
        )
        .unwrap();
    assert_eq!(owners.trim(), "a|a\na|a\na|b");
    for id in &kept {
        assert!(a.claim(id).unwrap());
        assert_eq!(
            a.read_message(id).unwrap(),
            format!("X-Queue-Id: {id}\r\nkept\r\n").into_bytes()
        );
    }
    a.unclaim(&kept[0]).unwrap();
    assert!(b.claim(&kept[0]).unwrap());
}

#[test]
fn the_directory_changes_raise_its_version_and_load_reads_them_back() {
    use petrel_pgqueue::directory::{Change, DirectoryStore};
    let url = database("directory");
    let store = DirectoryStore::connect(&url, "test").unwrap();
    let empty = store.load().unwrap();
    assert_eq!((empty.version, empty.domains.len()), (0, 0));
    assert!(
        store
            .change(Change::AddDomain("example.org".into()))
            .unwrap()
    );
    assert!(
        !store
            .change(Change::AddDomain("example.org".into()))
            .unwrap(),
        "adding it again changes nothing"
    );
    assert!(
        store
            .change(Change::AddMailbox("alice@example.org".into()))
            .unwrap()
    );
    let alias = |targets: &str| Change::SetAlias {
        name: "team@example.org".into(),
        targets: targets.into(),
    };
    assert!(store.change(alias("alice@example.org")).unwrap());
    assert!(!store.change(alias("alice@example.org")).unwrap());
    assert!(
        store
            .change(alias("alice@example.org, bob@remote.example"))
            .unwrap()
    );
    assert!(
        store
            .change(Change::SetUser {
                name: "alice".into(),
                hash: "$argon2id$x".into()
            })
            .unwrap()
    );
    assert_eq!(store.version().unwrap(), 5);
    let directory = store.load().unwrap();
    assert_eq!(directory.version, 5);
    assert_eq!(directory.domains, ["example.org"]);
    assert_eq!(directory.mailboxes, ["alice@example.org"]);
    assert_eq!(
        directory.aliases,
        [(
            "team@example.org".to_owned(),
            "alice@example.org, bob@remote.example".to_owned()
        )]
    );
    assert_eq!(
        directory.users,
        [("alice".to_owned(), "$argon2id$x".to_owned())]
    );
    assert!(
        store
            .change(Change::RemoveDomain("example.org".into()))
            .unwrap()
    );
    assert!(!store.change(Change::RemoveUser("nobody".into())).unwrap());
    let after = store.load().unwrap();
    assert_eq!((after.version, after.domains.len()), (6, 0));
}

#[test]
fn stores_that_wait_for_a_commit_share_the_next_one() {
    // Stores made while the table is locked (as while a commit is under way) go in together
    // once it is free: each row's stored_at is the start of its transaction, so the distinct
    // values count the commits. Every store is answered with its id, after its commit.
    let url = database("grouped");
    let (queue, _) = PgQueue::open(&settings(&url, "g", Duration::from_secs(60))).unwrap();
    let lock = TableLock::take("grouped");
    let (tx, rx) = std::sync::mpsc::channel();
    let header = |id: &petrel_queue::QueueId| format!("X-Queue-Id: {id}\r\n");
    for n in 0..50 {
        let tx = tx.clone();
        queue.store_then(
            &envelope(&["bob@example.test"]),
            &NewMessage {
                header: &header,
                content: format!("Subject: {n}\r\n\r\nbody\r\n").as_bytes(),
                rest: None,
            },
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no store is answered before its commit"
    );
    lock.release();
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(queue.list().unwrap().len(), 50);
    let commits: usize = cluster()
        .psql(
            "grouped",
            "SELECT count(DISTINCT stored_at) FROM petrel_messages",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Each writer blocked on the lock holds what was queued when it started; everything
    // queued after that waits for the next commit: a handful of commits in all, not 50.
    assert!(commits <= 4, "{commits} commits for 50 stores");
}

#[test]
fn a_row_the_database_refuses_fails_alone_in_its_batch() {
    // Two stores in one batch (queued behind a commit that waits on a lock); the database
    // refuses one of them (a CHECK constraint made for the test: SQLSTATE 23514, as any row
    // whose data it refuses): that one fails, the other is stored.
    let url = database("refused");
    let (queue, _) = PgQueue::open(&settings(&url, "r", Duration::from_secs(60))).unwrap();
    cluster()
        .psql(
            "refused",
            "ALTER TABLE petrel_messages ADD CONSTRAINT refused_helo \
             CHECK (envelope NOT LIKE '%refused-helo.test%')",
        )
        .unwrap();
    let first = store(&queue, b"Subject: first\r\n\r\nbody\r\n");
    let lock = TableLock::take("refused");
    let (tx, rx) = std::sync::mpsc::channel();
    let header = |id: &petrel_queue::QueueId| format!("X-Queue-Id: {id}\r\n");
    // The first store waits on the lock alone; these two queue behind it, one batch.
    for (n, helo) in ["blocked.test", "good.test", "refused-helo.test"]
        .iter()
        .enumerate()
    {
        let mut envelope = envelope(&["bob@example.test"]);
        envelope.client_helo = (*helo).to_owned();
        let tx = tx.clone();
        queue.store_then(
            &envelope,
            &NewMessage {
                header: &header,
                content: b"Subject: batch\r\n\r\nbody\r\n",
                rest: None,
            },
            Box::new(move |result| {
                let _ = tx.send((n, result));
            }),
        );
        if n == 0 {
            // Let the writer take the first one before the others are queued.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    lock.release();
    let mut results: Vec<(usize, Result<petrel_queue::QueueId, QueueError>)> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    results.sort_by_key(|(n, _)| *n);
    assert!(results[0].1.is_ok(), "{:?}", results[0]);
    assert!(
        results[1].1.is_ok(),
        "the good row is stored: {:?}",
        results[1]
    );
    assert!(
        results[2].1.is_err(),
        "the refused row fails: {:?}",
        results[2]
    );
    let listed = queue.list().unwrap();
    assert_eq!(listed.len(), 3, "first, blocked and good: {listed:?}");
    assert!(listed.contains(&first));
}

/// An ACCESS EXCLUSIVE lock on petrel_messages of a database, held by a psql session in an
/// open transaction (as a long commit would hold the table), until `release` or the end of
/// the test.
struct TableLock {
    psql: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl TableLock {
    /// Takes the lock; returns once the database shows it granted.
    fn take(database: &str) -> TableLock {
        let mut psql = std::process::Command::new("psql")
            .args(cluster().psql_connection(database))
            .args(["-X", "-q"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = psql.stdin.take().unwrap();
        std::io::Write::write_all(
            &mut stdin,
            b"BEGIN;\nLOCK TABLE petrel_messages IN ACCESS EXCLUSIVE MODE;\n",
        )
        .unwrap();
        let lock = TableLock {
            psql,
            stdin: Some(stdin),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster()
            .psql(
                database,
                "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock' \
                 AND relation = 'petrel_messages'::regclass \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .unwrap()
            .trim()
            != "1"
        {
            assert!(Instant::now() < deadline, "the lock was not taken");
            std::thread::sleep(Duration::from_millis(20));
        }
        lock
    }

    /// Ends the transaction: the table is free.
    fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"COMMIT;\n");
        }
        let _ = self.psql.wait();
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}
