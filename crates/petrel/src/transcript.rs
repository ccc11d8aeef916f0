//! How `petrel send` and `petrel probe` show a client session: `C:` and `S:` lines from the
//! session's transcript (credentials masked by `proto`), the content as its size, and each
//! reply's title and meaning from the reply-code reference.

use petrel_catalogue::{Catalogue, Lang};
use petrel_proto::client::{SessionFailure, TranscriptLine};
use petrel_proto::reply::Reply;

/// The printed lines of one transcript line.
pub(crate) fn printed(line: &TranscriptLine) -> Vec<String> {
    match line {
        TranscriptLine::Command(text) | TranscriptLine::Secret(text) => vec![format!("C: {text}")],
        TranscriptLine::Content { octets } => {
            vec![format!("C: <{octets} octets of message content>")]
        }
        TranscriptLine::Reply { reply, .. } => {
            let mut wire = Vec::new();
            reply.render(&mut wire);
            String::from_utf8_lossy(&wire)
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| format!("S: {l}"))
                .collect()
        }
    }
}

/// Why a session could not go on, in words for people (`send` and `probe` say the same).
pub(crate) fn refusal(failure: &SessionFailure) -> String {
    match failure {
        SessionFailure::Greeting(reply) => {
            format!("the server refused the session: {}", reply.to_line())
        }
        SessionFailure::Hello(reply) => {
            format!("the server refused EHLO and HELO: {}", reply.to_line())
        }
        SessionFailure::Protocol(reason) => format!("protocol error: {reason}"),
        SessionFailure::Auth(reply) => {
            format!("the server refused the credentials: {}", reply.to_line())
        }
        SessionFailure::AuthUnavailable(reason) => reason.clone(),
    }
}

/// A reply's code, title and meaning from the reference.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Explanation {
    pub code: String,
    pub title: String,
    pub meaning: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.title, self.meaning)
    }
}

/// The explanation of a reply: its enhanced code's when the reference has it, else its basic
/// code's; `None` when the reference has neither (or does not load).
pub(crate) fn explanation(reply: &Reply) -> Option<Explanation> {
    let enhanced = reply.enhanced.map(|e| e.to_string());
    enhanced
        .and_then(|code| explain_code(&code))
        .or_else(|| explain_code(&reply.code.to_string()))
}

/// The explanation of one code (`556`, `5.1.10`), when the reference has it.
pub(crate) fn explain_code(code: &str) -> Option<Explanation> {
    let text = Catalogue::get().ok()?.entry(code)?.text(Lang::En);
    Some(Explanation {
        code: code.to_owned(),
        title: text.title.clone(),
        meaning: text
            .meaning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })
}
