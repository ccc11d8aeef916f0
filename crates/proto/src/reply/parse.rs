//! Reading replies on the client side (RFC 5321 §4.2, RFC 2034 §3): lines `ddd-text` then a
//! last `ddd text`, the enhanced code taken from the first line when present.
//!
//! Handles untrusted bytes from remote servers: a malformed or oversized reply is an error,
//! never a panic.

use super::{EnhancedCode, Reply};

/// Most octets one reply may take (many lines of up to 512 octets).
pub const MAX_REPLY_BYTES: usize = 65_536;

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    Malformed(String),
    TooLong,
}

/// Takes one complete reply off the front of `input`, returning it and the octets it used;
/// `Ok(None)` when more input is needed.
///
/// # Errors
/// `ReplyError` for lines that are not replies, codes that change between lines, or a reply
/// over `MAX_REPLY_BYTES`.
pub fn parse_reply(input: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut offset = 0;
    let mut code = None;
    let mut lines = Vec::new();
    while let Some(end) = input[offset..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[offset..offset + end];
        offset += end + 2;
        let text = String::from_utf8_lossy(line);
        let line_code = parse_code(&text).ok_or_else(|| ReplyError::Malformed(text.to_string()))?;
        if *code.get_or_insert(line_code) != line_code {
            return Err(ReplyError::Malformed(format!(
                "code changed within a reply: {text}"
            )));
        }
        let separator = text.as_bytes().get(3).copied();
        lines.push(text.get(4..).unwrap_or("").to_owned());
        if separator != Some(b'-') {
            return Ok(Some((build(line_code, lines), offset)));
        }
        if offset > MAX_REPLY_BYTES {
            return Err(ReplyError::TooLong);
        }
    }
    if input.len() - offset > MAX_REPLY_BYTES {
        return Err(ReplyError::TooLong);
    }
    Ok(None)
}

fn parse_code(line: &str) -> Option<u16> {
    let digits = line.get(..3)?;
    let code: u16 = digits.parse().ok()?;
    let separator = line.as_bytes().get(3).copied();
    let is_valid =
        (200..600).contains(&code) && matches!(separator, None | Some(b' ') | Some(b'-'));
    is_valid.then_some(code)
}

/// Splits a leading enhanced code off every line when the first line has one of the right class.
fn build(code: u16, mut lines: Vec<String>) -> Reply {
    let enhanced = lines
        .first()
        .and_then(|first| parse_enhanced(first))
        .filter(|e| u16::from(e.class) == code / 100);
    if let Some(enhanced) = enhanced {
        let prefix = enhanced.to_string();
        for line in &mut lines {
            if let Some(rest) = line.strip_prefix(&prefix) {
                *line = rest.trim_start().to_owned();
            }
        }
    }
    Reply {
        code,
        enhanced,
        lines,
    }
}

/// Parses `c.s.d` at the start of `text`.
pub fn parse_enhanced(text: &str) -> Option<EnhancedCode> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000)
        .then_some(EnhancedCode::new(class, subject, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_with_enhanced_codes() {
        let input = b"250-mx.example Hello\r\n250-SIZE 100\r\n250 PIPELINING\r\n550 5.1.1 no\r\n";
        let (reply, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example Hello", "SIZE 100", "PIPELINING"]);
        let (reply, _) = parse_reply(&input[used..]).unwrap().unwrap();
        assert_eq!(reply.to_line(), "550 5.1.1 no");
    }

    #[test]
    fn incomplete_and_malformed() {
        assert_eq!(parse_reply(b"250-a\r\n250 b"), Ok(None));
        assert!(parse_reply(b"hello\r\n").is_err());
        assert!(parse_reply(b"250-a\r\n251 b\r\n").is_err());
        assert_eq!(parse_reply(b"421\r\n").unwrap().unwrap().0.code, 421);
        let reply = parse_reply(b"451 5.1.1 mismatched class\r\n")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(reply.enhanced, None);
    }
}
