//! Delivery to remote hosts: relaying to a second petrel and to Postfix's smtp-sink with the
//! bytes compared end to end, remote failures against a scripted server (each with the right
//! retry or DSN), null MX at queue time (C-NULLMX-2), and a retry schedule that survives a
//! restart while a permanent failure is never retried (C-RETRY-4).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fakemx::{FakeMx, Script};
use crate::harness::{Petrel, RawClient, Scratch, wait_until};

/// Content with lines that start with "." and "..", and 8-bit text.
const CONTENT: &str = "From: Ana <sender@localhost>\r\nTo: user@relay.test\r\nSubject: relayed\r\n\r\n.one dot\r\n..two dots\r\n.\r\nGrüße ✓\r\nlast\r\n";

fn relay_config(port: u16, extra: &str) -> String {
    format!("[delivery]\nport = {port}\nretry = [\"1s\"]\nmax_age = \"1h\"\n\n{extra}")
}

fn send(petrel: &Petrel, from: &str, to: &[&str], content: &str) -> String {
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    client.command(&format!("MAIL FROM:<{from}> BODY=8BITMIME"));
    for rcpt in to {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with("250"), "{rcpt}: {reply}");
    }
    assert!(client.command("DATA").starts_with("354"));
    client.send(&petrel_proto::data::dot_stuff(content.as_bytes()));
    let reply = client.reply();
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    client.command("QUIT");
    reply.trim_end().rsplit(' ').next().unwrap().to_owned()
}

/// The bounce that reached sender@localhost, as text.
fn bounce(petrel: &Petrel) -> String {
    let messages = petrel.wait_for_maildir("localhost", "sender", 1);
    assert_eq!(
        messages.len(),
        1,
        "expected one bounce\n{}",
        petrel.log_text()
    );
    String::from_utf8_lossy(&messages[0]).into_owned()
}

#[test]
fn relays_to_a_second_petrel_byte_for_byte() {
    let scratch_b = Scratch::new("relay-b");
    let b = Petrel::start_for(&scratch_b.0, "mx.relay.test", &["relay.test"], "");
    let scratch_a = Scratch::new("relay-a");
    let a = Petrel::start(&scratch_a.0, &relay_config(b.address.port(), ""));
    send(&a, "sender@localhost", &["user@relay.test"], CONTENT);
    let delivered = b.wait_for_one_from("relay.test", "user", &a);
    let text = String::from_utf8(delivered[0].clone()).unwrap();
    // B's trace headers, then A's Received, then exactly what the client sent.
    let expected = CONTENT.replace("\r\n", "\n");
    assert!(text.ends_with(&expected), "{text}");
    let head = &text[..text.len() - expected.len()];
    assert!(
        head.starts_with(
            "Return-Path: <sender@localhost>\nDelivered-To: user@relay.test\nReceived: from mx.test"
        ),
        "{head}"
    );
    assert_eq!(head.matches("Received: ").count(), 2, "{head}");
    // The message left A's queue.
    wait_until("A's queue to empty", || {
        std::fs::read_dir(a.data_dir.join("queue/active"))
            .map(|d| {
                d.flat_map(|b| std::fs::read_dir(b.unwrap().path()).unwrap())
                    .count()
                    == 0
            })
            .unwrap_or(true)
    });
}

struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(dir: &std::path::Path) -> Sink {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = crate::harness::server_port();
    let child = Command::new("smtp-sink")
        .args(["-u", "nobody", "-d"])
        .arg(format!("{}/%M.", dir.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .stdout(Stdio::null())
        .spawn()
        .expect("smtp-sink from Debian's postfix package (.ci/run installs it)");
    wait_until("smtp-sink to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Sink { child, port }
}

#[test]
fn relays_to_postfix_smtp_sink_byte_for_byte() {
    let scratch = Scratch::new("sink");
    let dumps = scratch.0.join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let sink = start_sink(&dumps);
    let a = Petrel::start(&scratch.0, &relay_config(sink.port, ""));
    send(&a, "sender@localhost", &["user@relay.test"], CONTENT);
    wait_until("smtp-sink to dump the message", || {
        std::fs::read_dir(&dumps).unwrap().count() == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let path = std::fs::read_dir(&dumps)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dump = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
    assert!(dump.contains("X-Mail-Args: <sender@localhost>"), "{dump}");
    assert!(dump.contains("X-Rcpt-Args: <user@relay.test>"), "{dump}");
    let expected = CONTENT.replace("\r\n", "\n");
    let body_start = dump.find("From: Ana").expect("the message in the dump");
    assert_eq!(
        dump[body_start..].trim_end_matches('\n'),
        expected.trim_end_matches('\n'),
        "{dump}"
    );
    assert!(
        dump[..body_start].contains("by mx.test (petrel) with ESMTP id"),
        "A's Received is there"
    );
}

#[test]
fn one_rcpt_of_three_refused_gets_a_dsn_the_others_delivered() {
    let fake = FakeMx::start(vec![Script {
        refuse: vec![(
            "nobody",
            "550 5.1.1 <nobody@relay.test>: Recipient address rejected: User unknown",
        )],
        ..Script::accept()
    }]);
    let scratch = Scratch::new("rcpt550");
    let a = Petrel::start(&scratch.0, &relay_config(fake.address.port(), ""));
    send(
        &a,
        "sender@localhost",
        &["one@relay.test", "nobody@relay.test", "two@relay.test"],
        CONTENT,
    );
    let dsn = bounce(&a);
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@relay.test\nAction: failed\nStatus: 5.1.1\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1"), "{dsn}");
    assert!(
        !dsn.contains("Final-Recipient: rfc822; one@relay.test"),
        "{dsn}"
    );
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 1);
    assert_eq!(seen.connections, 1, "a 5xx is never retried");
}

#[test]
fn temporary_451_then_success_is_retried_without_a_bounce() {
    let fake = FakeMx::start(vec![
        Script {
            data_end: Some("451 4.3.0 try again later"),
            ..Script::accept()
        },
        Script::accept(),
    ]);
    let scratch = Scratch::new("retry451");
    let a = Petrel::start(&scratch.0, &relay_config(fake.address.port(), ""));
    send(&a, "sender@localhost", &["user@relay.test"], CONTENT);
    wait_until("the retry to deliver", || {
        fake.seen.lock().unwrap().messages.len() == 1
    });
    assert_eq!(fake.connections(), 2);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        a.maildir("localhost", "sender").is_empty(),
        "no bounce for a delivered message"
    );
}

#[test]
fn size_refusal_after_data_bounces() {
    let fake = FakeMx::start(vec![Script {
        data_end: Some("552 5.3.4 Message size exceeds fixed limit"),
        ..Script::accept()
    }]);
    let scratch = Scratch::new("data552");
    let a = Petrel::start(&scratch.0, &relay_config(fake.address.port(), ""));
    send(&a, "sender@localhost", &["user@relay.test"], CONTENT);
    let dsn = bounce(&a);
    assert!(dsn.contains("Status: 5.3.4"), "{dsn}");
    assert_eq!(fake.connections(), 1);
}

#[test]
fn dropped_mid_data_and_421_greeting_are_retried() {
    let fake = FakeMx::start(vec![
        Script {
            data_end: None,
            ..Script::accept()
        },
        Script {
            greeting: "421 4.3.2 fake.test busy, try later",
            ..Script::accept()
        },
        Script::accept(),
    ]);
    let scratch = Scratch::new("dropped");
    let a = Petrel::start(&scratch.0, &relay_config(fake.address.port(), ""));
    send(&a, "sender@localhost", &["user@relay.test"], CONTENT);
    wait_until("delivery on the third connection", || {
        fake.seen.lock().unwrap().messages.len() == 1
    });
    assert_eq!(fake.connections(), 3);
    assert!(a.maildir("localhost", "sender").is_empty(), "no bounce");
}

#[test]
fn c_nullmx_2_queued_mail_to_a_null_mx_domain_fails_at_once_without_connecting() {
    let fake = FakeMx::start(vec![Script::accept()]);
    let scratch = Scratch::new("nullmx-queue");
    let a = Petrel::start(
        &scratch.0,
        &relay_config(
            fake.address.port(),
            "[policy]\nreject_null_mx_recipient = false\n",
        ),
    );
    send(&a, "sender@localhost", &["user@nullmx.test"], CONTENT);
    let dsn = bounce(&a);
    assert!(
        dsn.contains("Final-Recipient: rfc822; user@nullmx.test\nAction: failed\nStatus: 5.1.10\n"),
        "{dsn}"
    );
    assert_eq!(
        fake.connections(),
        0,
        "nothing may connect to a null-MX domain's address"
    );
}

#[test]
fn restart_resumes_the_retry_schedule_and_never_retries_a_5xx() {
    let fake = FakeMx::start(vec![
        Script {
            refuse: vec![
                ("gone", "550 5.1.1 no such user"),
                ("later", "450 4.2.1 mailbox busy"),
            ],
            ..Script::accept()
        },
        Script::accept(),
    ]);
    let scratch = Scratch::new("restart");
    let mut a = Petrel::start(
        &scratch.0,
        &relay_config(fake.address.port(), "").replace("retry = [\"1s\"]", "retry = [\"3s\"]"),
    );
    send(
        &a,
        "sender@localhost",
        &["gone@relay.test", "later@relay.test"],
        CONTENT,
    );
    wait_until("the first attempt", || fake.connections() == 1);
    a.signal("TERM");
    assert_eq!(a.wait_exit(), Some(0));
    // The queue as the stopped server left it (spool files or database rows alike).
    let (_, listing) = a.queue(&["list"]);
    // The failed recipient is no longer listed; the deferred one waits for its retry.
    assert!(
        !listing.contains("gone@relay.test") && listing.contains("later@relay.test (deferred)"),
        "{listing}"
    );
    let mut restarted = Petrel::start_with(&a.config_path, &a.data_dir, &[]);
    restarted.dns = a.dns.clone();
    wait_until("the retry after the restart", || {
        fake.seen.lock().unwrap().messages.len() == 1
    });
    let rcpts = fake.seen.lock().unwrap().rcpts.clone();
    assert_eq!(
        rcpts,
        ["gone@relay.test", "later@relay.test", "later@relay.test"],
        "the 5xx recipient is never tried again"
    );
}

#[test]
fn c_route_8_the_connection_is_reused_for_the_next_message_to_the_same_domain() {
    let fake = FakeMx::start(vec![Script::accept()]);
    let scratch = Scratch::new("reuse");
    let a = Petrel::start(&scratch.0, &relay_config(fake.address.port(), ""));
    send(&a, "sender@localhost", &["one@relay.test"], CONTENT);
    wait_until("the first delivery to finish", || {
        a.log_text().contains("finished: every recipient is done")
    });
    send(&a, "sender@localhost", &["two@relay.test"], CONTENT);
    wait_until("the second delivery", || {
        fake.seen.lock().unwrap().messages.len() == 2
    });
    assert_eq!(
        fake.connections(),
        1,
        "the second message went over the kept connection\n{}",
        a.log_text()
    );
}
