//! Receiving a finished message (its content in memory, or its head in memory and the rest in
//! a spill file: `spill`): the envelope record, the `Received:` header (S-TRACE-1,
//! S-TRACE-2), the message authentication step (a DKIM signature for mail we send out, or SPF,
//! DKIM and DMARC results in `Authentication-Results:` for mail from the Internet), and the
//! durable store, whose success alone earns the 250 (S-DATA-6).
//!
//! The store runs on a blocking thread; the reply is 250 with the queue id only after the queue
//! says the message, its envelope and the directory entry are on disk. Storage errors become
//! 452 4.3.1 (no space) or 451 4.3.0 and never stop the server.

use std::net::IpAddr;
use std::path::PathBuf;
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
    /// What the authentication step did, for the log line (`dkim=signed d=... s=...`,
    /// `spf=pass dkim=none dmarc=pass`, or why signing failed).
    pub authentication: Option<String>,
}

/// The authentication step a message gets.
#[derive(Debug, Clone, Copy)]
pub enum Authentication<'a> {
    None,
    /// Mail from an authenticated user, a relay network or local submission: signed when its
    /// From: domain has a key.
    Sign(&'a petrel_mailauth::Signer),
    /// Mail from the Internet on port 25: checked, and refused when `dmarc_reject` is on and
    /// DMARC says reject.
    Verify {
        verifier: &'a petrel_mailauth::Verifier,
        dmarc_reject: bool,
    },
}

/// Stores `message` from `client`; returns the reply to give.
pub async fn store_message(
    queue: Arc<dyn Queue>,
    mut message: Message,
    rest: Option<PathBuf>,
    context: &Receiving<'_>,
) -> Stored {
    let Receiving {
        client,
        hostname,
        is_submission,
        policy,
        authentication,
    } = *context;
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if is_submission {
        complete_submission(&mut message, hostname, unix_seconds);
    }
    let mut summary = None;
    let mut signer = None;
    match authentication {
        Authentication::None => {}
        Authentication::Sign(keys) => signer = (!keys.is_empty()).then_some(keys),
        Authentication::Verify {
            verifier,
            dmarc_reject,
        } => {
            let verdict = verify(verifier, &message, client, hostname).await;
            summary = Some(format!(
                "spf={} dkim={} dmarc={}",
                verdict.spf, verdict.dkim, verdict.dmarc
            ));
            if dmarc_reject && verdict.is_dmarc_reject {
                return Stored {
                    reply: standard::DMARC_REJECT.reply(),
                    queue_id: None,
                    error: None,
                    authentication: summary,
                };
            }
            remove_forged_results(&mut message.content, hostname);
            prepend(&mut message, &verdict.header);
        }
    }
    if let Some(keys) = signer {
        match keys.sign(&message.content) {
            Some(Ok(signature)) => {
                summary = Some(signature_summary(&signature));
                prepend(&mut message, &signature);
            }
            Some(Err(error)) => summary = Some(error.to_string()),
            None => {}
        }
    }
    let envelope = envelope_of(&message, client, policy, unix_seconds);
    let hostname = hostname.to_owned();
    // The write starts right here when the queue only queues it (the journal, the database's
    // own runtime), else on a blocking thread, which then returns; the group commit answers on
    // the channel once the message is durable, so no thread waits for the disk.
    let (durable, stored) = tokio::sync::oneshot::channel();
    let done: petrel_queue::StoreDone = Box::new(move |result| {
        let _ = durable.send(result);
    });
    let header = |id: &QueueId| trace_header(&message, client, &hostname, id, unix_seconds);
    let new_message = NewMessage {
        header: &header,
        content: &message.content,
        rest: rest.as_deref(),
    };
    let written = match queue.try_store_then(&envelope, &new_message, done) {
        None => Ok(()),
        Some(done) => {
            tokio::task::spawn_blocking(move || {
                let header =
                    |id: &QueueId| trace_header(&message, client, &hostname, id, unix_seconds);
                let new_message = NewMessage {
                    header: &header,
                    content: &message.content,
                    rest: rest.as_deref(),
                };
                queue.store_then(&envelope, &new_message, done);
            })
            .await
        }
    };
    let result = match written {
        Ok(()) => stored.await.map_err(|_| ()),
        Err(_) => Err(()),
    };
    match result {
        Ok(Ok(queue_id)) => Stored {
            reply: standard::QUEUED.with_text(format!("queued as {queue_id}")),
            queue_id: Some(queue_id),
            error: None,
            authentication: summary,
        },
        Ok(Err(error)) => Stored {
            reply: if matches!(error, QueueError::NoSpace) {
                standard::INSUFFICIENT_STORAGE.reply()
            } else {
                standard::LOCAL_ERROR.reply()
            },
            queue_id: None,
            error: Some(error),
            authentication: summary,
        },
        Err(_) => Stored {
            reply: standard::LOCAL_ERROR.reply(),
            queue_id: None,
            error: None,
            authentication: summary,
        },
    }
}

/// SPF, DKIM and DMARC of a message from the Internet (RFC 8601's authserv-id: our host name).
async fn verify(
    verifier: &petrel_mailauth::Verifier,
    message: &Message,
    client: IpAddr,
    hostname: &str,
) -> petrel_mailauth::Verdict {
    let mail_from = message.reverse_path.to_string();
    let mail_from = mail_from.trim_start_matches('<').trim_end_matches('>');
    verifier
        .verify(&petrel_mailauth::VerifyRequest {
            client,
            helo: &message.helo,
            mail_from,
            message: &message.content,
            authserv_id: hostname,
        })
        .await
}

/// `dkim=signed d=example.org s=petrel`, from a DKIM-Signature field.
fn signature_summary(signature: &str) -> String {
    let tag = |name: &str| {
        signature
            .split(';')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    format!("dkim=signed d={} s={}", tag("d"), tag("s"))
}

/// Drops `Authentication-Results:` fields that claim our authserv-id: only we may write those,
/// and a sender could forge a "pass" (RFC 8601 §5).
fn remove_forged_results(content: &mut Vec<u8>, hostname: &str) {
    let header_end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |p| p + 2);
    let mut kept = Vec::with_capacity(content.len());
    let mut is_dropping = false;
    for line in content[..header_end].split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if !is_dropping {
                kept.extend_from_slice(line);
            }
            continue;
        }
        is_dropping = claims_authserv_id(line, hostname);
        if !is_dropping {
            kept.extend_from_slice(line);
        }
    }
    if kept.len() != header_end {
        kept.extend_from_slice(&content[header_end..]);
        *content = kept;
    }
}

fn claims_authserv_id(line: &[u8], hostname: &str) -> bool {
    let text = String::from_utf8_lossy(line);
    let Some((name, value)) = text.split_once(':') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("authentication-results")
        && value
            .split(';')
            .next()
            .and_then(|id| id.split_whitespace().next())
            .is_some_and(|id| id.eq_ignore_ascii_case(hostname))
}

/// Puts a header field (with its CRLF) on top of the message.
fn prepend(message: &mut Message, field: &str) {
    let mut content = Vec::with_capacity(field.len() + message.content.len());
    content.extend_from_slice(field.as_bytes());
    content.extend_from_slice(&message.content);
    message.content = content;
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
    let mut envelope = plain_envelope(message, client, policy, unix_seconds);
    if let Some(rewritten) = srs_sender(&envelope, message, client, policy) {
        envelope.history.push(format!(
            "sender <{}> rewritten to <{rewritten}> for forwarding (SRS)",
            envelope.reverse_path
        ));
        envelope.reverse_path = rewritten;
    }
    envelope
}

/// The SRS sender of mail from the Internet that leaves again for another domain (an alias
/// forwarding it), so SPF passes at the next hop; `None` when nothing is forwarded, the sender
/// is null or ours, or the client is one of ours (relay networks, authenticated).
fn srs_sender(
    envelope: &Envelope,
    message: &Message,
    client: IpAddr,
    policy: &Policy,
) -> Option<String> {
    let srs = policy.srs.as_ref()?;
    let sender = &envelope.reverse_path;
    let (_, domain) = sender.rsplit_once('@')?;
    let is_ours = policy
        .local_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
        || domain.eq_ignore_ascii_case(&srs.domain);
    let is_our_client = message.authenticated_as.is_some() || policy.is_relay_client(client);
    let is_forwarded = envelope.recipients.iter().any(|r| {
        !r.address.eq_ignore_ascii_case("postmaster") && policy.local_address(&r.address).is_none()
    });
    (!is_ours && !is_our_client && is_forwarded)
        .then(|| srs.forward(sender, crate::policy::today()))
}

fn plain_envelope(
    message: &Message,
    client: IpAddr,
    policy: &Policy,
    unix_seconds: u64,
) -> Envelope {
    Envelope {
        arrival_unix_seconds: unix_seconds,
        client_address: client.to_string(),
        client_helo: message.helo.clone(),
        reverse_path: message.reverse_path.to_string(),
        body: message.parameters.body,
        is_smtputf8: message.parameters.is_smtputf8,
        requires_tls: message.parameters.requires_tls,
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
    /// DKIM signing or SPF/DKIM/DMARC checks.
    pub authentication: Authentication<'a>,
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
    // Only the header section is read (not the body: this runs several times per message).
    let end = if content.starts_with(b"\r\n") {
        0
    } else {
        content
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(content.len(), |at| at + 2)
    };
    let text = String::from_utf8_lossy(&content[..end]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_for_our_name_are_removed_and_others_kept() {
        let mut content = b"Authentication-Results: MX.test; spf=pass\r\n\tdkim=pass\r\nAuthentication-Results: other.example; spf=fail\r\nSubject: x\r\n\r\nAuthentication-Results: mx.test; in the body\r\n".to_vec();
        remove_forged_results(&mut content, "mx.test");
        assert_eq!(
            String::from_utf8(content).unwrap(),
            "Authentication-Results: other.example; spf=fail\r\nSubject: x\r\n\r\nAuthentication-Results: mx.test; in the body\r\n"
        );
        let mut untouched = b"Subject: y\r\n\r\nbody\r\n".to_vec();
        remove_forged_results(&mut untouched, "mx.test");
        assert_eq!(untouched, b"Subject: y\r\n\r\nbody\r\n");
    }
}
