//! Several petrel nodes on one PostgreSQL queue (issue 8), always on a real PostgreSQL (a
//! private cluster on loopback, see backend.rs), with real receiving servers:
//! - mail accepted by two nodes is delivered exactly once to a receiving petrel, and either
//!   node's `queue show` finds the history of mail the other accepted;
//! - a node killed with SIGKILL while it delivers: the other node takes its messages over once
//!   the leases run out, and every accepted message arrives;
//! - the database restarted (immediate shutdown, as a crash) under load: clients get
//!   451 4.3.0 while it is away, never a 250 for a message that is then lost.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petrel_pgqueue::cluster::{Cluster, Shutdown};

use crate::harness::{Petrel, Scratch, send_one, wait_until};

/// The `[queue]` table of a node on `url`.
fn shared_queue(url: &str, node: &str, lease: &str) -> String {
    format!(
        "[queue]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{node}\"\nlease = \"{lease}\"\n"
    )
}

/// The Subject of each message in `user@domain`'s Maildir, with how often it arrived.
fn subjects(petrel: &Petrel, domain: &str, user: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in petrel.maildir(domain, user) {
        let text = String::from_utf8_lossy(&message).into_owned();
        if let Some(subject) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *counts.entry(subject.trim().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "Subject: {subject}\r\nMessage-ID: <{subject}@cluster.test>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// Sends one message with `subject` to user@remote.test through `petrel`; it must be taken.
fn send_to_remote(petrel: &Petrel, subject: &str) -> String {
    let reply = send_one(
        petrel.address,
        "sender@localhost",
        &["user@remote.test"],
        &message(subject),
    );
    assert!(reply.starts_with("250"), "{reply}");
    subject.to_owned()
}

/// The queue id of the first message `petrel` logged as queued.
fn first_queue_id(petrel: &Petrel) -> String {
    petrel
        .log_text()
        .lines()
        .find(|l| l.contains("queued session="))
        .and_then(|l| l.split("queue_id=").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or("").to_owned())
        .unwrap()
}

/// Scratch directories for a receiver and nodes a and b.
fn scratches(name: &str) -> (Scratch, Scratch, Scratch) {
    (
        Scratch::new(&format!("{name}-r")),
        Scratch::new(&format!("{name}-a")),
        Scratch::new(&format!("{name}-b")),
    )
}

/// The receiving server: a petrel of its own for remote.test, with the file spool.
fn receiving_petrel(scratch: &Scratch) -> Petrel {
    Petrel::start_for(
        &scratch.0,
        "mx.remote.test",
        &["remote.test"],
        "[queue]\nbackend = \"spool\"\n",
    )
}

#[test]
fn two_nodes_deliver_every_message_exactly_once_and_share_the_history() {
    let url = crate::backend::new_database();
    let (scratch_r, scratch_a, scratch_b) = scratches("cl");
    let receiver = receiving_petrel(&scratch_r);
    let route = format!(
        "[[delivery.route]]\ndomain = \"remote.test\"\nnexthop = \"[127.0.0.1]:{}\"\n",
        receiver.address.port()
    );
    let a = Petrel::start_for(
        &scratch_a.0,
        "a.cluster.test",
        &["localhost"],
        &format!("{}\n{route}", shared_queue(&url, "a", "60s")),
    );
    let b = Petrel::start_for(
        &scratch_b.0,
        "b.cluster.test",
        &["localhost"],
        &format!("{}\n{route}", shared_queue(&url, "b", "60s")),
    );
    let mut expected = Vec::new();
    for n in 0..20 {
        for (node, petrel) in [("a", &a), ("b", &b)] {
            expected.push(send_to_remote(petrel, &format!("{node}-{n}")));
        }
    }
    expected.sort();
    wait_until("40 messages at the receiver", || {
        receiver.maildir("remote.test", "user").len() >= 40
    });
    // Both queues drain; nothing comes twice.
    wait_until("both nodes to finish", || {
        a.log_text()
            .matches("finished: every recipient is done")
            .count()
            + b.log_text()
                .matches("finished: every recipient is done")
                .count()
            >= 40
    });
    std::thread::sleep(Duration::from_secs(1));
    let seen = subjects(&receiver, "remote.test", "user");
    let once: Vec<String> = seen.keys().cloned().collect();
    assert_eq!(once, expected);
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");

    // Either node answers for the shared queue: b shows the history of mail a accepted.
    let id = first_queue_id(&a);
    let (_, shown) = b.queue(&["show", &id]);
    assert!(
        shown.contains(&id) && shown.contains("user@remote.test"),
        "{shown}"
    );
    assert!(a.queue(&["list"]).1.contains("the queue is empty"));
}

/// A TCP gate in front of `target`: connections from `held_source` are accepted and kept
/// silent (the sender waits for a greeting that never comes) until `release`; all others are
/// relayed.
struct Gate {
    address: SocketAddr,
    held: Arc<AtomicUsize>,
    kept: Arc<Mutex<Vec<TcpStream>>>,
    released: Arc<AtomicBool>,
    target: SocketAddr,
}

impl Gate {
    fn start(target: SocketAddr, held_source: std::net::IpAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let held = Arc::new(AtomicUsize::new(0));
        let kept: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let released = Arc::new(AtomicBool::new(false));
        let (count, keep, is_released) = (held.clone(), kept.clone(), released.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if stream.peer_addr().is_ok_and(|p| p.ip() == held_source)
                    && !is_released.load(Ordering::SeqCst)
                {
                    count.fetch_add(1, Ordering::SeqCst);
                    keep.lock().unwrap().push(stream);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                relay(stream, upstream);
            }
        });
        Gate {
            address,
            held,
            kept,
            released,
            target,
        }
    }

    /// Lets the held connections (and later ones) through to the target.
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        for stream in self.kept.lock().unwrap().drain(..) {
            let upstream = TcpStream::connect(self.target).unwrap();
            relay(stream, upstream);
        }
    }
}

fn relay(client: TcpStream, upstream: TcpStream) {
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
        (upstream, client),
    ] {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

#[test]
fn a_node_killed_while_delivering_leaves_its_messages_to_the_other() {
    let url = crate::backend::new_database();
    let (scratch_r, scratch_a, scratch_b) = scratches("kill");
    let receiver = receiving_petrel(&scratch_r);
    // a connects from 127.0.0.2 and is held at the gate; b from 127.0.0.3 goes through.
    let gate = Gate::start(receiver.address, [127, 0, 0, 2].into());
    let node = |scratch: &Scratch, name: &str, source: &str| {
        Petrel::start_for(
            &scratch.0,
            &format!("{name}.cluster.test"),
            &["localhost"],
            &format!(
                "{}\n[delivery]\nsource_address = \"{source}\"\n\n[[delivery.route]]\ndomain = \"remote.test\"\nnexthop = \"[127.0.0.1]:{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n",
                shared_queue(&url, name, "2s"),
                gate.address.port()
            ),
        )
    };
    let mut a = node(&scratch_a, "a", "127.0.0.2");
    let b = node(&scratch_b, "b", "127.0.0.3");
    let mut expected = Vec::new();
    for n in 0..10 {
        expected.push(send_to_remote(&a, &format!("kill-{n}")));
    }
    expected.sort();
    // a is in the middle of delivering (connected, waiting for the greeting) when it dies.
    wait_until("a to connect to the gate", || {
        gate.held.load(Ordering::SeqCst) > 0
    });
    // b's operator cannot hold a message a is delivering (a's lease says so).
    let id = first_queue_id(&a);
    let (held, said) = b.queue(&["hold", &id]);
    assert!(!held, "{said}");
    assert!(said.contains("being delivered by another node"), "{said}");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    wait_until("every message at the receiver", || {
        subjects(&receiver, "remote.test", "user").len() >= 10
    });
    let seen = subjects(&receiver, "remote.test", "user");
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    let samples = crate::metrics::scrape(&b);
    let takeovers = samples
        .get("petrel_queue_lease_takeovers_total")
        .copied()
        .unwrap_or(0.0);
    assert!(takeovers >= 1.0, "b took a's leases over: {samples:?}");
    assert!(
        samples
            .keys()
            .any(|k| k
                .starts_with("petrel_queue_database_microseconds_total{operation=\"claim_due\"}")),
        "database latency is exported"
    );
}

#[test]
fn a_database_restart_under_load_gives_451_never_a_lost_250() {
    // A cluster of its own, so the restart does not disturb the other tests.
    let mut cluster = Cluster::start().unwrap();
    cluster.create_database("restart").unwrap();
    let scratch = Scratch::new("pg-restart");
    let petrel = Petrel::start_for(
        &scratch.0,
        "a.cluster.test",
        &["localhost"],
        &shared_queue(&cluster.url("restart"), "a", "10s"),
    );
    let address = petrel.address;
    let replies: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, done) = (replies.clone(), stop.clone());
    let load = std::thread::spawn(move || {
        let started = Instant::now();
        for n in 0..400 {
            if done.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            let subject = format!("load-{n}");
            let reply = send_one(
                address,
                "sender@localhost",
                &["bob@localhost"],
                &message(&subject),
            );
            sent.lock().unwrap().push((subject, reply));
        }
    });
    wait_until("the first 20 replies", || {
        replies.lock().unwrap().len() >= 20
    });
    cluster.stop(Shutdown::Immediate).unwrap();
    wait_until("a 451 while the database is away", || {
        replies
            .lock()
            .unwrap()
            .iter()
            .any(|(_, r)| r.starts_with("451"))
    });
    cluster.start_again().unwrap();
    // Load goes on until the database accepts again, then a little longer.
    wait_until("250 again after the restart", || {
        let replies = replies.lock().unwrap();
        let first_451 = replies.iter().position(|(_, r)| r.starts_with("451"));
        first_451.is_some_and(|at| {
            replies[at..]
                .iter()
                .filter(|(_, r)| r.starts_with("250"))
                .count()
                >= 10
        })
    });
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let replies = replies.lock().unwrap().clone();
    for (subject, reply) in &replies {
        assert!(
            reply.starts_with("250") || reply.starts_with("451 4.3.0"),
            "{subject}: {reply}"
        );
    }
    let accepted: Vec<&String> = replies
        .iter()
        .filter(|(_, r)| r.starts_with("250"))
        .map(|(s, _)| s)
        .collect();
    wait_until("every accepted message in the Maildir", || {
        let seen = subjects(&petrel, "localhost", "bob");
        accepted.iter().all(|s| seen.contains_key(*s))
    });
    let refused = replies.len() - accepted.len();
    eprintln!(
        "database restart under load: {} accepted (all delivered), {refused} refused with 451 4.3.0",
        accepted.len()
    );
    assert!(
        refused >= 1 && accepted.len() >= 30,
        "{refused} refused, {} accepted",
        accepted.len()
    );
}

#[test]
fn check_config_connects_to_the_database_and_names_what_it_found() {
    let url = crate::backend::new_database();
    let scratch = Scratch::new("pg-check");
    let write = |name: &str, url: &str| {
        let path = scratch.0.join(name);
        std::fs::write(
            &path,
            format!(
                "hostname = \"mx.test\"\ndata_dir = \"{}\"\n\n{}",
                scratch.0.join("data").display(),
                shared_queue(url, "mx1", "60s")
            ),
        )
        .unwrap();
        path
    };
    let petrel = |args: &[&str], config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    };
    let good = write("good.toml", &url);
    let checked = petrel(&["check-config"], &good);
    let stdout = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(checked.status.success(), "{stdout}");
    assert!(
        stdout.contains("queue = postgres, node mx1 (PostgreSQL ")
            && stdout.contains("petrel schema version 0 of 5"),
        "{stdout}"
    );
    // Nothing listens on the port of a closed listener: a clear refusal, at check and at start.
    let closed = crate::harness::closed_port();
    let bad = write(
        "bad.toml",
        &format!("postgres://postgres@127.0.0.1:{closed}/petrel"),
    );
    for args in [&["check-config"][..], &["serve"][..]] {
        let refused = petrel(args, &bad);
        let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            stderr.contains("database") && stderr.contains("refused"),
            "{args:?}: {stderr}"
        );
    }
}

/// Fencing (issue 18, item 5): node a is stopped (SIGSTOP) in the middle of its deliveries for
/// longer than its lease; b takes the messages over and records its own attempt (deferred: its
/// route leads to a closed port). When a continues (SIGCONT) and its deliveries succeed, its
/// records are refused (the claim's epoch is gone): b's state stands, a logs and counts the
/// lost lease. Losses: none (every message arrived); duplicates: none so far (b's retries
/// would be the duplicates; they are not reached here).
#[test]
fn a_node_paused_past_its_lease_cannot_overwrite_the_new_owner() {
    let url = crate::backend::new_database();
    let (scratch_r, scratch_a, scratch_b) = scratches("fence");
    let receiver = receiving_petrel(&scratch_r);
    let gate = Gate::start(receiver.address, [127, 0, 0, 2].into());
    let closed = crate::harness::closed_port();
    let node = |scratch: &Scratch, name: &str, source: &str, port: u16| {
        Petrel::start_for(
            &scratch.0,
            &format!("{name}.cluster.test"),
            &["localhost"],
            &format!(
                "{}\n[delivery]\nsource_address = \"{source}\"\nretry = [\"1h\"]\n\n[[delivery.route]]\ndomain = \"remote.test\"\nnexthop = \"[127.0.0.1]:{port}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n",
                shared_queue(&url, name, "2s"),
            ),
        )
    };
    let a = node(&scratch_a, "a", "127.0.0.2", gate.address.port());
    let b = node(&scratch_b, "b", "127.0.0.3", closed);
    let mut expected = Vec::new();
    for n in 0..3 {
        expected.push(send_to_remote(&a, &format!("fence-{n}")));
    }
    wait_until("a to connect to the gate", || {
        gate.held.load(Ordering::SeqCst) > 0
    });
    let id = first_queue_id(&a);
    a.signal("STOP");
    // b takes the message over once a's lease has run out, and its attempt is deferred.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, shown) = b.queue(&["show", &id]);
        if shown.contains("deferred") {
            break;
        }
        assert!(Instant::now() < deadline, "b never deferred {id}: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    gate.release();
    a.signal("CONT");
    wait_until("a's deliveries to arrive", || {
        subjects(&receiver, "remote.test", "user").contains_key(&expected[0])
    });
    wait_until("a to find its lease lost", || {
        a.log_text().contains("lease lost")
    });
    let samples = crate::metrics::scrape(&a);
    assert!(
        samples
            .get("petrel_queue_leases_lost_total")
            .is_some_and(|n| *n >= 1.0),
        "{samples:?}"
    );
    // b's record stands: the message is still queued, deferred, with b's attempt.
    let (_, shown) = b.queue(&["show", &id]);
    assert!(shown.contains("deferred"), "{shown}");
    let (_, listed) = b.queue(&["list"]);
    assert!(listed.contains(&id), "{listed}");
    let seen = subjects(&receiver, "remote.test", "user");
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    drop(a);
}

/// A TCP relay in front of PostgreSQL for one node: `cut` closes every connection it relays
/// and refuses new ones (the node is cut off from the database) until `restore`.
struct Cable {
    port: u16,
    is_cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Cable {
    fn start(target: SocketAddr) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let is_cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut, kept) = (is_cut.clone(), streams.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                let mut kept = kept.lock().unwrap();
                kept.push(stream.try_clone().unwrap());
                kept.push(upstream.try_clone().unwrap());
                relay(stream, upstream);
            }
        });
        Cable {
            port,
            is_cut,
            streams,
        }
    }

    fn cut(&self) {
        self.is_cut.store(true, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.is_cut.store(false, Ordering::SeqCst);
    }
}

/// Fencing (issue 18, item 5), the second case: node a reaches the database through a cable
/// that is cut (its connections closed, new ones refused) while a's deliveries are under way,
/// for longer than its 2 s lease. a logs and counts the failed renewals; b takes the messages
/// over and defers them (its route leads to a closed port). The cable is restored, a's
/// deliveries complete, and its records are refused (the lease is lost): b's state stands.
/// Losses: none (every message arrived once); duplicates: none here (b's retry in an hour
/// would be one, which is what at-least-once delivery allows).
#[test]
fn a_node_cut_off_from_the_database_cannot_overwrite_the_new_owner() {
    let url = crate::backend::new_database();
    let (scratch_r, scratch_a, scratch_b) = scratches("cutoff");
    let receiver = receiving_petrel(&scratch_r);
    let gate = Gate::start(receiver.address, [127, 0, 0, 2].into());
    let closed = crate::harness::closed_port();
    let database_port: u16 = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap();
    let cable = Cable::start(SocketAddr::from(([127, 0, 0, 1], database_port)));
    let url_a = url.replace(&format!(":{database_port}/"), &format!(":{}/", cable.port));
    let node = |scratch: &Scratch, name: &str, url: &str, source: &str, port: u16| {
        Petrel::start_for(
            &scratch.0,
            &format!("{name}.cluster.test"),
            &["localhost"],
            &format!(
                "{}\n[delivery]\nsource_address = \"{source}\"\nretry = [\"1h\"]\n\n[[delivery.route]]\ndomain = \"remote.test\"\nnexthop = \"[127.0.0.1]:{port}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n",
                shared_queue(url, name, "2s"),
            ),
        )
    };
    let a = node(&scratch_a, "a", &url_a, "127.0.0.2", gate.address.port());
    let b = node(&scratch_b, "b", &url, "127.0.0.3", closed);
    let mut expected = Vec::new();
    for n in 0..3 {
        expected.push(send_to_remote(&a, &format!("cutoff-{n}")));
    }
    wait_until("a to connect to the gate", || {
        gate.held.load(Ordering::SeqCst) > 0
    });
    let id = first_queue_id(&a);
    cable.cut();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, shown) = b.queue(&["show", &id]);
        if shown.contains("deferred") {
            break;
        }
        assert!(Instant::now() < deadline, "b never deferred {id}: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until("a to log its failed renewals", || {
        a.log_text().contains("cannot renew this node's leases")
    });
    cable.restore();
    gate.release();
    wait_until("a's deliveries to arrive", || {
        let seen = subjects(&receiver, "remote.test", "user");
        expected.iter().all(|subject| seen.contains_key(subject))
    });
    wait_until("a to find its lease lost", || {
        a.log_text().contains("lease lost")
    });
    let samples = crate::metrics::scrape(&a);
    for counter in [
        "petrel_queue_leases_lost_total",
        "petrel_queue_lease_renewal_failures_total",
    ] {
        assert!(
            samples.get(counter).is_some_and(|n| *n >= 1.0),
            "{counter}: {samples:?}"
        );
    }
    // b's record stands: the message is still queued, deferred, with b's attempt.
    let (_, shown) = b.queue(&["show", &id]);
    assert!(shown.contains("deferred"), "{shown}");
    let seen = subjects(&receiver, "remote.test", "user");
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    drop(a);
}
