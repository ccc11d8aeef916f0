//! LMTP delivery into a real Dovecot (issue 7): the test starts a private Dovecot 2.3 (Debian's
//! dovecot-lmtpd and dovecot-imapd) on two loopback ports, with only bob and alice as users,
//! points `local.lmtp` at it, and reads the mail back over IMAP with Python's imaplib. An
//! unknown local recipient gets Dovecot's 550 at RCPT, so petrel bounces it, and the bounce
//! reaches the sender's own Dovecot mailbox.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Petrel, RawClient, Scratch};

/// A private Dovecot: everything under one directory, nothing of the system's instance used.
const DOVECOT_CONF: &str = r#"instance_name = petrel-test-{LMTP_PORT}
base_dir = {DIR}/run
state_dir = {DIR}/state
log_path = /dev/stderr
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
hostname = dovecot.test
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {DIR}/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu {DIR}/users
  default_fields = home={DIR}/mail/%d/%n
}
mail_location = maildir:{DIR}/mail/%d/%n
mail_uid = {UID}
mail_gid = {GID}
default_internal_user = {INTERNAL_USER}
default_login_user = {LOGIN_USER}
default_internal_group = {INTERNAL_GROUP}
service anvil {
  chroot =
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {IMAP_PORT}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = {LMTP_PORT}
  }
}
"#;

struct Dovecot {
    child: Child,
    lmtp_port: u16,
    imap_port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM to the master we started: it stops its own children (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Starts Dovecot in `dir` and waits (bounded) until both ports accept connections.
fn start_dovecot(dir: &Path) -> Dovecot {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (lmtp_port, imap_port) = (crate::harness::server_port(), crate::harness::server_port());
    let uid = command_output("id", &["-u"]);
    // Dovecot never stores mail as uid 0: as root the mail belongs to nobody, and Dovecot's own
    // processes run as the users its Debian package made.
    let (mail_uid, mail_gid, internal, login, group) = if uid == "0" {
        (
            "65534".to_owned(),
            "65534".to_owned(),
            "dovecot".to_owned(),
            "dovenull".to_owned(),
            "dovecot".to_owned(),
        )
    } else {
        let user = command_output("id", &["-un"]);
        (
            uid.clone(),
            command_output("id", &["-g"]),
            user.clone(),
            user,
            command_output("id", &["-gn"]),
        )
    };
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let status = Command::new("chown")
        .arg(format!("{mail_uid}:{mail_gid}"))
        .arg(&mail)
        .status()
        .unwrap();
    assert!(status.success());
    let conf = DOVECOT_CONF
        .replace("{DIR}", &dir.display().to_string())
        .replace("{LMTP_PORT}", &lmtp_port.to_string())
        .replace("{IMAP_PORT}", &imap_port.to_string())
        .replace("{UID}", &mail_uid)
        .replace("{GID}", &mail_gid)
        .replace("{INTERNAL_USER}", &internal)
        .replace("{LOGIN_USER}", &login)
        .replace("{INTERNAL_GROUP}", &group);
    let conf_path = dir.join("dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let users = dir.join("users");
    std::fs::write(
        &users,
        "bob@example.test:secret::::::\nalice@example.test:secret::::::\n",
    )
    .unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let child = Command::new("/usr/sbin/dovecot")
        .arg("-F")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dovecot.log")).unwrap())
        .spawn()
        .expect("start dovecot (Debian's dovecot-core, dovecot-lmtpd, dovecot-imapd)");
    let dovecot = Dovecot {
        child,
        lmtp_port,
        imap_port,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while [lmtp_port, imap_port]
        .iter()
        .any(|port| TcpStream::connect(("127.0.0.1", *port)).is_err())
    {
        assert!(
            Instant::now() < deadline,
            "dovecot did not start: {}",
            std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    dovecot
}

/// Every message in `user`'s INBOX, fetched over IMAP with Python's imaplib.
fn imap_inbox(port: u16, user: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login(sys.argv[2], "secret")
imap.select("INBOX")
typ, data = imap.search(None, "ALL")
for number in data[0].split():
    typ, parts = imap.fetch(number, "(RFC822)")
    sys.stdout.write(parts[0][1].decode("utf-8", "replace"))
    sys.stdout.write("\n=====\n")
imap.logout()
"#;
    let output = Command::new("python3")
        .args(["-c", SCRIPT, &port.to_string(), user])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split("\n=====\n")
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits (bounded) until `user` has `count` messages in Dovecot.
fn wait_for_inbox(dovecot: &Dovecot, user: &str, count: usize) -> Vec<String> {
    crate::harness::poll(
        || imap_inbox(dovecot.imap_port, user),
        |messages| messages.len() >= count,
    )
}

fn scratch_dir(scratch: &Scratch, name: &str) -> PathBuf {
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn local_mail_goes_to_dovecot_over_lmtp_and_is_read_back_over_imap() {
    let scratch = Scratch::new("lmtp");
    let dovecot = start_dovecot(&scratch_dir(&scratch, "dovecot"));
    let extra = format!(
        "[delivery]\nretry = [\"1h\"]\n\n[local]\ndomains = [\"example.test\"]\nlmtp = \"127.0.0.1:{}\"\n",
        dovecot.lmtp_port
    );
    // The harness's [local] table is replaced: write the configuration by hand.
    let petrel_dir = scratch_dir(&scratch, "petrel");
    let dns = crate::harness::test_dns();
    let config = format!(
        "hostname = \"mx.test\"\ndata_dir = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[dns]\nnameservers = [\"{}\"]\n\n{extra}",
        petrel_dir.join("data").display(),
        dns.address
    );
    let config_path = petrel_dir.join("petrel.toml");
    std::fs::write(&config_path, config).unwrap();
    let petrel = Petrel::start_with(&config_path, &petrel_dir.join("data"), &[]);
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    let content = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: over LMTP\r\n\r\nHello Bob,\r\n..a line with a leading dot\r\n";
    let reply = client.send_message(
        "alice@example.test",
        &["bob@example.test", "nobody@example.test"],
        content,
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.command("QUIT");

    let bob = wait_for_inbox(&dovecot, "bob@example.test", 1);
    assert_eq!(bob.len(), 1, "{}", petrel.log_text());
    assert!(bob[0].contains("Subject: over LMTP"), "{}", bob[0]);
    assert!(
        bob[0].contains("\r\n.a line with a leading dot\r\n"),
        "{}",
        bob[0]
    );
    assert!(bob[0].contains("by dovecot.test with LMTP"), "{}", bob[0]);
    assert!(bob[0].contains("by mx.test (petrel)"), "{}", bob[0]);
    // Dovecot refused nobody at RCPT: petrel's bounce went to alice, in Dovecot too.
    let alice = wait_for_inbox(&dovecot, "alice@example.test", 1);
    assert_eq!(alice.len(), 1, "{}", petrel.log_text());
    assert!(
        alice[0].contains("Final-Recipient: rfc822; nobody@example.test"),
        "{}",
        alice[0]
    );
    assert!(alice[0].contains("Action: failed"), "{}", alice[0]);
    assert!(alice[0].contains("Status: 5.1.1"), "{}", alice[0]);
    // Nothing went to petrel's own Maildir.
    assert!(petrel.maildir("example.test", "bob").is_empty());
    let log = petrel.log_text();
    assert!(
        log.contains("LMTP delivery") && log.contains("250 2.0.0"),
        "{log}"
    );
}
