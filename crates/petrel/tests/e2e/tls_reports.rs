//! TLS reporting (RFC 8460; issue 15, item 5): sessions with the MX hosts of MTA-STS domains
//! (policies served by nginx) are counted; `petrel tls-report` prints the day's report for
//! people and as the RFC's JSON; `--send` sends it to the `rua` of the domain's `_smtp._tls`
//! record: by mail (it arrives in a Maildir as multipart/report with the gzipped JSON under the
//! RFC's file name) and by HTTPS POST to a real web server (Python's http.server over TLS
//! with a certificate from the test CA). Both copies are unpacked and checked field by field.

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use petrel_dns::responder::ZoneEntry;
use serde_json::Value;

use crate::harness::{Petrel, Scratch, send_one, wait_until};
use crate::mta_sts::{policy_site, receiver, zone};
use crate::websites::TestCa;

/// A web server that keeps what is POSTed to it: the body in `dir/body`, its Content-Type in
/// `dir/type`. Ended by PID when dropped.
struct Collector {
    child: Child,
}

impl Collector {
    fn start(
        dir: &std::path::Path,
        address: Ipv4Addr,
        cert: &(std::path::PathBuf, std::path::PathBuf),
    ) -> Collector {
        const SCRIPT: &str = r#"
import http.server, ssl, sys
address, cert, key, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(out + "/body", "wb").write(body)
        open(out + "/type", "w").write(self.headers["Content-Type"] + " " + self.path)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
server = http.server.HTTPServer((address, 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
        let child = Command::new("python3")
            .args(["-c", SCRIPT, &address.to_string()])
            .arg(&cert.0)
            .arg(&cert.1)
            .arg(dir)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let target = std::net::SocketAddr::from((address, 443));
        wait_until("the report collector to listen", || {
            std::net::TcpStream::connect(target).is_ok()
        });
        Collector { child }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gunzip_json(bytes: &[u8]) -> Value {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tls_report(petrel: &Petrel, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .arg("tls-report")
        .args(args)
        .arg("--config")
        .arg(&petrel.config_path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The RFC 8460 fields of a report about good.test with one successful session.
fn check(report: &Value, what: &str) {
    assert_eq!(report["organization-name"], "mx.a.test", "{what}: {report}");
    assert_eq!(report["contact-info"], "postmaster@mx.a.test", "{what}");
    // The daily report's id is <day>_good.test@mx.a.test; one sent by hand has its own.
    let id = report["report-id"].as_str().unwrap();
    assert!(
        id.contains("_good.test") && id.ends_with("@mx.a.test") && !id.contains(':'),
        "{what}: {id}"
    );
    assert!(
        report["date-range"]["start-datetime"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z")
    );
    assert!(
        report["date-range"]["end-datetime"]
            .as_str()
            .unwrap()
            .ends_with("T23:59:59Z")
    );
    let policy = &report["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "sts", "{what}: {report}");
    assert_eq!(policy["policy"]["policy-domain"], "good.test");
    assert_eq!(policy["policy"]["mx-host"][0], "mx.sts.test");
    assert!(
        policy["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .contains(&Value::from("mode: enforce")),
        "{what}: {report}"
    );
    assert_eq!(
        policy["summary"]["total-successful-session-count"], 1,
        "{what}"
    );
    assert_eq!(
        policy["summary"]["total-failure-session-count"], 0,
        "{what}"
    );
}

#[test]
fn sessions_are_counted_and_the_report_goes_by_mail_and_https() {
    let dir = Scratch::new("tlsrpt");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 5);
    let (_site_dir, _site) = policy_site(
        "tlsrpt",
        &ca,
        site_address,
        &[
            ("good.test", "enforce", &["mx.sts.test"]),
            ("bad.test", "testing", &["mx.sts.test"]),
        ],
    );
    let collector_dir = Scratch::new("tlsrpt-collector");
    let collector_address = Ipv4Addr::new(127, 0, 1, 6);
    let collector_cert = ca.issue("reports", &["reports.good.test"]);
    let _collector = Collector::start(&collector_dir.0, collector_address, &collector_cert);

    let receiver_dir = Scratch::new("tlsrpt-receiver");
    let b = receiver(&receiver_dir, &ca, &["good.test", "bad.test"]);
    let mut zone = zone(
        site_address,
        &[
            ("good.test", "mta-sts.good.test", "mx.sts.test"),
            ("bad.test", "mta-sts.bad.test", "mx2.sts.test"),
        ],
    );
    zone.push(ZoneEntry::A("reports.good.test", collector_address));
    zone.push(ZoneEntry::Txt(
        "_smtp._tls.good.test".into(),
        "v=TLSRPTv1; rua=mailto:reports@a.test,https://reports.good.test/tlsrpt".into(),
    ));
    let sender_dir = Scratch::new("tlsrpt-sender");
    let a = Petrel::start_in_zone(
        &sender_dir.0,
        "mx.a.test",
        &["a.test"],
        zone,
        &format!(
            "[delivery]\nport = {}\nretry = [\"1h\"]\nca_file = \"{}\"\n",
            b.address.port(),
            ca.cert_path.display()
        ),
    );
    for (to, count) in [
        ("bob@good.test", 1),
        ("bob@good.test", 2),
        ("carol@bad.test", 1),
    ] {
        let content = format!("From: alice@a.test\r\nSubject: {to}\r\n\r\nhello\r\n");
        let reply = send_one(a.address, "alice@a.test", &[to], content.as_bytes());
        assert!(reply.starts_with("250"), "{reply}");
        let (user, domain) = to.split_once('@').unwrap();
        crate::harness::poll(|| b.maildir(domain, user).len(), |n| *n >= count);
    }

    // For people: the testing domain's mismatched certificate is a counted failure.
    let (ok, text) = tls_report(&a, &["bad.test"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("bad.test, policy sts (mx mx.sts.test): 0 successful, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains("certificate-host-mismatch: 1 (mx2.sts.test 127.0.0.1)"),
        "{text}"
    );
    // As the RFC's JSON.
    let (ok, text) = tls_report(&a, &["good.test", "--json"]);
    assert!(ok, "{text}");
    check(&serde_json::from_str(&text).unwrap(), "printed");

    // Sent now: by mail into a.test's own Maildir, and by POST.
    let (ok, text) = tls_report(&a, &["good.test", "--send"]);
    assert!(ok, "{text}");
    assert!(text.contains("mailed to reports@a.test"), "{text}");
    assert!(
        text.contains("posted to https://reports.good.test/tlsrpt"),
        "{text}"
    );
    let posted = std::fs::read(collector_dir.0.join("body")).unwrap();
    check(&gunzip_json(&posted), "posted");
    let kind = std::fs::read_to_string(collector_dir.0.join("type")).unwrap();
    assert_eq!(kind, "application/tlsrpt+gzip /tlsrpt");

    let mails = a.wait_for_maildir("a.test", "reports", 1);
    // Maildir files end their lines in LF.
    let mail = String::from_utf8_lossy(&mails[0]).replace("\r\n", "\n");
    assert!(
        mail.contains("Subject: Report Domain: good.test Submitter: mx.a.test Report-ID: <"),
        "{mail}"
    );
    assert!(mail.contains("report-type=\"tlsrpt\""), "{mail}");
    assert!(mail.contains("TLS-Report-Domain: good.test"), "{mail}");
    let attachment = mail
        .split("filename=\"mx.a.test!good.test!")
        .nth(1)
        .unwrap_or_else(|| panic!("no attachment with the RFC's file name: {mail}"));
    assert!(
        attachment.starts_with(|c: char| c.is_ascii_digit()),
        "{attachment}"
    );
    let (name_rest, body) = attachment.split_once("\n\n").unwrap();
    assert!(
        name_rest.starts_with(|c: char| c.is_ascii_digit()) && name_rest.contains(".json.gz\"")
    );
    let base64: String = body
        .split("--")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let packed = petrel_proto::base64::decode(&base64).unwrap();
    check(&gunzip_json(&packed), "mailed");
}

/// Shared queue (issue 15, item 5): the counts of every node of a cluster make one report.
/// Nodes a and b (one PostgreSQL queue) each deliver to good.test over verified TLS; b stops
/// (writing its counts); `petrel tls-report good.test --json` at a reports both sessions.
#[test]
fn a_cluster_reports_the_sessions_of_all_its_nodes() {
    let url = crate::backend::new_database();
    let dir = Scratch::new("tlsrpt-cluster");
    let ca = TestCa::new(&dir.0);
    let site_address = Ipv4Addr::new(127, 0, 1, 8);
    let (_site_dir, _site) = policy_site(
        "tlsrpt-cluster",
        &ca,
        site_address,
        &[("good.test", "enforce", &["mx.sts.test"])],
    );
    let receiver_dir = Scratch::new("tlsrpt-cluster-receiver");
    let b_receiver = receiver(&receiver_dir, &ca, &["good.test"]);
    let node = |name: &str, scratch: &Scratch| {
        let zone = zone(
            site_address,
            &[("good.test", "mta-sts.good.test", "mx.sts.test")],
        );
        crate::mta_sts::cluster_sender(scratch, zone, b_receiver.address.port(), &ca, (&url, name))
    };
    let a_dir = Scratch::new("tlsrpt-cluster-a");
    let a = node("a", &a_dir);
    let b_dir = Scratch::new("tlsrpt-cluster-b");
    let mut b = node("b", &b_dir);
    for (sender, count) in [(&a, 1), (&b, 2)] {
        let content = "From: alice@a.test\r\nSubject: counted\r\n\r\nhello\r\n";
        let reply = send_one(
            sender.address,
            "alice@a.test",
            &["bob@good.test"],
            content.as_bytes(),
        );
        assert!(reply.starts_with("250"), "{reply}");
        wait_until("the message at the receiver", || {
            b_receiver.maildir("good.test", "bob").len() >= count
        });
    }
    b.signal("TERM");
    b.wait_exit();
    let (ok, text) = tls_report(&a, &["good.test", "--json"]);
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["policies"][0]["summary"]["total-successful-session-count"], 2,
        "both nodes' sessions: {report}"
    );
}
