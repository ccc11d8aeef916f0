//! `petrel explain` as a user runs it (issue 17): codes and whole reply lines copied from real
//! bounces, in both languages and as JSON; codes outside the reference explained from their
//! parts, never called made up; unknown ones answered with exit 2 and the nearest codes.

use std::process::{Command, Output};

fn explain(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .arg("explain")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn codes_outside_the_reference_are_explained_from_their_parts() {
    // Microsoft 365's reply to every accepted message.
    let (output, text) = explain(&[
        "250 2.6.0 <a1b2@contoso.com> [InternalId=123, Hostname=BN8PR12MB] Queued mail for delivery",
    ]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("250 Requested action okay"), "{text}");
    assert!(
        text.contains("2.6.0 Other or undefined media error") && text.contains("nothing failed"),
        "{text}"
    );
    assert!(!text.contains("made"), "{text}");

    // A detail number a provider added.
    let (output, text) = explain(&["550 5.7.606 Access denied, banned sending IP [203.0.113.5]"]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("not in the IANA registry"), "{text}");
    let (output, text) = explain(&["4.7.500", "--lang", "id"]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("tidak ada di registri IANA"), "{text}");

    // A registered pair in a class the registry does not list for it.
    let (_, text) = explain(&["5.1.5"]);
    assert!(text.contains("Destination address valid"), "{text}");

    // JSON names the derived part.
    let (output, text) = explain(&["2.6.0", "--json"]);
    assert!(output.status.success());
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["derived"][0]["code"], "2.6.0", "{text}");
    assert_eq!(value["derived"][0]["registered_detail"], true, "{text}");
}

#[test]
fn unknown_codes_exit_2_with_the_nearest_in_the_asked_language() {
    let (output, text) = explain(&["5.9.9"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("Nearest known codes: 5.7.9"), "{text}");
    let (output, text) = explain(&["5.9.9", "--lang", "id"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("Kode tidak dikenal: 5.9.9. Kode terdekat yang dikenal:"),
        "{text}"
    );
    let (output, text) = explain(&["hello"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
}
