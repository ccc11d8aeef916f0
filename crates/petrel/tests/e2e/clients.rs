//! Real SMTP clients send to petrel, and the Maildir holds exactly the message they sent after
//! the trace headers, with LF line ends (S-DATA-2, S-DATA-3, S-8BIT-1, S-UTF8-1, S-TRACE-1/3).

use std::process::Command;

use crate::harness::{Petrel, Scratch, run_with_stdin, strip_trace};

/// A message with lines that start with "." and "..", a lone ".." line, and UTF-8.
const BODY_CRLF: &str = "From: Ana <ana@example.test>\r\nTo: bo@localhost\r\nSubject: =?UTF-8?B?w6k=?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n.starts with a dot\r\n..starts with two\r\n..\r\n.\r\nGrüße, Ἀθηνᾶ ✓\r\nlast line\r\n";

fn lf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n").into_bytes()
}

fn check_delivered(petrel: &Petrel, user: &str, expected: &[u8], sender: &str) {
    let messages = petrel.wait_for_maildir("localhost", user, 1);
    assert_eq!(messages.len(), 1, "log:\n{}", petrel.log_text());
    let (trace, content) = strip_trace(&messages[0]);
    assert!(
        trace.starts_with(&format!("Return-Path: <{sender}>\n")),
        "{trace}"
    );
    assert_eq!(
        String::from_utf8_lossy(&content),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn python_smtplib() {
    let scratch = Scratch::new("smtplib");
    let petrel = Petrel::start(&scratch.0, "");
    let script = format!(
        "import smtplib,sys\nmsg=sys.stdin.buffer.read()\ns=smtplib.SMTP('127.0.0.1',{port})\ns.ehlo('client.test')\nr=s.sendmail('ana@example.test',['bo@localhost'],msg,mail_options=['BODY=8BITMIME'])\nprint(r)\ns.quit()\n",
        port = petrel.address.port()
    );
    let output = run_with_stdin(
        Command::new("python3").args(["-c", &script]),
        BODY_CRLF.as_bytes(),
    );
    assert!(output.status.success(), "{output:?}");
    check_delivered(&petrel, "bo", &lf(BODY_CRLF), "ana@example.test");
}

#[test]
fn python_smtplib_smtputf8_address() {
    let scratch = Scratch::new("smtputf8");
    let petrel = Petrel::start(&scratch.0, "");
    let script = format!(
        "import smtplib,sys\nmsg=sys.stdin.buffer.read()\ns=smtplib.SMTP('127.0.0.1',{port})\ns.ehlo('client.test')\ns.sendmail('jøran@example.test',['zoë@localhost'],msg,mail_options=['SMTPUTF8','BODY=8BITMIME'])\ns.quit()\n",
        port = petrel.address.port()
    );
    let output = run_with_stdin(
        Command::new("python3").args(["-c", &script]),
        BODY_CRLF.as_bytes(),
    );
    assert!(output.status.success(), "{output:?}");
    check_delivered(&petrel, "zoë", &lf(BODY_CRLF), "jøran@example.test");
}

#[test]
fn swaks() {
    let scratch = Scratch::new("swaks");
    let petrel = Petrel::start(&scratch.0, "");
    // swaks sends the file, then CR LF . CR LF: a final line end in the file would become an
    // extra empty line, so the file ends without one and the server's copy ends with CR LF.
    let file = scratch.0.join("message.eml");
    std::fs::write(&file, BODY_CRLF.strip_suffix("\r\n").unwrap()).unwrap();
    let output = Command::new("swaks")
        .args([
            "--server",
            &petrel.address.to_string(),
            "--helo",
            "client.test",
        ])
        .args(["--from", "ana@example.test", "--to", "carla@localhost"])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .expect("swaks is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    check_delivered(&petrel, "carla", &lf(BODY_CRLF), "ana@example.test");
}

#[test]
fn curl() {
    let scratch = Scratch::new("curl");
    let petrel = Petrel::start(&scratch.0, "");
    let file = scratch.0.join("message.eml");
    std::fs::write(&file, BODY_CRLF).unwrap();
    let output = Command::new("curl")
        .args(["--silent", "--show-error"])
        .arg(format!("smtp://{}/client.test", petrel.address))
        .args([
            "--mail-from",
            "ana@example.test",
            "--mail-rcpt",
            "dora@localhost",
        ])
        .arg("--upload-file")
        .arg(&file)
        .output()
        .expect("curl is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_delivered(&petrel, "dora", &lf(BODY_CRLF), "ana@example.test");
}

#[test]
fn lettre() {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};
    let scratch = Scratch::new("lettre");
    let petrel = Petrel::start(&scratch.0, "");
    let message = Message::builder()
        .from("Ana <ana@example.test>".parse().unwrap())
        .to("emil@localhost".parse().unwrap())
        .subject("lettre über loopback")
        .header(ContentType::TEXT_PLAIN)
        .body(String::from(".dot first\n..two dots\nGrüße ✓\n"))
        .unwrap();
    let sent = message.formatted();
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(petrel.address.port())
        .build();
    transport.send(&message).unwrap();
    // lettre always ends the data with CR LF . CR LF after the formatted message, so the
    // content on the wire is the formatted message plus one CR LF.
    let mut expected = sent.clone();
    expected.extend_from_slice(b"\r\n");
    check_delivered(
        &petrel,
        "emil",
        &lf(&String::from_utf8(expected).unwrap()),
        "ana@example.test",
    );
}
