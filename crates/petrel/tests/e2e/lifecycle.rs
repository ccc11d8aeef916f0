//! Signals and configuration: SIGTERM drains (421 4.3.2, exit 0), SIGHUP reloads without
//! dropping sessions, the idle timeout answers 421 4.4.2, the queue resumes after a restart,
//! `check-config` names the file, line and key of an error, and petrel starts on a system
//! without a CA bundle or without a nameserver in /etc/resolv.conf.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Petrel, RawClient, Scratch};

#[test]
fn sigterm_lets_the_transaction_finish_then_421() {
    let scratch = Scratch::new("sigterm");
    let mut petrel = Petrel::start(&scratch.0, "");
    let mut idle = RawClient::connect(petrel.address);
    idle.reply();
    let mut busy = RawClient::connect(petrel.address);
    busy.reply();
    busy.command("EHLO busy.test");
    busy.command("MAIL FROM:<a@example.test>");
    petrel.signal("TERM");
    // S-SESS-9: the idle session hears 421 4.3.2 at once.
    assert_eq!(
        idle.reply(),
        "421 4.3.2 Service shutting down, closing transmission channel\r\n"
    );
    assert!(busy.command("RCPT TO:<term@localhost>").starts_with("250"));
    assert!(busy.command("DATA").starts_with("354"));
    busy.send(b"Subject: in flight\r\n\r\nfinished\r\n.\r\n");
    assert!(busy.reply().starts_with("250 2.0.0 queued as"));
    assert!(busy.command("NOOP").starts_with("421 4.3.2"));
    assert_eq!(petrel.wait_exit(), Some(0), "{}", petrel.log_text());
    assert!(RawClient::try_connect(petrel.address).is_none());
}

#[test]
fn sighup_reloads_mailboxes_without_dropping_sessions() {
    let scratch = Scratch::new("sighup");
    let petrel = Petrel::start(&scratch.0, "");
    let mut session = RawClient::connect(petrel.address);
    session.reply();
    session.command("EHLO hup.test");
    session.command("MAIL FROM:<a@example.test>");
    assert!(
        session
            .command("RCPT TO:<zed@localhost>")
            .starts_with("250")
    );
    let data_dir = petrel.data_dir.clone();
    std::fs::write(
        &petrel.config_path,
        crate::harness::config_text(&data_dir, petrel.dns.as_ref().unwrap().address, "")
            .replace("[local]\n", "[local]\nmailboxes = [\"alice\"]\n"),
    )
    .unwrap();
    petrel.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !petrel.log_text().contains("configuration reloaded")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The open session survives and now sees the new mailbox list (S-TXN-9).
    assert_eq!(
        session.command("RCPT TO:<zed2@localhost>"),
        "550 5.1.1 No such user here\r\n"
    );
    assert!(
        session
            .command("RCPT TO:<alice@localhost>")
            .starts_with("250")
    );
    assert!(
        session
            .command("RCPT TO:<postmaster@localhost>")
            .starts_with("250")
    );
}

#[test]
fn idle_timeout_421() {
    let scratch = Scratch::new("idle");
    let petrel = Petrel::start(&scratch.0, "[limits]\nidle_timeout = \"1s\"\n");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    // S-SESS-13: say nothing; the server ends the session.
    assert_eq!(
        client.reply(),
        "421 4.4.2 Idle timeout, closing transmission channel\r\n"
    );
    assert!(client.is_closed());
}

#[test]
fn check_config_names_file_line_and_key() {
    let scratch = Scratch::new("checkconfig");
    let path = scratch.0.join("bad.toml");
    std::fs::write(
        &path,
        "hostname = \"mx.test\"\n\n[limits]\nmax_recipents = 5\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:4:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("max_recipents"), "{stderr}");
    let good = scratch.0.join("good.toml");
    std::fs::write(&good, "hostname = \"mx.test\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("listener = 127.0.0.1:2525 (smtp)"));
}

#[test]
fn queue_resumes_after_restart_and_quarantines_garbage() {
    if crate::backend::skip_on_postgres("plants garbage files in the spool") {
        return;
    }
    let scratch = Scratch::new("resume");
    let data_dir = scratch.0.join("data");
    // A queued message from an earlier run, and an unreadable envelope beside it.
    let petrel = Petrel::start(&scratch.0, "");
    drop(petrel);
    let active = data_dir.join("queue").join("active").join("00");
    std::fs::create_dir_all(&active).unwrap();
    std::fs::write(active.join("00000000000000001.env"), b"not an envelope").unwrap();
    std::fs::write(
        active.join("00000000000000001.msg"),
        b"Subject: x\r\n\r\nx\r\n",
    )
    .unwrap();
    std::fs::write(
        data_dir.join("queue").join("tmp").join("leftover.msg"),
        b"partial",
    )
    .unwrap();
    let petrel = Petrel::start_with(&scratch.0.join("petrel.toml"), &data_dir, &[]);
    let corrupt = data_dir.join("queue").join("corrupt");
    let names: Vec<String> = std::fs::read_dir(&corrupt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("00000000000000001")),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read_dir(data_dir.join("queue").join("tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        petrel.log_text().contains("corrupt"),
        "{}",
        petrel.log_text()
    );
}

/// A minimal system (a container without ca-certificates) has no trust store. petrel needs one
/// only to verify a peer (MTA-STS, `verify` routes), never to start: it once could not, as its
/// DNS resolver built a TLS configuration from the store as it started.
#[test]
fn petrel_starts_and_takes_mail_without_a_ca_bundle() {
    let scratch = Scratch::new("no-ca-bundle");
    let empty = scratch.0.join("no-certificates");
    std::fs::create_dir_all(&empty).unwrap();
    let petrel = Petrel::start_wrapped(
        &scratch.0,
        "",
        &[
            "env",
            "SSL_CERT_FILE=/dev/null",
            &format!("SSL_CERT_DIR={}", empty.display()),
        ],
    );
    takes_and_delivers_local_mail(&petrel, "a@example.test");
}

/// resolv.conf(5): with no `nameserver` line the local machine's name server is asked, as the C
/// library and Postfix do. petrel, with no `dns.nameservers` of its own, once refused to start
/// there ("no nameservers found in config"). The test hides /etc/resolv.conf behind an empty file
/// in a mount namespace of petrel's own (tests run as root).
#[test]
fn petrel_starts_when_resolv_conf_names_no_nameserver() {
    let scratch = Scratch::new("no-nameserver");
    let empty = scratch.0.join("empty-resolv.conf");
    std::fs::write(&empty, "# no nameserver line\n").unwrap();
    let data_dir = scratch.0.join("data");
    let config_path = scratch.0.join("petrel.toml");
    let extra = crate::backend::with_queue(&data_dir, "");
    std::fs::write(
        &config_path,
        format!(
            "hostname = \"mx.test\"\ndata_dir = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[local]\ndomains = [\"localhost\"]\n\n{extra}\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let mount = format!(
        "mount --bind {} /etc/resolv.conf && exec \"$0\" \"$@\"",
        empty.display()
    );
    let petrel = Petrel::start_with(
        &config_path,
        &data_dir,
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &mount,
        ],
    );
    assert!(
        petrel
            .log_text()
            .contains("names no nameserver: asking the local machine's"),
        "{}",
        petrel.log_text()
    );
    assert!(petrel.log_text().contains("nameserver=127.0.0.1:53"));
    takes_and_delivers_local_mail(&petrel, "a@localhost");
}

/// A message from `sender` to user@localhost is taken (250) and lands in its Maildir.
fn takes_and_delivers_local_mail(petrel: &Petrel, sender: &str) {
    let reply = crate::harness::send_one(
        petrel.address,
        sender,
        &["user@localhost"],
        b"Subject: started\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(petrel.wait_for_maildir("localhost", "user", 1).len(), 1);
}
