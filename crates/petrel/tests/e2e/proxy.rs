//! The PROXY protocol behind Debian's HAProxy (issue 19, item 5). A listener with
//! `proxy_protocol = true` and `proxy_networks = ["127.0.0.9/32"]`; HAProxy connects to it from
//! 127.0.0.9 with `send-proxy` (version 1) and, through a second frontend, `send-proxy-v2`.
//! Clients reach HAProxy from their own loopback addresses (Python's smtplib and sockets
//! bound to 127.0.0.5-7): the per-address session limit counts the address HAProxy saw (a
//! second session from 127.0.0.5 is refused while one from 127.0.0.6 is greeted), the
//! Received field and the log name it, and a PROXY header from outside proxy_networks is
//! refused without a word.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Petrel, Scratch};

/// HAProxy in the foreground: a TCP frontend on a free loopback port relaying to `backend`
/// from 127.0.0.9 with `send` ("send-proxy" or "send-proxy-v2"). Killed when dropped.
struct HaProxy {
    child: Child,
    port: u16,
}

impl HaProxy {
    fn start(dir: &std::path::Path, name: &str, backend: SocketAddr, send: &str) -> HaProxy {
        let port = crate::harness::server_port();
        let config = dir.join(format!("{name}.cfg"));
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 100\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\nfrontend smtp\n    bind 127.0.0.1:{port}\n    default_backend petrel\n\nbackend petrel\n    server petrel {backend} {send} source 127.0.0.9\n"
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (Debian's haproxy package) must be installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        HaProxy { child, port }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python script with `PORT` and `PORT2` set; its printed lines.
fn python(port: u16, port2: u16, script: &str) -> Vec<String> {
    crate::harness::python_lines(&format!(
        "import smtplib, socket\nPORT = {port}\nPORT2 = {port2}\n{script}"
    ))
}

#[test]
fn haproxy_send_proxy_gives_the_client_address_to_checks_limits_and_logs() {
    let dir = Scratch::new("proxy");
    let petrel = Petrel::start(
        &dir.0,
        "[[listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\nproxy_networks = [\"127.0.0.9/32\"]\n\n[relay]\nnetworks = []\n\n[limits]\nmax_connections_per_ip = 1\n",
    );
    let listener = petrel.listener("smtp, proxy protocol");
    let v1 = HaProxy::start(&dir.0, "v1", listener, "send-proxy");
    let v2 = HaProxy::start(&dir.0, "v2", listener, "send-proxy-v2");
    let lines = python(
        v1.port,
        v2.port,
        r#"
def greeting(source, port):
    s = socket.create_connection(('127.0.0.1', port), source_address=(source, 0), timeout=30)
    return s, s.makefile('rb').readline().decode().strip()
held, first = greeting('127.0.0.5', PORT)
print('first', first)
refused, second = greeting('127.0.0.5', PORT)
print('second', second)
greeted, other = greeting('127.0.0.6', PORT)
print('other', other)
for s in (held, refused, greeted):
    s.close()
import time
def connect(source, port):
    # The server may not have seen the closed session from this address yet (421 4.7.0).
    for attempt in range(100):
        try:
            return smtplib.SMTP('127.0.0.1', port, source_address=(source, 0), timeout=30)
        except smtplib.SMTPConnectError:
            time.sleep(0.1)
    raise SystemExit('still refused: ' + source)
for source, port in (('127.0.0.6', PORT), ('127.0.0.7', PORT2)):
    client = connect(source, port)
    client.sendmail('sender@example.test', ['user@localhost'], 'Subject: via ' + source + '\r\n\r\nhi\r\n')
    client.quit()
    print('sent', source)
"#,
    );
    assert!(lines.contains(&"sent 127.0.0.7".to_owned()), "{lines:?}");
    let find = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    assert!(find("first ").starts_with("first 220"), "{lines:?}");
    assert!(
        find("second ").starts_with("second 421 4.7.0"),
        "the second session from 127.0.0.5 is over its limit: {lines:?}"
    );
    assert!(
        find("other ").starts_with("other 220"),
        "127.0.0.6 is another client: {lines:?}"
    );
    let delivered: Vec<String> = petrel
        .wait_for_maildir("localhost", "user", 2)
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    for (source, subject) in [
        ("127.0.0.6", "via 127.0.0.6"),
        ("127.0.0.7", "via 127.0.0.7"),
    ] {
        let message = delivered
            .iter()
            .find(|m| m.contains(subject))
            .unwrap_or_else(|| panic!("{subject} not delivered: {delivered:?}"));
        assert!(
            message.contains(&format!("[{source}]")),
            "the Received field names the client HAProxy saw: {message}"
        );
    }
    // A header that names no client, even from the proxy's own address, is refused: that
    // address (127.0.0.9, in the default relay networks) must not stand in for the client.
    let lines = crate::harness::python_lines(&format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {}), source_address=('127.0.0.9', 0), timeout=30)\ns.sendall(b'PROXY UNKNOWN\\r\\n')\nprint('answer', repr(s.recv(100)))",
        listener.port()
    ));
    assert_eq!(
        lines,
        vec!["answer b''".to_owned()],
        "closed without a greeting"
    );
    // A PROXY header from outside proxy_networks (here 127.0.0.1) is refused without a word.
    let mut forged = TcpStream::connect(listener).unwrap();
    forged
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    forged
        .write_all(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 25\r\n")
        .unwrap();
    let mut answer = Vec::new();
    assert_eq!(
        forged.read_to_end(&mut answer).unwrap_or(0),
        0,
        "{answer:?}"
    );
    // The harness reads the log as it comes.
    crate::harness::wait_until("the refusal in the log", || {
        petrel
            .log_text()
            .contains("from outside its proxy_networks")
    });
    assert!(petrel.log_text().contains("127.0.0.7"));
}
