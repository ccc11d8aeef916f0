//! From outcomes to queue state: what each remote reply means for its recipient (delivered,
//! failed for good, or retried at the schedule's next time, then failed with 4.4.7 when too
//! old), the history line, and the bounce for recipients that failed in this pass.
//!
//! Pure apart from reading the reply-code reference for the bounce's explanations.

use petrel_catalogue::{Catalogue, Lang};
use petrel_proto::client::Outgoing;
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::trace::rfc5322_date;
use petrel_queue::{Envelope, QueueId, Recipient, RecipientState};

use crate::dsn::{Action, Report, ReportedRecipient, compose};
use crate::remote::Attempt;
use crate::schedule::RetryDecision;
use crate::scheduler::DeliverySettings;

/// The message to send to the recipients at `indexes`.
pub fn outgoing(envelope: &Envelope, indexes: &[usize], message: &[u8]) -> Outgoing {
    Outgoing {
        reverse_path: envelope.reverse_path.clone(),
        parameters: MailParameters {
            size_bytes: None,
            body: envelope.body,
            is_smtputf8: envelope.is_smtputf8,
            ret: envelope.ret,
            envelope_id: envelope.envelope_id.clone(),
            auth: None,
        },
        recipients: indexes
            .iter()
            .filter_map(|&i| envelope.recipients.get(i))
            .map(|r| {
                (
                    r.address.clone(),
                    RcptParameters {
                        notify: r.notify,
                        original_recipient: r.original_recipient.clone(),
                    },
                )
            })
            .collect(),
        content: message.to_vec(),
    }
}

/// Records an attempt's outcomes in the envelope (C-RETRY-4: 4yz retries, 5yz fails).
pub fn apply_remote_outcomes(
    settings: &DeliverySettings,
    envelope: &mut Envelope,
    indexes: &[usize],
    attempt: &Attempt,
    now: u64,
) {
    let date = rfc5322_date(i64::try_from(now).unwrap_or(i64::MAX));
    for line in &attempt.history {
        envelope.history.push(format!("{date} {line}"));
    }
    let arrival = envelope.arrival_unix_seconds;
    for (&index, outcome) in indexes.iter().zip(&attempt.outcomes) {
        let Some(recipient) = envelope.recipients.get_mut(index) else {
            continue;
        };
        recipient.attempts = recipient.attempts.saturating_add(1);
        recipient.last_reply = Some(outcome.detail.clone());
        recipient.status = Some(outcome.status.to_string());
        recipient.remote_mta.clone_from(&outcome.remote_mta);
        let decision = if outcome.is_success {
            recipient.state = RecipientState::Delivered;
            "delivered".to_owned()
        } else if outcome.is_permanent {
            recipient.state = RecipientState::Failed;
            "failed permanently; not retried".to_owned()
        } else {
            match settings
                .retry
                .after_failure(arrival, recipient.attempts, now)
            {
                RetryDecision::RetryAt(next) => {
                    recipient.next_attempt_unix_seconds = next;
                    format!(
                        "deferred; retry at {}",
                        rfc5322_date(i64::try_from(next).unwrap_or(i64::MAX))
                    )
                }
                RetryDecision::Expire => {
                    recipient.state = RecipientState::Failed;
                    recipient.status = Some("4.4.7".into());
                    "failed: the message is older than delivery.max_age (4.4.7)".to_owned()
                }
            }
        };
        let result = match recipient.state {
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "bounced",
            RecipientState::Pending => "deferred",
        };
        petrel_metrics::registry().increment(
            petrel_metrics::RECIPIENT_OUTCOMES,
            &[("transport", "smtp"), ("result", result)],
        );
        envelope.history.push(format!(
            "{date} {}: {} -> {decision}",
            recipient.address, outcome.detail
        ));
    }
}

/// The bounce for recipients that failed in this pass, unless the sender is null or their
/// NOTIFY excludes failures.
pub fn bounce_for(
    settings: &DeliverySettings,
    id: &QueueId,
    envelope: &Envelope,
    before: &[RecipientState],
    message: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if envelope.reverse_path.is_empty() {
        return None;
    }
    let newly_failed: Vec<&Recipient> = envelope
        .recipients
        .iter()
        .zip(before)
        .filter(|(r, was)| r.state == RecipientState::Failed && **was != RecipientState::Failed)
        .map(|(r, _)| r)
        .filter(|r| r.notify.is_none_or(|n| n.on_failure))
        .collect();
    if newly_failed.is_empty() {
        return None;
    }
    let explain = |status: &str| {
        let catalogue = Catalogue::get().ok()?;
        let entry = catalogue.entry(status)?;
        let text = entry.text(Lang::En);
        Some((text.meaning.clone(), text.fix_sender.clone()))
    };
    let report = Report {
        hostname: &settings.hostname,
        queue_id: id.as_str(),
        to: &envelope.reverse_path,
        envelope_id: envelope.envelope_id.as_deref(),
        ret: envelope.ret,
        arrival_unix_seconds: i64::try_from(envelope.arrival_unix_seconds).unwrap_or(0),
        now_unix_seconds: i64::try_from(now).unwrap_or(0),
        retry_until_unix_seconds: None,
        recipients: newly_failed
            .iter()
            .map(|r| ReportedRecipient {
                address: &r.address,
                original: r.original_recipient.as_ref(),
                action: Action::Failed,
                status: r.status.as_deref().unwrap_or("5.0.0"),
                diagnostic: r
                    .last_reply
                    .as_deref()
                    .filter(|reply| reply.as_bytes().first().is_some_and(u8::is_ascii_digit)),
                remote_mta: r.remote_mta.as_deref(),
            })
            .collect(),
        message,
        explain: &explain,
    };
    let content = compose(&report);
    let bounce = Envelope {
        arrival_unix_seconds: now,
        client_address: "127.0.0.1".into(),
        client_helo: settings.hostname.clone(),
        reverse_path: String::new(),
        body: petrel_proto::params::Body::EightBitMime,
        is_smtputf8: false,
        ret: None,
        envelope_id: None,
        recipients: vec![Recipient::new(envelope.reverse_path.clone())],
        message_id: Some(format!("<{id}.dsn@{}>", settings.hostname)),
        history: vec![format!(
            "{} delivery status notification for {id} ({} recipient(s) failed)",
            rfc5322_date(i64::try_from(now).unwrap_or(0)),
            newly_failed.len()
        )],
    };
    Some((bounce, content))
}
