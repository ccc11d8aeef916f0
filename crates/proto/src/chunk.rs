//! BDAT content (RFC 3030): chunks are taken verbatim, with no dot-stuffing and no end marker,
//! but the bare-newline policy of DATA still applies, so content that entered by BDAT can never
//! carry a bare CR or LF onward (S-SMUG-2, S-SMUG-4).
//!
//! Handles untrusted bytes, incrementally: a CR at the end of one chunk and the LF at the start
//! of the next are one line end.

use crate::data::BareNewline;

/// Copies chunk content into the body, finding (and when normalising, repairing) bare CR/LF.
#[derive(Debug, Clone, Default)]
pub struct BareNewlineFilter {
    policy: BareNewline,
    is_cr_pending: bool,
    has_bare_newline: bool,
}

impl BareNewlineFilter {
    /// A filter for one message.
    pub fn new(policy: BareNewline) -> BareNewlineFilter {
        BareNewlineFilter {
            policy,
            ..BareNewlineFilter::default()
        }
    }

    /// True once a bare CR or LF was seen (whatever the policy).
    pub fn has_bare_newline(&self) -> bool {
        self.has_bare_newline
    }

    /// Appends `input` to `body`; bare line ends become CR LF.
    pub fn push(&mut self, input: &[u8], body: &mut Vec<u8>) {
        for &byte in input {
            if self.is_cr_pending {
                self.is_cr_pending = false;
                if byte == b'\n' {
                    body.extend_from_slice(b"\r\n");
                    continue;
                }
                self.bare(body);
            }
            match byte {
                b'\r' => self.is_cr_pending = true,
                b'\n' => self.bare(body),
                _ => body.push(byte),
            }
        }
    }

    /// Ends the content: a CR left pending at the very end was bare.
    pub fn finish(&mut self, body: &mut Vec<u8>) {
        if self.is_cr_pending {
            self.is_cr_pending = false;
            self.bare(body);
        }
    }

    fn bare(&mut self, body: &mut Vec<u8>) {
        self.has_bare_newline = true;
        match self.policy {
            BareNewline::Normalize => body.extend_from_slice(b"\r\n"),
            // The message will be refused; keep the octets so sizes still count.
            BareNewline::Reject => body.push(b'\n'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_split_across_chunks_is_not_bare() {
        let mut filter = BareNewlineFilter::new(BareNewline::Reject);
        let mut body = Vec::new();
        filter.push(b"a\r", &mut body);
        filter.push(b"\nb\r\n", &mut body);
        filter.finish(&mut body);
        assert!(!filter.has_bare_newline());
        assert_eq!(body, b"a\r\nb\r\n");
    }

    #[test]
    fn normalises_bare_line_ends() {
        let mut filter = BareNewlineFilter::new(BareNewline::Normalize);
        let mut body = Vec::new();
        filter.push(b"a\nb\rc\r", &mut body);
        filter.finish(&mut body);
        assert!(filter.has_bare_newline());
        assert_eq!(body, b"a\r\nb\r\nc\r\n");
    }
}
