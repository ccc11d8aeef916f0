//! Test harness: starts a real `petrel serve` on a loopback port 0 with its own data_dir, finds
//! its port from the `listening on` log line, and reads what landed in its Maildirs. A tiny raw
//! SMTP client lets tests send exact bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petrel_dns::responder::{Responder, ZoneEntry};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "petrel-e2e-{}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The DNS zone every test petrel sees (served on loopback by the test responder).
pub fn test_zone() -> Vec<ZoneEntry> {
    vec![
        ZoneEntry::Mx("nullmx.test", 0, "."),
        // Stands in for the null-MX domain's web server: a client that fell back to the
        // domain's address (which RFC 7505 forbids) would connect here.
        ZoneEntry::A("nullmx.test", "127.0.0.1".parse().unwrap()),
        ZoneEntry::Mx("relay.test", 10, "mx.relay.test"),
        ZoneEntry::A("mx.relay.test", "127.0.0.1".parse().unwrap()),
        ZoneEntry::A("aonly.test", "127.0.0.1".parse().unwrap()),
        ZoneEntry::Mx("mixed.test", 0, "."),
        ZoneEntry::Mx("mixed.test", 10, "mx.relay.test"),
        ZoneEntry::Mx("example.net", 10, "mx.relay.test"),
        ZoneEntry::ServFail("servfail.test"),
    ]
}

/// Starts a DNS responder serving `test_zone()`.
pub fn test_dns() -> Responder {
    Responder::start(test_zone()).unwrap()
}

/// The configuration every test starts from; `extra` is appended (tables after the top keys).
pub fn config_text(data_dir: &Path, dns: SocketAddr, extra: &str) -> String {
    config_for(
        data_dir,
        dns,
        "mx.test",
        &["localhost", "example.test"],
        extra,
    )
}

/// A configuration with its own host name and local domains.
pub fn config_for(
    data_dir: &Path,
    dns: SocketAddr,
    hostname: &str,
    domains: &[&str],
    extra: &str,
) -> String {
    let domains: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
    let extra = crate::backend::with_queue(data_dir, extra);
    format!(
        "hostname = \"{hostname}\"\ndata_dir = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[local]\ndomains = [{}]\n\n[dns]\nnameservers = [\"{dns}\"]\ntimeout = \"2s\"\n\n{extra}\n",
        data_dir.display(),
        domains.join(", ")
    )
}

/// A loopback port nothing listens on, nor ever will in this test run: deliveries to it are
/// refused, so mail stays deferred. It comes from `server_port`, which gives each port once and
/// never one that bind(0) or a connection could be given, so no other test's listener ever
/// takes it (a port only bound to 0 and let go could be: a parallel test's server once took one
/// of this test's deferred messages).
pub fn closed_port() -> u16 {
    server_port()
}

/// A loopback port for a server that a test starts and that binds the port by number
/// (Postfix, smtp-sink, unbound, nsd, Dovecot, HAProxy, rspamd, opendkim, a second listener of
/// petrel). A port bound to 0 and let go for it could be given to a parallel test's listener
/// or outgoing connection before the server binds it. These come from below the kernel's
/// ephemeral range (`ip_local_port_range`), which bind(0) and connect() never leave, each at
/// most once in this process, and are free for TCP and UDP when handed out.
pub fn server_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const SPAN: u16 = 8192;
    static TAKEN: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(SPAN).max(1025);
    let span = ephemeral_low.saturating_sub(low).max(1);
    // Another test process running at the same time starts elsewhere in the span.
    let start = (std::process::id() % u32::from(span)) as u16;
    loop {
        let taken = TAKEN.fetch_add(1, Ordering::Relaxed);
        assert!(taken < span, "no free port left below the ephemeral range");
        let port = low + (start + taken) % span;
        let is_free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if is_free {
            return port;
        }
    }
}

/// Calls `probe` until `done` holds for its value or 30 s have passed; returns the last value
/// (the caller asserts on it, with what it wants to show).
pub fn poll<T>(mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = probe();
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `done()` (at most 60 s), failing the test with `what` when time runs out.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running petrel.
pub struct Petrel {
    pub child: Child,
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The DNS server this petrel asks, when the harness started one.
    pub dns: Option<Arc<Responder>>,
}

impl Petrel {
    /// Starts petrel with the base configuration plus `extra` in `dir`.
    pub fn start(dir: &Path, extra: &str) -> Petrel {
        Petrel::start_wrapped(dir, extra, &[])
    }

    /// Starts petrel under `wrapper` (strace, unshare...) with the base configuration.
    pub fn start_wrapped(dir: &Path, extra: &str, wrapper: &[&str]) -> Petrel {
        let dns = Arc::new(test_dns());
        let data_dir = dir.join("data");
        let config_path = dir.join("petrel.toml");
        std::fs::write(&config_path, config_text(&data_dir, dns.address, extra)).unwrap();
        let mut petrel = Petrel::start_with(&config_path, &data_dir, wrapper);
        petrel.dns = Some(dns);
        petrel
    }

    /// Starts petrel with its own host name and local domains.
    pub fn start_for(dir: &Path, hostname: &str, domains: &[&str], extra: &str) -> Petrel {
        Petrel::start_in_zone(dir, hostname, domains, test_zone(), extra)
    }

    /// Starts petrel with its own host name, local domains and DNS zone (on a loopback server of
    /// its own).
    pub fn start_in_zone(
        dir: &Path,
        hostname: &str,
        domains: &[&str],
        zone: Vec<ZoneEntry>,
        extra: &str,
    ) -> Petrel {
        let dns = Arc::new(Responder::start(zone).unwrap());
        let data_dir = dir.join("data");
        let config_path = dir.join("petrel.toml");
        std::fs::write(
            &config_path,
            config_for(&data_dir, dns.address, hostname, domains, extra),
        )
        .unwrap();
        let mut petrel = Petrel::start_with(&config_path, &data_dir, &[]);
        petrel.dns = Some(dns);
        petrel
    }

    /// Starts `petrel serve --config FILE`, prefixed by `wrapper` (e.g. strace) when given.
    pub fn start_with(config_path: &Path, data_dir: &Path, wrapper: &[&str]) -> Petrel {
        let binary = env!("CARGO_BIN_EXE_petrel");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(["serve", "--log-format", "human", "--config"])
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start petrel");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address_rx) = mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let address = rest.split(' ').next().unwrap_or("").to_owned();
                    let _ = found.send(address);
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!("petrel did not start: {:?}", log.lock().unwrap());
            }
        };
        Petrel {
            child,
            address,
            data_dir: data_dir.to_path_buf(),
            config_path: config_path.to_path_buf(),
            log,
            dns: None,
        }
    }

    /// Files in `mail/<domain>/<user>/new/`, contents sorted by file name.
    pub fn maildir(&self, domain: &str, user: &str) -> Vec<Vec<u8>> {
        maildir_messages(&self.data_dir, domain, user)
    }

    /// Waits until the Maildir holds `count` messages (bounded), then returns them.
    pub fn wait_for_maildir(&self, domain: &str, user: &str, count: usize) -> Vec<Vec<u8>> {
        poll(
            || self.maildir(domain, user),
            |messages| messages.len() >= count,
        )
    }

    /// Waits for exactly one message in `user`'s Maildir, which `sender` relayed here; on
    /// failure both logs are shown (A: the sender, B: this petrel).
    pub fn wait_for_one_from(&self, domain: &str, user: &str, sender: &Petrel) -> Vec<Vec<u8>> {
        let messages = self.wait_for_maildir(domain, user, 1);
        assert_eq!(
            messages.len(),
            1,
            "A:\n{}\nB:\n{}",
            sender.log_text(),
            self.log_text()
        );
        messages
    }

    /// Sends a signal by name to the petrel process (only the process this test started).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of the first listener of `protocol` (smtp, submission, submissions, http),
    /// from its `listening on ADDR (PROTOCOL)` log line.
    pub fn listener(&self, protocol: &str) -> SocketAddr {
        let suffix = format!(" ({protocol})");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|line| {
                let rest = line.split("listening on ").nth(1)?;
                rest.ends_with(&suffix)
                    .then(|| rest.split(' ').next().unwrap_or("").parse().ok())?
            });
            if let Some(address) = found {
                return address;
            }
            assert!(
                Instant::now() < deadline,
                "no {protocol} listener in:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `petrel queue ARGS` with this petrel's configuration: whether it succeeded, and
    /// its standard output and error together.
    pub fn queue(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["queue"])
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Petrel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what petrel logged, so a failure seen once (in CI) can be read.
        if std::thread::panicking() {
            eprintln!(
                "--- petrel's log ({}) ---\n{}\n--- end of petrel's log ---",
                self.config_path.display(),
                self.log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .join("\n")
            );
        }
    }
}

pub fn maildir_messages(data_dir: &Path, domain: &str, user: &str) -> Vec<Vec<u8>> {
    let new = data_dir.join("mail").join(domain).join(user).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Splits a Maildir file into its trace header lines (Return-Path, Delivered-To, Received with
/// its folded lines) and the rest, checking the trace lines are those three fields.
pub fn strip_trace(file: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(file);
    let mut trace = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_trace = line.starts_with("Return-Path: ")
            || line.starts_with("Delivered-To: ")
            || line.starts_with("Received: ")
            || (line.starts_with('\t') && trace.contains("Received: "));
        if !is_trace {
            break;
        }
        trace.push_str(line);
        offset += line.len();
    }
    assert!(trace.starts_with("Return-Path: <"), "{trace}");
    assert_eq!(trace.matches("Received: ").count(), 1, "{trace}");
    (trace, file[offset..].to_vec())
}

/// A raw SMTP client over loopback.
pub struct RawClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawClient {
    pub fn connect(address: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        RawClient { stream, reader }
    }

    /// Connects, or `None` when nothing listens.
    pub fn try_connect(address: SocketAddr) -> Option<RawClient> {
        TcpStream::connect(address)
            .ok()
            .map(|_| RawClient::connect(address))
    }

    /// Reads one whole reply (all its lines).
    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return reply;
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command line and returns its reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True when the server closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    /// MAIL, RCPT and DATA, each asserted accepted: the message's content may follow.
    pub fn start_data(&mut self, from: &str, to: &str) {
        let mail = self.command(&format!("MAIL FROM:<{from}>"));
        assert!(mail.starts_with("250"), "{mail}");
        let rcpt = self.command(&format!("RCPT TO:<{to}>"));
        assert!(rcpt.starts_with("250"), "{rcpt}");
        let data = self.command("DATA");
        assert!(data.starts_with("354"), "{data}");
    }

    /// Sends one message in one transaction; returns the final reply.
    pub fn send_message(&mut self, from: &str, to: &[&str], content: &[u8]) -> String {
        let reply = self.command(&format!("MAIL FROM:<{from}>"));
        if !reply.starts_with("250") {
            return reply;
        }
        for rcpt in to {
            self.command(&format!("RCPT TO:<{rcpt}>"));
        }
        let reply = self.command("DATA");
        if !reply.starts_with("354") {
            return reply;
        }
        self.send(content);
        self.send(b".\r\n");
        self.reply()
    }
}

/// One message in its own session (greeting, EHLO, the transaction, QUIT); the final reply.
pub fn send_one(address: SocketAddr, from: &str, to: &[&str], content: &[u8]) -> String {
    let mut client = RawClient::connect(address);
    client.reply();
    client.command("EHLO client.test");
    let reply = client.send_message(from, to, content);
    client.command("QUIT");
    reply
}

/// Runs `command` with `input` on its standard input and collects its output.
pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a Python program (`python3 -c`), failing the test when it fails; its printed lines.
pub fn python_lines(program: &str) -> Vec<String> {
    let output = Command::new("python3")
        .args(["-c", program])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
