//! The bounce reader (issue 17, item 3): a whole bounce message, parsed with mail-parser, gives
//! its failed (and delayed) recipients, each with its status, the remote server and its reply.
//! RFC 3464 reports (`multipart/report` with `message/delivery-status`: Postfix, Gmail,
//! Microsoft 365, Exchange, petrel, ...) are read from their fields; Exim's and qmail's plain
//! text bounces, and Postfix text without a report, from their text (`text.rs`).
//!
//! The input is anyone's message: nothing here panics, and what cannot be read is left out.

mod dsn;
pub mod report;
mod text;

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// One recipient a bounce reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (RFC 3464 §2.3.3).
    pub action: String,
    /// The enhanced status code, when the bounce gives one.
    pub status: Option<String>,
    /// The server that refused, when the bounce names it.
    pub remote_mta: Option<String>,
    /// That server's reply (or the bounce's own diagnostic), on one line.
    pub reply: Option<String>,
}

/// What a bounce says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The software that wrote it, as far as it shows.
    pub software: &'static str,
    /// The server that wrote it, when it says.
    pub reporting_mta: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// Reads `bytes` as a bounce; `None` when it is not a message or names no recipient.
pub fn read(bytes: &[u8]) -> Option<Bounce> {
    let message = MessageParser::default().parse(bytes)?;
    let mut report = None;
    let mut texts = String::new();
    for part in &message.parts {
        let is_report = part.content_type().is_some_and(|t| {
            t.ctype().eq_ignore_ascii_case("message")
                && t.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        match &part.body {
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) if is_report => {
                report.get_or_insert_with(|| dsn::parse(&String::from_utf8_lossy(bytes)));
            }
            PartType::Text(text) if is_report => {
                report.get_or_insert_with(|| dsn::parse(text));
            }
            PartType::Text(text) => {
                texts.push_str(&text.replace("\r\n", "\n"));
                texts.push('\n');
            }
            _ => {}
        }
    }
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let has_header = |name: &str| message.header_raw(name).is_some();
    let is_report = report.as_ref().is_some_and(|r| !r.recipients.is_empty());
    let (reporting_mta, recipients) = match report {
        Some(report) if !report.recipients.is_empty() => (report.reporting_mta, report.recipients),
        _ => {
            let mut found = [text::exim, text::qmail, text::postfix_text]
                .iter()
                .map(|read| read(&texts))
                .find(|found| !found.is_empty())?;
            // A failure the text gives no code for is "other undefined status" (RFC 3463
            // §3.1), as Postfix and Exim report it.
            for recipient in &mut found {
                if recipient.status.is_none() {
                    let class = if recipient.action == "delayed" {
                        "4"
                    } else {
                        "5"
                    };
                    recipient.status = Some(format!("{class}.0.0"));
                }
            }
            (None, found)
        }
    };
    let mut recipients = recipients;
    for recipient in &mut recipients {
        // "connect to mx.example.net[192.0.2.25]:25: Connection timed out": the host tried.
        if recipient.remote_mta.is_none()
            && let Some(rest) = recipient
                .reply
                .as_deref()
                .and_then(|r| r.strip_prefix("connect to "))
            && let Some((host, _)) = rest.split_once('[')
        {
            recipient.remote_mta = Some(host.to_owned());
        }
    }
    let software = software(
        &from,
        reporting_mta.as_deref().unwrap_or(""),
        &texts,
        has_header("X-Failed-Recipients"),
        is_report,
        bytes,
    );
    Some(Bounce {
        software,
        reporting_mta,
        recipients,
    })
}

/// The software that wrote a bounce, from its sender, reporting server and wording.
fn software(
    from: &str,
    reporting: &str,
    text: &str,
    exim_header: bool,
    is_report: bool,
    raw: &[u8],
) -> &'static str {
    let reporting = reporting.to_ascii_lowercase();
    let raw_has = |needle: &[u8]| {
        raw.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if text.contains("This is the qmail-send program") {
        "qmail"
    } else if from.contains("googlemail.com")
        || reporting.ends_with("google.com")
        || reporting == "googlemail.com"
    {
        "Gmail"
    } else if reporting.ends_with("outlook.com") {
        "Microsoft 365"
    } else if exim_header || text.contains("The following address(es) failed:") {
        "Exim"
    } else if from.starts_with("microsoftexchange") || raw_has(b"X-MS-Exchange") {
        "Exchange Server"
    } else if raw_has(b"X-Postfix-Queue-ID") || text.contains("This is the mail system at host") {
        "Postfix"
    } else if is_report {
        "RFC 3464 report"
    } else {
        "unknown"
    }
}
