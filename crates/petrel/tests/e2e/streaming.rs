//! Streaming DATA (issue 18, item 1): a message past 64 KiB goes to a spill file in the
//! spool's `tmp/` as it arrives, so the session holds a bounded part of it (watched through
//! the gauge `petrel_data_memory_bytes` while the data is still open); it is stored and
//! delivered whole, dot-stuffed lines unstuffed (S-DATA-3), over DATA and BDAT; the spill file
//! is gone once the message is answered or abandoned. On PostgreSQL (no spill directory) the
//! same messages arrive whole from memory.

use std::path::Path;

use crate::backend::is_postgres;
use crate::harness::{Petrel, RawClient, Scratch, strip_trace};

/// Lines of a message body of about `bytes` octets, some starting with a dot.
fn large_body(bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes + 100);
    let mut line = 0;
    while body.len() < bytes {
        if line % 997 == 5 {
            body.extend_from_slice(format!(".a line starting with a dot, {line}\r\n").as_bytes());
        } else {
            body.extend_from_slice(
                format!("line {line:08} of a large message, written to disk as it arrives\r\n")
                    .as_bytes(),
            );
        }
        line += 1;
    }
    body
}

/// The transparency procedure of RFC 5321 §4.5.2: a leading dot doubled.
fn dot_stuffed(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 1024);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// The spill files in the spool's `tmp/`, with their sizes.
fn spill_files(data_dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("queue").join("tmp")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "spill"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect()
}

fn gauge(petrel: &Petrel) -> f64 {
    crate::metrics::scrape(petrel)
        .get("petrel_data_memory_bytes")
        .copied()
        .unwrap_or(-1.0)
}

#[test]
fn a_large_message_goes_to_disk_as_it_arrives_and_arrives_whole() {
    let dir = Scratch::new("streaming");
    let petrel = Petrel::start(&dir.0, "[http]\naddress = \"127.0.0.1:0\"\n");
    let mut content =
        b"From: <a@localhost>\r\nTo: <user@localhost>\r\nSubject: streamed\r\n\r\n".to_vec();
    content.extend_from_slice(&large_body(4 << 20));
    let mut client = RawClient::connect(petrel.address);
    client.reply();
    client.command("EHLO client.test");
    client.start_data("a@localhost", "user@localhost");
    client.send(&dot_stuffed(&content));
    if !is_postgres() {
        // The data is still open: nearly all of it is in the spill file, and the session
        // holds its head (at most 64 KiB and a read) and what came since the last write.
        let sizes = crate::harness::poll(
            || spill_files(&petrel.data_dir),
            |sizes| {
                sizes
                    .iter()
                    .any(|&size| size + 200_000 >= content.len() as u64)
            },
        );
        assert_eq!(sizes.len(), 1, "{sizes:?}");
        assert!(sizes[0] + 200_000 >= content.len() as u64, "{sizes:?}");
        let held = gauge(&petrel);
        assert!(held > 0.0 && held <= 200_000.0, "held {held}");
    }
    client.send(b".\r\n");
    let reply = client.reply();
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        spill_files(&petrel.data_dir).is_empty(),
        "removed once stored"
    );
    // The same over BDAT, in chunks that split lines.
    let mut chunked = b"Subject: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(&large_body(1 << 20));
    assert!(client.command("MAIL FROM:<a@localhost>").starts_with("250"));
    assert!(
        client
            .command("RCPT TO:<user@localhost>")
            .starts_with("250")
    );
    let cut = [0, 300_001, 700_003, chunked.len()];
    for pair in cut.windows(2) {
        let part = &chunked[pair[0]..pair[1]];
        let last = if pair[1] == chunked.len() {
            " LAST"
        } else {
            ""
        };
        client.send(format!("BDAT {}{last}\r\n", part.len()).as_bytes());
        client.send(part);
        let reply = client.reply();
        assert!(reply.starts_with("250"), "{reply}");
    }
    // A message abandoned half-way leaves no spill file behind.
    client.start_data("a@localhost", "user@localhost");
    client.send(&dot_stuffed(&content)[..2 << 20]);
    drop(client);
    crate::harness::wait_until("the abandoned message's spill file is removed", || {
        spill_files(&petrel.data_dir).is_empty()
    });
    let delivered = petrel.wait_for_maildir("localhost", "user", 2);
    assert_eq!(delivered.len(), 2, "{}", petrel.log_text());
    // Maildir files have LF line ends.
    let lf = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    let bodies: Vec<String> = delivered.iter().map(|m| lf(&strip_trace(m).1)).collect();
    assert!(
        bodies.contains(&lf(&content)),
        "the DATA message arrived whole"
    );
    assert!(
        bodies.contains(&lf(&chunked)),
        "the BDAT message arrived whole"
    );
    let log = petrel.log_text();
    assert!(log.contains(&format!("size={}", content.len())), "{log}");
}
