//! A scripted SMTP server standing in for remote MX hosts: it answers each connection as its
//! script says (greeting, per-recipient replies, the end-of-data reply, or a dropped
//! connection in the middle of DATA, a STARTTLS whose handshake fails) and records what it saw.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one connection goes.
#[derive(Clone, Debug)]
pub struct Script {
    pub greeting: &'static str,
    /// Replies for RCPT by local part; others get 250.
    pub refuse: Vec<(&'static str, &'static str)>,
    /// The reply after the data, or `None` to drop the connection in the middle of DATA.
    pub data_end: Option<&'static str>,
    /// Offers STARTTLS, says 220 to it, then answers the handshake with bytes that are not
    /// TLS and hangs up: a handshake that fails.
    pub breaks_starttls: bool,
    /// Offers AUTH PLAIN LOGIN and no STARTTLS: a server whose STARTTLS an attacker stripped,
    /// waiting for credentials in the clear (any AUTH gets 235).
    pub offers_auth_in_clear: bool,
}

impl Script {
    pub fn accept() -> Script {
        Script {
            greeting: "220 fake.test ESMTP",
            refuse: Vec::new(),
            data_end: Some("250 2.0.0 Ok: queued"),
            breaks_starttls: false,
            offers_auth_in_clear: false,
        }
    }
}

/// What the fake saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub connections: usize,
    pub rcpts: Vec<String>,
    /// Messages it accepted (dot-unstuffed, CR LF).
    pub messages: Vec<Vec<u8>>,
    /// STARTTLS commands it answered.
    pub starttls: usize,
    /// Every line the client sent outside message data, as sent.
    pub lines: Vec<String>,
}

pub struct FakeMx {
    pub address: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

impl FakeMx {
    /// Serves connection n with `scripts[n]` (the last script repeats).
    pub fn start(scripts: Vec<Script>) -> FakeMx {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let index = {
                    let mut seen = shared.lock().unwrap();
                    seen.connections += 1;
                    seen.connections - 1
                };
                let script = scripts[index.min(scripts.len() - 1)].clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = converse(stream, &script, &shared);
                });
            }
        });
        FakeMx { address, seen }
    }

    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }
}

fn converse(stream: TcpStream, script: &Script, seen: &Mutex<Seen>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writeln!(writer, "{}\r", script.greeting)?;
    if !script.greeting.starts_with("220") {
        return Ok(());
    }
    let mut line = String::new();
    let mut accepted = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        seen.lock().unwrap().lines.push(command.clone());
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") && script.offers_auth_in_clear {
            writer.write_all(b"250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10000000\r\n")?;
        } else if upper.starts_with("AUTH") && script.offers_auth_in_clear {
            writer.write_all(b"235 2.7.0 Authentication successful\r\n")?;
        } else if upper.starts_with("EHLO") && script.breaks_starttls {
            writer.write_all(b"250-fake.test\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10000000\r\n")?;
        } else if upper == "STARTTLS" && script.breaks_starttls {
            seen.lock().unwrap().starttls += 1;
            writer.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
            writer.write_all(b"this is not a TLS handshake\r\n")?;
            return Ok(());
        } else if upper.starts_with("EHLO") {
            writer.write_all(b"250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10000000\r\n")?;
        } else if upper.starts_with("MAIL") {
            accepted = 0;
            writer.write_all(b"250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT") {
            let address = command
                .split('<')
                .nth(1)
                .unwrap_or("")
                .trim_end_matches('>')
                .to_owned();
            let local = address.split('@').next().unwrap_or("").to_owned();
            seen.lock().unwrap().rcpts.push(address);
            match script.refuse.iter().find(|(l, _)| *l == local) {
                Some((_, reply)) => writeln!(writer, "{reply}\r")?,
                None => {
                    accepted += 1;
                    writer.write_all(b"250 2.1.5 Ok\r\n")?;
                }
            }
        } else if upper == "DATA" {
            if accepted == 0 {
                writer.write_all(b"554 5.5.1 No valid recipients\r\n")?;
                continue;
            }
            writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut message = Vec::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                if script.data_end.is_none() && message.len() > 10 {
                    // Drop the connection in the middle of the data.
                    return Ok(());
                }
                let text = line.strip_prefix('.').unwrap_or(&line);
                message.extend_from_slice(text.as_bytes());
            }
            let reply = script.data_end.unwrap_or("451 4.3.0 unreachable");
            if reply.starts_with('2') {
                seen.lock().unwrap().messages.push(message);
            }
            writeln!(writer, "{reply}\r")?;
        } else if upper == "QUIT" {
            writer.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            writer.write_all(b"250 2.0.0 Ok\r\n")?;
        } else {
            writer.write_all(b"502 5.5.1 unknown\r\n")?;
        }
    }
}
