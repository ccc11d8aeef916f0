//! Counting SMTP replies as they cross the wire: the server counts the replies it writes, the
//! delivery client those it reads. A reply is counted once, at its last line (`DDD SP` or a
//! bare `DDD`, RFC 5321 §4.2.1), with the enhanced code of that line when it has one
//! (RFC 3463). Lines split across reads are carried over. Untrusted bytes: anything that is
//! not a reply line is ignored, and a carried partial line is bounded.

/// Longest partial line kept between reads (RFC 5321 §4.5.3.1.5 allows 512 octets a reply line).
const MAX_PARTIAL_BYTES: usize = 2048;

/// One counted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySeen<'a> {
    pub code: &'a str,
    /// The enhanced status code, or "" when the last line has none.
    pub enhanced: &'a str,
    /// The text after the codes.
    pub text: &'a str,
}

/// Finds the replies in a byte stream.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    partial: Vec<u8>,
}

impl ReplyScanner {
    /// Calls `seen` for every reply that ends in `bytes` (after what earlier calls left over).
    pub fn scan(&mut self, bytes: &[u8], mut seen: impl FnMut(&ReplySeen<'_>)) {
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(bytes);
        let mut rest: &[u8] = &data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(reply) = final_line(line) {
                seen(&reply);
            }
        }
        if rest.len() <= MAX_PARTIAL_BYTES {
            self.partial = rest.to_vec();
        }
    }
}

fn final_line(line: &[u8]) -> Option<ReplySeen<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    let code = text.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let after = match text.as_bytes().get(3) {
        None => "",
        Some(b' ') => &text[4..],
        Some(_) => return None,
    };
    let (first, remainder) = after.split_once(' ').unwrap_or((after, ""));
    let is_enhanced = first.split('.').count() == 3
        && first.split('.').all(|part| {
            !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
        });
    Some(if is_enhanced {
        ReplySeen {
            code,
            enhanced: first,
            text: remainder,
        }
    } else {
        ReplySeen {
            code,
            enhanced: "",
            text: after,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<(String, String, String)> {
        let mut scanner = ReplyScanner::default();
        let mut out = Vec::new();
        for chunk in chunks {
            scanner.scan(chunk, |r| {
                out.push((r.code.to_owned(), r.enhanced.to_owned(), r.text.to_owned()))
            });
        }
        out
    }

    #[test]
    fn counts_each_reply_once_at_its_last_line_across_reads() {
        let replies = all(&[
            b"250-mx.test Hello\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n250 2.1.0 Sender",
            b" OK\r\n354 Start mail input\r\n221\r\nnot a reply\r\n",
        ]);
        assert_eq!(
            replies,
            vec![
                ("250".into(), "".into(), "SMTPUTF8".into()),
                ("250".into(), "2.1.0".into(), "Sender OK".into()),
                ("354".into(), "".into(), "Start mail input".into()),
                ("221".into(), "".into(), "".into()),
            ]
        );
    }

    #[test]
    fn a_long_line_without_end_is_dropped_not_kept() {
        let mut scanner = ReplyScanner::default();
        scanner.scan(&vec![b'x'; 10_000], |_| panic!("no reply here"));
        let mut count = 0;
        scanner.scan(b"\r\n250 ok\r\n", |_| count += 1);
        assert_eq!(count, 1);
    }
}
