//! petrel-loadgen: the load generator of bench/ for what Postfix's smtp-source does not measure.
//!
//! `petrel-loadgen latency ADDR CLIENTS MESSAGES_PER_CLIENT SIZE_BYTES [PER_CONNECTION]`:
//! CLIENTS threads each send MESSAGES_PER_CLIENT messages of SIZE_BYTES, PER_CONNECTION per
//! session (default all of them), timing each from the write of the final "." to the 250; prints
//! messages/s and the median and 99th percentile in milliseconds.
//!
//! `petrel-loadgen idle ADDR CONNECTIONS SECONDS`: opens CONNECTIONS sessions (greeting read,
//! EHLO answered), reports when all are open, holds them SECONDS, then QUITs them; errors are
//! counted, never hidden.
//!
//! Talks only to the address it is given (the benchmark gives 127.0.0.1); every loop is bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

/// One SMTP session; one descriptor (reads are buffered, writes go through `&TcpStream`), so
/// 10,000 idle sessions need 10,000 descriptors.
struct Session {
    reader: BufReader<TcpStream>,
}

impl Session {
    fn open(address: SocketAddr) -> Result<Session, String> {
        let stream = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut session = Session {
            reader: BufReader::new(stream),
        };
        session.expect("2")?;
        session.command("EHLO loadgen.bench", "250")?;
        Ok(session)
    }

    /// Reads one reply; its code must start with `prefix`.
    fn expect(&mut self, prefix: &str) -> Result<String, String> {
        let mut reply = String::new();
        for _ in 0..100 {
            let mut line = String::new();
            if self.reader.read_line(&mut line).map_err(|e| format!("read: {e}"))? == 0 {
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
        self.writer()
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.expect(prefix)
    }

    /// One transaction; returns the time from the final "." to the 250.
    fn send(&mut self, body: &[u8]) -> Result<Duration, String> {
        self.command("MAIL FROM:<bench@bench.test>", "250")?;
        self.command("RCPT TO:<user@bench.test>", "250")?;
        self.command("DATA", "354")?;
        self.writer()
            .write_all(body)
            .map_err(|e| format!("write: {e}"))?;
        let start = Instant::now();
        self.writer()
            .write_all(b".\r\n")
            .map_err(|e| format!("write: {e}"))?;
        self.expect("250")?;
        Ok(start.elapsed())
    }

    fn writer(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    fn quit(mut self) {
        let _ = self.command("QUIT", "221");
    }
}

/// A message of about `size` octets: headers, then 76-character lines.
fn message(size: usize) -> Vec<u8> {
    let mut body = b"From: bench@bench.test\r\nTo: user@bench.test\r\nSubject: bench\r\n\r\n".to_vec();
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
                        session = Some(Session::open(address)?);
                    }
                    let Some(open) = session.as_mut() else { break };
                    times.push(open.send(&body)?);
                    if (index + 1) % per_connection == 0 {
                        if let Some(done) = session.take() {
                            done.quit();
                        }
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
        "messages={} seconds={elapsed:.3} per_second={:.1} mb_per_second={:.2} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        times.len(),
        times.len() as f64 / elapsed,
        (times.len() * body.len()) as f64 / elapsed / 1e6,
        percentile(0.5),
        percentile(0.99)
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
    let mut sessions = Vec::with_capacity(count);
    let mut errors = 0;
    let started = Instant::now();
    for _ in 0..count {
        match Session::open(address) {
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
        "open={} errors={errors} seconds_to_open={:.2}",
        sessions.len(),
        started.elapsed().as_secs_f64()
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
