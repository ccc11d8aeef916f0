//! Aliases as an operator uses them (issue 7): a per-domain catch-all, and a forwarding loop
//! between two petrels (A forwards ping to B, B forwards pong back to A through a
//! `[[delivery.route]]`) that ends with 554 5.4.6 once the message has 100 Received fields
//! (RFC 5321 §6.3), and a bounce with that status to the sender. Also cron's way in: a shell
//! script running `sendmail -t -i` for a local and a remote recipient.

use std::process::Command;

use crate::harness::{Petrel, Scratch, config_for, send_one, test_dns};

/// A petrel with `aliases`; `local` is added to its `[local]` table.
fn start(
    dir: &std::path::Path,
    hostname: &str,
    domain: &str,
    aliases: &str,
    local: &str,
    extra: &str,
) -> Petrel {
    let dns = std::sync::Arc::new(test_dns());
    let path = dir.join("aliases");
    std::fs::write(&path, aliases).unwrap();
    let config = config_for(&dir.join("data"), dns.address, hostname, &[domain], extra).replace(
        "[local]\n",
        &format!("[local]\naliases = \"{}\"\n{local}", path.display()),
    );
    let config_path = dir.join("petrel.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut petrel = Petrel::start_with(&config_path, &dir.join("data"), &[]);
    petrel.dns = Some(dns);
    petrel
}

fn send(petrel: &Petrel, from: &str, to: &str) -> String {
    send_one(
        petrel.address,
        from,
        &[to],
        b"Subject: forwarded\r\n\r\nround and round\r\n",
    )
}

#[test]
fn catch_all_and_a_forwarding_loop_between_two_servers() {
    let scratch_a = Scratch::new("loop-a");
    let scratch_b = Scratch::new("loop-b");
    // A's second listener gets a port known before A starts, so B can route back to it.
    let a_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // B: relay.test, pong goes back to A (localhost is routed to A's port).
    let b = start(
        &scratch_b.0,
        "mx.relay.test",
        "relay.test",
        "pong: ping@localhost\n",
        "",
        &format!(
            "[[delivery.route]]\ndomain = \"localhost\"\nnexthop = \"[127.0.0.1]:{a_port}\"\n"
        ),
    );
    // A: localhost, with a catch-all; ping goes to B.
    let a = start(
        &scratch_a.0,
        "mx.test",
        "localhost",
        "ping: pong@relay.test\n*@localhost: catch\npostmaster: catch\n",
        // With mailboxes listed, the catch-all takes every other name.
        "mailboxes = [\"catch\"]\n",
        &format!(
            "[[listener]]\naddress = \"127.0.0.1:{a_port}\"\n\n[delivery]\nport = {}\nretry = [\"1h\"]\n",
            b.address.port()
        ),
    );
    // The catch-all takes any name at the domain.
    assert!(send(&a, "someone@example.net", "whoever@localhost").starts_with("250"));
    let caught = a.wait_for_maildir("localhost", "catch", 1);
    assert_eq!(caught.len(), 1, "{}", a.log_text());
    assert!(String::from_utf8_lossy(&caught[0]).contains("Delivered-To: catch@localhost"));

    // ping -> pong@relay.test (B) -> ping@localhost (A) -> ... until 100 Received fields.
    assert!(send(&a, "origin@relay.test", "ping@localhost").starts_with("250"));
    let bounce = b.wait_for_one_from("relay.test", "origin", &a);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(text.contains("Status: 5.4.6"), "{text}");
    assert!(text.contains("554 5.4.6"), "{text}");
    // The loop never reached a mailbox.
    assert!(a.maildir("localhost", "ping").is_empty());
    assert!(b.maildir("relay.test", "pong").is_empty());
}

#[test]
fn sendmail_t_i_from_a_shell_script_to_a_local_and_a_remote_recipient() {
    let scratch_b = Scratch::new("cron-b");
    let b = Petrel::start_for(&scratch_b.0, "mx.relay.test", &["relay.test"], "");
    let scratch = Scratch::new("cron-a");
    let a = Petrel::start(
        &scratch.0,
        &format!(
            "[delivery]\nport = {}\nretry = [\"1h\"]\n",
            b.address.port()
        ),
    );
    let link = scratch.0.join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_petrel"), &link).unwrap();
    let script = scratch.0.join("nightly.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nPETREL_CONFIG='{}'\nexport PETREL_CONFIG\n{{\n  echo 'To: root@localhost, ops@relay.test'\n  echo 'Subject: nightly backup'\n  echo\n  echo 'backup finished'\n  echo '.'\n  echo 'a lone dot above, kept by -i'\n}} | '{}' -t -i\n",
            a.config_path.display(),
            link.display()
        ),
    )
    .unwrap();
    let output = Command::new("sh").arg(&script).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let local = a.wait_for_maildir("localhost", "root", 1);
    assert_eq!(local.len(), 1, "{}", a.log_text());
    let remote = b.wait_for_one_from("relay.test", "ops", &a);
    for message in [&local[0], &remote[0]] {
        let text = String::from_utf8_lossy(message);
        assert!(
            text.contains("backup finished\n.\na lone dot above"),
            "{text}"
        );
    }
}
