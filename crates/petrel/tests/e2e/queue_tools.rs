//! `petrel queue ...` against a running daemon (through control.sock) and without one: list,
//! show (by queue id and by Message-ID, with the history of attempts and explained replies),
//! hold, release, flush, bounce, delete.

use std::time::{Duration, Instant};

use crate::fakemx::{FakeMx, Script};
use crate::harness::{Petrel, RawClient, Scratch, wait_until};

fn send(petrel: &Petrel, to: &str, message_id: &str) -> String {
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO tools.test");
    let content = format!("Message-ID: <{message_id}>\r\nSubject: tools\r\n\r\nbody\r\n");
    let reply = client.send_message("sender@localhost", &[to], content.as_bytes());
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    reply.trim_end().rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn list_show_hold_release_flush_with_a_running_daemon() {
    let fake = FakeMx::start(vec![
        Script {
            data_end: Some("451 4.3.0 busy, try later"),
            ..Script::accept()
        },
        Script::accept(),
    ]);
    let scratch = Scratch::new("tools");
    let petrel = Petrel::start(
        &scratch.0,
        &format!(
            "[delivery]\nport = {}\nretry = [\"1h\"]\n",
            fake.address.port()
        ),
    );
    let id = send(&petrel, "user@relay.test", "tools-1@client.test");
    wait_until("the first attempt", || {
        fake.connections() == 1 && petrel.queue(&["list"]).1.contains("deferred")
    });
    let (ok, list) = petrel.queue(&["list"]);
    assert!(
        ok && list.contains(&id)
            && list.contains("user@relay.test (deferred)")
            && list.contains("next attempt"),
        "{list}"
    );
    let (ok, show) = petrel.queue(&["show", &id]);
    assert!(ok, "{show}");
    for expected in [
        "DNS MX relay.test: 10 mx.relay.test",
        "[127.0.0.1]",
        "451 4.3.0 busy, try later",
        "deferred; retry at",
        "Message-ID: <tools-1@client.test>",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in:\n{show}");
    }
    let (ok, json) = petrel.queue(&["list", "--json"]);
    assert!(ok && json.contains("\"state\": \"deferred\""), "{json}");

    assert!(petrel.queue(&["hold", &id]).0);
    assert!(petrel.queue(&["list"]).1.contains("(held)"));
    assert!(petrel.queue(&["flush"]).0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.connections(), 1, "a held message is not delivered");
    let (ok, released) = petrel.queue(&["release", &id]);
    assert!(ok, "{released}");
    assert!(petrel.queue(&["flush", &id]).0);
    wait_until("delivery after release", || {
        fake.seen.lock().unwrap().messages.len() == 1
    });
    // Finished, it is still found by its Message-ID, with the whole story.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !petrel
        .queue(&["show", "<tools-1@client.test>"])
        .1
        .contains("(finished)")
    {
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            petrel.queue(&["show", "<tools-1@client.test>"]).1,
            petrel.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, show) = petrel.queue(&["show", "tools-1@client.test"]);
    assert!(
        show.contains("delivered") && show.contains("250 2.0.0 Ok: queued"),
        "{show}"
    );
}

#[test]
fn bounce_and_delete_with_and_without_a_daemon() {
    let fake = FakeMx::start(vec![Script {
        data_end: Some("451 4.3.0 busy"),
        ..Script::accept()
    }]);
    let scratch = Scratch::new("tools-bounce");
    let mut petrel = Petrel::start(
        &scratch.0,
        &format!(
            "[delivery]\nport = {}\nretry = [\"1h\"]\n",
            fake.address.port()
        ),
    );
    let bounced = send(&petrel, "a@relay.test", "tools-2@client.test");
    let deleted = send(&petrel, "b@relay.test", "tools-3@client.test");
    wait_until("both attempts", || {
        fake.connections() >= 1 && petrel.queue(&["list"]).1.matches("deferred").count() == 2
    });
    let (ok, text) = petrel.queue(&["bounce", &bounced]);
    assert!(ok, "{text}");
    let dsn = petrel.wait_for_maildir("localhost", "sender", 1);
    assert_eq!(dsn.len(), 1);
    assert!(String::from_utf8_lossy(&dsn[0]).contains("Final-Recipient: rfc822; a@relay.test"));
    // Without the daemon the same command works on the spool alone.
    petrel.signal("TERM");
    assert_eq!(petrel.wait_exit(), Some(0));
    let (ok, text) = petrel.queue(&["delete", &deleted]);
    assert!(ok, "{text}");
    let (ok, list) = petrel.queue(&["list"]);
    assert!(ok && !list.contains(&deleted), "{list}");
    let (ok, show) = petrel.queue(&["show", &deleted]);
    assert!(ok && show.contains("deleted by the operator"), "{show}");
    let (ok, text) = petrel.queue(&["hold", "nonsense"]);
    assert!(!ok && text.contains("is not a queue id"), "{text}");
}
