//! The probe transaction (`petrel probe`): MAIL and RCPT as a delivery would send them, then
//! RSET instead of DATA, so the server says what it would do with each recipient and nothing is
//! delivered. MAIL declares no SIZE (there is no content).

use super::commands::{mail_command, rcpt_command};
use super::{ClientSession, Expect, Outgoing, Transaction};

impl ClientSession {
    /// Starts a probe of `message`'s envelope; call only after `Ready`. The `Sent` result
    /// gives each recipient its RCPT reply (or the MAIL refusal), at stage `Rcpt` (`Mail`).
    pub fn probe(&mut self, message: Outgoing) {
        let count = message.recipients.len();
        self.push_line(&mail_command(&self.capabilities, &message, true));
        self.expected.push_back(Expect::Mail);
        if self.capabilities.pipelining {
            for index in 0..count {
                self.push_line(&rcpt_command(&self.capabilities, &message, index));
                self.expected.push_back(Expect::Rcpt(index));
            }
            self.push_line("RSET");
            self.expected.push_back(Expect::ProbeRset);
        }
        self.transaction = Some(Transaction {
            message,
            mail: None,
            recipients: vec![None; count],
            data: None,
            lmtp_data: vec![None; count],
            is_probe: true,
        });
    }
}
