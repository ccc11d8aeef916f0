//! TLS and AUTH with real clients over loopback (docs/conformance.md §8-9): swaks with --tls
//! and --auth, Python's smtplib starttls() and login(), openssl s_client -starttls smtp, lettre
//! over implicit TLS (465-style), and the STARTTLS injection case; a certificate made at test
//! time with rcgen and users added with `petrel user add`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::harness::{Petrel, Scratch};

pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    cert_pem: String,
}

pub fn make_certificate(dir: &Path) -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec![
        "mx.test".to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ])
    .unwrap();
    let cert_pem = certified.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    Tls {
        cert,
        key,
        cert_pem,
    }
}

/// A petrel with [tls], a users file holding alice/secret (added through `petrel user add`),
/// and smtp, submission and submissions listeners.
pub fn start(scratch: &Scratch) -> (Petrel, Tls) {
    let tls = make_certificate(&scratch.0);
    let users = scratch.0.join("users");
    let extra = format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n[auth]\nusers_file = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"submission\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"submissions\"\n",
        tls.cert.display(),
        tls.key.display(),
        users.display()
    );
    // `petrel user add` needs the configuration to find the users file, before serve starts.
    let dns = crate::harness::test_dns();
    let config = scratch.0.join("petrel.toml");
    std::fs::write(
        &config,
        crate::harness::config_text(&scratch.0.join("data"), dns.address, &extra),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["user", "add", "alice", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = std::fs::read_to_string(&users).unwrap();
    assert!(
        stored.contains("alice:$argon2id$") && !stored.contains("secret"),
        "{stored}"
    );
    (Petrel::start(&scratch.0, &extra), tls)
}

fn delivered_with(petrel: &Petrel, user: &str, with: &str) -> String {
    let messages = petrel.wait_for_maildir("localhost", user, 1);
    assert_eq!(messages.len(), 1, "{}", petrel.log_text());
    let text = String::from_utf8_lossy(&messages[0]).into_owned();
    assert!(
        text.contains(&format!("with {with} id")),
        "expected with {with}:\n{text}"
    );
    text
}

#[test]
fn swaks_starttls_and_auth_on_submission() {
    let scratch = Scratch::new("tls-swaks");
    let (petrel, _tls) = start(&scratch);
    let submission = petrel.listener("submission");
    // A message without Date and Message-ID: submission adds them (RFC 6409 §8).
    let file = scratch.0.join("bare.eml");
    std::fs::write(&file, "Subject: over TLS\r\n\r\nno date, no id").unwrap();
    let output = Command::new("swaks")
        .args([
            "--server",
            &submission.to_string(),
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
        ])
        .args(["--from", "alice@localhost", "--to", "swaks@localhost"])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{transcript}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(transcript.contains("235 2.7.0"), "{transcript}");
    let text = delivered_with(&petrel, "swaks", "ESMTPSA");
    assert!(
        text.contains("\nDate: ") && text.contains("@mx.test>\nSubject: over TLS"),
        "{text}"
    );
}

#[test]
fn python_smtplib_starttls_login_and_refusals() {
    let scratch = Scratch::new("tls-python");
    let (petrel, tls) = start(&scratch);
    let submission = petrel.listener("submission");
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile={cafile:?})
s = smtplib.SMTP('localhost', {port})
s.ehlo('py.test')
assert 'auth' not in s.esmtp_features, 'AUTH offered before TLS'
code, _ = s.docmd('AUTH', 'PLAIN AGFsaWNlAHNlY3JldA==')
assert code == 538, code
code, _ = s.mail('alice@localhost')
assert code == 530, code
s.starttls(context=ctx)
# OpenSSL lists TLS_AES_256_GCM_SHA384 first; petrel picks AES-128 (its key schedule on SHA-256)
assert s.sock.cipher()[0] == 'TLS_AES_128_GCM_SHA256', s.sock.cipher()
s.ehlo('py.test')
assert 'auth' in s.esmtp_features
for user, password in (('alice', 'wrong'), ('mallory', 'secret')):
    try:
        s.login(user, password)
        raise SystemExit('accepted a bad login')
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
s.login('alice', 'secret')
code, msg = s.mail('bob@localhost')
assert code == 553, (code, msg)
s.rset()
s.sendmail('alice@localhost', ['py@localhost'], b'Subject: py over TLS\r\n\r\nhello\r\n')
s.quit()
print('ok')
"#,
        cafile = tls.cert.display().to_string(),
        port = submission.port()
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    delivered_with(&petrel, "py", "ESMTPSA");
}

#[test]
fn openssl_s_client_starttls_on_port_25() {
    let scratch = Scratch::new("tls-openssl");
    let (petrel, tls) = start(&scratch);
    let client = openssl_starttls(petrel.listener("smtp"), &tls.cert);
    let seen = ehlo_and_quit(client);
    assert!(
        seen.contains("250-AUTH PLAIN LOGIN") && !seen.contains("STARTTLS"),
        "{seen}"
    );
}

/// `openssl s_client -starttls smtp` to `address`, verifying with `ca` for mx.test.
pub fn openssl_starttls(address: std::net::SocketAddr, ca: &Path) -> std::process::Child {
    Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(address.to_string())
        .arg("-CAfile")
        .arg(ca)
        .args(["-servername", "mx.test", "-quiet", "-verify_return_error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Sends EHLO through an `openssl_starttls` client, reads the reply, QUITs; the reply.
pub fn ehlo_and_quit(mut client: std::process::Child) -> String {
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    stdin.write_all(b"EHLO openssl.test\r\n").unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains("250 ") {
        let count = stdout.read(&mut buffer).unwrap();
        assert!(count > 0, "openssl ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..count]));
    }
    stdin.write_all(b"QUIT\r\n").unwrap();
    drop(stdin);
    let _ = client.wait();
    seen
}

#[test]
fn lettre_implicit_tls_with_auth() {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};
    let scratch = Scratch::new("tls-lettre");
    let (petrel, tls) = start(&scratch);
    let submissions = petrel.listener("submissions");
    let parameters = TlsParameters::builder("mx.test".to_owned())
        .add_root_certificate(Certificate::from_pem(tls.cert_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(submissions.port())
        .tls(Tls::Wrapper(parameters))
        .credentials(Credentials::new("alice".into(), "secret".into()))
        .build();
    let message = Message::builder()
        .from("alice@localhost".parse().unwrap())
        .to("lettre@localhost".parse().unwrap())
        .subject("implicit TLS")
        .body(String::from("over port 465 style TLS\n"))
        .unwrap();
    transport.send(&message).unwrap();
    delivered_with(&petrel, "lettre", "ESMTPSA");
}

#[test]
fn s_tls_2_starttls_injection_gets_no_reply_to_the_pipelined_command() {
    let scratch = Scratch::new("tls-inject");
    let (petrel, tls) = start(&scratch);
    let smtp = petrel.listener("smtp");
    let mut tcp = TcpStream::connect(smtp).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buffer = [0u8; 4096];
    let _greeting = tcp.read(&mut buffer).unwrap();
    tcp.write_all(b"EHLO inject.test\r\n").unwrap();
    let mut seen = String::new();
    while !seen.contains("250 ") {
        let count = tcp.read(&mut buffer).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buffer[..count]));
    }
    tcp.write_all(b"STARTTLS\r\nRSET\r\n").unwrap();
    let count = tcp.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..count], b"220 2.0.0 Ready to start TLS\r\n");
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("mx.test").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let mut after = String::new();
    let _ = stream.read_to_string(&mut after);
    assert_eq!(
        after,
        "421 4.7.0 Commands sent with STARTTLS were discarded; closing transmission channel\r\n",
        "the RSET must never be answered"
    );
}

use rustls::pki_types::pem::PemObject;

#[test]
fn c_tls_6_relay_upgrades_with_starttls_and_records_it() {
    let scratch_b = Scratch::new("tls-relay-b");
    let tls = make_certificate(&scratch_b.0);
    let extra = format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        tls.cert.display(),
        tls.key.display()
    );
    let b = Petrel::start_for(&scratch_b.0, "mx.relay.test", &["relay.test"], &extra);
    let scratch_a = Scratch::new("tls-relay-a");
    let a = Petrel::start(
        &scratch_a.0,
        &format!("[delivery]\nport = {}\n", b.address.port()),
    );
    let mut client = crate::harness::RawClient::connect(a.address);
    client.reply();
    client.command("EHLO tls-relay.test");
    let reply = client.send_message(
        "sender@localhost",
        &["user@relay.test"],
        b"Message-ID: <tls-relay@client.test>\r\nSubject: relayed over TLS\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    let delivered = b.wait_for_maildir("relay.test", "user", 1);
    assert_eq!(delivered.len(), 1, "{}", a.log_text());
    assert!(
        String::from_utf8_lossy(&delivered[0]).contains("by mx.relay.test (petrel) with ESMTPS id")
    );
    // Outbound TLS is in the message's history: protocol, cipher, and that the certificate was
    // not verified (opportunistic).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["queue", "show", "tls-relay@client.test", "--config"])
            .arg(&a.config_path)
            .output()
            .unwrap();
        let show = String::from_utf8_lossy(&output.stdout).into_owned();
        if show.contains("STARTTLS: TLSv1_3") {
            assert!(show.contains("certificate not verified"), "{show}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TLS in the history:\n{show}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
