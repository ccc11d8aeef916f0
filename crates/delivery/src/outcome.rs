//! From outcomes to queue state: what each remote reply means for its recipient (delivered,
//! failed for good, or retried at the schedule's next time, then failed with 4.4.7 when too
//! old), the history line, and the one delivery status notification of a pass: recipients that
//! failed, that have waited past `delivery.delay_notice_after` (once each), and successes the
//! sender asked for with NOTIFY=SUCCESS (RFC 3461 §5.2, docs/conformance.md C-DSN-2).
//!
//! Pure apart from reading the reply-code reference for the bounce's explanations.

use petrel_catalogue::Lang;
use petrel_catalogue::meaning::meaning_of;
use petrel_proto::client::Outgoing;
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::status;
use petrel_proto::trace::rfc5322_date;
use petrel_queue::status::Cause;
use petrel_queue::{DeliveryStatus, Envelope, QueueId, Recipient, RecipientState, Verdict};

use crate::dsn::{Action, Advice, Report, ReportedRecipient, compose};
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
            requires_tls: envelope.requires_tls,
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

/// Records an attempt's outcomes in the envelope (C-RETRY-4: 4yz retries, 5yz fails); returns
/// the success notices owed: NOTIFY=SUCCESS recipients taken by a server without DSN, which
/// are `relayed` (a DSN-capable server got our NOTIFY and reports itself, RFC 3461 §5.2.2).
pub fn apply_outcomes(
    settings: &DeliverySettings,
    envelope: &mut Envelope,
    indexes: &[usize],
    attempt: &Attempt,
    now: u64,
    transport: Transport,
) -> Vec<(usize, Action)> {
    let mut successes = Vec::new();
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
        let mut last = outcome.status.clone();
        let summary = last.summary();
        let decision = match last.verdict {
            Verdict::Delivered => {
                recipient.state = RecipientState::Delivered;
                if wants_success_notice(recipient) {
                    match transport {
                        Transport::Lmtp => successes.push((index, Action::Delivered)),
                        Transport::Smtp if !outcome.hop_has_dsn => {
                            successes.push((index, Action::Relayed))
                        }
                        Transport::Smtp => {}
                    }
                }
                "delivered".to_owned()
            }
            Verdict::Failed => {
                recipient.state = RecipientState::Failed;
                "failed permanently; not retried".to_owned()
            }
            Verdict::Deferred => {
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
                        last = expired(last);
                        "failed: the message is older than delivery.max_age (4.4.7)".to_owned()
                    }
                }
            }
        };
        count(transport.as_str(), &last);
        recipient.last = Some(last);
        envelope.history.push(format!(
            "{date} {}: {summary} -> {decision}",
            recipient.address
        ));
    }
    successes
}

/// A deferral past `delivery.max_age` becomes a failure with 4.4.7 (C-RETRY-2), or 5.7.30 for
/// a REQUIRETLS message no hop could take (C-RTLS-2); the reply and host of the last attempt
/// stay for the DSN's `Diagnostic-Code:` and `Remote-MTA:`.
fn expired(last: DeliveryStatus) -> DeliveryStatus {
    let code = if last.code == status::REQUIRETLS_NEEDED {
        status::REQUIRETLS_NEEDED.as_permanent()
    } else {
        status::DELIVERY_TIME_EXPIRED
    };
    DeliveryStatus {
        verdict: Verdict::Failed,
        code,
        cause: Cause::Expired,
        detail: format!("too old to retry; last attempt: {}", last.summary()),
        ..last
    }
}

/// Counts the outcome for `/metrics`: every attempt by result, and what was not delivered by
/// its typed cause.
pub(crate) fn count(transport: &str, last: &DeliveryStatus) {
    let registry = petrel_metrics::registry();
    let result = match last.verdict {
        Verdict::Delivered => "delivered",
        Verdict::Failed => "bounced",
        Verdict::Deferred => "deferred",
    };
    registry.increment(
        petrel_metrics::RECIPIENT_OUTCOMES,
        &[("transport", transport), ("result", result)],
    );
    if last.verdict != Verdict::Delivered {
        registry.increment(
            petrel_metrics::DELIVERY_PROBLEMS,
            &[
                ("verdict", last.verdict.as_str()),
                ("cause", &last.cause.to_word()),
            ],
        );
    }
}

/// One log line per recipient with the typed outcome (`SMTP delivery outcome`, `LMTP delivery
/// outcome`): verdict, enhanced code, cause, host and detail.
pub(crate) fn log_outcomes(
    id: &QueueId,
    envelope: &Envelope,
    indexes: &[usize],
    transport: Transport,
) {
    let what = match transport {
        Transport::Smtp => "SMTP",
        Transport::Lmtp => "LMTP",
    };
    for recipient in indexes.iter().filter_map(|&i| envelope.recipients.get(i)) {
        let Some(last) = &recipient.last else {
            continue;
        };
        let mta = last.remote_mta.as_ref().map(ToString::to_string);
        tracing::info!(
            queue_id = %id,
            recipient = %recipient.address,
            outcome = %last.verdict.as_str(),
            status = %last.code,
            cause = %last.cause.to_word(),
            remote_mta = %mta.as_deref().unwrap_or(""),
            detail = %last.detail,
            "{what} delivery outcome"
        );
    }
}

/// How an attempt's outcomes were reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// To another MTA: success is "relayed" unless it offers DSN.
    Smtp,
    /// To the mailbox server: final delivery, success is "delivered".
    Lmtp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Smtp => "smtp",
            Transport::Lmtp => "lmtp",
        }
    }
}

/// NOTIFY=SUCCESS was given (never implied, RFC 3461 §4.1).
pub fn wants_success_notice(recipient: &Recipient) -> bool {
    recipient.notify.is_some_and(|n| n.on_success)
}

/// The DSN of this pass: newly failed recipients (unless NOTIFY excludes failures), recipients
/// pending past `delivery.delay_notice_after` for the first time (unless NOTIFY excludes
/// delays; they are marked so it is sent once), and `successes`. Never to the null sender
/// (C-BOUNCE-1).
pub fn notice_for(
    settings: &DeliverySettings,
    id: &QueueId,
    envelope: &mut Envelope,
    before: &[RecipientState],
    successes: &[(usize, Action)],
    message: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if envelope.reverse_path.is_empty() {
        return None;
    }
    let delay_due = (!settings.delay_notice_after.is_zero())
        .then(|| envelope.arrival_unix_seconds + settings.delay_notice_after.as_secs())
        .is_some_and(|due| now >= due);
    let mut reported: Vec<(usize, Action)> = Vec::new();
    for (index, (recipient, was)) in envelope.recipients.iter_mut().zip(before).enumerate() {
        let notify = recipient.notify;
        if recipient.state == RecipientState::Failed && *was != RecipientState::Failed {
            if notify.is_none_or(|n| n.on_failure) {
                reported.push((index, Action::Failed));
            }
        } else if recipient.state == RecipientState::Pending
            && delay_due
            && recipient.attempts > 0
            && !recipient.is_delay_notified
            && notify.is_none_or(|n| n.on_delay)
        {
            recipient.is_delay_notified = true;
            reported.push((index, Action::Delayed));
        } else if let Some((_, action)) = successes.iter().find(|(i, _)| *i == index)
            && recipient.state == RecipientState::Delivered
        {
            reported.push((index, *action));
        }
    }
    if reported.is_empty() {
        return None;
    }
    // Why, in English and in Indonesian (the reference's two languages): from the provider
    // knowledge when the receiving server's reply line is recognised, else the reference's
    // entry, else the code's parts (issue 17: a 5.7.606 is explained too).
    let explain = |status: &str, last: Option<&DeliveryStatus>| {
        let reply = last.and_then(|l| l.reply.as_ref()).map(|r| r.to_line());
        let host = last
            .and_then(|l| l.remote_mta.as_ref())
            .map(|m| m.host.as_str());
        [
            (Lang::En, "What it means", "What you can do"),
            (Lang::Id, "Artinya", "Yang dapat Anda lakukan"),
        ]
        .into_iter()
        .filter_map(|(lang, meaning_label, fix_label)| {
            let meaning = meaning_of(status, reply.as_deref(), host, lang)?;
            let fix = meaning.fix_sender.unwrap_or_else(|| match lang {
                Lang::En => format!("Forward this report to the administrator of your mail server; the code is {status}."),
                Lang::Id => format!("Teruskan laporan ini kepada administrator server surel Anda; kodenya {status}."),
            });
            Some(Advice {
                meaning_label,
                meaning: meaning.meaning,
                fix_label,
                fix,
            })
        })
        .collect()
    };
    let report = Report {
        hostname: &settings.hostname,
        queue_id: id.as_str(),
        to: &envelope.reverse_path,
        envelope_id: envelope.envelope_id.as_deref(),
        // C-RTLS-3: a notice about a REQUIRETLS message never carries its content, which
        // might travel back over a path with less protection (RFC 8689 §5).
        ret: if envelope.requires_tls {
            Some(petrel_proto::params::Ret::Headers)
        } else {
            envelope.ret
        },
        arrival_unix_seconds: i64::try_from(envelope.arrival_unix_seconds).unwrap_or(0),
        now_unix_seconds: i64::try_from(now).unwrap_or(0),
        retry_until_unix_seconds: i64::try_from(
            envelope.arrival_unix_seconds + settings.retry.max_age.as_secs(),
        )
        .ok(),
        recipients: reported
            .iter()
            .filter_map(|(index, action)| Some((envelope.recipients.get(*index)?, *action)))
            .map(|(r, action)| ReportedRecipient {
                address: &r.address,
                original: r.original_recipient.as_ref(),
                action,
                status: r.last.as_ref().map_or(
                    match action {
                        Action::Failed => status::PERMANENT_UNDEFINED,
                        Action::Delayed => status::TRANSIENT_UNDEFINED,
                        Action::Delivered | Action::Relayed => status::DELIVERED,
                    },
                    |last| last.code,
                ),
                last: r.last.as_ref(),
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
        requires_tls: false,
        ret: None,
        envelope_id: None,
        recipients: vec![Recipient::new(envelope.reverse_path.clone())],
        message_id: Some(format!("<{id}.dsn@{}>", settings.hostname)),
        history: vec![format!(
            "{} delivery status notification for {id} ({})",
            rfc5322_date(i64::try_from(now).unwrap_or(0)),
            summary(&reported)
        )],
    };
    Some((bounce, content))
}

/// `2 failed, 1 delayed`: how many recipients of each action a notice covers.
fn summary(reported: &[(usize, Action)]) -> String {
    let mut parts = Vec::new();
    for action in [
        Action::Failed,
        Action::Delayed,
        Action::Delivered,
        Action::Relayed,
    ] {
        let count = reported.iter().filter(|(_, a)| *a == action).count();
        if count > 0 {
            parts.push(format!("{count} {}", action.as_str()));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
