//! The envelope of a queued message: who sent it, from where, with which DSN parameters, and
//! each recipient with its delivery state.
//!
//! Contract: plain data. The receiver fills it once (all recipients `Pending`); the delivery
//! side changes recipient states, attempt counts and last replies and writes it back with
//! `Queue::update`. Addresses are kept as decoded text (`local@domain`, no angle brackets) and
//! may hold spaces or UTF-8 from quoted local parts; the record format escapes them.
//!
//! Failure policy: no IO, never panics. Handles no untrusted bytes itself (the session has
//! already parsed and validated what it stores here).

use petrel_proto::params::{Body, Notify, OriginalRecipient, Ret};

use crate::status::DeliveryStatus;

/// What we know about one message apart from its bytes (RFC 5321 §2.3.1, RFC 3461 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// When the message was accepted, in seconds since the Unix epoch.
    pub arrival_unix_seconds: u64,
    /// The peer's IP address as text, e.g. `127.0.0.1`.
    pub client_address: String,
    /// The argument of EHLO/HELO, `""` if none was given.
    pub client_helo: String,
    /// The reverse path without brackets: `""` for the null reverse path `<>`, else
    /// `local@domain`.
    pub reverse_path: String,
    /// `BODY=` of MAIL (RFC 6152).
    pub body: Body,
    /// Whether MAIL carried `SMTPUTF8` (RFC 6531).
    pub is_smtputf8: bool,
    /// Whether MAIL carried `REQUIRETLS` (RFC 8689): every hop verified TLS, or no delivery.
    pub requires_tls: bool,
    /// `RET=` of MAIL (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// `ENVID=` of MAIL, decoded from xtext (RFC 3461 §4.4).
    pub envelope_id: Option<String>,
    /// The recipients in the order RCPT accepted them.
    pub recipients: Vec<Recipient>,
    /// The `Message-ID:` of the content, so `queue show` can find the message by it.
    pub message_id: Option<String>,
    /// What happened to the message, one line per event, oldest first: each delivery attempt
    /// with the DNS answer, the host tried, the reply and the decision taken.
    pub history: Vec<String>,
}

/// One forward path of the envelope and its delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `local@domain` (or `Postmaster`) without brackets; may hold spaces or UTF-8.
    pub address: String,
    /// `NOTIFY=` of RCPT (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// `ORCPT=` of RCPT (RFC 3461 §4.2).
    pub original_recipient: Option<OriginalRecipient>,
    /// Where delivery to this recipient stands.
    pub state: RecipientState,
    /// How many delivery attempts were made.
    pub attempts: u32,
    /// Earliest time of the next attempt in seconds since the Unix epoch; 0 = as soon as
    /// possible.
    pub next_attempt_unix_seconds: u64,
    /// The outcome of the last attempt: verdict, code, cause, reply and host.
    pub last: Option<DeliveryStatus>,
    /// A delay notice (DSN Action: delayed) went to the sender; there is only one.
    pub is_delay_notified: bool,
}

impl Recipient {
    /// A pending recipient without DSN parameters, never attempted.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            notify: None,
            original_recipient: None,
            state: RecipientState::Pending,
            attempts: 0,
            next_attempt_unix_seconds: 0,
            last: None,
            is_delay_notified: false,
        }
    }
}

/// Delivery state of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Not yet delivered; to be attempted (again).
    Pending,
    /// Delivered; nothing more to do.
    Delivered,
    /// Permanently failed (a bounce is owed unless NOTIFY says otherwise).
    Failed,
}

impl RecipientState {
    /// The word used in the envelope record: `pending`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }

    /// Parses the word written by [`RecipientState::as_str`] (exact, lower case).
    pub fn parse(word: &str) -> Option<RecipientState> {
        match word {
            "pending" => Some(RecipientState::Pending),
            "delivered" => Some(RecipientState::Delivered),
            "failed" => Some(RecipientState::Failed),
            _ => None,
        }
    }
}

impl Envelope {
    /// The recipients still to be delivered, with their index in `recipients`.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.recipients
            .iter()
            .enumerate()
            .filter(|(_, recipient)| recipient.state == RecipientState::Pending)
    }

    /// Whether no recipient is pending any more (the message can leave the queue).
    pub fn is_finished(&self) -> bool {
        self.pending().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_round_trip() {
        for state in [
            RecipientState::Pending,
            RecipientState::Delivered,
            RecipientState::Failed,
        ] {
            assert_eq!(RecipientState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RecipientState::parse("Pending"), None);
    }

    #[test]
    fn pending_and_finished() {
        let mut envelope = Envelope {
            arrival_unix_seconds: 0,
            client_address: "127.0.0.1".into(),
            client_helo: String::new(),
            reverse_path: String::new(),
            body: Body::SevenBit,
            is_smtputf8: false,
            requires_tls: false,
            ret: None,
            envelope_id: None,
            recipients: vec![
                Recipient::new("a@example.org"),
                Recipient::new("b@example.org"),
            ],
            message_id: None,
            history: Vec::new(),
        };
        envelope.recipients[0].state = RecipientState::Delivered;
        let pending: Vec<usize> = envelope.pending().map(|(index, _)| index).collect();
        assert_eq!(pending, vec![1]);
        assert!(!envelope.is_finished());
        envelope.recipients[1].state = RecipientState::Failed;
        assert!(envelope.is_finished());
    }
}
