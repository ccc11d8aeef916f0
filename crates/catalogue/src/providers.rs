//! Provider knowledge (issue 17, item 2): the reply patterns of the largest receivers and the
//! most common MTAs, each with how it is recognised (codes, text, host), what it means, what
//! the sender and the administrator can do, and its public source, in both languages.
//!
//! The data is `data/providers/*.toml`, embedded at build time; `data/providers/corpus.toml`
//! holds real reply lines (each with where it was published) that the tests match. Matching is
//! a pure function of a reply line (and the replying host when known); it never panics.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::Lang;

/// The provider files, by name.
const FILES: [(&str, &str); 2] = [
    (
        "receivers",
        include_str!("../data/providers/receivers.toml"),
    ),
    ("software", include_str!("../data/providers/software.toml")),
];

/// The corpus of real reply lines the tests match (each line's source cited).
pub const CORPUS: &str = include_str!("../data/providers/corpus.toml");

/// One provider's reply pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Unique, e.g. `microsoft-5.7.606`.
    pub id: String,
    /// Who sends it: `Microsoft 365`, `Postfix`.
    pub provider: String,
    /// Basic or enhanced codes it is for; empty when the text alone identifies it.
    #[serde(default)]
    pub codes: Vec<String>,
    /// Lower-case pieces of text; the reply must contain one (none: the codes decide).
    #[serde(default)]
    pub text: Vec<String>,
    /// Host-name suffixes of the provider's servers.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The public page that defines it.
    pub source: String,
    /// `[provider.english]`.
    pub english: ProviderText,
    /// `[provider.indonesian]`.
    pub indonesian: ProviderText,
}

/// What a provider's reply means, in one language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderText {
    pub title: String,
    pub meaning: String,
    pub fix_sender: String,
    pub fix_admin: String,
}

impl Provider {
    /// The texts in `lang`.
    pub fn text(&self, lang: Lang) -> &ProviderText {
        match lang {
            Lang::En => &self.english,
            Lang::Id => &self.indonesian,
        }
    }

    /// How well this entry fits a reply (higher is more specific); `None` when it does not.
    fn fit(&self, codes: &[&str], lowered: &str, host: Option<&str>) -> Option<u32> {
        let code_fits = self.codes.iter().any(|c| codes.contains(&c.as_str()));
        if !self.codes.is_empty() && !code_fits {
            return None;
        }
        let text_fits = self.text.iter().any(|t| lowered.contains(t.as_str()));
        if !self.text.is_empty() && !text_fits {
            return None;
        }
        let host_fits = host.is_some_and(|host| {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            self.hosts
                .iter()
                .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")))
        });
        let mut score = 0;
        if code_fits {
            score += 1;
        }
        if text_fits {
            // Longer matched text says more.
            score += 2 + self
                .text
                .iter()
                .filter(|t| lowered.contains(t.as_str()))
                .map(|t| u32::try_from(t.len()).unwrap_or(u32::MAX).min(40))
                .max()
                .unwrap_or(0);
        }
        if host_fits {
            score += 1;
        }
        Some(score)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    provider: Vec<Provider>,
}

static PROVIDERS: OnceLock<Result<Vec<Provider>, String>> = OnceLock::new();

/// Every provider entry; `Err` names the file that does not parse (a broken build).
///
/// # Errors
/// The file and the problem, when an embedded file does not parse or an entry is invalid.
pub fn all() -> Result<&'static [Provider], String> {
    PROVIDERS
        .get_or_init(load)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn load() -> Result<Vec<Provider>, String> {
    let mut providers: Vec<Provider> = Vec::new();
    for (name, text) in FILES {
        let file: File =
            toml::from_str(text).map_err(|e| format!("data/providers/{name}.toml: {e}"))?;
        for provider in file.provider {
            if provider.codes.is_empty() && provider.text.is_empty() {
                return Err(format!("{}: neither codes nor text", provider.id));
            }
            if providers.iter().any(|p| p.id == provider.id) {
                return Err(format!("{}: listed twice", provider.id));
            }
            providers.push(provider);
        }
    }
    Ok(providers)
}

/// The entries that fit `reply` (from `host`, when known), the most specific first.
pub fn matching(reply: &str, host: Option<&str>) -> Vec<&'static Provider> {
    let Ok(providers) = all() else {
        return Vec::new();
    };
    let codes = codes_of(reply);
    let lowered = reply.to_ascii_lowercase();
    let mut fits: Vec<(u32, &Provider)> = providers
        .iter()
        .filter_map(|p| p.fit(&codes, &lowered, host).map(|score| (score, p)))
        .collect();
    fits.sort_by_key(|fit| std::cmp::Reverse(fit.0));
    fits.into_iter().map(|(_, p)| p).collect()
}

/// The basic and enhanced codes at the start of a reply line (`550-5.7.1 ...`, `[TSS04]` not).
pub(crate) fn codes_of(reply: &str) -> Vec<&str> {
    reply
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .take(2)
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_loads_with_both_languages_and_a_source() {
        let providers = all().unwrap();
        assert!(!providers.is_empty());
        for p in providers {
            assert!(
                p.source.starts_with("https://") || p.source.starts_with("http://"),
                "{}",
                p.id
            );
            for text in [&p.english, &p.indonesian] {
                assert!(
                    !text.title.is_empty() && !text.meaning.is_empty(),
                    "{}",
                    p.id
                );
                assert!(
                    !text.fix_sender.is_empty() && !text.fix_admin.is_empty(),
                    "{}",
                    p.id
                );
            }
            assert!(
                p.text.iter().all(|t| *t == t.to_ascii_lowercase()),
                "{}: text must be lower-case",
                p.id
            );
        }
    }

    #[test]
    fn every_corpus_line_is_recognised_as_its_provider() {
        #[derive(Deserialize)]
        struct Corpus {
            line: Vec<Line>,
        }
        #[derive(Deserialize)]
        struct Line {
            reply: String,
            expect: String,
            source: String,
        }
        let corpus: Corpus = toml::from_str(CORPUS).unwrap();
        assert!(corpus.line.len() >= 100, "{}", corpus.line.len());
        let mut wrong = Vec::new();
        for line in &corpus.line {
            assert!(line.source.contains('.'), "{}: no source", line.reply);
            // Explained, never "unknown": the codes from the reference or from their parts.
            let query = crate::explain::parse_query(&line.reply);
            let explained = query.and_then(|q| {
                crate::explain::explain(crate::Catalogue::get().ok()?, &q, Lang::En).ok()
            });
            assert!(explained.is_some(), "{}: not explained", line.reply);
            let found = matching(&line.reply, None);
            if found.first().map(|p| p.id.as_str()) != Some(line.expect.as_str()) {
                wrong.push(format!(
                    "{:?}: expected {}, found {:?}",
                    line.reply,
                    line.expect,
                    found.iter().map(|p| &p.id).collect::<Vec<_>>()
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Issue 17: Microsoft's 5.7.12 is not 4.7.12's "password transition": the entry for
    /// recipients that take mail only from inside their organization comes first.
    #[test]
    fn microsoft_5_7_12_is_a_recipient_restricted_to_its_organization() {
        for reply in [
            "550 5.7.12 Sender was not authenticated by organization",
            "550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required",
        ] {
            let found = matching(reply, Some("mail.protection.outlook.com"));
            assert_eq!(
                found.first().map(|p| p.id.as_str()),
                Some("microsoft-5.7.12"),
                "{reply}"
            );
        }
        let entry = matching(
            "550 5.7.12 Sender was not authenticated by organization",
            None,
        )[0];
        assert!(entry.text(Lang::En).meaning.contains("outside"));
        assert!(!entry.text(Lang::En).meaning.contains("password"));
    }

    #[test]
    fn codes_of_a_line() {
        assert_eq!(codes_of("550-5.7.1 blocked"), vec!["550", "5.7.1"]);
        assert_eq!(codes_of("421 4.7.0 [TSS04] x"), vec!["421", "4.7.0"]);
        assert_eq!(codes_of("554 delivery error: dd"), vec!["554"]);
    }
}
