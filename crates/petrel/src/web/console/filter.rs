//! The console's queue filters, read from the list page's query: `state` (pending, deferred,
//! held), `domain` (a recipient domain, or a parent of one), `sender` and `recipient` (parts of
//! the address, any case), `age` (at least this old: "30m", "2h", "1d") and `class` (the
//! class of a recipient's last reply: 2, 4, 5, or "none" before the first attempt). A message
//! is shown when it passes every filter given.

use petrel_queue::{Envelope, Place, Recipient, RecipientState};

/// What the list is narrowed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub state: Option<State>,
    pub domain: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// The least age, in seconds.
    pub age: Option<u64>,
    pub class: Option<Class>,
}

/// A message's state as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Due now, or being delivered.
    Pending,
    /// Waiting for its next attempt.
    Deferred,
    /// Held by an operator.
    Held,
}

impl State {
    pub const ALL: [State; 3] = [State::Pending, State::Deferred, State::Held];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Deferred => "deferred",
            State::Held => "held",
        }
    }

    /// The state of a message in `place` at `now`.
    pub fn of(place: Place, envelope: &Envelope, now: u64) -> State {
        if place == Place::Held {
            return State::Held;
        }
        let due = envelope
            .pending()
            .any(|(_, r)| r.next_attempt_unix_seconds <= now);
        if due { State::Pending } else { State::Deferred }
    }
}

/// The class of a last reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No attempt yet.
    None,
    Success,
    Transient,
    Permanent,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::None,
        Class::Success,
        Class::Transient,
        Class::Permanent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::None => "none",
            Class::Success => "2",
            Class::Transient => "4",
            Class::Permanent => "5",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Class::None => "no attempt yet",
            Class::Success => "2.x.x success",
            Class::Transient => "4.x.x transient",
            Class::Permanent => "5.x.x permanent",
        }
    }

    fn of(recipient: &Recipient) -> Class {
        match recipient
            .last
            .as_ref()
            .map(|last| last.code.to_string().chars().next())
        {
            None => Class::None,
            Some(Some('2')) => Class::Success,
            Some(Some('5')) => Class::Permanent,
            Some(_) => Class::Transient,
        }
    }
}

impl Filter {
    /// The filter a query gives; empty and unknown values are ignored, a bad age is an error.
    ///
    /// # Errors
    /// A sentence for the page.
    pub fn from_query(query: &[(String, String)]) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for (key, value) in query {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "state" => filter.state = State::ALL.into_iter().find(|s| s.as_str() == value),
                "domain" => {
                    filter.domain = Some(value.trim_start_matches('@').to_ascii_lowercase());
                }
                "sender" => filter.sender = Some(value.to_ascii_lowercase()),
                "recipient" => filter.recipient = Some(value.to_ascii_lowercase()),
                "age" => {
                    let age = humantime::parse_duration(value).map_err(|_| {
                        format!("age {value:?}: give a duration such as 30m, 2h or 1d")
                    })?;
                    filter.age = Some(age.as_secs());
                }
                "class" => filter.class = Class::ALL.into_iter().find(|c| c.as_str() == value),
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether nothing narrows the list.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the message in `place` passes at `now`.
    pub fn matches(&self, place: Place, envelope: &Envelope, now: u64) -> bool {
        let pending: Vec<&Recipient> = envelope
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .collect();
        self.state
            .is_none_or(|s| s == State::of(place, envelope, now))
            && self
                .domain
                .as_deref()
                .is_none_or(|domain| pending.iter().any(|r| in_domain(&r.address, domain)))
            && self
                .sender
                .as_deref()
                .is_none_or(|part| envelope.reverse_path.to_ascii_lowercase().contains(part))
            && self.recipient.as_deref().is_none_or(|part| {
                envelope
                    .recipients
                    .iter()
                    .any(|r| r.address.to_ascii_lowercase().contains(part))
            })
            && self
                .age
                .is_none_or(|age| now.saturating_sub(envelope.arrival_unix_seconds) >= age)
            && self
                .class
                .is_none_or(|class| pending.iter().any(|r| Class::of(r) == class))
    }
}

/// Whether `address` is in `domain` or a subdomain of it.
fn in_domain(address: &str, domain: &str) -> bool {
    let Some((_, at)) = address.rsplit_once('@') else {
        return false;
    };
    let at = at.to_ascii_lowercase();
    at == domain || at.ends_with(&format!(".{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_proto::EnhancedCode;
    use petrel_proto::params::Body;
    use petrel_queue::{Cause, DeliveryStatus, Verdict};

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn envelope(sender: &str, recipients: &[&str], arrival: u64) -> Envelope {
        Envelope {
            arrival_unix_seconds: arrival,
            client_address: "127.0.0.1".into(),
            client_helo: String::new(),
            reverse_path: sender.into(),
            body: Body::SevenBit,
            is_smtputf8: false,
            requires_tls: false,
            ret: None,
            envelope_id: None,
            recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
            message_id: None,
            history: Vec::new(),
        }
    }

    #[test]
    fn each_filter_narrows_and_an_empty_one_passes_all() {
        let now = 100_000;
        let mut deferred = envelope("Alice@Example.org", &["bob@mail.example.net"], now - 7200);
        deferred.recipients[0].next_attempt_unix_seconds = now + 600;
        deferred.recipients[0].last = Some(DeliveryStatus::decided(
            Verdict::Deferred,
            EnhancedCode::new(4, 4, 1),
            Cause::Unknown,
            "connection refused".into(),
        ));
        let fresh = envelope("carol@example.com", &["dan@example.org"], now - 10);

        let filter = |pairs: &[(&str, &str)]| Filter::from_query(&query(pairs)).unwrap();
        let shown = |f: &Filter| {
            [
                f.matches(Place::Active, &deferred, now),
                f.matches(Place::Active, &fresh, now),
                f.matches(Place::Held, &fresh, now),
            ]
        };
        assert!(filter(&[("state", ""), ("domain", " ")]).is_empty());
        assert_eq!(shown(&filter(&[])), [true, true, true]);
        assert_eq!(
            shown(&filter(&[("state", "deferred")])),
            [true, false, false]
        );
        assert_eq!(
            shown(&filter(&[("state", "pending")])),
            [false, true, false]
        );
        assert_eq!(shown(&filter(&[("state", "held")])), [false, false, true]);
        assert_eq!(
            shown(&filter(&[("domain", "example.net")])),
            [true, false, false]
        );
        assert_eq!(
            shown(&filter(&[("domain", "@EXAMPLE.ORG")])),
            [false, true, true]
        );
        assert_eq!(
            shown(&filter(&[("domain", "ample.net")])),
            [false, false, false]
        );
        assert_eq!(
            shown(&filter(&[("sender", "alice@")])),
            [true, false, false]
        );
        assert_eq!(shown(&filter(&[("recipient", "DAN")])), [false, true, true]);
        assert_eq!(shown(&filter(&[("age", "1h")])), [true, false, false]);
        assert_eq!(shown(&filter(&[("class", "4")])), [true, false, false]);
        assert_eq!(shown(&filter(&[("class", "none")])), [false, true, true]);
        assert_eq!(shown(&filter(&[("class", "5")])), [false, false, false]);
        assert_eq!(
            shown(&filter(&[("domain", "example.net"), ("class", "none")])),
            [false, false, false]
        );
        assert!(Filter::from_query(&query(&[("age", "soon")])).is_err());
    }
}
