//! The DATA decoder (RFC 5321 §4.1.1.4, §4.5.2) and the bare-newline rules against SMTP
//! smuggling (docs/conformance.md §5).
//!
//! Handles untrusted bytes, incrementally: input may be split at any byte and gives the same
//! result. Only CR LF "." CR LF ends the data, and only when the first CR LF is a real one:
//! `\n.\n`, `\n.\r\n`, `\r.\r`, `\r\n.\n` and the rest never end it (S-SMUG-1). A line that
//! starts with "." loses one dot (S-DATA-3). A bare CR or LF marks the message bad (reject) or
//! becomes CR LF (normalize); either way the decoder keeps reading to the real end (S-SMUG-2).
//! Over-long lines and over-size bodies are noted, and the decoder stops storing (S-LINE-7,
//! S-SIZE-1). Never panics.

/// What to do with a bare CR or LF inside message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareNewline {
    /// Refuse the message with 550 5.5.2 after reading to the real end (the default).
    #[default]
    Reject,
    /// Turn it into CR LF; only for trusted clients.
    Normalize,
}

/// How a message ended up once its data was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOutcome {
    Complete,
    BareNewline,
    LineTooLong,
    TooBig,
    /// The server had no room for it (its bound on message data in flight): 452 4.3.1.
    NoStorage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// A line that so far is one ".".
    Dot,
    /// Inside a line.
    InLine,
    /// A CR seen inside a line; is an LF next?
    Cr,
    /// "." then CR at the start of a line; LF next ends the data if the line start is real.
    DotCr,
}

/// Decodes the content after 354 into the message body (CR LF line ends, dots unstuffed).
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    /// False when the current line began after a bare CR/LF: such a line never ends the data.
    is_line_start_real: bool,
    line_bytes: usize,
    body_bytes: u64,
    max_line_bytes: usize,
    max_body_bytes: u64,
    policy: BareNewline,
    outcome: DataOutcome,
}

impl DataDecoder {
    /// A decoder for one message. Line lengths count content octets without CR LF.
    pub fn new(max_line_bytes: usize, max_body_bytes: u64, policy: BareNewline) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            is_line_start_real: true,
            line_bytes: 0,
            body_bytes: 0,
            max_line_bytes,
            max_body_bytes,
            policy,
            outcome: DataOutcome::Complete,
        }
    }

    /// What the data amounted to so far; final once `decode` reported the end.
    pub fn outcome(&self) -> DataOutcome {
        self.outcome
    }

    /// Octets of content counted so far (after unstuffing; RFC 1870's message size).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Consumes `input`, appending decoded content to `body` while the message is still good.
    /// Returns how many octets were consumed and whether the end of data was reached; after
    /// the end, the rest of `input` belongs to the next command.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, bool) {
        let mut index = 0;
        while index < input.len() {
            if self.state == State::InLine {
                let run = find_line_break(&input[index..]).unwrap_or(input.len() - index);
                let end = index + run;
                if input.get(end) == Some(&b'\r') && input.get(end + 1) == Some(&b'\n') {
                    // The common case: the line and its real CR LF, copied as one.
                    self.emit_whole_line(&input[index..end + 2], body);
                    index = end + 2;
                    if input
                        .get(index)
                        .is_some_and(|&b| !matches!(b, b'.' | b'\r' | b'\n'))
                    {
                        // An ordinary first octet: the next line needs no state of its own.
                        self.state = State::InLine;
                    }
                    continue;
                }
                if run > 0 {
                    self.emit_line_content(&input[index..end], body);
                    index = end;
                    continue;
                }
            }
            let byte = input[index];
            index += 1;
            if self.step(byte, body) {
                return (index, true);
            }
        }
        (index, false)
    }

    /// Advances over one octet; true at the end of data.
    fn step(&mut self, byte: u8, body: &mut Vec<u8>) -> bool {
        loop {
            match (self.state, byte) {
                (State::LineStart, b'.') => self.state = State::Dot,
                (State::LineStart | State::InLine, b'\r') => self.state = State::Cr,
                (State::LineStart | State::InLine, b'\n') => self.bare_newline(body),
                (State::LineStart | State::InLine, _) => {
                    self.state = State::InLine;
                    self.emit_line_content(&[byte], body);
                }
                (State::Dot, b'\r') => self.state = State::DotCr,
                (State::Dot, b'\n') => {
                    self.emit_line_content(b".", body);
                    self.bare_newline(body);
                }
                (State::Dot, _) => {
                    // Unstuffing: the leading dot is dropped (S-DATA-3).
                    self.state = State::InLine;
                    self.emit_line_content(&[byte], body);
                }
                (State::Cr, b'\n') => self.line_end(body),
                (State::DotCr, b'\n') if self.is_line_start_real => return true,
                (State::DotCr, b'\n') => {
                    self.emit_line_content(b".", body);
                    self.line_end(body);
                }
                (State::Cr | State::DotCr, _) => {
                    if self.state == State::DotCr {
                        self.emit_line_content(b".", body);
                    }
                    // The CR before `byte` was bare; `byte` starts a line that is not real.
                    self.bare_newline(body);
                    continue;
                }
            }
            return false;
        }
    }

    /// A real CR LF ends the current line.
    fn line_end(&mut self, body: &mut Vec<u8>) {
        self.emit(b"\r\n", body);
        self.state = State::LineStart;
        self.is_line_start_real = true;
        self.line_bytes = 0;
    }

    /// A bare CR or LF: refused or normalised, and the next line never ends the data.
    fn bare_newline(&mut self, body: &mut Vec<u8>) {
        match self.policy {
            BareNewline::Reject => self.fail(DataOutcome::BareNewline, body),
            BareNewline::Normalize => self.emit(b"\r\n", body),
        }
        self.state = State::LineStart;
        self.is_line_start_real = false;
        self.line_bytes = 0;
    }

    /// A line's content and its real CR LF (the last two octets of `line`), copied as one:
    /// `emit_line_content` of the content, then `line_end`.
    fn emit_whole_line(&mut self, line: &[u8], body: &mut Vec<u8>) {
        self.count_line(line.len().saturating_sub(2), body);
        self.emit(line, body);
        self.state = State::LineStart;
        self.is_line_start_real = true;
        self.line_bytes = 0;
    }

    fn emit_line_content(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        self.count_line(bytes.len(), body);
        self.emit(bytes, body);
    }

    /// Counts `count` octets of line content about to be emitted. The line is too long when
    /// it passes its limit at an octet before the one where the body passes its own: the
    /// first reason in octet order, however the input was split.
    fn count_line(&mut self, count: usize, body: &mut Vec<u8>) {
        let line_room = self.max_line_bytes.saturating_sub(self.line_bytes);
        self.line_bytes = self.line_bytes.saturating_add(count);
        let body_room = self.max_body_bytes.saturating_sub(self.body_bytes);
        if count > line_room && u64::try_from(line_room).unwrap_or(u64::MAX) <= body_room {
            self.fail(DataOutcome::LineTooLong, body);
        }
    }

    fn emit(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        self.body_bytes = self.body_bytes.saturating_add(bytes.len() as u64);
        if self.body_bytes > self.max_body_bytes {
            self.fail(DataOutcome::TooBig, body);
        }
        if self.outcome == DataOutcome::Complete {
            body.extend_from_slice(bytes);
        }
    }

    /// Refuses the message for want of room (`DataOutcome::NoStorage`) and frees what was
    /// stored; the data is still read to its end.
    pub fn refuse_for_storage(&mut self, body: &mut Vec<u8>) {
        self.fail(DataOutcome::NoStorage, body);
    }

    /// Notes the first reason the message is bad and frees what was stored.
    fn fail(&mut self, outcome: DataOutcome, body: &mut Vec<u8>) {
        if self.outcome == DataOutcome::Complete {
            self.outcome = outcome;
            body.clear();
            body.shrink_to_fit();
        }
    }
}

/// The index of the first CR or LF in `bytes`, eight octets at a time (a word holds a CR or
/// LF when one of its bytes XORed with it is zero; the lowest flagged byte is exact).
pub(crate) fn find_line_break(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found =
            has_zero(word ^ (ONES * u64::from(b'\r'))) | has_zero(word ^ (ONES * u64::from(b'\n')));
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|at| offset + at)
}

/// Dot-stuffs content for sending after DATA (S-DATA-4, S-DATA-5, S-SMUG-4): every line end
/// becomes CR LF, a leading "." is doubled, and the content ends with CR LF "." CR LF.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    // One line at a time, copied whole (a relay sends every message through here).
    let mut rest = content;
    while let Some(&first) = rest.first() {
        if first == b'.' {
            out.push(b'.');
        }
        match find_line_break(rest) {
            Some(end) => {
                out.extend_from_slice(&rest[..end]);
                out.extend_from_slice(b"\r\n");
                let is_crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
                rest = &rest[end + if is_crlf { 2 } else { 1 }..];
            }
            None => {
                // The last line had no line end: it gets one.
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                rest = &[];
            }
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], policy: BareNewline) -> (Vec<u8>, Option<usize>, DataOutcome) {
        let mut decoder = DataDecoder::new(1000, 1 << 20, policy);
        let mut body = Vec::new();
        let (used, ended) = decoder.decode(input, &mut body);
        (body, ended.then_some(used), decoder.outcome())
    }

    #[test]
    fn s_data_2_ends_only_at_crlf_dot_crlf() {
        let (body, end, outcome) = decode_all(
            b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n",
            BareNewline::Reject,
        );
        assert_eq!(body, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(end, Some(b"Subject: x\r\n\r\nhello\r\n.\r\n".len()));
        assert_eq!(outcome, DataOutcome::Complete);
    }

    #[test]
    fn empty_message_ends_at_first_dot() {
        let (body, end, _) = decode_all(b".\r\n", BareNewline::Reject);
        assert!(body.is_empty());
        assert_eq!(end, Some(3));
    }

    #[test]
    fn s_data_3_unstuffs_first_and_later_lines() {
        let (body, end, _) = decode_all(b"..first\r\n...\r\n.x\r\n.\r\n", BareNewline::Reject);
        assert_eq!(body, b".first\r\n..\r\nx\r\n");
        assert!(end.is_some());
    }

    #[test]
    fn s_smug_1_fake_endings_stay_inside() {
        for fake in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r",
            b"\r\n.\r",
            b"\r.\r\n",
            b"\n.\r",
        ] {
            let mut input = b"a".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n");
            let (_, end, outcome) = decode_all(&input, BareNewline::Reject);
            assert_eq!(end, None, "{fake:?} ended the data");
            assert_eq!(outcome, DataOutcome::BareNewline, "{fake:?}");
            let (body, end, outcome) = decode_all(&input, BareNewline::Normalize);
            assert_eq!(end, None, "{fake:?} ended the data when normalising");
            assert_eq!(outcome, DataOutcome::Complete);
            assert!(body.ends_with(b"MAIL FROM:<x@y>\r\n"), "{fake:?}: {body:?}");
        }
    }

    #[test]
    fn s_smug_2_bare_newline_refused_but_read_to_the_end() {
        let (body, end, outcome) = decode_all(b"a\nb\r\n.\r\n", BareNewline::Reject);
        assert_eq!(outcome, DataOutcome::BareNewline);
        assert_eq!(end, Some(8));
        assert!(body.is_empty());
        let (body, _, outcome) = decode_all(b"a\nb\rc\r\n.\r\n", BareNewline::Normalize);
        assert_eq!(outcome, DataOutcome::Complete);
        assert_eq!(body, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn s_line_7_long_line_and_size() {
        let mut decoder = DataDecoder::new(10, 1 << 20, BareNewline::Reject);
        let mut body = Vec::new();
        let (_, ended) = decoder.decode(b"01234567890\r\n.\r\n", &mut body);
        assert!(ended);
        assert_eq!(decoder.outcome(), DataOutcome::LineTooLong);
        let mut decoder = DataDecoder::new(1000, 10, BareNewline::Reject);
        let (_, ended) = decoder.decode(b"0123\r\n4567\r\n.\r\n", &mut body);
        assert!(ended);
        assert_eq!(decoder.outcome(), DataOutcome::TooBig);
        assert_eq!(decoder.body_bytes(), 12);
    }

    /// The definition, a byte at a time: what `dot_stuff` (which copies whole lines) must
    /// give for any content.
    fn dot_stuff_bytewise(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at_line_start = true;
        let mut index = 0;
        while index < content.len() {
            let byte = content[index];
            index += 1;
            if byte == b'\r' || byte == b'\n' {
                if byte == b'\r' && content.get(index) == Some(&b'\n') {
                    index += 1;
                }
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            } else {
                if at_line_start && byte == b'.' {
                    out.push(b'.');
                }
                out.push(byte);
                at_line_start = false;
            }
        }
        if !at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest::proptest! {
        #[test]
        fn s_data_4_dot_stuffing_matches_its_definition(
            content in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', b' ', 0xff]),
                0..200,
            )
        ) {
            proptest::prop_assert_eq!(dot_stuff(&content), dot_stuff_bytewise(&content));
        }
    }

    /// Everything a decoding shows: body, where it ended, outcome, counted octets.
    fn decode_in_pieces(
        input: &[u8],
        piece: usize,
        limits: (usize, u64),
        policy: BareNewline,
    ) -> (Vec<u8>, Option<usize>, DataOutcome, u64) {
        let mut decoder = DataDecoder::new(limits.0, limits.1, policy);
        let mut body = Vec::new();
        let mut used = 0;
        for chunk in input.chunks(piece.max(1)) {
            let (count, ended) = decoder.decode(chunk, &mut body);
            used += count;
            if ended {
                return (body, Some(used), decoder.outcome(), decoder.body_bytes());
            }
        }
        (body, None, decoder.outcome(), decoder.body_bytes())
    }

    proptest::proptest! {
        /// Whole lines copied at once (the fast path) give what one octet at a time gives,
        /// with limits small enough to be reached.
        #[test]
        fn whole_lines_decode_as_octet_by_octet(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', b' ']),
                0..300,
            ),
            max_line in 0usize..12,
            max_body in 0u64..200,
            normalize in proptest::bool::ANY,
        ) {
            let policy = if normalize { BareNewline::Normalize } else { BareNewline::Reject };
            let limits = (max_line, max_body);
            proptest::prop_assert_eq!(
                decode_in_pieces(&input, input.len(), limits, policy),
                decode_in_pieces(&input, 1, limits, policy)
            );
        }

        #[test]
        fn find_line_break_is_the_first_cr_or_lf(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'\r', b'\n', b'a', 0x0c, 0x0e, 0x8d, 0x8a, 0]),
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(
                find_line_break(&input),
                input.iter().position(|&b| b == b'\r' || b == b'\n')
            );
        }
    }

    #[test]
    fn s_data_4_dot_stuffing() {
        assert_eq!(dot_stuff(b".a\n..b\rc"), b"..a\r\n...b\r\nc\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n.\r\n");
    }
}
