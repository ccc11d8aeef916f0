//! Envelope records written by earlier versions of petrel still load. The fixtures under
//! `tests/fixtures/` are files a real petrel of record format 1 wrote (a message with a
//! recipient delivered by SMTP, one refused with 550 5.1.1, one deferred by a DNS SERVFAIL and
//! one delivered to a Maildir; and the DSN it sent), copied from its spool unchanged.

use petrel_proto::client::Stage;
use petrel_queue::RecipientState;
use petrel_queue::record::{decode, encode};
use petrel_queue::status::{Cause, Verdict};

const FOUR_OUTCOMES: &[u8] = include_bytes!("../fixtures/v1-four-outcomes.env");
const DSN: &[u8] = include_bytes!("../fixtures/v1-dsn.env");

#[test]
fn version_1_records_load_with_their_outcomes() {
    let (id, envelope) = decode(FOUR_OUTCOMES).unwrap();
    assert_eq!(id.as_str(), "661C068821BBA0000");
    let outcomes: Vec<_> = envelope
        .recipients
        .iter()
        .map(|r| {
            let last = r.last.as_ref().unwrap();
            (r.state, last.verdict, last.code.to_string(), last.cause)
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                RecipientState::Delivered,
                Verdict::Delivered,
                "2.0.0".into(),
                Cause::Unknown
            ),
            (
                RecipientState::Failed,
                Verdict::Failed,
                "5.1.1".into(),
                Cause::Unknown
            ),
            (
                RecipientState::Pending,
                Verdict::Deferred,
                "4.4.3".into(),
                Cause::Unknown
            ),
            (
                RecipientState::Delivered,
                Verdict::Delivered,
                "2.0.0".into(),
                Cause::Unknown
            ),
        ]
    );
    let refused = envelope.recipients[1].last.as_ref().unwrap();
    let reply = refused.reply.as_ref().unwrap();
    assert_eq!(reply.to_line(), "550 5.1.1 No such user here");
    let mta = refused.remote_mta.as_ref().unwrap();
    assert_eq!(
        (mta.host.as_str(), mta.address),
        ("127.0.0.1", "127.0.0.1".parse().ok())
    );
    let deferred = envelope.recipients[2].last.as_ref().unwrap();
    assert!(deferred.reply.is_none(), "our own description is no reply");
    assert!(
        deferred.detail.contains("Server Failure"),
        "{}",
        deferred.detail
    );
    assert!(
        envelope.recipients[3]
            .last
            .as_ref()
            .unwrap()
            .remote_mta
            .is_none()
    );
    assert_eq!(envelope.history.len(), 9);
}

#[test]
fn version_1_records_are_rewritten_as_version_2() {
    for fixture in [FOUR_OUTCOMES, DSN] {
        let (id, envelope) = decode(fixture).unwrap();
        let rewritten = encode(&id, &envelope);
        assert!(rewritten.starts_with(b"petrel-envelope 2\n"));
        assert_eq!(decode(&rewritten).unwrap(), (id, envelope));
    }
}

#[test]
fn version_2_keeps_the_stage_and_cause() {
    let (id, mut envelope) = decode(FOUR_OUTCOMES).unwrap();
    let last = envelope.recipients[1].last.as_mut().unwrap();
    last.cause = Cause::Reply(Stage::Rcpt);
    let (_, again) = decode(&encode(&id, &envelope)).unwrap();
    assert_eq!(
        again.recipients[1].last.as_ref().unwrap().cause,
        Cause::Reply(Stage::Rcpt)
    );
    let text = String::from_utf8(encode(&id, &envelope)).unwrap();
    assert!(text.contains(" cause=reply-rcpt "), "{text}");
    assert!(!text.contains(" remote-mta="), "{text}");
}
