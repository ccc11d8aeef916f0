//! The server session: golden transcripts (client bytes in, server bytes out) citing
//! docs/conformance.md ids, property tests over input split at any byte, the fuzz corpus.

use petrel_proto::address::ForwardPath;
use petrel_proto::data::BareNewline;
use petrel_proto::{Event, Message, ServerSession, SessionConfig, standard};
use proptest::prelude::*;

/// Drives a session over `chunks`, with a policy that refuses the local part "unknown" and
/// queues every message. Returns the server's output after each chunk, and the messages.
fn drive(config: SessionConfig, chunks: &[&[u8]]) -> (Vec<String>, Vec<Message>) {
    let mut session = ServerSession::new(config);
    let mut outputs = vec![String::from_utf8_lossy(&session.take_output()).into_owned()];
    let mut messages = Vec::new();
    for chunk in chunks {
        session.receive(chunk);
        run(&mut session, &mut messages);
        outputs.push(String::from_utf8_lossy(&session.take_output()).into_owned());
    }
    (outputs, messages)
}

pub fn run(session: &mut ServerSession, messages: &mut Vec<Message>) {
    loop {
        match session.poll() {
            Event::NeedInput | Event::Close => return,
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
            Event::Auth(credentials) if credentials.password == "secret" => {
                session.accept_auth(&credentials.username)
            }
            Event::Auth(_) => session.refuse_auth(false),
        }
    }
}

/// Sends each line (CR LF added) as its own chunk and checks each reply.
fn transcript(steps: &[(&str, &str)]) -> Vec<Message> {
    let config = SessionConfig {
        hostname: "mx.test".into(),
        max_message_bytes: 1000,
        ..SessionConfig::default()
    };
    let lines: Vec<String> = steps.iter().map(|(c, _)| format!("{c}\r\n")).collect();
    let chunks: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let (outputs, messages) = drive(config, &chunks);
    assert_eq!(outputs[0], "220 mx.test ESMTP\r\n");
    for ((client, expected), got) in steps.iter().zip(&outputs[1..]) {
        assert_eq!(got, expected, "after client sent {client:?}");
    }
    messages
}

const EHLO_REPLY: &str = "250-mx.test Hello c.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n";

#[test]
fn s_sess_1_2_4_7_a_whole_session() {
    let messages = transcript(&[
        ("EHLO c.test", EHLO_REPLY),
        ("MAIL FROM:<a@c.test>", "250 2.1.0 Sender OK\r\n"),
        ("RCPT TO:<b@mx.test>", "250 2.1.5 Recipient OK\r\n"),
        ("DATA", "354 Start mail input; end with <CRLF>.<CRLF>\r\n"),
        ("Subject: hi", ""),
        ("", ""),
        ("..dot", ""),
        (".", "250 2.0.0 queued as TEST\r\n"),
        ("RSET", "250 2.0.0 OK\r\n"),
        ("NOOP x", "250 2.0.0 OK\r\n"),
        ("QUIT", "221 2.0.0 Bye\r\n"),
    ]);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].content, b"Subject: hi\r\n\r\n.dot\r\n");
    assert!(messages[0].is_esmtp);
    assert_eq!(messages[0].helo, "c.test");
}

#[test]
fn s_txn_1_sequence_errors_leave_state_unchanged() {
    transcript(&[
        (
            "MAIL FROM:<a@c.test>",
            "503 5.5.1 Bad sequence of commands\r\n",
        ),
        ("HELO c.test", "250 mx.test Hello c.test\r\n"),
        (
            "RCPT TO:<b@mx.test>",
            "503 5.5.1 Bad sequence of commands\r\n",
        ),
        ("DATA", "503 5.5.1 Bad sequence of commands\r\n"),
        ("MAIL FROM:<a@c.test>", "250 2.1.0 Sender OK\r\n"),
        (
            "MAIL FROM:<a@c.test>",
            "503 5.5.1 Bad sequence of commands\r\n",
        ),
        ("DATA", "554 5.5.1 No valid recipients\r\n"),
        (
            "RCPT TO:<unknown@mx.test>",
            "550 5.1.1 No such user here\r\n",
        ),
        ("RCPT TO:<Postmaster>", "250 2.1.5 Recipient OK\r\n"),
    ]);
}

#[test]
fn s_txn_4_7_paths_and_parameters() {
    transcript(&[
        ("EHLO c.test", EHLO_REPLY),
        (
            "MAIL FROM:a@c.test",
            "501 5.1.7 Bad sender address syntax\r\n",
        ),
        (
            "MAIL FROM:<a@c.test> FOO=1",
            "555 5.5.4 Unrecognized MAIL or RCPT parameter\r\n",
        ),
        (
            "MAIL FROM:<a@c.test> SIZE=x",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
        ),
        (
            "MAIL FROM:<a@c.test> SIZE=1001",
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        ),
        (
            "MAIL FROM:<jø@c.test>",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
        ),
        (
            "MAIL FROM:<> RET=HDRS ENVID=x+2By",
            "250 2.1.0 Sender OK\r\n",
        ),
        ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax\r\n"),
        (
            "RCPT TO:<../../etc@mx.test>",
            "501 5.1.3 Bad recipient address syntax\r\n",
        ),
        (
            "RCPT TO:<b@mx.test> NOTIFY=NEVER,DELAY",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
        ),
        (
            "RCPT TO:<b@mx.test> NOTIFY=SUCCESS ORCPT=rfc822;b@mx.test",
            "250 2.1.5 Recipient OK\r\n",
        ),
        (
            "RCPT TO:<ø@mx.test>",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
        ),
    ]);
}

#[test]
fn s_sess_8_10_11_other_commands() {
    transcript(&[
        (
            "HELP",
            "214 2.0.0 See https://www.rfc-editor.org/rfc/rfc5321\r\n",
        ),
        (
            "VRFY postmaster",
            "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n",
        ),
        ("EXPN list", "502 5.5.1 Command not implemented\r\n"),
        ("BOGUS", "500 5.5.2 Command unrecognized\r\n"),
        (
            "EHLO",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
        ),
        (
            "QUIT now",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
        ),
    ]);
}

#[test]
fn s_line_5_recipients_past_the_limit_get_452_and_are_kept() {
    let mut steps = vec![("EHLO c.test".to_owned(), EHLO_REPLY.to_owned())];
    steps.push((
        "MAIL FROM:<a@c.test>".into(),
        "250 2.1.0 Sender OK\r\n".into(),
    ));
    for i in 0..150 {
        let reply = if i < 100 {
            "250 2.1.5 Recipient OK\r\n"
        } else {
            "452 4.5.3 Too many recipients\r\n"
        };
        steps.push((format!("RCPT TO:<r{i}@mx.test>"), reply.into()));
    }
    steps.push((
        "DATA".into(),
        "354 Start mail input; end with <CRLF>.<CRLF>\r\n".into(),
    ));
    steps.push((".".into(), "250 2.0.0 queued as TEST\r\n".into()));
    let borrowed: Vec<(&str, &str)> = steps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let messages = transcript(&borrowed);
    assert_eq!(messages[0].recipients.len(), 100);
}

#[test]
fn s_sess_9_too_many_errors_closes() {
    let mut steps: Vec<(&str, &str)> = vec![("BOGUS", "500 5.5.2 Command unrecognized\r\n"); 19];
    steps.push((
        "BOGUS",
        "500 5.5.2 Command unrecognized\r\n421 4.7.0 Too many errors, closing transmission channel\r\n",
    ));
    steps.push(("NOOP", ""));
    transcript(&steps);
}

#[test]
fn s_line_6_long_command_line() {
    let config = SessionConfig::default();
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(5000));
    let (outputs, _) = drive(config, &[long.as_bytes()]);
    assert_eq!(outputs[1], "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn s_smug_3_bare_lf_never_ends_a_command() {
    let (outputs, _) = drive(SessionConfig::default(), &[b"NOOP\nQUIT\r\nNOOP\r\n"]);
    assert_eq!(
        outputs[1],
        "500 5.5.2 Bare CR or LF in command line; lines must end with CRLF\r\n250 2.0.0 OK\r\n"
    );
}

#[test]
fn s_smug_5_content_before_354_is_refused_and_closes() {
    let (outputs, messages) = drive(
        SessionConfig::default(),
        &[b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\nMAIL FROM:<evil@x>\r\n.\r\n"],
    );
    assert!(outputs[1].ends_with(
        "250 2.1.5 Recipient OK\r\n503 5.5.1 Improper use of pipelining: data sent before the 354 reply\r\n"
    ), "{}", outputs[1]);
    assert!(messages.is_empty());
}

#[test]
fn s_smug_2_bare_lf_in_data_refused_after_real_end() {
    let (outputs, messages) = drive(
        SessionConfig::default(),
        &[
            b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n",
            b"hello\n.\nMAIL FROM:<evil@x>\r\n.\r\nNOOP\r\n",
        ],
    );
    assert_eq!(
        outputs[2],
        "550 5.5.2 Message refused: bare CR or LF; lines must end with CRLF\r\n250 2.0.0 OK\r\n"
    );
    assert!(messages.is_empty());
}

#[test]
fn s_smug_2_normalize_keeps_fake_ending_inside() {
    let config = SessionConfig {
        bare_newline: BareNewline::Normalize,
        ..SessionConfig::default()
    };
    let (outputs, messages) = drive(
        config,
        &[
            b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n",
            b"hello\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
        ],
    );
    assert_eq!(outputs[2], "250 2.0.0 queued as TEST\r\n");
    assert_eq!(messages[0].content, b"hello\r\n.\r\nMAIL FROM:<evil@x>\r\n");
}

#[test]
fn s_bdat_1_2_3_chunking() {
    let (outputs, messages) = drive(
        SessionConfig::default(),
        &[
            b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 7\r\nabc\r\n.\rBDAT 4 LAST\r\n\nx\r\n",
            b"BDAT 3 LAST\r\nabcNOOP\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 3\r\n.\r\nDATA\r\n",
            b"BDAT 0 LAST\r\n",
        ],
    );
    // The CR ending the first chunk and the LF opening the second are one CR LF.
    assert!(
        outputs[1]
            .ends_with("250 2.0.0 7 octets received in total\r\n250 2.0.0 queued as TEST\r\n"),
        "{}",
        outputs[1]
    );
    assert_eq!(messages[0].content, b"abc\r\n.\r\nx\r\n");
    assert_eq!(
        outputs[2],
        "503 5.5.1 Bad sequence of commands\r\n250 2.0.0 OK\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 3 octets received in total\r\n503 5.5.1 Bad sequence of commands\r\n"
    );
    assert_eq!(outputs[3], "250 2.0.0 queued as TEST\r\n");
    assert_eq!(messages[1].content, b".\r\n");
}

#[test]
fn s_size_1_real_size_enforced() {
    let config = SessionConfig {
        max_message_bytes: 10,
        ..SessionConfig::default()
    };
    let (outputs, messages) = drive(
        config,
        &[
            b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n",
            b"0123456789\r\n.\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 11 LAST\r\n01234567890NOOP\r\n",
        ],
    );
    assert_eq!(
        outputs[2],
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"
    );
    assert!(messages.is_empty());
}

/// The server's bound on message data in flight (issue 18): content refused while it is read
/// gets 452 4.3.1 once the real end arrives, and the session goes on; while the server is
/// short, DATA gets its 354 and the content is refused at its end (RFC 5321 §4.3.2 gives 452
/// to the data), and a first BDAT gets 452 4.3.1 at once.
#[test]
fn content_refused_for_storage_gets_452_at_its_end() {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut messages = Vec::new();
    session.receive(b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.take_output();
    session.receive(b"Subject: big\r\n\r\nfirst part\r\n");
    run(&mut session, &mut messages);
    assert!(session.content_bytes() > 0);
    session.refuse_content();
    assert_eq!(session.content_bytes(), 0, "what it held is freed");
    // A dot line inside the rest does not end it early (S-DATA-2).
    session.receive(b"..not the end\r\nmore\r\n.\r\nNOOP\r\n");
    run(&mut session, &mut messages);
    assert_eq!(
        String::from_utf8_lossy(&session.take_output()),
        "452 4.3.1 Insufficient system storage, try again later\r\n250 2.0.0 OK\r\n"
    );
    assert!(messages.is_empty());
    // BDAT: the chunk under way and the rest of the transaction are refused.
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 4\r\nab");
    run(&mut session, &mut messages);
    session.take_output();
    session.refuse_content();
    session.receive(b"cd");
    run(&mut session, &mut messages);
    session.receive(b"BDAT 2 LAST\r\nef");
    run(&mut session, &mut messages);
    assert_eq!(
        String::from_utf8_lossy(&session.take_output()),
        "452 4.3.1 Insufficient system storage, try again later\r\n452 4.3.1 Insufficient system storage, try again later\r\n"
    );
    assert!(messages.is_empty());
    // Short of storage: DATA gets 354, the content is refused at its end; a first BDAT at
    // once; then room again.
    session.set_short_of_storage(true);
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.receive(b"x\r\n.\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 3 LAST\r\nx\r\n");
    run(&mut session, &mut messages);
    session.set_short_of_storage(false);
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.receive(b"x\r\n.\r\n");
    run(&mut session, &mut messages);
    let storage = "452 4.3.1 Insufficient system storage, try again later\r\n";
    let transaction = "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n";
    let start = "354 Start mail input; end with <CRLF>.<CRLF>\r\n";
    assert_eq!(
        String::from_utf8_lossy(&session.take_output()),
        format!(
            "{transaction}{start}{storage}{transaction}{storage}{transaction}{start}250 2.0.0 queued as TEST\r\n"
        )
    );
    assert_eq!(messages.len(), 1);
}

/// Streaming (issue 18): the driver takes the content as it is decoded; the parts it took and
/// the message's own content, in order, are the whole message, for DATA (dots unstuffed, the
/// smuggling rules unchanged) and for BDAT; the hop count comes from the first part taken.
#[test]
fn content_taken_as_it_arrives_adds_up_to_the_message() {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut messages = Vec::new();
    session.receive(b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.take_output();
    assert!(session.take_content().is_empty(), "nothing read yet");
    let mut taken = Vec::new();
    for part in [
        &b"Subject: streamed\r\n\r\nline one\r\n.."[..],
        b"dotted\r\n\n.\r\nnot the end (S-SMUG-1)\r",
        b"\nlast\r\n.",
    ] {
        session.receive(part);
        run(&mut session, &mut messages);
        taken.extend(session.take_content());
    }
    assert!(messages.is_empty(), "the data has not ended yet");
    assert!(!taken.is_empty());
    session.receive(b"\r\n");
    run(&mut session, &mut messages);
    // A bare LF is refused after the real end (S-SMUG-2), as without streaming.
    let output = session.take_output();
    assert!(
        String::from_utf8_lossy(&output).starts_with("550 5.5.2"),
        "{}",
        String::from_utf8_lossy(&output)
    );
    assert!(messages.is_empty());
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.receive(b"Subject: s\r\n\r\n..a\r\nb");
    run(&mut session, &mut messages);
    let mut whole = session.take_content();
    session.receive(b"c\r\n.\r\n");
    run(&mut session, &mut messages);
    assert_eq!(
        messages.len(),
        1,
        "{}",
        String::from_utf8_lossy(&session.take_output())
    );
    whole.extend_from_slice(&messages[0].content);
    assert_eq!(whole, b"Subject: s\r\n\r\n.a\r\nbc\r\n");
    // BDAT: taken between chunks and inside one.
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nBDAT 6\r\nab\r\ncd");
    run(&mut session, &mut messages);
    let mut chunked = session.take_content();
    session.receive(b"BDAT 4 LAST\r\nef\r\n");
    run(&mut session, &mut messages);
    chunked.extend_from_slice(&messages[1].content);
    assert_eq!(chunked, b"ab\r\ncdef\r\n");
    // The hop count is the first part's, where the header section is.
    session.take_output();
    let mut hops = "Received: x\r\n".repeat(100);
    hops.push_str("\r\nbody\r\n");
    session.receive(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut messages);
    session.receive(hops.as_bytes());
    run(&mut session, &mut messages);
    assert!(!session.take_content().is_empty());
    session.receive(b"more body\r\n.\r\n");
    run(&mut session, &mut messages);
    assert!(
        String::from_utf8_lossy(&session.take_output())
            .ends_with("554 5.4.6 Too many hops: mail loop detected\r\n")
    );
    assert_eq!(messages.len(), 2);
}

#[test]
fn s_data_12_loop_refused() {
    let mut content = "Received: x\r\n".repeat(100);
    content.push_str("\r\nbody\r\n.\r\n");
    let (outputs, _) = drive(
        SessionConfig::default(),
        &[
            b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n",
            content.as_bytes(),
        ],
    );
    assert_eq!(
        outputs[2],
        "554 5.4.6 Too many hops: mail loop detected\r\n"
    );
}

#[test]
fn s_sess_9_shutdown() {
    let mut session = ServerSession::new(SessionConfig::default());
    session.take_output();
    session.receive(b"EHLO c\r\nMAIL FROM:<a@c>\r\n");
    run(&mut session, &mut Vec::new());
    assert!(
        !session.begin_shutdown(),
        "a session in a transaction may finish it"
    );
    session.receive(b"RCPT TO:<b@d>\r\nDATA\r\n");
    run(&mut session, &mut Vec::new());
    session.receive(b"x\r\n.\r\nMAIL FROM:<a@c>\r\n");
    run(&mut session, &mut Vec::new());
    let output = String::from_utf8_lossy(&session.take_output()).into_owned();
    assert!(output.ends_with("250 2.0.0 queued as TEST\r\n421 4.3.2 Service shutting down, closing transmission channel\r\n"), "{output}");
    assert!(session.is_closed());
}

#[test]
fn s_sess_13_idle_timeout() {
    let mut session = ServerSession::new(SessionConfig::default());
    session.take_output();
    session.idle_timeout();
    assert_eq!(
        session.take_output(),
        b"421 4.4.2 Idle timeout, closing transmission channel\r\n"
    );
    assert_eq!(session.poll(), Event::Close);
}

/// A session script exercising commands, DATA with dots and CR LF, BDAT and errors. A client
/// waits for the 354 after DATA (S-SMUG-5), so the input is always cut there.
const SCRIPT: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@c.test> BODY=8BITMIME\r\nRCPT TO:<b@mx.test>\r\nRCPT TO:<unknown@mx.test>\r\nDATA\r\nSubject: \xc3\xa9\r\n\r\n..a\r\n.\r\n\r\n.\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nBDAT 4\r\nab\r\nBDAT 2 LAST\r\n\r\nBOGUS\r\nNOOP\nx\r\nQUIT\r\n";

fn run_split(input: &[u8], cuts: &[usize]) -> (String, Vec<Message>) {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut output = session.take_output();
    let mut messages = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        session.receive(&input[start..cut]);
        run(&mut session, &mut messages);
        output.extend(session.take_output());
        start = cut;
    }
    (String::from_utf8_lossy(&output).into_owned(), messages)
}

proptest! {
    /// The same replies and messages whatever the input is split into (ARCHITECTURE §7).
    #[test]
    fn same_events_for_any_split(mut cuts in proptest::collection::vec(0..SCRIPT.len(), 0..12)) {
        let after_data = SCRIPT.windows(6).position(|w| w == b"DATA\r\n").map_or(0, |p| p + 6);
        cuts.push(after_data);
        cuts.sort_unstable();
        let whole = run_split(SCRIPT, &[after_data]);
        let split = run_split(SCRIPT, &cuts);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.1.len(), 2);
    }

    /// Arbitrary bytes never panic the session and every reply line is well formed.
    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let (output, _) = run_split(&input, &[input.len() / 2]);
        for line in output.split_terminator("\r\n") {
            prop_assert!(line.len() >= 4 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{:?}", line);
        }
    }

    /// decode(stuff(body)) == body, for bodies with CR LF line ends (S-DATA-3, S-DATA-4).
    #[test]
    fn dot_stuffing_round_trip(lines in proptest::collection::vec("[.a-z \\x80-\\xff]{0,20}", 0..20)) {
        let mut body = Vec::new();
        for line in &lines {
            body.extend_from_slice(line.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        let stuffed = petrel_proto::data::dot_stuff(&body);
        let mut decoder = petrel_proto::data::DataDecoder::new(10_000, 1 << 20, BareNewline::Reject);
        let mut decoded = Vec::new();
        let (used, is_end) = decoder.decode(&stuffed, &mut decoded);
        prop_assert!(is_end);
        prop_assert_eq!(used, stuffed.len());
        prop_assert_eq!(decoded, body);
    }

    /// Any bare CR or LF in the content is refused, wherever it is (S-SMUG-2).
    #[test]
    fn every_bare_newline_refused(prefix in "[a-z.]{0,10}", bare in prop_oneof![Just("\r"), Just("\n")], suffix in "[a-z.]{0,10}") {
        let content = format!("{prefix}{bare}{suffix}\r\n.\r\n");
        let mut decoder = petrel_proto::data::DataDecoder::new(1000, 1 << 20, BareNewline::Reject);
        let mut body = Vec::new();
        let (_, is_end) = decoder.decode(content.as_bytes(), &mut body);
        prop_assert!(is_end);
        prop_assert_eq!(decoder.outcome(), petrel_proto::data::DataOutcome::BareNewline);
    }
}

/// Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the same entry points the
/// fuzz targets use, so every input a campaign kept is checked by `cargo test`.
#[test]
fn fuzz_corpus_replays() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 5] = [
        ("command_parser", petrel_proto::fuzzing::command_parser),
        ("sasl_exchange", petrel_proto::fuzzing::sasl_exchange),
        ("data_decoder", petrel_proto::fuzzing::data_decoder),
        ("bdat_decoder", petrel_proto::fuzzing::bdat_decoder),
        ("server_session", petrel_proto::fuzzing::server_session),
    ];
    for (name, target) in targets {
        let entries = std::fs::read_dir(corpus.join(name)).unwrap();
        let mut count = 0;
        for entry in entries {
            target(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0, "empty corpus for {name}");
    }
}
