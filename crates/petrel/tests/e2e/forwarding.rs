//! Aliases as an operator uses them (issue 7): a per-domain catch-all, and a forwarding loop
//! between two petrels (A forwards ping to B, B forwards pong back to A through a
//! `[[delivery.route]]`) that ends with 554 5.4.6 once the message has 100 Received fields
//! (RFC 5321 §6.3), and a bounce with that status to the sender. Also cron's way in: a shell
//! script running `sendmail -t -i` for a local and a remote recipient. And SRS for forwarded
//! mail.

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
    let a_port = crate::harness::server_port();
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

/// SRS (issue 16, item 7): A forwards bob@fwd.test to carol@dest.test at B. The copy leaves A
/// with an SRS sender of fwd.test, so B's SPF check (fwd.test allows 127.0.0.1, sender.test does
/// not) passes; a bounce to that SRS address at A goes back to the original sender; a forged
/// SRS address is refused.
#[test]
fn forwarded_mail_gets_an_srs_sender_and_its_bounces_come_back() {
    use petrel_dns::responder::ZoneEntry;
    let mut zone = crate::harness::test_zone();
    zone.push(ZoneEntry::A("sender.test", "192.0.2.77".parse().unwrap()));
    zone.push(ZoneEntry::Txt(
        "sender.test".into(),
        "v=spf1 ip4:192.0.2.77 -all".into(),
    ));
    zone.push(ZoneEntry::A("fwd.test", "127.0.0.1".parse().unwrap()));
    zone.push(ZoneEntry::Txt(
        "fwd.test".into(),
        "v=spf1 ip4:127.0.0.1 -all".into(),
    ));
    // B: dest.test and sender.test; A is a client of the Internet to it (SPF is checked).
    let dir_b = Scratch::new("srs-b");
    let b = Petrel::start_in_zone(
        &dir_b.0,
        "mx.dest.test",
        &["dest.test", "sender.test"],
        zone.clone(),
        "[relay]\nnetworks = []\n",
    );
    let dir_a = Scratch::new("srs-a");
    let secret = dir_a.0.join("srs.secret");
    std::fs::write(&secret, "a secret of the test\n").unwrap();
    let aliases = dir_a.0.join("aliases");
    std::fs::write(&aliases, "bob: carol@dest.test\n").unwrap();
    let route = |domain: &str| {
        format!(
            "[[delivery.route]]\ndomain = \"{domain}\"\nnexthop = \"[127.0.0.1]:{}\"\n",
            b.address.port()
        )
    };
    let config = crate::harness::config_for(
        &dir_a.0.join("data"),
        b.dns.as_ref().unwrap().address,
        "mx.fwd.test",
        &["fwd.test"],
        &format!(
            "[relay]\nnetworks = []\n\n[srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n\n{}\n{}",
            secret.display(),
            route("dest.test"),
            route("sender.test")
        ),
    )
    .replace(
        "[local]\n",
        &format!("[local]\naliases = \"{}\"\n", aliases.display()),
    );
    let config_path = dir_a.0.join("petrel.toml");
    std::fs::write(&config_path, config).unwrap();
    let a = Petrel::start_with(&config_path, &dir_a.0.join("data"), &[]);

    let reply = send(&a, "alice@sender.test", "bob@fwd.test");
    assert!(reply.starts_with("250"), "{reply}");
    let copies = b.wait_for_maildir("dest.test", "carol", 1);
    let copy = String::from_utf8_lossy(&copies[0]).into_owned();
    let return_path = copy
        .lines()
        .find(|l| l.starts_with("Return-Path:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        return_path.contains("<SRS0=") && return_path.ends_with("=sender.test=alice@fwd.test>"),
        "{copy}"
    );
    assert!(
        copy.contains("spf=pass"),
        "SPF passes for fwd.test at B:\n{copy}"
    );

    // A bounce to the SRS address comes back to alice at sender.test.
    let srs_address = return_path
        .trim_start_matches("Return-Path: <")
        .trim_end_matches('>')
        .to_owned();
    let bounce = send_one(
        a.address,
        "",
        &[&srs_address],
        b"Subject: Undelivered Mail\r\n\r\nbounced\r\n",
    );
    assert!(bounce.starts_with("250"), "{bounce}");
    b.wait_for_maildir("sender.test", "alice", 1);

    // A forged SRS address (the hash changed) is refused.
    let forged = srs_address.replacen("SRS0=", "SRS0=Zz", 1);
    let mut client = crate::harness::RawClient::connect(a.address);
    client.reply();
    client.command("EHLO client.test");
    client.command("MAIL FROM:<>");
    assert_eq!(
        client.command(&format!("RCPT TO:<{forged}>")),
        "550 5.1.1 Invalid SRS address: wrong hash or expired\r\n"
    );
}
