//! The queue console (issue 19, item 2). In headless Chromium, driven by real input through
//! console_browser.py: the login form, a login, the queue, a filter by recipient domain, a
//! message's page with its attempts explained, and Hold, seen afterwards by `petrel queue
//! list`. With curl: no session means the login form; a wrong password 401 and, after five,
//! 429; a POST without the CSRF token or from another Origin is 403 and changes nothing;
//! logout ends the session; a client outside `console_networks` gets 403; the console is 404
//! when off. On a cluster (PostgreSQL), one node's console shows and holds a message another
//! node accepted. Set PETREL_CONSOLE_SCREENSHOTS to a directory to keep the browser's screenshots
//! (docs/console/ holds them).

use std::path::Path;
use std::process::Command;

use crate::harness::{Petrel, Scratch, config_text, send_one, wait_until};

const USER: &str = "admin";
const PASSWORD: &str = "console-password-1";

/// A users file with `USER`, written by `petrel user add` as an operator would.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let users = dir.join("users");
    let config = dir.join("users.toml");
    std::fs::write(
        &config,
        config_text(
            &dir.join("data"),
            "127.0.0.1:53".parse().unwrap(),
            &format!("[auth]\nusers_file = \"{}\"\n", users.display()),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["user", "add", USER, "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    users
}

/// A petrel with the console on (and `extra` in `[http]`) holding two deferred messages: the
/// first to relay.test, the second to example.net. Returns it and the two queue ids.
fn start(dir: &Path, extra: &str) -> (Petrel, String, String) {
    let users = users_file(dir);
    let closed = crate::harness::closed_port();
    let petrel = Petrel::start(
        dir,
        &format!(
            "[auth]\nusers_file = \"{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\nconsole = true\n{extra}\n\n[delivery]\nport = {closed}\nretry = [\"1h\"]\n",
            users.display()
        ),
    );
    let mut ids = Vec::new();
    for (to, subject) in [("user@relay.test", "first"), ("bob@example.net", "second")] {
        let reply = send_one(
            petrel.address,
            "alice@localhost",
            &[to],
            format!("Subject: {subject}\r\nMessage-ID: <{subject}@console.test>\r\n\r\nhi\r\n")
                .as_bytes(),
        );
        ids.push(reply.trim_end().rsplit(' ').next().unwrap().to_owned());
    }
    wait_until("both messages to be deferred", || {
        petrel.queue(&["list"]).1.matches("(deferred)").count() == 2
    });
    let second = ids.pop().unwrap();
    (petrel, ids.pop().unwrap(), second)
}

#[test]
fn console_in_chromium_log_in_filter_open_a_message_and_hold_it() {
    let dir = Scratch::new("console-chromium");
    let (petrel, first, second) = start(&dir.0, "");
    let shots = dir.0.join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/console_browser.py"
        ))
        .arg(format!("http://{}", petrel.listener("http")))
        .args([USER, PASSWORD, "example.net", &second])
        .arg(&shots)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let step = |name: &str| {
        (
            seen[name]["url"].as_str().unwrap().to_owned(),
            seen[name]["html"].as_str().unwrap().to_owned(),
        )
    };

    let (url, html) = step("login");
    assert!(url.ends_with("/queue/login"), "{url}");
    assert!(html.contains("type=\"password\""), "{html}");
    let (url, html) = step("queue");
    assert!(url.ends_with("/queue/"), "{url}");
    assert!(
        html.contains(&first) && html.contains(&second),
        "both messages listed: {html}"
    );
    assert!(html.contains("2 messages in the queue"), "{html}");
    assert!(html.contains(USER), "the user is shown: {html}");
    let (url, html) = step("filtered");
    assert!(url.contains("domain=example.net"), "{url}");
    assert!(
        html.contains(&second) && !html.contains(&first),
        "only the example.net message: {html}"
    );
    assert!(html.contains("1 of 2 messages match"), "{html}");
    let (url, html) = step("message");
    assert!(url.ends_with(&format!("/queue/{second}")), "{url}");
    for part in [
        "bob@example.net",
        "Subject: second",
        "&lt;second@console.test&gt;",
        "deferred",
        "Attempts and history",
        "href=\"/codes/4.4.1\"",
    ] {
        assert!(html.contains(part), "{part} on the message page: {html}");
    }
    let (url, html) = step("held");
    assert!(url.contains("done=hold"), "{url}");
    assert!(
        html.contains("Held: no delivery until it is released."),
        "{html}"
    );
    assert!(html.contains("state-held"), "{html}");

    let (_, list) = petrel.queue(&["list"]);
    let line = |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    assert!(line(&second).contains("(held)"), "{list}");
    assert!(line(&first).contains("(deferred)"), "{list}");
    let log = petrel.log_text();
    assert!(log.contains("console: action"), "{log}");

    if let Some(keep) = std::env::var_os("PETREL_CONSOLE_SCREENSHOTS") {
        std::fs::create_dir_all(&keep).unwrap();
        for name in ["login", "queue", "filtered", "message", "held"] {
            let from = shots.join(format!("{name}.png"));
            std::fs::copy(&from, Path::new(&keep).join(format!("{name}.png"))).unwrap();
        }
    }
}

/// curl's status, header section and body for a request; `args` go before the URL.
fn curl(petrel: &Petrel, path: &str, args: &[&str]) -> (u16, String, String) {
    let output = Command::new("curl")
        .args(["-sS", "-D", "-"])
        .args(args)
        .arg(format!("http://{}{path}", petrel.listener("http")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The `name=value` of the cookie a response's (lower-cased) header section sets.
pub fn session_cookie(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Logs in; returns the Cookie field and the page's CSRF token.
fn log_in(petrel: &Petrel) -> (String, String) {
    let form = format!("user={USER}&password={PASSWORD}");
    let (status, head, _) = curl(petrel, "/queue/login", &["-d", &form]);
    assert_eq!(status, 303, "{head}");
    let cookie = session_cookie(&head);
    let (status, _, body) = curl(petrel, "/queue/", &["-b", &cookie]);
    assert_eq!(status, 200, "{body}");
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[test]
fn console_refuses_strangers_forged_forms_and_guessed_passwords() {
    let dir = Scratch::new("console-curl");
    let (petrel, first, _) = start(&dir.0, "");
    let hold = format!("/queue/{first}/hold");
    let held = || petrel.queue(&["list"]).1.contains("(held)");

    // No session: the login form; a posted action is refused.
    let (status, head, _) = curl(&petrel, "/queue/", &[]);
    assert!(
        status == 302 && head.contains("location: /queue/login"),
        "{head}"
    );
    let (status, _, _) = curl(&petrel, &hold, &["-d", "csrf=x"]);
    assert_eq!(status, 403);

    // A session; its cookie is one scripts cannot read and other sites do not send.
    let (cookie, csrf) = log_in(&petrel);
    let (_, head, _) = curl(
        &petrel,
        "/queue/login",
        &["-d", &format!("user={USER}&password={PASSWORD}")],
    );
    for part in ["secure", "httponly", "samesite=strict"] {
        assert!(head.contains(part), "{part}: {head}");
    }
    let (status, _, body) = curl(&petrel, &format!("/queue/{first}"), &["-b", &cookie]);
    assert_eq!(status, 200);
    assert!(body.contains("user@relay.test"), "{body}");

    // Forged forms: no token, a wrong one, the right one from another site.
    for (form, origin) in [
        (String::new(), None),
        (format!("csrf={}", "0".repeat(64)), None),
        (
            format!("csrf={csrf}"),
            Some("Origin: http://attacker.example"),
        ),
        (format!("csrf={csrf}"), Some("Origin: null")),
    ] {
        let mut args = vec!["-b", cookie.as_str(), "-d", form.as_str()];
        if let Some(origin) = origin {
            args.extend(["-H", origin]);
        }
        let (status, _, body) = curl(&petrel, &hold, &args);
        assert_eq!(status, 403, "{form} {origin:?}: {body}");
        assert!(!held(), "a refused form changed nothing");
    }
    // The console's own form, as a browser sends it.
    let origin = format!("Origin: http://{}", petrel.listener("http"));
    let form = format!("csrf={csrf}");
    let (status, head, _) = curl(&petrel, &hold, &["-b", &cookie, "-H", &origin, "-d", &form]);
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains(&format!(
            "location: /queue/{}?done=hold",
            first.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(held());

    // Logout ends the session.
    let (status, _, _) = curl(&petrel, "/queue/logout", &["-b", &cookie, "-d", &form]);
    assert_eq!(status, 303);
    let (status, _, _) = curl(&petrel, "/queue/", &["-b", &cookie]);
    assert_eq!(status, 302);

    // Guessed passwords: 401 each, then the address waits.
    for _ in 0..5 {
        let (status, _, body) = curl(
            &petrel,
            "/queue/login",
            &["-d", "user=admin&password=guess"],
        );
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("Wrong user or password."));
    }
    let form = format!("user={USER}&password={PASSWORD}");
    let (status, _, _) = curl(&petrel, "/queue/login", &["-d", &form]);
    assert_eq!(status, 429, "even the right password waits");
}

#[test]
fn console_answers_only_its_networks_and_only_when_on() {
    let dir = Scratch::new("console-networks");
    let (petrel, _, _) = start(&dir.0, "console_networks = [\"127.0.0.2/32\"]");
    let (status, _, body) = curl(&petrel, "/queue/login", &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("console_networks"), "{body}");
    // A network beyond loopback needs HTTPS.
    let config = std::fs::read_to_string(&petrel.config_path).unwrap();
    let wider = dir.0.join("wider.toml");
    std::fs::write(&wider, config.replace("127.0.0.2/32", "192.0.2.0/24")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(&wider)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && said.contains("needs HTTPS (http.tls = true)"),
        "{said}"
    );

    let dir = Scratch::new("console-off");
    let petrel = Petrel::start(&dir.0, "[http]\naddress = \"127.0.0.1:0\"\n");
    let (status, _, _) = curl(&petrel, "/queue/", &[]);
    assert_eq!(status, 404);
}

#[test]
fn on_a_cluster_one_nodes_console_shows_and_holds_what_another_accepted() {
    let url = crate::backend::new_database();
    let (dir_a, dir_b) = (Scratch::new("console-cl-a"), Scratch::new("console-cl-b"));
    let users = users_file(&dir_a.0);
    let closed = crate::harness::closed_port();
    let node = |dir: &Scratch, name: &str| {
        Petrel::start_for(
            &dir.0,
            &format!("{name}.cluster.test"),
            &["localhost"],
            &format!(
                "[queue]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{name}\"\nlease = \"60s\"\n\n[auth]\nusers_file = \"{}\"\n\n[http]\naddress = \"127.0.0.1:0\"\nconsole = true\n\n[delivery]\nport = {closed}\nretry = [\"1h\"]\n",
                users.display()
            ),
        )
    };
    let (a, b) = (node(&dir_a, "a"), node(&dir_b, "b"));
    let reply = send_one(
        a.address,
        "alice@localhost",
        &["user@relay.test"],
        b"Subject: cluster\r\n\r\nhi\r\n",
    );
    let id = reply.trim_end().rsplit(' ').next().unwrap().to_owned();
    wait_until("the message to be deferred", || {
        a.queue(&["list"]).1.contains("(deferred)")
    });

    let (cookie, csrf) = log_in(&b);
    let (status, _, body) = curl(&b, "/queue/", &["-b", &cookie]);
    assert_eq!(status, 200);
    assert!(body.contains(&id), "node b lists node a's message: {body}");
    let form = format!("csrf={csrf}");
    let (status, head, _) = curl(
        &b,
        &format!("/queue/{id}/hold"),
        &["-b", &cookie, "-d", &form],
    );
    assert_eq!(status, 303, "{head}");
    wait_until("node a to see the message held", || {
        a.queue(&["list"]).1.contains("(held)")
    });
}
