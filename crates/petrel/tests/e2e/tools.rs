//! `petrel send` and `petrel probe`, run as the real binary: a message sent to a running petrel
//! lands in its Maildir with the transcript printed, a refused relay exits non-zero, and probes
//! of a null-MX domain (no connection at all), an NXDOMAIN and a reachable MX (MAIL and RCPT,
//! never DATA).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::{Petrel, Scratch, config_for, test_dns};

const MESSAGE: &str = "From: sender@localhost\r\nTo: user@localhost\r\nSubject: petrel send\r\nMessage-ID: <tools-send@test>\r\n\r\nHello from petrel send.\r\n";

fn petrel(args: &[&str], stdin: Option<&[u8]>) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn send(
    server: SocketAddr,
    to: &str,
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> (Option<i32>, String, String) {
    send_from(server, "sender@localhost", to, extra, stdin)
}

fn send_from(
    server: SocketAddr,
    from: &str,
    to: &str,
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> (Option<i32>, String, String) {
    let server = server.to_string();
    let mut args = vec!["send", "--server", &server, "--from", from, "--to", to];
    args.extend_from_slice(extra);
    petrel(&args, stdin)
}

/// Writes a probe configuration asking `dns` and reaching MX hosts on `port`.
fn probe_config(dir: &Path, dns: SocketAddr, port: u16) -> PathBuf {
    let path = dir.join("probe.toml");
    let text = config_for(
        &dir.join("probe-data"),
        dns,
        "probe.test",
        &["localhost"],
        &format!("[delivery]\nport = {port}\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn probe(address: &str, config: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let config = config.to_str().unwrap();
    let mut args = vec!["probe", address, "--config", config];
    args.extend_from_slice(extra);
    petrel(&args, None)
}

#[test]
fn send_to_a_local_recipient_prints_the_transcript_and_delivers() {
    let scratch = Scratch::new("tools-send");
    let petrel = Petrel::start(&scratch.0, "");
    let file = scratch.0.join("message.eml");
    std::fs::write(&file, MESSAGE).unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = send(
        petrel.address,
        "user@localhost",
        &["--file", file, "--explain", "--helo", "client.test"],
        None,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("S: 220 "), "{out}");
    assert!(out.contains("C: EHLO client.test"), "{out}");
    assert!(out.contains("C: MAIL FROM:<sender@localhost>"), "{out}");
    assert!(out.contains("C: RCPT TO:<user@localhost>"), "{out}");
    assert!(out.contains(" octets of message content>"), "{out}");
    assert!(out.contains("S: 250 2.0.0 queued as"), "{out}");
    assert!(out.contains("C: QUIT"), "{out}");
    let messages = petrel.wait_for_maildir("localhost", "user", 1);
    assert_eq!(messages.len(), 1);
    assert!(String::from_utf8_lossy(&messages[0]).contains("Hello from petrel send."));

    // The message from stdin works the same.
    let (code, out, err) = send(
        petrel.address,
        "user@localhost",
        &[],
        Some(MESSAGE.as_bytes()),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(petrel.wait_for_maildir("localhost", "user", 2).len(), 2);
}

#[test]
fn send_with_a_refused_recipient_exits_non_zero() {
    let scratch = Scratch::new("tools-send-refused");
    let petrel = Petrel::start(&scratch.0, "[relay]\nnetworks = [\"192.0.2.0/24\"]\n");
    let (code, out, err) = send(
        petrel.address,
        "x@elsewhere.example",
        &[],
        Some(MESSAGE.as_bytes()),
    );
    assert_ne!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("S: 554 5.7.1"), "{out}");
    assert!(err.contains("x@elsewhere.example"), "{err}");
    assert!(!out.contains("queued as"), "{out}");
}

/// `petrel send` through a smarthost that takes mail only over TLS with AUTH (petrel's own
/// submission listeners): STARTTLS, then AUTH with the password from a file (masked in the
/// transcript), the TLS version and the certificate's verdict printed (verified once the
/// certificate's CA is given); implicit TLS the same; no STARTTLS offered means no send.
#[test]
fn send_through_a_tls_smarthost_with_auth() {
    let scratch = Scratch::new("tools-send-tls");
    let (petrel, tls) = crate::tls::start(&scratch);
    let password = scratch.0.join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let password = password.to_str().unwrap();
    let auth = ["--auth", "alice", "--password-file", password];
    let send =
        |server, to, extra: &[&str], stdin| send_from(server, "alice@localhost", to, extra, stdin);
    let submission = petrel.listener("submission");
    let starttls: Vec<&str> = ["--starttls"].iter().chain(&auth).copied().collect();
    let (code, out, err) = send(
        submission,
        "user@localhost",
        &starttls,
        Some(MESSAGE.as_bytes()),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("C: STARTTLS") && out.contains("S: 220"),
        "{out}"
    );
    assert!(out.contains("* TLS: TLSv1_3"), "{out}");
    assert!(out.contains("certificate not verified"), "{out}");
    assert!(
        out.contains("C: AUTH PLAIN <credentials>") && out.contains("S: 235"),
        "{out}"
    );
    assert!(
        !out.contains("AGFsaWNl") && !out.contains("secret"),
        "{out}"
    );
    assert!(out.contains("* sent: 1 recipient(s) accepted"), "{out}");

    let ca = tls.cert.to_str().unwrap();
    let verified: Vec<&str> = starttls.iter().copied().chain(["--ca-file", ca]).collect();
    let (code, out, err) = send(
        submission,
        "user@localhost",
        &verified,
        Some(MESSAGE.as_bytes()),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("certificate verified"), "{out}");

    let submissions = petrel.listener("submissions");
    let implicit: Vec<&str> = ["--tls", "--ca-file", ca]
        .iter()
        .chain(&auth)
        .copied()
        .collect();
    let (code, out, err) = send(
        submissions,
        "user@localhost",
        &implicit,
        Some(MESSAGE.as_bytes()),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("* TLS: TLSv1_3") && !out.contains("C: STARTTLS"),
        "{out}"
    );
    assert_eq!(petrel.wait_for_maildir("localhost", "user", 3).len(), 3);

    // No password, no send; a server without STARTTLS gets nothing when it is required.
    let (code, _, err) = send(
        submission,
        "user@localhost",
        &["--auth", "alice"],
        Some(b""),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("PETREL_AUTH_PASSWORD"), "{err}");
    let plain = Scratch::new("tools-send-plain");
    let plain = Petrel::start(&plain.0, "");
    let (code, out, err) = send(plain.address, "user@localhost", &["--starttls"], Some(b""));
    assert_ne!(code, Some(0), "{out}");
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    assert!(plain.maildir("localhost", "user").is_empty());
}

#[test]
fn probe_of_a_null_mx_domain_never_connects() {
    let scratch = Scratch::new("tools-probe-nullmx");
    let dns = test_dns();
    // nullmx.test has an A record for 127.0.0.1: a probe that fell back to it would land here.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let config = probe_config(
        &scratch.0,
        dns.address,
        listener.local_addr().unwrap().port(),
    );
    let (code, out, err) = probe("user@nullmx.test", &config, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("556 5.1.10"), "{out}");
    assert!(out.contains("null MX"), "{out}");
    assert!(out.contains("no connection attempted"), "{out}");

    let (code, out, err) = probe("user@nullmx.test", &config, &["--json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["mx"]["answer"], "null_mx", "{out}");
    assert_eq!(report["verdict"]["accepted"], false, "{out}");
    assert_eq!(report["verdict"]["status"], "5.1.10", "{out}");
    assert_eq!(report["steps"].as_array().map(Vec::len), Some(0), "{out}");

    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "the probe connected to the null-MX domain"
    );
}

#[test]
fn probe_of_a_reachable_mx_stops_before_data() {
    let scratch = Scratch::new("tools-probe-relay");
    let target = Petrel::start_for(&scratch.0, "mx.relay.test", &["relay.test"], "");
    let dns = target.dns.clone().unwrap();
    let config = probe_config(&scratch.0, dns.address, target.address.port());
    let (code, out, err) = probe("user@relay.test", &config, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("MX 10 mx.relay.test"), "{out}");
    assert!(out.contains("S: 220 mx.relay.test"), "{out}");
    assert!(out.contains("C: MAIL FROM:<>"), "{out}");
    assert!(out.contains("250 2.1.5"), "{out}");
    assert!(out.contains("C: RSET"), "{out}");
    assert!(!out.contains("DATA"), "{out}");

    let (code, out, err) = probe(
        "user@relay.test",
        &config,
        &["--json", "--from", "probe@localhost"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"]["accepted"], true, "{out}");
    assert_eq!(report["hosts"][0]["name"], "mx.relay.test", "{out}");
    let commands: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str())
        .collect();
    assert!(commands.contains(&"MAIL FROM:<probe@localhost>"), "{out}");
    assert!(!commands.iter().any(|c| c.starts_with("DATA")), "{out}");

    std::thread::sleep(Duration::from_millis(300));
    assert!(target.maildir("relay.test", "user").is_empty());
}

#[test]
fn probe_of_a_domain_that_does_not_exist() {
    let scratch = Scratch::new("tools-probe-nxdomain");
    let dns = test_dns();
    let config = probe_config(&scratch.0, dns.address, 9);
    let (code, out, err) = probe("nobody@nonexistent.test", &config, &[]);
    assert_ne!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("5.1.2"), "{out}");
    assert!(out.contains("NXDOMAIN"), "{out}");
}

/// A probe upgrades with STARTTLS as delivery does and shows the TLS version and the
/// certificate's verdict of the host it tried, in its lines and in `--json`.
#[test]
fn probe_shows_the_tls_of_the_host() {
    let scratch = Scratch::new("tools-probe-tls");
    let tls = crate::tls::make_certificate(&scratch.0);
    let extra = format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        tls.cert.display(),
        tls.key.display()
    );
    let target = Petrel::start_for(&scratch.0, "mx.relay.test", &["relay.test"], &extra);
    let dns = target.dns.clone().unwrap();
    let config = probe_config(&scratch.0, dns.address, target.address.port());
    let (code, out, err) = probe("user@relay.test", &config, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("C: STARTTLS"), "{out}");
    assert!(out.contains("TLS: TLSv1_3"), "{out}");
    // The test certificate is its own issuer, in no trust store.
    assert!(out.contains("certificate not verified"), "{out}");
    assert!(out.contains("C: RSET") && !out.contains("DATA"), "{out}");

    let (code, out, err) = probe("user@relay.test", &config, &["--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["hosts"][0]["starttls"], true, "{out}");
    assert_eq!(report["hosts"][0]["tls"]["version"], "TLSv1_3", "{out}");
    assert_eq!(report["hosts"][0]["tls"]["verified"], false, "{out}");
    assert!(target.maildir("relay.test", "user").is_empty());
}

/// A reader that goes away (`petrel check-config | head -1`) ends the command quietly with
/// status 0: no panic on the broken pipe (issue 18's note).
#[test]
fn output_into_a_closed_pipe_is_no_panic() {
    let scratch = Scratch::new("tools-broken-pipe");
    let config = scratch.0.join("petrel.toml");
    std::fs::write(
        &config,
        crate::harness::config_text(&scratch.0.join("data"), "127.0.0.1:9".parse().unwrap(), ""),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before petrel has written anything.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
