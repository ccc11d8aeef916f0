//! `petrel sendmail` and `mailq` as cron and scripts use them: through a running daemon, as a
//! program called `sendmail` (a symlink), and into the spool when no daemon runs.

use std::process::Command;

use crate::harness::{Petrel, Scratch, run_with_stdin};

fn run(
    program: &std::path::Path,
    args: &[&str],
    config: &std::path::Path,
    input: &[u8],
) -> (bool, String) {
    let output = run_with_stdin(
        Command::new(program)
            .args(args)
            .env("PETREL_CONFIG", config),
        input,
    );
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn sendmail_t_through_the_daemon_and_as_a_symlink() {
    let scratch = Scratch::new("sendmail");
    let petrel = Petrel::start(&scratch.0, "");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_petrel"));
    let message = b"To: Cron <cron@localhost>\nBcc: hidden@localhost\nSubject: nightly\n\n.a line with a dot\nall good\n";
    let (ok, output) = run(
        binary,
        &["sendmail", "-t", "-i", "-f", "root@localhost"],
        &petrel.config_path,
        message,
    );
    assert!(ok, "{output}");
    for user in ["cron", "hidden"] {
        let delivered = petrel.wait_for_maildir("localhost", user, 1);
        assert_eq!(delivered.len(), 1, "{user}: {}", petrel.log_text());
        let text = String::from_utf8_lossy(&delivered[0]).into_owned();
        assert!(
            text.ends_with("Subject: nightly\n\n.a line with a dot\nall good\n")
                && !text.contains("Bcc:"),
            "{text}"
        );
    }
    let link = scratch.0.join("sendmail");
    std::os::unix::fs::symlink(binary, &link).unwrap();
    let (ok, output) = run(
        &link,
        &["-oi", "direct@localhost"],
        &petrel.config_path,
        b"Subject: via symlink\n\nhi\n",
    );
    assert!(ok, "{output}");
    assert_eq!(petrel.wait_for_maildir("localhost", "direct", 1).len(), 1);
}

#[test]
fn sendmail_without_a_daemon_writes_the_spool_and_mailq_lists_it() {
    let scratch = Scratch::new("sendmail-spool");
    let mut petrel = Petrel::start(&scratch.0, "");
    petrel.signal("TERM");
    assert_eq!(petrel.wait_exit(), Some(0));
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_petrel"));
    let (ok, output) = run(
        binary,
        &["sendmail", "later@localhost"],
        &petrel.config_path,
        b"Subject: queued offline\n\nbody\n",
    );
    assert!(ok, "{output}");
    let (ok, listing) = run(binary, &["mailq"], &petrel.config_path, b"");
    assert!(
        ok && listing.contains("later@localhost (pending)"),
        "{listing}"
    );
    let mut restarted = Petrel::start_with(&petrel.config_path, &petrel.data_dir, &[]);
    restarted.dns = petrel.dns.clone();
    let delivered = restarted.wait_for_maildir("localhost", "later", 1);
    assert_eq!(delivered.len(), 1, "{}", restarted.log_text());
    assert!(
        String::from_utf8_lossy(&delivered[0]).contains("Message-ID: <"),
        "a Message-ID is added"
    );
}

#[test]
fn sendmail_bs_speaks_smtp_on_stdin_and_stdout() {
    let scratch = Scratch::new("sendmail-bs");
    let petrel = Petrel::start(&scratch.0, "");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_petrel"));
    // Bare LF line ends, as a local program may send them; two messages in one session.
    let session = b"EHLO app.local\nMAIL FROM:<app@localhost>\nRCPT TO:<ops@localhost>\nDATA\nSubject: from -bs\n\n..dotted\n.\nMAIL FROM:<app@localhost>\nRCPT TO:<ops@localhost>\nRCPT TO:<dev@localhost>\nDATA\nSubject: second\n\nhi\n.\nQUIT\n";
    let (ok, output) = run(binary, &["sendmail", "-bs"], &petrel.config_path, session);
    assert!(ok, "{output}");
    let codes: Vec<&str> = output
        .lines()
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        [
            "220", "250", "250", "250", "354", "250", "250", "250", "250", "354", "250", "221"
        ],
        "{output}"
    );
    let ops = petrel.wait_for_maildir("localhost", "ops", 2);
    assert_eq!(ops.len(), 2, "{}", petrel.log_text());
    let all: String = ops
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(all.contains("Subject: from -bs\n\n.dotted\n"), "{all}");
    assert_eq!(petrel.wait_for_maildir("localhost", "dev", 1).len(), 1);
}
