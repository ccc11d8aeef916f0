//! The door of port 25 (issue 16): DNS blocklists and allowlists (RFC 5782) served by the
//! loopback DNS responder, which lists 127.0.0.1 (the test client) in zen.test (code
//! 127.0.0.2), weak.test (code 127.0.0.3) and allow.test. A score at or over the threshold
//! refuses the greeting with 554 and the lists named; an allowlist's negative weight, a return
//! code outside the list's filter and `screen.allow_networks` let the client in. The relay
//! networks are emptied so that 127.0.0.1 is screened at all.

use petrel_dns::responder::ZoneEntry;

use crate::harness::{Petrel, RawClient, Scratch, test_zone};

fn zone() -> Vec<ZoneEntry> {
    let mut zone = test_zone();
    zone.push(ZoneEntry::A(
        "1.0.0.127.zen.test",
        "127.0.0.2".parse().unwrap(),
    ));
    zone.push(ZoneEntry::A(
        "1.0.0.127.weak.test",
        "127.0.0.3".parse().unwrap(),
    ));
    zone.push(ZoneEntry::A(
        "1.0.0.127.allow.test",
        "127.0.0.2".parse().unwrap(),
    ));
    zone
}

/// The greeting a petrel with `screen` (a `[screen]` body) gives 127.0.0.1.
fn greeting(name: &str, screen: &str) -> (String, Petrel, Scratch) {
    let dir = Scratch::new(name);
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone(),
        &format!("[relay]\nnetworks = []\n\n[screen]\n{screen}"),
    );
    let mut client = RawClient::connect(petrel.address);
    let reply = client.reply();
    (reply, petrel, dir)
}

const ZEN: &str = "[[screen.dnsbl]]\nzone = \"zen.test\"\nweight = 3\n";

#[test]
fn dns_lists_score_the_client_before_the_greeting() {
    let (reply, petrel, _dir) = greeting("dnsbl-listed", &format!("dnsbl_threshold = 3\n{ZEN}"));
    assert_eq!(
        reply,
        "554 Service unavailable; client [127.0.0.1] blocked using zen.test\r\n"
    );
    assert!(
        petrel.log_text().contains("refused at the door: listed"),
        "{}",
        petrel.log_text()
    );

    let allowlisted = format!(
        "dnsbl_threshold = 3\n{ZEN}\n[[screen.dnsbl]]\nzone = \"allow.test\"\nweight = -5\n"
    );
    let (reply, _petrel, _dir) = greeting("dnsbl-allowlisted", &allowlisted);
    assert!(reply.starts_with("220 "), "score 3 - 5 is under 3: {reply}");

    let filtered = "[[screen.dnsbl]]\nzone = \"weak.test\"\ncodes = [\"127.0.0.2\", \"127.0.0.4-127.0.0.7\"]\n";
    let (reply, _petrel, _dir) = greeting("dnsbl-codes", filtered);
    assert!(
        reply.starts_with("220 "),
        "127.0.0.3 is not a code that counts: {reply}"
    );

    let exempt = format!("allow_networks = [\"127.0.0.1/32\"]\n{ZEN}");
    let (reply, _petrel, _dir) = greeting("dnsbl-exempt", &exempt);
    assert!(reply.starts_with("220 "), "allow_networks: {reply}");

    let unlisted = "[[screen.dnsbl]]\nzone = \"nolist.test\"\n";
    let (reply, _petrel, _dir) = greeting("dnsbl-unlisted", unlisted);
    assert!(reply.starts_with("220 "), "NXDOMAIN: not listed: {reply}");
}
