//! Null MX at the door (RFC 7505 §4.1): a relayed recipient at a null-MX domain gets
//! 556 5.1.10 (S-NULLMX-4), a sender from one gets 550 5.7.27 (S-NULLMX-5), and a DNS failure
//! during either check is 451 4.4.3, never a silent accept. A relayed recipient domain that
//! does not exist gets 550 5.1.2 (`screen.reject_unknown_recipient_domain`).

use crate::harness::{Petrel, RawClient, Scratch, send_one, wait_until};

#[test]
fn s_nullmx_4_5_refused_at_mail_and_rcpt() {
    let scratch = Scratch::new("nullmx-door");
    let petrel = Petrel::start(&scratch.0, "");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO door.test");
    assert_eq!(
        client.command("MAIL FROM:<someone@nullmx.test>"),
        "550 5.7.27 Sender domain does not accept mail (null MX)\r\n"
    );
    assert_eq!(
        client.command("MAIL FROM:<someone@servfail.test>"),
        "451 4.4.3 Temporary lookup failure, try again later\r\n"
    );
    assert!(
        client
            .command("MAIL FROM:<someone@relay.test>")
            .starts_with("250 2.1.0")
    );
    assert_eq!(
        client.command("RCPT TO:<user@nullmx.test>"),
        "556 5.1.10 Recipient domain does not accept mail (null MX)\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<user@servfail.test>"),
        "451 4.4.3 Temporary lookup failure, try again later\r\n"
    );
    // The client hears 451 4.4.3; the log says why.
    wait_until("the SERVFAIL in the log", || {
        petrel.log_text().contains("dns=SERVFAIL")
    });
    // "." beside a real MX is not a null MX (C-NULLMX-3); a domain without MX uses its A record.
    assert!(
        client
            .command("RCPT TO:<user@mixed.test>")
            .starts_with("250 2.1.5")
    );
    assert!(
        client
            .command("RCPT TO:<user@aonly.test>")
            .starts_with("250 2.1.5")
    );
    // Local recipients need no lookup.
    assert!(
        client
            .command("RCPT TO:<user@localhost>")
            .starts_with("250 2.1.5")
    );
}

#[test]
fn null_mx_checks_can_be_turned_off() {
    let scratch = Scratch::new("nullmx-off");
    let petrel = Petrel::start(
        &scratch.0,
        "[policy]\nreject_null_mx_recipient = false\nreject_null_mx_sender = false\n",
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO door.test");
    assert!(
        client
            .command("MAIL FROM:<someone@nullmx.test>")
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<user@nullmx.test>")
            .starts_with("250")
    );
}

/// A DNS SERVFAIL while delivering (the RCPT check off, so the message is queued) defers the
/// recipient with 4.4.3, and `queue show`, its JSON and the log name the cause: SERVFAIL.
#[test]
fn a_servfail_while_delivering_is_shown_as_servfail() {
    let scratch = Scratch::new("servfail-delivery");
    let petrel = Petrel::start(
        &scratch.0,
        "[policy]\nreject_null_mx_recipient = false\n\n[screen]\nreject_unknown_recipient_domain = false\n",
    );
    let reply = send_one(
        petrel.address,
        "someone@localhost",
        &["user@servfail.test"],
        b"Subject: x\r\n\r\nbody\r\n",
    );
    assert!(reply.contains("250 2.0.0"), "{reply}");
    wait_until("the deferral", || {
        petrel.log_text().contains("delivery outcome")
    });
    let (_, list) = petrel.queue(&["list", "--json"]);
    let id = list
        .split("\"id\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let (is_ok, shown) = petrel.queue(&["show", &id]);
    assert!(is_ok, "{shown}");
    assert!(
        shown.contains("last:       deferred 4.4.3 (DNS SERVFAIL)"),
        "{shown}"
    );
    let (_, json) = petrel.queue(&["show", &id, "--json"]);
    assert!(json.contains("\"cause\": \"dns-servfail\""), "{json}");
    assert!(json.contains("\"status\": \"4.4.3\""), "{json}");
    let log = petrel.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("delivery outcome"))
        .unwrap_or_default();
    assert!(
        line.contains("cause=dns-servfail") && line.contains("status=4.4.3"),
        "{line}"
    );
    assert!(line.contains("SERVFAIL"), "{line}");
}

/// `screen.reject_unknown_recipient_domain` (on by default, issue 16 item 3): a relayed
/// recipient whose domain does not exist is refused at RCPT with 550 5.1.2, so nothing is
/// queued that could only bounce; off, the same RCPT is taken. A routed domain is not looked
/// up.
#[test]
fn unknown_recipient_domains_are_refused_when_relaying() {
    let scratch = Scratch::new("unknown-domain");
    let petrel = Petrel::start(
        &scratch.0,
        "[[delivery.route]]\ndomain = \"private.test\"\nnexthop = \"[127.0.0.1]:9\"\n",
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO door.test");
    client.command("MAIL FROM:<someone@relay.test>");
    assert_eq!(
        client.command("RCPT TO:<user@no-such-domain.test>"),
        "550 5.1.2 Recipient domain does not exist\r\n"
    );
    assert!(
        client
            .command("RCPT TO:<user@relay.test>")
            .starts_with("250 2.1.5")
    );
    assert!(
        client
            .command("RCPT TO:<user@host.private.test>")
            .starts_with("250 2.1.5"),
        "a routed domain is the operator's to judge"
    );

    let off_dir = Scratch::new("unknown-domain-off");
    let off = Petrel::start(
        &off_dir.0,
        "[screen]\nreject_unknown_recipient_domain = false\n",
    );
    let mut client = RawClient::connect(off.address);
    client.reply();
    client.command("EHLO door.test");
    client.command("MAIL FROM:<someone@relay.test>");
    assert!(
        client
            .command("RCPT TO:<user@no-such-domain.test>")
            .starts_with("250 2.1.5")
    );
}

/// `screen.reject_unknown_sender_domain` (on by default, issue 16 item 3): a port-25 client
/// outside the relay networks gets 550 5.1.8 for a sender domain that does not exist (a reply
/// could go nowhere); the relay networks are not asked.
#[test]
fn unknown_sender_domains_are_refused_from_the_internet() {
    let scratch = Scratch::new("unknown-sender");
    let petrel = Petrel::start(&scratch.0, "[relay]\nnetworks = []\n");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO door.test");
    assert_eq!(
        client.command("MAIL FROM:<someone@no-such-domain.test>"),
        "550 5.1.8 Sender domain does not exist\r\n"
    );
    assert!(
        client
            .command("MAIL FROM:<someone@relay.test>")
            .starts_with("250")
    );
    client.command("RSET");
    assert!(
        client.command("MAIL FROM:<>").starts_with("250"),
        "the null sender"
    );

    let inside_dir = Scratch::new("unknown-sender-inside");
    let inside = Petrel::start(&inside_dir.0, "");
    let mut client = RawClient::connect(inside.address);
    client.reply();
    client.command("EHLO app.test");
    assert!(
        client
            .command("MAIL FROM:<app@no-such-domain.test>")
            .starts_with("250"),
        "relay networks are not screened"
    );
}

/// `screen.helo_checks` (on by default): a client of the Internet that names this host in
/// EHLO gets 550 5.7.1, one that sends garbage 501 5.5.4, each counted in
/// `petrel_screen_refusals_total{check="helo"}`; the relay networks are not checked.
#[test]
fn helo_names_of_internet_clients_are_checked() {
    let scratch = Scratch::new("helo-checks");
    let petrel = Petrel::start(
        &scratch.0,
        "[relay]\nnetworks = []\n\n[http]\naddress = \"127.0.0.1:0\"\n",
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    assert_eq!(
        client.command("EHLO mx.test"),
        "550 5.7.1 EHLO/HELO name claims to be this host\r\n"
    );
    assert_eq!(
        client.command("EHLO a/b"),
        "501 5.5.4 Invalid EHLO/HELO name\r\n"
    );
    assert!(client.command("EHLO client.example").starts_with("250"));
    let samples = crate::metrics::scrape(&petrel);
    assert_eq!(
        samples.get("petrel_screen_refusals_total{check=\"helo\"}"),
        Some(&2.0),
        "{samples:?}"
    );

    let inside_dir = Scratch::new("helo-inside");
    let inside = Petrel::start(&inside_dir.0, "");
    let mut client = RawClient::connect(inside.address);
    client.reply();
    assert!(client.command("EHLO mx.test").starts_with("250"));
}
