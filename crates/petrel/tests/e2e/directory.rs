//! Domains, mailboxes, aliases and users managed with `petrel domain|mailbox|alias|user`
//! (issue 19, item 6). With `local.store = "postgres"` on two nodes of one real PostgreSQL,
//! a change made with node a's command is used by node b without a restart: a new domain's
//! RCPT goes from 554 to 250, a listed mailbox makes others 550 5.1.1, an alias delivers to its
//! target's Maildir, a new user logs in to b's console and is logged out when removed, a
//! removed domain is refused again.
//! With the file store, the commands edit the configuration file (its comments kept) and the
//! aliases file, and a SIGHUP puts them to use.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::harness::{Petrel, RawClient, Scratch, config_for, send_one, test_dns, wait_until};

/// Starts a petrel whose `[local]` table also holds `local` (relaying closed, so a domain that
/// is not local gets 554 at RCPT), with `extra` after the base configuration.
fn start(dir: &Path, hostname: &str, local: &str, extra: &str) -> Petrel {
    let dns = test_dns();
    let data_dir = dir.join("data");
    let config_path = dir.join("petrel.toml");
    let text = config_for(&data_dir, dns.address, hostname, &["localhost"], extra).replacen(
        "[local]\n",
        &format!("# the mail domains\n[local]\n{local}"),
        1,
    );
    std::fs::write(&config_path, format!("{text}\n[relay]\nnetworks = []\n")).unwrap();
    let mut petrel = Petrel::start_with(&config_path, &data_dir, &[]);
    petrel.dns = Some(Arc::new(dns));
    petrel
}

/// `petrel ARGS --config` of `petrel`, with `input` on standard input; its success and output.
fn petrel_command(petrel: &Petrel, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(args)
        .arg("--config")
        .arg(&petrel.config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// Runs a command that must succeed.
fn run(petrel: &Petrel, args: &[&str]) -> String {
    let (ok, said) = petrel_command(petrel, args, "");
    assert!(ok, "petrel {args:?}: {said}");
    said
}

/// The reply to RCPT TO:<to> from alice@localhost.
fn rcpt(petrel: &Petrel, to: &str) -> String {
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    client.command("MAIL FROM:<alice@localhost>");
    let reply = client.command(&format!("RCPT TO:<{to}>"));
    client.command("QUIT");
    reply
}

/// Waits until RCPT TO:<to> on `petrel` gets a reply starting with `code`.
fn wait_for_rcpt(petrel: &Petrel, to: &str, code: &str) {
    wait_until(&format!("RCPT TO:<{to}> to get {code}"), || {
        rcpt(petrel, to).starts_with(code)
    });
}

#[test]
fn the_postgres_directory_is_used_by_every_node_without_a_restart() {
    let url = crate::backend::new_database();
    let (dir_a, dir_b) = (Scratch::new("dir-a"), Scratch::new("dir-b"));
    let node = |dir: &Scratch, name: &str| {
        start(
            &dir.0,
            &format!("{name}.cluster.test"),
            "store = \"postgres\"\n",
            &format!(
                "[queue]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{name}\"\n\n[http]\naddress = \"127.0.0.1:0\"\nconsole = true\n"
            ),
        )
    };
    let (a, b) = (node(&dir_a, "a"), node(&dir_b, "b"));
    assert!(rcpt(&b, "alice@newco.test").starts_with("554"));

    // A domain, added with node a's command, is node b's within seconds.
    run(&a, &["domain", "add", "NewCo.test"]);
    wait_for_rcpt(&b, "alice@newco.test", "250");
    assert!(rcpt(&b, "bob@newco.test").starts_with("250"), "any mailbox");
    assert!(run(&b, &["domain", "list"]).contains("newco.test"));
    assert!(
        run(&b, &["check-config"]).contains("local.store = postgres: 1 domains, 0 mailboxes"),
        "check-config reads the directory"
    );

    // Listed mailboxes: others get 550 5.1.1.
    run(&a, &["mailbox", "add", "alice@newco.test"]);
    wait_for_rcpt(&b, "bob@newco.test", "550 5.1.1");
    assert!(rcpt(&b, "alice@newco.test").starts_with("250"));

    // An alias delivers to its target.
    run(&a, &["alias", "add", "team@newco.test", "alice@newco.test"]);
    wait_for_rcpt(&b, "team@newco.test", "250");
    send_one(
        b.address,
        "carol@localhost",
        &["team@newco.test"],
        b"Subject: to the team\r\n\r\nhi\r\n",
    );
    let delivered = b.wait_for_maildir("newco.test", "alice", 1);
    assert!(String::from_utf8_lossy(&delivered[0]).contains("Subject: to the team"));
    assert!(run(&a, &["alias", "list"]).contains("team@newco.test: alice@newco.test"));

    // A user, added on a, logs in to b's console once b has read the directory again (a
    // login tried earlier would fail, and five failures make the address wait).
    let reloads = || {
        b.log_text()
            .matches("configuration reloaded after the directory changed")
            .count()
    };
    let before = reloads();
    let (ok, said) = petrel_command(&a, &["user", "add", "carol"], "carol-password-1\n");
    assert!(ok, "{said}");
    assert!(run(&b, &["user", "list"]).contains("carol"));
    let console = |path: &str, args: &[&str]| {
        let output = Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null"])
            .args(args)
            .arg(format!("http://{}{path}", b.listener("http")))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_ascii_lowercase()
    };
    wait_until("node b to read the directory again", || reloads() > before);
    let head = console(
        "/queue/login",
        &["-d", "user=carol&password=carol-password-1"],
    );
    assert!(head.starts_with("http/1.1 303"), "carol logs in: {head}");
    let cookie = crate::console::session_cookie(&head);
    assert!(console("/queue/", &["-b", &cookie]).starts_with("http/1.1 200"));

    // A user removed on a is logged out of b's console.
    let before = reloads();
    run(&a, &["user", "remove", "carol"]);
    wait_until("node b to read the directory again", || reloads() > before);
    let head = console("/queue/", &["-b", &cookie]);
    assert!(
        head.starts_with("http/1.1 302") && head.contains("location: /queue/login"),
        "{head}"
    );

    // A removed domain is not local any more.
    run(&a, &["domain", "remove", "newco.test"]);
    wait_for_rcpt(&b, "alice@newco.test", "554");
}

#[test]
fn with_the_file_store_the_commands_edit_the_files_and_sighup_uses_them() {
    let dir = Scratch::new("dir-file");
    let aliases = dir.0.join("aliases");
    std::fs::write(&aliases, "# the aliases\npostmaster: root\n").unwrap();
    let petrel = start(
        &dir.0,
        "mx.test",
        &format!("aliases = \"{}\"\n", aliases.display()),
        "",
    );
    assert!(rcpt(&petrel, "a@files.test").starts_with("554"));
    run(&petrel, &["domain", "add", "files.test"]);
    run(&petrel, &["mailbox", "add", "a@files.test"]);
    run(
        &petrel,
        &["alias", "add", "info@files.test", "a@files.test"],
    );
    let (ok, said) = petrel_command(&petrel, &["domain", "remove", "nowhere.test"], "");
    assert!(!ok && said.contains("does not hold nowhere.test"), "{said}");
    let config = std::fs::read_to_string(&petrel.config_path).unwrap();
    assert!(
        config.contains("# the mail domains"),
        "comments kept: {config}"
    );
    assert!(config.contains("\"files.test\"") && config.contains("\"a@files.test\""));
    let aliases = std::fs::read_to_string(&aliases).unwrap();
    assert!(
        aliases.contains("info@files.test: a@files.test"),
        "{aliases}"
    );
    assert!(aliases.contains("postmaster: root"), "{aliases}");
    assert!(
        aliases.starts_with("# the aliases\n"),
        "comments kept: {aliases}"
    );
    assert!(
        rcpt(&petrel, "a@files.test").starts_with("554"),
        "not before SIGHUP"
    );
    petrel.signal("HUP");
    wait_for_rcpt(&petrel, "a@files.test", "250");
    assert!(rcpt(&petrel, "info@files.test").starts_with("250"));
    assert!(rcpt(&petrel, "b@files.test").starts_with("550 5.1.1"));
    assert!(run(&petrel, &["domain", "list"]).contains("files.test"));
}
