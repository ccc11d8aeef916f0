//! REQUIRETLS (RFC 8689; S-RTLS-1, C-RTLS-2, C-RTLS-4): a client asks for it over STARTTLS
//! (Python's smtplib), petrel refuses it on a plain session with 530 5.7.10, stores it, and
//! sends the message on only over verified TLS, to an MX host an MTA-STS policy vouches for
//! (served by nginx), to a server that offers REQUIRETLS (a second petrel), passing the
//! parameter on. Where no hop qualifies nothing is sent: a domain without a policy, and a
//! Postfix that verifies but does not offer REQUIRETLS, both defer with 4.7.30.
//! `TLS-Required: No` lets a message past an enforce policy it would fail.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use crate::harness::{Petrel, Scratch};
use crate::mta_sts::{lines_with, log_with, policy_site, receiver, zone};
use crate::websites::TestCa;

/// A sending petrel that takes STARTTLS (a certificate for mx.a.test from `ca`), delivering to
/// MX port `port` and trusting `ca`.
fn sender(
    scratch: &Scratch,
    zone: Vec<petrel_dns::responder::ZoneEntry>,
    port: u16,
    ca: &TestCa,
) -> Petrel {
    let (cert, key) = ca.issue("mx.a.test", &["mx.a.test"]);
    Petrel::start_in_zone(
        &scratch.0,
        "mx.a.test",
        &["a.test"],
        zone,
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n[delivery]\nport = {port}\nretry = [\"1h\"]\nca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            ca.cert_path.display()
        ),
    )
}

/// Sends one message through smtplib after STARTTLS, with `options` on MAIL; prints
/// `refused CODE` when MAIL is refused, `sent` otherwise. With `plain`, no STARTTLS.
pub(crate) fn smtplib(
    petrel: &Petrel,
    to: &str,
    headers: &str,
    options: &str,
    plain: bool,
) -> String {
    const SCRIPT: &str = r#"
import smtplib, ssl, sys
host, port, to, headers, options, plain = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "plain"
smtp = smtplib.SMTP(host, port, timeout=30)
smtp.ehlo("client.test")
if not plain:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    smtp.starttls(context=context)
    smtp.ehlo("client.test")
print("offers REQUIRETLS" if smtp.has_extn("requiretls") else "no REQUIRETLS")
message = headers.replace("|", "\r\n") + "\r\n\r\nsecret content\r\n"
try:
    smtp.sendmail("alice@a.test", [to], message, mail_options=options.split())
    print("sent")
except smtplib.SMTPSenderRefused as refused:
    print("refused", refused.smtp_code, refused.smtp_error.decode())
smtp.quit()
"#;
    let output = Command::new("python3")
        .args(["-c", SCRIPT, "127.0.0.1"])
        .arg(petrel.address.port().to_string())
        .args([to, headers, options, if plain { "plain" } else { "tls" }])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_requiretls_message_goes_only_where_every_condition_holds() {
    let dir = Scratch::new("rtls");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 3);
    let (_site_dir, _site) = policy_site(
        "rtls",
        &ca,
        site_address,
        &[
            ("good.test", "enforce", &["mx.sts.test"]),
            ("waived.test", "enforce", &["mx.sts.test"]),
        ],
    );
    let receiver_dir = Scratch::new("rtls-receiver");
    let b = receiver(
        &receiver_dir,
        &ca,
        &["good.test", "nopolicy.test", "waived.test"],
    );
    let mut zone = zone(
        site_address,
        &[
            ("good.test", "mta-sts.good.test", "mx.sts.test"),
            // An MX the policy does not list, whose certificate names another host.
            ("waived.test", "mta-sts.waived.test", "mx2.sts.test"),
        ],
    );
    zone.push(petrel_dns::responder::ZoneEntry::Mx(
        "nopolicy.test",
        10,
        "mx.sts.test",
    ));
    let sender_dir = Scratch::new("rtls-sender");
    let a = sender(&sender_dir, zone, b.address.port(), &ca);

    // S-RTLS-1: not offered and refused on a plain session; offered inside TLS.
    let plain = smtplib(&a, "bob@good.test", "Subject: plain", "REQUIRETLS", true);
    assert!(plain.contains("no REQUIRETLS"), "{plain}");
    assert!(
        plain.contains("refused 530 5.7.10 REQUIRETLS needs a TLS session"),
        "{plain}"
    );
    let headers = "From: alice@a.test|Subject: protected|Message-ID: <rtls-1@a.test>";
    let sent = smtplib(&a, "bob@good.test", headers, "REQUIRETLS", false);
    assert!(
        sent.contains("offers REQUIRETLS") && sent.contains("sent"),
        "{sent}"
    );

    // C-RTLS-2: over verified TLS to b, which offers REQUIRETLS and is told of it.
    b.wait_for_one_from("good.test", "bob", &a);
    let (_, shown) = b.queue(&["show", "<rtls-1@a.test>"]);
    assert!(shown.contains("REQUIRETLS: yes"), "{shown}");
    let log = log_with(&a, &["domain=good.test", "outcome=delivered"]);
    let good = lines_with(&log, "good.test");
    assert!(good.contains("certificate verified"), "{good}");

    // No policy vouches for the MX of nopolicy.test: nothing is sent, 4.7.30.
    let headers = "From: alice@a.test|Subject: unvouched";
    let sent = smtplib(&a, "carol@nopolicy.test", headers, "REQUIRETLS", false);
    assert!(sent.contains("sent"), "{sent}");
    let log = log_with(&a, &["domain=nopolicy.test", "status=4.7.30"]);
    let unvouched = lines_with(&log, "nopolicy.test");
    assert!(
        unvouched.contains(
            "REQUIRETLS: neither DANE nor an MTA-STS policy vouches for an MX host of nopolicy.test"
        ),
        "{unvouched}"
    );
    assert!(
        !unvouched.contains("STARTTLS"),
        "never connected: {unvouched}"
    );
    assert!(b.maildir("nopolicy.test", "carol").is_empty());

    // C-RTLS-4: the enforce policy of waived.test refuses its MX; a message with
    // TLS-Required: No goes anyway (over TLS still), one without it waits.
    let sent = smtplib(
        &a,
        "erin@waived.test",
        "Subject: kept to the policy",
        "",
        false,
    );
    assert!(sent.contains("sent"), "{sent}");
    log_with(&a, &["domain=waived.test", "status=4.7.5"]);
    let headers = "From: alice@a.test|Subject: waived|TLS-Required: No";
    let sent = smtplib(&a, "dave@waived.test", headers, "", false);
    assert!(sent.contains("sent"), "{sent}");
    b.wait_for_one_from("waived.test", "dave", &a);
    let log = log_with(
        &a,
        &["TLS-Required: No: the MTA-STS policy of waived.test is not applied"],
    );
    let waived = lines_with(&log, "waived.test");
    assert!(waived.contains("STARTTLS: TLSv1_3"), "{waived}");
    assert!(b.maildir("waived.test", "erin").is_empty());
    // TLS-Required: No is ignored on a REQUIRETLS message (RFC 8689 §5).
    let headers = "From: alice@a.test|Subject: both|TLS-Required: No";
    let sent = smtplib(&a, "frank@waived.test", headers, "REQUIRETLS", false);
    assert!(sent.contains("sent"), "{sent}");
    let log = log_with(&a, &["domain=waived.test", "status=4.7.30"]);
    assert!(
        lines_with(&log, "waived.test").contains("skipped (REQUIRETLS)"),
        "{log}"
    );
    assert!(b.maildir("waived.test", "frank").is_empty());
}

/// A private Postfix on 127.0.0.1:`port` with STARTTLS (the certificate chain `cert` and its
/// `key`, logged at smtpd_tls_loglevel 1) that discards what it takes, as `hostname`; Postfix
/// 3.7 offers no REQUIRETLS. Stopped when dropped.
pub(crate) struct Postfix {
    dir: std::path::PathBuf,
}

const INSTANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../bench/postfix/instance.sh"
);

impl Postfix {
    pub(crate) fn start(dir: &Path, port: u16, hostname: &str, cert: &Path, key: &Path) -> Postfix {
        let started = Command::new(INSTANCE)
            .args(["start", "discard"])
            .arg(dir)
            .arg(port.to_string())
            .env("PF_HOSTNAME", hostname)
            .env(
                "EXTRA_MAIN_CF",
                format!(
                    "smtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        Postfix {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(INSTANCE).arg("stop").arg(&self.dir).output();
    }
}

/// C-RTLS-2 with a real server that verifies but offers no REQUIRETLS: the message is never
/// given to it (no MAIL command in Postfix's log) and waits with 4.7.30.
#[test]
fn a_server_without_requiretls_never_gets_the_message() {
    let dir = Scratch::new("rtls-postfix");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 4);
    let (_site_dir, _site) = policy_site(
        "rtls-postfix",
        &ca,
        site_address,
        &[("good.test", "enforce", &["mx.sts.test"])],
    );
    let port = crate::harness::server_port();
    let postfix_dir = Scratch::new("rtls-postfix-instance");
    let (cert, key) = ca.issue("postfix", &["mx.sts.test"]);
    let postfix = Postfix::start(&postfix_dir.0, port, "mx.sts.test", &cert, &key);
    let sender_dir = Scratch::new("rtls-postfix-sender");
    let zone = zone(
        site_address,
        &[("good.test", "mta-sts.good.test", "mx.sts.test")],
    );
    let a = sender(&sender_dir, zone, port, &ca);

    let headers = "From: alice@a.test|Subject: protected";
    let sent = smtplib(&a, "bob@good.test", headers, "REQUIRETLS", false);
    assert!(sent.contains("sent"), "{sent}");
    let log = log_with(&a, &["domain=good.test", "status=4.7.30"]);
    let deferred = lines_with(&log, "good.test");
    assert!(
        deferred.contains("certificate verified"),
        "{deferred}\n{}",
        postfix.maillog()
    );
    assert!(
        deferred.contains("the receiving server does not offer REQUIRETLS"),
        "{deferred}"
    );
    let maillog = postfix.maillog();
    assert!(maillog.contains("starttls=1"), "TLS was used: {maillog}");
    assert!(!maillog.contains("mail=1"), "no MAIL was sent: {maillog}");
}

/// C-RTLS-2 and C-RTLS-3 at expiry: a REQUIRETLS message no hop can take (no MTA-STS policy
/// or DNSSEC vouches for its MX) is never sent, and once `delivery.max_age` passes it bounces
/// with 5.7.30; the bounce carries the message's header section only (text/rfc822-headers),
/// never its content, which could travel back over a path with less protection.
#[test]
fn an_undeliverable_requiretls_message_bounces_with_5_7_30_and_headers_only() {
    let dir = Scratch::new("rtls-expiry");
    let ca = TestCa::new(&dir.0);
    let mut zone = zone(Ipv4Addr::new(127, 0, 1, 10), &[]);
    zone.push(petrel_dns::responder::ZoneEntry::Mx(
        "nopolicy.test",
        10,
        "mx.sts.test",
    ));
    let (cert, key) = ca.issue("mx.a.test", &["mx.a.test"]);
    let port = crate::harness::closed_port();
    let a = Petrel::start_in_zone(
        &dir.0,
        "mx.a.test",
        &["a.test"],
        zone,
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n[delivery]\nport = {port}\nretry = [\"1s\"]\nmax_age = \"3s\"\nca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            ca.cert_path.display()
        ),
    );
    let headers =
        "From: alice@a.test|Subject: protected and stuck|Message-ID: <rtls-expiry@a.test>";
    let sent = smtplib(&a, "bob@nopolicy.test", headers, "REQUIRETLS", false);
    assert!(sent.contains("sent"), "{sent}");
    let bounces = a.wait_for_maildir("a.test", "alice", 1);
    assert_eq!(bounces.len(), 1, "{}", a.log_text());
    let bounce = String::from_utf8_lossy(&bounces[0]).into_owned();
    assert!(bounce.contains("Action: failed"), "{bounce}");
    assert!(bounce.contains("Status: 5.7.30"), "{bounce}");
    assert!(bounce.contains("text/rfc822-headers"), "{bounce}");
    assert!(bounce.contains("Subject: protected and stuck"), "{bounce}");
    assert!(
        !bounce.contains("secret content"),
        "the content stays out: {bounce}"
    );
    let log = a.log_text();
    assert!(log.contains("status=4.7.30"), "deferred first: {log}");
}
