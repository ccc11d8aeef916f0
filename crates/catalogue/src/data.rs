//! The reference data files, embedded at build time, and their parsing.
//!
//! Layout: `data/codes/<group>.toml` holds the language-neutral facts of each code (class, RFC,
//! who acts, whether retrying helps, related codes); `data/<lang>/<group>.toml` holds the texts.
//! The files are ours, not peer input; a file that does not parse is an error the caller
//! reports (the test suite keeps them parseable).

use serde::Deserialize;

/// The groups, each a file in `codes/`, `en/` and `id/`.
pub const GROUPS: &[&str] = &["basic", "x0-x1", "x2-x3", "x4-x5", "x6", "x7a", "x7b"];

macro_rules! embedded {
    ($dir:literal) => {
        [
            (
                "basic",
                include_str!(concat!("../data/", $dir, "/basic.toml")),
            ),
            (
                "x0-x1",
                include_str!(concat!("../data/", $dir, "/x0-x1.toml")),
            ),
            (
                "x2-x3",
                include_str!(concat!("../data/", $dir, "/x2-x3.toml")),
            ),
            (
                "x4-x5",
                include_str!(concat!("../data/", $dir, "/x4-x5.toml")),
            ),
            ("x6", include_str!(concat!("../data/", $dir, "/x6.toml"))),
            ("x7a", include_str!(concat!("../data/", $dir, "/x7a.toml"))),
            ("x7b", include_str!(concat!("../data/", $dir, "/x7b.toml"))),
        ]
    };
}

/// (group, file text) of the language-neutral facts.
pub const CODES: [(&str, &str); 7] = embedded!("codes");
/// (group, file text) of the English texts.
pub const ENGLISH: [(&str, &str); 7] = embedded!("en");
/// (group, file text) of the Indonesian texts.
pub const INDONESIAN: [(&str, &str); 7] = embedded!("id");

/// A `codes/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodesFile {
    #[serde(default)]
    pub code: Vec<CodeFacts>,
}

/// The facts of one code that do not depend on the language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeFacts {
    /// `556` or `5.1.10`.
    pub code: String,
    /// positive | intermediate | transient | permanent.
    pub class: String,
    /// The defining RFC section(s), e.g. `RFC 7505 §4.1`.
    pub rfc: String,
    /// Who must act: sender | sender-admin | recipient | recipient-admin | client | nobody.
    pub actor: String,
    /// Whether retrying the same thing can help: yes | no | after-fix.
    pub retry: String,
    /// Codes a reader should look at next.
    #[serde(default)]
    pub related: Vec<String>,
}

/// A `<lang>/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextFile {
    #[serde(default)]
    pub text: Vec<CodeText>,
}

/// The words about one code, in one language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeText {
    pub code: String,
    /// A short title.
    pub title: String,
    /// What the code means.
    pub meaning: String,
    /// When you see it in practice.
    pub when: String,
    /// What the sender (the person who wrote the mail) can do.
    pub fix_sender: String,
    /// What a mail administrator can do.
    pub fix_admin: String,
    /// Who must act, in a sentence.
    pub who_acts: String,
    /// Whether retrying helps, in a sentence.
    pub retry: String,
}

/// Parses one embedded file; the error names it.
///
/// # Errors
/// The TOML error with the file's name.
pub fn parse<T: serde::de::DeserializeOwned>(
    dir: &str,
    group: &str,
    text: &str,
) -> Result<T, String> {
    toml::from_str(text).map_err(|e| format!("data/{dir}/{group}.toml: {e}"))
}
