//! Outbound routing (issue 7): `delivery.relayhost` through a smarthost that requires STARTTLS
//! and AUTH (a second petrel's submission listener, 587-style), `[[delivery.route]]` for one
//! domain, the configured EHLO name, and a wrong password deferring the mail with the
//! smarthost's 535 in the history.

use crate::harness::{Petrel, Scratch, send_one};

fn send(petrel: &Petrel, to: &str, subject: &str) {
    let content =
        format!("From: alice@example.test\r\nSubject: {subject}\r\n\r\nvia the smarthost\r\n");
    let reply = send_one(
        petrel.address,
        "alice@example.test",
        &[to],
        content.as_bytes(),
    );
    assert!(reply.starts_with("250"), "{reply}");
}

/// The log once it holds `needle` (or after 30 s).
fn wait_for_log(petrel: &Petrel, needle: &str) -> String {
    crate::harness::poll(|| petrel.log_text(), |log| log.contains(needle))
}

/// A sending petrel whose local domain is a.test, routing through `relayhost`.
fn sender(scratch: &Scratch, delivery: &str) -> Petrel {
    Petrel::start_for(
        &scratch.0,
        "mx.a.test",
        &["a.test"],
        &format!("[delivery]\nretry = [\"1h\"]\nhelo_name = \"out.a.test\"\n{delivery}"),
    )
}

/// A smarthost (a TLS petrel with user alice/secret and a submission listener) and a petrel
/// whose relayhost it is, logging in as alice with `password`, trusting the smarthost's
/// certificate through `delivery.ca_file` (AUTH goes only over a verified connection); the
/// scratch directories live as long as the first value.
fn through_smarthost(name: &str, password: &str) -> ((Scratch, Scratch), Petrel, Petrel) {
    through_smarthost_with(name, password, true)
}

fn through_smarthost_with(
    name: &str,
    password: &str,
    is_trusted: bool,
) -> ((Scratch, Scratch), Petrel, Petrel) {
    let scratch_b = Scratch::new(&format!("{name}-b"));
    let (smarthost, tls) = crate::tls::start(&scratch_b);
    let trust = if is_trusted {
        format!("ca_file = \"{}\"\n", tls.cert.display())
    } else {
        String::new()
    };
    let submission = smarthost.listener("submission");
    let scratch_a = Scratch::new(&format!("{name}-a"));
    let password_file = scratch_a.0.join("relay-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let a = sender(
        &scratch_a,
        &format!(
            "relayhost = \"[127.0.0.1]:{}\"\nrelayhost_auth = \"alice:{}\"\n{trust}",
            submission.port(),
            password_file.display()
        ),
    );
    ((scratch_a, scratch_b), smarthost, a)
}

#[test]
fn relayhost_with_starttls_and_auth() {
    let (_scratches, smarthost, a) = through_smarthost("smarthost", "secret");
    // example.test is local at the smarthost; for A it is remote, and goes through B.
    send(&a, "bob@example.test", "smarthost");
    let delivered = smarthost.wait_for_one_from("example.test", "bob", &a);
    let text = String::from_utf8_lossy(&delivered[0]);
    // B's Received: TLS and AUTH (ESMTPSA), from A's EHLO name.
    assert!(text.contains("Received: from out.a.test"), "{text}");
    assert!(text.contains("with ESMTPSA id"), "{text}");
    // A logs the attempt's history once B has answered the end of data.
    let log = wait_for_log(&a, "STARTTLS: TLSv1_3");
    assert!(log.contains("routed to [127.0.0.1]:"), "{log}");
    assert!(log.contains("TLS policy for 127.0.0.1: verify"), "{log}");
    assert!(log.contains("certificate verified"), "{log}");
}

/// The first queued message's id, from `queue list --json`.
fn first_id(petrel: &Petrel) -> String {
    let (_, list) = petrel.queue(&["list", "--json"]);
    list.split("\"id\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// Credentials never go over TLS that is not verified: without the smarthost's CA the
/// certificate does not verify, nothing is sent, the mail is deferred with 4.7.5 and
/// `queue show` says why.
#[test]
fn auth_waits_for_a_verified_connection() {
    let (_scratches, smarthost, a) =
        through_smarthost_with("smarthost-unverified", "secret", false);
    send(&a, "bob@example.test", "unverified");
    let log = wait_for_log(&a, "delivery outcome");
    assert!(
        log.contains("(TLS level verify); trying the next host"),
        "{log}"
    );
    assert!(log.contains("status=4.7.5 cause=tls-certificate"), "{log}");
    assert!(!log.contains("AUTH"), "no AUTH was tried: {log}");
    assert!(smarthost.maildir("example.test", "bob").is_empty());
    let (_, shown) = a.queue(&["show", &first_id(&a)]);
    assert!(
        shown.contains("last:       deferred 4.7.5 (TLS certificate not acceptable)"),
        "{shown}"
    );
}

/// Levels against receivers with and without STARTTLS: `encrypt` defers when the server offers
/// none (4.7.5, tls-policy) and nothing reaches it; `may` (the default) delivers in plaintext
/// and says so; `encrypt` to a TLS server delivers, and the CA makes the certificate verified.
#[test]
fn security_levels_decide_what_a_server_without_tls_gets() {
    let scratch = Scratch::new("tls-levels");
    let plain_dir = Scratch::new("tls-levels-plain");
    let plain = Petrel::start_for(&plain_dir.0, "mx.plain.test", &["plain.test"], "");
    let secure_dir = Scratch::new("tls-levels-secure");
    let (secure, tls) = crate::tls::start(&secure_dir);
    let route = |domain: &str, port: u16| {
        format!("\n[[delivery.route]]\ndomain = \"{domain}\"\nnexthop = \"[127.0.0.1]:{port}\"\n")
    };
    let policy = |domain: &str, level: &str| {
        format!("\n[[delivery.tls_policy]]\ndomain = \"{domain}\"\nlevel = \"{level}\"\n")
    };
    let config = format!(
        "ca_file = \"{}\"\n{}{}{}{}",
        tls.cert.display(),
        route("plain.test", plain.address.port()),
        route("example.test", secure.address.port()),
        policy("plain.test", "encrypt"),
        policy("example.test", "encrypt"),
    );
    let a = sender(&scratch, &config);
    send(&a, "bob@plain.test", "encrypt to plain");
    let log = wait_for_log(&a, "cause=tls-policy");
    assert!(log.contains("status=4.7.5"), "{log}");
    assert!(log.contains("does not offer STARTTLS"), "{log}");
    assert!(plain.maildir("plain.test", "bob").is_empty());
    send(&a, "bob@example.test", "encrypt to tls");
    secure.wait_for_one_from("example.test", "bob", &a);
    let log = wait_for_log(&a, "certificate verified");
    assert!(log.contains("TLS policy for 127.0.0.1: encrypt"), "{log}");

    // The default, may: plaintext to the server without STARTTLS, and the history says so.
    let b_dir = Scratch::new("tls-levels-may");
    let b = sender(&b_dir, &route("plain.test", plain.address.port()));
    send(&b, "carol@plain.test", "may to plain");
    plain.wait_for_one_from("plain.test", "carol", &b);
    let log = wait_for_log(&b, "plaintext (the server offers no STARTTLS)");
    assert!(
        log.contains("plaintext (the server offers no STARTTLS)"),
        "{log}"
    );
}

/// `verify` set for one domain (issue 15, item 2), with `match`: the receiver's certificate
/// (from a CA in `delivery.ca_file`, for mx.test) is checked against the names the policy
/// gives, not the next hop's: a policy naming mx.test delivers, verified; one naming another
/// host defers with 4.7.5 (tls-certificate) and nothing reaches the receiver.
#[test]
fn verify_checks_the_certificate_against_the_policy_names() {
    let secure_dir = Scratch::new("verify-secure");
    let (secure, tls) = crate::tls::start(&secure_dir);
    let config = |names: &str| {
        format!(
            "ca_file = \"{}\"\n\n[[delivery.route]]\ndomain = \"example.test\"\nnexthop = \"[127.0.0.1]:{}\"\n\n[[delivery.tls_policy]]\ndomain = \"example.test\"\nlevel = \"verify\"\nmatch = [{names}]\n",
            tls.cert.display(),
            secure.address.port()
        )
    };
    let right_dir = Scratch::new("verify-right");
    let right = sender(&right_dir, &config("\"mx.test\""));
    send(&right, "bob@example.test", "verified by name");
    secure.wait_for_one_from("example.test", "bob", &right);
    let log = wait_for_log(&right, "certificate verified");
    assert!(log.contains("TLS policy for 127.0.0.1: verify"), "{log}");

    let wrong_dir = Scratch::new("verify-wrong");
    let wrong = sender(&wrong_dir, &config("\"mx.other.test\""));
    send(&wrong, "carol@example.test", "a name the certificate lacks");
    let log = wait_for_log(&wrong, "cause=tls-certificate");
    assert!(log.contains("status=4.7.5"), "{log}");
    assert!(secure.maildir("example.test", "carol").is_empty());
}

/// Downgrades against credentials (issue 15): a relayhost whose STARTTLS was stripped (it
/// offers AUTH in the clear) and one whose handshake fails never see AUTH, a MAIL or the
/// password on the wire; the mail waits (4.7.0 auth-unavailable: "credentials are never sent in
/// plaintext"; 4.7.5 tls-handshake).
#[test]
fn credentials_never_cross_a_stripped_or_failed_starttls() {
    use crate::fakemx::{FakeMx, Script};
    for (script, cause) in [
        (
            Script {
                offers_auth_in_clear: true,
                ..Script::accept()
            },
            "status=4.7.0 cause=auth-unavailable",
        ),
        (
            Script {
                breaks_starttls: true,
                ..Script::accept()
            },
            "status=4.7.5 cause=tls-handshake",
        ),
    ] {
        let fake = FakeMx::start(vec![script]);
        let dir = Scratch::new("credentials-downgrade");
        let password_file = dir.0.join("relay-password");
        std::fs::write(&password_file, "hunter2-secret\n").unwrap();
        let a = sender(
            &dir,
            &format!(
                "relayhost = \"[127.0.0.1]:{}\"\nrelayhost_auth = \"alice:{}\"\n",
                fake.address.port(),
                password_file.display()
            ),
        );
        send(&a, "bob@example.net", "credentials at stake");
        let log = wait_for_log(&a, "outcome=deferred");
        assert!(log.contains(cause), "{cause}: {log}");
        let seen = fake.seen.lock().unwrap();
        assert!(!seen.lines.is_empty(), "it was reached");
        let wire = seen.lines.join("\n");
        assert!(
            !wire.to_ascii_uppercase().contains("AUTH") && !wire.contains("MAIL"),
            "{cause}: {wire}"
        );
        // PLAIN's and LOGIN's encodings of the password, and the password itself.
        for secret in [
            "hunter2-secret",
            "aHVudGVyMi1zZWNyZXQ",
            "AGFsaWNlAGh1bnRlcjItc2VjcmV0",
        ] {
            assert!(!wire.contains(secret), "{cause}: {wire}");
        }
    }
}

#[test]
fn a_wrong_password_defers_and_says_why() {
    let (_scratches, smarthost, a) = through_smarthost("smarthost-bad", "wrong");
    send(&a, "bob@example.test", "refused");
    let log = wait_for_log(&a, "refused our credentials");
    assert!(log.contains("refused our credentials: 535 5.7.8"), "{log}");
    assert!(log.contains("will retry"), "{log}");
    assert!(smarthost.maildir("example.test", "bob").is_empty());
    // Still queued, deferred (not bounced) for the operator to fix the password.
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["queue", "list", "--config"])
        .arg(&a.config_path)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("bob@example.test"), "{list}");
    assert!(a.maildir("a.test", "alice").is_empty());
}

#[test]
fn a_route_for_one_domain_wins_over_mx() {
    // relay.test's MX points at 127.0.0.1:25; the route sends it to B's port instead.
    let scratch_b = Scratch::new("route-b");
    let b = Petrel::start_for(&scratch_b.0, "mx.relay.test", &["relay.test"], "");
    let scratch_a = Scratch::new("route-a");
    let a = sender(
        &scratch_a,
        &format!(
            "\n[[delivery.route]]\ndomain = \"relay.test\"\nnexthop = \"[127.0.0.1]:{}\"\n",
            b.address.port()
        ),
    );
    send(&a, "user@relay.test", "routed");
    let delivered = b.wait_for_one_from("relay.test", "user", &a);
    assert!(String::from_utf8_lossy(&delivered[0]).contains("Received: from out.a.test"));
}

#[test]
fn a_discard_route_takes_the_mail_and_sends_it_nowhere() {
    let scratch = Scratch::new("route-discard");
    let a = sender(
        &scratch,
        "\n[[delivery.route]]\ndomain = \"relay.test\"\nnexthop = \"discard:\"\n",
    );
    send(&a, "user@relay.test", "discarded");
    let log = wait_for_log(&a, "finished");
    assert!(log.contains("routed to discard:: discarded"), "{log}");
    // relay.test's MX (127.0.0.1:25) was never asked: no DNS MX line in the history.
    assert!(!log.contains("DNS MX relay.test"), "{log}");
}

/// A failed handshake (the server says 220 to STARTTLS, then sends what is not TLS): at the
/// default level the mail waits (4.7.5) and nothing is sent in plaintext; only with
/// `tls_plaintext_fallback` is the same host tried again without TLS.
#[test]
fn a_failed_handshake_is_never_followed_by_plaintext_unless_allowed() {
    use crate::fakemx::{FakeMx, Script};
    let broken = || {
        FakeMx::start(vec![Script {
            breaks_starttls: true,
            ..Script::accept()
        }])
    };
    let route = |port: u16| {
        format!(
            "\n[[delivery.route]]\ndomain = \"example.net\"\nnexthop = \"[127.0.0.1]:{port}\"\n"
        )
    };
    let strict_fake = broken();
    let strict_dir = Scratch::new("handshake-strict");
    let strict = sender(&strict_dir, &route(strict_fake.address.port()));
    send(
        &strict,
        "bob@example.net",
        "no plaintext after a failed handshake",
    );
    let log = wait_for_log(&strict, "status=4.7.5");
    assert!(log.contains("cause=tls-handshake"), "{log}");
    assert!(log.contains("TLS handshake failed"), "{log}");
    let seen = strict_fake.seen.lock().unwrap();
    assert_eq!(seen.starttls, 1, "{seen:?}");
    assert!(
        seen.rcpts.is_empty() && seen.messages.is_empty(),
        "{seen:?}"
    );
    drop(seen);

    let lenient_fake = broken();
    let lenient_dir = Scratch::new("handshake-fallback");
    let lenient = sender(
        &lenient_dir,
        &format!(
            "tls_plaintext_fallback = true\n{}",
            route(lenient_fake.address.port())
        ),
    );
    send(
        &lenient,
        "bob@example.net",
        "plaintext allowed after a failed handshake",
    );
    let log = wait_for_log(&lenient, "outcome=delivered");
    assert!(log.contains("trying again without TLS"), "{log}");
    assert_eq!(lenient_fake.seen.lock().unwrap().messages.len(), 1);
}
