//! The files in dist/ (issue 7): the sample configuration, with its paths pointed at this
//! test's files and its listeners at loopback port 0, passes `check-config` and serves mail;
//! `--log-format json` (the unit's choice) writes one JSON object per line, and every line
//! about the message carries its queue id. The unit names the binary, the config and the
//! capability the sample needs.

use std::process::Command;

use crate::harness::{Petrel, RawClient, Scratch, run_with_stdin, test_dns};

fn dist(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../dist")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_sample_configuration_serves_and_logs_json_with_queue_ids() {
    let scratch = Scratch::new("dist");
    let dir = scratch.0.display().to_string();
    let tls = crate::tls::make_certificate(&scratch.0);
    for (name, text) in [
        ("users", ""),
        ("aliases", "postmaster: alice\nabuse: alice\n"),
    ] {
        std::fs::write(scratch.0.join(name), text).unwrap();
    }
    let keygen = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["dkim", "keygen", "example.org", "--output"])
        .arg(scratch.0.join("dkim.pem"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let dns = test_dns();
    let config = dist("petrel.toml")
        .replace("0.0.0.0:25", "127.0.0.1:0")
        .replace("0.0.0.0:587", "127.0.0.1:0")
        .replace("0.0.0.0:465", "127.0.0.1:0")
        .replace("127.0.0.1:8025", "127.0.0.1:0")
        .replace("/var/lib/petrel", &format!("{dir}/data"))
        .replace(
            "/etc/petrel/tls/fullchain.pem",
            &tls.cert.display().to_string(),
        )
        .replace(
            "/etc/petrel/tls/privkey.pem",
            &tls.key.display().to_string(),
        )
        .replace("/etc/petrel/users", &format!("{dir}/users"))
        .replace("/etc/petrel/aliases", &format!("{dir}/aliases"))
        .replace(
            "/etc/petrel/dkim/example.org.petrel.pem",
            &format!("{dir}/dkim.pem"),
        )
        + &format!("\n[dns]\nnameservers = [\"{}\"]\n", dns.address);
    let settings: String = config
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect();
    assert!(
        !settings.contains("/etc/petrel") && !settings.contains("/var/lib"),
        "{config}"
    );
    let config_path = scratch.0.join("petrel.toml");
    std::fs::write(&config_path, &config).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut petrel = Petrel::start_with(&config_path, &scratch.0.join("data"), &[]);
    // Every listener of the sample comes up (the log reader may lag behind the first line).
    petrel.listener("submission");
    petrel.listener("submissions");
    petrel.listener("http");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    // postmaster reaches a person (alice) through the sample's aliases.
    let reply = client.send_message(
        "ops@example.org",
        &["postmaster@example.org"],
        b"From: ops@example.org\r\nSubject: to a person\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.command("QUIT");
    let queue_id = reply.split_whitespace().last().unwrap().to_owned();
    assert_eq!(
        petrel.wait_for_maildir("example.org", "alice", 1).len(),
        1,
        "{}",
        petrel.log_text()
    );
    let _ = petrel.child.kill();
    let _ = petrel.child.wait();

    // A message queued by sendmail with no daemon, then delivered by the same configuration
    // under the unit's --log-format json.
    let output = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_petrel"))
            .args([
                "sendmail",
                "-f",
                "ops@example.org",
                "postmaster@example.org",
            ])
            .env("PETREL_CONFIG", &config_path),
        b"Subject: second\n\nvia sendmail\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log_path = scratch.0.join("json.log");
    let mut json = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config_path)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let delivered = petrel.wait_for_maildir("example.org", "alice", 2);
    assert_eq!(delivered.len(), 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("finished")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &json.id().to_string()])
        .status();
    let _ = json.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut about_messages = 0;
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let message = value["fields"]["message"].as_str().unwrap_or("");
        if message.contains("Maildir") || message.starts_with("finished") {
            about_messages += 1;
            assert!(
                value["fields"]["queue_id"]
                    .as_str()
                    .is_some_and(|id| id.len() == 17),
                "{line}"
            );
        }
    }
    assert!(about_messages >= 2, "{log}");
    assert!(log.contains("\"queue_id\":\""), "{log}");
    assert_eq!(queue_id.len(), 17, "{reply}");

    let unit = dist("petrel.service");
    for needed in [
        "ExecStart=/usr/local/bin/petrel serve --config /etc/petrel/petrel.toml --log-format json",
        "User=petrel",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "StateDirectory=petrel",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
}
