//! Guides and the glossary (issue 17, item 4): longer texts around the code pages, in both
//! languages: null MX; DATA, 354 and dot-stuffing; SMTP smuggling; reading a bounce; greylisting;
//! SPF, DKIM and DMARC; MTA-STS and DANE; how enhanced status codes work. Each names the codes
//! it explains, so their pages link to it. The glossary defines every term the reference uses,
//! with its Indonesian term (docs/terminology.md).
//!
//! Bodies are a small Markdown subset (paragraphs, `## ` headings, `- ` lists, `code`,
//! [links](/codes/556)) that the web server renders with escaping by construction. The data is
//! ours, embedded at build time; a file that does not parse is an error the caller reports.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::Lang;

/// The guide files, in the order the index lists them.
const GUIDES: [&str; 8] = [
    include_str!("../data/guides/enhanced-status-codes.toml"),
    include_str!("../data/guides/reading-bounces.toml"),
    include_str!("../data/guides/null-mx.toml"),
    include_str!("../data/guides/data-and-dot-stuffing.toml"),
    include_str!("../data/guides/smtp-smuggling.toml"),
    include_str!("../data/guides/greylisting.toml"),
    include_str!("../data/guides/spf-dkim-dmarc.toml"),
    include_str!("../data/guides/mta-sts-and-dane.toml"),
];

const GLOSSARY: &str = include_str!("../data/glossary.toml");

/// One guide.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guide {
    /// Its path: `/guides/<slug>`.
    pub slug: String,
    /// The codes it explains; their pages link to it.
    #[serde(default)]
    pub codes: Vec<String>,
    pub english: GuideText,
    pub indonesian: GuideText,
}

/// A guide in one language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuideText {
    pub title: String,
    pub summary: String,
    /// The Markdown subset described in the module header.
    pub body: String,
}

impl Guide {
    /// The texts in `lang`.
    pub fn text(&self, lang: Lang) -> &GuideText {
        match lang {
            Lang::En => &self.english,
            Lang::Id => &self.indonesian,
        }
    }
}

/// One glossary term.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// Its anchor: `/glossary#<key>`.
    pub key: String,
    pub english: String,
    pub indonesian: String,
    pub english_definition: String,
    pub indonesian_definition: String,
    /// Codes whose pages relate to it.
    #[serde(default)]
    pub codes: Vec<String>,
}

impl Term {
    /// The term and its definition in `lang`.
    pub fn in_lang(&self, lang: Lang) -> (&str, &str) {
        match lang {
            Lang::En => (&self.english, &self.english_definition),
            Lang::Id => (&self.indonesian, &self.indonesian_definition),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlossaryFile {
    term: Vec<Term>,
}

type Loaded = Result<(Vec<Guide>, Vec<Term>), String>;

static LOADED: OnceLock<Loaded> = OnceLock::new();

fn load() -> Loaded {
    let mut guides = Vec::new();
    for text in GUIDES {
        let guide: Guide = toml::from_str(text).map_err(|e| format!("data/guides: {e}"))?;
        guides.push(guide);
    }
    let glossary: GlossaryFile =
        toml::from_str(GLOSSARY).map_err(|e| format!("data/glossary.toml: {e}"))?;
    let mut terms = glossary.term;
    terms.sort_by_key(|t| t.english.to_lowercase());
    Ok((guides, terms))
}

/// Every guide, in index order.
///
/// # Errors
/// The file and the problem when the embedded data does not parse (a broken build).
pub fn guides() -> Result<&'static [Guide], String> {
    match LOADED.get_or_init(load) {
        Ok((guides, _)) => Ok(guides),
        Err(e) => Err(e.clone()),
    }
}

/// Every glossary term, by English term.
///
/// # Errors
/// As `guides`.
pub fn glossary() -> Result<&'static [Term], String> {
    match LOADED.get_or_init(load) {
        Ok((_, terms)) => Ok(terms),
        Err(e) => Err(e.clone()),
    }
}

/// The guide at `slug`.
pub fn guide(slug: &str) -> Option<&'static Guide> {
    guides().ok()?.iter().find(|g| g.slug == slug)
}

/// The guides that explain `code`.
pub fn guides_for(code: &str) -> Vec<&'static Guide> {
    guides()
        .map(|all| {
            all.iter()
                .filter(|g| g.codes.iter().any(|c| c == code))
                .collect()
        })
        .unwrap_or_default()
}

/// The glossary terms related to `code`.
pub fn terms_for(code: &str) -> Vec<&'static Term> {
    glossary()
        .map(|all| {
            all.iter()
                .filter(|t| t.codes.iter().any(|c| c == code))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guides_and_glossary_load_and_their_links_resolve() {
        let guides = guides().unwrap();
        let terms = glossary().unwrap();
        assert_eq!(guides.len(), GUIDES.len());
        assert!(terms.len() >= 45, "{}", terms.len());
        let catalogue = crate::Catalogue::get().unwrap();
        for guide in guides {
            for code in &guide.codes {
                assert!(catalogue.entry(code).is_some(), "{}: {code}", guide.slug);
            }
            for text in [&guide.english, &guide.indonesian] {
                assert!(
                    !text.title.is_empty() && !text.summary.is_empty(),
                    "{}",
                    guide.slug
                );
                // Every internal link points at something that exists.
                for link in text.body.split("](").skip(1) {
                    let target = link.split(')').next().unwrap_or("");
                    if let Some(code) = target.strip_prefix("/codes/") {
                        let known = catalogue.entry(code).is_some()
                            || crate::derive::enhanced(catalogue, code, Lang::En).is_some()
                            || crate::derive::basic(catalogue, code, Lang::En).is_some();
                        assert!(known, "{}: {target}", guide.slug);
                    } else if let Some(slug) = target.strip_prefix("/guides/") {
                        assert!(guide_exists(slug), "{}: {target}", guide.slug);
                    } else if let Some(key) = target.strip_prefix("/glossary#") {
                        assert!(
                            terms.iter().any(|t| t.key == key),
                            "{}: {target}",
                            guide.slug
                        );
                    } else {
                        assert!(target.starts_with("https://"), "{}: {target}", guide.slug);
                    }
                }
            }
        }
        for term in terms {
            for code in &term.codes {
                assert!(catalogue.entry(code).is_some(), "{}: {code}", term.key);
            }
        }
    }

    fn guide_exists(slug: &str) -> bool {
        guide(slug).is_some()
    }
}
