//! A small authoritative DNS server for tests (feature `test-responder`): serves a fixed zone
//! over UDP and TCP on 127.0.0.1, port 0. It can answer what dnsmasq cannot: a null MX and a
//! SERVFAIL. It also serves TXT records (SPF, DKIM keys, DMARC). Names it does not know are NXDOMAIN; known names without the asked type answer
//! NOERROR with no records.
//!
//! Test-only code; it still never panics on a malformed query (it is dropped).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, PTR, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

/// One entry of the test zone.
#[derive(Debug, Clone)]
pub enum ZoneEntry {
    Mx(&'static str, u16, &'static str),
    A(&'static str, Ipv4Addr),
    Aaaa(&'static str, Ipv6Addr),
    /// A TXT record (SPF, DKIM keys, DMARC policies); strings over 255 octets are split into
    /// several character-strings, as a zone file would hold them.
    Txt(String, String),
    /// Every query for this name answers SERVFAIL.
    ServFail(&'static str),
    /// A PTR record: the reverse name (`1.0.0.127.in-addr.arpa`) and the host it names.
    Ptr(&'static str, &'static str),
}

/// A running responder; stops when dropped.
pub struct Responder {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
}

impl Responder {
    /// Starts serving `zone` on 127.0.0.1 (the same port for UDP and TCP).
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(zone: Vec<ZoneEntry>) -> std::io::Result<Responder> {
        let (udp, tcp) = bind_pair()?;
        let address = udp.local_addr()?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        tcp.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let zone = Arc::new(zone);
        {
            let (stop, queries, zone) = (stop.clone(), queries.clone(), zone.clone());
            std::thread::spawn(move || serve_udp(&udp, &zone, &stop, &queries));
        }
        {
            let (stop, queries, zone) = (stop.clone(), queries.clone(), zone.clone());
            std::thread::spawn(move || serve_tcp(&tcp, &zone, &stop, &queries));
        }
        Ok(Responder {
            address,
            stop,
            queries,
        })
    }

    /// How many queries were answered.
    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn bind_pair() -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no port")))
}

fn serve_udp(socket: &UdpSocket, zone: &[ZoneEntry], stop: &AtomicBool, queries: &AtomicUsize) {
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        if let Some(answer) = answer(&buffer[..length], zone) {
            queries.fetch_add(1, Ordering::Relaxed);
            let _ = socket.send_to(&answer, peer);
        }
    }
}

fn serve_tcp(listener: &TcpListener, zone: &[ZoneEntry], stop: &AtomicBool, queries: &AtomicUsize) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut length = [0u8; 2];
        while stream.read_exact(&mut length).is_ok() {
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
            if stream.read_exact(&mut query).is_err() {
                break;
            }
            let Some(answer) = answer(&query, zone) else {
                break;
            };
            queries.fetch_add(1, Ordering::Relaxed);
            let Ok(size) = u16::try_from(answer.len()) else {
                break;
            };
            if stream.write_all(&size.to_be_bytes()).is_err() || stream.write_all(&answer).is_err()
            {
                break;
            }
        }
    }
}

fn answer(query_bytes: &[u8], zone: &[ZoneEntry]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query_bytes).ok()?;
    let question = query.queries.first()?.clone();
    let asked = question.name().to_lowercase().to_ascii();
    let asked = asked.trim_end_matches('.');
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(question.clone());
    let names: HashSet<&str> = zone.iter().map(entry_name).collect();
    let is_servfail = zone
        .iter()
        .any(|e| matches!(e, ZoneEntry::ServFail(n) if n.eq_ignore_ascii_case(asked)));
    if is_servfail {
        response.metadata.response_code = ResponseCode::ServFail;
    } else if !names.iter().any(|n| n.eq_ignore_ascii_case(asked)) {
        response.metadata.response_code = ResponseCode::NXDomain;
    } else {
        response.metadata.response_code = ResponseCode::NoError;
        for entry in zone {
            if let Some(record) = record_for(entry, asked, question.query_type()) {
                response.add_answer(record);
            }
        }
    }
    response.to_vec().ok()
}

fn entry_name(entry: &ZoneEntry) -> &str {
    match entry {
        ZoneEntry::Mx(name, ..)
        | ZoneEntry::A(name, _)
        | ZoneEntry::Aaaa(name, _)
        | ZoneEntry::ServFail(name)
        | ZoneEntry::Ptr(name, _) => name,
        ZoneEntry::Txt(name, _) => name,
    }
}

fn record_for(entry: &ZoneEntry, asked: &str, kind: RecordType) -> Option<Record> {
    if !entry_name(entry).eq_ignore_ascii_case(asked) {
        return None;
    }
    let owner = Name::from_ascii(format!("{asked}.")).ok()?;
    let rdata = match (entry, kind) {
        (ZoneEntry::Mx(_, preference, exchange), RecordType::MX) => {
            let exchange = if exchange.is_empty() || *exchange == "." {
                Name::root()
            } else {
                Name::from_ascii(format!("{exchange}.")).ok()?
            };
            RData::MX(MX::new(*preference, exchange))
        }
        (ZoneEntry::A(_, address), RecordType::A) => RData::A(A(*address)),
        (ZoneEntry::Aaaa(_, address), RecordType::AAAA) => RData::AAAA(AAAA(*address)),
        (ZoneEntry::Txt(_, text), RecordType::TXT) => RData::TXT(TXT::new(character_strings(text))),
        (ZoneEntry::Ptr(_, host), RecordType::PTR) => {
            RData::PTR(PTR(Name::from_ascii(format!("{host}.")).ok()?))
        }
        _ => return None,
    };
    Some(Record::from_rdata(owner, 60, rdata))
}

/// Splits `text` into character-strings of at most 255 octets (RFC 1035 §3.3), on character
/// boundaries.
fn character_strings(text: &str) -> Vec<String> {
    let mut strings = vec![String::new()];
    for c in text.chars() {
        if strings.last().is_some_and(|s| s.len() + c.len_utf8() > 255) {
            strings.push(String::new());
        }
        if let Some(last) = strings.last_mut() {
            last.push(c);
        }
    }
    strings
}
