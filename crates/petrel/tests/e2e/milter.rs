//! Milters (issue 16, item 5) against a milter speaking the protocol over TCP (a few lines of
//! Python, for the edge cases the issue allows it for): a RCPT refused with the milter's own
//! reply, a MAIL tempfailed, a header added at the end of the message, a message quarantined
//! (held), one discarded; and the default action when the milter cannot be reached.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::harness::{Petrel, RawClient, Scratch};

const MILTER: &str = r#"
import socket, struct, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
# Each command's code, one per line, to the file named by the first argument (if any).
LOG = open(sys.argv[1], "a", buffering=1) if len(sys.argv) > 1 else None
def read(conn):
    head = b""
    while len(head) < 4:
        more = conn.recv(4 - len(head))
        if not more:
            return None, None
        head += more
    (length,) = struct.unpack(">I", head)
    data = b""
    while len(data) < length:
        more = conn.recv(length - len(data))
        if not more:
            return None, None
        data += more
    return data[:1], data[1:]
def send(conn, code, data=b""):
    conn.sendall(struct.pack(">I", len(data) + 1) + code + data)
def serve(conn):
    subject = b""
    while True:
        code, data = read(conn)
        if LOG and code:
            LOG.write(code.decode() + "\n")
        if code is None or code == b"Q":
            break
        if code == b"O":
            send(conn, b"O", struct.pack(">III", 6, 0x1FF, 0))
        elif code in (b"D", b"A"):
            pass
        elif code == b"M" and b"hang" in data:
            import time
            time.sleep(30)
        elif code == b"M":
            send(conn, b"t" if b"tempfail" in data else b"c")
        elif code == b"R":
            if b"blocked" in data:
                send(conn, b"y", b"550 5.7.1 blocked by the test milter\0")
            else:
                send(conn, b"c")
        elif code == b"L":
            name, value = data.split(b"\0")[:2]
            if name.lower() == b"subject":
                subject = value
            send(conn, b"c")
        elif code == b"E":
            send(conn, b"h", b"X-Milter\0seen by the test milter\0")
            if b"quarantine" in subject:
                send(conn, b"q", b"looks odd\0")
            send(conn, b"d" if b"discard" in subject else b"c")
        else:
            send(conn, b"c")
    conn.close()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// The test milter, ended by PID when dropped.
struct TestMilter {
    child: Child,
    port: u16,
}

impl TestMilter {
    fn start() -> TestMilter {
        TestMilter::start_logging(None)
    }

    /// Also writes the code of each command it receives, a line each, to `log`.
    fn start_logging(log: Option<&std::path::Path>) -> TestMilter {
        let mut child = Command::new("python3")
            .args(["-c", MILTER])
            .args(log.map(|l| l.as_os_str().to_owned()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        TestMilter { child, port }
    }
}

impl Drop for TestMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(client: &mut RawClient, from: &str, to: &str, subject: &str) -> String {
    assert!(
        client
            .command(&format!("MAIL FROM:<{from}>"))
            .starts_with("250")
    );
    assert!(
        client
            .command(&format!("RCPT TO:<{to}>"))
            .starts_with("250")
    );
    assert!(client.command("DATA").starts_with("354"));
    client.command(&format!(
        "Subject: {subject}\r\nFrom: {from}\r\n\r\nhello\r\n."
    ))
}

#[test]
fn the_milters_decisions_and_changes_are_carried_out() {
    let milter = TestMilter::start();
    let dir = Scratch::new("milter");
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[[milter]]\naddress = \"127.0.0.1:{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n",
            milter.port
        ),
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    client.command("MAIL FROM:<alice@relay.test>");
    assert_eq!(
        client.command("RCPT TO:<blocked@example.test>"),
        "550 5.7.1 blocked by the test milter\r\n"
    );
    client.command("RSET");
    let reply = message(&mut client, "alice@relay.test", "bob@example.test", "hello");
    assert!(reply.starts_with("250"), "{reply}");
    let mail = petrel.wait_for_maildir("example.test", "bob", 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(text.contains("X-Milter: seen by the test milter"), "{text}");

    // Quarantine: taken, and held.
    let reply = message(
        &mut client,
        "alice@relay.test",
        "carol@example.test",
        "quarantine me",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let (_, held) = petrel.queue(&["list", "--json"]);
    assert!(held.contains("held") || held.contains("hold"), "{held}");
    assert!(petrel.maildir("example.test", "carol").is_empty());

    // Discard: a 250, and nothing stored.
    let reply = message(
        &mut client,
        "alice@relay.test",
        "dave@example.test",
        "discard me",
    );
    assert_eq!(reply, "250 2.0.0 Message accepted\r\n");

    // Tempfail at MAIL.
    assert_eq!(
        client.command("MAIL FROM:<tempfail@relay.test>"),
        "451 4.7.1 Service temporarily unavailable, try again later\r\n"
    );
    assert!(petrel.log_text().contains("quarantined (held) by a milter"));
    // The refused RCPT and the tempfailed MAIL, counted.
    let samples = crate::metrics::scrape(&petrel);
    assert_eq!(
        samples.get("petrel_screen_refusals_total{check=\"milter\"}"),
        Some(&2.0),
        "{samples:?}"
    );
}

#[test]
fn an_unreachable_milter_gets_its_default_action() {
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], crate::harness::closed_port()));
    let with = |action: &str, name: &str| {
        let dir = Scratch::new(name);
        let petrel = Petrel::start(
            &dir.0,
            &format!(
                "[[milter]]\naddress = \"{closed}\"\ndefault_action = \"{action}\"\ntimeout = \"2s\"\n"
            ),
        );
        let mut client = RawClient::connect(petrel.address);
        client.reply();
        client.command("EHLO client.test");
        let reply = client.command("MAIL FROM:<alice@relay.test>");
        (reply, dir, petrel)
    };
    let (tempfail, _dir, _petrel) = with("tempfail", "milter-down-tempfail");
    assert_eq!(
        tempfail,
        "451 4.7.1 Service temporarily unavailable, try again later\r\n"
    );
    let (accept, _dir, _petrel) = with("accept", "milter-down-accept");
    assert!(accept.starts_with("250"), "{accept}");
}

/// The milter hears the session end (SMFIC_QUIT, as Postfix sends it) after the connect, HELO,
/// MAIL, RCPT and message steps, and a milter that stops answering is given up after
/// `[[milter]] timeout`, its `default_action` deciding: tempfail gives 451 4.7.1, accept lets
/// the mail through.
#[test]
fn the_milter_hears_quit_and_one_that_hangs_gets_its_default_action() {
    let dir = Scratch::new("milter-quit");
    let log = dir.0.join("milter.log");
    let milter = TestMilter::start_logging(Some(&log));
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[[milter]]\naddress = \"127.0.0.1:{}\"\ntimeout = \"1s\"\ndefault_action = \"tempfail\"\n",
            milter.port
        ),
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    let reply = message(&mut client, "a@localhost", "user@localhost", "plain");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client.command("QUIT").starts_with("221"));
    crate::harness::wait_until("the milter to hear QUIT", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().any(|c| c == "Q"))
    });
    let codes: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for step in ["O", "C", "H", "M", "R", "E", "Q"] {
        assert!(codes.iter().any(|c| c == step), "{step} in {codes:?}");
    }
    assert_eq!(codes.last().map(String::as_str), Some("Q"), "{codes:?}");
    // A milter that does not answer MAIL: 451 4.7.1 after the timeout (tempfail).
    let mut hung = RawClient::connect(petrel.address);
    hung.reply();
    hung.command("EHLO client.test");
    let reply = hung.command("MAIL FROM:<hang@localhost>");
    assert!(reply.starts_with("451 4.7.1"), "{reply}");
    // The same with default_action = "accept": the mail goes through without it.
    let dir_accept = Scratch::new("milter-hang-accept");
    let accepting = Petrel::start(
        &dir_accept.0,
        &format!(
            "[[milter]]\naddress = \"127.0.0.1:{}\"\ntimeout = \"1s\"\ndefault_action = \"accept\"\n",
            milter.port
        ),
    );
    let mut through = RawClient::connect(accepting.address);
    through.reply();
    through.command("EHLO client.test");
    let reply = message(
        &mut through,
        "hang@localhost",
        "user@localhost",
        "hung milter",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(accepting.log_text().contains("a milter could not be asked"));
}

/// Debian's opendkim as a signing and verifying milter (the issue's real milter, `Mode sv`):
/// from an internal host (127.0.0.1) petrel hands it the message at the end of DATA, applies
/// the DKIM-Signature it adds, and the stored message verifies with dkimpy against the key
/// published in the test DNS; the same signed message sent again from an outside host
/// (127.0.0.2) is verified by opendkim, whose Authentication-Results (dkim=pass) petrel
/// stores, and a copy with its body changed gets dkim=fail. (opendkim reads the key record
/// through its `TestDNSData`: its libunbound resolver sends no query to the test DNS server's
/// port here.)
#[test]
fn opendkim_signs_and_verifies_through_the_milter_protocol() {
    use petrel_dns::responder::ZoneEntry;
    let dir = Scratch::new("opendkim");
    let (key, record) = crate::authentication::keygen(&dir.0, "example.test", "s2026");
    let port = crate::harness::server_port();
    let dns_data = dir.0.join("opendkim-dns");
    std::fs::write(
        &dns_data,
        format!(
            "s2026._domainkey.example.test {}\n",
            record.replace('"', "")
        ),
    )
    .unwrap();
    let conf = dir.0.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Syslog no\nMode sv\nAuthservID opendkim.test\nDomain example.test\nSelector s2026\nKeyFile {}\nSocket inet:{port}@127.0.0.1\nBackground no\nPidFile {}\nCanonicalization relaxed/relaxed\nRequireSafeKeys false\nInternalHosts 127.0.0.1\nTestDNSData file:{}\n",
            key.display(),
            dir.0.join("opendkim.pid").display(),
            dns_data.display()
        ),
    )
    .unwrap();
    let mut opendkim = Command::new("opendkim")
        .args(["-f", "-x"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("opendkim (installed by .ci/run)");
    crate::harness::wait_until("opendkim to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut zone = crate::harness::test_zone();
    zone.push(ZoneEntry::Txt(
        "s2026._domainkey.example.test".into(),
        record.clone(),
    ));
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone,
        &format!("[[milter]]\naddress = \"127.0.0.1:{port}\"\n"),
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    assert!(
        client
            .command("MAIL FROM:<alice@example.test>")
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<bob@example.test>")
            .starts_with("250")
    );
    assert!(client.command("DATA").starts_with("354"));
    let reply = client.command(
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: signed by opendkim\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\nMessage-ID: <opendkim-1@example.test>\r\n\r\nhello through the milter\r\n.",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let mail = petrel.wait_for_maildir("example.test", "bob", 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(
        text.contains("DKIM-Signature:") && text.contains("d=example.test"),
        "{text}"
    );
    let dns_port = petrel.dns.as_ref().unwrap().address.port();
    let signed = crate::authentication::crlf(&mail[0]);
    let (verified, why) = crate::authentication::dkimpy_verify(&signed, dns_port);
    assert!(verified, "dkimpy: {why}\n{text}");
    // Verifying: the signed message again, and a tampered copy, from a host opendkim does not
    // sign for.
    let original = dir.0.join("signed.eml");
    std::fs::write(&original, &signed).unwrap();
    let tampered = dir.0.join("tampered.eml");
    let changed = String::from_utf8_lossy(&signed)
        .replace("hello through the milter", "hello from someone else");
    std::fs::write(&tampered, changed).unwrap();
    let lines = crate::harness::python_lines(&format!(
        "import smtplib\nfor path in ['{}', '{}']:\n    c = smtplib.SMTP('127.0.0.1', {}, source_address=('127.0.0.2', 0), timeout=30)\n    c.ehlo('outside.test')\n    print(c.sendmail('alice@example.test', ['carol@example.test'], open(path, 'rb').read()))\n    c.quit()\n",
        original.display(),
        tampered.display(),
        petrel.address.port()
    ));
    assert_eq!(lines, ["{}", "{}"], "both accepted");
    let checked = petrel.wait_for_maildir("example.test", "carol", 2);
    let _ = opendkim.kill();
    let _ = opendkim.wait();
    let verdict = |needle: &str| {
        let message = checked
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no stored copy with {needle:?}"));
        message
            .lines()
            .skip_while(|l| !l.starts_with("Authentication-Results: opendkim.test"))
            .take_while(|l| {
                l.starts_with("Authentication-Results: opendkim.test") || l.starts_with([' ', '\t'])
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let passed = verdict("hello through the milter");
    assert!(
        passed.contains("dkim=pass") && passed.contains("header.d=example.test"),
        "{passed}"
    );
    let failed = verdict("hello from someone else");
    assert!(failed.contains("dkim=fail"), "{failed}");
}

/// `[[listener]] milters`: the sessions of a listener with `milters = []` ask no milter, those
/// of a listener without the key ask every `[[milter]]`; a name no milter has is refused by
/// check-config.
#[test]
fn each_listener_asks_the_milters_it_names() {
    let milter = TestMilter::start();
    let dir = Scratch::new("milter-listeners");
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\nmilters = []\n\n[[milter]]\nname = \"test\"\naddress = \"127.0.0.1:{}\"\n",
            milter.port
        ),
    );
    // The harness's listener comes first in the log; the one without milters second.
    let unfiltered = crate::harness::poll(
        || {
            petrel
                .log_text()
                .lines()
                .filter_map(|line| line.split("listening on ").nth(1))
                .filter(|rest| rest.ends_with("(smtp)"))
                .filter_map(|rest| rest.split(' ').next()?.parse::<std::net::SocketAddr>().ok())
                .find(|address| *address != petrel.address)
        },
        Option::is_some,
    )
    .unwrap();
    let rcpt = |address| {
        let mut client = RawClient::connect(address);
        client.reply();
        client.command("EHLO client.test");
        client.command("MAIL FROM:<alice@relay.test>");
        client.command("RCPT TO:<blocked@example.test>")
    };
    assert_eq!(
        rcpt(petrel.address),
        "550 5.7.1 blocked by the test milter\r\n"
    );
    let without = rcpt(unfiltered);
    assert!(without.starts_with("250"), "{without}");

    let config = dir.0.join("unknown-milter.toml");
    std::fs::write(
        &config,
        crate::harness::config_text(
            &dir.0.join("other"),
            "127.0.0.1:9".parse().unwrap(),
            "[[listener]]\naddress = \"127.0.0.1:0\"\nmilters = [\"rspamd\"]\n\n[[milter]]\nname = \"test\"\naddress = \"127.0.0.1:11332\"\n",
        ),
    )
    .unwrap();
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&checked.stderr).into_owned();
    assert!(!checked.status.success(), "{stderr}");
    assert!(stderr.contains("\"rspamd\""), "{stderr}");
}
