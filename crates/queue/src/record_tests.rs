//! Unit tests of the envelope record: round trips of awkward envelopes (a deterministic
//! property test over generated values) and refusal of damaged records.

use super::*;
use crate::status::{Cause, DnsProblem, RemoteMta, Verdict};
use petrel_proto::client::Stage;
use petrel_proto::{EnhancedCode, Reply};

const AWKWARD: [&str; 12] = [
    "",
    " ",
    "+",
    "=",
    ";",
    ",",
    "a b",
    "\u{e9}l\u{e8}ve",
    "\u{1F426}",
    "\"quoted local\"",
    "x+2By=z",
    "end",
];

fn sample() -> (QueueId, Envelope) {
    let id = QueueId::parse("0654A1B2C3D4E0001").unwrap();
    let mut second = Recipient::new("\"john smith\"@example.org");
    second.notify = Some(Notify {
        is_never: false,
        on_success: true,
        on_failure: true,
        on_delay: false,
    });
    second.original_recipient = Some(OriginalRecipient {
        address_type: "rfc822".into(),
        address: "a+b=c@example.org".into(),
    });
    second.state = RecipientState::Failed;
    second.attempts = 7;
    second.next_attempt_unix_seconds = u64::MAX;
    second.last = Some(DeliveryStatus {
        verdict: Verdict::Failed,
        code: EnhancedCode::parse("5.1.1").unwrap(),
        cause: Cause::Reply(Stage::Rcpt),
        reply: Some(Reply {
            code: 550,
            enhanced: EnhancedCode::parse("5.1.1"),
            lines: vec!["<x@y> no such user; sorry".into(), "second line".into()],
        }),
        remote_mta: Some(RemoteMta {
            host: "mx.example.net".into(),
            address: Some("2001:db8::25".parse().unwrap()),
        }),
        detail: "550 5.1.1 <x@y> no such user; sorry".into(),
    });
    let envelope = Envelope {
        arrival_unix_seconds: 1_767_225_600,
        client_address: "2001:db8::1".into(),
        client_helo: "mail.example.org".into(),
        reverse_path: "alice+tag@example.org".into(),
        body: Body::EightBitMime,
        is_smtputf8: true,
        requires_tls: false,
        ret: Some(Ret::Headers),
        envelope_id: Some("abc+def=1".into()),
        recipients: vec![Recipient::new("Postmaster"), second],
        message_id: None,
        history: vec!["attempt 1: 451 4.4.1 no answer; retry".into()],
    };
    (id, envelope)
}

fn assert_round_trip(id: &QueueId, envelope: &Envelope) {
    let bytes = encode(id, envelope);
    assert!(bytes.is_ascii());
    assert_eq!(
        decode(&bytes),
        Ok((id.clone(), envelope.clone())),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn sample_round_trips_and_is_readable() {
    let (id, envelope) = sample();
    assert_round_trip(&id, &envelope);
    let text = String::from_utf8(encode(&id, &envelope)).unwrap();
    assert!(text.starts_with("petrel-envelope 2\nid 0654A1B2C3D4E0001\n"));
    assert!(text.contains("\nrcpt Postmaster state=pending attempts=0 next=0\n"));
    assert!(text.contains(" notify=SUCCESS,FAILURE orcpt=rfc822;a+2Bb+3Dc@example.org outcome=failed status=5.1.1 cause=reply-rcpt detail="));
    assert!(text.contains(" reply-code=550 reply-status=5.1.1 reply-line=<x@y>+20no+20such+20user+3B+20sorry reply-line=second+20line mta=mx.example.net mta-address=2001:db8::25\n"));
    assert!(text.ends_with("\nend\n"));
}

#[test]
fn a_record_without_outcomes_is_written_as_version_1() {
    let (id, mut envelope) = sample();
    for recipient in &mut envelope.recipients {
        recipient.last = None;
    }
    let bytes = encode(&id, &envelope);
    assert!(
        bytes.starts_with(b"petrel-envelope 1\n"),
        "readable by the previous release"
    );
    assert_eq!(decode(&bytes), Ok((id, envelope)));
}

#[test]
fn null_reverse_path_and_empty_values_round_trip() {
    let (id, mut envelope) = sample();
    envelope.reverse_path = String::new();
    envelope.client_helo = String::new();
    envelope.envelope_id = Some(String::new());
    envelope.ret = None;
    envelope.recipients[0].address = String::new();
    envelope.recipients[0].last = Some(DeliveryStatus::decided(
        Verdict::Deferred,
        EnhancedCode::parse("4.4.3").unwrap(),
        Cause::Dns(DnsProblem::ServFail),
        String::new(),
    ));
    envelope.recipients[0].notify = Some(Notify::default());
    envelope.recipients[1].notify = Some(Notify {
        is_never: true,
        on_success: false,
        on_failure: false,
        on_delay: true,
    });
    assert_round_trip(&id, &envelope);
    envelope.recipients.clear();
    assert_round_trip(&id, &envelope);
}

/// A small deterministic generator (xorshift), so the property test needs no dependency.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
    fn flag(&mut self) -> bool {
        self.below(2) == 0
    }
    fn text(&mut self) -> String {
        (0..self.below(4))
            .map(|_| AWKWARD[self.below(AWKWARD.len() as u64) as usize])
            .collect()
    }
    fn maybe_text(&mut self) -> Option<String> {
        self.flag().then(|| self.text())
    }
}

fn generate_status(g: &mut Generator) -> DeliveryStatus {
    let causes = [
        Cause::Reply(Stage::DataEnd),
        Cause::Lost(Stage::Greeting),
        Cause::Dns(DnsProblem::NoSuchDomain),
        Cause::Unknown,
    ];
    DeliveryStatus {
        verdict: [Verdict::Delivered, Verdict::Deferred, Verdict::Failed][g.below(3) as usize],
        code: EnhancedCode::new(4, g.below(8) as u16, g.below(20) as u16),
        cause: causes[g.below(causes.len() as u64) as usize],
        reply: g.flag().then(|| Reply {
            code: 200 + g.below(400) as u16,
            enhanced: g
                .flag()
                .then(|| EnhancedCode::new(5, 1, g.below(12) as u16)),
            lines: (0..g.below(3)).map(|_| g.text()).collect(),
        }),
        remote_mta: g.flag().then(|| RemoteMta {
            host: g.text(),
            address: g.flag().then(|| "192.0.2.7".parse().unwrap()),
        }),
        detail: g.text(),
    }
}

fn generate_envelope(g: &mut Generator) -> Envelope {
    let recipients = (0..g.below(4))
        .map(|_| Recipient {
            address: g.text(),
            notify: g.flag().then(|| Notify {
                is_never: g.flag(),
                on_success: g.flag(),
                on_failure: g.flag(),
                on_delay: g.flag(),
            }),
            original_recipient: g.flag().then(|| OriginalRecipient {
                address_type: g.text(),
                address: g.text(),
            }),
            state: [
                RecipientState::Pending,
                RecipientState::Delivered,
                RecipientState::Failed,
            ][g.below(3) as usize],
            attempts: g.next() as u32,
            next_attempt_unix_seconds: g.next(),
            last: g.flag().then(|| generate_status(g)),
            is_delay_notified: g.flag(),
        })
        .collect();
    Envelope {
        arrival_unix_seconds: g.next(),
        client_address: g.text(),
        client_helo: g.text(),
        reverse_path: g.text(),
        body: if g.flag() {
            Body::SevenBit
        } else {
            Body::EightBitMime
        },
        is_smtputf8: g.flag(),
        requires_tls: g.flag(),
        ret: [None, Some(Ret::Full), Some(Ret::Headers)][g.below(3) as usize],
        envelope_id: g.maybe_text(),
        recipients,
        message_id: g.maybe_text(),
        history: (0..g.below(3)).map(|_| g.text()).collect(),
    }
}

#[test]
fn property_decode_of_encode_is_identity() {
    let mut g = Generator(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let id = QueueId::parse(&format!("{:017X}", g.next() >> 4)).unwrap();
        let envelope = generate_envelope(&mut g);
        assert_round_trip(&id, &envelope);
    }
}

fn decode_text(text: &str) -> Result<(QueueId, Envelope), RecordError> {
    decode(text.as_bytes())
}

#[test]
fn truncation_at_every_byte_is_detected() {
    let (id, envelope) = sample();
    let bytes = encode(&id, &envelope);
    for length in 0..bytes.len() {
        assert!(
            decode(&bytes[..length]).is_err(),
            "prefix of {length} bytes"
        );
    }
}

#[test]
fn damaged_records_name_the_line() {
    let (id, envelope) = sample();
    let good = String::from_utf8(encode(&id, &envelope)).unwrap();
    let cases = [
        (
            good.replace("petrel-envelope 2", "petrel-envelope 3"),
            1,
            "version",
        ),
        (
            good.replace("petrel-envelope 2", "hello"),
            1,
            "not an envelope",
        ),
        (good.replace("\nhelo ", "\nhelo2 "), 5, "unknown key"),
        (
            good.replace("\narrival 1767225600", "\narrival +5"),
            3,
            "arrival",
        ),
        (
            good.replace("smtputf8 yes", "smtputf8 maybe"),
            8,
            "smtputf8",
        ),
        (
            good.replace("smtputf8 yes", "smtputf8 yes\nrequiretls no"),
            9,
            "requiretls",
        ),
        (good.replace("state=pending", "state=done"), 11, "state"),
        (
            good.replace("state=pending", "state=pending color=red"),
            11,
            "unknown",
        ),
        (
            good.replace("attempts=7", "attempts=4294967296"),
            12,
            "attempts",
        ),
        (good.replace("helo mail", "helo m\u{e9}il"), 5, "ASCII"),
        (good.replace("helo mail", "helo m+ZZail"), 5, "helo"),
        (
            good.replace("\nbody 8BITMIME", "\nbody 8BITMIME\nbody 7BIT"),
            8,
            "twice",
        ),
        (good.replace("\nid 0654A1B2C3D4E0001", ""), 13, "missing id"),
        (good.replace(" state=pending attempts=0", ""), 11, "state"),
        (
            format!("{good}rcpt x state=pending attempts=0 next=0\n"),
            15,
            "after end",
        ),
        (good.replace("end\n", ""), 14, "truncated"),
    ];
    for (text, line, reason) in cases {
        let error = decode_text(&text).unwrap_err();
        assert_eq!(error.line, line, "{error} for\n{text}");
        assert!(error.reason.contains(reason), "{error} for\n{text}");
    }
    assert_eq!(decode(b"").unwrap_err().line, 1);
    assert!(decode(&[0xFF, b'\n']).is_err());
}
