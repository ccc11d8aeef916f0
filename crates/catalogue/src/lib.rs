//! petrel-catalogue: the reply-code reference. For every basic reply code (RFC 5321, 7504,
//! 3207, 4954, 1870, 3030, 6531) and every enhanced status code of the IANA registry
//! (RFC 3463, 5248 and updates), in each class where it is used: what it means, when you see
//! it, how to fix it, who must act, whether retrying helps, and the RFC, in English and
//! Indonesian.
//!
//! Codes without an entry are explained from their parts (`derive`), and reply lines of large
//! receivers and common MTAs are recognised from the provider knowledge (`providers`, with a
//! corpus of real reply lines and their sources).
//!
//! The data files are embedded at build time and parsed once. Depends on proto (codes) only.
//! Lookups take codes typed by people or sent by peers; they never panic.

pub mod data;
pub mod derive;
pub mod explain;
pub mod fuzzing;
pub mod guides;
pub mod meaning;
pub mod providers;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use data::{CodeFacts, CodeText, CodesFile, TextFile};

/// A language of the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Id,
}

impl Lang {
    /// Parses `en` or `id`.
    pub fn parse(text: &str) -> Option<Lang> {
        match text.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "id" => Some(Lang::Id),
            _ => None,
        }
    }

    /// The language tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Id => "id",
        }
    }
}

/// One code of the reference with its facts and texts.
#[derive(Debug, Clone)]
pub struct Entry {
    pub facts: CodeFacts,
    pub english: CodeText,
    pub indonesian: CodeText,
}

impl Entry {
    /// The texts in `lang`.
    pub fn text(&self, lang: Lang) -> &CodeText {
        match lang {
            Lang::En => &self.english,
            Lang::Id => &self.indonesian,
        }
    }
}

/// The whole reference.
#[derive(Debug)]
pub struct Catalogue {
    entries: BTreeMap<String, Entry>,
}

static CATALOGUE: OnceLock<Result<Catalogue, String>> = OnceLock::new();

/// The embedded reference data does not parse: the text names the file and the problem. A
/// build with this error is broken; every lookup then reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueError(pub String);

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CatalogueError {}

impl Catalogue {
    /// The embedded reference, parsed on first use.
    ///
    /// # Errors
    /// A message naming the data file that does not parse or the code that lacks a text.
    pub fn get() -> Result<&'static Catalogue, CatalogueError> {
        CATALOGUE
            .get_or_init(Catalogue::load)
            .as_ref()
            .map_err(|reason| CatalogueError(reason.clone()))
    }

    fn load() -> Result<Catalogue, String> {
        let mut facts = Vec::new();
        for (group, text) in data::CODES {
            let file: CodesFile = data::parse("codes", group, text)?;
            facts.extend(file.code);
        }
        let english = texts("en", &data::ENGLISH)?;
        let indonesian = texts("id", &data::INDONESIAN)?;
        let mut entries = BTreeMap::new();
        for fact in facts {
            let code = fact.code.clone();
            let english = english
                .get(&code)
                .cloned()
                .ok_or_else(|| format!("{code} has no English text"))?;
            let indonesian = indonesian
                .get(&code)
                .cloned()
                .ok_or_else(|| format!("{code} has no Indonesian text"))?;
            let entry = Entry {
                facts: fact,
                english,
                indonesian,
            };
            if entries.insert(code.clone(), entry).is_some() {
                return Err(format!("{code} is listed twice in data/codes"));
            }
        }
        Ok(Catalogue { entries })
    }

    /// The entry of `code` (`556`, `5.1.10`), if the reference has it.
    pub fn entry(&self, code: &str) -> Option<&Entry> {
        self.entries.get(code)
    }

    /// Every entry, ordered by code.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
}

/// The short English title of a reply, for log lines: the enhanced code's title when the
/// reference has it, else the basic code's, else the enhanced code's explanation from its
/// parts (a provider's own detail number such as 5.7.606); `None` when nothing fits.
pub fn short_title(code: u16, enhanced: Option<&str>) -> Option<String> {
    let catalogue = Catalogue::get().ok()?;
    enhanced
        .and_then(|e| catalogue.entry(e))
        .or_else(|| catalogue.entry(&code.to_string()))
        .map(|entry| entry.english.title.clone())
        .or_else(|| {
            let enhanced = enhanced?;
            derive::enhanced(catalogue, enhanced, Lang::En).map(|d| d.title)
        })
}

fn texts(dir: &str, files: &[(&str, &str)]) -> Result<BTreeMap<String, CodeText>, String> {
    let mut texts = BTreeMap::new();
    for (group, text) in files {
        let file: TextFile = data::parse(dir, group, text)?;
        for entry in file.text {
            let code = entry.code.clone();
            if texts.insert(code.clone(), entry).is_some() {
                return Err(format!("{code} has two texts in data/{dir}"));
            }
        }
    }
    Ok(texts)
}
