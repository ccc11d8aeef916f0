//! The client driver against `proto`'s server session over an in-memory pipe: no sockets, no
//! clock of the machine (the pipe answers at once). A transaction with a refused recipient and
//! the stages recorded, reuse of the session and QUIT, a probe that delivers nothing, a server
//! that goes away after the greeting, and STARTTLS required from a server without it.

use petrel_proto::address::ForwardPath;
use petrel_proto::client::{ClientSession, Outgoing, Stage, TranscriptLine};
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::{Event, Message, ServerSession, SessionConfig, standard};
use petrel_queue::RemoteMta;
use petrel_queue::status::{Cause, TlsProblem};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// Runs the server session on its end of the pipe until it closes or the pipe does; gives the
/// messages it took. `unknown@...` is refused at RCPT; `hang_up` closes after the greeting.
async fn serve(mut stream: DuplexStream, hang_up: bool) -> Vec<Message> {
    let mut session = ServerSession::new(SessionConfig {
        hostname: "mx.test".into(),
        ..SessionConfig::default()
    });
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let mut is_closing = false;
        loop {
            match session.poll() {
                Event::NeedInput => break,
                Event::Close => {
                    is_closing = true;
                    break;
                }
                Event::Mail(_) => session.accept(),
                Event::Rcpt(request) => match &request.forward_path {
                    ForwardPath::Mailbox(m) if m.local_part == "unknown" => {
                        session.refuse(standard::NO_SUCH_USER.reply())
                    }
                    _ => session.accept(),
                },
                Event::Message(message) => {
                    messages.push(message);
                    session.finish_message(standard::QUEUED.with_text("queued as TEST"));
                }
                Event::StartTls => session.tls_started(),
                Event::Auth(_) => session.refuse_auth(false),
            }
        }
        if stream.write_all(&session.take_output()).await.is_err() || is_closing || hang_up {
            return messages;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return messages,
            Ok(count) => session.receive(&buffer[..count]),
        }
    }
}

fn connection(stream: DuplexStream, session: ClientSession) -> Connection {
    let remote = RemoteMta {
        host: "mx.test".into(),
        address: None,
    };
    let timeouts = Timeouts::uniform(std::time::Duration::from_secs(10));
    Connection::new(
        Stream::Memory(stream),
        remote,
        session,
        TlsClient::new(None),
        timeouts,
    )
}

fn message(recipients: &[&str]) -> Outgoing {
    Outgoing {
        reverse_path: "a@client.test".into(),
        parameters: MailParameters::default(),
        recipients: recipients
            .iter()
            .map(|r| ((*r).to_owned(), RcptParameters::default()))
            .collect(),
        content: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
    }
}

/// Keeps what it sees.
#[derive(Default)]
struct Seen(Vec<TranscriptLine>);

impl Observer for Seen {
    fn transcript(&mut self, lines: Vec<TranscriptLine>) {
        self.0.extend(lines);
    }
}

#[tokio::test]
async fn a_transaction_records_each_recipients_reply_and_stage_and_the_session_is_reused() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(server_end, false));
    let session = ClientSession::new("client.test").with_transcript();
    let mut connection = connection(client_end, session);
    let mut seen = Seen::default();
    let first = message(&["b@mx.test", "unknown@mx.test"]);
    let work = Work::Send {
        message: &first,
        is_checked: true,
    };
    let Ok(Step::Sent(result)) = connection.run(work, &mut seen).await else {
        panic!("no result")
    };
    let decided: Vec<(Stage, u16)> = result
        .recipients
        .iter()
        .map(|r| (r.stage, r.reply.code))
        .collect();
    assert_eq!(decided, [(Stage::DataEnd, 250), (Stage::Rcpt, 550)]);
    assert!(seen.0.contains(&TranscriptLine::Command("DATA".into())));
    assert!(
        seen.0
            .iter()
            .any(|l| matches!(l, TranscriptLine::Content { .. }))
    );
    // Kept open, the session takes a second message (C-ROUTE-8), then QUIT closes it.
    let second = message(&["c@mx.test"]);
    let work = Work::Send {
        message: &second,
        is_checked: true,
    };
    assert!(matches!(
        connection.run(work, &mut seen).await,
        Ok(Step::Sent(_))
    ));
    connection.quit(&mut seen).await;
    let messages = server.await.unwrap();
    assert_eq!(messages.len(), 2);
    let last = seen.0.last().unwrap();
    assert!(
        matches!(last, TranscriptLine::Reply { stage: Stage::Quit, reply } if reply.code == 221),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_probe_asks_and_delivers_nothing() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(server_end, false));
    let mut connection = connection(client_end, ClientSession::new("client.test"));
    let envelope = message(&["b@mx.test", "unknown@mx.test"]);
    let Ok(Step::Sent(result)) = connection.run(Work::Probe(&envelope), &mut Quiet).await else {
        panic!("no result")
    };
    let codes: Vec<u16> = result.recipients.iter().map(|r| r.reply.code).collect();
    assert_eq!(codes, [250, 550]);
    connection.quit(&mut Quiet).await;
    assert!(server.await.unwrap().is_empty(), "a probe sends no DATA");
}

#[tokio::test]
async fn a_server_gone_after_the_greeting_is_lost_at_hello() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(server_end, true));
    let mut connection = connection(client_end, ClientSession::new("client.test"));
    let envelope = message(&["b@mx.test"]);
    let work = Work::Send {
        message: &envelope,
        is_checked: true,
    };
    let broken = connection.run(work, &mut Quiet).await.unwrap_err();
    assert_eq!(broken.cause, Cause::Lost(Stage::Hello), "{broken}");
    assert!(server.await.unwrap().is_empty());
}

#[tokio::test]
async fn starttls_required_from_a_server_without_it_sends_nothing() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(server_end, false));
    let session = ClientSession::with_starttls("client.test");
    let mut connection = connection(client_end, session).requiring_tls();
    let envelope = message(&["b@mx.test"]);
    let work = Work::Send {
        message: &envelope,
        is_checked: true,
    };
    let broken = connection.run(work, &mut Quiet).await.unwrap_err();
    assert_eq!(broken.cause, Cause::Tls(TlsProblem::Policy));
    assert!(server.await.unwrap().is_empty());
}
