//! DANE for SMTP (issue 15, item 4; RFC 7672; C-DANE-1 to C-DANE-4) against a real DNSSEC
//! chain: a zone signed at test time served by NSD, validated by unbound (petrel trusts its AD
//! bit: `dns.validating`), and a receiving petrel whose certificate chain the TLSA records
//! describe. Each case of the RFC: a matching DANE-EE record, a matching DANE-TA record, a
//! record that does not match (defer, nothing sent), a TLSA RRset whose signature is broken
//! ("bogus": the host is not used, never plaintext), a host without TLSA records and an
//! unsigned zone whose wrong TLSA record is ignored (both deliver as without DANE).

use ring::digest::{SHA256, digest};

use crate::dnssec::{SignedDns, Zone};
use crate::harness::{Petrel, Scratch, poll, send_one};
use crate::websites::TestCa;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn send(petrel: &Petrel, to: &str) {
    let content = format!("From: alice@a.test\r\nSubject: to {to}\r\n\r\nhello\r\n");
    let reply = send_one(petrel.address, "alice@a.test", &[to], content.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
}

/// The sender's log lines about `domain` once they hold every one of `needles`.
fn lines_about(petrel: &Petrel, domain: &str, needles: &[&str]) -> String {
    let wanted = |log: &String| {
        let lines = crate::mta_sts::lines_with(log, domain);
        needles.iter().all(|n| lines.contains(n))
    };
    let log = poll(|| petrel.log_text(), wanted);
    crate::mta_sts::lines_with(&log, domain)
}

/// A signed dane.test served from a Scratch named `name`: mx1 and mx2 at 127.0.0.1, mx1 with
/// a DANE-EE TLSA record on `port` matching `spki`, mx2 with one that matches nothing, and
/// `records` besides.
fn mx1_matched_mx2_not(
    name: &str,
    port: u16,
    spki: &[u8],
    records: &[String],
) -> (Scratch, SignedDns) {
    let ee = hex(digest(&SHA256, spki).as_ref());
    let tlsa = |host: &str, record: String| format!("_{port}._tcp.{host}. IN TLSA {record}");
    let mut records = records.to_vec();
    records.extend([
        "mx1 IN A 127.0.0.1".into(),
        "mx2 IN A 127.0.0.1".into(),
        tlsa("mx1.dane.test", format!("3 1 1 {ee}")),
        tlsa("mx2.dane.test", format!("3 1 1 {}", "00".repeat(32))),
    ]);
    let dir = Scratch::new(name);
    let dns = SignedDns::start(
        &dir.0,
        &[Zone {
            name: "dane.test",
            records,
            is_signed: true,
            broken_tlsa: Vec::new(),
        }],
    );
    (dir, dns)
}

/// A sending petrel for a.test that asks `dns` (unbound, validating: `dns.validating`) and
/// delivers to MX port `port`; `extra` is more configuration after its `[delivery]` lines.
fn dane_sender(scratch: &Scratch, dns: &SignedDns, port: u16, extra: &str) -> Petrel {
    let data_dir = scratch.0.join("data");
    let config = crate::harness::config_for(
        &data_dir,
        dns.address,
        "mx.a.test",
        &["a.test"],
        &format!("[delivery]\nport = {port}\nretry = [\"1h\"]\n{extra}"),
    )
    .replace("timeout = \"2s\"", "timeout = \"2s\"\nvalidating = true");
    let config_path = scratch.0.join("petrel.toml");
    std::fs::write(&config_path, config).unwrap();
    Petrel::start_with(&config_path, &data_dir, &[])
}

#[test]
fn each_dane_case_of_rfc_7672_against_unbound() {
    let dir = Scratch::new("dane");
    let ca = TestCa::new(&dir.0);
    let hosts = [
        "mx1.dane.test",
        "mx2.dane.test",
        "mx3.dane.test",
        "mx4.dane.test",
        "mx5.dane.test",
        "mx.insecure.test",
    ];
    let issued = ca.issue_chain("receiver", &hosts);
    let domains = [
        "good.dane.test",
        "ta.dane.test",
        "mismatch.dane.test",
        "bogus.dane.test",
        "none.dane.test",
        "insecure.test",
        "only.dane.test",
        "plain.dane.test",
    ];
    let receiver_dir = Scratch::new("dane-receiver");
    let b = Petrel::start_for(
        &receiver_dir.0,
        "mx1.dane.test",
        &domains,
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            issued.chain.display(),
            issued.key.display()
        ),
    );
    let port = b.address.port();
    let ee = hex(digest(&SHA256, &issued.spki).as_ref());
    let ta = hex(digest(&SHA256, &issued.ca_der).as_ref());
    let wrong = "00".repeat(32);
    let tlsa = |host: &str, record: String| format!("_{port}._tcp.{host}. IN TLSA {record}");
    let dns_dir = Scratch::new("dane-dns");
    let broken = format!("_{port}._tcp.mx3.dane.test");
    let dns = SignedDns::start(
        &dns_dir.0,
        &[
            Zone {
                name: "dane.test",
                records: vec![
                    "good IN MX 10 mx1.dane.test.".into(),
                    "ta IN MX 10 mx5.dane.test.".into(),
                    "mismatch IN MX 10 mx2.dane.test.".into(),
                    "bogus IN MX 10 mx3.dane.test.".into(),
                    "none IN MX 10 mx4.dane.test.".into(),
                    "only IN MX 10 mx4.dane.test.".into(),
                    "plain IN MX 10 mx1.dane.test.".into(),
                    "mx1 IN A 127.0.0.1".into(),
                    "mx2 IN A 127.0.0.1".into(),
                    "mx3 IN A 127.0.0.1".into(),
                    "mx4 IN A 127.0.0.1".into(),
                    "mx5 IN A 127.0.0.1".into(),
                    tlsa("mx1.dane.test", format!("3 1 1 {ee}")),
                    tlsa("mx2.dane.test", format!("3 1 1 {wrong}")),
                    tlsa("mx3.dane.test", format!("3 1 1 {ee}")),
                    tlsa("mx5.dane.test", format!("2 0 1 {ta}")),
                ],
                is_signed: true,
                broken_tlsa: vec![&broken],
            },
            Zone {
                name: "insecure.test",
                records: vec![
                    "@ IN MX 10 mx.insecure.test.".into(),
                    "mx IN A 127.0.0.1".into(),
                    tlsa("mx.insecure.test", format!("3 1 1 {wrong}")),
                ],
                is_signed: false,
                broken_tlsa: Vec::new(),
            },
        ],
    );
    let sender_dir = Scratch::new("dane-sender");
    let a = dane_sender(
        &sender_dir,
        &dns,
        port,
        "\n[[delivery.tls_policy]]\ndomain = \"only.dane.test\"\nlevel = \"dane-only\"\n\n[[delivery.tls_policy]]\ndomain = \"plain.dane.test\"\nlevel = \"none\"\n\n[[delivery.tls_policy]]\ndomain = \"none.dane.test\"\nlevel = \"dane\"\n",
    );

    // DANE-EE(3) matches the key: delivered, and the history says how it was authenticated.
    send(&a, "bob@good.dane.test");
    b.wait_for_one_from("good.dane.test", "bob", &a);
    let good = lines_about(&a, "good.dane.test", &["certificate matched TLSA (DANE)"]);
    assert!(good.contains("1 usable validated TLSA record(s)"), "{good}");

    // DANE-TA(2): the CA in the presented chain, the name of the MX host checked.
    send(&a, "bob@ta.dane.test");
    b.wait_for_one_from("ta.dane.test", "bob", &a);
    lines_about(&a, "ta.dane.test", &["certificate matched TLSA (DANE)"]);

    // A record that matches nothing: deferred with 4.7.5, nothing sent.
    send(&a, "bob@mismatch.dane.test");
    let mismatch = lines_about(&a, "mismatch.dane.test", &["status=4.7.5"]);
    assert!(mismatch.contains("cause=tls-certificate"), "{mismatch}");
    assert!(mismatch.contains("no TLSA record matches"), "{mismatch}");
    assert!(b.maildir("mismatch.dane.test", "bob").is_empty());

    // Bogus (a broken signature): the host is not used at all, never in plaintext.
    send(&a, "bob@bogus.dane.test");
    let bogus = lines_about(&a, "bogus.dane.test", &["status=4.7.5"]);
    assert!(bogus.contains("the TLSA lookup failed"), "{bogus}");
    assert!(bogus.contains("cause=tls-policy"), "{bogus}");
    assert!(!bogus.contains("STARTTLS"), "no connection: {bogus}");
    assert!(b.maildir("bogus.dane.test", "bob").is_empty());

    // No TLSA records (a validated denial), at the level `dane` named for the domain:
    // delivered as without DANE (unlike dane-only below).
    send(&a, "bob@none.dane.test");
    b.wait_for_one_from("none.dane.test", "bob", &a);
    let none = lines_about(&a, "none.dane.test", &["outcome=delivered"]);
    assert!(
        none.contains("no validated TLSA records: DANE does not apply"),
        "{none}"
    );

    // An unsigned zone: its (wrong) TLSA record is not even looked up.
    send(&a, "bob@insecure.test");
    b.wait_for_one_from("insecure.test", "bob", &a);
    let insecure = lines_about(&a, "insecure.test", &["outcome=delivered"]);
    assert!(
        insecure.contains("is not DNSSEC-validated; no TLSA lookup"),
        "{insecure}"
    );

    // dane-only: a host without validated TLSA records is not used.
    send(&a, "bob@only.dane.test");
    let only = lines_about(&a, "only.dane.test", &["status=4.7.5"]);
    assert!(
        only.contains("no validated TLSA records; not used (dane-only)"),
        "{only}"
    );
    assert!(b.maildir("only.dane.test", "bob").is_empty());

    // none: the operator's word wins; no TLS even to a host with TLSA records.
    send(&a, "bob@plain.dane.test");
    b.wait_for_one_from("plain.dane.test", "bob", &a);
    let plain = lines_about(&a, "plain.dane.test", &["outcome=delivered"]);
    assert!(plain.contains("plaintext (TLS not tried)"), "{plain}");

    // TLS reporting counts DANE sessions under their TLSA policy (RFC 8460 §4.4).
    let report = |domain: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["tls-report", domain, "--json", "--config"])
            .arg(&a.config_path)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let good = report("good.dane.test");
    let policy = &good["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "tlsa", "{good}");
    assert_eq!(policy["policy"]["policy-string"][0], format!("3 1 1 {ee}"));
    assert_eq!(policy["summary"]["total-successful-session-count"], 1);
    let bogus = report("bogus.dane.test");
    assert_eq!(
        bogus["policies"][0]["failure-details"][0]["result-type"], "dnssec-invalid",
        "{bogus}"
    );
    let only = report("only.dane.test");
    assert_eq!(
        only["policies"][0]["failure-details"][0]["result-type"], "dane-required",
        "{only}"
    );
    let mismatch = report("mismatch.dane.test");
    assert_eq!(
        mismatch["policies"][0]["summary"]["total-failure-session-count"], 1,
        "{mismatch}"
    );

    // petrel probe shows the TLSA records and whether the certificate matched them.
    let probe = |address: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["probe", address, "--config"])
            .arg(&a.config_path)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (accepted, text) = probe("bob@good.dane.test");
    assert!(accepted, "{text}");
    assert!(text.contains("1 usable validated TLSA record(s)"), "{text}");
    assert!(text.contains("certificate matched TLSA (DANE)"), "{text}");
    let (accepted, text) = probe("bob@mismatch.dane.test");
    assert!(!accepted, "{text}");
    assert!(text.contains("no TLSA record matches"), "{text}");
    let (accepted, text) = probe("bob@bogus.dane.test");
    assert!(!accepted, "{text}");
    assert!(text.contains("its DANE lookup failed"), "{text}");
}

/// DANE against a real Postfix (issue 15): Postfix 3.7 serves STARTTLS with a certificate
/// whose key a DANE-EE(3) record of the signed zone describes; petrel delivers to it only
/// after matching that record, and defers (4.7.5, nothing sent) to the same Postfix reached
/// through an MX host whose TLSA record matches nothing.
#[test]
fn a_postfix_receiver_is_authenticated_by_its_tlsa_record() {
    let dir = Scratch::new("dane-postfix");
    let ca = TestCa::new(&dir.0);
    let issued = ca.issue_chain("postfix", &["mx1.dane.test", "mx2.dane.test"]);
    let port = crate::harness::server_port();
    let postfix_dir = Scratch::new("dane-postfix-instance");
    let postfix = crate::requiretls::Postfix::start(
        &postfix_dir.0,
        port,
        "mx1.dane.test",
        &issued.chain,
        &issued.key,
    );
    let (_dns_dir, dns) = mx1_matched_mx2_not(
        "dane-postfix-dns",
        port,
        &issued.spki,
        &[
            "pf IN MX 10 mx1.dane.test.".into(),
            "pfbad IN MX 10 mx2.dane.test.".into(),
        ],
    );
    let sender_dir = Scratch::new("dane-postfix-sender");
    let a = dane_sender(&sender_dir, &dns, port, "");

    send(&a, "bob@pf.dane.test");
    let good = lines_about(&a, "pf.dane.test", &["outcome=delivered"]);
    assert!(good.contains("certificate matched TLSA (DANE)"), "{good}");
    let maillog = poll(
        || postfix.maillog(),
        |log| log.contains("TLS connection established from"),
    );
    assert!(
        maillog.contains("TLS connection established from"),
        "over TLS: {maillog}"
    );

    send(&a, "bob@pfbad.dane.test");
    let bad = lines_about(&a, "pfbad.dane.test", &["status=4.7.5"]);
    assert!(bad.contains("cause=tls-certificate"), "{bad}");
    assert!(bad.contains("no TLSA record matches"), "{bad}");
}

/// C-STS-4 and C-RTLS-2 where DANE and MTA-STS meet: for a domain whose MX has a matching
/// TLSA record, DANE decides, even where the domain's MTA-STS enforce policy does not list the
/// host, and a REQUIRETLS message goes there on DANE's word; where the TLSA record matches
/// nothing, an MTA-STS policy that lists the host and a certificate that verifies for its name
/// do not override the failed DANE check: 4.7.5, nothing sent.
#[test]
fn dane_decides_where_it_applies_and_mta_sts_never_overrides_it() {
    let dir = Scratch::new("dane-sts");
    let ca = TestCa::new(&dir.0);
    let site_address = std::net::Ipv4Addr::new(127, 0, 1, 9);
    let (_site_dir, _site) = crate::mta_sts::policy_site(
        "dane-sts",
        &ca,
        site_address,
        &[
            ("both.dane.test", "enforce", &["mx.elsewhere.test"]),
            ("bothbad.dane.test", "enforce", &["mx2.dane.test"]),
        ],
    );
    let issued = ca.issue_chain("receiver", &["mx1.dane.test", "mx2.dane.test"]);
    let receiver_dir = Scratch::new("dane-sts-receiver");
    let b = Petrel::start_for(
        &receiver_dir.0,
        "mx1.dane.test",
        &["both.dane.test", "bothbad.dane.test"],
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            issued.chain.display(),
            issued.key.display()
        ),
    );
    let port = b.address.port();
    let (_dns_dir, dns) = mx1_matched_mx2_not(
        "dane-sts-dns",
        port,
        &issued.spki,
        &[
            "both IN MX 10 mx1.dane.test.".into(),
            "bothbad IN MX 10 mx2.dane.test.".into(),
            "_mta-sts.both IN TXT \"v=STSv1; id=20261207;\"".into(),
            "_mta-sts.bothbad IN TXT \"v=STSv1; id=20261207;\"".into(),
            format!("mta-sts.both IN A {site_address}"),
            format!("mta-sts.bothbad IN A {site_address}"),
        ],
    );
    let (cert, key) = ca.issue("mx.a.test", &["mx.a.test"]);
    let sender_dir = Scratch::new("dane-sts-sender");
    let a = dane_sender(
        &sender_dir,
        &dns,
        port,
        &format!(
            "ca_file = \"{}\"\n\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            ca.cert_path.display(),
            cert.display(),
            key.display()
        ),
    );

    // DANE vouches for mx1, which the enforce policy does not list: delivered on DANE's word,
    // a REQUIRETLS message too.
    send(&a, "bob@both.dane.test");
    b.wait_for_one_from("both.dane.test", "bob", &a);
    let both = lines_about(&a, "both.dane.test", &["outcome=delivered"]);
    assert!(both.contains("certificate matched TLSA (DANE)"), "{both}");
    assert!(!both.contains("skipped (MTA-STS enforce)"), "{both}");
    let sent = crate::requiretls::smtplib(
        &a,
        "carol@both.dane.test",
        "From: alice@a.test|Subject: protected by DANE",
        "REQUIRETLS",
        false,
    );
    assert!(sent.contains("sent"), "{sent}");
    b.wait_for_one_from("both.dane.test", "carol", &a);

    // DANE fails for mx2; MTA-STS lists it and its certificate verifies: still refused.
    send(&a, "bob@bothbad.dane.test");
    let bad = lines_about(&a, "bothbad.dane.test", &["status=4.7.5"]);
    assert!(bad.contains("no TLSA record matches"), "{bad}");
    assert!(bad.contains("cause=tls-certificate"), "{bad}");
    assert!(b.maildir("bothbad.dane.test", "bob").is_empty());
}
