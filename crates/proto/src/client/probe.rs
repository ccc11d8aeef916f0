//! The probe transaction (`petrel probe`): MAIL and RCPT as a delivery would send them, then
//! RSET instead of DATA, so the server says what it would do with each recipient and nothing is
//! delivered. MAIL declares no SIZE (there is no content).

use super::{ClientSession, Outgoing};

impl ClientSession {
    /// Starts a probe of `message`'s envelope; call only after `Ready`. The `Sent` result
    /// gives each recipient its RCPT reply (or the MAIL refusal), at stage `Rcpt` (`Mail`).
    pub fn probe(&mut self, message: Outgoing) {
        self.start(message, true);
    }
}
