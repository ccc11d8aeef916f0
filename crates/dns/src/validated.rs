//! DNSSEC-aware lookups for DANE (RFC 7672 §2.1, C-DANE-1, C-DANE-4), as Postfix makes them:
//! petrel does not validate signatures itself; it asks a validating resolver that the
//! configuration names (`dns.validating`, every nameserver on loopback so the answer cannot be
//! altered on the way) with the DO and AD bits set, and reads the AD bit of the answer:
//!
//! - AD set: `Secure` (the records, possibly none: a validated NXDOMAIN or NODATA);
//! - AD clear: `Insecure` (unsigned zone; DANE does not apply);
//! - SERVFAIL: `Failed` (a validating resolver answers SERVFAIL for bogus data; the host is
//!   unusable for now, never a reason for plaintext).
//!
//! One query over UDP (TCP when the answer is truncated) to the first nameserver that
//! answers, within the resolver's timeout. The answer is untrusted input: it is decoded by
//! hickory-proto and must carry the query's id; nothing here panics on it.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{FailureKind, TemporaryFailure};

/// A validated answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validated<T> {
    /// The resolver validated it (AD).
    Secure(T),
    /// The resolver did not (an unsigned zone).
    Insecure(T),
    /// No usable answer: bogus (SERVFAIL), or the resolver could not be asked.
    Failed(TemporaryFailure),
}

/// One TLSA record (RFC 6698 §2.1), its fields as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaRecord {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0 the full certificate, 1 the SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

/// Asks `servers` for `name`/`kind` with DO and AD set; the records of the answer section of
/// that type, and whether the answer was authenticated.
pub(crate) async fn ask(
    servers: &[SocketAddr],
    name: &str,
    kind: RecordType,
    timeout: Duration,
) -> Validated<Vec<RData>> {
    let Ok(name) = Name::from_ascii(crate::fully_qualified(name)) else {
        return Validated::Failed(TemporaryFailure::new(
            FailureKind::Other,
            format!("{name:?} is not a DNS name"),
        ));
    };
    let mut last = TemporaryFailure::new(FailureKind::Other, "no validating nameserver");
    for server in servers {
        match tokio::time::timeout(timeout, exchange(*server, &name, kind)).await {
            Ok(Ok(answer)) => return classify(&answer, kind),
            Ok(Err(failure)) => last = failure,
            Err(_) => {
                last = TemporaryFailure::new(
                    FailureKind::Timeout,
                    format!("{server}: no answer within {timeout:?}"),
                );
            }
        }
    }
    Validated::Failed(last)
}

fn classify(answer: &Message, kind: RecordType) -> Validated<Vec<RData>> {
    let code = answer.metadata.response_code;
    let records: Vec<RData> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == kind)
        .map(|r| r.data.clone())
        .collect();
    match code {
        ResponseCode::NoError | ResponseCode::NXDomain if answer.metadata.authentic_data => {
            Validated::Secure(records)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => Validated::Insecure(records),
        ResponseCode::ServFail => Validated::Failed(TemporaryFailure::new(
            FailureKind::ServFail,
            "SERVFAIL from the validating resolver (bogus or unreachable)",
        )),
        other => Validated::Failed(TemporaryFailure::new(
            FailureKind::Other,
            format!("the validating resolver answered {other}"),
        )),
    }
}

fn query_bytes(id: u16, name: &Name, kind: RecordType) -> Result<Vec<u8>, TemporaryFailure> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.authentic_data = true;
    message.add_query(Query::query(name.clone(), kind));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    message.set_edns(edns);
    message
        .to_vec()
        .map_err(|e| TemporaryFailure::new(FailureKind::Other, e.to_string()))
}

async fn exchange(
    server: SocketAddr,
    name: &Name,
    kind: RecordType,
) -> Result<Message, TemporaryFailure> {
    let failure = |detail: String| TemporaryFailure::new(FailureKind::Other, detail);
    let id = random_id();
    let query = query_bytes(id, name, kind)?;
    let local: SocketAddr = if server.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| failure(e.to_string()))?;
    socket
        .send_to(&query, server)
        .await
        .map_err(|e| failure(format!("{server}: {e}")))?;
    let mut buffer = vec![0_u8; 4096];
    let answer = loop {
        let (length, from) = socket
            .recv_from(&mut buffer)
            .await
            .map_err(|e| failure(format!("{server}: {e}")))?;
        if from != server {
            continue;
        }
        match Message::from_vec(&buffer[..length]) {
            Ok(answer) if answer.metadata.id == id => break answer,
            _ => continue,
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    // Truncated: the same question over TCP (RFC 7766).
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| failure(format!("{server}: {e}")))?;
    let length = u16::try_from(query.len()).map_err(|e| failure(e.to_string()))?;
    stream
        .write_all(&[length.to_be_bytes().as_slice(), &query].concat())
        .await
        .map_err(|e| failure(format!("{server}: {e}")))?;
    let mut prefix = [0_u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| failure(format!("{server}: {e}")))?;
    let mut body = vec![0_u8; usize::from(u16::from_be_bytes(prefix))];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| failure(format!("{server}: {e}")))?;
    match Message::from_vec(&body) {
        Ok(answer) if answer.metadata.id == id => Ok(answer),
        _ => Err(failure(format!("{server}: a malformed answer over TCP"))),
    }
}

/// A query id nobody on the path can guess (the answer comes over loopback, but still).
fn random_id() -> u16 {
    let mut bytes = [0_u8; 2];
    if getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return u16::try_from(nanos & 0xffff).unwrap_or(0);
    }
    u16::from_be_bytes(bytes)
}

fn getrandom(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(bytes)
}

/// The TLSA records among `records`.
pub(crate) fn tlsa_records(records: Vec<RData>) -> Vec<TlsaRecord> {
    records
        .into_iter()
        .filter_map(|data| match data {
            RData::TLSA(tlsa) => Some(TlsaRecord {
                usage: u8::from(tlsa.cert_usage),
                selector: u8::from(tlsa.selector),
                matching: u8::from(tlsa.matching),
                data: tlsa.cert_data,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: ResponseCode, authentic: bool) -> Message {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        message.metadata.response_code = code;
        message.metadata.authentic_data = authentic;
        message
    }

    #[test]
    fn c_dane_4_the_ad_bit_and_servfail_decide() {
        assert_eq!(
            classify(&answer(ResponseCode::NoError, true), RecordType::TLSA),
            Validated::Secure(Vec::new())
        );
        assert_eq!(
            classify(&answer(ResponseCode::NXDomain, true), RecordType::TLSA),
            Validated::Secure(Vec::new()),
            "a validated NXDOMAIN: no TLSA, securely"
        );
        assert_eq!(
            classify(&answer(ResponseCode::NoError, false), RecordType::TLSA),
            Validated::Insecure(Vec::new())
        );
        assert!(matches!(
            classify(&answer(ResponseCode::ServFail, false), RecordType::TLSA),
            Validated::Failed(f) if f.kind == FailureKind::ServFail
        ));
        assert!(matches!(
            classify(&answer(ResponseCode::Refused, false), RecordType::TLSA),
            Validated::Failed(_)
        ));
        let bytes = query_bytes(
            9,
            &Name::from_ascii("_25._tcp.mx.example.").unwrap(),
            RecordType::TLSA,
        )
        .unwrap();
        let query = Message::from_vec(&bytes).unwrap();
        assert!(query.metadata.authentic_data && query.metadata.recursion_desired);
        assert!(query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
    }
}
