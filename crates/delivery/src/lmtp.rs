//! Local delivery over LMTP (RFC 2033), when `local.lmtp` is set: the due local recipients of a
//! message go in one LMTP transaction to the mailbox server (Dovecot's, usually), over TCP or a
//! Unix socket, and each gets its own result: 2yz delivered, 4yz retried on the schedule, 5yz
//! bounced (the LMTP server is the final delivery, so NOTIFY=SUCCESS is answered "delivered").
//!
//! The server's replies are untrusted and parsed by `proto`; a server that cannot be reached
//! or drops the connection leaves every recipient pending (4.4.1 / 4.4.2).

use std::path::PathBuf;
use std::time::Duration;

use petrel_proto::EnhancedCode;
use petrel_proto::client::{ClientEvent, ClientSession, Outgoing, TransactionResult};
use petrel_queue::{Envelope, QueueId, RecipientState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tracing::info;

use crate::dsn::Action;
use crate::outcome::{Transport, apply_outcomes, outgoing};
use crate::remote::{Attempt, Outcome, from_reply};
use crate::scheduler::DeliverySettings;

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpAddress {
    /// `host:port`, e.g. `127.0.0.1:24`.
    Tcp(String),
    /// A Unix socket, e.g. `/var/run/dovecot/lmtp`.
    Unix(PathBuf),
}

impl LmtpAddress {
    /// `/path` or `unix:/path` is a Unix socket; anything else `host:port`.
    pub fn parse(text: &str) -> LmtpAddress {
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.starts_with('/') {
            LmtpAddress::Unix(PathBuf::from(path))
        } else {
            LmtpAddress::Tcp(text.to_owned())
        }
    }

    fn describe(&self) -> String {
        match self {
            LmtpAddress::Tcp(address) => address.clone(),
            LmtpAddress::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

/// Delivers the due local recipients of `envelope` to `server`; records each result and
/// returns the success notices owed.
pub async fn deliver_lmtp(
    settings: &DeliverySettings,
    server: &LmtpAddress,
    id: &QueueId,
    envelope: &mut Envelope,
    message: &[u8],
    now: u64,
) -> Vec<(usize, Action)> {
    let indexes: Vec<usize> = envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.state == RecipientState::Pending
                && r.next_attempt_unix_seconds <= now
                && crate::local::local_target(settings, &r.address).is_some()
        })
        .map(|(index, _)| index)
        .collect();
    if indexes.is_empty() {
        return Vec::new();
    }
    let mut message = outgoing(envelope, &indexes, message);
    for (address, _) in &mut message.recipients {
        if address.eq_ignore_ascii_case("postmaster")
            && let Some(domain) = settings.local_domains.first()
        {
            *address = format!("postmaster@{domain}");
        }
    }
    let label = format!("LMTP {}", server.describe());
    let outcomes = match send(settings, server, &message).await {
        Ok(result) => result
            .recipients
            .iter()
            .map(|reply| from_reply(reply, &label))
            .collect(),
        Err(reason) => {
            let outcome = Outcome {
                is_success: false,
                is_permanent: false,
                status: EnhancedCode::new(4, 4, 1),
                detail: format!("{label}: {reason}"),
                remote_mta: Some(label.clone()),
                hop_has_dsn: false,
            };
            vec![outcome; indexes.len()]
        }
    };
    let attempt = Attempt {
        history: vec![format!("{label}: {} recipient(s)", indexes.len())],
        outcomes,
    };
    for (index, outcome) in indexes.iter().zip(&attempt.outcomes) {
        if let Some(recipient) = envelope.recipients.get(*index) {
            info!(queue_id = %id, recipient = %recipient.address, reply = %outcome.detail, "LMTP delivery");
        }
    }
    apply_outcomes(settings, envelope, &indexes, &attempt, now, Transport::Lmtp)
}

/// One LMTP session: connect, LHLO, the transaction, QUIT.
async fn send(
    settings: &DeliverySettings,
    server: &LmtpAddress,
    message: &Outgoing,
) -> Result<TransactionResult, String> {
    let connect = Duration::from_secs(30);
    let session = ClientSession::lmtp(&settings.helo_name);
    match server {
        LmtpAddress::Tcp(address) => {
            let stream = timeout(connect, tokio::net::TcpStream::connect(address.as_str()))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
            converse(stream, session, message).await
        }
        LmtpAddress::Unix(path) => {
            let stream = timeout(connect, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
            converse(stream, session, message).await
        }
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut session: ClientSession,
    message: &Outgoing,
) -> Result<TransactionResult, String> {
    let mut buffer = vec![0u8; 8192];
    let mut is_sent = false;
    loop {
        match session.poll() {
            ClientEvent::NeedInput => {
                let output = session.take_output();
                stream
                    .write_all(&output)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let limit = crate::driver::stage_timeout(session.waiting());
                let count = timeout(limit, stream.read(&mut buffer))
                    .await
                    .map_err(|_| format!("no reply within {}s", limit.as_secs()))?
                    .map_err(|e| format!("read: {e}"))?;
                if count == 0 {
                    return Err("the LMTP server closed the connection".into());
                }
                session.receive(&buffer[..count]);
            }
            ClientEvent::Ready if !is_sent => {
                session.send(message.clone());
                is_sent = true;
            }
            ClientEvent::Sent(result) => {
                session.quit();
                let _ = stream.write_all(&session.take_output()).await;
                let _ = stream.shutdown().await;
                return Ok(result);
            }
            ClientEvent::Failed(failure) => return Err(format!("{failure:?}")),
            ClientEvent::Ready | ClientEvent::Closed => return Err("session ended early".into()),
            ClientEvent::StartTls => return Err("unexpected STARTTLS".into()),
        }
    }
}
