//! The client session in LMTP mode (RFC 2033) against scripted replies: LHLO, no HELO
//! fallback, and one reply per accepted recipient after the data, each its own outcome.

use petrel_proto::client::{ClientEvent, ClientSession, Outgoing};
use petrel_proto::params::{MailParameters, RcptParameters};

fn feed(client: &mut ClientSession, reply: &str, written: &mut String) -> Option<ClientEvent> {
    client.receive(reply.as_bytes());
    let event = client.poll();
    written.push_str(&String::from_utf8_lossy(&client.take_output()));
    match event {
        ClientEvent::NeedInput => None,
        other => Some(other),
    }
}

#[test]
fn one_reply_per_accepted_recipient_after_the_data() {
    let mut client = ClientSession::lmtp("mx.test");
    let mut written = String::new();
    assert_eq!(
        feed(&mut client, "220 dovecot ready\r\n", &mut written),
        None
    );
    let lhlo = "250-dovecot\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
    assert_eq!(
        feed(&mut client, lhlo, &mut written),
        Some(ClientEvent::Ready)
    );
    assert_eq!(written, "LHLO mx.test\r\n");
    written.clear();
    let recipients = ["a@example.test", "nobody@example.test", "b@example.test"];
    client.send(Outgoing {
        reverse_path: "s@example.org".into(),
        parameters: MailParameters::default(),
        recipients: recipients
            .iter()
            .map(|r| ((*r).to_owned(), RcptParameters::default()))
            .collect(),
        content: b"Subject: x\r\n\r\nhi\r\n".to_vec(),
    });
    let replies = "250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <nobody@example.test> User doesn't exist\r\n250 2.1.5 OK\r\n354 OK\r\n";
    assert_eq!(feed(&mut client, replies, &mut written), None);
    assert!(
        written.ends_with("Subject: x\r\n\r\nhi\r\n.\r\n"),
        "{written}"
    );
    // Two accepted recipients, two replies: the first saved, the second over quota.
    assert_eq!(
        feed(
            &mut client,
            "250 2.0.0 <a@example.test> Saved\r\n",
            &mut written
        ),
        None
    );
    let Some(ClientEvent::Sent(result)) = feed(
        &mut client,
        "452 4.2.2 <b@example.test> Quota exceeded\r\n",
        &mut written,
    ) else {
        panic!("no result");
    };
    let codes: Vec<u16> = result.recipients.iter().map(|r| r.reply.code).collect();
    assert_eq!(codes, [250, 550, 452]);
}

#[test]
fn no_helo_fallback_in_lmtp() {
    let mut client = ClientSession::lmtp("mx.test");
    let mut written = String::new();
    feed(&mut client, "220 ready\r\n", &mut written);
    let event = feed(&mut client, "500 5.5.1 unknown command\r\n", &mut written);
    assert!(matches!(event, Some(ClientEvent::Failed(_))), "{event:?}");
    assert_eq!(written, "LHLO mx.test\r\n");
}
