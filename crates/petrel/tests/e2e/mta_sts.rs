//! MTA-STS for outbound mail (issue 15; RFC 8461; C-STS-1 to C-STS-3): policies served over
//! HTTPS by a real nginx with a certificate from a test CA (trusted through
//! `delivery.ca_file`), the `_mta-sts` TXT records and host names in the sender's own loopback
//! DNS, and a receiving petrel whose certificate names `mx.sts.test` (not `mx2.sts.test`).
//!
//! What each mode does with each receiver: enforce delivers over verified TLS to a listed MX,
//! defers (4.7.5) on a certificate for another name, on an MX the policy does not list (without
//! connecting) and on a server that offers no STARTTLS (a stripping attacker); testing delivers
//! and says what would have failed; a redirect is not followed (no policy applies). The policy
//! is kept in the queue backend's records and applies from there after a restart with the web
//! server gone.

use std::net::Ipv4Addr;

use petrel_dns::responder::ZoneEntry;

use crate::harness::{Petrel, Scratch, poll, send_one};
use crate::websites::{Nginx, TestCa};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
pub const POLICY: &str = "/.well-known/mta-sts.txt";

/// MX records (all hosts at 127.0.0.1), `_mta-sts` TXT records and `mta-sts.` hosts at `site`.
pub fn zone(
    site: Ipv4Addr,
    domains: &[(&'static str, &'static str, &'static str)],
) -> Vec<ZoneEntry> {
    let mut zone = vec![
        ZoneEntry::A("mx.sts.test", LOOPBACK),
        ZoneEntry::A("mx2.sts.test", LOOPBACK),
    ];
    for (domain, policy_host, mx) in domains {
        zone.push(ZoneEntry::Mx(domain, 10, mx));
        zone.push(ZoneEntry::Txt(
            format!("_mta-sts.{domain}"),
            "v=STSv1; id=20261207;".into(),
        ));
        zone.push(ZoneEntry::A(policy_host, site));
    }
    zone
}

pub fn policy(mode: &str, mx: &[&str]) -> String {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for pattern in mx {
        text.push_str(&format!("mx: {pattern}\r\n"));
    }
    text + "max_age: 86400\r\n"
}

/// The policy web site of a test: nginx on `address`, with a certificate from `ca` for
/// `mta-sts.<domain>` of every `(domain, mode, mx)`, serving that policy; its directory is a
/// Scratch named `<name>-site`. Bind both (`let (_site_dir, site) = ...`): the site is stopped
/// before its directory goes.
pub fn policy_site(
    name: &str,
    ca: &TestCa,
    address: Ipv4Addr,
    policies: &[(&str, &str, &[&str])],
) -> (Scratch, Nginx) {
    let dir = Scratch::new(&format!("{name}-site"));
    let hosts: Vec<String> = policies
        .iter()
        .map(|(domain, _, _)| format!("mta-sts.{domain}"))
        .collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let certificate = ca.issue("mta-sts", &hosts);
    let site = Nginx::start(&dir.0, address, &certificate, "");
    for ((_, mode, mx), host) in policies.iter().zip(&hosts) {
        site.serve(host, POLICY, &policy(mode, mx));
    }
    (dir, site)
}

/// A receiving petrel with a certificate from `ca` for mx.sts.test, taking mail for `domains`.
pub fn receiver(scratch: &Scratch, ca: &TestCa, domains: &[&str]) -> Petrel {
    let (cert, key) = ca.issue("mx.sts.test", &["mx.sts.test"]);
    Petrel::start_for(
        &scratch.0,
        "mx.sts.test",
        domains,
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
}

/// A sending petrel whose remote MX port is `port`, trusting `ca`.
fn sender(scratch: &Scratch, zone: Vec<ZoneEntry>, port: u16, ca: &TestCa) -> Petrel {
    node_of(scratch, zone, port, ca, "")
}

/// `sender`, as node `name` of the cluster whose PostgreSQL queue is at `url`.
pub fn cluster_sender(
    scratch: &Scratch,
    zone: Vec<ZoneEntry>,
    port: u16,
    ca: &TestCa,
    (url, name): (&str, &str),
) -> Petrel {
    let queue = format!(
        "[queue]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{name}\"\n\n"
    );
    node_of(scratch, zone, port, ca, &queue)
}

fn node_of(scratch: &Scratch, zone: Vec<ZoneEntry>, port: u16, ca: &TestCa, queue: &str) -> Petrel {
    Petrel::start_in_zone(
        &scratch.0,
        "mx.a.test",
        &["a.test"],
        zone,
        &format!(
            "{queue}[delivery]\nport = {port}\nretry = [\"1h\"]\nca_file = \"{}\"\n",
            ca.cert_path.display()
        ),
    )
}

fn send(petrel: &Petrel, to: &str) {
    let content = format!("From: alice@a.test\r\nSubject: to {to}\r\n\r\nhello\r\n");
    let reply = send_one(petrel.address, "alice@a.test", &[to], content.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
}

/// The sender's log once every line of `needles` is in it (or after 30 s).
pub fn log_with(petrel: &Petrel, needles: &[&str]) -> String {
    poll(
        || petrel.log_text(),
        |log| needles.iter().all(|n| log.contains(n)),
    )
}

/// The log lines that mention `word`.
pub fn lines_with(log: &str, word: &str) -> String {
    log.lines()
        .filter(|l| l.contains(word))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_mode_does_what_rfc_8461_says_with_each_receiver() {
    let dir = Scratch::new("sts-modes");
    let ca = TestCa::new(&dir.0);
    let site_dir = Scratch::new("sts-modes-site");
    let site_address = Ipv4Addr::new(127, 0, 1, 1);
    let site_cert = ca.issue(
        "mta-sts",
        &[
            "mta-sts.good.test",
            "mta-sts.wrongname.test",
            "mta-sts.unlisted.test",
            "mta-sts.testing.test",
            "mta-sts.redirect.test",
            "mta-sts.none.test",
            "mta-sts.huge.test",
        ],
    );
    let redirect = "  server {\n    listen {address}:443 ssl;\n    server_name mta-sts.redirect.test;\n    return 301 https://mta-sts.good.test/.well-known/mta-sts.txt;\n  }\n";
    let site = Nginx::start(&site_dir.0, site_address, &site_cert, redirect);
    site.serve(
        "mta-sts.good.test",
        POLICY,
        &policy("enforce", &["mx.sts.test"]),
    );
    site.serve(
        "mta-sts.wrongname.test",
        POLICY,
        &policy("enforce", &["*.sts.test"]),
    );
    site.serve(
        "mta-sts.unlisted.test",
        POLICY,
        &policy("enforce", &["mx.elsewhere.test"]),
    );
    site.serve(
        "mta-sts.testing.test",
        POLICY,
        &policy("testing", &["mx.sts.test"]),
    );
    // mode none: the domain withdraws its policy; nothing is enforced.
    site.serve(
        "mta-sts.none.test",
        POLICY,
        &policy("none", &["mx.elsewhere.test"]),
    );
    // An enforce policy that would refuse mx.sts.test, past the 64 KiB a policy may have.
    let padding: Vec<String> = (0..4000)
        .map(|i| format!("pad{i:05}.elsewhere.test"))
        .collect();
    let padded: Vec<&str> = padding.iter().map(String::as_str).collect();
    site.serve("mta-sts.huge.test", POLICY, &policy("enforce", &padded));

    let receiver_dir = Scratch::new("sts-modes-receiver");
    let domains = [
        "good.test",
        "wrongname.test",
        "unlisted.test",
        "testing.test",
        "redirect.test",
        "none.test",
        "huge.test",
    ];
    let receiver = receiver(&receiver_dir, &ca, &domains);
    let sender_dir = Scratch::new("sts-modes-sender");
    let zone = zone(
        site_address,
        &[
            ("good.test", "mta-sts.good.test", "mx.sts.test"),
            ("wrongname.test", "mta-sts.wrongname.test", "mx2.sts.test"),
            ("unlisted.test", "mta-sts.unlisted.test", "mx.sts.test"),
            ("testing.test", "mta-sts.testing.test", "mx2.sts.test"),
            ("redirect.test", "mta-sts.redirect.test", "mx2.sts.test"),
            ("none.test", "mta-sts.none.test", "mx.sts.test"),
            ("huge.test", "mta-sts.huge.test", "mx.sts.test"),
        ],
    );
    let a = sender(&sender_dir, zone, receiver.address.port(), &ca);

    // enforce, a listed MX with a certificate for its name: delivered over verified TLS.
    send(&a, "bob@good.test");
    receiver.wait_for_one_from("good.test", "bob", &a);
    let log = log_with(&a, &["(MTA-STS enforce)"]);
    let good = lines_with(&log, "good.test");
    assert!(
        good.contains(
            "MTA-STS policy of good.test: mode enforce, mx mx.sts.test, id 20261207 (fetched now)"
        ),
        "{good}"
    );
    assert!(
        good.contains("certificate verified (MTA-STS enforce)"),
        "{good}"
    );

    // enforce, an MX whose certificate names another host: deferred with 4.7.5, nothing sent.
    send(&a, "bob@wrongname.test");
    let log = log_with(&a, &["domain=wrongname.test", "status=4.7.5"]);
    let wrong = lines_with(&log, "wrongname.test");
    assert!(wrong.contains("cause=tls-certificate"), "{wrong}");
    assert!(receiver.maildir("wrongname.test", "bob").is_empty());

    // enforce, an MX the policy does not list: deferred without a connection.
    send(&a, "bob@unlisted.test");
    let log = log_with(
        &a,
        &["no MX host of unlisted.test matches its MTA-STS policy"],
    );
    let unlisted = lines_with(&log, "unlisted.test");
    assert!(
        unlisted.contains(
            "mx.sts.test is not among the MX patterns of the MTA-STS policy of unlisted.test: skipped (MTA-STS enforce)"
        ),
        "{unlisted}"
    );
    assert!(!unlisted.contains("STARTTLS"), "no connection: {unlisted}");
    assert!(unlisted.contains("status=4.7.5"), "{unlisted}");
    assert!(receiver.maildir("unlisted.test", "bob").is_empty());

    // testing: an unlisted MX with the wrong certificate still gets the mail, and the history
    // says what enforce would have refused.
    send(&a, "bob@testing.test");
    receiver.wait_for_one_from("testing.test", "bob", &a);
    let log = log_with(&a, &["would fail enforce"]);
    let testing = lines_with(&log, "testing.test");
    assert!(
        testing.contains("mx2.sts.test is not among the MX patterns of the MTA-STS policy of testing.test: delivering anyway (MTA-STS testing)"),
        "{testing}"
    );

    // A redirect is not followed: no policy applies, and the mail goes as without MTA-STS.
    send(&a, "bob@redirect.test");
    receiver.wait_for_one_from("redirect.test", "bob", &a);
    let log = log_with(&a, &["redirects are not followed"]);
    let redirected = lines_with(&log, "redirect.test");
    assert!(redirected.contains("HTTP 301"), "{redirected}");
    assert!(!redirected.contains("(MTA-STS"), "{redirected}");

    // mode none: an MX the policy does not list still gets the mail (RFC 8461 §5).
    send(&a, "bob@none.test");
    receiver.wait_for_one_from("none.test", "bob", &a);
    let log = log_with(&a, &["domain=none.test", "outcome=delivered"]);
    let none = lines_with(&log, "none.test");
    assert!(!none.contains("(MTA-STS enforce)"), "{none}");

    // A policy past 64 KiB is not read: no policy applies (its enforce would have refused).
    send(&a, "bob@huge.test");
    receiver.wait_for_one_from("huge.test", "bob", &a);
    let log = log_with(&a, &["domain=huge.test", "outcome=delivered"]);
    let huge = lines_with(&log, "huge.test");
    assert!(huge.contains("65536 bytes"), "{huge}");
    assert!(!huge.contains("(MTA-STS enforce)"), "{huge}");

    // petrel probe shows the policy and what it does to each MX host (issue 15, item 7).
    let probe = |address: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["probe", address, "--config"])
            .arg(&a.config_path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success(), text)
    };
    let (accepted, text) = probe("bob@good.test");
    assert!(accepted, "{text}");
    assert!(
        text.contains("MTA-STS: policy id 20261207, mode enforce, mx mx.sts.test, max_age 86400 s"),
        "{text}"
    );
    assert!(text.contains("certificate verified"), "{text}");
    let (accepted, text) = probe("bob@unlisted.test");
    assert!(!accepted, "{text}");
    assert!(
        text.contains("mx.sts.test is not in the MTA-STS policy: delivery skips it (enforce)"),
        "{text}"
    );
    assert!(text.contains("delivery would defer (4.7.5)"), "{text}");
    let (_, text) = probe("bob@wrongname.test");
    assert!(
        text.contains(
            "MTA-STS enforce: delivery would not use this host (certificate not verified)"
        ),
        "{text}"
    );
}

#[test]
fn enforce_refuses_a_server_without_starttls_and_the_kept_policy_outlives_a_restart() {
    let dir = Scratch::new("sts-strip");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 2);
    let (_site_dir, mut site) = policy_site(
        "sts-strip",
        &ca,
        site_address,
        &[("good.test", "enforce", &["mx.sts.test"])],
    );
    // A receiver without TLS: what a man in the middle who strips STARTTLS looks like.
    let plain_dir = Scratch::new("sts-strip-plain");
    let plain = Petrel::start_for(&plain_dir.0, "mx.sts.test", &["good.test"], "");
    let sender_dir = Scratch::new("sts-strip-sender");
    let zone = || {
        zone(
            site_address,
            &[("good.test", "mta-sts.good.test", "mx.sts.test")],
        )
    };
    let mut a = sender(&sender_dir, zone(), plain.address.port(), &ca);

    send(&a, "bob@good.test");
    let log = log_with(&a, &["domain=good.test", "status=4.7.5"]);
    let stripped = lines_with(&log, "good.test");
    assert!(stripped.contains("cause=tls-policy"), "{stripped}");
    assert!(stripped.contains("does not offer STARTTLS"), "{stripped}");
    assert!(plain.maildir("good.test", "bob").is_empty());
    if !crate::backend::is_postgres() {
        let kept = sender_dir.0.join("data/queue/state/mta-sts/good.test");
        let kept = std::fs::read_to_string(&kept).unwrap_or_else(|e| panic!("{kept:?}: {e}"));
        assert!(kept.contains("mode: enforce"), "{kept}");
    }

    // The web server goes away and the sender restarts: the kept policy still applies.
    site.stop();
    a.signal("TERM");
    a.wait_exit();
    let dns = a.dns.clone();
    let mut b = Petrel::start_with(&a.config_path, &a.data_dir, &[]);
    b.dns = dns;
    send(&b, "carol@good.test");
    let log = log_with(&b, &["(cached)", "status=4.7.5"]);
    assert!(
        log.contains(
            "MTA-STS policy of good.test: mode enforce, mx mx.sts.test, id 20261207 (cached)"
        ),
        "{log}"
    );
    assert!(plain.maildir("good.test", "carol").is_empty());
}

/// The shared queue (issue 15, item 3): the MTA-STS policy one node fetched is kept in
/// PostgreSQL for every node. With the policy's web server gone, a second node that never
/// fetched it applies it (cached) and refuses the server stripped of STARTTLS; without the
/// shared copy it would find no policy and deliver in plaintext.
#[test]
fn the_nodes_of_a_cluster_share_the_policy_one_of_them_fetched() {
    let url = crate::backend::new_database();
    let dir = Scratch::new("sts-cluster");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 7);
    let (_site_dir, mut site) = policy_site(
        "sts-cluster",
        &ca,
        site_address,
        &[("good.test", "enforce", &["mx.sts.test"])],
    );
    let plain_dir = Scratch::new("sts-cluster-plain");
    let plain = Petrel::start_for(&plain_dir.0, "mx.sts.test", &["good.test"], "");
    let node = |name: &str, scratch: &Scratch| {
        let zone = zone(
            site_address,
            &[("good.test", "mta-sts.good.test", "mx.sts.test")],
        );
        cluster_sender(scratch, zone, plain.address.port(), &ca, (&url, name))
    };
    let a_dir = Scratch::new("sts-cluster-a");
    let a = node("a", &a_dir);
    send(&a, "bob@good.test");
    let log = log_with(&a, &["domain=good.test", "status=4.7.5"]);
    assert!(log.contains("(fetched now)"), "{log}");
    site.stop();
    let b_dir = Scratch::new("sts-cluster-b");
    let b = node("b", &b_dir);
    send(&b, "carol@good.test");
    let log = log_with(&b, &["(cached)", "status=4.7.5"]);
    assert!(
        log.contains(
            "MTA-STS policy of good.test: mode enforce, mx mx.sts.test, id 20261207 (cached)"
        ),
        "{log}"
    );
    assert!(log.contains("cause=tls-policy"), "{log}");
    assert!(plain.maildir("good.test", "carol").is_empty());
}
