//! STARTTLS and AUTH in the server session (docs/conformance.md §8-9): golden transcripts with
//! the driver's handshake simulated by `tls_started`.

use petrel_proto::base64;
use petrel_proto::{ServerSession, SessionConfig};

use crate::server::run;

fn submission() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        can_start_tls: true,
        offers_auth: true,
        requires_auth: true,
        ..SessionConfig::default()
    }
}

fn exchange(session: &mut ServerSession, input: &str) -> String {
    session.receive(input.as_bytes());
    run(session, &mut Vec::new());
    String::from_utf8_lossy(&session.take_output()).into_owned()
}

#[test]
fn s_tls_1_2_3_starttls_injection_and_reset() {
    let mut session = ServerSession::new(submission());
    session.take_output();
    let ehlo = exchange(&mut session, "EHLO c.test\r\n");
    assert!(
        ehlo.contains("250-STARTTLS\r\n") && !ehlo.contains("AUTH"),
        "AUTH only inside TLS: {ehlo}"
    );
    // S-TLS-2: the RSET pipelined with STARTTLS is never answered; the session ends after the
    // handshake.
    let reply = exchange(&mut session, "STARTTLS\r\nRSET\r\n");
    assert_eq!(
        reply,
        "220 2.0.0 Ready to start TLS\r\n421 4.7.0 Commands sent with STARTTLS were discarded; closing transmission channel\r\n"
    );
    assert!(session.is_closed());
}

#[test]
fn s_auth_1_to_9_exchange() {
    let mut session = ServerSession::new(submission());
    session.take_output();
    exchange(&mut session, "EHLO c.test\r\n");
    assert_eq!(
        exchange(&mut session, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<alice@mx.test>\r\n"),
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(
        exchange(&mut session, "STARTTLS extra\r\n"),
        "501 5.5.4 Syntax error in parameters or arguments\r\n"
    );
    assert_eq!(
        exchange(&mut session, "STARTTLS\r\n"),
        "220 2.0.0 Ready to start TLS\r\n"
    );
    // S-TLS-3: after TLS nothing is remembered; EHLO first.
    assert_eq!(
        exchange(&mut session, "AUTH PLAIN\r\n"),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    let ehlo = exchange(&mut session, "EHLO c.test\r\n");
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN\r\n") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert_eq!(
        exchange(&mut session, "STARTTLS\r\n"),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    assert_eq!(
        exchange(&mut session, "AUTH CRAM-MD5\r\n"),
        "504 5.5.4 Unrecognized authentication mechanism\r\n"
    );
    assert_eq!(exchange(&mut session, "AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(
        exchange(&mut session, "*\r\n"),
        "501 5.7.0 Authentication cancelled\r\n"
    );
    assert_eq!(
        exchange(&mut session, "AUTH LOGIN\r\n"),
        "334 VXNlcm5hbWU6\r\n"
    );
    assert_eq!(
        exchange(&mut session, "not base64!\r\n"),
        "501 5.5.2 Invalid base64 data\r\n"
    );
    let wrong = format!("AUTH PLAIN {}\r\n", base64::encode(b"\0alice\0wrong"));
    assert_eq!(
        exchange(&mut session, &wrong),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    let long = format!("AUTH PLAIN {}\r\n", "A".repeat(12_300));
    assert_eq!(
        exchange(&mut session, &long),
        "500 5.5.6 Authentication exchange line is too long\r\n"
    );
    let right = format!("AUTH PLAIN {}\r\n", base64::encode(b"\0alice\0secret"));
    assert_eq!(
        exchange(&mut session, &right),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(session.authenticated_as(), Some("alice"));
    assert_eq!(
        exchange(&mut session, &right),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<alice@mx.test> AUTH=<>\r\n"),
        "250 2.1.0 Sender OK\r\n"
    );
}

#[test]
fn s_auth_5_long_sasl_response_and_s_auth_9_failures() {
    let mut session = ServerSession::new(SessionConfig {
        is_tls: true,
        ..submission()
    });
    session.take_output();
    exchange(&mut session, "EHLO c.test\r\n");
    exchange(&mut session, "AUTH PLAIN\r\n");
    let long = format!("{}\r\n", "A".repeat(12_400));
    assert_eq!(
        exchange(&mut session, &long),
        "500 5.5.6 Authentication exchange line is too long\r\n"
    );
    let wrong = format!("AUTH PLAIN {}\r\n", base64::encode(b"\0alice\0wrong"));
    for _ in 0..4 {
        assert_eq!(
            exchange(&mut session, &wrong),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
    }
    assert_eq!(
        exchange(&mut session, &wrong),
        "535 5.7.8 Authentication credentials invalid\r\n421 4.7.0 Too many authentication failures, closing transmission channel\r\n"
    );
}

/// S-RTLS-1: REQUIRETLS is offered only inside TLS; asked for on a plain session it is refused
/// with 530 5.7.10, and inside TLS the MAIL carrying it is taken.
#[test]
fn s_rtls_1_requiretls_only_inside_tls() {
    let config = SessionConfig {
        hostname: "mx.test".into(),
        can_start_tls: true,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(config);
    session.take_output();
    let ehlo = exchange(&mut session, "EHLO c.test\r\n");
    assert!(!ehlo.contains("REQUIRETLS"), "{ehlo}");
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<alice@c.test> REQUIRETLS\r\n"),
        "530 5.7.10 REQUIRETLS needs a TLS session: STARTTLS first\r\n"
    );
    exchange(&mut session, "STARTTLS\r\n");
    session.tls_started();
    let ehlo = exchange(&mut session, "EHLO c.test\r\n");
    assert!(ehlo.contains("250-REQUIRETLS\r\n"), "{ehlo}");
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<alice@c.test> REQUIRETLS\r\n"),
        "250 2.1.0 Sender OK\r\n"
    );
}

/// S-SESS-1: a client the door refuses gets a 554 greeting, 503 5.5.1 to everything but QUIT,
/// and 221 to QUIT; one caught after the greeting began (pre-greet) is greeted, and refused at
/// MAIL.
#[test]
fn s_sess_1_refused_sessions() {
    use petrel_proto::Refusal;
    use petrel_proto::standard;
    let refused = SessionConfig {
        hostname: "mx.test".into(),
        refusal: Some(Refusal::Greeting(
            standard::DNSBL_LISTED.with_text("Service unavailable; listed"),
        )),
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(refused);
    assert_eq!(
        String::from_utf8(session.take_output()).unwrap(),
        "554 Service unavailable; listed\r\n"
    );
    assert_eq!(
        exchange(&mut session, "EHLO c.test\r\n"),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<a@c.test>\r\n"),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    assert!(exchange(&mut session, "QUIT\r\n").starts_with("221 "));
    assert!(session.is_closed());

    let caught = SessionConfig {
        hostname: "mx.test".into(),
        refusal: Some(Refusal::Mail(standard::PREGREET_VIOLATION.reply())),
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(caught);
    assert!(
        String::from_utf8(session.take_output())
            .unwrap()
            .starts_with("220 mx.test")
    );
    assert!(exchange(&mut session, "EHLO c.test\r\n").starts_with("250-"));
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<a@c.test>\r\n"),
        "554 5.5.1 Protocol error: the client spoke before the greeting\r\n"
    );
}

/// `checks_helo` (the door's HELO checks): garbage 501 5.5.4, this host's name 550 5.7.1, both
/// leaving the session as it was (S-SESS-5); a plausible name, a single label with an
/// underscore and an address literal pass.
#[test]
fn helo_checks_for_clients_of_the_internet() {
    let config = SessionConfig {
        hostname: "mx.test".into(),
        checks_helo: true,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(config);
    session.take_output();
    assert_eq!(
        exchange(&mut session, "EHLO mx.test\r\n"),
        "550 5.7.1 EHLO/HELO name claims to be this host\r\n"
    );
    assert_eq!(
        exchange(&mut session, "HELO MX.TEST.\r\n"),
        "550 5.7.1 EHLO/HELO name claims to be this host\r\n"
    );
    assert_eq!(
        exchange(&mut session, "EHLO bad!name\r\n"),
        "501 5.5.4 Invalid EHLO/HELO name\r\n"
    );
    assert_eq!(
        exchange(&mut session, "MAIL FROM:<a@c.test>\r\n"),
        "503 5.5.1 Bad sequence of commands\r\n",
        "no EHLO was taken"
    );
    for name in [
        "client.test",
        "DESKTOP_42",
        "[192.0.2.7]",
        "[IPv6:2001:db8::1]",
    ] {
        assert!(
            exchange(&mut session, &format!("EHLO {name}\r\n")).starts_with("250-"),
            "{name}"
        );
    }
}

/// Postscreen's other tests, in the session: an HTTP request is answered once and closed (any
/// client); a checked client that sends commands before the EHLO reply is refused at MAIL.
#[test]
fn http_requests_and_pipelining_before_ehlo() {
    let mut session = ServerSession::new(SessionConfig::default());
    session.take_output();
    assert_eq!(
        exchange(&mut session, "GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n"),
        "554 5.5.1 Protocol error: not an SMTP command; closing transmission channel\r\n"
    );
    assert!(session.is_closed());

    let checked = SessionConfig {
        checks_helo: true,
        ..SessionConfig::default()
    };
    let mut bot = ServerSession::new(checked.clone());
    bot.take_output();
    let replies = exchange(&mut bot, "EHLO bot.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert!(
        replies.ends_with("554 5.5.1 Protocol error: commands sent before the EHLO reply\r\n"),
        "{replies}"
    );
    let mut polite = ServerSession::new(checked);
    polite.take_output();
    exchange(&mut polite, "EHLO client.test\r\n");
    assert!(exchange(&mut polite, "MAIL FROM:<a@b.test>\r\n").starts_with("250"));
}
