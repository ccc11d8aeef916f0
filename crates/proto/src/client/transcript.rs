//! The transcript of a client session, for people (`petrel send`, `petrel probe`): every
//! command, the content as its size, every reply with the stage it answers. Credentials never
//! appear in it: AUTH lines are recorded masked.
//!
//! Off unless asked for (`with_transcript`), so delivery pays nothing for it.

use super::{ClientSession, Stage};
use crate::reply::Reply;

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptLine {
    /// A command sent, as sent.
    Command(String),
    /// A command that carries a secret (AUTH), as shown instead of it.
    Secret(String),
    /// The message content (dot-stuffed, without the final `.`), by its size.
    Content { octets: usize },
    /// A reply received, and the stage it answers.
    Reply { stage: Stage, reply: Reply },
}

impl ClientSession {
    /// Records a transcript from now on; read it with `take_transcript`.
    pub fn with_transcript(mut self) -> ClientSession {
        self.transcript = Some(Vec::new());
        self
    }

    /// The lines recorded since the last call.
    pub fn take_transcript(&mut self) -> Vec<TranscriptLine> {
        self.transcript
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(super) fn note_command(&mut self, line: &str) {
        if let Some(transcript) = &mut self.transcript {
            transcript.push(TranscriptLine::Command(line.to_owned()));
        }
    }

    pub(super) fn note_reply(&mut self, stage: Stage, reply: &Reply) {
        if let Some(transcript) = &mut self.transcript {
            transcript.push(TranscriptLine::Reply {
                stage,
                reply: reply.clone(),
            });
        }
    }

    /// The content written with its ending `.` line (`total` octets in all).
    pub(super) fn note_content(&mut self, total: usize) {
        if let Some(transcript) = &mut self.transcript {
            let octets = total.saturating_sub(3);
            if octets > 0 {
                transcript.push(TranscriptLine::Content { octets });
            }
            transcript.push(TranscriptLine::Command(".".into()));
        }
    }

    /// Writes a command carrying a secret; the transcript shows `shown` instead.
    pub(super) fn push_secret(&mut self, line: &str, shown: &str) {
        if let Some(transcript) = &mut self.transcript {
            transcript.push(TranscriptLine::Secret(shown.to_owned()));
        }
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }
}
