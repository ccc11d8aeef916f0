//! Receiving a finished message: the envelope record, the `Received:` header (S-TRACE-1,
//! S-TRACE-2), and the durable store, whose success alone earns the 250 (S-DATA-6).
//!
//! The store runs on a blocking thread; the reply is 250 with the queue id only after the queue
//! says the message, its envelope and the directory entry are on disk. Storage errors become
//! 452 4.3.1 (no space) or 451 4.3.0 and never stop the server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use petrel_proto::trace::{ReceivedFields, received_header};
use petrel_proto::{Message, Reply, standard};
use petrel_queue::{Envelope, NewMessage, Queue, QueueError, QueueId, Recipient};

use crate::policy::Policy;

/// The outcome of storing one message.
pub struct Stored {
    pub reply: Reply,
    pub queue_id: Option<QueueId>,
    pub error: Option<QueueError>,
}

/// Stores `message` from `client`; returns the reply to give.
pub async fn store_message(
    queue: Arc<dyn Queue>,
    mut message: Message,
    context: &Receiving<'_>,
) -> Stored {
    let Receiving {
        client,
        hostname,
        is_submission,
        policy,
    } = *context;
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if is_submission {
        complete_submission(&mut message, hostname, unix_seconds);
    }
    let envelope = envelope_of(&message, client, policy, unix_seconds);
    let hostname = hostname.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let header = |id: &QueueId| trace_header(&message, client, &hostname, id, unix_seconds);
        let new_message = NewMessage {
            header: &header,
            content: &message.content,
        };
        queue.store(&envelope, &new_message)
    })
    .await;
    match result {
        Ok(Ok(queue_id)) => Stored {
            reply: standard::QUEUED.with_text(format!("queued as {queue_id}")),
            queue_id: Some(queue_id),
            error: None,
        },
        Ok(Err(error)) => Stored {
            reply: if matches!(error, QueueError::NoSpace) {
                standard::INSUFFICIENT_STORAGE.reply()
            } else {
                standard::LOCAL_ERROR.reply()
            },
            queue_id: None,
            error: Some(error),
        },
        Err(_) => Stored {
            reply: standard::LOCAL_ERROR.reply(),
            queue_id: None,
            error: None,
        },
    }
}

fn trace_header(
    message: &Message,
    client: IpAddr,
    hostname: &str,
    queue_id: &QueueId,
    unix_seconds: u64,
) -> String {
    let base = match (message.is_esmtp, message.parameters.is_smtputf8) {
        (_, true) => "UTF8SMTP",
        (true, false) => "ESMTP",
        (false, false) => "SMTP",
    };
    // RFC 3848 and RFC 6531 §3.7: S for TLS, A for AUTH (ESMTPS, ESMTPA, ESMTPSA, UTF8SMTPSA).
    let with = format!(
        "{base}{}{}",
        if message.is_tls { "S" } else { "" },
        if message.authenticated_as.is_some() {
            "A"
        } else {
            ""
        }
    );
    let only_recipient = match message.recipients.as_slice() {
        [only] => Some(only.forward_path.to_string()),
        _ => None,
    };
    received_header(&ReceivedFields {
        helo: &message.helo,
        client_ip: &client.to_string(),
        by: hostname,
        with: &with,
        queue_id: queue_id.as_str(),
        for_recipient: only_recipient.as_deref(),
        unix_seconds: i64::try_from(unix_seconds).unwrap_or(i64::MAX),
    })
}

fn envelope_of(message: &Message, client: IpAddr, policy: &Policy, unix_seconds: u64) -> Envelope {
    Envelope {
        arrival_unix_seconds: unix_seconds,
        client_address: client.to_string(),
        client_helo: message.helo.clone(),
        reverse_path: message.reverse_path.to_string(),
        body: message.parameters.body,
        is_smtputf8: message.parameters.is_smtputf8,
        ret: message.parameters.ret,
        envelope_id: message.parameters.envelope_id.clone(),
        recipients: unique(
            message
                .recipients
                .iter()
                .flat_map(|rcpt| expanded(policy, rcpt)),
        ),
        message_id: header_value(&message.content, "message-id"),
        history: vec![format!(
            "{} received from {} ({}) with {} recipient(s)",
            petrel_proto::trace::rfc5322_date(i64::try_from(unix_seconds).unwrap_or(i64::MAX)),
            message.helo,
            client,
            message.recipients.len()
        )],
    }
}

/// What a message is received with.
#[derive(Debug, Clone, Copy)]
pub struct Receiving<'a> {
    pub client: IpAddr,
    pub hostname: &'a str,
    /// Submission (587/465, local submission): Date and Message-ID are added when missing.
    pub is_submission: bool,
    /// For alias expansion.
    pub policy: &'a Policy,
}

/// The queue recipients of one RCPT: itself, or its aliases' final targets, each remembering
/// the address the client gave (ORCPT, RFC 3461 §4.2) when it differs.
fn expanded(policy: &Policy, rcpt: &petrel_proto::session::RcptRequest) -> Vec<Recipient> {
    let address = rcpt.forward_path.to_string();
    policy
        .expand(&address)
        .into_iter()
        .map(|target| {
            let original = rcpt.parameters.original_recipient.clone().or_else(|| {
                (target != address).then(|| petrel_proto::params::OriginalRecipient {
                    address_type: "rfc822".into(),
                    address: address.clone(),
                })
            });
            Recipient {
                notify: rcpt.parameters.notify,
                original_recipient: original,
                ..Recipient::new(target)
            }
        })
        .collect()
}

/// Each address once (an alias and a direct RCPT may name the same mailbox).
fn unique(recipients: impl Iterator<Item = Recipient>) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for recipient in recipients {
        if !out
            .iter()
            .any(|r| r.address.eq_ignore_ascii_case(&recipient.address))
        {
            out.push(recipient);
        }
    }
    out
}

/// Submission adds a missing `Date:` and `Message-ID:` (RFC 6409 §8.2-8.3, S-SUB-3).
fn complete_submission(message: &mut Message, hostname: &str, unix_seconds: u64) {
    let mut added = String::new();
    if header_value(&message.content, "date").is_none() {
        let date =
            petrel_proto::trace::rfc5322_date(i64::try_from(unix_seconds).unwrap_or(i64::MAX));
        added.push_str(&format!("Date: {date}\r\n"));
    }
    if header_value(&message.content, "message-id").is_none() {
        let unique = QueueId::generate(SystemTime::now());
        added.push_str(&format!("Message-ID: <{unique}@{hostname}>\r\n"));
    }
    if !added.is_empty() {
        let mut content = added.into_bytes();
        content.extend_from_slice(&message.content);
        message.content = content;
    }
}

/// The value of the first header field called `name` (case-insensitive), unfolded and trimmed.
fn header_value(content: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(content);
    let mut lines = text
        .split("\r\n")
        .take_while(|line| !line.is_empty())
        .peekable();
    while let Some(line) = lines.next() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if field.trim().eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_owned();
            while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
            }
            return Some(value).filter(|v| !v.is_empty());
        }
    }
    None
}
