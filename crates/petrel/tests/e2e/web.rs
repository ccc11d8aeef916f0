//! The reply-code reference over HTTP (`[http]` of `petrel serve`): the pages answered to a raw
//! HTTP/1.1 client (status codes, languages, the 404 with the nearest codes, a garbage request
//! that gets 400 while the server keeps serving), and what a reader sees of the comparison
//! page in a real headless Chromium with JavaScript off.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use petrel_catalogue::explain::{labels, nearest};
use petrel_catalogue::{Catalogue, Lang};

use crate::harness::{Petrel, Scratch};

const HTTP: &str = "[http]\naddress = \"127.0.0.1:0\"\n";

/// Starts petrel with `[http]` and returns it with the address of its web server, read from
/// the `listening on 127.0.0.1:PORT (http)` log line.
fn start(scratch: &Scratch) -> (Petrel, SocketAddr) {
    start_with(scratch, HTTP)
}

fn start_with(scratch: &Scratch, extra: &str) -> (Petrel, SocketAddr) {
    let petrel = Petrel::start(&scratch.0, extra);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = petrel.log_text();
        let address = log.lines().find_map(|line| {
            let rest = line.split("listening on ").nth(1)?;
            let address = rest.strip_suffix(" (http)")?;
            address.parse().ok()
        });
        if let Some(address) = address {
            return (petrel, address);
        }
        assert!(Instant::now() < deadline, "no http listener in:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response as a raw client sees it.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `bytes` as they are and reads the whole answer (the server closes after it).
fn raw(address: SocketAddr, bytes: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    // The head, then as many octets as Content-Length says (the connection may stay open:
    // HTTP/1.1 keep-alive).
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    let head_text = String::from_utf8_lossy(&answer).into_owned();
    let length: usize = head_text
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    if !bytes.starts_with(b"HEAD ") {
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
        answer.extend_from_slice(&body);
    }
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.x answer: {text:?}"));
    if !bytes.starts_with(b"HEAD ") {
        let length = format!("Content-Length: {}\r\n", body.len());
        assert!(head.contains(&length), "{head}\nbody of {}", body.len());
    }
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(address: SocketAddr, target: &str) -> Reply {
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: petrel-e2e\r\n\r\n");
    raw(address, request.as_bytes())
}

/// What a reader sees of a page: the text of its body, tags dropped, the few entities the
/// pages use decoded, white space collapsed.
fn visible_text(html: &str) -> String {
    let body = html.split("<body").nth(1).unwrap_or(html);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    collapse(&text)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn title(code: &str, lang: Lang) -> String {
    let catalogue = Catalogue::get().unwrap();
    let entry = catalogue
        .entry(code)
        .unwrap_or_else(|| panic!("the reference has no {code}"));
    collapse(&entry.text(lang).title)
}

#[test]
fn web_pages_over_http() {
    let scratch = Scratch::new("web-http");
    let (_petrel, address) = start(&scratch);

    let root = get(address, "/");
    assert_eq!(root.status, 302, "{}", root.head);
    assert!(root.head.contains("\r\nLocation: /codes/"), "{}", root.head);

    let page = get(address, "/codes/556");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(visible_text(&page.body).contains(&title("556", Lang::En)));
    assert!(
        page.body.contains("href=\"/id/codes/556\""),
        "language switch"
    );
    assert!(
        page.body
            .contains("<link rel=\"alternate\" hreflang=\"id\" href=\"/id/codes/556\">"),
        "hreflang alternates"
    );

    // Indonesian pages live under /id/ (issue 17, item 7); ?lang=id still works.
    for target in ["/id/codes/5.1.10", "/codes/5.1.10?lang=id"] {
        let page = get(address, target);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("<html lang=\"id\">"));
        assert!(visible_text(&page.body).contains(&title("5.1.10", Lang::Id)));
        assert!(
            page.body.contains("href=\"/id/codes/\""),
            "links keep the language"
        );
        assert!(
            page.body
                .contains("<link rel=\"alternate\" hreflang=\"en\" href=\"/codes/5.1.10\">"),
            "hreflang alternates"
        );
    }

    let page = get(address, "/compare/354/556");
    assert_eq!(page.status, 200, "{}", page.body);
    let text = visible_text(&page.body);
    for needle in [
        "354",
        "556",
        "354 is a Positive Intermediate reply",
        "556 is a Permanent Negative Completion reply",
        "What to do",
        labels(Lang::En).fix_admin,
        labels(Lang::En).differences,
        &title("354", Lang::En),
        &title("556", Lang::En),
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }

    let page = get(address, "/codes/9.9.9");
    assert_eq!(page.status, 404, "{}", page.body);
    let near = nearest(Catalogue::get().unwrap(), "9.9.9");
    assert!(!near.is_empty());
    for code in &near {
        assert!(
            page.body.contains(&format!("href=\"/codes/{code}\"")),
            "{code} not offered in {}",
            page.body
        );
    }

    // A code with no entry of its own, explained from its parts (issue 17, item 1).
    let page = get(address, "/codes/2.6.0");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Other or undefined media error")
            && page.body.contains("href=\"/codes/5.6.0\""),
        "{}",
        page.body
    );

    let garbage = raw(address, b"\x16\x03\x01 this is not HTTP\r\n\r\n");
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert_eq!(raw(address, b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(get(address, "/codes/5.7.27").status, 200, "still serving");
}

#[test]
fn web_protocol_edges() {
    let scratch = Scratch::new("web-edges");
    let (_petrel, address) = start(&scratch);

    let head = raw(address, b"HEAD /codes/556 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        !head.head.contains("Content-Length: 0\r\n"),
        "{}",
        head.head
    );
    let post = raw(address, b"POST /codes/556 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("\r\nAllow: GET, HEAD"), "{}", post.head);
    assert_eq!(raw(address, b"GET /%zz HTTP/1.0\r\n\r\n").status, 400);
    assert_eq!(
        raw(address, b"GET / HTTP/1.1\r\n\r\n").status,
        400,
        "no Host"
    );
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(address, &big).status, 431);
    assert_eq!(get(address, "/nowhere").status, 404);
    // Keep-alive: curl fetches two pages over one connection.
    let output = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\n",
        ])
        .arg(format!("http://{address}/codes/556"))
        .arg(format!("http://{address}/codes/354"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "1\n0\n",
        "the second page came over the first connection"
    );
}

#[test]
fn web_search_and_reply_lines() {
    let scratch = Scratch::new("web-search");
    let (_petrel, address) = start(&scratch);

    // Percent-decoded path; a reply line in the search goes to its page.
    assert_eq!(get(address, "/codes/5%2E1%2E10").status, 200);
    let search = get(
        address,
        "/search?q=556+5.1.10+%3Cx%40y%3E%3A+no+mail&lang=id",
    );
    assert_eq!(search.status, 302, "{}", search.head);
    assert!(
        search
            .head
            .contains("\r\nLocation: /id/reply/556/5.1.10?line="),
        "{}",
        search.head
    );
    let location = search
        .head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap();
    let reply = get(address, location);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = visible_text(&reply.body);
    assert!(text.contains(&title("556", Lang::Id)), "{text}");
    assert!(text.contains(&title("5.1.10", Lang::Id)), "{text}");
    assert!(text.contains("556 5.1.10 <x@y>: no mail"), "{text}");
    assert!(!reply.body.contains("<x@y>"), "escaped");
    // Full-text search (issue 17, item 7): words of the texts, not only titles.
    let found = get(address, "/search?q=dot-stuffing");
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains("href=\"/codes/354\""), "{}", found.body);
    let found = get(address, "/search?q=greylisting");
    assert!(
        found.body.contains("href=\"/guides/greylisting\""),
        "guides are searched: {}",
        found.body
    );
    let found = get(address, "/id/search?q=pesan+pentalan");
    assert!(found.body.contains("href=\"/id/codes/"), "{}", found.body);
    let search = get(address, "/search?q=5.7.27");
    assert!(
        search.head.lines().any(|l| l == "Location: /codes/5.7.27"),
        "{}",
        search.head
    );

    // Text from the query string comes back escaped.
    let search = get(address, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(search.status, 200);
    assert!(!search.body.contains("<script>"));
    assert!(search.body.contains("&lt;script&gt;"));
}

/// Runs Chromium headless with JavaScript off on `url` and returns the dumped DOM; kills it
/// by its PID after 60 seconds.
///
/// JavaScript is turned off the way a reader does it, in the settings of a fresh profile
/// (`javascript: 2`, block). `--blink-settings=scriptEnabled=false` cannot be used: with it,
/// the new headless mode of Chromium (which reads the DOM by evaluating a script) dumps
/// nothing and still exits 0.
fn chromium_dom(scratch: &Path, name: &str, url: &str) -> String {
    let profile = scratch.join(format!("profile-{name}"));
    std::fs::create_dir_all(profile.join("Default")).unwrap();
    std::fs::write(
        profile.join("Default").join("Preferences"),
        r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
    )
    .unwrap();
    let dom_path = scratch.join(format!("{name}.html"));
    let log_path = scratch.join(format!("{name}.log"));
    let mut child = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("chromium is installed at /usr/bin/chromium (.ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in 60 s:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium {status}:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    dom
}

#[test]
fn web_compare_page_in_chromium_without_javascript() {
    let scratch = Scratch::new("web-chromium");
    // JavaScript is really off in this Chromium: a page's script does not run.
    let probe = chromium_dom(
        &scratch.0,
        "probe",
        "data:text/html,<p id=x>static</p><script>x.textContent='script ran'</script>",
    );
    assert!(
        probe.contains(">static</p>") && !probe.contains(">script ran</p>"),
        "{probe}"
    );
    let (_petrel, address) = start(&scratch);
    for (lang, suffix) in [(Lang::En, ""), (Lang::Id, "?lang=id")] {
        let url = format!("http://{address}/compare/354/556{suffix}");
        let dom = chromium_dom(&scratch.0, lang.as_str(), &url);
        assert!(
            dom.contains(&format!("<html lang=\"{}\">", lang.as_str())),
            "{dom}"
        );
        let text = visible_text(&dom);
        for needle in [
            title("354", lang),
            title("556", lang),
            labels(lang).differences.to_owned(),
            labels(lang).when_each.to_owned(),
            "English".to_owned(),
            "Bahasa Indonesia".to_owned(),
        ] {
            assert!(
                text.contains(&needle),
                "{lang:?}: {needle:?} missing from {text}"
            );
        }
        let other = match lang {
            Lang::En => labels(Lang::Id).differences,
            Lang::Id => labels(Lang::En).differences,
        };
        assert!(!text.contains(other), "{lang:?}: {other:?} in {text}");
    }
}

/// `[http.mta_sts]` publishes the policy of petrel's own domains where senders fetch it
/// (RFC 8461 §3.2), and the policy reads back with delivery's own MTA-STS parser; without it
/// the path is not found.
#[test]
fn the_mta_sts_policy_is_served_from_configuration() {
    let scratch = Scratch::new("web-mta-sts");
    let policy = "[http.mta_sts]\nmode = \"enforce\"\nmx = [\"mx.example.test\", \"*.mx.example.test\"]\nmax_age = \"7d\"\n";
    let (_petrel, address) = start_with(&scratch, &format!("{HTTP}{policy}"));
    let reply = get(address, "/.well-known/mta-sts.txt");
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(
        reply.head.contains("Content-Type: text/plain"),
        "{}",
        reply.head
    );
    assert!(
        reply
            .body
            .starts_with("version: STSv1\r\nmode: enforce\r\n"),
        "{}",
        reply.body
    );
    let parsed = petrel_delivery::mta_sts::parse_policy(&reply.body).unwrap();
    assert_eq!(parsed.max_age_seconds, 7 * 86_400);
    assert!(parsed.matches_mx("mx.example.test") && parsed.matches_mx("a.mx.example.test"));

    let plain = Scratch::new("web-mta-sts-none");
    let (_petrel, address) = start(&plain);
    assert_eq!(get(address, "/.well-known/mta-sts.txt").status, 404);
}

/// The bounce form (`/explain`, issue 17): curl posts a pasted bounce as a browser form would
/// and gets each failed recipient explained; text that is no bounce gets 422 with the form
/// again; a body over 1 MiB is refused with 413; POST elsewhere stays 405.
#[test]
fn web_bounce_form() {
    let scratch = Scratch::new("web-bounce");
    let (_petrel, address) = start(&scratch);
    let form = get(address, "/explain?lang=id");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<textarea") && form.body.contains("method=\"post\""));
    assert!(form.body.contains("Membaca pesan pentalan"));

    let bounce = scratch.0.join("bounce.eml");
    std::fs::write(
        &bounce,
        "From: MAILER-DAEMON@mx.example.org\r\nTo: alice@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.org.\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\nX-Postfix-Queue-ID: 4F2A\r\n\r\nFinal-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\r\n    rejected: User unknown in local recipient table\r\n\r\n--B--\r\n",
    )
    .unwrap();
    let curl = |args: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let url = format!("http://{address}/explain");
    let (status, body) = curl(&[
        "--data-urlencode",
        &format!("message@{}", bounce.display()),
        &url,
    ]);
    assert_eq!(status, "200", "{body}");
    let text = visible_text(&body);
    for needle in [
        "Postfix",
        "bob@example.net",
        "mx.example.net",
        "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table",
        "Bad destination mailbox address",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }

    let (status, body) = curl(&["--data-urlencode", "message=hello there", &url]);
    assert_eq!(status, "422", "{body}");
    assert!(body.contains("<textarea"), "{body}");

    let big = scratch.0.join("big.txt");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 10]).unwrap();
    let (status, _) = curl(&["--data-binary", &format!("@{}", big.display()), &url]);
    assert_eq!(status, "413");
}

/// Guides and the glossary (issue 17, item 4): the index lists every guide, each guide renders
/// in both languages with links to the codes it explains, those code pages link back, and the
/// glossary gives every term with its Indonesian term.
#[test]
fn web_guides_and_glossary() {
    use petrel_catalogue::guides::{glossary, guides};
    let scratch = Scratch::new("web-guides");
    let (_petrel, address) = start(&scratch);
    let index = get(address, "/guides/");
    assert_eq!(index.status, 200);
    for guide in guides().unwrap() {
        assert!(
            index
                .body
                .contains(&format!("href=\"/guides/{}\"", guide.slug)),
            "{} not listed",
            guide.slug
        );
        for (prefix, lang) in [("", Lang::En), ("/id", Lang::Id)] {
            let page = get(address, &format!("{prefix}/guides/{}", guide.slug));
            assert_eq!(page.status, 200, "{}", guide.slug);
            let text = guide.text(lang);
            assert!(
                visible_text(&page.body).contains(text.title.as_str()),
                "{}: {}",
                guide.slug,
                text.title
            );
            assert!(!page.body.contains("<script"), "{}", guide.slug);
        }
        if let Some(code) = guide.codes.first() {
            let page = get(address, &format!("/codes/{code}"));
            assert!(
                page.body
                    .contains(&format!("href=\"/guides/{}\"", guide.slug)),
                "/codes/{code} does not link to {}",
                guide.slug
            );
        }
    }
    let page = get(address, "/id/glossary");
    assert_eq!(page.status, 200);
    for term in glossary().unwrap() {
        assert!(
            page.body.contains(&format!("id=\"{}\"", term.key)),
            "{} missing",
            term.key
        );
    }
    assert_eq!(get(address, "/guides/no-such-guide").status, 404);
}
