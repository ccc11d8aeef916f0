//! The client side of AUTH for smarthosts (RFC 4954, RFC 4616) against scripted replies:
//! PLAIN after STARTTLS, LOGIN when only LOGIN is offered, refused credentials, and no
//! credentials at all without TLS.

use petrel_proto::client::{ClientCredentials, ClientEvent, ClientSession, SessionFailure};

fn credentials() -> ClientCredentials {
    ClientCredentials {
        username: "alice".into(),
        password: "secret".into(),
    }
}

/// Feeds canned replies to a client with credentials (see `client::drive`).
fn run(replies: &[&str]) -> (Vec<ClientEvent>, String) {
    let client = ClientSession::new("client.test").with_auth(credentials());
    let (_, events, written) = crate::client::drive(client, replies);
    (events, written)
}

const EHLO_TLS: &str = "250-smart.test\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n";

#[test]
fn plain_after_starttls() {
    let (events, written) = run(&[
        "220 smart.test\r\n",
        EHLO_TLS,
        "220 go ahead\r\n",
        "250-smart.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
        "235 2.7.0 ok\r\n",
    ]);
    assert_eq!(events, [ClientEvent::Ready]);
    // \0alice\0secret in base64.
    assert_eq!(
        written,
        "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
    );
}

#[test]
fn login_when_only_login_is_offered_and_old_style_auth_lines() {
    let (events, written) = run(&[
        "220 smart.test\r\n",
        EHLO_TLS,
        "220 go ahead\r\n",
        "250-smart.test\r\n250 AUTH=LOGIN\r\n",
        "334 VXNlcm5hbWU6\r\n",
        "334 UGFzc3dvcmQ6\r\n",
        "235 2.7.0 ok\r\n",
    ]);
    assert_eq!(events, [ClientEvent::Ready]);
    assert!(
        written.ends_with("AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n"),
        "{written}"
    );
}

#[test]
fn refused_credentials_fail_the_session() {
    let (events, _) = run(&[
        "220 smart.test\r\n",
        EHLO_TLS,
        "220 go ahead\r\n",
        "250-smart.test\r\n250 AUTH PLAIN\r\n",
        "535 5.7.8 Authentication credentials invalid\r\n",
    ]);
    assert!(
        matches!(&events[..], [ClientEvent::Failed(SessionFailure::Auth(reply))] if reply.code == 535),
        "{events:?}"
    );
}

#[test]
fn no_credentials_without_tls() {
    // No STARTTLS offered: the password is never written.
    let (events, written) = run(&["220 smart.test\r\n", "250-smart.test\r\n250 AUTH PLAIN\r\n"]);
    assert!(
        matches!(
            &events[..],
            [ClientEvent::Failed(SessionFailure::AuthUnavailable(_))]
        ),
        "{events:?}"
    );
    assert_eq!(written, "EHLO client.test\r\n");
    // STARTTLS refused: the same.
    let (events, written) = run(&["220 smart.test\r\n", EHLO_TLS, "454 4.7.0 no TLS now\r\n"]);
    assert!(matches!(
        &events[..],
        [ClientEvent::Failed(SessionFailure::AuthUnavailable(_))]
    ));
    assert!(!written.contains("AUTH"), "{written}");
}
