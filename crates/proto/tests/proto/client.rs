//! The client session against the server session in memory (the pair of ARCHITECTURE.md §6),
//! and against scripted replies for the paths our server never takes (HELO fallback, refused
//! greeting, garbage).

use petrel_proto::client::{ClientEvent, ClientSession, Outgoing, SessionFailure, Stage};
use petrel_proto::params::{Body, MailParameters, RcptParameters};
use petrel_proto::{Message, ServerSession, SessionConfig};

use crate::server::run;

/// Moves bytes between the two until the client has something to report.
fn pump(
    client: &mut ClientSession,
    server: &mut ServerSession,
    messages: &mut Vec<Message>,
) -> ClientEvent {
    for _ in 0..1000 {
        match client.poll() {
            ClientEvent::NeedInput => {
                server.receive(&client.take_output());
                run(server, messages);
                client.receive(&server.take_output());
            }
            other => return other,
        }
    }
    panic!("the pair made no progress");
}

fn outgoing(content: &[u8], recipients: &[&str]) -> Outgoing {
    Outgoing {
        reverse_path: "a@client.test".into(),
        parameters: MailParameters {
            body: Body::EightBitMime,
            ..MailParameters::default()
        },
        recipients: recipients
            .iter()
            .map(|r| ((*r).to_owned(), RcptParameters::default()))
            .collect(),
        content: content.to_vec(),
    }
}

#[test]
fn s_smug_4_content_normalised_stuffed_and_delivered_with_a_result_per_recipient() {
    let mut client = ClientSession::new("client.test");
    let mut server = ServerSession::new(SessionConfig::default());
    let mut messages = Vec::new();
    assert_eq!(
        pump(&mut client, &mut server, &mut messages),
        ClientEvent::Ready
    );
    assert!(client.capabilities().pipelining && client.capabilities().eight_bit_mime);
    let content = b"Subject: x\n\n.one dot\r\n..two\rbare cr\nend \xc3\xa9";
    let message = outgoing(content, &["b@mx.test", "unknown@mx.test", "c@mx.test"]);
    client.check(&message).unwrap();
    client.send(message);
    let ClientEvent::Sent(result) = pump(&mut client, &mut server, &mut messages) else {
        panic!()
    };
    let codes: Vec<u16> = result.recipients.iter().map(|r| r.reply.code).collect();
    assert_eq!(codes, [250, 550, 250]);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].content,
        b"Subject: x\r\n\r\n.one dot\r\n..two\r\nbare cr\r\nend \xc3\xa9\r\n"
    );
    assert_eq!(messages[0].recipients.len(), 2);
    // The connection is reused for a second transaction (C-ROUTE-8), then closed with QUIT.
    client.send(outgoing(b"second\r\n", &["d@mx.test"]));
    assert!(matches!(
        pump(&mut client, &mut server, &mut messages),
        ClientEvent::Sent(_)
    ));
    assert_eq!(messages.len(), 2);
    client.quit();
    assert_eq!(
        pump(&mut client, &mut server, &mut messages),
        ClientEvent::Closed
    );
}

#[test]
fn all_recipients_refused_sends_no_content() {
    let mut client = ClientSession::new("client.test");
    let mut server = ServerSession::new(SessionConfig::default());
    let mut messages = Vec::new();
    pump(&mut client, &mut server, &mut messages);
    client.send(outgoing(b"x\r\n", &["unknown@mx.test"]));
    let ClientEvent::Sent(result) = pump(&mut client, &mut server, &mut messages) else {
        panic!()
    };
    assert_eq!(result.recipients[0].reply.code, 550);
    assert!(messages.is_empty());
}

/// Feeds canned server replies to a client session.
fn scripted(replies: &[&str]) -> (ClientSession, Vec<ClientEvent>, String) {
    drive(ClientSession::new("client.test"), replies)
}

/// Feeds canned server replies to `client`; returns it with the events it gave and what it
/// wrote. A StartTls event is answered as if the handshake worked.
pub fn drive(
    mut client: ClientSession,
    replies: &[&str],
) -> (ClientSession, Vec<ClientEvent>, String) {
    let mut events = Vec::new();
    let mut written = String::new();
    for reply in replies {
        client.receive(reply.as_bytes());
        loop {
            let event = client.poll();
            written.push_str(&String::from_utf8_lossy(&client.take_output()));
            match event {
                ClientEvent::NeedInput => break,
                ClientEvent::StartTls => {
                    client.tls_started();
                    written.push_str(&String::from_utf8_lossy(&client.take_output()));
                    break;
                }
                ClientEvent::Ready if events.last() == Some(&ClientEvent::Ready) => break,
                ClientEvent::Closed => break,
                other => events.push(other),
            }
        }
    }
    (client, events, written)
}

#[test]
fn helo_fallback_and_no_8bitmime_means_5_6_3() {
    let (mut client, events, written) =
        scripted(&["220 old.test\r\n", "502 what\r\n", "250 old.test\r\n"]);
    assert_eq!(events, [ClientEvent::Ready]);
    assert_eq!(written, "EHLO client.test\r\nHELO client.test\r\n");
    let refusal = client
        .check(&outgoing(b"caf\xc3\xa9\r\n", &["x@old.test"]))
        .unwrap_err();
    assert_eq!(refusal.status.to_string(), "5.6.3");
    let mut ascii = outgoing(b"plain\r\n", &["x@old.test"]);
    ascii.parameters.body = Body::SevenBit;
    assert!(client.check(&ascii).is_ok());
    let mut utf8 = ascii.clone();
    utf8.recipients[0].0 = "zoë@old.test".into();
    assert_eq!(client.check(&utf8).unwrap_err().status.to_string(), "5.6.7");
    // Without PIPELINING the commands go one at a time.
    client.send(ascii);
    assert_eq!(
        String::from_utf8_lossy(&client.take_output()),
        "MAIL FROM:<a@client.test>\r\n"
    );
    assert_eq!(client.waiting(), Some(Stage::Mail));
}

#[test]
fn c_521_2_refused_greeting_and_garbage_fail_the_session() {
    let (_, events, _) = scripted(&["554 no service\r\n"]);
    assert!(
        matches!(&events[..], [ClientEvent::Failed(SessionFailure::Greeting(reply))] if reply.code == 554)
    );
    let (_, events, _) = scripted(&["HTTP/1.1 400 Bad Request\r\n"]);
    assert!(matches!(
        &events[..],
        [ClientEvent::Failed(SessionFailure::Protocol(_))]
    ));
}
