//! DKIM signing, and SPF/DKIM/DMARC checks of port-25 mail (issue 5): a key made with
//! `petrel dkim keygen`, its TXT record served by the loopback DNS responder, a message petrel
//! signed checked by an independent verifier (Python's dkimpy, Debian's python3-dkim, asking
//! that DNS server), and Authentication-Results for pass, fail and none, with DMARC's reject
//! policy both recorded (default) and enforced (`policy.dmarc_reject`).

use std::path::Path;
use std::process::Command;

use petrel_dns::responder::ZoneEntry;

use crate::harness::{Petrel, Scratch, run_with_stdin, send_one, test_zone};

/// Runs `petrel dkim keygen`, returning the key file and the TXT record's value as printed.
pub(crate) fn keygen(dir: &Path, domain: &str, selector: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{domain}.pem"));
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["dkim", "keygen", domain, "--selector", selector, "--output"])
        .arg(&key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.{domain}. IN TXT")))
        .unwrap_or_else(|| panic!("no TXT record printed:\n{stdout}"));
    // The record is split into quoted strings; a zone file joins them (RFC 6376 §3.6.2.2).
    let record: String = line.split('"').skip(1).step_by(2).collect();
    assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
    (key, record)
}

/// A petrel with its own zone on a loopback DNS server.
fn start(
    dir: &Path,
    hostname: &str,
    domains: &[&str],
    zone: Vec<ZoneEntry>,
    extra: &str,
) -> Petrel {
    Petrel::start_in_zone(dir, hostname, domains, zone, extra)
}

fn send(petrel: &Petrel, from: &str, to: &str, content: &str) -> String {
    send_one(petrel.address, from, &[to], content.as_bytes())
}

fn message(from: &str, body: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: Bob <bob@example.test>\r\nSubject: signed mail\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\nMessage-ID: <{}@client.test>\r\n\r\n{body}\r\n",
        body.len()
    )
}

/// dkimpy's verdict on `message`, fetching keys from the DNS server at `dns_port`.
pub(crate) fn dkimpy_verify(message: &[u8], dns_port: u16) -> (bool, String) {
    const SCRIPT: &str = r#"
import sys, dkim, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = resolver.resolve(name, "TXT", lifetime=timeout)
    return b"".join(b"".join(record.strings) for record in answer)
try:
    ok = dkim.DKIM(sys.stdin.buffer.read()).verify(dnsfunc=txt)
except dkim.DKIMException as error:
    print(error, file=sys.stderr)
    ok = False
print("pass" if ok else "fail")
"#;
    // Debian's python3, where python3-dkim lives (not a python3 earlier on PATH).
    let output = run_with_stdin(
        Command::new("/usr/bin/python3").args(["-c", SCRIPT, &dns_port.to_string()]),
        message,
    );
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "dkimpy: {stderr}");
    (stdout == "pass", stderr)
}

/// A Maildir file as it went over the wire: CRLF line ends.
pub(crate) fn crlf(file: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(file)
        .replace('\n', "\r\n")
        .into_bytes()
}

#[test]
fn a_message_petrel_signs_verifies_with_dkimpy() {
    let scratch = Scratch::new("dkim-sign");
    let (key, record) = keygen(&scratch.0, "example.test", "s2026");
    let mut zone = test_zone();
    zone.push(ZoneEntry::Txt(
        "s2026._domainkey.example.test".into(),
        record,
    ));
    let extra = format!(
        "[[dkim]]\ndomain = \"example.test\"\nselector = \"s2026\"\nprivate_key = \"{}\"\n",
        key.display()
    );
    let petrel = start(
        &scratch.0,
        "mx.test",
        &["example.test", "localhost"],
        zone,
        &extra,
    );
    let dns_port = petrel.dns.as_ref().unwrap().address.port();
    // From 127.0.0.1, a relay network: our own mail, signed.
    let body = "Hello Bob.\r\n..a line that starts with a dot\r\nBye.";
    assert!(
        send(
            &petrel,
            "alice@example.test",
            "bob@example.test",
            &message("alice@example.test", body)
        )
        .starts_with("250")
    );
    assert!(
        send(
            &petrel,
            "carol@localhost",
            "bob@example.test",
            &message("carol@localhost", "no key here")
        )
        .starts_with("250")
    );
    let delivered = petrel.wait_for_maildir("example.test", "bob", 2);
    assert_eq!(delivered.len(), 2, "{}", petrel.log_text());
    let (signed, unsigned): (Vec<_>, Vec<_>) = delivered
        .iter()
        .partition(|m| String::from_utf8_lossy(m).contains("alice@example.test"));
    let signed = crlf(signed[0]);
    let text = String::from_utf8_lossy(&signed).into_owned();
    assert!(
        text.contains("DKIM-Signature: v=1; a=rsa-sha256; s=s2026; d=example.test;")
            || text.contains("d=example.test"),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(unsigned[0]).contains("DKIM-Signature:"));
    assert!(
        petrel
            .log_text()
            .contains("dkim=signed d=example.test s=s2026"),
        "{}",
        petrel.log_text()
    );
    let (ok, detail) = dkimpy_verify(&signed, dns_port);
    assert!(ok, "dkimpy refused petrel's signature: {detail}\n{text}");
    // The same check fails once a byte of the body changes: the test can fail.
    let tampered = text.replace("Hello Bob.", "Hello Eve.");
    let (ok, detail) = dkimpy_verify(tampered.as_bytes(), dns_port);
    assert!(!ok && detail.contains("body hash mismatch"), "{detail}");
}

/// SPF and DMARC records for the checks of port-25 mail.
fn checks_zone(dkim_record: Option<(&str, String)>) -> Vec<ZoneEntry> {
    let mut zone = test_zone();
    zone.extend([
        ZoneEntry::Txt("pass.test".into(), "v=spf1 ip4:127.0.0.1 -all".into()),
        ZoneEntry::Txt("_dmarc.pass.test".into(), "v=DMARC1; p=reject".into()),
        ZoneEntry::Txt("fail.test".into(), "v=spf1 ip4:192.0.2.1 -all".into()),
        ZoneEntry::Txt("_dmarc.fail.test".into(), "v=DMARC1; p=reject".into()),
        ZoneEntry::A("none.test", "192.0.2.1".parse().unwrap()),
    ]);
    if let Some((name, record)) = dkim_record {
        zone.push(ZoneEntry::Txt(name.into(), record));
    }
    zone
}

/// The Authentication-Results field of a delivered message, unfolded.
fn authentication_results(file: &[u8]) -> String {
    let text = String::from_utf8_lossy(file);
    let mut field = String::new();
    for line in text.lines() {
        if field.is_empty() {
            if line.starts_with("Authentication-Results: ") {
                field.push_str(line);
            }
        } else if line.starts_with([' ', '\t']) {
            field.push(' ');
            field.push_str(line.trim());
        } else {
            break;
        }
    }
    field
}

#[test]
fn port_25_mail_gets_spf_and_dmarc_results_for_pass_fail_and_none() {
    let scratch = Scratch::new("auth-results");
    // No relay networks: 127.0.0.1 is a stranger from the Internet here.
    let extra = "[relay]\nnetworks = []\n";
    let petrel = start(
        &scratch.0,
        "mx.test",
        &["example.test"],
        checks_zone(None),
        extra,
    );
    for domain in ["pass.test", "fail.test", "none.test"] {
        let from = format!("alice@{domain}");
        // A sender's own claim in our name is dropped (RFC 8601 §5).
        let forged = format!(
            "Authentication-Results: mx.test; spf=pass; dmarc=pass\r\n{}",
            message(&from, domain)
        );
        let reply = send(&petrel, &from, "bob@example.test", &forged);
        // DMARC's reject is recorded, not enforced, by default.
        assert!(reply.starts_with("250"), "{domain}: {reply}");
    }
    let delivered = petrel.wait_for_maildir("example.test", "bob", 3);
    assert_eq!(delivered.len(), 3, "{}", petrel.log_text());
    let results: Vec<String> = delivered
        .iter()
        .map(|m| authentication_results(m))
        .collect();
    let find = |domain: &str| {
        results
            .iter()
            .find(|r| {
                r.contains(&format!("smtp.mailfrom=alice@{domain}"))
                    || r.contains(&format!("smtp.mailfrom=\"alice@{domain}\""))
            })
            .unwrap_or_else(|| panic!("no results for {domain}: {results:?}"))
            .clone()
    };
    for file in &delivered {
        let text = String::from_utf8_lossy(file);
        assert_eq!(text.matches("Authentication-Results:").count(), 1, "{text}");
    }
    let pass = find("pass.test");
    assert!(
        pass.starts_with("Authentication-Results: mx.test;"),
        "{pass}"
    );
    assert!(
        pass.contains("spf=pass") && pass.contains("dmarc=pass"),
        "{pass}"
    );
    let fail = find("fail.test");
    assert!(
        fail.contains("spf=fail")
            && fail.contains("dmarc=fail")
            && fail.contains("policy.dmarc=reject"),
        "{fail}"
    );
    let none = find("none.test");
    assert!(
        none.contains("spf=none") && !none.contains("dmarc=pass") && !none.contains("dmarc=fail"),
        "{none}"
    );
    let log = petrel.log_text();
    assert!(log.contains("spf=pass dkim=none dmarc=pass"), "{log}");
    assert!(log.contains("spf=fail dkim=none dmarc=fail"), "{log}");
}

#[test]
fn dmarc_reject_refuses_what_fails_and_takes_what_passes() {
    let scratch = Scratch::new("dmarc-reject");
    let extra = "[relay]\nnetworks = []\n\n[policy]\ndmarc_reject = true\n";
    let petrel = start(
        &scratch.0,
        "mx.test",
        &["example.test"],
        checks_zone(None),
        extra,
    );
    let reply = send(
        &petrel,
        "alice@fail.test",
        "bob@example.test",
        &message("alice@fail.test", "x"),
    );
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");
    let reply = send(
        &petrel,
        "alice@pass.test",
        "bob@example.test",
        &message("alice@pass.test", "y"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = petrel.wait_for_maildir("example.test", "bob", 1);
    assert_eq!(delivered.len(), 1);
    assert!(String::from_utf8_lossy(&delivered[0]).contains("alice@pass.test"));
}

#[test]
fn mail_signed_by_one_petrel_passes_dkim_and_dmarc_at_another() {
    let scratch_a = Scratch::new("dkim-chain-a");
    let scratch_b = Scratch::new("dkim-chain-b");
    let (key, record) = keygen(&scratch_a.0, "signed.test", "petrel");
    let mut zone = checks_zone(Some(("petrel._domainkey.signed.test", record)));
    // SPF fails for signed.test: only the aligned DKIM signature can make DMARC pass.
    zone.push(ZoneEntry::Txt(
        "signed.test".into(),
        "v=spf1 ip4:192.0.2.1 -all".into(),
    ));
    zone.push(ZoneEntry::Txt(
        "_dmarc.signed.test".into(),
        "v=DMARC1; p=reject".into(),
    ));
    let b = start(
        &scratch_b.0,
        "mx.relay.test",
        &["relay.test"],
        zone.clone(),
        "[relay]\nnetworks = []\n\n[policy]\ndmarc_reject = true\n",
    );
    let extra_a = format!(
        "[delivery]\nport = {}\nretry = [\"1s\"]\n\n[[dkim]]\ndomain = \"signed.test\"\nprivate_key = \"{}\"\n",
        b.address.port(),
        key.display()
    );
    let a = start(&scratch_a.0, "mx.test", &["localhost"], zone, &extra_a);
    let reply = send(
        &a,
        "alice@signed.test",
        "user@relay.test",
        &message("alice@signed.test", "via A"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    // A message far past the size sessions stream to disk from (issue 18): A reads it whole
    // again to sign it, B to check it, and A delivers it as a large message.
    let large_body =
        "a line of a large signed message, streamed to disk on both sides\r\n".repeat(30_000);
    let reply = send(
        &a,
        "alice@signed.test",
        "user@relay.test",
        &message("alice@signed.test", &large_body),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = b.wait_for_maildir("relay.test", "user", 2);
    assert_eq!(
        delivered.len(),
        2,
        "A:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
    assert!(delivered.iter().any(|m| m.len() > 1 << 20));
    for message in &delivered {
        let results = authentication_results(message);
        assert!(
            results.starts_with("Authentication-Results: mx.relay.test;"),
            "{results}"
        );
        assert!(
            results.contains("dkim=pass") && results.contains("header.d=signed.test"),
            "{results}"
        );
        assert!(
            results.contains("spf=fail") && results.contains("dmarc=pass"),
            "{results}"
        );
    }
}
