//! Running without root (issue 7): started as root with `[privileges] user = "nobody"`, petrel
//! binds a privileged port (below 1024), then runs as nobody: /proc says so, the message it
//! takes on that port is stored and delivered by files nobody owns. Not started as root, the
//! same setting is refused with a sentence that says what to do.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::harness::{Petrel, RawClient, Scratch, config_text, test_dns};

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// A free TCP port below 1024 on 127.0.0.1 (tried in order; the test runs as root).
fn privileged_port() -> u16 {
    (600..1000)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 1024")
}

fn uid_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn binds_a_privileged_port_then_runs_as_nobody() {
    let scratch = Scratch::new("privileges");
    if !is_root() {
        let dns = test_dns();
        let config = scratch.0.join("petrel.toml");
        let text = config_text(
            &scratch.0.join("data"),
            dns.address,
            "[privileges]\nuser = \"nobody\"\n",
        );
        std::fs::write(&config, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("start it as root"));
        return;
    }
    let port = privileged_port();
    let extra = format!(
        "[privileges]\nuser = \"nobody\"\n\n[[listener]]\naddress = \"127.0.0.1:{port}\"\n"
    );
    let petrel = Petrel::start(&scratch.0, &extra);
    assert!(
        petrel.log_text().contains("running as nobody"),
        "{}",
        petrel.log_text()
    );
    assert_eq!(uid_of(petrel.child.id()), "65534");
    let mut client = RawClient::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(client.reply().starts_with("220"));
    client.command("EHLO client.test");
    let reply = client.send_message(
        "root@localhost",
        &["ops@localhost"],
        b"Subject: unprivileged\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.command("QUIT");
    let delivered = petrel.wait_for_maildir("localhost", "ops", 1);
    assert_eq!(delivered.len(), 1, "{}", petrel.log_text());
    let new = petrel.data_dir.join("mail/localhost/ops/new");
    let file = std::fs::read_dir(&new)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 65534);
    if !crate::backend::is_postgres() {
        assert_eq!(
            std::fs::metadata(petrel.data_dir.join("queue"))
                .unwrap()
                .uid(),
            65534
        );
    }
}
