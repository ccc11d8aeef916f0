//! The door of port 25 (issue 16): DNS blocklists and allowlists (RFC 5782) served by the
//! loopback DNS responder, which lists 127.0.0.1 (the test client) in zen.test (code
//! 127.0.0.2), weak.test (code 127.0.0.3) and allow.test. A score at or over the threshold
//! refuses the greeting with 554 and the lists named; an allowlist's negative weight, a return
//! code outside the list's filter and `screen.allow_networks` let the client in. The relay
//! networks are emptied so that 127.0.0.1 is screened at all. The pre-greet wait tells
//! clients that wait for the greeting from those that speak first.

use petrel_dns::responder::ZoneEntry;

use crate::harness::{Petrel, RawClient, Scratch, test_zone};

fn zone() -> Vec<ZoneEntry> {
    let mut zone = test_zone();
    zone.push(ZoneEntry::A(
        "1.0.0.127.zen.test",
        "127.0.0.2".parse().unwrap(),
    ));
    zone.push(ZoneEntry::A(
        "1.0.0.127.weak.test",
        "127.0.0.3".parse().unwrap(),
    ));
    zone.push(ZoneEntry::A(
        "1.0.0.127.allow.test",
        "127.0.0.2".parse().unwrap(),
    ));
    zone
}

/// The greeting a petrel with `screen` (a `[screen]` body) gives 127.0.0.1.
fn greeting(name: &str, screen: &str) -> (String, Petrel, Scratch) {
    let dir = Scratch::new(name);
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone(),
        &format!(
            "[http]\naddress = \"127.0.0.1:0\"\n\n[relay]\nnetworks = []\n\n[screen]\n{screen}"
        ),
    );
    let mut client = RawClient::connect(petrel.address);
    let reply = client.reply();
    (reply, petrel, dir)
}

/// `petrel_screen_refusals_total{check}` from /metrics.
fn refusals(petrel: &Petrel, check: &str) -> Option<f64> {
    crate::metrics::scrape(petrel)
        .get(&format!(
            "petrel_screen_refusals_total{{check=\"{check}\"}}"
        ))
        .copied()
}

const ZEN: &str = "[[screen.dnsbl]]\nzone = \"zen.test\"\nweight = 3\n";

#[test]
fn dns_lists_score_the_client_before_the_greeting() {
    let (reply, petrel, _dir) = greeting("dnsbl-listed", &format!("dnsbl_threshold = 3\n{ZEN}"));
    assert_eq!(
        reply,
        "554 Service unavailable; client [127.0.0.1] blocked using zen.test\r\n"
    );
    // S-SESS-1: refused, the session waits for QUIT and answers the rest with 503.
    let mut refused = RawClient::connect(petrel.address);
    refused.reply();
    assert_eq!(
        refused.command("EHLO door.test"),
        "503 5.5.1 Bad sequence of commands\r\n"
    );
    assert!(refused.command("QUIT").starts_with("221"));
    assert!(
        petrel.log_text().contains("refused at the door: listed"),
        "{}",
        petrel.log_text()
    );
    assert_eq!(
        refusals(&petrel, "dnsbl"),
        Some(2.0),
        "both connections counted"
    );

    let allowlisted = format!(
        "dnsbl_threshold = 3\n{ZEN}\n[[screen.dnsbl]]\nzone = \"allow.test\"\nweight = -5\n"
    );
    let (reply, _petrel, _dir) = greeting("dnsbl-allowlisted", &allowlisted);
    assert!(reply.starts_with("220 "), "score 3 - 5 is under 3: {reply}");

    let filtered = "[[screen.dnsbl]]\nzone = \"weak.test\"\ncodes = [\"127.0.0.2\", \"127.0.0.4-127.0.0.7\"]\n";
    let (reply, _petrel, _dir) = greeting("dnsbl-codes", filtered);
    assert!(
        reply.starts_with("220 "),
        "127.0.0.3 is not a code that counts: {reply}"
    );

    let exempt = format!("allow_networks = [\"127.0.0.1/32\"]\n{ZEN}");
    let (reply, _petrel, _dir) = greeting("dnsbl-exempt", &exempt);
    assert!(reply.starts_with("220 "), "allow_networks: {reply}");

    // dnsbl_action = "rcpt": greeted, and refused at RCPT (the log has sender and recipient).
    let at_rcpt = format!("dnsbl_threshold = 3\ndnsbl_action = \"rcpt\"\n{ZEN}");
    let (reply, petrel, _dir) = greeting("dnsbl-rcpt", &at_rcpt);
    assert!(reply.starts_with("220 "), "{reply}");
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.example");
    assert!(
        client
            .command("MAIL FROM:<a@relay.test>")
            .starts_with("250")
    );
    assert_eq!(
        client.command("RCPT TO:<bob@example.test>"),
        "554 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.test\r\n"
    );

    let unlisted = "[[screen.dnsbl]]\nzone = \"nolist.test\"\n";
    let (reply, _petrel, _dir) = greeting("dnsbl-unlisted", unlisted);
    assert!(reply.starts_with("220 "), "NXDOMAIN: not listed: {reply}");
}

/// A petrel with a one-second pre-greet wait for 127.0.0.1 (relay networks emptied).
fn pregreeting(name: &str) -> (Petrel, Scratch) {
    let dir = Scratch::new(name);
    let petrel = Petrel::start(
        &dir.0,
        "[http]\naddress = \"127.0.0.1:0\"\n\n[relay]\nnetworks = []\n\n[screen]\npregreet = \"1s\"\n",
    );
    (petrel, dir)
}

/// A remembered client's next connection: greeted at once, however polite, then refused at
/// MAIL for screen.pregreet_penalty.
fn assert_refused_when_back(address: std::net::SocketAddr, helo: &str) {
    let mut back = RawClient::connect(address);
    assert_eq!(
        back.reply(),
        "220 mx.test ESMTP\r\n",
        "remembered: no wait, it is known"
    );
    back.command(&format!("EHLO {helo}"));
    assert!(
        back.command("MAIL FROM:<a@relay.test>")
            .starts_with("554 5.5.1"),
        "remembered for screen.pregreet_penalty"
    );
}

/// Pre-greet (issue 16, item 1): "220-" first and the rest after the wait; a client that waits
/// is served and remembered (greeted at once next time); one that speaks first (a bot's
/// pipelined EHLO, or HTTP) hears the whole greeting but is refused at MAIL with 554 5.5.1,
/// and stays refused on its next connection.
#[test]
fn the_pregreet_wait_tells_polite_clients_from_bots() {
    let (polite, _dir) = pregreeting("pregreet-polite");
    let mut client = RawClient::connect(polite.address);
    assert_eq!(client.reply(), "220-mx.test ESMTP\r\n220 mx.test ESMTP\r\n");
    client.command("EHLO polite.test");
    assert!(
        client
            .command("MAIL FROM:<a@relay.test>")
            .starts_with("250")
    );
    client.command("QUIT");
    let mut again = RawClient::connect(polite.address);
    assert_eq!(
        again.reply(),
        "220 mx.test ESMTP\r\n",
        "remembered: no wait the second time"
    );

    let (bot_server, _dir) = pregreeting("pregreet-bot");
    let mut bot = RawClient::connect(bot_server.address);
    bot.send(b"EHLO bot.test\r\n");
    assert_eq!(bot.reply(), "220-mx.test ESMTP\r\n220 mx.test ESMTP\r\n");
    assert!(bot.reply().starts_with("250-mx.test Hello bot.test"));
    assert_eq!(
        bot.command("MAIL FROM:<a@relay.test>"),
        "554 5.5.1 Protocol error: the client spoke before the greeting\r\n"
    );
    assert_refused_when_back(bot_server.address, "bot.test");
    // The log is read from petrel's stderr by a thread of the harness: wait for the line.
    let log = crate::harness::poll(
        || bot_server.log_text(),
        |log| log.contains("spoke before the greeting"),
    );
    assert!(log.contains("spoke before the greeting"), "{log}");

    let (web_server, _dir) = pregreeting("pregreet-http");
    let mut web = RawClient::connect(web_server.address);
    web.send(b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n");
    assert_eq!(web.reply(), "220-mx.test ESMTP\r\n220 mx.test ESMTP\r\n");
    assert_eq!(
        web.reply(),
        "554 5.5.1 Protocol error: not an SMTP command; closing transmission channel\r\n",
        "GET is no SMTP command: answered once, then closed"
    );
    assert!(web.is_closed());
}

/// Postscreen's pipelining and bare newline tests (issue 16, item 1): a client that waits for
/// the greeting but then sends EHLO and MAIL in one write, before the EHLO reply, is refused at
/// MAIL with 554 5.5.1, and one that ends a command with a bare LF gets 500 5.5.2; each is
/// remembered like one that spoke first: its next connection, however polite, is refused at
/// MAIL too. Each refusal is logged with its check and counted in
/// `petrel_screen_refusals_total`.
#[test]
fn a_client_that_pipelines_before_ehlo_is_refused_and_remembered() {
    let (petrel, _dir) = pregreeting("pregreet-pipelining");
    let mut bot = RawClient::connect(petrel.address);
    assert_eq!(bot.reply(), "220-mx.test ESMTP\r\n220 mx.test ESMTP\r\n");
    bot.send(b"EHLO bot.test\r\nMAIL FROM:<a@relay.test>\r\n");
    assert!(bot.reply().starts_with("250-mx.test Hello bot.test"));
    assert_eq!(
        bot.reply(),
        "554 5.5.1 Protocol error: commands sent before the EHLO reply\r\n"
    );
    bot.command("QUIT");
    assert_refused_when_back(petrel.address, "bot.test");
    let log = crate::harness::poll(
        || petrel.log_text(),
        |log| log.contains("pipelining") && log.contains("remembered at the door"),
    );
    assert!(
        log.contains("refused at the door") && log.contains("pipelining"),
        "{log}"
    );
    assert!(log.contains("remembered at the door"), "{log}");
    // A bare LF in a command (S-SMUG-3, postscreen's bare newline test): 500 5.5.2, and the
    // client is remembered too.
    let (lf, _dir_lf) = pregreeting("pregreet-bare-newline");
    let mut sloppy = RawClient::connect(lf.address);
    sloppy.reply();
    sloppy.command("EHLO sloppy.test");
    assert!(
        sloppy
            .command("NOOP\nMAIL FROM:<a@relay.test>")
            .starts_with("500 5.5.2"),
        "a bare LF in a command"
    );
    assert_refused_when_back(lf.address, "sloppy.test");
    assert_eq!(
        crate::metrics::scrape(&lf)
            .get("petrel_screen_refusals_total{check=\"bare_newline\"}")
            .copied(),
        Some(1.0)
    );
    let samples = crate::metrics::scrape(&petrel);
    for check in ["pipelining", "pregreet"] {
        assert_eq!(
            samples
                .get(&format!(
                    "petrel_screen_refusals_total{{check=\"{check}\"}}"
                ))
                .copied(),
            Some(1.0),
            "{check}: {samples:?}"
        );
    }
}

/// Forward-confirmed reverse DNS (issue 16, item 3) in each mode of `screen.fcrdns`, with
/// clients in a network namespace (loopback is "localhost" to the resolver): a PTR name that
/// resolves back to the client passes; one that resolves elsewhere, and no PTR at all, get
/// 550 5.7.25 at MAIL with "reject", 450 4.7.25 with "tempfail", and pass with "log" (logged,
/// not counted as refusals).
#[test]
fn reverse_dns_must_confirm_the_client_address() {
    let netns = crate::netns::Netns::create("fcrdns", &[2, 3, 4]);
    let p = netns.prefix.clone();
    let [a, b, c]: [&str; 3] = p.split('.').collect::<Vec<_>>().try_into().unwrap();
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    let mut zone = test_zone();
    zone.push(ZoneEntry::Ptr(
        leak(format!("2.{c}.{b}.{a}.in-addr.arpa")),
        "host.fcrdns.test",
    ));
    zone.push(ZoneEntry::A(
        "host.fcrdns.test",
        format!("{p}.2").parse().unwrap(),
    ));
    zone.push(ZoneEntry::Ptr(
        leak(format!("3.{c}.{b}.{a}.in-addr.arpa")),
        "liar.fcrdns.test",
    ));
    zone.push(ZoneEntry::A(
        "liar.fcrdns.test",
        format!("{p}.99").parse().unwrap(),
    ));
    const SCRIPT: &str = r#"
import smtplib, sys
for source in sys.argv[3:]:
    smtp = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), source_address=(source, 0), timeout=30)
    smtp.ehlo("client.test")
    code, text = smtp.mail("alice@relay.test")
    print(source, code, text.decode())
    smtp.quit()
"#;
    let (two, three, four) = (format!("{p}.2"), format!("{p}.3"), format!("{p}.4"));
    // Each mode: what the liar (.3) and the client without PTR (.4) hear; .2 always passes.
    for (mode, refusal, counted) in [
        (
            "reject",
            Some("550 5.7.25 Client host rejected: reverse DNS does not confirm your address"),
            Some(2.0),
        ),
        (
            "tempfail",
            Some(
                "450 4.7.25 Client host rejected: reverse DNS does not confirm your address, try again later",
            ),
            Some(2.0),
        ),
        ("log", None, None),
    ] {
        let dir = Scratch::new(&format!("fcrdns-{mode}"));
        let petrel = Petrel::start_in_zone(
            &dir.0,
            "mx.test",
            &["example.test"],
            zone.clone(),
            &format!(
                "[http]\naddress = \"127.0.0.1:0\"\n\n[[listener]]\naddress = \"{p}.1:0\"\n\n[screen]\nfcrdns = \"{mode}\"\n"
            ),
        );
        let marker = format!("listening on {p}.1:");
        let port = crate::harness::poll(
            || {
                petrel.log_text().lines().find_map(|line| {
                    let rest = line.split(marker.as_str()).nth(1)?;
                    rest.split(' ').next()?.parse::<u16>().ok()
                })
            },
            Option::is_some,
        )
        .expect("the listener in the namespace's network");
        let output = netns.run(
            "python3",
            &[
                "-c",
                SCRIPT,
                &format!("{p}.1"),
                &port.to_string(),
                &two,
                &three,
                &four,
            ],
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains(&format!("{two} 250")), "{mode}: {text}");
        match refusal {
            Some(reply) => {
                assert!(text.contains(&format!("{three} {reply}")), "{mode}: {text}");
                assert!(
                    text.contains(&format!("{four} {reply}")),
                    "{mode}, no PTR: {text}"
                );
            }
            None => {
                assert!(text.contains(&format!("{three} 250")), "{mode}: {text}");
                assert!(text.contains(&format!("{four} 250")), "{mode}: {text}");
                let needle = "reverse DNS does not confirm the client's address";
                let log = crate::harness::poll(|| petrel.log_text(), |log| log.contains(needle));
                assert!(log.contains(needle), "{log}");
            }
        }
        assert_eq!(refusals(&petrel, "fcrdns"), counted, "{mode}");
    }
}

/// Domain lists (`[[screen.dbl]]`, issue 16 item 2): the sender's domain and the EHLO name are
/// looked up as `<domain>.<zone>`; listed (code 127.0.1.2, as Spamhaus's DBL answers), MAIL
/// gets 554 5.7.1 naming the domain and the list; an unlisted sender and name pass.
#[test]
fn domain_lists_score_the_sender_domain_and_the_ehlo_name() {
    let mut zone = test_zone();
    zone.push(ZoneEntry::A("spammer.test", "192.0.2.50".parse().unwrap()));
    zone.push(ZoneEntry::A(
        "spammer.test.dbl.test",
        "127.0.1.2".parse().unwrap(),
    ));
    let dir = Scratch::new("dbl");
    let petrel = Petrel::start_in_zone(
        &dir.0,
        "mx.test",
        &["example.test"],
        zone,
        "[http]\naddress = \"127.0.0.1:0\"\n\n[relay]\nnetworks = []\n\n[[screen.dbl]]\nzone = \"dbl.test\"\ncodes = [\"127.0.1.2-127.0.1.99\"]\n",
    );
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.example");
    assert_eq!(
        client.command("MAIL FROM:<a@spammer.test>"),
        "554 5.7.1 Service unavailable; spammer.test blocked using dbl.test\r\n"
    );
    assert!(
        client
            .command("MAIL FROM:<a@relay.test>")
            .starts_with("250")
    );

    let mut named = RawClient::connect(petrel.address);
    named.reply();
    named.command("EHLO spammer.test");
    assert_eq!(
        named.command("MAIL FROM:<a@relay.test>"),
        "554 5.7.1 Service unavailable; spammer.test blocked using dbl.test\r\n"
    );
    assert_eq!(refusals(&petrel, "dbl"), Some(2.0));
}
