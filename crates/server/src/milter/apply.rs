//! The changes milters ask for at the end of a message, applied to it (pure): header fields
//! added at the end, inserted at a position (0: the top), changed or deleted by name and
//! occurrence (from 1), the body replaced; recipients added and removed, the sender changed and
//! the message quarantined are gathered for the caller.
//!
//! Values from milters are untrusted text: bare LF becomes CRLF, a field name with a colon,
//! space or control character is ignored, and an index past the end is ignored.

use super::codec::Change;

/// What applying changes gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub content: Vec<u8>,
    pub add_recipients: Vec<String>,
    pub delete_recipients: Vec<String>,
    pub new_sender: Option<String>,
    pub quarantine: Option<String>,
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn crlf(value: &str) -> String {
    value.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn bare(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// Applies `changes` to `content`.
pub fn apply(content: &[u8], changes: &[Change]) -> Applied {
    let end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |at| at + 2);
    let mut body = content.get(end..).unwrap_or_default().to_vec();
    // Header fields, each whole with its folded lines and final CRLF.
    let header = String::from_utf8_lossy(&content[..end]).into_owned();
    let mut fields: Vec<String> = Vec::new();
    for line in header.split_inclusive("\r\n") {
        match fields.last_mut() {
            Some(field) if line.starts_with([' ', '\t']) => field.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    let name_of = |field: &str| field.split(':').next().unwrap_or("").trim().to_owned();
    let mut applied = Applied::default();
    for change in changes {
        match change {
            Change::AddHeader { name, value } if is_field_name(name) => {
                fields.push(format!("{name}: {}\r\n", crlf(value)));
            }
            Change::InsertHeader { index, name, value } if is_field_name(name) => {
                let at = usize::try_from(*index)
                    .unwrap_or(usize::MAX)
                    .min(fields.len());
                fields.insert(at, format!("{name}: {}\r\n", crlf(value)));
            }
            Change::ChangeHeader { index, name, value } if is_field_name(name) => {
                let occurrence = usize::try_from(*index).unwrap_or(0).max(1);
                let found = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| name_of(f).eq_ignore_ascii_case(name))
                    .nth(occurrence - 1)
                    .map(|(at, _)| at);
                if let Some(at) = found {
                    if value.is_empty() {
                        fields.remove(at);
                    } else if let Some(field) = fields.get_mut(at) {
                        // The field keeps its own spelling of the name.
                        *field = format!("{}: {}\r\n", name_of(field), crlf(value));
                    }
                }
            }
            Change::ReplaceBody(new_body) => {
                let text = String::from_utf8_lossy(new_body);
                body = format!("\r\n{}", crlf(&text)).into_bytes();
            }
            Change::AddRcpt(r) => applied.add_recipients.push(bare(r)),
            Change::DeleteRcpt(r) => applied.delete_recipients.push(bare(r)),
            Change::ChangeFrom(f) => applied.new_sender = Some(bare(f)),
            Change::Quarantine(reason) => applied.quarantine = Some(reason.clone()),
            _ => {}
        }
    }
    let mut out = fields.concat().into_bytes();
    out.extend_from_slice(&body);
    applied.content = out;
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_added_inserted_changed_and_deleted() {
        let message = b"Subject: one\r\nX-A: 1\r\nX-A: 2\r\n\tfolded\r\n\r\nbody\r\n";
        let changes = vec![
            Change::AddHeader {
                name: "X-Spam".into(),
                value: "yes".into(),
            },
            Change::InsertHeader {
                index: 0,
                name: "DKIM-Signature".into(),
                value: "v=1;\n b=abc".into(),
            },
            Change::ChangeHeader {
                index: 2,
                name: "x-a".into(),
                value: "changed".into(),
            },
            Change::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new(),
            },
            Change::AddHeader {
                name: "Bad:Name".into(),
                value: "x".into(),
            },
            Change::AddRcpt("<new@example.test>".into()),
            Change::Quarantine("suspicious".into()),
        ];
        let applied = apply(message, &changes);
        assert_eq!(
            String::from_utf8(applied.content).unwrap(),
            "DKIM-Signature: v=1;\r\n b=abc\r\nX-A: 1\r\nX-A: changed\r\nX-Spam: yes\r\n\r\nbody\r\n"
        );
        assert_eq!(applied.add_recipients, ["new@example.test"]);
        assert_eq!(applied.quarantine.as_deref(), Some("suspicious"));
        let replaced = apply(message, &[Change::ReplaceBody(b"new\n".to_vec())]);
        assert!(
            String::from_utf8(replaced.content)
                .unwrap()
                .ends_with("\r\n\r\nnew\r\n")
        );
    }
}
