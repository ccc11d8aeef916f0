//! Delivery status notifications (RFC 3464, RFC 6522, RFC 5321 §6.1; docs/conformance.md §14):
//! one multipart/report per message and pass covering its recipients that failed, are delayed,
//! were delivered or were relayed to a server without DSN (RFC 3461 §5.2.2), with a human part
//! that says in plain words what each reply means and what the sender can do, in English and
//! Indonesian (the reference's two languages).
//!
//! Pure: the time, the ids and the explanation lookup come in as arguments. The caller decides
//! who gets a bounce (never the null sender, C-BOUNCE-1; NOTIFY honoured, C-DSN-2).

use petrel_proto::EnhancedCode;
use petrel_proto::params::{OriginalRecipient, Ret};
use petrel_proto::trace::rfc5322_date;
use petrel_queue::DeliveryStatus;

/// The Action of a per-recipient report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// Delivered here (Maildir, LMTP) with NOTIFY=SUCCESS.
    Delivered,
    /// Handed to a server that does not offer DSN, with NOTIFY=SUCCESS: our last word.
    Relayed,
}

impl Action {
    /// The `Action:` value (RFC 3464 §2.3.3).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The human part's opening for the recipients with this action.
    fn intro(self) -> &'static str {
        match self {
            Action::Failed => {
                "Your message could not be delivered to the recipients below. It will not be\r\nretried. The reason for each, and what you can do:\r\n"
            }
            Action::Delayed => {
                "Your message has not been delivered yet to the recipients below. It is still\r\nbeing retried; you do not need to send it again.\r\n"
            }
            Action::Delivered => {
                "Your message was delivered to the recipients below, as you asked to be told.\r\n"
            }
            Action::Relayed => {
                "Your message was passed on to a server that does not send delivery notices, for\r\nthe recipients below; this is the last notice you will get about them.\r\n"
            }
        }
    }
}

/// One recipient the report is about.
#[derive(Debug, Clone)]
pub struct ReportedRecipient<'a> {
    pub address: &'a str,
    pub original: Option<&'a OriginalRecipient>,
    pub action: Action,
    /// Enhanced status, e.g. `5.1.10`.
    pub status: EnhancedCode,
    /// The outcome of the last attempt, when there was one: its reply is the
    /// `Diagnostic-Code:`, its host the `Remote-MTA:`, its cause the human part's reason.
    pub last: Option<&'a DeliveryStatus>,
}

/// Plain-language help for a status in one language: what it means and what the sender can
/// do, each with its label in that language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub meaning_label: &'static str,
    pub meaning: String,
    pub fix_label: &'static str,
    pub fix: String,
}

/// The advice for a status, in each language the report gives (none when unknown), given the
/// recipient's last delivery status when there is one (the remote reply and host say more).
pub type Explain<'a> = &'a dyn Fn(&str, Option<&DeliveryStatus>) -> Vec<Advice>;

/// Everything a report is built from.
pub struct Report<'a> {
    pub hostname: &'a str,
    pub queue_id: &'a str,
    /// The original reverse path, who gets the report.
    pub to: &'a str,
    pub envelope_id: Option<&'a str>,
    pub ret: Option<Ret>,
    pub arrival_unix_seconds: i64,
    pub now_unix_seconds: i64,
    /// For delayed reports: until when we keep trying.
    pub retry_until_unix_seconds: Option<i64>,
    pub recipients: Vec<ReportedRecipient<'a>>,
    /// The original message (CR LF).
    pub message: &'a [u8],
    pub explain: Explain<'a>,
}

/// Renders the report as a message ready to queue (CR LF line ends).
pub fn compose(report: &Report<'_>) -> Vec<u8> {
    let boundary = format!("{}/{}", report.queue_id, report.hostname);
    let has = |action: Action| report.recipients.iter().any(|r| r.action == action);
    let subject = if has(Action::Failed) {
        "Undelivered Mail Returned to Sender"
    } else if has(Action::Delayed) {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    let mut out = String::new();
    out.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        report.hostname
    ));
    out.push_str(&format!("To: <{}>\r\n", report.to));
    out.push_str(&format!("Subject: {subject}\r\n"));
    out.push_str(&format!(
        "Date: {}\r\n",
        rfc5322_date(report.now_unix_seconds)
    ));
    out.push_str(&format!(
        "Message-ID: <{}.dsn@{}>\r\n",
        report.queue_id, report.hostname
    ));
    out.push_str("MIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    out.push_str(&human_part(report));
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    out.push_str(&status_part(report));
    out.push_str(&format!("\r\n--{boundary}\r\n"));
    let mut bytes = out.into_bytes();
    if report.ret == Some(Ret::Full) {
        bytes.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        bytes.extend_from_slice(report.message);
    } else {
        bytes.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n\r\n");
        bytes.extend_from_slice(header_section(report.message));
    }
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

fn human_part(report: &Report<'_>) -> String {
    let mut text = format!("This is the mail system at {}.\r\n", report.hostname);
    for action in [
        Action::Failed,
        Action::Delayed,
        Action::Delivered,
        Action::Relayed,
    ] {
        let group: Vec<&ReportedRecipient<'_>> = report
            .recipients
            .iter()
            .filter(|r| r.action == action)
            .collect();
        if group.is_empty() {
            continue;
        }
        text.push_str("\r\n");
        text.push_str(action.intro());
        if action == Action::Delayed
            && let Some(until) = report.retry_until_unix_seconds
        {
            text.push_str(&format!(
                "We will keep trying until {}.\r\n",
                rfc5322_date(until)
            ));
        }
        for recipient in group {
            text.push_str(&format!("\r\n<{}>\r\n", recipient.address));
            let last = recipient.last;
            match (last.and_then(|l| l.reply.as_ref()), last) {
                (Some(reply), _) => text.push_str(&format!(
                    "    The receiving server said: {}\r\n",
                    reply.to_line()
                )),
                (None, Some(last)) if action != Action::Delivered => text.push_str(&format!(
                    "    Status: {} ({}): {}\r\n",
                    recipient.status,
                    last.cause.describe(),
                    last.detail
                )),
                (None, _) => text.push_str(&format!("    Status: {}\r\n", recipient.status)),
            }
            let is_trouble = matches!(action, Action::Failed | Action::Delayed);
            let status = recipient.status.to_string();
            if is_trouble {
                for advice in (report.explain)(&status, recipient.last) {
                    text.push_str(&format!(
                        "    {}: {}\r\n",
                        advice.meaning_label, advice.meaning
                    ));
                    text.push_str(&format!("    {}: {}\r\n", advice.fix_label, advice.fix));
                }
            }
        }
    }
    text
}

fn status_part(report: &Report<'_>) -> String {
    let mut text = format!("Reporting-MTA: dns; {}\r\n", report.hostname);
    if let Some(envid) = report.envelope_id {
        text.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
    }
    text.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(report.arrival_unix_seconds)
    ));
    for recipient in &report.recipients {
        text.push_str("\r\n");
        text.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            recipient.address
        ));
        if let Some(original) = recipient.original {
            text.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                original.address_type, original.address
            ));
        }
        text.push_str(&format!("Action: {}\r\n", recipient.action.as_str()));
        text.push_str(&format!("Status: {}\r\n", recipient.status));
        let last = recipient.last;
        if let Some(mta) = last.and_then(|l| l.remote_mta.as_ref()) {
            text.push_str(&format!("Remote-MTA: dns; {}\r\n", mta.host));
        }
        if let Some(reply) = last.and_then(|l| l.reply.as_ref()) {
            text.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", reply.to_line()));
        }
        text.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            rfc5322_date(report.now_unix_seconds)
        ));
        if recipient.action == Action::Delayed
            && let Some(until) = report.retry_until_unix_seconds
        {
            text.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until)));
        }
    }
    text
}

/// The header section of a message, up to and including its blank line.
fn header_section(message: &[u8]) -> &[u8] {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message, |end| &message[..end + 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_bounce_3_4_5_structure() {
        let original = OriginalRecipient {
            address_type: "rfc822".into(),
            address: "b@example.net".into(),
        };
        let explain = |status: &str, _: Option<&DeliveryStatus>| {
            let advice = |meaning_label, meaning: &str, fix_label, fix: &str| Advice {
                meaning_label,
                meaning: meaning.to_owned(),
                fix_label,
                fix: fix.to_owned(),
            };
            if status != "5.1.10" {
                return Vec::new();
            }
            vec![
                advice(
                    "What it means",
                    "The domain takes no mail.",
                    "What you can do",
                    "Use another address.",
                ),
                advice(
                    "Artinya",
                    "Domain itu tidak menerima surel.",
                    "Yang dapat Anda lakukan",
                    "Gunakan alamat lain.",
                ),
            ]
        };
        let report = Report {
            hostname: "mx.test",
            queue_id: "ABC",
            to: "a@example.org",
            envelope_id: Some("env-1"),
            ret: None,
            arrival_unix_seconds: 0,
            now_unix_seconds: 60,
            retry_until_unix_seconds: None,
            recipients: vec![ReportedRecipient {
                address: "b@nullmx.test",
                original: Some(&original),
                action: Action::Failed,
                status: petrel_proto::status::NULL_MX,
                last: None,
            }],
            message: b"Subject: hello\r\nFrom: a@example.org\r\n\r\nsecret body\r\n",
            explain: &explain,
        };
        let text = String::from_utf8(compose(&report)).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"));
        assert!(text.contains("Reporting-MTA: dns; mx.test\r\nOriginal-Envelope-Id: env-1\r\nArrival-Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"));
        assert!(text.contains("Final-Recipient: rfc822; b@nullmx.test\r\nOriginal-Recipient: rfc822; b@example.net\r\nAction: failed\r\nStatus: 5.1.10\r\n"));
        assert!(text.contains("What it means: The domain takes no mail.\r\n    What you can do: Use another address.\r\n    Artinya: Domain itu tidak menerima surel.\r\n"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"));
        assert!(!text.contains("secret body"), "RET absent: headers only");
        assert!(text.ends_with("--ABC/mx.test--\r\n"));
        assert!(
            !text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'),
            "CR LF only"
        );
    }

    #[test]
    fn c_dsn_2_success_and_delay_actions() {
        let explain = |_: &str, _: Option<&DeliveryStatus>| {
            vec![Advice {
                meaning_label: "What it means",
                meaning: "means".to_owned(),
                fix_label: "What you can do",
                fix: "fix".to_owned(),
            }]
        };
        let recipient = |address, action, status: &str| ReportedRecipient {
            address,
            original: None,
            action,
            status: EnhancedCode::parse(status).unwrap(),
            last: None,
        };
        let report = Report {
            hostname: "mx.test",
            queue_id: "ABC",
            to: "a@example.org",
            envelope_id: None,
            ret: None,
            arrival_unix_seconds: 0,
            now_unix_seconds: 60,
            retry_until_unix_seconds: Some(3600),
            recipients: vec![
                recipient("d@example.net", Action::Delayed, "4.4.1"),
                recipient("l@example.org", Action::Delivered, "2.0.0"),
                recipient("r@example.net", Action::Relayed, "2.0.0"),
            ],
            message: b"Subject: hello\r\n\r\nbody\r\n",
            explain: &explain,
        };
        let text = String::from_utf8(compose(&report)).unwrap();
        assert!(text.contains("Subject: Delayed Mail (still being retried)\r\n"));
        assert!(text.contains(
            "Final-Recipient: rfc822; d@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
        ));
        assert!(text.contains("Will-Retry-Until: Thu, 1 Jan 1970 01:00:00 +0000\r\n"));
        assert!(text.contains("Action: delivered\r\nStatus: 2.0.0\r\n"));
        assert!(text.contains("Action: relayed\r\nStatus: 2.0.0\r\n"));
        // Advice only where something is wrong: once, for the delayed recipient.
        assert_eq!(text.matches("What you can do: fix").count(), 1);
        let only_success = Report {
            recipients: vec![recipient("l@example.org", Action::Delivered, "2.0.0")],
            ..report
        };
        let text = String::from_utf8(compose(&only_success)).unwrap();
        assert!(text.contains("Subject: Successful Mail Delivery Report\r\n"));
        assert!(!text.contains("Will-Retry-Until"));
    }
}
