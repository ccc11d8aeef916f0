//! The fields of an RFC 3464 delivery status notification (`message/delivery-status`): one
//! group of per-message fields, then one group per recipient, groups separated by empty
//! lines, long fields folded onto lines that begin with white space (RFC 3464 §2.1, RFC 5322
//! §2.2.3). Untrusted text: unknown fields are skipped, nothing panics.

use super::Recipient;

/// The per-message fields the reader reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `Reporting-MTA`, without its type (`dns;`).
    pub reporting_mta: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// Reads the body of a `message/delivery-status` part.
pub fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for (index, group) in groups(text).into_iter().enumerate() {
        let field = |name: &str| {
            group
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if index == 0 && field("Final-Recipient").is_none() {
            report.reporting_mta = field("Reporting-MTA").map(|v| host(&v));
            continue;
        }
        let Some(address) = field("Final-Recipient")
            .or_else(|| field("Original-Recipient"))
            .map(|v| address(&v))
        else {
            continue;
        };
        report.recipients.push(Recipient {
            address,
            action: field("Action")
                .map(|a| a.trim().to_ascii_lowercase())
                .unwrap_or_else(|| "failed".to_owned()),
            status: field("Status").and_then(|s| s.split_whitespace().next().map(str::to_owned)),
            remote_mta: field("Remote-MTA").map(|v| host(&v)),
            reply: field("Diagnostic-Code").map(|v| without_type(&v)),
        });
    }
    report
}

/// The groups of fields: each a list of (name, unfolded value).
fn groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// A typed field's value without its type: `smtp; 550 5.1.1 ...` is `550 5.1.1 ...`.
fn without_type(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.trim().contains(' ') => rest.trim().to_owned(),
        _ => value.trim().to_owned(),
    }
}

/// An address field's value: `rfc822; <bob@example.net>` is `bob@example.net`.
fn address(value: &str) -> String {
    let value = without_type(value);
    value
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

/// A host field's value: `dns; mx.example.net. (192.0.2.25, ...)` is `mx.example.net`.
fn host(value: &str) -> String {
    let value = without_type(value);
    value
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_folded_fields() {
        let text = "Reporting-MTA: dns; mx.example.org\r\nArrival-Date: Mon, 7 Dec 2026 12:00:00 +0000\r\n\r\nFinal-Recipient: rfc822; carol@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net. (192.0.2.25, the server for the domain example.net.)\r\nDiagnostic-Code: smtp; 550-5.1.1 The email account that you tried to\r\n    reach does not exist.\r\n\r\nFinal-Recipient: rfc822;dave@example.com\r\nAction: delayed\r\nStatus: 4.4.1 (connection refused)\r\n";
        let report = parse(text);
        assert_eq!(report.reporting_mta.as_deref(), Some("mx.example.org"));
        assert_eq!(report.recipients.len(), 2);
        let carol = &report.recipients[0];
        assert_eq!(carol.address, "carol@example.net");
        assert_eq!(carol.status.as_deref(), Some("5.1.1"));
        assert_eq!(carol.remote_mta.as_deref(), Some("mx.example.net"));
        assert_eq!(
            carol.reply.as_deref(),
            Some("550-5.1.1 The email account that you tried to reach does not exist.")
        );
        assert_eq!(report.recipients[1].action, "delayed");
        assert_eq!(report.recipients[1].status.as_deref(), Some("4.4.1"));
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse("").recipients.is_empty());
        assert!(
            parse("no fields here\n\n:::\n\tfolded first")
                .recipients
                .is_empty()
        );
    }
}
