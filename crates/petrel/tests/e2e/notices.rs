//! Delay and success notices (issue 7, RFC 3461 §5.2, C-DSN-2): NOTIFY=SUCCESS to a local
//! mailbox gives "Action: delivered"; to a server without DSN (the scripted MX) "Action:
//! relayed"; a recipient still pending after `delivery.delay_notice_after` gives one "Action:
//! delayed" notice, once, and none when NOTIFY leaves delays out.

use std::time::Duration;

use crate::fakemx::{FakeMx, Script};
use crate::harness::{Petrel, RawClient, Scratch};

/// One transaction with RCPT parameters (e.g. `NOTIFY=SUCCESS`); returns the final reply.
fn send(petrel: &Petrel, from: &str, to: &str, rcpt_parameters: &str) -> String {
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    assert!(
        client
            .command(&format!("MAIL FROM:<{from}>"))
            .starts_with("250")
    );
    let rcpt = client.command(format!("RCPT TO:<{to}> {rcpt_parameters}").trim_end());
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"From: sender@localhost\r\nSubject: notices\r\n\r\nhello\r\n.\r\n");
    let reply = client.reply();
    client.command("QUIT");
    reply
}

fn relay_to(fake: &FakeMx, extra: &str) -> String {
    format!(
        "[delivery]\nport = {}\nretry = [\"1s\"]\nmax_age = \"1h\"\n{extra}",
        fake.address.port()
    )
}

fn text(message: &[u8]) -> String {
    String::from_utf8_lossy(message).into_owned()
}

#[test]
fn success_notices_delivered_locally_and_relayed_to_a_server_without_dsn() {
    let fake = FakeMx::start(vec![Script::accept()]);
    let scratch = Scratch::new("notice-success");
    let petrel = Petrel::start(&scratch.0, &relay_to(&fake, ""));
    assert!(
        send(
            &petrel,
            "sender@localhost",
            "alice@localhost",
            "NOTIFY=SUCCESS"
        )
        .starts_with("250")
    );
    assert!(
        send(
            &petrel,
            "sender@localhost",
            "user@relay.test",
            "NOTIFY=SUCCESS,FAILURE"
        )
        .starts_with("250")
    );
    // Without NOTIFY=SUCCESS a delivery says nothing.
    assert!(send(&petrel, "sender@localhost", "bob@localhost", "").starts_with("250"));
    let notices = petrel.wait_for_maildir("localhost", "sender", 2);
    assert_eq!(notices.len(), 2, "{}", petrel.log_text());
    let all: Vec<String> = notices.iter().map(|m| text(m)).collect();
    let delivered = all
        .iter()
        .find(|t| t.contains("Final-Recipient: rfc822; alice@localhost"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        delivered.contains("Subject: Successful Mail Delivery Report"),
        "{delivered}"
    );
    assert!(
        delivered.contains("Action: delivered\nStatus: 2.0.0"),
        "{delivered}"
    );
    let relayed = all
        .iter()
        .find(|t| t.contains("Final-Recipient: rfc822; user@relay.test"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        relayed.contains("Action: relayed\nStatus: 2.0.0"),
        "{relayed}"
    );
    assert!(
        relayed.contains("does not send delivery notices"),
        "{relayed}"
    );
    assert!(
        relayed.contains("Diagnostic-Code: smtp; 250 2.0.0"),
        "{relayed}"
    );
    assert_eq!(petrel.wait_for_maildir("localhost", "bob", 1).len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(petrel.maildir("localhost", "sender").len(), 2);
}

#[test]
fn one_delay_notice_after_delay_notice_after() {
    let fake = FakeMx::start(vec![Script {
        data_end: Some("451 4.3.0 try again later"),
        ..Script::accept()
    }]);
    let scratch = Scratch::new("notice-delay");
    let petrel = Petrel::start(
        &scratch.0,
        &relay_to(&fake, "delay_notice_after = \"1s\"\n"),
    );
    assert!(send(&petrel, "first@localhost", "user@relay.test", "").starts_with("250"));
    assert!(
        send(
            &petrel,
            "second@localhost",
            "user@relay.test",
            "NOTIFY=FAILURE"
        )
        .starts_with("250")
    );
    let notices = petrel.wait_for_maildir("localhost", "first", 1);
    assert_eq!(notices.len(), 1, "{}", petrel.log_text());
    let notice = text(&notices[0]);
    assert!(
        notice.contains("Subject: Delayed Mail (still being retried)"),
        "{notice}"
    );
    assert!(
        notice.contains("Action: delayed\nStatus: 4.3.0"),
        "{notice}"
    );
    assert!(notice.contains("Will-Retry-Until: "), "{notice}");
    assert!(
        notice.contains("Diagnostic-Code: smtp; 451 4.3.0 try again later"),
        "{notice}"
    );
    // Retries go on (one a second) without a second notice, and NOTIFY=FAILURE gets none.
    let attempts = fake.connections();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.connections() < attempts + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fake.connections() >= attempts + 2, "the retries stopped");
    assert_eq!(petrel.maildir("localhost", "first").len(), 1);
    assert!(petrel.maildir("localhost", "second").is_empty());
}
