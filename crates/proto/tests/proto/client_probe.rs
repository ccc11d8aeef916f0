//! The probe transaction (MAIL and RCPT, then RSET: nothing delivered) against the server
//! session in memory and against a server without PIPELINING; the transcript, with AUTH
//! masked; implicit TLS, where credentials go without STARTTLS.

use petrel_proto::client::{ClientCredentials, ClientEvent, ClientSession, Stage, TranscriptLine};
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::{ServerSession, SessionConfig};

use crate::client::drive;
use crate::server::run;

fn envelope(recipients: &[&str]) -> petrel_proto::client::Outgoing {
    petrel_proto::client::Outgoing {
        reverse_path: "probe@client.test".into(),
        parameters: MailParameters::default(),
        recipients: recipients
            .iter()
            .map(|r| ((*r).to_owned(), RcptParameters::default()))
            .collect(),
        content: Vec::new(),
    }
}

#[test]
fn a_probe_asks_mail_and_rcpt_then_resets_and_delivers_nothing() {
    let mut client = ClientSession::new("client.test").with_transcript();
    let mut server = ServerSession::new(SessionConfig::default());
    let mut messages = Vec::new();
    let mut pump = |client: &mut ClientSession| loop {
        match client.poll() {
            ClientEvent::NeedInput => {
                server.receive(&client.take_output());
                run(&mut server, &mut messages);
                client.receive(&server.take_output());
                assert!(messages.is_empty(), "a probe never sends DATA");
            }
            other => return other,
        }
    };
    assert_eq!(pump(&mut client), ClientEvent::Ready);
    client.probe(envelope(&["b@mx.test", "unknown@mx.test"]));
    let ClientEvent::Sent(result) = pump(&mut client) else {
        panic!("no result")
    };
    let answers: Vec<(Stage, u16)> = result
        .recipients
        .iter()
        .map(|r| (r.stage, r.reply.code))
        .collect();
    assert_eq!(answers, [(Stage::Rcpt, 250), (Stage::Rcpt, 550)]);
    let commands: Vec<String> = client
        .take_transcript()
        .into_iter()
        .filter_map(|line| match line {
            TranscriptLine::Command(text) => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands,
        [
            "EHLO client.test",
            "MAIL FROM:<probe@client.test>",
            "RCPT TO:<b@mx.test>",
            "RCPT TO:<unknown@mx.test>",
            "RSET"
        ],
        "no SIZE for a probe, and no DATA"
    );
    // The session is ready for another transaction.
    assert_eq!(pump(&mut client), ClientEvent::Ready);
}

#[test]
fn a_probe_without_pipelining_goes_one_command_at_a_time() {
    let (mut client, events, _) = drive(
        ClientSession::new("client.test"),
        &["220 old.test\r\n", "250-old.test\r\n250 SIZE 1000\r\n"],
    );
    assert_eq!(events, [ClientEvent::Ready]);
    client.probe(envelope(&["a@old.test", "b@old.test"]));
    let (_, events, written) = drive(
        client,
        &[
            "250 2.1.0 ok\r\n",
            "550 5.1.1 no such user\r\n",
            "250 2.1.5 ok\r\n",
            "250 2.0.0 reset\r\n",
        ],
    );
    assert_eq!(
        written,
        "MAIL FROM:<probe@client.test>\r\nRCPT TO:<a@old.test>\r\nRCPT TO:<b@old.test>\r\nRSET\r\n"
    );
    let Some(ClientEvent::Sent(result)) = events.first() else {
        panic!("{events:?}")
    };
    let codes: Vec<u16> = result.recipients.iter().map(|r| r.reply.code).collect();
    assert_eq!(codes, [550, 250]);
}

#[test]
fn the_transcript_masks_credentials_and_shows_replies_with_their_stage() {
    let credentials = ClientCredentials {
        username: "alice".into(),
        password: "secret".into(),
    };
    let client = ClientSession::new("client.test")
        .with_auth(credentials)
        .with_transcript();
    let (mut client, events, written) = drive(
        client,
        &[
            "220 smart.test\r\n",
            "250-smart.test\r\n250 STARTTLS\r\n",
            "220 go ahead\r\n",
            "250-smart.test\r\n250 AUTH LOGIN\r\n",
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "235 2.7.0 ok\r\n",
        ],
    );
    assert_eq!(events, [ClientEvent::Ready]);
    assert!(written.contains("c2VjcmV0"), "the password is sent");
    let transcript = client.take_transcript();
    let shown = format!("{transcript:?}");
    assert!(
        !shown.contains("c2VjcmV0") && !shown.contains("YWxpY2U="),
        "{shown}"
    );
    assert!(transcript.contains(&TranscriptLine::Secret("<password>".into())));
    assert!(transcript.contains(&TranscriptLine::Command("AUTH LOGIN".into())));
    let last = transcript.last().unwrap();
    assert!(
        matches!(last, TranscriptLine::Reply { stage: Stage::Hello, reply } if reply.code == 235),
        "{last:?}"
    );
}

#[test]
fn implicit_tls_sends_credentials_without_starttls() {
    let credentials = ClientCredentials {
        username: "alice".into(),
        password: "secret".into(),
    };
    let client = ClientSession::new("client.test")
        .with_auth(credentials)
        .over_tls();
    let (_, events, written) = drive(
        client,
        &[
            "220 smart.test\r\n",
            "250-smart.test\r\n250 AUTH PLAIN\r\n",
            "235 2.7.0 ok\r\n",
        ],
    );
    assert_eq!(events, [ClientEvent::Ready]);
    assert_eq!(
        written,
        "EHLO client.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
    );
}
