//! petrel-loadgen: the load generator of bench/ for what Postfix's smtp-source does not measure.
//!
//! `petrel-loadgen latency ADDR CLIENTS MESSAGES_PER_CLIENT SIZE_BYTES [PER_CONNECTION]`:
//! CLIENTS threads each send MESSAGES_PER_CLIENT messages of SIZE_BYTES, PER_CONNECTION per
//! session (default all of them), timing each from the write of the final "." to the 250; prints
//! messages/s and the median and 99th percentile in milliseconds.
//!
//! `petrel-loadgen idle ADDR CONNECTIONS SECONDS`: opens CONNECTIONS sessions (greeting read,
//! EHLO answered), reports when all are open, holds them SECONDS, then QUITs them; errors are
//! counted, never hidden. With `LOADGEN_SOURCES=N` (1 to 254) the sessions come from 127.0.0.1
//! to 127.0.0.N in turn, so more than one address's ephemeral ports can be open at once (ADDR
//! must then be on loopback too).
//!
//! With `LOADGEN_STARTTLS=1` every session says STARTTLS after its EHLO and goes on in TLS 1.3
//! (rustls with ring; the server's certificate is not checked: a benchmark on loopback), EHLO
//! again; all sessions share one client configuration, so they resume TLS sessions as an MTA's
//! session cache does. The output then adds the handshakes made and how many were resumed.
//!
//! Talks only to the address it is given (the benchmark gives 127.0.0.1); every loop is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// TLS handshakes completed, and how many of them resumed a session.
static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);
static RESUMED: AtomicUsize = AtomicUsize::new(0);

/// The one client configuration of STARTTLS sessions, when LOADGEN_STARTTLS=1.
fn tls_config() -> Option<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            if std::env::var("LOADGEN_STARTTLS").as_deref() != Ok("1") {
                return None;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Some(Arc::new(config))
        })
        .clone()
}

/// Takes any certificate (the signatures of the handshake are still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A session's connection: plain, or TLS after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buf),
            Stream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(buf),
            Stream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("latency") => latency(&args[2..]),
        Some("idle") => idle(&args[2..]),
        _ => Err("usage: petrel-loadgen latency ADDR CLIENTS MESSAGES SIZE [PER_CONNECTION] | idle ADDR CONNECTIONS SECONDS".into()),
    };
    if let Err(message) = result {
        eprintln!("petrel-loadgen: {message}");
        std::process::exit(1);
    }
}

fn number(args: &[String], index: usize, name: &str) -> Result<usize, String> {
    args.get(index)
        .ok_or(format!("{name} is missing"))?
        .parse()
        .map_err(|_| format!("{name} must be a number"))
}

fn address(args: &[String]) -> Result<SocketAddr, String> {
    args.first()
        .ok_or("ADDR is missing")?
        .parse()
        .map_err(|_| "ADDR must be IP:PORT".to_owned())
}

/// One SMTP session; one descriptor (reads are buffered, writes go through the same stream),
/// so 10,000 idle sessions need 10,000 descriptors.
struct Session {
    reader: BufReader<Stream>,
}

impl Session {
    /// A session to `address`, from `source` when given (any port of it).
    fn open(address: SocketAddr, source: Option<std::net::IpAddr>) -> Result<Session, String> {
        let stream = match source {
            None => TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?,
            Some(source) => {
                use socket2::{Domain, Socket, Type};
                let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)
                    .map_err(|e| format!("socket: {e}"))?;
                socket
                    .bind(&SocketAddr::new(source, 0).into())
                    .map_err(|e| format!("bind {source}: {e}"))?;
                socket
                    .connect(&address.into())
                    .map_err(|e| format!("connect: {e}"))?;
                TcpStream::from(socket)
            }
        };
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut session = Session {
            reader: BufReader::new(Stream::Plain(stream)),
        };
        session.expect("2")?;
        session.command("EHLO loadgen.bench", "250")?;
        if let Some(config) = tls_config() {
            session.command("STARTTLS", "220")?;
            session = session.start_tls(config)?;
            session.command("EHLO loadgen.bench", "250")?;
        }
        Ok(session)
    }

    /// The TLS handshake on this session's connection (nothing may be buffered after the 220).
    fn start_tls(self, config: Arc<ClientConfig>) -> Result<Session, String> {
        if !self.reader.buffer().is_empty() {
            return Err("the server sent more after its 220 to STARTTLS".into());
        }
        let Stream::Plain(stream) = self.reader.into_inner() else {
            return Err("TLS is on already".into());
        };
        let name = ServerName::try_from("petrel.bench.test").map_err(|e| e.to_string())?;
        let connection = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(connection, stream);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        HANDSHAKES.fetch_add(1, Ordering::Relaxed);
        if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            RESUMED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Session {
            reader: BufReader::new(Stream::Tls(Box::new(tls))),
        })
    }

    /// Reads one reply; its code must start with `prefix`.
    fn expect(&mut self, prefix: &str) -> Result<String, String> {
        let mut reply = String::new();
        for _ in 0..100 {
            let mut line = String::new();
            if self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?
                == 0
            {
                return Err("connection closed".into());
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return if line.starts_with(prefix) {
                    Ok(reply)
                } else {
                    Err(format!("unexpected reply: {}", reply.trim_end()))
                };
            }
        }
        Err("reply too long".into())
    }

    fn command(&mut self, line: &str, prefix: &str) -> Result<String, String> {
        self.write(format!("{line}\r\n").as_bytes())?;
        self.expect(prefix)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stream = self.reader.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// One transaction; returns the time from the final "." to the 250.
    fn send(&mut self, body: &[u8]) -> Result<Duration, String> {
        self.command("MAIL FROM:<bench@bench.test>", "250")?;
        self.command("RCPT TO:<user@bench.test>", "250")?;
        self.command("DATA", "354")?;
        self.write(body)?;
        let start = Instant::now();
        self.write(b".\r\n")?;
        self.expect("250")?;
        Ok(start.elapsed())
    }

    fn quit(mut self) {
        let _ = self.command("QUIT", "221");
    }
}

/// A message of about `size` octets: headers, then 76-character lines.
fn message(size: usize) -> Vec<u8> {
    let mut body =
        b"From: bench@bench.test\r\nTo: user@bench.test\r\nSubject: bench\r\n\r\n".to_vec();
    let line = [b'a'; 76];
    while body.len() + 78 <= size.max(100) {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}

fn latency(args: &[String]) -> Result<(), String> {
    let address = address(args)?;
    let clients = number(args, 1, "CLIENTS")?.clamp(1, 1000);
    let messages = number(args, 2, "MESSAGES")?.clamp(1, 1_000_000);
    let size = number(args, 3, "SIZE")?.clamp(100, 10_000_000);
    let per_connection = args
        .get(4)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(messages)
        .max(1);
    let body = message(size);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut times = Vec::with_capacity(messages);
                let mut session: Option<Session> = None;
                for index in 0..messages {
                    if session.is_none() {
                        session = Some(Session::open(address, None)?);
                    }
                    let Some(open) = session.as_mut() else { break };
                    times.push(open.send(&body)?);
                    if (index + 1) % per_connection == 0
                        && let Some(done) = session.take()
                    {
                        done.quit();
                    }
                }
                if let Some(done) = session {
                    done.quit();
                }
                Ok(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut errors = 0;
    for handle in handles {
        match handle.join() {
            Ok(Ok(mut client_times)) => times.append(&mut client_times),
            Ok(Err(error)) => {
                errors += 1;
                eprintln!("client failed: {error}");
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort();
    let percentile = |p: f64| -> f64 {
        if times.is_empty() {
            return f64::NAN;
        }
        let index = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[index].as_secs_f64() * 1000.0
    };
    println!(
        "messages={} seconds={elapsed:.3} per_second={:.1} mb_per_second={:.2} p50_ms={:.3} p99_ms={:.3} errors={errors} handshakes={} resumed={}",
        times.len(),
        times.len() as f64 / elapsed,
        (times.len() * body.len()) as f64 / elapsed / 1e6,
        percentile(0.5),
        percentile(0.99),
        HANDSHAKES.load(Ordering::Relaxed),
        RESUMED.load(Ordering::Relaxed)
    );
    if errors > 0 {
        return Err(format!("{errors} client(s) failed"));
    }
    Ok(())
}

fn idle(args: &[String]) -> Result<(), String> {
    let address = address(args)?;
    let count = number(args, 1, "CONNECTIONS")?.clamp(1, 100_000);
    let seconds = number(args, 2, "SECONDS")?.clamp(1, 600);
    let sources = match std::env::var("LOADGEN_SOURCES") {
        Ok(text) => text
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=254).contains(n))
            .ok_or("LOADGEN_SOURCES must be 1 to 254")?,
        Err(_) => 0,
    };
    let mut sessions = Vec::with_capacity(count);
    let mut errors = 0;
    let started = Instant::now();
    for index in 0..count {
        let source = (sources > 0).then(|| {
            let last = 1 + (index % usize::from(sources)) as u8;
            std::net::IpAddr::from([127, 0, 0, last])
        });
        match Session::open(address, source) {
            Ok(session) => sessions.push(session),
            Err(error) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("session failed: {error}");
                }
            }
        }
    }
    println!(
        "open={} errors={errors} seconds_to_open={:.2} handshakes={}",
        sessions.len(),
        started.elapsed().as_secs_f64(),
        HANDSHAKES.load(Ordering::Relaxed)
    );
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(seconds as u64));
    for session in sessions {
        session.quit();
    }
    if errors > 0 {
        return Err(format!("{errors} session(s) failed"));
    }
    Ok(())
}
