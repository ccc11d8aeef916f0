//! rspamd as a milter (issue 16, item 6): Debian's rspamd, its proxy worker in milter mode
//! scanning by itself (as docs/rspamd.md configures it), started privately on a loopback port.
//! A GTUBE message is refused at the end of DATA with rspamd's own reply (554 5.7.1 Gtube
//! pattern), counted, and nothing is stored; a clean message is delivered with the headers
//! rspamd asked for. rspamd's resolver is pointed at a closed loopback port, so it sends
//! nothing off the machine.

use std::process::{Child, Command, Stdio};

use crate::harness::{Petrel, RawClient, Scratch};

/// The GTUBE reject pattern, which rspamd answers with its reject action.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A private rspamd, ended by PID when dropped.
struct Rspamd {
    child: Child,
    port: u16,
}

impl Rspamd {
    fn start(dir: &std::path::Path) -> Rspamd {
        let port = crate::harness::server_port();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let conf = dir.join("rspamd.conf");
        std::fs::write(
            &conf,
            format!(
                r#"options {{
  pidfile = "{d}/run/rspamd.pid";
  dns {{ nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }}
  hs_cache_dir = "{d}/db";
  control_socket = "{d}/run/rspamd.sock mode=0600";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
}}
logging {{ type = "file"; filename = "{d}/rspamd.log"; level = "info"; }}
modules {{ path = "/usr/share/rspamd/plugins"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
milter_headers {{ use = ["x-spamd-result", "x-rspamd-server"]; skip_local = false; skip_authenticated = false; }}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 120s;
  upstream "local" {{ default = yes; self_scan = yes; }}
  count = 1;
}}
"#
            ),
        )
        .unwrap();
        let child = Command::new("rspamd")
            .args(["-f", "-i", "-c"])
            .arg(&conf)
            .arg(format!("--var=DBDIR={d}/db"))
            .arg(format!("--var=RUNDIR={d}/run"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rspamd (installed by .ci/run)");
        // The main process listens before its proxy worker serves: wait for a milter answer.
        crate::harness::wait_until("rspamd to answer a milter negotiation", || {
            answers_negotiation(port)
        });
        Rspamd { child, port }
    }
}

/// Whether a milter on `port` answers SMFIC_OPTNEG (version 6, every action and protocol
/// bit) with its own negotiation within two seconds.
fn answers_negotiation(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut packet = 13u32.to_be_bytes().to_vec();
    packet.push(b'O');
    for word in [6u32, 0x1ff, 0x1f_ffff] {
        packet.extend_from_slice(&word.to_be_bytes());
    }
    let mut reply = [0u8; 5];
    stream.write_all(&packet).is_ok() && stream.read_exact(&mut reply).is_ok() && reply[4] == b'O'
}

impl Drop for Rspamd {
    /// SIGTERM first: rspamd's main process then stops its workers (a SIGKILL left them
    /// running, orphaned); SIGKILL only if it has not ended within 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(client: &mut RawClient, subject: &str, body: &str) -> String {
    let reply = client.command("MAIL FROM:<alice@example.test>");
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.command("RCPT TO:<bob@example.test>");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client.command("DATA").starts_with("354"));
    client.command(&format!(
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: {subject}\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\n{body}\r\n."
    ))
}

#[test]
fn rspamd_refuses_gtube_with_its_reply_and_adds_its_headers_to_clean_mail() {
    let dir = Scratch::new("rspamd");
    let rspamd = Rspamd::start(&dir.0.join("rspamd"));
    let petrel = Petrel::start_for(
        &dir.0,
        "mx.test",
        &["example.test"],
        &format!(
            "[[milter]]\naddress = \"127.0.0.1:{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n",
            rspamd.port
        ),
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");

    let refused = send(&mut client, "gtube", &format!("spam follows\r\n{GTUBE}"));
    assert!(
        refused.starts_with("554 5.7.1") && refused.contains("Gtube pattern"),
        "{refused}\n{}\n{}",
        petrel.log_text(),
        std::fs::read_to_string(dir.0.join("rspamd/rspamd.log")).unwrap_or_default()
    );

    let accepted = send(&mut client, "clean", "an ordinary note about lunch");
    assert!(accepted.starts_with("250"), "{accepted}");
    let mail = petrel.wait_for_maildir("example.test", "bob", 1);
    assert_eq!(mail.len(), 1, "only the clean message is stored");
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(
        text.contains("X-Spamd-Result:") && text.contains("X-Rspamd-Server:"),
        "{text}"
    );
    assert!(text.contains("Subject: clean"), "{text}");
    let samples = crate::metrics::scrape(&petrel);
    assert_eq!(
        samples.get("petrel_screen_refusals_total{check=\"milter\"}"),
        Some(&1.0),
        "{samples:?}"
    );
    drop(rspamd);
}
