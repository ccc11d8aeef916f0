//! Null MX at the door (RFC 7505 §4.1): a relayed recipient at a null-MX domain gets
//! 556 5.1.10 (S-NULLMX-4), a sender from one gets 550 5.7.27 (S-NULLMX-5), and a DNS failure
//! during either check is 451 4.4.3, never a silent accept.

use crate::harness::{Petrel, RawClient, Scratch};

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
