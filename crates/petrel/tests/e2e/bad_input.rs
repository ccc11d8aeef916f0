//! Bad input over a real socket: garbage, over-long lines, 10,000 recipients, a trickling
//! client, hundreds of connections, hostile local parts. The server answers as the checklist
//! says and keeps serving everyone else.

use std::io::Write;
use std::time::Duration;

use crate::harness::{Petrel, RawClient, Scratch};

/// A well-behaved client still gets its mail through.
fn still_serves(petrel: &Petrel, user: &str) {
    let mut client = RawClient::connect(petrel.address);
    assert!(client.reply().starts_with("220 "));
    client.command("EHLO ok.test");
    let reply = client.send_message(
        "a@example.test",
        &[&format!("{user}@localhost")],
        b"Subject: ok\r\n\r\nok\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    assert_eq!(petrel.wait_for_maildir("localhost", user, 1).len(), 1);
}

#[test]
fn garbage_and_long_lines() {
    let scratch = Scratch::new("garbage");
    let petrel = Petrel::start(&scratch.0, "");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    // S-SESS-8: unknown command; S-SMUG-3: a bare LF does not end a command.
    assert_eq!(
        client.command("\u{1}\u{7f}garbage"),
        "500 5.5.2 Command unrecognized\r\n"
    );
    client.send(b"NOOP\nQUIT\r\n");
    assert!(client.reply().starts_with("500 5.5.2 Bare CR or LF"));
    client.send(&[0xff, 0xfe, 0x00, b'\r', b'\n']);
    assert!(client.reply().starts_with("500 5.5.2"));
    // S-LINE-6: a command line over the limit, then the session goes on.
    let long = format!("NOOP {}", "x".repeat(100_000));
    assert_eq!(client.command(&long), "500 5.5.2 Line too long\r\n");
    assert_eq!(client.command("NOOP"), "250 2.0.0 OK\r\n");
    // S-LINE-7: a data line over 64 KiB: read to the end, then 554 5.6.0.
    client.command("EHLO garbage.test");
    let content = format!("Subject: long\r\n\r\n{}\r\n", "y".repeat(70_000));
    let reply = client.send_message("a@example.test", &["g@localhost"], content.as_bytes());
    assert!(reply.starts_with("554 5.6.0"), "{reply}");
    still_serves(&petrel, "after-garbage");
}

#[test]
fn ten_thousand_recipients() {
    let scratch = Scratch::new("recipients");
    let petrel = Petrel::start(&scratch.0, "");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO many.test");
    assert!(
        client
            .command("MAIL FROM:<a@example.test>")
            .starts_with("250")
    );
    // Pipelined, as a real bulk client would (PIPELINING is advertised).
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(format!("RCPT TO:<r{i}@localhost>\r\n").as_bytes());
    }
    let writer = {
        let mut stream = client.stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&batch).unwrap())
    };
    let mut accepted = 0;
    let mut too_many = 0;
    for _ in 0..10_000 {
        let reply = client.reply();
        if reply.starts_with("250 2.1.5") {
            accepted += 1;
        } else if reply == "452 4.5.3 Too many recipients\r\n" {
            too_many += 1;
        } else {
            panic!("unexpected reply {reply:?}");
        }
    }
    writer.join().unwrap();
    // S-LINE-4, S-LINE-5: the first 100 are kept, every extra one gets 452 4.5.3.
    assert_eq!((accepted, too_many), (100, 9_900));
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: many\r\n\r\nhi\r\n.\r\n");
    assert!(client.reply().starts_with("250 2.0.0 queued as"));
    assert_eq!(petrel.wait_for_maildir("localhost", "r99", 1).len(), 1);
    assert!(petrel.maildir("localhost", "r100").is_empty());
}

#[test]
fn trickling_client_does_not_block_others() {
    let scratch = Scratch::new("trickle");
    let petrel = Petrel::start(&scratch.0, "");
    let mut slow = RawClient::connect(petrel.address);
    slow.reply();
    let trickler = {
        let mut stream = slow.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for byte in b"NOOP\r\n" {
                stream.write_all(&[*byte]).unwrap();
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    still_serves(&petrel, "while-trickling");
    trickler.join().unwrap();
    assert_eq!(slow.reply(), "250 2.0.0 OK\r\n");
}

#[test]
fn hundreds_of_concurrent_connections() {
    let scratch = Scratch::new("connections");
    let petrel = Petrel::start(&scratch.0, "");
    let mut clients: Vec<RawClient> = (0..300)
        .map(|_| RawClient::connect(petrel.address))
        .collect();
    for client in &mut clients {
        assert!(client.reply().starts_with("220 mx.test ESMTP"));
    }
    for (i, client) in clients.iter_mut().enumerate().step_by(30) {
        client.command("EHLO many.test");
        let reply = client.send_message(
            "a@example.test",
            &[&format!("c{i}@localhost")],
            b"Subject: c\r\n\r\nc\r\n",
        );
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    still_serves(&petrel, "after-connections");
}

#[test]
fn hostile_local_parts_refused_at_rcpt() {
    let scratch = Scratch::new("localparts");
    let petrel = Petrel::start(&scratch.0, "");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO hostile.test");
    client.command("MAIL FROM:<a@example.test>");
    for (path, expected) in [
        ("<../../etc@localhost>", "501 5.1.3"),
        ("<\".\"@localhost>", "550 5.1.3"),
        ("<\"..\"@localhost>", "550 5.1.3"),
        ("<\"../../etc\"@localhost>", "550 5.1.3"),
        ("<\"a/b\"@localhost>", "550 5.1.3"),
        ("<.hidden@localhost>", "501 5.1.3"),
    ] {
        let reply = client.command(&format!("RCPT TO:{path}"));
        assert!(reply.starts_with(expected), "{path}: {reply}");
    }
    assert!(client.command("DATA").starts_with("554 5.5.1"));
    let mail = petrel.data_dir.join("mail");
    let entries: Vec<_> = std::fs::read_dir(&mail)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        entries.iter().all(|&n| n == 0),
        "nothing may be created under {mail:?}"
    );
    assert!(!scratch.0.join("etc").exists());
}

#[test]
fn relay_refused_from_outside_relay_networks() {
    let scratch = Scratch::new("relay");
    let petrel = Petrel::start(&scratch.0, "[relay]\nnetworks = [\"192.0.2.0/24\"]\n");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO relay.test");
    client.command("MAIL FROM:<a@example.test>");
    assert_eq!(
        client.command("RCPT TO:<x@elsewhere.example>"),
        "554 5.7.1 Relay access denied\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<x@example.test>"),
        "250 2.1.5 Recipient OK\r\n"
    );
}

#[test]
fn max_connections_per_ip_for_clients_outside_relay_networks() {
    let scratch = Scratch::new("per-ip");
    let petrel = Petrel::start(
        &scratch.0,
        "[relay]\nnetworks = [\"192.0.2.0/24\"]\n\n[limits]\nmax_connections_per_ip = 3\n",
    );
    let mut held: Vec<RawClient> = (0..3).map(|_| RawClient::connect(petrel.address)).collect();
    for client in &mut held {
        assert!(client.reply().starts_with("220 "));
    }
    let mut fourth = RawClient::connect(petrel.address);
    assert_eq!(
        fourth.reply(),
        "421 4.7.0 Too many connections from your address, try again later\r\n"
    );
    // A slot frees when a session ends.
    held.pop().unwrap().command("QUIT");
    std::thread::sleep(Duration::from_millis(200));
    let mut again = RawClient::connect(petrel.address);
    assert!(again.reply().starts_with("220 "));
}

#[test]
fn aliases_expand_to_local_and_remote_and_unknown_names_are_refused() {
    let scratch = Scratch::new("aliases");
    let aliases = scratch.0.join("aliases");
    std::fs::write(
        &aliases,
        "team: alice, ops\nops: carol\npostmaster: alice\n",
    )
    .unwrap();
    let dns = crate::harness::test_dns();
    let config = crate::harness::config_text(&scratch.0.join("data"), dns.address, "").replace(
        "[local]\n",
        &format!(
            "[local]\naliases = \"{}\"\nmailboxes = [\"alice\", \"carol\"]\n",
            aliases.display()
        ),
    );
    let config_path = scratch.0.join("petrel.toml");
    std::fs::write(&config_path, config).unwrap();
    let petrel = Petrel::start_with(&config_path, &scratch.0.join("data"), &[]);
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO alias.test");
    client.command("MAIL FROM:<a@example.test>");
    assert!(
        client
            .command("RCPT TO:<team@localhost>")
            .starts_with("250"),
        "an alias exists"
    );
    assert_eq!(
        client.command("RCPT TO:<stranger@localhost>"),
        "550 5.1.1 No such user here\r\n"
    );
    assert!(client.command("RCPT TO:<Postmaster>").starts_with("250"));
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: to the team\r\n\r\nhello\r\n.\r\n");
    assert!(client.reply().starts_with("250 2.0.0 queued as"));
    // team -> alice + ops -> carol; postmaster -> alice (once).
    assert_eq!(petrel.wait_for_maildir("localhost", "alice", 1).len(), 1);
    assert_eq!(petrel.wait_for_maildir("localhost", "carol", 1).len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        petrel.maildir("localhost", "alice").len(),
        1,
        "alice gets one copy"
    );
    assert!(petrel.maildir("localhost", "team").is_empty());
    // Nothing is left pending: every expanded address was delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["queue", "list", "--config"])
            .arg(&config_path)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&output.stdout).contains("the queue is empty") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
