//! What a code means where petrel shows one: DSNs (with the remote reply line and host), `queue
//! show` and the console (the code alone); log lines use `short_title`, which falls back to the
//! parts the same way. One lookup for every code a real server sends, not only those with an
//! entry of their own (issue 17). In order: what the provider knowledge says of the reply line
//! (its text and host identify the software; only when the line carries the code asked about),
//! the reference's entry for the code, and the explanation from the code's parts (`derive`),
//! which has no advice of its own.
//!
//! Takes codes and reply text from peers; never panics.

use crate::{Catalogue, Lang, derive, providers};

/// A reply's meaning in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meaning {
    pub title: String,
    pub meaning: String,
    /// What the sender can do; `None` when the meaning comes from the code's parts.
    pub fix_sender: Option<String>,
    /// Where it came from: a provider's name, "reference", or "parts".
    pub source: String,
}

/// The meaning of `code` (enhanced or basic), given with `reply` (the whole reply line) and
/// the `host` that sent it when known; `None` only for what is no code at all.
pub fn meaning_of(
    code: &str,
    reply: Option<&str>,
    host: Option<&str>,
    lang: Lang,
) -> Option<Meaning> {
    // The reply explains `code` only when it carries it: a message that expired (4.4.7) after a
    // last deferral keeps that reply, which says something else.
    let reply = reply.filter(|r| providers::codes_of(r).contains(&code));
    if let Some(provider) = reply.and_then(|r| providers::matching(r, host).into_iter().next()) {
        let text = provider.text(lang);
        return Some(Meaning {
            title: text.title.clone(),
            meaning: text.meaning.clone(),
            fix_sender: Some(text.fix_sender.clone()),
            source: provider.provider.clone(),
        });
    }
    let catalogue = Catalogue::get().ok()?;
    if let Some(entry) = catalogue.entry(code) {
        let text = entry.text(lang);
        return Some(Meaning {
            title: text.title.clone(),
            meaning: text.meaning.clone(),
            fix_sender: Some(text.fix_sender.clone()),
            source: "reference".into(),
        });
    }
    let derived = if code.contains('.') {
        derive::enhanced(catalogue, code, lang)
    } else {
        derive::basic(catalogue, code, lang)
    }?;
    Some(Meaning {
        title: derived.title,
        meaning: derived.meaning,
        fix_sender: None,
        source: "parts".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_a_server_sends_has_a_meaning() {
        // An entry of its own.
        let own = meaning_of("5.1.10", None, None, Lang::En).unwrap();
        assert_eq!(own.source, "reference");
        assert!(own.fix_sender.is_some());
        // Outside the registry, with the provider's line: the provider's meaning and advice.
        let line = "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/";
        let microsoft = meaning_of(
            "5.7.606",
            Some(line),
            Some("mx.protection.outlook.com"),
            Lang::Id,
        )
        .unwrap();
        assert_eq!(microsoft.source, "Microsoft 365");
        assert!(microsoft.meaning.contains("Exchange Online Protection"));
        // Outside the registry, no provider: from its parts, never "unknown".
        let parts = meaning_of("5.7.606", Some("550 5.7.606 go away"), None, Lang::En).unwrap();
        assert_eq!(parts.source, "parts");
        assert!(
            parts.meaning.contains("not in the IANA registry"),
            "{}",
            parts.meaning
        );
        // A reply that does not carry the code does not explain it (an expired message keeps
        // its last deferral's reply).
        let expired = meaning_of(
            "4.4.7",
            Some(line),
            Some("mx.protection.outlook.com"),
            Lang::En,
        )
        .unwrap();
        assert_eq!(expired.source, "reference");
        assert!(meaning_of("558", None, None, Lang::En).is_some());
        assert!(meaning_of("not a code", None, None, Lang::En).is_none());
    }
}
