//! The JSON API (issue 19, item 3), with curl: a token from `[http] api_token_file`; 401
//! without it (with WWW-Authenticate), 403 with another; the queue as `petrel queue list --json`
//! and `show --json` give it; hold, release, flush and delete through the queue control, seen
//! by `petrel queue list`; errors as JSON with 400 and 404; explain as `petrel explain --json`.

use std::process::Command;

use crate::harness::{Petrel, Scratch, send_one};

const TOKEN: &str = "api-test-token-0123456789";

/// curl's status code and body for `method path` with `token`.
fn curl(petrel: &Petrel, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let address = petrel.listener("http");
    let mut command = Command::new("curl");
    command.args(["-sS", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(format!("http://{address}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_owned())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_api_answers_as_the_cli_does_and_only_with_the_token() {
    let dir = Scratch::new("api");
    let token_file = dir.0.join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let closed = crate::harness::closed_port();
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[http]\naddress = \"127.0.0.1:0\"\napi_token_file = \"{}\"\n\n[delivery]\nport = {closed}\nretry = [\"1h\"]\n",
            token_file.display()
        ),
    );
    let reply = send_one(
        petrel.address,
        "a@localhost",
        &["user@relay.test"],
        b"Subject: api\r\n\r\nhi\r\n",
    );
    let id = reply.trim_end().rsplit(' ').next().unwrap().to_owned();
    crate::harness::wait_until("the message to be deferred", || {
        petrel.queue(&["list"]).1.contains("deferred")
    });

    // The token.
    let (status, body) = curl(&petrel, "GET", "/api/v1/queue", None);
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["error"].is_string());
    let headers = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{}/api/v1/queue", petrel.listener("http")))
        .output()
        .unwrap();
    // Field names are case-insensitive (hyper writes this one Www-Authenticate).
    assert!(
        String::from_utf8_lossy(&headers.stdout)
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{}",
        String::from_utf8_lossy(&headers.stdout)
    );
    let (status, _) = curl(
        &petrel,
        "GET",
        "/api/v1/queue",
        Some("api-test-token-wrong-00000"),
    );
    assert_eq!(status, 403);

    // The queue, as the CLI gives it.
    let (status, body) = curl(&petrel, "GET", "/api/v1/queue", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let (listed, cli) = petrel.queue(&["list", "--json"]);
    assert!(listed, "{cli}");
    let ids = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&json(&body)), ids(&json(&cli)));
    assert_eq!(ids(&json(&body)), vec![id.clone()]);
    let (status, body) = curl(&petrel, "GET", &format!("/api/v1/queue/{id}"), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let (_, cli) = petrel.queue(&["show", &id, "--json"]);
    assert_eq!(json(&body)["id"], json(&cli)["id"]);
    assert_eq!(json(&body)["recipients"], json(&cli)["recipients"]);

    // Actions.
    let (status, body) = curl(
        &petrel,
        "POST",
        &format!("/api/v1/queue/{id}/hold"),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["ok"], true);
    assert!(petrel.queue(&["list"]).1.contains("(held)"));
    let (status, body) = curl(
        &petrel,
        "POST",
        &format!("/api/v1/queue/{id}/release"),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!petrel.queue(&["list"]).1.contains("(held)"));
    let (status, body) = curl(
        &petrel,
        "POST",
        &format!("/api/v1/queue/{id}/flush"),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(
        &petrel,
        "POST",
        &format!("/api/v1/queue/{id}/paint"),
        Some(TOKEN),
    );
    assert_eq!(status, 404);
    let (status, body) = curl(&petrel, "POST", "/api/v1/queue/not-an-id/hold", Some(TOKEN));
    assert_eq!(status, 400, "{body}");
    let (status, body) = curl(
        &petrel,
        "DELETE",
        &format!("/api/v1/queue/{id}"),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&petrel, "GET", "/api/v1/queue", Some(TOKEN));
    assert_eq!((status, ids(&json(&body))), (200, Vec::<String>::new()));
    let (status, body) = curl(
        &petrel,
        "POST",
        &format!("/api/v1/queue/{id}/hold"),
        Some(TOKEN),
    );
    assert_eq!(status, 404, "{body}");

    // Explain, as `petrel explain --json`.
    let (status, body) = curl(
        &petrel,
        "GET",
        "/api/v1/explain?q=5.1.10&lang=id",
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let cli = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["explain", "5.1.10", "--json", "--lang", "id"])
        .output()
        .unwrap();
    assert_eq!(json(&body), json(&String::from_utf8_lossy(&cli.stdout)));
    let (status, _) = curl(&petrel, "GET", "/api/v1/explain?q=9.9.9", Some(TOKEN));
    assert_eq!(status, 404);
    let (status, _) = curl(&petrel, "GET", "/api/v1/nothing", Some(TOKEN));
    assert_eq!(status, 404);
}
