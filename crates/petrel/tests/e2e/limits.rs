//! Per-client rates (issue 7): clients on their own loopback addresses (127.0.0.2 and up, with
//! no relay networks, so none is exempt), driven by Python's smtplib bound to that source
//! address. The client over its message, recipient or connection rate hears 450 4.7.1 or
//! 421 4.7.0 while another client is served, and `/metrics` counts the refusals.

use std::process::Command;

use crate::harness::{Petrel, RawClient, Scratch};

/// Runs an smtplib scenario; returns its printed lines ("CODE TEXT" per reply of interest).
fn smtplib(port: u16, script: &str) -> Vec<String> {
    crate::harness::python_lines(&format!(
        "import smtplib, sys\nPORT = {port}\ndef client(source):\n    return smtplib.SMTP('127.0.0.1', PORT, source_address=(source, 0), timeout=30)\n{script}"
    ))
}

const SCRIPT: &str = r#"
def mail(c, rcpts):
    c.ehlo('client.test')
    code, text = c.mail('sender@example.net')
    if code != 250:
        return '%d %s' % (code, text.decode())
    for r in rcpts:
        code, text = c.rcpt(r)
        if code != 250:
            print('rcpt %d %s' % (code, text.decode()))
    code, text = c.data(b'Subject: rate\r\n\r\nrate\r\n')
    return '%d %s' % (code, text.decode())

# Message rate 3 a minute: the fourth MAIL from 127.0.0.2 is refused, 127.0.0.3 is served.
c = client('127.0.0.2')
for i in range(4):
    print('a %s' % mail(c, ['bob@example.test']))
c.quit()
c = client('127.0.0.3')
print('b %s' % mail(c, ['bob@example.test']))
c.quit()
# Recipient rate 5 a minute: the sixth RCPT from 127.0.0.4 is refused, the message still goes.
c = client('127.0.0.4')
print('c %s' % mail(c, ['r%d@example.test' % i for i in range(6)]))
c.quit()
# Connection rate 6 a minute: 127.0.0.5's seventh connection hears 421 at once.
for i in range(7):
    try:
        c = client('127.0.0.5')
        c.quit()
        print('d connected')
    except smtplib.SMTPConnectError as e:
        print('d %d %s' % (e.smtp_code, e.smtp_error.decode()))
"#;

#[test]
fn a_client_over_its_rate_is_refused_while_others_are_served() {
    let scratch = Scratch::new("rates");
    let extra = "[relay]\nnetworks = []\n\n[http]\naddress = \"127.0.0.1:0\"\n\n[limits]\nmax_messages_per_minute_per_ip = 3\nmax_recipients_per_minute_per_ip = 5\nmax_connections_per_minute_per_ip = 6\n";
    let petrel = Petrel::start(&scratch.0, extra);
    let lines = smtplib(petrel.address.port(), SCRIPT);
    let a: Vec<&String> = lines.iter().filter(|l| l.starts_with("a ")).collect();
    assert_eq!(a.len(), 4, "{lines:?}");
    assert!(
        a[..3].iter().all(|l| l.starts_with("a 250 2.0.0")),
        "{lines:?}"
    );
    assert!(a[3].starts_with("a 450 4.7.1 Too much mail"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("b 250 2.0.0")),
        "{lines:?}"
    );
    let rcpt_refusals: Vec<&String> = lines.iter().filter(|l| l.starts_with("rcpt ")).collect();
    assert_eq!(rcpt_refusals.len(), 1, "{lines:?}");
    assert!(
        rcpt_refusals[0].starts_with("rcpt 450 4.7.1 Too many recipients"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("c 250 2.0.0")),
        "{lines:?}"
    );
    let d: Vec<&String> = lines.iter().filter(|l| l.starts_with("d ")).collect();
    assert_eq!(d.len(), 7, "{lines:?}");
    assert!(d[..6].iter().all(|l| *l == "d connected"), "{lines:?}");
    assert!(
        d[6].starts_with("d 421 4.7.0 Too many connections"),
        "{lines:?}"
    );
    // 3 + 1 + 1 messages for bob and the five r*; the refused ones never arrived.
    assert_eq!(petrel.wait_for_maildir("example.test", "bob", 4).len(), 4);
    assert_eq!(petrel.wait_for_maildir("example.test", "r4", 1).len(), 1);
    assert!(petrel.maildir("example.test", "r5").is_empty());
    let http = petrel.listener("http");
    let metrics = Command::new("curl")
        .args(["-sS", &format!("http://{http}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for limit in ["message_rate", "recipient_rate", "connection_rate"] {
        assert!(
            metrics.contains(&format!(
                "petrel_rate_limited_total{{limit=\"{limit}\"}} 1\n"
            )),
            "{limit}\n{metrics}"
        );
    }
}

/// Descriptors (issue 18, item 3): under a descriptor limit of 1,000 (prlimit), petrel lowers
/// limits.max_connections to what the limit holds and says so; a flood of 2,000 connections
/// gets a greeting or `421 4.7.0`, each at once, never a hung accept; while every session it
/// can hold is open, twenty of them each store a message (the journal, the Maildir writer and
/// the accept loop still have descriptors), and afterwards mail is accepted as before; every
/// message that got a 250 is delivered.
#[test]
fn a_low_descriptor_limit_gives_clean_refusals() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let dir = Scratch::new("nofile");
    let petrel = Petrel::start_wrapped(&dir.0, "", &["prlimit", "--nofile=1000:1000"]);
    assert!(
        petrel
            .log_text()
            .contains("limits.max_connections lowered to what the descriptor limit holds"),
        "{}",
        petrel.log_text()
    );
    let mut open = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut client = RawClient::connect(petrel.address);
        let greeting = client.reply();
        if greeting.starts_with("220") {
            greeted += 1;
            open.push(client);
        } else {
            assert_eq!(
                greeting,
                "421 4.7.0 Too many connections, try again later\r\n"
            );
            refused += 1;
        }
    }
    assert!(
        greeted > 0 && refused > 0,
        "{greeted} greeted, {refused} refused"
    );
    for (n, client) in open.iter_mut().take(20).enumerate() {
        client.command("EHLO flood.test");
        let reply = client.send_message(
            "a@localhost",
            &["b@localhost"],
            format!("Subject: during {n}\r\n\r\nhi\r\n").as_bytes(),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    drop(open);
    std::thread::sleep(std::time::Duration::from_millis(500));
    for n in 0..5 {
        let reply = crate::harness::send_one(
            petrel.address,
            "a@localhost",
            &["b@localhost"],
            format!("Subject: after {n}\r\n\r\nhi\r\n").as_bytes(),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert_eq!(petrel.wait_for_maildir("localhost", "b", 25).len(), 25);
    println!("{greeted} greeted, {refused} refused with 421 4.7.0");
}

/// The bound on message data in flight (issue 18, item 1), `limits.max_data_memory` at 48 KiB,
/// watched through the gauge `petrel_data_memory_bytes` (amounts below the 64 KiB from which a
/// session writes its message to disk, so they stay in memory on both queues): a session
/// holding exactly 48 KiB of an unfinished message leaves no room, so another's message is
/// refused with 452 4.3.1 at its end (a new one is accepted once the room is back); a session
/// holding 36 KiB leaves room for a DATA, but the 24 KiB that follow pass the bound: that
/// message gets 452 4.3.1 at its end, while the first is accepted.
#[test]
fn message_data_in_flight_is_bounded() {
    let dir = Scratch::new("data-memory");
    let petrel = Petrel::start(
        &dir.0,
        "[http]\naddress = \"127.0.0.1:0\"\n\n[limits]\nmax_data_memory = 49152\n",
    );
    let gauge = |wanted: f64| {
        let samples = crate::harness::poll(
            || crate::metrics::scrape(&petrel),
            |samples| samples.get("petrel_data_memory_bytes").copied() == Some(wanted),
        );
        assert_eq!(
            samples.get("petrel_data_memory_bytes").copied(),
            Some(wanted),
            "{samples:?}"
        );
    };
    // Lines of 1,024 octets with their CR LF.
    let kib = |count: usize| {
        let mut line = "z".repeat(1022).into_bytes();
        line.extend_from_slice(b"\r\n");
        line.repeat(count)
    };
    let open = |address| {
        let mut client = RawClient::connect(address);
        client.reply();
        client.command("EHLO client.test");
        assert!(client.command("MAIL FROM:<a@localhost>").starts_with("250"));
        assert!(
            client
                .command("RCPT TO:<user@localhost>")
                .starts_with("250")
        );
        client
    };
    let mut a = open(petrel.address);
    let mut b = open(petrel.address);
    // Full: A holds exactly the bound.
    assert!(a.command("DATA").starts_with("354"));
    a.send(&kib(48));
    gauge(49_152.0);
    assert!(b.command("DATA").starts_with("354"));
    b.send(b"Subject: small\r\n\r\nsmall\r\n.\r\n");
    assert!(
        b.reply()
            .starts_with("452 4.3.1 Insufficient system storage"),
        "a message while the bound is reached"
    );
    a.send(b".\r\n");
    assert!(a.reply().starts_with("250"), "the message at the bound");
    gauge(0.0);
    assert!(b.command("MAIL FROM:<a@localhost>").starts_with("250"));
    assert!(b.command("RCPT TO:<user@localhost>").starts_with("250"));
    assert!(b.command("DATA").starts_with("354"), "room again");
    b.send(b"Subject: small\r\n\r\nsmall\r\n.\r\n");
    assert!(b.reply().starts_with("250"));
    // Past the bound while reading: 36 KiB held by A, then 24 KiB from B.
    assert!(a.command("MAIL FROM:<a@localhost>").starts_with("250"));
    assert!(a.command("RCPT TO:<user@localhost>").starts_with("250"));
    assert!(a.command("DATA").starts_with("354"));
    a.send(&kib(36));
    gauge(36_864.0);
    assert!(b.command("MAIL FROM:<a@localhost>").starts_with("250"));
    assert!(b.command("RCPT TO:<user@localhost>").starts_with("250"));
    assert!(b.command("DATA").starts_with("354"));
    b.send(&kib(24));
    b.send(b".\r\n");
    let reply = b.reply();
    assert!(
        reply.starts_with("452 4.3.1 Insufficient system storage"),
        "{reply}"
    );
    assert!(b.command("NOOP").starts_with("250"), "the session goes on");
    a.send(b".\r\n");
    assert!(a.reply().starts_with("250"));
    gauge(0.0);
    let samples = crate::metrics::scrape(&petrel);
    assert_eq!(
        samples.get("petrel_data_memory_refusals_total").copied(),
        Some(1.0)
    );
    let log = petrel.log_text();
    assert!(log.contains("limits.max_data_memory"), "{log}");
    petrel.wait_for_maildir("localhost", "user", 3);
}

/// Inbound TLS handshakes (issue 18, item 3), `limits.max_tls_handshakes = 2` and
/// `limits.tls_handshake_timeout = "3s"`: two clients that say STARTTLS and then nothing (a TLS
/// slowloris) take both slots (gauge `petrel_tls_handshakes_running`); a real client's
/// handshake (openssl s_client) waits (`petrel_tls_handshakes_waiting`), the stalled ones are
/// closed by the server at their timeout, and then the real one completes.
#[test]
fn tls_handshakes_are_bounded_and_stalled_ones_are_dropped() {
    use std::io::{BufRead, Read, Write};
    let dir = Scratch::new("tls-handshakes");
    let tls = crate::tls::make_certificate(&dir.0);
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n\n[limits]\nmax_tls_handshakes = 2\ntls_handshake_timeout = \"3s\"\n",
            tls.cert.display(),
            tls.key.display()
        ),
    );
    let gauge = |name: &str, wanted: f64| {
        let samples = crate::harness::poll(
            || crate::metrics::scrape(&petrel),
            |samples| samples.get(name).copied() == Some(wanted),
        );
        assert_eq!(samples.get(name).copied(), Some(wanted), "{name}");
    };
    let stall = || {
        let stream = std::net::TcpStream::connect(petrel.address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        for command in ["EHLO stall.test", "STARTTLS"] {
            writer
                .write_all(format!("{command}\r\n").as_bytes())
                .unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
        }
        assert!(line.starts_with("220"), "{line}");
        reader
    };
    let stalled = [stall(), stall()];
    gauge("petrel_tls_handshakes_running", 2.0);
    let client = crate::tls::openssl_starttls(petrel.address, &tls.cert);
    gauge("petrel_tls_handshakes_waiting", 1.0);
    // The server closes the stalled connections at their timeout (a read gives end of file,
    // not the 30 s read timeout).
    for mut reader in stalled {
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
    }
    let seen = crate::tls::ehlo_and_quit(client);
    assert!(seen.contains("250 "), "{seen}");
    gauge("petrel_tls_handshakes_running", 0.0);
    let log = petrel.log_text();
    assert!(log.contains("the TLS handshake timed out"), "{log}");
}

/// Slowloris (issue 18, item 3), `limits.idle_timeout = "3s"` and `limits.min_data_rate =
/// 1000`: thousands of clients trickle one octet of a command line every 300 ms (each read
/// would reset a plain idle timeout), and a hundred more trickle message content at 33 octets
/// a second. Every one gets 421 4.4.2 and is closed (the command lines at their deadline, the
/// content when it falls behind the rate), while a normal client is served meanwhile.
#[test]
fn slowloris_clients_are_dropped_at_their_deadlines() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::io::{ErrorKind, Read, Write};
    use std::time::{Duration, Instant};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let commands = usize::try_from(hard.saturating_sub(400) / 2)
        .unwrap()
        .min(2000);
    let dir = Scratch::new("slowloris");
    let petrel = Petrel::start(
        &dir.0,
        "[limits]\nidle_timeout = \"3s\"\nmin_data_rate = 1000\n",
    );
    struct Trickler {
        stream: std::net::TcpStream,
        octets: &'static [u8],
        seen: Vec<u8>,
        is_closed: bool,
    }
    let mut tricklers = Vec::new();
    for _ in 0..commands {
        let mut client = RawClient::connect(petrel.address);
        assert!(client.reply().starts_with("220"));
        tricklers.push((client, &b"x"[..]));
    }
    for _ in 0..100 {
        let mut client = RawClient::connect(petrel.address);
        client.reply();
        client.command("EHLO slow.test");
        client.start_data("a@localhost", "user@localhost");
        tricklers.push((client, &b"yyyyyyyyyy"[..]));
    }
    let mut tricklers: Vec<Trickler> = tricklers
        .into_iter()
        .map(|(client, octets)| {
            let stream = client.stream;
            stream.set_nonblocking(true).unwrap();
            Trickler {
                stream,
                octets,
                seen: Vec::new(),
                is_closed: false,
            }
        })
        .collect();
    let mut normal_served = false;
    let bound = Instant::now() + Duration::from_secs(60);
    while tricklers.iter().any(|t| !t.is_closed) && Instant::now() < bound {
        for trickler in tricklers.iter_mut().filter(|t| !t.is_closed) {
            let mut buffer = [0u8; 512];
            loop {
                match trickler.stream.read(&mut buffer) {
                    Ok(0) => {
                        trickler.is_closed = true;
                        break;
                    }
                    Ok(count) => trickler.seen.extend_from_slice(&buffer[..count]),
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        trickler.is_closed = true;
                        break;
                    }
                }
            }
            if !trickler.is_closed {
                let _ = trickler.stream.write(trickler.octets);
            }
        }
        if !normal_served {
            let reply = crate::harness::send_one(
                petrel.address,
                "a@localhost",
                &["user@localhost"],
                b"Subject: meanwhile\r\n\r\nserved\r\n",
            );
            assert!(reply.starts_with("250"), "{reply}");
            normal_served = true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let open = tricklers.iter().filter(|t| !t.is_closed).count();
    assert_eq!(open, 0, "{open} slow clients still connected after 60 s");
    let without_421 = tricklers
        .iter()
        .filter(|t| !String::from_utf8_lossy(&t.seen).contains("421 4.4.2"))
        .count();
    assert_eq!(without_421, 0, "closed without 421 4.4.2");
    let log = petrel.log_text();
    assert!(
        log.contains("a command line not completed within limits.idle_timeout")
            && log.contains("message content slower than limits.min_data_rate"),
        "{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    println!("{commands} command tricklers and 100 content tricklers, all given 421 4.4.2");
}

/// A client that sends and never reads (issue 18, item 3): pipelined NOOPs fill the socket
/// buffers with replies, the server's write waits, and after `limits.idle_timeout` the session
/// ends (it used to wait for ever, holding its connection).
#[test]
fn a_client_that_never_reads_is_dropped() {
    use std::io::{Read, Write};
    let dir = Scratch::new("never-reads");
    let petrel = Petrel::start(&dir.0, "[limits]\nidle_timeout = \"2s\"\n");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO lazy.test");
    let mut writer = client.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let sender = std::thread::spawn(move || {
        let burst = b"NOOP\r\n".repeat(10_000);
        // At most 3 MB; the server stops reading long before.
        for _ in 0..50 {
            if writer.write_all(&burst).is_err() {
                break;
            }
        }
    });
    crate::harness::wait_until("the session to end for not reading", || {
        petrel.log_text().contains("did not read its replies")
    });
    // Closed: what was written arrives, then the end (or a reset), not a read timeout.
    let mut stream = client.stream;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                assert!(
                    error.kind() == std::io::ErrorKind::ConnectionReset,
                    "not closed: {error}"
                );
                break;
            }
        }
    }
    sender.join().unwrap();
}
