//! Unit tests of the pure delivery core: what an attempt's typed outcomes do to the envelope
//! (state, retry time from the schedule, expiry with 4.4.7, history), which success notices
//! are owed, and which DSN a pass sends. The clock is a number passed in.

use std::time::Duration;

use petrel_proto::client::Stage;
use petrel_proto::params::Notify;
use petrel_proto::{EnhancedCode, Reply, status};
use petrel_queue::status::{Cause, DnsProblem};
use petrel_queue::{DeliveryStatus, Envelope, QueueId, Recipient, RecipientState, RemoteMta};

use super::*;
use crate::remote::{Attempt, Outcome};
use crate::schedule::RetryPolicy;

const ARRIVAL: u64 = 1_767_225_600;

fn settings() -> DeliverySettings {
    DeliverySettings {
        hostname: "mx.test".into(),
        mail_root: "/nonexistent".into(),
        local_domains: vec!["example.test".into()],
        recipient_delimiter: None,
        port: 25,
        retry: RetryPolicy {
            intervals: vec![Duration::from_secs(60), Duration::from_secs(600)],
            max_age: Duration::from_secs(3600),
        },
        concurrency_per_domain: 1,
        own_addresses: Vec::new(),
        keep_history: Duration::from_secs(60),
        routes: crate::route::Routes::default(),
        helo_name: "mx.test".into(),
        source_address: None,
        delay_notice_after: Duration::from_secs(1800),
        lmtp: None,
        tls: crate::tls_policy::TlsPolicies::default(),
        tls_client: crate::client::TlsClient::new(None),
        mta_sts: false,
        tls_reports: false,
        node_name: "test".into(),
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        arrival_unix_seconds: ARRIVAL,
        client_address: "192.0.2.1".into(),
        client_helo: "client.test".into(),
        reverse_path: "alice@example.test".into(),
        body: petrel_proto::params::Body::SevenBit,
        is_smtputf8: false,
        requires_tls: false,
        ret: None,
        envelope_id: None,
        recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
        message_id: None,
        history: Vec::new(),
    }
}

fn mx() -> RemoteMta {
    RemoteMta {
        host: "mx.example.net".into(),
        address: "192.0.2.25".parse().ok(),
    }
}

fn reply(code: u16, enhanced: &str, text: &str) -> Reply {
    Reply {
        code,
        enhanced: EnhancedCode::parse(enhanced),
        lines: vec![text.into()],
    }
}

fn from_reply(code: u16, enhanced: &str, stage: Stage) -> Outcome {
    Outcome::of(DeliveryStatus::from_reply(
        &reply(code, enhanced, "text"),
        stage,
        Some(mx()),
    ))
}

fn servfail() -> Outcome {
    Outcome::of(DeliveryStatus::decided(
        Verdict::Deferred,
        status::DIRECTORY_SERVER_FAILURE,
        Cause::Dns(DnsProblem::ServFail),
        "MX lookup for example.net failed: DNS SERVFAIL".into(),
    ))
}

fn attempt(outcomes: Vec<Outcome>) -> Attempt {
    Attempt {
        outcomes,
        history: vec!["tried".into()],
    }
}

fn id() -> QueueId {
    QueueId::parse("0654A1B2C3D4E0001").unwrap()
}

#[test]
fn c_retry_4_replies_decide_delivered_failed_and_deferred() {
    let mut envelope = envelope(&["a@example.net", "b@example.net", "c@example.net"]);
    let outcomes = vec![
        from_reply(250, "2.0.0", Stage::DataEnd),
        from_reply(550, "5.1.1", Stage::Rcpt),
        from_reply(451, "4.3.0", Stage::Rcpt),
    ];
    let now = ARRIVAL + 10;
    let successes = apply_outcomes(
        &settings(),
        &mut envelope,
        &[0, 1, 2],
        &attempt(outcomes),
        now,
        Transport::Smtp,
    );
    assert!(successes.is_empty(), "nobody asked for NOTIFY=SUCCESS");
    let states: Vec<_> = envelope.recipients.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            RecipientState::Delivered,
            RecipientState::Failed,
            RecipientState::Pending
        ]
    );
    assert!(envelope.recipients.iter().all(|r| r.attempts == 1));
    assert_eq!(envelope.recipients[2].next_attempt_unix_seconds, now + 60);
    let refused = envelope.recipients[1].last.as_ref().unwrap();
    assert_eq!(refused.cause, Cause::Reply(Stage::Rcpt));
    assert_eq!(refused.code.to_string(), "5.1.1");
    assert_eq!(refused.remote_mta, Some(mx()));
    // The attempt's own lines, then one per recipient saying what was decided.
    assert_eq!(envelope.history.len(), 4);
    assert!(envelope.history[2].contains(
        "b@example.net: 550 5.1.1 text (the server's reply at RCPT) -> failed permanently"
    ));
    assert!(envelope.history[3].contains("-> deferred; retry at"));
}

#[test]
fn c_retry_2_a_deferral_past_max_age_fails_with_4_4_7_keeping_the_reply() {
    let mut envelope = envelope(&["a@example.net"]);
    envelope.recipients[0].attempts = 5;
    let now = ARRIVAL + 3600;
    apply_outcomes(
        &settings(),
        &mut envelope,
        &[0],
        &attempt(vec![from_reply(451, "4.7.1", Stage::Rcpt)]),
        now,
        Transport::Smtp,
    );
    let recipient = &envelope.recipients[0];
    assert_eq!(recipient.state, RecipientState::Failed);
    let last = recipient.last.as_ref().unwrap();
    assert_eq!(last.verdict, Verdict::Failed);
    assert_eq!(last.code, status::DELIVERY_TIME_EXPIRED);
    assert_eq!(last.cause, Cause::Expired);
    assert_eq!(
        last.reply.as_ref().unwrap().code,
        451,
        "the last reply stays"
    );
    assert!(last.detail.contains("451 4.7.1"), "{}", last.detail);
}

/// C-RTLS-2: a REQUIRETLS message that no hop could take fails at expiry with 5.7.30, not
/// 4.4.7.
#[test]
fn c_rtls_2_a_requiretls_deferral_past_max_age_fails_with_5_7_30() {
    let mut envelope = envelope(&["a@example.net"]);
    envelope.requires_tls = true;
    envelope.recipients[0].attempts = 5;
    let deferred = Outcome::of(DeliveryStatus::decided(
        Verdict::Deferred,
        status::REQUIRETLS_NEEDED,
        Cause::Tls(petrel_queue::status::TlsProblem::Policy),
        "no MX host offers REQUIRETLS".into(),
    ));
    apply_outcomes(
        &settings(),
        &mut envelope,
        &[0],
        &attempt(vec![deferred]),
        ARRIVAL + 3600,
        Transport::Smtp,
    );
    let last = envelope.recipients[0].last.as_ref().unwrap();
    assert_eq!(last.verdict, Verdict::Failed);
    assert_eq!(last.code.to_string(), "5.7.30");
}

#[test]
fn c_dsn_2_success_notices_only_where_asked_and_owed() {
    let mut envelope = envelope(&["a@example.net", "b@example.net", "c@example.net"]);
    for recipient in &mut envelope.recipients[..2] {
        recipient.notify = Some(Notify {
            on_success: true,
            ..Notify::default()
        });
    }
    let delivered = || from_reply(250, "2.0.0", Stage::DataEnd);
    let with_dsn = Outcome {
        hop_has_dsn: true,
        ..delivered()
    };
    let outcomes = vec![delivered(), with_dsn, delivered()];
    let relayed = apply_outcomes(
        &settings(),
        &mut envelope.clone(),
        &[0, 1, 2],
        &attempt(outcomes.clone()),
        ARRIVAL,
        Transport::Smtp,
    );
    // A hop with DSN reports success itself (RFC 3461 §5.2.2); c never asked.
    assert_eq!(relayed, [(0, Action::Relayed)]);
    let final_delivery = apply_outcomes(
        &settings(),
        &mut envelope,
        &[0, 1, 2],
        &attempt(outcomes),
        ARRIVAL,
        Transport::Lmtp,
    );
    assert_eq!(
        final_delivery,
        [(0, Action::Delivered), (1, Action::Delivered)]
    );
}

#[test]
fn c_bounce_1_failures_bounce_once_and_never_to_the_null_sender() {
    let mut envelope = envelope(&["a@example.net"]);
    let before = [RecipientState::Pending];
    apply_outcomes(
        &settings(),
        &mut envelope,
        &[0],
        &attempt(vec![from_reply(550, "5.1.1", Stage::Rcpt)]),
        ARRIVAL,
        Transport::Smtp,
    );
    let message = b"Subject: hi\r\n\r\nbody\r\n";
    let mut null_sender = envelope.clone();
    null_sender.reverse_path = String::new();
    let none = notice_for(
        &settings(),
        &id(),
        &mut null_sender,
        &before,
        &[],
        message,
        ARRIVAL,
    );
    assert!(none.is_none(), "never a bounce to <>");
    let (bounce, content) = notice_for(
        &settings(),
        &id(),
        &mut envelope,
        &before,
        &[],
        message,
        ARRIVAL,
    )
    .unwrap();
    assert_eq!(bounce.reverse_path, "", "a DSN goes from the null sender");
    assert_eq!(bounce.recipients[0].address, "alice@example.test");
    let text = String::from_utf8(content).unwrap();
    assert!(text.contains("Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 text\r\n"), "{text}");
    // Already failed before this pass: no second bounce.
    let again = notice_for(
        &settings(),
        &id(),
        &mut envelope,
        &[RecipientState::Failed],
        &[],
        message,
        ARRIVAL,
    );
    assert!(again.is_none());
}

#[test]
fn c_dsn_2_notify_never_suppresses_the_bounce() {
    let mut envelope = envelope(&["a@example.net"]);
    envelope.recipients[0].notify = Some(Notify {
        is_never: true,
        ..Notify::default()
    });
    envelope.recipients[0].state = RecipientState::Failed;
    let notice = notice_for(
        &settings(),
        &id(),
        &mut envelope,
        &[RecipientState::Pending],
        &[],
        b"\r\n",
        ARRIVAL,
    );
    assert!(notice.is_none());
}

#[test]
fn a_delay_notice_goes_once_after_delay_notice_after_and_says_servfail() {
    let mut envelope = envelope(&["a@example.net"]);
    let before = [RecipientState::Pending];
    let message = b"Subject: hi\r\n\r\n";
    let early = ARRIVAL + 60;
    apply_outcomes(
        &settings(),
        &mut envelope,
        &[0],
        &attempt(vec![servfail()]),
        early,
        Transport::Smtp,
    );
    assert!(
        notice_for(
            &settings(),
            &id(),
            &mut envelope,
            &before,
            &[],
            message,
            early
        )
        .is_none()
    );
    let late = ARRIVAL + 1800;
    let (_, content) = notice_for(
        &settings(),
        &id(),
        &mut envelope,
        &before,
        &[],
        message,
        late,
    )
    .unwrap();
    let text = String::from_utf8(content).unwrap();
    assert!(
        text.contains("Action: delayed\r\nStatus: 4.4.3\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Status: 4.4.3 (DNS SERVFAIL): MX lookup"),
        "{text}"
    );
    // Why, from the reference, in both of its languages.
    assert!(
        text.contains("    What it means: ") && text.contains("    Artinya: "),
        "{text}"
    );
    assert!(text.contains("    Yang dapat Anda lakukan: "), "{text}");
    assert!(
        !text.contains("Diagnostic-Code"),
        "no server replied: {text}"
    );
    assert!(
        !text.contains("Remote-MTA"),
        "no server was reached: {text}"
    );
    assert!(envelope.recipients[0].is_delay_notified);
    let later = ARRIVAL + 2400;
    assert!(
        notice_for(
            &settings(),
            &id(),
            &mut envelope,
            &before,
            &[],
            message,
            later
        )
        .is_none()
    );
}

/// The text of the notice owed after one recipient's `outcome` at `now` (one is owed).
fn notice_after(outcome: Outcome, now: u64) -> String {
    let mut envelope = envelope(&["a@example.net"]);
    apply_outcomes(
        &settings(),
        &mut envelope,
        &[0],
        &attempt(vec![outcome]),
        now,
        Transport::Smtp,
    );
    let (_, content) = notice_for(
        &settings(),
        &id(),
        &mut envelope,
        &[RecipientState::Pending],
        &[],
        b"Subject: hi\r\n\r\nbody\r\n",
        now,
    )
    .unwrap();
    String::from_utf8(content).unwrap()
}

/// Issue 17: a bounce explains what the remote server sent even when the reference has no entry
/// for its code: Microsoft's 5.7.606 from an outlook.com host gets Microsoft's meaning and
/// advice in both languages; the same code with a text no provider is known by is explained
/// from its parts.
#[test]
fn a_bounce_explains_codes_outside_the_reference() {
    let line = "Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/";
    let microsoft = RemoteMta {
        host: "example-com.mail.protection.outlook.com".into(),
        address: "192.0.2.25".parse().ok(),
    };
    for (mta, line, expected) in [
        (microsoft, line, "Exchange Online Protection"),
        (mx(), "Refused by local policy", "not in the IANA registry"),
    ] {
        let outcome = Outcome::of(DeliveryStatus::from_reply(
            &reply(550, "5.7.606", line),
            Stage::Rcpt,
            Some(mta),
        ));
        let text = notice_after(outcome, ARRIVAL);
        assert!(text.contains(expected), "{text}");
        assert!(
            text.contains("    What it means: ") && text.contains("    Artinya: "),
            "{text}"
        );
    }
}

/// Issue 15: a TLS policy failure (4.7.5, the typed cause tls-certificate) that goes on past
/// `delay_notice_after` gives the sender a delay notice saying why, in English and Indonesian.
#[test]
fn a_tls_policy_deferral_is_explained_in_the_delay_notice_in_both_languages() {
    let failed = Outcome::of(DeliveryStatus::decided(
        Verdict::Deferred,
        status::CRYPTOGRAPHIC_FAILURE,
        Cause::Tls(petrel_queue::status::TlsProblem::Certificate),
        "mx.example.net: certificate not valid for mx.example.net (policy verify)".into(),
    ));
    let text = notice_after(failed, ARRIVAL + 1800);
    assert!(
        text.contains("Action: delayed\r\nStatus: 4.7.5\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Status: 4.7.5 (TLS certificate not acceptable)"),
        "{text}"
    );
    assert!(
        text.contains("What it means: A cryptographic step failed"),
        "{text}"
    );
    assert!(
        text.contains("Artinya: Sebuah langkah kriptografi gagal"),
        "{text}"
    );
}
