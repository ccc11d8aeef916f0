//! The reference's completeness and quality checks: every registry code and every basic code
//! is there in both languages, every field is written for its code (no text shared word for
//! word between two codes, no English left in the Indonesian texts outside quoted server texts
//! and configuration names), classes match codes, and
//! every reply petrel can emit has its entries. One test per data group, so a group can be
//! checked on its own (`cargo test -p petrel-catalogue group_x6`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use petrel_catalogue::data::{self, CodeFacts, CodeText, CodesFile, TextFile};
use petrel_catalogue::{Catalogue, Lang};

/// Basic reply codes the reference must cover (ENHANCED-STATUS-CODES.md).
const BASIC: &[&str] = &[
    "211", "214", "220", "221", "235", "250", "251", "252", "334", "354", "421", "432", "450",
    "451", "452", "454", "455", "500", "501", "502", "503", "504", "521", "530", "534", "535",
    "538", "550", "551", "552", "553", "554", "555", "556",
];

/// The IANA registry of enhanced status codes, as subject.detail, and the group that holds it.
const REGISTRY: &[(&str, &[&str])] = &[
    (
        "x0-x1",
        &[
            "0.0", "1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10",
        ],
    ),
    (
        "x2-x3",
        &[
            "2.0", "2.1", "2.2", "2.3", "2.4", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6",
        ],
    ),
    (
        "x4-x5",
        &[
            "4.0", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "5.0", "5.1", "5.2", "5.3",
            "5.4", "5.5", "5.6",
        ],
    ),
    (
        "x6",
        &[
            "6.0", "6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9",
        ],
    ),
    (
        "x7a",
        &[
            "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "7.8", "7.9", "7.10", "7.11",
            "7.12", "7.13", "7.14",
        ],
    ),
    (
        "x7b",
        &[
            "7.15", "7.16", "7.17", "7.18", "7.19", "7.20", "7.21", "7.22", "7.23", "7.24", "7.25",
            "7.26", "7.27", "7.28", "7.29", "7.30",
        ],
    ),
];

/// Lower-case English words that must not appear in an Indonesian text.
const ENGLISH_WORDS: &[&str] = &[
    "the",
    "and",
    "is",
    "are",
    "this",
    "that",
    "with",
    "your",
    "you",
    "will",
    "should",
    "cannot",
    "which",
    "when",
    "has",
    "have",
    "not",
    "does",
    "for",
    "of",
    "to",
    "be",
    "it",
    "or",
    "if",
    "can",
    "was",
    "were",
    "must",
    "mail",
    "message",
    "sender",
    "recipient",
    "please",
];

fn load_group(group: &str) -> (Vec<CodeFacts>, Vec<CodeText>, Vec<CodeText>) {
    let find = |files: &[(&'static str, &'static str)]| {
        files
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, t)| *t)
            .unwrap()
    };
    let codes: CodesFile = data::parse("codes", group, find(&data::CODES)).unwrap();
    let english: TextFile = data::parse("en", group, find(&data::ENGLISH)).unwrap();
    let indonesian: TextFile = data::parse("id", group, find(&data::INDONESIAN)).unwrap();
    (codes.code, english.text, indonesian.text)
}

fn fields(text: &CodeText) -> [(&'static str, &str); 7] {
    [
        ("title", &text.title),
        ("meaning", &text.meaning),
        ("when", &text.when),
        ("fix_sender", &text.fix_sender),
        ("fix_admin", &text.fix_admin),
        ("who_acts", &text.who_acts),
        ("retry", &text.retry),
    ]
}

/// `text` without what stays in English in every language: double-quoted spans (a server's
/// own reply, a setting's label in a mail program) and words with an underscore
/// (configuration names such as message_size_limit).
fn outside_verbatim(text: &str) -> String {
    text.split('"')
        .step_by(2)
        .flat_map(str::split_whitespace)
        .filter(|word| !word.contains('_'))
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected_class(code: &str) -> &'static str {
    match code.as_bytes().first() {
        Some(b'2') => "positive",
        Some(b'3') => "intermediate",
        Some(b'4') => "transient",
        _ => "permanent",
    }
}

fn check_group(group: &str) {
    let (codes, english, indonesian) = load_group(group);
    assert!(!codes.is_empty(), "data/codes/{group}.toml is empty");
    let code_set: BTreeSet<&str> = codes.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(
        code_set.len(),
        codes.len(),
        "{group}: a code is listed twice"
    );
    for facts in &codes {
        let code = &facts.code;
        let is_basic = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
        let is_enhanced = code.split('.').count() == 3
            && code
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        assert!(is_basic || is_enhanced, "{group}: {code:?} is not a code");
        assert_eq!(
            facts.class,
            expected_class(code),
            "{code}: class must match the first digit"
        );
        assert!(
            [
                "sender",
                "sender-admin",
                "recipient",
                "recipient-admin",
                "client",
                "nobody"
            ]
            .contains(&facts.actor.as_str()),
            "{code}: actor {:?}",
            facts.actor
        );
        assert!(
            ["yes", "no", "after-fix"].contains(&facts.retry.as_str()),
            "{code}: retry {:?}",
            facts.retry
        );
        assert!(
            facts.rfc.starts_with("RFC ") || facts.rfc.starts_with("IANA"),
            "{code}: rfc {:?}",
            facts.rfc
        );
    }
    for (lang, texts) in [("en", &english), ("id", &indonesian)] {
        let text_set: BTreeSet<&str> = texts.iter().map(|t| t.code.as_str()).collect();
        assert_eq!(
            text_set, code_set,
            "data/{lang}/{group}.toml must have a text for exactly the codes of data/codes/{group}.toml"
        );
        for text in texts.iter() {
            for (name, value) in fields(text) {
                let minimum = if name == "title" { 3 } else { 25 };
                assert!(
                    value.trim().chars().count() >= minimum,
                    "{lang} {}: {name} is too short: {value:?}",
                    text.code
                );
            }
        }
    }
    let english_by_code: HashMap<&str, &CodeText> =
        english.iter().map(|t| (t.code.as_str(), t)).collect();
    for text in &indonesian {
        let en = english_by_code[text.code.as_str()];
        for ((name, id_value), (_, en_value)) in fields(text).into_iter().zip(fields(en)) {
            if name != "title" {
                assert_ne!(
                    id_value.trim(),
                    en_value.trim(),
                    "id {}: {name} is the English text",
                    text.code
                );
            }
            let checked = outside_verbatim(id_value);
            for word in checked.split(|c: char| !c.is_alphanumeric()) {
                assert!(
                    !ENGLISH_WORDS.contains(&word),
                    "id {}: {name} has the English word {word:?}: {id_value:?}",
                    text.code
                );
            }
        }
    }
    if let Some((_, subjects)) = REGISTRY.iter().find(|(g, _)| *g == group) {
        for subject in *subjects {
            let found = ["2", "4", "5"]
                .iter()
                .any(|class| code_set.contains(format!("{class}.{subject}").as_str()));
            assert!(found, "{group}: no entry for X.{subject} in any class");
        }
    }
    if group == "basic" {
        for code in BASIC {
            assert!(code_set.contains(code), "basic: {code} is missing");
        }
    }
}

#[test]
fn group_basic() {
    check_group("basic");
}
#[test]
fn group_x0_x1() {
    check_group("x0-x1");
}
#[test]
fn group_x2_x3() {
    check_group("x2-x3");
}
#[test]
fn group_x4_x5() {
    check_group("x4-x5");
}
#[test]
fn group_x6() {
    check_group("x6");
}
#[test]
fn group_x7a() {
    check_group("x7a");
}
#[test]
fn group_x7b() {
    check_group("x7b");
}

/// No field is shared word for word between two codes, in either language.
#[test]
fn every_text_is_written_for_its_code() {
    let catalogue = Catalogue::get().unwrap();
    for lang in [Lang::En, Lang::Id] {
        let mut seen: HashMap<String, String> = HashMap::new();
        for entry in catalogue.entries() {
            for (name, value) in fields(entry.text(lang)) {
                let key = value.trim().to_lowercase();
                if let Some(other) = seen.insert(key, format!("{} {name}", entry.facts.code)) {
                    panic!(
                        "{} {}: {name} repeats {other} word for word: {value:?}",
                        lang.as_str(),
                        entry.facts.code
                    );
                }
            }
        }
    }
}

/// Every reply petrel can emit has its basic and enhanced code in the reference.
#[test]
fn every_reply_petrel_sends_is_explained() {
    let catalogue = Catalogue::get().unwrap();
    for template in petrel_proto::standard::ALL {
        assert!(
            catalogue.entry(&template.code.to_string()).is_some(),
            "{}: {} missing",
            template.name,
            template.code
        );
        if let Some(enhanced) = template.enhanced {
            assert!(
                catalogue.entry(&enhanced.to_string()).is_some(),
                "{}: {enhanced} missing",
                template.name
            );
        }
    }
}

/// Every enhanced status code petrel's own delivery decisions carry is in the reference, in
/// both languages, so a DSN and `queue show` can always explain it.
#[test]
fn every_status_petrel_decides_is_explained() {
    let catalogue = Catalogue::get().unwrap();
    for code in petrel_proto::status::ALL {
        let entry = catalogue.entry(&code.to_string());
        let entry = entry.unwrap_or_else(|| panic!("{code} missing"));
        for lang in [Lang::En, Lang::Id] {
            assert!(!entry.text(lang).meaning.is_empty(), "{code} in {lang:?}");
        }
    }
}

/// Related codes point at entries that exist.
#[test]
fn related_codes_exist() {
    let catalogue = Catalogue::get().unwrap();
    for entry in catalogue.entries() {
        for related in &entry.facts.related {
            assert!(
                catalogue.entry(related).is_some(),
                "{} relates to unknown {related}",
                entry.facts.code
            );
        }
    }
}

/// The rows of docs/terminology.md: (English, Indonesian, the variants not to use).
fn terminology() -> Vec<(String, String, Vec<String>)> {
    let text = include_str!("../../../docs/terminology.md");
    text.lines()
        .filter(|line| {
            line.starts_with("| ") && !line.starts_with("| English") && !line.starts_with("|---")
        })
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let forbidden = cells
                .get(3)
                .map(|c| {
                    c.split(", ")
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            (cells[1].to_owned(), cells[2].to_owned(), forbidden)
        })
        .collect()
}

/// `text` lower-cased without what stays verbatim in every language: double-quoted and
/// backticked spans, configuration names (words with `_`) and all-caps protocol words.
fn running_text(text: &str) -> String {
    let unquoted: String = text
        .split('"')
        .step_by(2)
        .flat_map(|part| part.split('`').step_by(2))
        .collect::<Vec<_>>()
        .join(" ");
    unquoted
        .split_whitespace()
        .filter(|word| !word.contains('_'))
        .filter(|word| {
            let letters: String = word.chars().filter(|c| c.is_alphabetic()).collect();
            letters.is_empty() || letters.chars().any(char::is_lowercase)
        })
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The contents of the string literals of Rust source, escaped quotes made plain quotes.
fn string_literals(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '"') => current = Some(String::new()),
            (None, '\'') => {
                // The char literal '"' would open a string: skip it (lifetimes and other
                // char literals hold no double quote).
                let mut ahead = chars.clone();
                if ahead.next() == Some('"') && ahead.next() == Some('\'') {
                    chars = ahead;
                }
            }
            (None, _) => {}
            (Some(text), '\\') => match chars.next() {
                Some('n') => text.push(' '),
                Some(other) => text.push(other),
                None => {}
            },
            (Some(_), '"') => literals.extend(current.take()),
            (Some(text), other) => text.push(other),
        }
    }
    literals
}

/// Whether `phrase` occurs in `text` as whole words.
fn has_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Issue 17, item 6: one Indonesian. No Indonesian text of the reference uses a variant that
/// docs/terminology.md rejects, and every string the English quotes verbatim (a server's reply,
/// a setting's label) and every configuration name is in the Indonesian too.
#[test]
fn one_indonesian_terminology_and_verbatim_strings_kept() {
    let terms = terminology();
    assert!(
        terms.len() >= 20,
        "the terminology table is read: {}",
        terms.len()
    );
    let mut problems = Vec::new();
    for group in data::GROUPS {
        let (_, english, indonesian) = load_group(group);
        for id_text in &indonesian {
            let all_id: String = fields(id_text)
                .iter()
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .join(" ");
            let running = running_text(&all_id);
            for (english_term, _, forbidden) in &terms {
                for variant in forbidden {
                    if has_phrase(&running, variant) {
                        problems.push(format!(
                            "id {}: {variant:?} (use the term for {english_term:?})",
                            id_text.code
                        ));
                    }
                }
            }
            let Some(en_text) = english.iter().find(|t| t.code == id_text.code) else {
                continue;
            };
            let all_en: String = fields(en_text)
                .iter()
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .join(" ");
            let quoted = all_en.split('"').skip(1).step_by(2);
            let names = all_en
                .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
                .filter(|w| w.contains('_'))
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'));
            for verbatim in quoted.chain(names) {
                if !verbatim.is_empty() && !all_id.contains(verbatim) {
                    problems.push(format!(
                        "id {}: lacks {verbatim:?}, which the English has verbatim",
                        id_text.code
                    ));
                }
            }
        }
    }
    let guides = petrel_catalogue::guides::guides().unwrap();
    let glossary = petrel_catalogue::guides::glossary().unwrap();
    let providers = petrel_catalogue::providers::all().unwrap();
    let other_texts = providers
        .iter()
        .map(|p| {
            let t = &p.indonesian;
            (
                format!("provider {}", p.id),
                [&t.title, &t.meaning, &t.fix_sender, &t.fix_admin]
                    .map(String::as_str)
                    .join(" "),
            )
        })
        .chain(guides.iter().map(|g| {
            let t = &g.indonesian;
            (
                format!("guide {}", g.slug),
                [&t.title, &t.summary, &t.body]
                    .map(String::as_str)
                    .join(" "),
            )
        }))
        .chain(glossary.iter().map(|t| {
            (
                format!("glossary {}", t.key),
                format!("{} {}", t.indonesian, t.indonesian_definition),
            )
        }));
    // The Indonesian written in Rust (web page words, the bounce reader, the CLI, the DSN's
    // labels): every string literal of those files, English ones included (the variants are
    // Indonesian words, never English ones).
    let sources = [
        "../petrel/src/web/words.rs",
        "../petrel/src/web/html.rs",
        "../petrel/src/web/bounce.rs",
        "../petrel/src/web/guides.rs",
        "../petrel/src/bounce/report.rs",
        "../petrel/src/explain.rs",
        "../delivery/src/outcome.rs",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let code_texts: Vec<(String, String)> = sources
        .iter()
        .map(|file| {
            let source = std::fs::read_to_string(root.join(file)).unwrap();
            (format!("source {file}"), string_literals(&source).join(" "))
        })
        .collect();
    assert!(
        code_texts[4].1.contains("tertunda, masih dicoba lagi"),
        "the literals are read: {}",
        code_texts[4].1
    );
    for (what, all_id) in other_texts.chain(code_texts) {
        let running = running_text(&all_id);
        for (english_term, _, forbidden) in &terms {
            for variant in forbidden {
                if has_phrase(&running, variant) {
                    problems.push(format!(
                        "{what}: {variant:?} (use the term for {english_term:?})"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Issue 17, item 4: the glossary has the terms the reference's texts lean on most, among
/// them those a reader of a bounce meets first (AUTH, quotas, aliases and forwarding, app
/// passwords, mailing lists), each with codes that exist in the reference.
#[test]
fn the_glossary_has_the_terms_the_reference_leans_on() {
    let glossary = petrel_catalogue::guides::glossary().unwrap();
    let catalogue = petrel_catalogue::Catalogue::get().unwrap();
    for key in [
        "envelope",
        "bounce",
        "dsn",
        "relay",
        "smarthost",
        "greylisting",
        "spf",
        "dkim",
        "dmarc",
        "starttls",
        "mta-sts",
        "dane",
        "smtp-auth",
        "app-password",
        "quota",
        "alias",
        "forwarding",
        "mailing-list",
        "srs",
        "null-mx",
        "dot-stuffing",
    ] {
        let term = glossary.iter().find(|t| t.key == key);
        assert!(term.is_some(), "the glossary lacks {key}");
    }
    for term in glossary {
        for code in &term.codes {
            assert!(
                catalogue.entry(code).is_some(),
                "{}: {code} has no entry",
                term.key
            );
        }
    }
}
