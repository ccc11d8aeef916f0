//! Greylisting (RFC 6647; issue 16, item 4) with a delay of seconds: the first try of a triplet
//! is 451 4.7.1, a retry too soon is too, a retry after the delay passes, and the client's
//! network is then allowed for other triplets. The state is in the queue backend (this test
//! runs on the spool and, with PETREL_TEST_QUEUE=postgres, on PostgreSQL); two nodes of one
//! PostgreSQL queue share it: a triplet first tried at node A passes at node B.

use crate::harness::{Petrel, RawClient, Scratch};

const GREYLIST: &str = "[relay]\nnetworks = []\n\n[greylist]\nenabled = true\ndelay = \"2s\"\n";

/// The reply to RCPT TO:<to> in a new transaction from `from`.
fn rcpt(petrel: &Petrel, from: &str, to: &str) -> String {
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    assert!(
        client
            .command(&format!("MAIL FROM:<{from}>"))
            .starts_with("250")
    );
    let reply = client.command(&format!("RCPT TO:<{to}>"));
    client.command("QUIT");
    reply
}

#[test]
fn a_triplet_passes_when_retried_after_the_delay() {
    let dir = Scratch::new("greylist");
    let petrel = Petrel::start(
        &dir.0,
        &format!("[http]\naddress = \"127.0.0.1:0\"\n\n{GREYLIST}"),
    );
    let first = rcpt(&petrel, "alice@relay.test", "bob@example.test");
    assert_eq!(first, "451 4.7.1 Greylisted: please try again later\r\n");
    let soon = rcpt(&petrel, "alice@relay.test", "bob@example.test");
    assert!(soon.starts_with("451 4.7.1"), "too soon: {soon}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let later = rcpt(&petrel, "alice@relay.test", "bob@example.test");
    assert!(later.starts_with("250"), "retried after the delay: {later}");
    let other = rcpt(&petrel, "carol@relay.test", "dave@example.test");
    assert!(
        other.starts_with("250"),
        "a client that retried is allowed: {other}"
    );
    assert!(petrel.log_text().contains("greylisted: 451 4.7.1"));
    let samples = crate::metrics::scrape(&petrel);
    assert_eq!(
        samples
            .get("petrel_screen_refusals_total{check=\"greylist\"}")
            .copied(),
        Some(2.0),
        "the first try and the one too soon: {samples:?}"
    );
}

#[test]
fn nodes_of_one_queue_share_the_triplets() {
    let url = crate::backend::new_database();
    let queue = |node: &str| {
        format!(
            "[queue]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{node}\"\n"
        )
    };
    let dir_a = Scratch::new("greylist-a");
    let a = Petrel::start(&dir_a.0, &format!("{}\n{GREYLIST}", queue("a")));
    let dir_b = Scratch::new("greylist-b");
    let b = Petrel::start(&dir_b.0, &format!("{}\n{GREYLIST}", queue("b")));
    assert!(rcpt(&a, "alice@relay.test", "bob@example.test").starts_with("451 4.7.1"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let at_b = rcpt(&b, "alice@relay.test", "bob@example.test");
    assert!(at_b.starts_with("250"), "node B knew the triplet: {at_b}");
}

/// A client a DNS allowlist names (a list of negative weight) is not greylisted.
#[test]
fn a_dns_allowlisted_client_is_not_greylisted() {
    let mut zone = crate::harness::test_zone();
    zone.push(petrel_dns::responder::ZoneEntry::A(
        "1.0.0.127.allow.test",
        "127.0.0.2".parse().unwrap(),
    ));
    let dir = Scratch::new("greylist-allowlisted");
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone,
        &format!("{GREYLIST}\n[[screen.dnsbl]]\nzone = \"allow.test\"\nweight = -5\n"),
    );
    let reply = rcpt(&petrel, "alice@relay.test", "bob@example.test");
    assert!(reply.starts_with("250"), "{reply}");
}

/// `greylist.spf_exempt_domains`: a sender of a listed domain whose SPF passes for the client is
/// not greylisted; one of a listed domain whose SPF fails is, as is one of an unlisted domain
/// whose SPF passes.
#[test]
fn spf_passing_senders_of_listed_domains_are_not_greylisted() {
    use petrel_dns::responder::ZoneEntry;
    let mut zone = crate::harness::test_zone();
    for (domain, spf) in [
        ("bigmail.test", "v=spf1 ip4:127.0.0.0/8 -all"),
        ("strict.test", "v=spf1 -all"),
        ("small.test", "v=spf1 ip4:127.0.0.0/8 -all"),
    ] {
        zone.push(ZoneEntry::Txt(domain.into(), spf.into()));
    }
    let dir = Scratch::new("greylist-spf");
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone,
        &format!("{GREYLIST}spf_exempt_domains = [\"bigmail.test\", \"strict.test\"]\n"),
    );
    let listed = rcpt(&petrel, "alice@bigmail.test", "bob@example.test");
    assert!(listed.starts_with("250"), "{listed}");
    let failing = rcpt(&petrel, "alice@strict.test", "bob@example.test");
    assert!(failing.starts_with("451 4.7.1"), "{failing}");
    let unlisted = rcpt(&petrel, "alice@small.test", "bob@example.test");
    assert!(unlisted.starts_with("451 4.7.1"), "{unlisted}");
    assert!(
        petrel
            .log_text()
            .contains("not greylisted: SPF passes for a listed domain")
    );
}
