//! The envelope record: the versioned, line-based text format of an `.env` file, readable with
//! `cat`.
//!
//! Format (version 2), one `key value` per line, LF-terminated, ASCII only:
//! ```text
//! petrel-envelope 2
//! id 0654A1B2C3D4E0001
//! arrival 1767225600
//! client-address 127.0.0.1
//! helo mail.example.org
//! reverse-path alice@example.org
//! body 8BITMIME
//! smtputf8 no
//! requiretls yes
//! ret HDRS
//! envid abc+2Bdef
//! rcpt bob@example.net state=pending attempts=1 next=1767226200 notify=SUCCESS,FAILURE orcpt=rfc822;bob@example.net outcome=deferred status=4.4.3 cause=dns-servfail detail=MX+20lookup+20failed
//! rcpt carol@example.net state=failed attempts=1 next=0 outcome=failed status=5.1.1 cause=reply-rcpt detail=550+205.1.1+20no+20such+20user reply-code=550 reply-status=5.1.1 reply-line=no+20such+20user mta=mx.example.net mta-address=192.0.2.1
//! end
//! ```
//! The last outcome of a recipient (`queue::status`) is `outcome`, `status` (its enhanced
//! code), `cause` (a `Cause` word), `detail`, then the reply that decided it, if any (its code,
//! enhanced code and one `reply-line` per line, in order) and the host (`mta`, `mta-address`).
//! Version 1 records (no typed outcome: `reply=`, `status=` and `remote-mta=` as text) are still
//! read; their outcome's cause is `unknown`.
//! Every free-text value (client address, helo, reverse path, envid, recipient address, ORCPT
//! type and address, the outcome's detail, reply lines and host) is written as xtext (RFC 3461
//! §4) with `;` also escaped, so it never holds a space, `=`, `;` or a non-ASCII byte; an empty
//! value leaves the key alone on its line. `requiretls` (RFC 8689), `ret`, `envid` and the `notify`, `orcpt` and outcome
//! attributes are omitted when absent; a record without any outcome is written as version 1,
//! which says the same.
//! `notify=` lists the set flags in the order NEVER,SUCCESS,FAILURE,DELAY (possibly none).
//! `delay-notified=yes` marks a recipient whose sender already got its delay notice.
//! The last line is `end`, so a truncated file is detected.
//!
//! Contract: `decode(&encode(id, e)) == Ok((id, e))` for every envelope.
//!
//! Failure policy: `decode` reads bytes from disk that may be damaged; it never panics and
//! refuses a wrong version, an unknown or repeated key, a missing required key, a bad value and
//! anything after `end`, naming the line.

use std::fmt;

use petrel_proto::params::{Body, Notify, OriginalRecipient, Ret, parse_decimal};
use petrel_proto::xtext;

use crate::envelope::{Envelope, Recipient, RecipientState};
use crate::id::QueueId;
use crate::status::DeliveryStatus;

/// The first word of every record.
const MAGIC: &str = "petrel-envelope";
/// The record version this code writes.
const VERSION: &str = "2";
/// The version before typed outcomes, still read.
const VERSION_1: &str = "1";

/// Why an envelope record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The 1-based line the problem was found on.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for RecordError {}

/// Renders the record of envelope `envelope` of message `id`.
pub fn encode(id: &QueueId, envelope: &Envelope) -> Vec<u8> {
    // Without an outcome the two versions say the same: version 1 keeps fresh mail readable
    // by a petrel of the previous release (a node of a shared queue not yet upgraded).
    let is_version_1 = envelope.recipients.iter().all(|r| r.last.is_none());
    let version = if is_version_1 { VERSION_1 } else { VERSION };
    let mut out = format!("{MAGIC} {version}\n");
    push_line(&mut out, "id", id.as_str());
    push_line(
        &mut out,
        "arrival",
        &envelope.arrival_unix_seconds.to_string(),
    );
    push_line(
        &mut out,
        "client-address",
        &escape(&envelope.client_address),
    );
    push_line(&mut out, "helo", &escape(&envelope.client_helo));
    push_line(&mut out, "reverse-path", &escape(&envelope.reverse_path));
    push_line(&mut out, "body", envelope.body.as_str());
    push_line(
        &mut out,
        "smtputf8",
        if envelope.is_smtputf8 { "yes" } else { "no" },
    );
    if envelope.requires_tls {
        push_line(&mut out, "requiretls", "yes");
    }
    if let Some(ret) = envelope.ret {
        push_line(&mut out, "ret", ret.as_str());
    }
    if let Some(envelope_id) = &envelope.envelope_id {
        push_line(&mut out, "envid", &escape(envelope_id));
    }
    for recipient in &envelope.recipients {
        push_line(&mut out, "rcpt", &encode_recipient(recipient));
    }
    if let Some(message_id) = &envelope.message_id {
        push_line(&mut out, "message-id", &escape(message_id));
    }
    for event in &envelope.history {
        push_line(&mut out, "history", &escape(event));
    }
    out.push_str("end\n");
    out.into_bytes()
}

fn push_line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    if !value.is_empty() {
        out.push(' ');
        out.push_str(value);
    }
    out.push('\n');
}

/// xtext with `;` escaped too, so `orcpt=type;address` splits unambiguously.
fn escape(value: &str) -> String {
    xtext::encode(value.as_bytes()).replace(';', "+3B")
}

fn unescape(value: &str) -> Option<String> {
    xtext::decode(value).and_then(|bytes| String::from_utf8(bytes).ok())
}

fn encode_recipient(recipient: &Recipient) -> String {
    let mut line = format!(
        "{} state={} attempts={} next={}",
        escape(&recipient.address),
        recipient.state.as_str(),
        recipient.attempts,
        recipient.next_attempt_unix_seconds
    );
    if let Some(notify) = &recipient.notify {
        line.push_str(" notify=");
        line.push_str(&render_notify(notify));
    }
    if let Some(original) = &recipient.original_recipient {
        line.push_str(" orcpt=");
        line.push_str(&escape(&original.address_type));
        line.push(';');
        line.push_str(&escape(&original.address));
    }
    if let Some(last) = &recipient.last {
        encode_outcome(&mut line, last);
    }
    if recipient.is_delay_notified {
        line.push_str(" delay-notified=yes");
    }
    line
}

fn encode_outcome(line: &mut String, last: &DeliveryStatus) {
    let mut push = |key: &str, value: &str| {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(value);
    };
    push("outcome", last.verdict.as_str());
    push("status", &last.code.to_string());
    push("cause", &last.cause.to_word());
    push("detail", &escape(&last.detail));
    if let Some(reply) = &last.reply {
        push("reply-code", &reply.code.to_string());
        if let Some(enhanced) = reply.enhanced {
            push("reply-status", &enhanced.to_string());
        }
        for text in &reply.lines {
            push("reply-line", &escape(text));
        }
    }
    if let Some(remote_mta) = &last.remote_mta {
        push("mta", &escape(&remote_mta.host));
        if let Some(address) = remote_mta.address {
            push("mta-address", &address.to_string());
        }
    }
}

const NOTIFY_WORDS: [&str; 4] = ["NEVER", "SUCCESS", "FAILURE", "DELAY"];

fn notify_flags(notify: &mut Notify) -> [&mut bool; 4] {
    [
        &mut notify.is_never,
        &mut notify.on_success,
        &mut notify.on_failure,
        &mut notify.on_delay,
    ]
}

/// Lists every set flag (unlike `Notify::render`, which drops the others after NEVER), so any
/// `Notify` value round-trips.
fn render_notify(notify: &Notify) -> String {
    let mut copy = *notify;
    let words: Vec<&str> = NOTIFY_WORDS
        .iter()
        .zip(notify_flags(&mut copy))
        .filter(|(_, flag)| **flag)
        .map(|(word, _)| *word)
        .collect();
    words.join(",")
}

fn parse_notify(value: &str) -> Option<Notify> {
    let mut notify = Notify::default();
    if value.is_empty() {
        return Some(notify);
    }
    for word in value.split(',') {
        let index = NOTIFY_WORDS.iter().position(|known| *known == word)?;
        let flag = notify_flags(&mut notify).into_iter().nth(index)?;
        if *flag {
            return None;
        }
        *flag = true;
    }
    Some(notify)
}

/// The header fields seen so far; each may appear once.
#[derive(Default)]
struct Fields {
    id: Option<QueueId>,
    arrival: Option<u64>,
    client_address: Option<String>,
    helo: Option<String>,
    reverse_path: Option<String>,
    body: Option<Body>,
    is_smtputf8: Option<bool>,
    requires_tls: Option<bool>,
    ret: Option<Ret>,
    envelope_id: Option<String>,
    recipients: Vec<Recipient>,
    message_id: Option<String>,
    history: Vec<String>,
}

/// Parses a record written by [`encode`].
///
/// # Errors
/// A [`RecordError`] naming the first offending line: wrong magic or version, a line that is
/// not ASCII, an unknown, repeated or missing key, a malformed value, a missing `end` (a
/// truncated file) or data after it.
pub fn decode(bytes: &[u8]) -> Result<(QueueId, Envelope), RecordError> {
    let error = |line: usize, reason: &str| RecordError {
        line,
        reason: reason.to_owned(),
    };
    if bytes.is_empty() {
        return Err(error(1, "empty record"));
    }
    let line_count = bytes.split(|b| *b == b'\n').count();
    let Some(content) = bytes.strip_suffix(b"\n") else {
        return Err(error(
            line_count,
            "last line not terminated: record truncated",
        ));
    };
    let mut fields = Fields::default();
    let mut version = Version::Current;
    let mut is_ended = false;
    for (index, raw) in content.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        if is_ended {
            return Err(error(number, "data after end"));
        }
        let line = std::str::from_utf8(raw)
            .ok()
            .filter(|line| line.is_ascii())
            .ok_or_else(|| error(number, "line is not ASCII"))?;
        if number == 1 {
            version = check_magic(line).map_err(|reason| error(number, &reason))?;
        } else if line == "end" {
            is_ended = true;
        } else {
            parse_line(&mut fields, version, line).map_err(|reason| error(number, &reason))?;
        }
    }
    if !is_ended {
        return Err(error(line_count, "missing end line: record truncated"));
    }
    finish(fields).map_err(|reason| error(line_count - 1, &reason))
}

fn check_magic(line: &str) -> Result<Version, String> {
    match line.split_once(' ') {
        Some((MAGIC, VERSION)) => Ok(Version::Current),
        Some((MAGIC, VERSION_1)) => Ok(Version::One),
        Some((MAGIC, version)) => Err(format!("unsupported record version {version:?}")),
        _ => Err(format!(
            "not an envelope record (expected \"{MAGIC} {VERSION}\")"
        )),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: Option<T>, key: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{key} given twice"));
    }
    *slot = Some(value.ok_or_else(|| format!("malformed value of {key}"))?);
    Ok(())
}

fn parse_line(fields: &mut Fields, version: Version, line: &str) -> Result<(), String> {
    let (key, value) = line.split_once(' ').unwrap_or((line, ""));
    match key {
        "id" => set_once(&mut fields.id, QueueId::parse(value), key),
        "arrival" => set_once(&mut fields.arrival, parse_decimal(value), key),
        "client-address" => set_once(&mut fields.client_address, unescape(value), key),
        "helo" => set_once(&mut fields.helo, unescape(value), key),
        "reverse-path" => set_once(&mut fields.reverse_path, unescape(value), key),
        "body" => set_once(&mut fields.body, Body::parse(value), key),
        "smtputf8" => {
            let flag = match value {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            };
            set_once(&mut fields.is_smtputf8, flag, key)
        }
        "requiretls" => set_once(
            &mut fields.requires_tls,
            (value == "yes").then_some(true),
            key,
        ),
        "ret" => set_once(&mut fields.ret, Ret::parse(value), key),
        "envid" => set_once(&mut fields.envelope_id, unescape(value), key),
        "rcpt" => {
            fields.recipients.push(parse_recipient(value, version)?);
            Ok(())
        }
        "message-id" => set_once(&mut fields.message_id, unescape(value), key),
        "history" => {
            fields
                .history
                .push(unescape(value).ok_or("malformed history line")?);
            Ok(())
        }
        _ => Err(format!("unknown key {key:?}")),
    }
}

fn parse_recipient(value: &str, version: Version) -> Result<Recipient, String> {
    let mut words = value.split(' ');
    let address = words.next().unwrap_or("");
    let address = unescape(address).ok_or("malformed recipient address")?;
    let mut state = None;
    let mut attempts = None;
    let mut next = None;
    let mut notify = None;
    let mut original_recipient = None;
    let mut delay_notified = None;
    let mut outcome = OutcomeFields::default();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("recipient attribute {word:?} has no value"))?;
        match key {
            "state" => set_once(&mut state, RecipientState::parse(value), key)?,
            "attempts" => {
                let count = parse_decimal(value).and_then(|n| u32::try_from(n).ok());
                set_once(&mut attempts, count, key)?;
            }
            "next" => set_once(&mut next, parse_decimal(value), key)?,
            "notify" => set_once(&mut notify, parse_notify(value), key)?,
            "orcpt" => set_once(&mut original_recipient, parse_orcpt(value), key)?,
            "delay-notified" => {
                set_once(&mut delay_notified, (value == "yes").then_some(true), key)?
            }
            _ => outcome.parse(version, key, value)?,
        }
    }
    let missing = |key: &str| format!("recipient without {key}");
    let state = state.ok_or_else(|| missing("state"))?;
    Ok(Recipient {
        address,
        notify,
        original_recipient,
        state,
        attempts: attempts.ok_or_else(|| missing("attempts"))?,
        next_attempt_unix_seconds: next.ok_or_else(|| missing("next"))?,
        last: outcome.finish(version, state)?,
        is_delay_notified: delay_notified.unwrap_or(false),
    })
}

fn parse_orcpt(value: &str) -> Option<OriginalRecipient> {
    let (address_type, address) = value.split_once(';')?;
    Some(OriginalRecipient {
        address_type: unescape(address_type)?,
        address: unescape(address)?,
    })
}

fn finish(fields: Fields) -> Result<(QueueId, Envelope), String> {
    let missing = |key: &str| format!("missing {key}");
    let id = fields.id.ok_or_else(|| missing("id"))?;
    let envelope = Envelope {
        arrival_unix_seconds: fields.arrival.ok_or_else(|| missing("arrival"))?,
        client_address: fields
            .client_address
            .ok_or_else(|| missing("client-address"))?,
        client_helo: fields.helo.ok_or_else(|| missing("helo"))?,
        reverse_path: fields.reverse_path.ok_or_else(|| missing("reverse-path"))?,
        body: fields.body.ok_or_else(|| missing("body"))?,
        is_smtputf8: fields.is_smtputf8.ok_or_else(|| missing("smtputf8"))?,
        requires_tls: fields.requires_tls.unwrap_or(false),
        ret: fields.ret,
        envelope_id: fields.envelope_id,
        recipients: fields.recipients,
        message_id: fields.message_id,
        history: fields.history,
    };
    Ok((id, envelope))
}

/// The record version being read: attributes of the recipient outcome differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Version 1: the outcome as text (`reply=`, `status=`, `remote-mta=`).
    One,
    /// Version 2: the typed outcome.
    Current,
}

#[path = "record_outcome.rs"]
mod outcome;
use outcome::OutcomeFields;

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
