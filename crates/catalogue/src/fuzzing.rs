//! Entry point of the fuzz target for the reply-line reader (`fuzz/`): what `petrel explain`,
//! the web pages, the bounce reader and delivery's logs do with a reply line from anyone.
//! Kept here so the committed corpus is also replayed by `cargo test`. A panic is a bug found.
//! Not a public API.

use crate::{Catalogue, Lang};

/// Reads the input as a reply line (or code) and explains it in both languages, with the
/// nearest codes, the provider patterns, the meaning shown in bounces and a comparison when it
/// names two codes.
pub fn reply_line(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let Ok(catalogue) = Catalogue::get() else {
        return;
    };
    let host = text.split_whitespace().last();
    let _ = crate::providers::matching(&text, host);
    // What bounces, queue show and the console say of it (`meaning`), for every word that
    // could be a code.
    for word in text.split_whitespace().take(4) {
        for lang in [Lang::En, Lang::Id] {
            let _ = crate::meaning::meaning_of(word, Some(&text), host, lang);
        }
    }
    let Some(query) = crate::explain::parse_query(&text) else {
        return;
    };
    for lang in [Lang::En, Lang::Id] {
        match crate::explain::explain(catalogue, &query, lang) {
            Ok(explanation) => {
                if let (Some(a), Some(b)) = (explanation.basic, explanation.enhanced) {
                    let _ = crate::explain::compare(a, b, lang);
                    let _ = crate::explain::summary(a, b, lang);
                }
            }
            Err(nearest) => assert!(!nearest.is_empty(), "no nearest code for {text:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus (fuzz/corpus/<target>/) through the targets' entry points,
    /// so every input a campaign kept is checked by `cargo test`.
    #[test]
    fn fuzz_corpus_replays() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 1] = [("reply_line", super::reply_line)];
        for (name, target) in targets {
            let mut count = 0;
            for entry in std::fs::read_dir(corpus.join(name)).unwrap() {
                target(&std::fs::read(entry.unwrap().path()).unwrap());
                count += 1;
            }
            assert!(count > 0, "empty corpus for {name}");
        }
    }
}
