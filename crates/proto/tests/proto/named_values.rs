//! Replies and enhanced status codes are data (house rule 5): outside `proto::reply` (where
//! `standard` names every reply and `status` every enhanced code), no library or binary source
//! spells a code as a string (`"4.4.7"`, `"550 ..."`), a tuple (`(5, 4, 4)`) or with
//! `EnhancedCode::new`. Tests may; so may the parts of a file after its `#[cfg(test)]`.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file that ships: up to its first `#[cfg(test)]`, without comment lines.
fn shipped_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

fn digits(bytes: &[u8], at: usize, most: usize) -> usize {
    bytes[at..]
        .iter()
        .take(most)
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// `"c.s.d"` with class 2, 4 or 5: an enhanced code in a string literal.
fn has_status_literal(line: &str) -> bool {
    let bytes = line.as_bytes();
    (0..bytes.len()).any(|i| {
        if bytes[i] != b'"' || !matches!(bytes.get(i + 1), Some(b'2' | b'4' | b'5')) {
            return false;
        }
        let mut at = i + 2;
        for _ in 0..2 {
            if bytes.get(at) != Some(&b'.') {
                return false;
            }
            let count = digits(bytes, at + 1, 3);
            if count == 0 {
                return false;
            }
            at += 1 + count;
        }
        true
    })
}

/// `"ddd "` or `"ddd-"` with a 2yz-5yz code: a reply spelled in a string literal.
fn has_reply_literal(line: &str) -> bool {
    let bytes = line.as_bytes();
    (0..bytes.len()).any(|i| {
        bytes[i] == b'"'
            && matches!(bytes.get(i + 1), Some(b'2'..=b'5'))
            && digits(bytes, i + 1, 3) == 3
            && matches!(bytes.get(i + 4), Some(b' ' | b'-'))
    })
}

/// `(c, s, d)` with class 2, 4 or 5: an enhanced code as a tuple.
fn has_status_tuple(line: &str) -> bool {
    line.match_indices('(').any(|(i, _)| {
        let rest = &line[i + 1..];
        let Some(end) = rest.find(')') else {
            return false;
        };
        let parts: Vec<&str> = rest[..end].split(',').map(str::trim).collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[test]
fn codes_are_spelled_only_in_the_named_values_modules() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in fs::read_dir(&crates).unwrap().flatten() {
        sources(&entry.path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} sources", files.len());
    let named_values = crates.join("proto/src/reply");
    let mut offences = Vec::new();
    for file in files {
        let name = file.to_string_lossy().into_owned();
        if file.starts_with(&named_values) || name.ends_with("_tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for (index, line) in shipped_lines(&text) {
            if line.contains("EnhancedCode::new(")
                || has_status_literal(line)
                || has_reply_literal(line)
                || has_status_tuple(line)
            {
                offences.push(format!("{name}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "codes spelled outside proto::reply::{{standard, status}}:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_detectors_see_what_they_look_for() {
    assert!(has_status_literal(r#"x = Some("4.4.7".into());"#));
    assert!(has_status_literal(r#"f("5.1.10")"#));
    assert!(!has_status_literal(r#"version("1.2.3")"#));
    assert!(!has_status_literal(r#""4.4""#));
    assert!(has_reply_literal(r#"Err("550 5.1.1 no".into())"#));
    assert!(has_reply_literal(r#""250-PIPELINING""#));
    assert!(!has_reply_literal(r#""2500 octets""#));
    assert!(!has_reply_literal(r#""100 Continue""#));
    assert!(has_status_tuple("failure(true, (5, 4, 4), reason)"));
    assert!(!has_status_tuple("(a, 4, 4)"));
    assert!(!has_status_tuple("(1, 2, 3)"));
}
