//! Mailbox and path syntax of RFC 5321 §4.1.2 (with RFC 6531's UTF-8 extension) and the size
//! limits of §4.5.3.1.
//!
//! Handles untrusted bytes from MAIL and RCPT. Parsing never panics; a refused path says why, so
//! the session can answer 501 5.1.7 / 501 5.1.3 (syntax), 553 5.6.7 (UTF-8 without SMTPUTF8).

use std::fmt;

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_BYTES: usize = 64;
/// Longest domain in octets (§4.5.3.1.2).
pub const MAX_DOMAIN_BYTES: usize = 255;
/// Longest path including `<` and `>` (§4.5.3.1.3).
pub const MAX_PATH_BYTES: usize = 256;

/// The part after `@`: a domain name or an address literal such as `[192.0.2.1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    Name(String),
    /// The text between the brackets, e.g. `192.0.2.1` or `IPv6:2001:db8::1`.
    AddressLiteral(String),
}

impl Domain {
    /// True when `other` names the same domain (names compare case-insensitively).
    pub fn is(&self, other: &str) -> bool {
        match self {
            Domain::Name(name) => name.eq_ignore_ascii_case(other.trim_end_matches('.')),
            Domain::AddressLiteral(_) => false,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(name) => f.write_str(name),
            Domain::AddressLiteral(literal) => write!(f, "[{literal}]"),
        }
    }
}

/// `Local-part "@" Domain`. The local part keeps its case and its quoting as sent (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// As written: a dot-string, or a quoted string with its quotes.
    pub local_part: String,
    pub domain: Domain,
}

impl Mailbox {
    /// The local part with quoting removed (`"a b"` -> `a b`, `"a\"b"` -> `a"b`).
    pub fn local_part_content(&self) -> String {
        let Some(inner) = self
            .local_part
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
        else {
            return self.local_part.clone();
        };
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// True when any octet of the address is outside ASCII (needs SMTPUTF8, RFC 6531).
    pub fn is_utf8(&self) -> bool {
        !self.local_part.is_ascii() || !self.domain.to_string().is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

/// MAIL FROM's path: a mailbox or the null path `<>` used by bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(mailbox) => mailbox.fmt(f),
        }
    }
}

/// RCPT TO's path: a mailbox, or the bare `<Postmaster>` every server must accept (§4.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Mailbox),
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("Postmaster"),
            ForwardPath::Mailbox(mailbox) => mailbox.fmt(f),
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not RFC 5321 syntax.
    Syntax,
    /// Over one of the octet limits of §4.5.3.1.
    TooLong,
}

/// Parses a `<...>` path (brackets included) as a reverse path.
///
/// # Errors
/// `PathError` when the text is not a path or is too long.
pub fn parse_reverse_path(text: &str) -> Result<ReversePath, PathError> {
    if text == "<>" {
        return Ok(ReversePath::Null);
    }
    parse_path(text).map(ReversePath::Mailbox)
}

/// Parses a `<...>` path (brackets included) as a forward path.
///
/// # Errors
/// `PathError` when the text is not a path, is `<>`, or is too long.
pub fn parse_forward_path(text: &str) -> Result<ForwardPath, PathError> {
    if text.len() == "<Postmaster>".len() && text.eq_ignore_ascii_case("<Postmaster>") {
        return Ok(ForwardPath::Postmaster);
    }
    parse_path(text).map(ForwardPath::Mailbox)
}

/// Parses `<[A-d-l ":"] Mailbox>`, dropping a source route (§4.1.1.3, S-TXN-6).
fn parse_path(text: &str) -> Result<Mailbox, PathError> {
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let inner = text
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or(PathError::Syntax)?;
    let inner = strip_source_route(inner)?;
    parse_mailbox(inner)
}

fn strip_source_route(inner: &str) -> Result<&str, PathError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, rest) = inner.split_once(':').ok_or(PathError::Syntax)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(PathError::Syntax)?;
        if !is_domain_name(domain) {
            return Err(PathError::Syntax);
        }
    }
    Ok(rest)
}

/// Parses `Local-part "@" ( Domain / address-literal )`.
///
/// # Errors
/// `PathError::Syntax` or `PathError::TooLong`.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, PathError> {
    let at = local_part_end(text).ok_or(PathError::Syntax)?;
    let (local_part, domain) = (&text[..at], &text[at + 1..]);
    if local_part.len() > MAX_LOCAL_PART_BYTES || domain.len() > MAX_DOMAIN_BYTES {
        return Err(PathError::TooLong);
    }
    let domain = parse_domain(domain).ok_or(PathError::Syntax)?;
    Ok(Mailbox {
        local_part: local_part.to_owned(),
        domain,
    })
}

/// Finds the `@` that ends a valid local part, or `None` when the local part is malformed.
fn local_part_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let next = *bytes.get(i + 1)?;
                    if !(32..=126).contains(&next) {
                        return None;
                    }
                    i += 2;
                }
                b'"' => {
                    return (bytes.get(i + 1) == Some(&b'@') && i > 1).then_some(i + 1);
                }
                b if is_qtext(b) => i += 1,
                _ => return None,
            }
        }
        return None;
    }
    let at = text.find('@')?;
    let local = &text[..at];
    let is_dot_string = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    is_dot_string.then_some(at)
}

/// atext of RFC 5322 §3.2.3, plus any non-ASCII octet of UTF-8 (RFC 6531 §3.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// qtextSMTP of RFC 5321 §4.1.2, plus UTF-8.
fn is_qtext(b: u8) -> bool {
    (b == 32 || b == 33 || (35..=91).contains(&b) || (93..=126).contains(&b)) || b >= 0x80
}

fn parse_domain(text: &str) -> Option<Domain> {
    if let Some(literal) = text.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return is_address_literal(literal).then(|| Domain::AddressLiteral(literal.to_owned()));
    }
    is_domain_name(text).then(|| Domain::Name(text.to_owned()))
}

/// `sub-domain *("." sub-domain)`: letters, digits and inner hyphens; UTF-8 U-labels allowed.
pub fn is_domain_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_DOMAIN_BYTES
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        })
}

fn is_address_literal(text: &str) -> bool {
    match text.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            text[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => text.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// The Maildir folder of a local part: its unquoted content lower-cased, with a `+tag` (the
/// `delimiter` and what follows) removed. `None` when the result cannot be a plain folder name:
/// empty, a `/`, NUL or other control character, a leading `.`, or over 64 octets. This is what
/// keeps an address from ever naming a path outside its Maildir.
pub fn mailbox_folder(local_part_content: &str, delimiter: Option<&str>) -> Option<String> {
    let base = match delimiter.filter(|d| !d.is_empty()) {
        Some(delimiter) => local_part_content
            .split_once(delimiter)
            .map_or(local_part_content, |(base, _)| base),
        None => local_part_content,
    };
    let folder = base.to_lowercase();
    let is_safe = !folder.is_empty()
        && folder.len() <= MAX_LOCAL_PART_BYTES
        && !folder.starts_with('.')
        && !folder.chars().any(|c| c == '/' || c.is_control());
    is_safe.then_some(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Mailbox {
        match parse_forward_path(text) {
            Ok(ForwardPath::Mailbox(m)) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn plain_quoted_and_literal_mailboxes() {
        let m = mailbox("<Alice.Smith@Example.org>");
        assert_eq!(m.local_part, "Alice.Smith");
        assert!(m.domain.is("example.org"));
        let m = mailbox("<\"john \\\"q\\\" doe\"@example.org>");
        assert_eq!(m.local_part_content(), "john \"q\" doe");
        let m = mailbox("<x@[192.0.2.1]>");
        assert_eq!(m.domain, Domain::AddressLiteral("192.0.2.1".into()));
        let m = mailbox("<x@[IPv6:2001:db8::1]>");
        assert_eq!(m.to_string(), "x@[IPv6:2001:db8::1]");
    }

    #[test]
    fn s_txn_6_source_route_stripped() {
        assert_eq!(
            mailbox("<@a.example,@b.example:u@d.example>").to_string(),
            "u@d.example"
        );
    }

    #[test]
    fn postmaster_and_null() {
        assert_eq!(
            parse_forward_path("<postMASTER>"),
            Ok(ForwardPath::Postmaster)
        );
        assert_eq!(parse_reverse_path("<>"), Ok(ReversePath::Null));
        assert_eq!(parse_forward_path("<>"), Err(PathError::Syntax));
    }

    #[test]
    fn bad_syntax_refused() {
        for bad in [
            "<../../etc@localhost>",
            "<a..b@x>",
            "<.a@x>",
            "<a@>",
            "<@x>",
            "<a@-x.org>",
            "<a b@x>",
            "a@x",
            "<a@x",
            "<\"\"@x>",
            "<a@[300.1.1.1]>",
            "<a@x..org>",
        ] {
            assert_eq!(parse_forward_path(bad), Err(PathError::Syntax), "{bad}");
        }
    }

    #[test]
    fn s_line_3_limits() {
        let local = "a".repeat(64);
        assert!(parse_forward_path(&format!("<{local}@x.org>")).is_ok());
        let local = "a".repeat(65);
        assert_eq!(
            parse_forward_path(&format!("<{local}@x.org>")),
            Err(PathError::TooLong)
        );
        let long = format!("<a@{}.org>", "b.".repeat(130));
        assert_eq!(parse_forward_path(&long), Err(PathError::TooLong));
    }

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(mailbox_folder("Alice+Tag", Some("+")), Some("alice".into()));
        assert_eq!(mailbox_folder("alice+tag", None), Some("alice+tag".into()));
        for unsafe_name in [".", "..", "../../etc", "a/b", "a\0b", "\u{7f}", "", "+x"] {
            assert_eq!(
                mailbox_folder(unsafe_name, Some("+")),
                None,
                "{unsafe_name:?}"
            );
        }
        assert_eq!(mailbox_folder(&"a".repeat(65), None), None);
    }

    #[test]
    fn utf8_detected() {
        assert!(mailbox("<jøran@example.org>").is_utf8());
        assert!(mailbox("<a@bücher.example>").is_utf8());
        assert!(!mailbox("<a@example.org>").is_utf8());
    }
}
