//! Scenarios for signing and verification against a real DNS server on loopback (petrel-dns's
//! test responder): keys made by `generate`, published as TXT records, messages signed by
//! `Signer` and checked by `Verifier`; SPF and DMARC records for pass, fail and none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use petrel_dns::responder::{Responder, ZoneEntry};
use petrel_mailauth::{DkimKey, KeyAlgorithm, Signer, Verifier, VerifyRequest, generate};

const MESSAGE: &str = "From: Alice <alice@signed.test>\r\nTo: bob@example.net\r\nSubject: hello\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\nMessage-ID: <1@signed.test>\r\n\r\nHello Bob.\r\n.. a dot line\r\n";

fn zone(dkim_txt: &str) -> Vec<ZoneEntry> {
    vec![
        ZoneEntry::Txt("s1._domainkey.signed.test".into(), dkim_txt.into()),
        ZoneEntry::Txt("signed.test".into(), "v=spf1 -all".into()),
        ZoneEntry::Txt("_dmarc.signed.test".into(), "v=DMARC1; p=reject".into()),
        ZoneEntry::Txt("pass.test".into(), "v=spf1 ip4:127.0.0.1 -all".into()),
        ZoneEntry::Txt("_dmarc.pass.test".into(), "v=DMARC1; p=reject".into()),
        ZoneEntry::Txt("fail.test".into(), "v=spf1 ip4:192.0.2.1 -all".into()),
        ZoneEntry::Txt("_dmarc.fail.test".into(), "v=DMARC1; p=reject".into()),
        ZoneEntry::Txt("quarantine.test".into(), "v=spf1 ip4:192.0.2.1 -all".into()),
        ZoneEntry::Txt(
            "_dmarc.quarantine.test".into(),
            "v=DMARC1; p=quarantine".into(),
        ),
        ZoneEntry::A("none.test", "127.0.0.1".parse().unwrap()),
        ZoneEntry::ServFail("servfail.test"),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn verify(dns: &Responder, mail_from: &str, message: &[u8]) -> petrel_mailauth::Verdict {
    runtime().block_on(async {
        let resolver = petrel_dns::Resolver::new(&[dns.address], Duration::from_secs(2)).unwrap();
        Verifier::new(&resolver)
            .verify(&VerifyRequest {
                client: IpAddr::from([127, 0, 0, 1]),
                helo: "client.test",
                mail_from,
                message,
                authserv_id: "mx.test",
            })
            .await
    })
}

fn message_from(domain: &str) -> Vec<u8> {
    MESSAGE.replace("signed.test", domain).into_bytes()
}

fn signed(algorithm: KeyAlgorithm) -> (Vec<u8>, Responder) {
    let key = generate(algorithm).unwrap();
    let dns = Responder::start(zone(&key.txt_record)).unwrap();
    let signer = Signer::new(vec![
        DkimKey::from_pem("signed.test", "s1", key.private_key_pem.as_bytes()).unwrap(),
    ]);
    let signature = signer.sign(MESSAGE.as_bytes()).unwrap().unwrap();
    assert!(signature.starts_with("DKIM-Signature: "), "{signature}");
    assert!(signature.contains("d=signed.test") && signature.contains("s=s1"));
    let mut message = signature.into_bytes();
    message.extend_from_slice(MESSAGE.as_bytes());
    (message, dns)
}

#[test]
fn rsa_signature_verifies_and_aligns_dmarc_although_spf_fails() {
    let (message, dns) = signed(KeyAlgorithm::Rsa { bits: 2048 });
    let verdict = verify(&dns, "alice@signed.test", &message);
    assert_eq!(
        (verdict.spf, verdict.dkim, verdict.dmarc),
        ("fail", "pass", "pass")
    );
    assert!(!verdict.is_dmarc_reject);
    assert!(
        verdict
            .header
            .starts_with("Authentication-Results: mx.test;"),
        "{}",
        verdict.header
    );
    assert!(
        verdict.header.contains("dkim=pass") && verdict.header.contains("header.d=signed.test")
    );
    assert!(verdict.header.ends_with("\r\n"));
}

#[test]
fn ed25519_signature_verifies() {
    let (message, dns) = signed(KeyAlgorithm::Ed25519);
    assert_eq!(verify(&dns, "alice@signed.test", &message).dkim, "pass");
}

#[test]
fn a_changed_body_fails_dkim_and_dmarc_asks_for_rejection() {
    let (message, dns) = signed(KeyAlgorithm::Rsa { bits: 2048 });
    let tampered = String::from_utf8(message)
        .unwrap()
        .replace("Hello Bob.", "Hello Eve.");
    let verdict = verify(&dns, "alice@signed.test", tampered.as_bytes());
    // mail-auth reports a body hash that does not match as "neutral" (the signature itself
    // was not checked); DMARC fails all the same.
    assert_eq!(
        (verdict.spf, verdict.dkim, verdict.dmarc),
        ("fail", "neutral", "fail")
    );
    assert!(verdict.is_dmarc_reject);
    assert!(
        verdict.header.contains("policy.dmarc=reject"),
        "{}",
        verdict.header
    );
}

#[test]
fn spf_pass_fail_none_and_temperror() {
    let dns = Responder::start(zone("v=DKIM1; p=")).unwrap();
    let pass = verify(&dns, "a@pass.test", &message_from("pass.test"));
    assert_eq!((pass.spf, pass.dkim, pass.dmarc), ("pass", "none", "pass"));
    assert!(pass.header.contains("spf=pass") && pass.header.contains("smtp.mailfrom="));
    let fail = verify(&dns, "a@fail.test", &message_from("fail.test"));
    assert_eq!(
        (fail.spf, fail.dmarc, fail.is_dmarc_reject),
        ("fail", "fail", true)
    );
    let quarantine = verify(&dns, "a@quarantine.test", &message_from("quarantine.test"));
    assert_eq!(
        (quarantine.dmarc, quarantine.is_dmarc_reject),
        ("fail", false)
    );
    let none = verify(&dns, "a@none.test", &message_from("none.test"));
    assert_eq!((none.spf, none.dkim, none.dmarc), ("none", "none", "none"));
    assert!(!none.is_dmarc_reject);
    let temporary = verify(&dns, "a@servfail.test", &message_from("servfail.test"));
    assert_eq!(temporary.spf, "temperror");
    assert!(!temporary.is_dmarc_reject);
}

#[test]
fn null_reverse_path_checks_the_helo_identity() {
    let dns = Responder::start(zone("v=DKIM1; p=")).unwrap();
    let verdict = verify(&dns, "", &message_from("none.test"));
    assert!(
        verdict.header.contains("smtp.helo=client.test"),
        "{}",
        verdict.header
    );
}

#[test]
fn mail_without_a_key_for_its_from_domain_goes_unsigned() {
    let key = generate(KeyAlgorithm::Ed25519).unwrap();
    let signer = Signer::new(vec![
        DkimKey::from_pem("other.test", "s1", key.private_key_pem.as_bytes()).unwrap(),
    ]);
    assert!(signer.sign(MESSAGE.as_bytes()).is_none());
    assert!(signer.sign(b"no header at all").is_none());
}

#[test]
fn a_file_that_is_not_a_key_is_refused() {
    assert!(DkimKey::from_pem("a.test", "s", b"not a key").is_err());
    let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(DkimKey::from_pem("a.test", "s", key.as_bytes()).is_err());
}
