//! Bounces without a `message/delivery-status` part, read from their text: Exim's "The
//! following address(es) failed:" list, qmail's QSBMF paragraphs ("Hi. This is the qmail-send
//! program ..."), and the `<address>: host X[ip] said: ...` lines Postfix writes in its
//! notification text. Untrusted text: anything unexpected is skipped, nothing panics.

use super::Recipient;

/// Exim: each failed address on a line indented by two spaces, its details indented further.
pub fn exim(text: &str) -> Vec<Recipient> {
    let Some((_, list)) = text.split_once("The following address(es) failed:") else {
        return Vec::new();
    };
    let mut recipients: Vec<Recipient> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    let flush = |recipients: &mut Vec<Recipient>, details: &mut Vec<String>| {
        if let Some(last) = recipients.last_mut() {
            fill_exim(last, details);
        }
        details.clear();
    };
    for line in list.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            break;
        }
        if indent <= 2 && line.contains('@') {
            flush(&mut recipients, &mut details);
            recipients.push(Recipient {
                address: line
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches(['>', ':'])
                    .to_owned(),
                action: "failed".to_owned(),
                status: None,
                remote_mta: None,
                reply: None,
            });
        } else {
            details.push(line.trim().to_owned());
        }
    }
    flush(&mut recipients, &mut details);
    recipients
}

fn fill_exim(recipient: &mut Recipient, details: &[String]) {
    let mut reply = Vec::new();
    let mut after_error = false;
    for line in details {
        if let Some(host) = line.strip_prefix("host ") {
            recipient.remote_mta = host.split_whitespace().next().map(str::to_owned);
            continue;
        }
        if line.starts_with("SMTP error from remote mail server") {
            after_error = true;
            continue;
        }
        if after_error || recipient.remote_mta.is_none() {
            reply.push(line.as_str());
        }
    }
    if !reply.is_empty() {
        let reply = reply.join(" ");
        recipient.status = enhanced_code(&reply);
        recipient.reply = Some(reply);
    }
}

/// qmail: paragraphs that start with `<address>:`, until the copy of the message.
pub fn qmail(text: &str) -> Vec<Recipient> {
    if !text.contains("This is the qmail-send program") {
        return Vec::new();
    }
    let text = text
        .split("--- Below this line is a copy of the message")
        .next()
        .unwrap_or("");
    let mut recipients = Vec::new();
    for paragraph in text.split("\n\n").map(str::trim) {
        let mut lines = paragraph.lines().map(|l| l.trim_end_matches('\r').trim());
        let Some(first) = lines.next() else { continue };
        let Some(address) = first
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix(">:"))
        else {
            continue;
        };
        let rest: Vec<&str> = lines.collect();
        let mut remote_mta = None;
        let mut reply = None;
        for line in &rest {
            if let Some(host) = line.strip_suffix(" does not like recipient.") {
                remote_mta = Some(host.to_owned());
            } else if let Some(host) = line
                .strip_prefix("Giving up on ")
                .map(|h| h.trim_end_matches('.'))
            {
                remote_mta.get_or_insert_with(|| host.to_owned());
            } else if let Some(said) = line.strip_prefix("Remote host said: ") {
                reply = Some(said.to_owned());
            }
        }
        let reply = reply.unwrap_or_else(|| rest.join(" "));
        let status = qmail_status(&reply).or_else(|| enhanced_code(&reply));
        recipients.push(Recipient {
            address: address.to_owned(),
            action: "failed".to_owned(),
            status,
            remote_mta,
            reply: Some(reply),
        });
    }
    recipients
}

/// qmail's own status in parentheses: `(#5.1.2)`.
fn qmail_status(text: &str) -> Option<String> {
    let start = text.find("(#")? + 2;
    let end = start + text.get(start..)?.find(')')?;
    let code = text.get(start..end)?;
    is_enhanced(code).then(|| code.to_owned())
}

/// Postfix's notification text: `<address>: host X[ip] said: REPLY (in reply to ... command)`,
/// continued on indented lines.
pub fn postfix_text(text: &str) -> Vec<Recipient> {
    let mut recipients = Vec::new();
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    for (index, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix('<') else {
            continue;
        };
        let Some((address, said)) = rest.split_once(">: ") else {
            continue;
        };
        if !address.contains('@') {
            continue;
        }
        let mut whole = said.to_owned();
        for next in lines.iter().skip(index + 1) {
            if !next.starts_with([' ', '\t']) || next.trim().is_empty() {
                break;
            }
            whole.push(' ');
            whole.push_str(next.trim());
        }
        let (remote_mta, reply) = match whole.strip_prefix("host ") {
            Some(rest) => match rest.split_once(" said: ") {
                Some((host, reply)) => {
                    (host.split('[').next().map(str::to_owned), reply.to_owned())
                }
                None => (None, whole.clone()),
            },
            None => (None, whole.clone()),
        };
        let reply = match reply.rfind(" (in reply to ") {
            Some(cut) => reply[..cut].to_owned(),
            None => reply,
        };
        recipients.push(Recipient {
            address: address.to_owned(),
            action: "failed".to_owned(),
            status: enhanced_code(&reply),
            remote_mta,
            reply: Some(reply),
        });
    }
    recipients
}

/// The enhanced status code of a reply (`550 5.1.1 ...` or `550-5.1.1 ...`), if it has one.
pub fn enhanced_code(reply: &str) -> Option<String> {
    reply
        .split(|c: char| c.is_whitespace() || c == '-')
        .take(3)
        .find(|word| is_enhanced(word))
        .map(str::to_owned)
}

fn is_enhanced(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exim_list() {
        let text = "This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  bob@example.net\n    host mx.example.net [192.0.2.25]\n    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n    550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown\n  carol@example.invalid\n    Unrouteable address\n\n------ This is a copy of the message, including all the headers. ------\n";
        let found = exim(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].address, "bob@example.net");
        assert_eq!(found[0].remote_mta.as_deref(), Some("mx.example.net"));
        assert_eq!(found[0].status.as_deref(), Some("5.1.1"));
        assert!(found[0].reply.as_deref().unwrap().starts_with("550 5.1.1"));
        assert_eq!(found[1].reply.as_deref(), Some("Unrouteable address"));
        assert_eq!(found[1].status, None);
    }

    #[test]
    fn qmail_paragraphs() {
        let text = "Hi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\n<bob@example.net>:\n192.0.2.25 does not like recipient.\nRemote host said: 550 5.1.1 <bob@example.net>... User unknown\nGiving up on 192.0.2.25.\n\n<carol@example.invalid>:\nSorry, I couldn't find any host named example.invalid. (#5.1.2)\n\n--- Below this line is a copy of the message.\n\n<dave@example.org>:\nnot a recipient\n";
        let found = qmail(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].remote_mta.as_deref(), Some("192.0.2.25"));
        assert_eq!(found[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(found[1].status.as_deref(), Some("5.1.2"));
    }

    #[test]
    fn postfix_lines() {
        let text = "<bob@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1\n    <bob@example.net>: Recipient address rejected: User unknown (in reply to\n    RCPT TO command)\n";
        let found = postfix_text(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].remote_mta.as_deref(), Some("mx.example.net"));
        assert_eq!(
            found[0].reply.as_deref(),
            Some("550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown")
        );
    }
}
