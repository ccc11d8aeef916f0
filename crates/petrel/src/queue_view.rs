//! What `petrel queue list` and `petrel queue show` print: one line per message, and the whole
//! story of one message (envelope, headers, each recipient's last reply explained from the
//! reference, or from its parts for a code the reference has no entry for, the history), in
//! text or JSON.

use petrel_catalogue::Lang;
use petrel_delivery::scheduler::unix_now;
use petrel_proto::trace::rfc5322_date;
use petrel_queue::{DeliveryStatus, Envelope, Place, Queue, QueueId, RecipientState};
use serde_json::json;

use crate::queue_cli::place_name;

/// `queue list`.
///
/// # Errors
/// When the queue cannot be read.
pub fn list(queue: &dyn Queue, is_json: bool) -> Result<String, String> {
    let now = unix_now();
    let mut rows = Vec::new();
    for place in [Place::Active, Place::Held] {
        for (id, envelope, size) in queue.summaries_in(place).map_err(|e| e.to_string())? {
            rows.push((id, place, envelope, size));
        }
    }
    if is_json {
        let items: Vec<_> = rows
            .iter()
            .map(|(id, place, envelope, size)| summary_json(id, *place, envelope, *size, now))
            .collect();
        return serde_json::to_string_pretty(&items)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string());
    }
    if rows.is_empty() {
        return Ok("the queue is empty\n".into());
    }
    let mut out = String::new();
    for (id, place, envelope, size) in &rows {
        let recipients: Vec<String> = envelope
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| format!("{} ({})", r.address, recipient_state(r, *place, now)))
            .collect();
        let next = envelope
            .pending()
            .map(|(_, r)| r.next_attempt_unix_seconds)
            .min()
            .filter(|n| *n > now && *place == Place::Active);
        out.push_str(&format!(
            "{id}  {:>6}  {:>8}  <{}>  {}{}\n",
            age(now.saturating_sub(envelope.arrival_unix_seconds)),
            size,
            envelope.reverse_path,
            recipients.join(", "),
            next.map(|n| format!("  next attempt {}", rfc5322_date(n as i64)))
                .unwrap_or_default()
        ));
    }
    Ok(out)
}

/// How a recipient stands: held, deferred, pending, delivered or failed.
pub fn recipient_state(
    recipient: &petrel_queue::Recipient,
    place: Place,
    now: u64,
) -> &'static str {
    match (place, recipient.state) {
        (Place::Held, RecipientState::Pending) => "held",
        (_, RecipientState::Pending) if recipient.next_attempt_unix_seconds > now => "deferred",
        (_, RecipientState::Pending) => "pending",
        (_, RecipientState::Delivered) => "delivered",
        (_, RecipientState::Failed) => "failed",
    }
}

fn summary_json(
    id: &QueueId,
    place: Place,
    envelope: &Envelope,
    size: usize,
    now: u64,
) -> serde_json::Value {
    json!({
        "id": id.as_str(),
        "place": place_name(place),
        "arrival": envelope.arrival_unix_seconds,
        "age_seconds": now.saturating_sub(envelope.arrival_unix_seconds),
        "size": size,
        "sender": envelope.reverse_path,
        "message_id": envelope.message_id,
        "recipients": envelope.recipients.iter().map(|r| json!({
            "address": r.address,
            "state": recipient_state(r, place, now),
            "attempts": r.attempts,
            "next_attempt": r.next_attempt_unix_seconds,
            "last": r.last.as_ref().map(last_json),
        })).collect::<Vec<_>>(),
    })
}

/// The typed last outcome, for `--json`.
fn last_json(last: &DeliveryStatus) -> serde_json::Value {
    json!({
        "outcome": last.verdict.as_str(),
        "status": last.code.to_string(),
        "cause": last.cause.to_word(),
        "detail": last.detail,
        "reply": last.reply.as_ref().map(|r| r.to_line()),
        "remote_mta": last.remote_mta.as_ref().map(|m| m.host.clone()),
        "remote_address": last.remote_mta.as_ref().and_then(|m| m.address).map(|a| a.to_string()),
    })
}

/// The lines under a recipient of `queue show`: the last outcome, its cause, the reply, the
/// host, and what the code means.
fn describe_last(last: &DeliveryStatus) -> String {
    let mut out = format!(
        "      last:       {} {} ({})\n",
        last.verdict.as_str(),
        last.code,
        last.cause.describe()
    );
    match &last.reply {
        Some(reply) => out.push_str(&format!("      last reply: {}\n", reply.to_line())),
        None => out.push_str(&format!("      detail:     {}\n", last.detail)),
    }
    if let Some(mta) = &last.remote_mta {
        out.push_str(&format!("      remote MTA: {mta}\n"));
    }
    if let Some(explained) = explain(&last.code.to_string()) {
        out.push_str(&format!("      means:      {explained}\n"));
    }
    out
}

/// `queue show ID` (a queue id, or a Message-ID with or without its angle brackets).
///
/// # Errors
/// When nothing matches.
pub fn show(queue: &dyn Queue, wanted: &str, is_json: bool) -> Result<String, String> {
    let (id, place, envelope) = find(queue, wanted).ok_or_else(|| {
        format!("no message {wanted:?} in the queue or its history (histories are kept for queue.keep_history)")
    })?;
    let message = queue.read_message_in(&id, place).ok();
    let now = unix_now();
    if is_json {
        let mut value = summary_json(
            &id,
            place,
            &envelope,
            message.as_ref().map_or(0, Vec::len),
            now,
        );
        value["history"] = json!(envelope.history);
        value["requiretls"] = json!(envelope.requires_tls);
        value["headers"] = json!(message.as_deref().map(headers));
        return serde_json::to_string_pretty(&value)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string());
    }
    let mut out = format!("Queue ID:   {id} ({})\n", place_name(place));
    out.push_str(&format!(
        "Arrived:    {} from {} (EHLO {})\n",
        rfc5322_date(envelope.arrival_unix_seconds as i64),
        envelope.client_address,
        envelope.client_helo
    ));
    out.push_str(&format!("Sender:     <{}>\n", envelope.reverse_path));
    if envelope.requires_tls {
        out.push_str("REQUIRETLS: yes (every hop verified TLS, or no delivery; RFC 8689)\n");
    }
    if let Some(message_id) = &envelope.message_id {
        out.push_str(&format!("Message-ID: {message_id}\n"));
    }
    out.push_str("Recipients:\n");
    for recipient in &envelope.recipients {
        out.push_str(&format!(
            "  {}  {}, {} attempt(s)\n",
            recipient.address,
            recipient_state(recipient, place, now),
            recipient.attempts
        ));
        if let Some(last) = &recipient.last {
            out.push_str(&describe_last(last));
        }
    }
    if let Some(message) = &message {
        out.push_str("Headers:\n");
        for line in headers(message).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("History:\n");
    for line in &envelope.history {
        out.push_str(&format!("  {line}\n"));
    }
    Ok(out)
}

/// The message a queue id or Message-ID names, wherever it is (active, held, history).
pub fn find(queue: &dyn Queue, wanted: &str) -> Option<(QueueId, Place, Envelope)> {
    if let Some(id) = QueueId::parse(&wanted.to_ascii_uppercase()) {
        for place in [Place::Active, Place::Held, Place::Done] {
            if let Ok(envelope) = queue.load_in(&id, place) {
                return Some((id, place, envelope));
            }
        }
        return None;
    }
    let bare = |text: &str| {
        text.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    };
    let wanted = bare(wanted);
    for place in [Place::Active, Place::Held, Place::Done] {
        for (id, envelope) in queue.envelopes_in(place).ok()? {
            if envelope
                .message_id
                .as_deref()
                .is_some_and(|m| bare(m) == wanted)
            {
                return Some((id, place, envelope));
            }
        }
    }
    None
}

/// "5.1.10 Recipient domain has a null MX: <meaning>" (`explained`).
pub fn explain(code: &str) -> Option<String> {
    let (title, meaning) = explained(code)?;
    Some(format!("{code} {title}: {meaning}"))
}

/// The title and meaning of `code` (English): the reference's entry, or for a code it has no
/// entry for (a provider's own detail such as 5.7.606) the explanation from its parts.
pub fn explained(code: &str) -> Option<(String, String)> {
    let meaning = petrel_catalogue::meaning::meaning_of(code, None, None, Lang::En)?;
    Some((meaning.title, meaning.meaning))
}

/// The header section of a message, with LF line ends.
pub fn headers(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .replace("\r\n", "\n")
}

/// An age in its largest unit: "45s", "12m", "3h", "2d".
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
