//! The stages of a client session (RFC 5321 §4.5.3.2), and the reply that decided each
//! recipient of a transaction with the stage that gave it. Their words are stable: envelope
//! records store them.

use crate::reply::Reply;

/// A stage of the session (RFC 5321 §4.5.3.2): what it waits for a reply to, so the driver can
/// pick the timeout (C-TIME-1), and where a reply was given or a connection lost, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    /// EHLO or HELO, and STARTTLS and AUTH after them.
    Hello,
    Mail,
    Rcpt,
    Data,
    /// The end of the content (`.` or the last BDAT), where the reply decides delivery.
    DataEnd,
    Quit,
}

impl Stage {
    /// The word used in queue records and logs: `greeting`, `hello`, ..., `data-end`, `quit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Hello => "hello",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::DataEnd => "data-end",
            Stage::Quit => "quit",
        }
    }

    /// Parses the word written by [`Stage::as_str`].
    pub fn parse(word: &str) -> Option<Stage> {
        [
            Stage::Greeting,
            Stage::Hello,
            Stage::Mail,
            Stage::Rcpt,
            Stage::Data,
            Stage::DataEnd,
            Stage::Quit,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == word)
    }
}

/// The reply that decided one recipient of a transaction, and the stage that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReply {
    pub stage: Stage,
    pub reply: Reply,
}
