//! xtext (RFC 3461 §4): the encoding of ENVID and ORCPT values.
//!
//! Handles untrusted bytes from MAIL/RCPT parameters; never panics. Also used by the queue to
//! write envelope fields that may hold spaces or non-ASCII octets on one line.

/// Decodes xtext; `None` when a `+` is not followed by two upper-case hex digits or a byte is
/// outside the printable range xtext allows.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else if (33..=126).contains(&b) && b != b'=' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Encodes octets as xtext: `+`, `=`, controls, space and non-ASCII become `+HH`.
pub fn encode(value: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push('+');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_awkward_bytes() {
        let value = b"a+b=c d\x00\xff~";
        let text = encode(value);
        assert_eq!(text, "a+2Bb+3Dc+20d+00+FF~");
        assert_eq!(decode(&text).as_deref(), Some(&value[..]));
    }

    #[test]
    fn refuses_malformed_escapes() {
        assert_eq!(decode("a+2"), None);
        assert_eq!(decode("a+zz"), None);
        assert_eq!(decode("a b"), None);
        assert_eq!(decode("a=b"), None);
    }
}
