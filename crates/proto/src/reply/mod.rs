//! SMTP replies as data: basic reply codes (RFC 5321 §4.2), enhanced status codes (RFC 3463,
//! RFC 5248, RFC 2034) and their rendering on the wire.
//!
//! Every reply petrel sends is a named `Template` in `standard`; call sites never spell codes.
//! Rendering is pure and total: texts are sanitised so a reply is always valid SMTP.

pub mod parse;
pub mod standard;
pub mod status;

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code; the caller keeps class in 2, 4 or 5.
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// The class-only code `class.0.0` of a reply that carried none (RFC 3463 §3.1).
    pub const fn undefined(class: u8) -> EnhancedCode {
        EnhancedCode::new(class, 0, 0)
    }

    /// The same subject and detail in the transient class 4: a permanent refusal we retry.
    pub const fn as_transient(self) -> EnhancedCode {
        EnhancedCode::new(4, self.subject, self.detail)
    }

    /// The same subject and detail in the permanent class 5: a deferral that has run out.
    pub const fn as_permanent(self) -> EnhancedCode {
        EnhancedCode::new(5, self.subject, self.detail)
    }

    /// Parses `class.subject.detail` (the class 2, 4 or 5), as records and queries spell it.
    pub fn parse(text: &str) -> Option<EnhancedCode> {
        parse::parse_enhanced(text).filter(|_| !text.contains(' '))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A reply: a three-digit code, an optional enhanced code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

impl Reply {
    /// True for 2yz and 3yz.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4yz.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True for 5yz.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as one line of text, as logs and queue records show it.
    pub fn to_line(&self) -> String {
        let mut out = self.code.to_string();
        if let Some(enhanced) = self.enhanced {
            out.push(' ');
            out.push_str(&enhanced.to_string());
        }
        for line in &self.lines {
            out.push(' ');
            out.push_str(line);
        }
        out
    }

    /// Appends the wire form: `ccc-` continuation lines, a last `ccc ` line, each ending CRLF and
    /// each carrying the enhanced code when there is one (RFC 2034 §3).
    pub fn render(&self, out: &mut Vec<u8>) {
        self.render_lines(out, true);
    }

    /// Renders every line as a continuation ("220-..."): the start of a reply whose last line
    /// comes later (the pre-greet wait's first greeting line).
    pub fn render_continued(&self, out: &mut Vec<u8>) {
        self.render_lines(out, false);
    }

    fn render_lines(&self, out: &mut Vec<u8>, is_complete: bool) {
        let count = self.lines.len().max(1);
        for index in 0..count {
            let text = self.lines.get(index).map(String::as_str).unwrap_or("");
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(if is_complete && index + 1 == count {
                b' '
            } else {
                b'-'
            });
            if let Some(enhanced) = self.enhanced {
                out.extend_from_slice(enhanced.to_string().as_bytes());
                if !text.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend(sanitise(text).bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

/// Replaces CR, LF and other controls so a text can never end a reply early or inject one.
fn sanitise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(|c| !c.is_control()) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

/// A named reply: its codes and default text. `standard` holds every one petrel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub name: &'static str,
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub text: &'static str,
}

impl Template {
    /// The reply with its default text.
    pub fn reply(&self) -> Reply {
        self.with_text(self.text)
    }

    /// The reply with another text (an address, a queue id), same codes.
    pub fn with_text(&self, text: impl Into<String>) -> Reply {
        Reply {
            code: self.code,
            enhanced: self.enhanced,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply with these codes.
    pub fn with_lines(&self, lines: Vec<String>) -> Reply {
        Reply {
            code: self.code,
            enhanced: self.enhanced,
            lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_multiline_with_enhanced_code_on_every_line() {
        let reply = standard::HELP.with_lines(vec!["one".into(), "two".into()]);
        let mut out = Vec::new();
        reply.render(&mut out);
        assert_eq!(out, b"214-2.0.0 one\r\n214 2.0.0 two\r\n");
    }

    #[test]
    fn text_cannot_inject_a_line() {
        let mut out = Vec::new();
        standard::MAIL_OK.with_text("a\r\n250 b").render(&mut out);
        assert_eq!(out, b"250 2.1.0 a??250 b\r\n");
    }
}
