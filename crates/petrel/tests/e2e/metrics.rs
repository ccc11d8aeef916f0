//! `/metrics` (issue 7): scraped with curl after known traffic and parsed as the OpenMetrics
//! text format (prometheus-client's, issue 19); the counters must equal what was sent:
//! messages received, replies by code, the bare-newline refusal, local and remote deliveries,
//! the replies of the remote server, and the queue gauges.

use std::collections::HashMap;
use std::process::Command;

use crate::harness::{Petrel, RawClient, Scratch};

/// Scrapes `/metrics` with curl and parses every sample line into `name{labels}` -> value,
/// checking each metric has HELP and TYPE lines before its samples.
pub fn scrape(petrel: &Petrel) -> HashMap<String, f64> {
    let address = petrel.listener("http");
    let output = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-D",
            "-",
            &format!("http://{address}/metrics"),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        // OpenMetrics names a counter's family without the _total of its samples.
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            typed.contains(name) || typed.contains(family),
            "{name} has no TYPE line before it"
        );
        samples.insert(series.to_owned(), value.parse::<f64>().unwrap());
    }
    samples
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Polls the metrics until `series` reaches `wanted` (deliveries finish after the 250).
fn wait_for(petrel: &Petrel, series: &str, wanted: f64) -> HashMap<String, f64> {
    crate::harness::poll(|| scrape(petrel), |s| value(s, series) >= wanted)
}

#[test]
fn metrics_count_what_was_sent() {
    let scratch_b = Scratch::new("metrics-b");
    let b = Petrel::start_for(&scratch_b.0, "mx.relay.test", &["relay.test"], "");
    let scratch = Scratch::new("metrics-a");
    let extra = format!(
        "[http]\naddress = \"127.0.0.1:0\"\n\n[delivery]\nport = {}\nretry = [\"1s\"]\n",
        b.address.port()
    );
    let a = Petrel::start(&scratch.0, &extra);
    let before = scrape(&a);
    assert_eq!(
        value(&before, "petrel_messages_received_total{source=\"smtp\"}"),
        0.0
    );
    assert_eq!(value(&before, "petrel_bare_newline_refusals_total"), 0.0);
    assert!(before.contains_key("petrel_queue_messages"));

    // Three messages to local mailboxes, one to the relay, one refused for a bare LF.
    for (to, body) in [
        ("a@localhost", "one"),
        ("b@localhost", "two"),
        ("c@example.test", "three"),
        ("user@relay.test", "four"),
    ] {
        let mut client = RawClient::connect(a.address);
        client.reply();
        client.command("EHLO client.test");
        let content = format!("Subject: {body}\r\n\r\n{body}\r\n");
        let reply = client.send_message("sender@localhost", &[to], content.as_bytes());
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        client.command("QUIT");
    }
    let mut client = RawClient::connect(a.address);
    client.reply();
    client.command("EHLO client.test");
    let reply = client.send_message(
        "sender@localhost",
        &["a@localhost"],
        b"Subject: x\r\n\r\nbare\nLF\r\n",
    );
    assert!(reply.starts_with("550 5.5.2"), "{reply}");
    client.command("QUIT");

    let samples = wait_for(
        &a,
        "petrel_recipient_deliveries_total{transport=\"smtp\",result=\"delivered\"}",
        1.0,
    );
    let samples = if value(
        &samples,
        "petrel_recipient_deliveries_total{transport=\"maildir\",result=\"delivered\"}",
    ) < 3.0
    {
        wait_for(
            &a,
            "petrel_recipient_deliveries_total{transport=\"maildir\",result=\"delivered\"}",
            3.0,
        )
    } else {
        samples
    };
    let expect = |series: &str, wanted: f64| {
        assert_eq!(value(&samples, series), wanted, "{series}\n{samples:#?}");
    };
    expect("petrel_messages_received_total{source=\"smtp\"}", 4.0);
    expect("petrel_smtp_connections_total{protocol=\"smtp\"}", 5.0);
    expect(
        "petrel_smtp_replies_sent_total{code=\"220\",enhanced=\"\"}",
        5.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"250\",enhanced=\"2.0.0\"}",
        4.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"250\",enhanced=\"2.1.0\"}",
        5.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"250\",enhanced=\"2.1.5\"}",
        5.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"354\",enhanced=\"\"}",
        5.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"550\",enhanced=\"5.5.2\"}",
        1.0,
    );
    expect(
        "petrel_smtp_replies_sent_total{code=\"221\",enhanced=\"2.0.0\"}",
        5.0,
    );
    expect("petrel_bare_newline_refusals_total", 1.0);
    expect(
        "petrel_recipient_deliveries_total{transport=\"maildir\",result=\"delivered\"}",
        3.0,
    );
    expect(
        "petrel_recipient_deliveries_total{transport=\"smtp\",result=\"delivered\"}",
        1.0,
    );
    // What the second petrel answered to the one relayed message.
    expect(
        "petrel_remote_replies_received_total{code=\"220\",enhanced=\"\"}",
        1.0,
    );
    expect(
        "petrel_remote_replies_received_total{code=\"354\",enhanced=\"\"}",
        1.0,
    );
    expect(
        "petrel_remote_replies_received_total{code=\"250\",enhanced=\"2.0.0\"}",
        1.0,
    );
    // Everything was delivered: the queue is empty again.
    let drained = wait_for_gauge(&a, "petrel_queue_messages", 0.0);
    assert_eq!(value(&drained, "petrel_queue_messages"), 0.0);
    assert_eq!(b.wait_for_maildir("relay.test", "user", 1).len(), 1);
}

/// Polls until a gauge falls to `wanted`.
fn wait_for_gauge(petrel: &Petrel, series: &str, wanted: f64) -> HashMap<String, f64> {
    crate::harness::poll(|| scrape(petrel), |s| value(s, series) <= wanted)
}
