//! Reading what a person typed (`556`, `5.1.10`, or a whole reply line such as
//! `556 5.1.10 <x@y>: domain does not accept mail`) and finding what the reference says: the
//! entries, a warning when the parts disagree (550 with 4.2.2) or a code is not registered, the
//! nearest known codes for an unknown one, and the differences between two codes.
//!
//! Handles text from people and from logs; never panics.

use crate::{Catalogue, Entry, Lang};

/// What was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The text as given.
    pub text: String,
    pub basic: Option<String>,
    pub enhanced: Option<String>,
}

/// Parses a basic code, an enhanced code, or a reply line (basic code, then maybe an enhanced
/// code). `None` when the text starts with neither.
pub fn parse_query(text: &str) -> Option<Query> {
    let trimmed = text.trim();
    let mut words = trimmed.split(|c: char| c.is_whitespace() || c == '-');
    let first = words.next()?;
    let query = |basic: Option<&str>, enhanced: Option<&str>| Query {
        text: trimmed.to_owned(),
        basic: basic.map(str::to_owned),
        enhanced: enhanced.map(str::to_owned),
    };
    if is_basic(first) {
        let second = words.next().filter(|w| is_enhanced(w));
        return Some(query(Some(first), second));
    }
    is_enhanced(first).then(|| query(None, Some(first)))
}

fn is_basic(word: &str) -> bool {
    word.len() == 3
        && word.bytes().all(|b| b.is_ascii_digit())
        && (b'2'..=b'5').contains(&word.as_bytes()[0])
}

fn is_enhanced(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(parts[0], "2" | "4" | "5")
}

/// What the reference says about a query.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    pub query: Query,
    pub basic: Option<&'a Entry>,
    pub enhanced: Option<&'a Entry>,
    /// The parts the reference has no entry for, explained from their digits (basic first).
    pub derived: Vec<crate::derive::Derived>,
    /// The provider pattern the reply line is recognised as (the most specific), if any.
    pub provider: Option<&'static crate::providers::Provider>,
    /// Sentences flagging a mismatch between the parts, in the asked language.
    pub warnings: Vec<String>,
}

/// Looks a query up; `Err` with the nearest known codes when nothing is known.
///
/// # Errors
/// The nearest codes of the reference, when neither part of the query is in it.
pub fn explain<'a>(
    catalogue: &'a Catalogue,
    query: &Query,
    lang: Lang,
) -> Result<Explanation<'a>, Vec<String>> {
    let basic = query.basic.as_deref().and_then(|c| catalogue.entry(c));
    let enhanced = query.enhanced.as_deref().and_then(|c| catalogue.entry(c));
    let derived: Vec<crate::derive::Derived> = [
        query
            .basic
            .as_deref()
            .and_then(|c| crate::derive::basic(catalogue, c, lang)),
        query
            .enhanced
            .as_deref()
            .and_then(|c| crate::derive::enhanced(catalogue, c, lang)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if basic.is_none() && enhanced.is_none() && derived.is_empty() {
        let code = query
            .enhanced
            .as_deref()
            .or(query.basic.as_deref())
            .unwrap_or("");
        return Err(nearest(catalogue, code));
    }
    let mut warnings = Vec::new();
    if let (Some(basic), Some(enhanced)) = (&query.basic, &query.enhanced)
        && basic.as_bytes().first() != enhanced.as_bytes().first()
    {
        warnings.push(match lang {
            Lang::En => format!("The two parts disagree: {basic} is a {} reply but {enhanced} is a {} status. Clients act on the basic code's first digit ({basic}), so treat the reply as {}; the server that sent it is misconfigured.", class_word(basic, lang), class_word(enhanced, lang), class_word(basic, lang)),
            Lang::Id => format!("Kedua bagian tidak cocok: {basic} adalah balasan {} tetapi {enhanced} adalah status {}. Klien bertindak menurut digit pertama kode dasar ({basic}), jadi anggap balasan itu {}; server pengirimnya salah konfigurasi.", class_word(basic, lang), class_word(enhanced, lang), class_word(basic, lang)),
        });
    }
    Ok(Explanation {
        query: query.clone(),
        basic,
        enhanced,
        derived,
        provider: crate::providers::matching(&query.text, None)
            .first()
            .copied(),
        warnings,
    })
}

fn class_word(code: &str, lang: Lang) -> &'static str {
    let class = match code.as_bytes().first() {
        Some(b'2') => "positive",
        Some(b'3') => "intermediate",
        Some(b'4') => "transient",
        _ => "permanent",
    };
    labels(lang).class(class)
}

/// The known codes nearest to `code`: same class and subject first, then same basic family.
pub fn nearest(catalogue: &Catalogue, code: &str) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = catalogue
        .entries()
        .map(|e| (distance(code, &e.facts.code), e.facts.code.as_str()))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, c)| c.to_owned())
        .collect()
}

/// A distance between codes: differing parts weigh by position, then digits.
fn distance(a: &str, b: &str) -> usize {
    let parts_a: Vec<&str> = a.split('.').collect();
    let parts_b: Vec<&str> = b.split('.').collect();
    if parts_a.len() != parts_b.len() {
        return 1000 + a.len().abs_diff(b.len());
    }
    parts_a
        .iter()
        .zip(&parts_b)
        .enumerate()
        .map(|(index, (x, y))| {
            let weight = [100, 10, 1].get(index).copied().unwrap_or(1);
            let numeric = |s: &str| s.parse::<usize>().unwrap_or(usize::MAX / 4);
            if parts_a.len() == 1 {
                numeric(x).abs_diff(numeric(y))
            } else if x == y {
                0
            } else {
                weight * (1 + numeric(x).abs_diff(numeric(y)).min(9))
            }
        })
        .sum()
}

/// One sentence naming the class of each code as its RFC names it (RFC 5321 §4.2.1 for basic
/// codes, RFC 3463 §3.1 for enhanced ones) and what that class means for the message.
pub fn summary(a: &Entry, b: &Entry, lang: Lang) -> String {
    let name = |entry: &Entry| {
        let enhanced = entry.facts.code.contains('.');
        let (rfc_name, outcome_en, outcome_id) = match (entry.facts.class.as_str(), enhanced) {
            ("positive", false) => (
                "Positive Completion reply",
                "the step succeeded",
                "langkahnya berhasil",
            ),
            ("intermediate", _) => (
                "Positive Intermediate reply",
                "the server waits for the rest",
                "server menunggu kelanjutannya",
            ),
            ("transient", false) => (
                "Transient Negative Completion reply",
                "the step failed for now and may succeed when tried again",
                "langkahnya gagal untuk saat ini dan dapat berhasil bila dicoba lagi",
            ),
            ("permanent", false) => (
                "Permanent Negative Completion reply",
                "the step failed and will fail the same way again",
                "langkahnya gagal dan akan gagal dengan cara yang sama lagi",
            ),
            ("positive", true) => ("Success", "the step succeeded", "langkahnya berhasil"),
            ("transient", true) => (
                "Persistent Transient Failure",
                "the step failed for now and may succeed when tried again",
                "langkahnya gagal untuk saat ini dan dapat berhasil bila dicoba lagi",
            ),
            _ => (
                "Permanent Failure",
                "the step failed and will fail the same way again",
                "langkahnya gagal dan akan gagal dengan cara yang sama lagi",
            ),
        };
        (
            rfc_name,
            if lang == Lang::En {
                outcome_en
            } else {
                outcome_id
            },
        )
    };
    let ((name_a, outcome_a), (name_b, outcome_b)) = (name(a), name(b));
    let rfc = |entry: &Entry| {
        if entry.facts.code.contains('.') {
            "RFC 3463 §3.1"
        } else {
            "RFC 5321 §4.2.1"
        }
    };
    let sources = if rfc(a) == rfc(b) {
        rfc(a).to_owned()
    } else {
        format!("{}, {}", rfc(a), rfc(b))
    };
    let (code_a, code_b) = (&a.facts.code, &b.facts.code);
    match (lang, a.facts.class == b.facts.class) {
        (Lang::En, false) => format!(
            "{code_a} is a {name_a}: {outcome_a}; {code_b} is a {name_b}: {outcome_b} ({sources})."
        ),
        (Lang::En, true) => format!(
            "{code_a} and {code_b} are both a {name_a} ({sources}): {outcome_a}; they differ in what they are about and in who must act."
        ),
        (Lang::Id, false) => format!(
            "{code_a} adalah {name_a}: {outcome_a}; {code_b} adalah {name_b}: {outcome_b} ({sources})."
        ),
        (Lang::Id, true) => format!(
            "{code_a} dan {code_b} sama-sama {name_a} ({sources}): {outcome_a}; keduanya berbeda dalam hal yang dibahas dan siapa yang harus bertindak."
        ),
    }
}

/// One row of a comparison.
#[derive(Debug, Clone)]
pub struct Difference {
    pub label: &'static str,
    pub first: String,
    pub second: String,
}

/// The key differences between two entries (class, who acts, retry, RFC).
pub fn compare(first: &Entry, second: &Entry, lang: Lang) -> Vec<Difference> {
    let labels = labels(lang);
    let row = |label, a: String, b: String| Difference {
        label,
        first: a,
        second: b,
    };
    vec![
        row(
            labels.class_label,
            labels.class(&first.facts.class).to_owned(),
            labels.class(&second.facts.class).to_owned(),
        ),
        row(
            labels.who_acts,
            first.text(lang).who_acts.clone(),
            second.text(lang).who_acts.clone(),
        ),
        row(
            labels.retry,
            first.text(lang).retry.clone(),
            second.text(lang).retry.clone(),
        ),
        row(
            labels.rfc,
            first.facts.rfc.clone(),
            second.facts.rfc.clone(),
        ),
    ]
}

/// The words around the entries, per language.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    pub meaning: &'static str,
    pub when: &'static str,
    pub fix_sender: &'static str,
    pub fix_admin: &'static str,
    pub who_acts: &'static str,
    pub retry: &'static str,
    pub rfc: &'static str,
    pub class_label: &'static str,
    pub related: &'static str,
    pub when_each: &'static str,
    pub differences: &'static str,
    pub unknown: &'static str,
    /// Before a provider's own meaning of a reply: "Recognised as".
    pub recognised: &'static str,
    /// Before a provider entry's public source.
    pub source: &'static str,
    /// Before the nearest known codes of an unknown one.
    pub nearest: &'static str,
    /// Where the RFC of a code outside the reference would be.
    pub not_in_reference: &'static str,
    /// After a text that is neither a code nor a reply line.
    pub not_a_code: &'static str,
    positive: &'static str,
    intermediate: &'static str,
    transient: &'static str,
    permanent: &'static str,
}

impl Labels {
    /// A class name in this language.
    pub fn class(&self, class: &str) -> &'static str {
        match class {
            "positive" => self.positive,
            "intermediate" => self.intermediate,
            "transient" => self.transient,
            _ => self.permanent,
        }
    }
}

/// The labels of `lang`.
pub fn labels(lang: Lang) -> Labels {
    match lang {
        Lang::En => Labels {
            meaning: "What it means",
            when: "When you see it",
            fix_sender: "What the sender can do",
            fix_admin: "What an administrator can do",
            who_acts: "Who must act",
            retry: "Does retrying help",
            rfc: "Defined in",
            class_label: "Class",
            related: "Related codes",
            when_each: "When each applies",
            differences: "Key differences",
            unknown: "Unknown code",
            recognised: "Recognised as",
            source: "Source",
            nearest: "Nearest known codes",
            not_in_reference: "no entry of its own; explained from its parts",
            not_a_code: "is not a reply code, an enhanced status code or a reply line",
            positive: "positive (success)",
            intermediate: "intermediate (go on)",
            transient: "transient (temporary failure)",
            permanent: "permanent (failure)",
        },
        Lang::Id => Labels {
            meaning: "Artinya",
            when: "Kapan muncul",
            fix_sender: "Yang dapat dilakukan pengirim",
            fix_admin: "Yang dapat dilakukan administrator",
            who_acts: "Siapa yang harus bertindak",
            retry: "Apakah mencoba lagi membantu",
            rfc: "Didefinisikan di",
            class_label: "Kelas",
            related: "Kode terkait",
            when_each: "Kapan masing-masing berlaku",
            differences: "Perbedaan utama",
            unknown: "Kode tidak dikenal",
            recognised: "Dikenali sebagai",
            source: "Sumber",
            nearest: "Kode terdekat yang dikenal",
            not_in_reference: "tidak memiliki entri sendiri; dijelaskan dari bagian-bagiannya",
            not_a_code: "bukan kode balasan, kode status lanjutan, atau baris balasan",
            positive: "positif (berhasil)",
            intermediate: "perantara (lanjutkan)",
            transient: "sementara (gagal untuk saat ini)",
            permanent: "permanen (gagal)",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = parse_query("556 5.1.10 <x@y>: domain does not accept mail").unwrap();
        assert_eq!(
            (q.basic.as_deref(), q.enhanced.as_deref()),
            (Some("556"), Some("5.1.10"))
        );
        let q = parse_query("550-5.7.1 relay denied").unwrap();
        assert_eq!(
            (q.basic.as_deref(), q.enhanced.as_deref()),
            (Some("550"), Some("5.7.1"))
        );
        assert_eq!(
            parse_query("4.2.2").unwrap().enhanced.as_deref(),
            Some("4.2.2")
        );
        assert!(parse_query("hello").is_none());
        assert!(parse_query("999").is_none());
        assert!(parse_query("6.1.1").is_none());
    }

    #[test]
    fn distance_prefers_same_class_and_subject() {
        assert!(distance("5.1.11", "5.1.10") < distance("5.1.11", "5.2.1"));
        assert!(distance("557", "556") < distance("557", "221"));
    }
}
