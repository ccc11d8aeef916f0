//! Local delivery over LMTP (RFC 2033), when `local.lmtp` is set: the due local recipients of a
//! message go in one LMTP transaction to the mailbox server (Dovecot's, usually), over TCP or a
//! Unix socket, and each gets its own result: 2yz delivered, 4yz retried on the schedule, 5yz
//! bounced (the LMTP server is the final delivery, so NOTIFY=SUCCESS is answered "delivered").
//!
//! The server's replies are untrusted and parsed by `proto`; a server that cannot be reached
//! or drops the connection leaves every recipient pending (4.4.1 / 4.4.2).

use std::path::PathBuf;
use std::time::Duration;

use petrel_proto::client::{ClientSession, Outgoing, SessionFailure, TransactionResult};
use petrel_proto::status;
use petrel_queue::status::{Cause, RouteProblem};
use petrel_queue::{DeliveryStatus, Envelope, QueueId, RecipientState, RemoteMta, Verdict};

use crate::client::stream::{connect_any, connect_unix};
use crate::client::{Broken, Connection, Quiet, Step, Stream, Timeouts, Work};
use crate::dsn::Action;
use crate::outcome::{Transport, apply_outcomes, outgoing};
use crate::remote::{Attempt, Outcome};
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
    let mta = RemoteMta {
        host: label.clone(),
        address: None,
    };
    let outcomes = match send(settings, server, &message, &mta).await {
        Ok(result) => result
            .recipients
            .iter()
            .map(|decided| {
                let status =
                    DeliveryStatus::from_reply(&decided.reply, decided.stage, Some(mta.clone()));
                Outcome::of(status)
            })
            .collect(),
        Err(broken) => {
            let code = match broken.cause {
                Cause::Connect(_) => status::NO_ANSWER_FROM_HOST,
                _ => status::BAD_CONNECTION,
            };
            let detail = format!("{label}: {}", broken.detail);
            let outcome = DeliveryStatus::decided(Verdict::Deferred, code, broken.cause, detail);
            vec![Outcome::of(outcome.at(mta)); indexes.len()]
        }
    };
    let attempt = Attempt {
        history: vec![format!("{label}: {} recipient(s)", indexes.len())],
        outcomes,
    };
    let successes = apply_outcomes(settings, envelope, &indexes, &attempt, now, Transport::Lmtp);
    crate::outcome::log_outcomes(id, envelope, &indexes, Transport::Lmtp);
    successes
}

/// One LMTP session: connect, LHLO, the transaction (no check: our own mailbox server takes
/// what we take), QUIT.
async fn send(
    settings: &DeliverySettings,
    server: &LmtpAddress,
    message: &Outgoing,
    mta: &RemoteMta,
) -> Result<TransactionResult, Broken> {
    let limit = Duration::from_secs(30);
    let stream = match server {
        LmtpAddress::Tcp(address) => Stream::Tcp(connect_any(address, limit).await?.0),
        LmtpAddress::Unix(path) => Stream::Unix(connect_unix(path, limit).await?),
    };
    let session = ClientSession::lmtp(&settings.helo_name);
    let mut connection = Connection::new(
        stream,
        mta.clone(),
        session,
        settings.tls_client.clone(),
        Timeouts::SMTP,
    );
    let work = Work::Send {
        message,
        is_checked: false,
    };
    let step = connection.run(work, &mut Quiet).await;
    match step? {
        Step::Sent(result) => {
            connection.quit_now().await;
            Ok(result)
        }
        Step::Unsendable(refusal) => Err(Broken {
            cause: Cause::Route(RouteProblem::Unsupported),
            detail: refusal.reason,
        }),
        Step::Failed(failure) => {
            let cause = connection.cause_of(&failure);
            let detail = match failure {
                SessionFailure::Greeting(reply)
                | SessionFailure::Hello(reply)
                | SessionFailure::Auth(reply) => reply.to_line(),
                SessionFailure::Protocol(reason) | SessionFailure::AuthUnavailable(reason) => {
                    reason
                }
            };
            Err(Broken { cause, detail })
        }
    }
}
