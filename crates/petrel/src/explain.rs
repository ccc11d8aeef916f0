//! `petrel explain CODE [CODE]`: what a reply code, an enhanced status code or a whole reply
//! line means, when you see it, how to fix it; two codes side by side with their key
//! differences. `--lang id` for Indonesian, `--json` for scripts; exit 2 for an unknown code,
//! with the nearest known ones.

use std::process::ExitCode;

use clap::Args;
use petrel_catalogue::derive::Derived;
use petrel_catalogue::explain::{Explanation, compare, explain, labels, parse_query};
use petrel_catalogue::providers::Provider;
use petrel_catalogue::{Catalogue, Entry, Lang};
use serde_json::json;

/// Arguments of `petrel explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A code (556, 5.1.10) or a whole reply line in quotes; give two to compare.
    #[arg(num_args = 1..=2, required_unless_present = "message")]
    codes: Vec<String>,
    /// A whole bounce message to read (a file, or - for standard input): each failed
    /// recipient with its status, remote server and reply, explained.
    #[arg(long, value_name = "FILE", conflicts_with = "codes")]
    message: Option<std::path::PathBuf>,
    /// Language: en or id.
    #[arg(long, default_value = "en")]
    lang: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command; exit 2 for an unknown code.
pub fn run(args: &ExplainArgs) -> ExitCode {
    match explain_all(args) {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("petrel: {message}");
            ExitCode::from(code)
        }
    }
}

/// `petrel explain QUERY --json --lang LANG`'s text, for the HTTP API.
///
/// # Errors
/// As the command: 2 for an unknown code, 1 for a bad language.
pub fn as_json(query: &str, lang: &str) -> Result<String, (u8, String)> {
    explain_all(&ExplainArgs {
        codes: vec![query.to_owned()],
        message: None,
        lang: lang.to_owned(),
        json: true,
    })
}

fn explain_all(args: &ExplainArgs) -> Result<String, (u8, String)> {
    let lang =
        Lang::parse(&args.lang).ok_or((1, format!("--lang {:?}: use en or id", args.lang)))?;
    let catalogue =
        Catalogue::get().map_err(|e| (1, format!("the reference does not load: {e}")))?;
    if let Some(path) = &args.message {
        return read_bounce(path, catalogue, lang, args.json);
    }
    let mut explanations = Vec::new();
    for code in &args.codes {
        let Some(query) = parse_query(code) else {
            return Err((2, format!("{code:?} {}", labels(lang).not_a_code)));
        };
        let explanation = explain(catalogue, &query, lang).map_err(|nearest| {
            (
                2,
                format!(
                    "{}: {code}. {}: {}",
                    labels(lang).unknown,
                    labels(lang).nearest,
                    nearest.join(", ")
                ),
            )
        })?;
        explanations.push(explanation);
    }
    Ok(match (args.json, explanations.as_slice()) {
        (true, [one]) => format!("{:#}\n", explanation_json(one, lang)),
        (true, [first, second]) => {
            let value = json!({"first": explanation_json(first, lang), "second": explanation_json(second, lang), "differences": differences_json(first, second, lang)});
            format!("{value:#}\n")
        }
        (false, [one]) => render(one, lang),
        (false, [first, second]) => render_comparison(first, second, lang),
        _ => String::new(),
    })
}

/// `--message FILE`: the bounce in FILE (or on standard input for `-`), explained; exit 2 when
/// it names no recipient.
fn read_bounce(
    path: &std::path::Path,
    catalogue: &Catalogue,
    lang: Lang,
    as_json: bool,
) -> Result<String, (u8, String)> {
    /// Bounces larger than this are refused: a bounce carries a copy of one message at most.
    const LIMIT: u64 = 64 * 1024 * 1024;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), LIMIT),
            &mut bytes,
        )
    } else {
        std::fs::File::open(path).and_then(|file| {
            std::io::Read::read_to_end(&mut std::io::Read::take(file, LIMIT), &mut bytes)
        })
    };
    read.map_err(|e| (1, format!("{}: {e}", path.display())))?;
    let Some(bounce) = crate::bounce::read(&bytes) else {
        return Err((
            2,
            match lang {
                Lang::En => format!(
                    "{}: no failed or delayed recipient found; is it a bounce (a delivery status notification)?",
                    path.display()
                ),
                Lang::Id => format!(
                    "{}: tidak ditemukan penerima yang gagal atau tertunda; apakah ini pesan pentalan (pemberitahuan status pengiriman)?",
                    path.display()
                ),
            },
        ));
    };
    Ok(if as_json {
        format!(
            "{:#}\n",
            crate::bounce::report::json(&bounce, catalogue, lang)
        )
    } else {
        crate::bounce::report::text(&bounce, catalogue, lang)
    })
}

/// The entry a comparison uses for one side: the enhanced one if given, else the basic one.
fn main_entry<'a>(explanation: &Explanation<'a>) -> Option<&'a Entry> {
    explanation.enhanced.or(explanation.basic)
}

fn render(explanation: &Explanation<'_>, lang: Lang) -> String {
    let mut out = String::new();
    for warning in &explanation.warnings {
        out.push_str(&format!("! {warning}\n\n"));
    }
    if let Some(provider) = explanation.provider {
        out.push_str(&render_provider(provider, lang));
        out.push('\n');
    }
    for entry in [explanation.basic, explanation.enhanced]
        .into_iter()
        .flatten()
    {
        out.push_str(&render_entry(entry, lang));
        out.push('\n');
    }
    for derived in &explanation.derived {
        out.push_str(&render_derived(derived, lang));
        out.push('\n');
    }
    out
}

/// A provider's own meaning of the reply, from its entry in the provider knowledge.
pub(crate) fn render_provider(provider: &Provider, lang: Lang) -> String {
    let labels = labels(lang);
    let text = provider.text(lang);
    format!(
        "{}: {}: {}\n  {}:\n    {}\n  {}:\n    {}\n  {}:\n    {}\n  {}: {}\n",
        labels.recognised,
        provider.provider,
        text.title,
        labels.meaning,
        text.meaning,
        labels.fix_sender,
        text.fix_sender,
        labels.fix_admin,
        text.fix_admin,
        labels.source,
        provider.source
    )
}

/// A provider entry as JSON.
pub(crate) fn provider_json(provider: &Provider, lang: Lang) -> serde_json::Value {
    let text = provider.text(lang);
    json!({
        "id": provider.id,
        "provider": provider.provider,
        "title": text.title,
        "meaning": text.meaning,
        "fix_sender": text.fix_sender,
        "fix_admin": text.fix_admin,
        "source": provider.source,
    })
}

fn render_derived(derived: &Derived, lang: Lang) -> String {
    let labels = labels(lang);
    let mut out = format!("{} {}\n", derived.code, derived.title);
    out.push_str(&format!(
        "  {}: {}   {}: {}\n",
        labels.class_label,
        labels.class(derived.class),
        labels.rfc,
        labels.not_in_reference
    ));
    out.push_str(&format!("  {}:\n    {}\n", labels.meaning, derived.meaning));
    if !derived.registered.is_empty() {
        out.push_str(&format!(
            "  {}: {}\n",
            labels.related,
            derived.registered.join(", ")
        ));
    }
    out
}

fn render_entry(entry: &Entry, lang: Lang) -> String {
    let labels = labels(lang);
    let text = entry.text(lang);
    let mut out = format!("{} {}\n", entry.facts.code, text.title);
    out.push_str(&format!(
        "  {}: {}   {}: {}\n",
        labels.class_label,
        labels.class(&entry.facts.class),
        labels.rfc,
        entry.facts.rfc
    ));
    for (label, value) in [
        (labels.meaning, &text.meaning),
        (labels.when, &text.when),
        (labels.fix_sender, &text.fix_sender),
        (labels.fix_admin, &text.fix_admin),
        (labels.who_acts, &text.who_acts),
        (labels.retry, &text.retry),
    ] {
        out.push_str(&format!("  {label}:\n    {value}\n"));
    }
    if !entry.facts.related.is_empty() {
        out.push_str(&format!(
            "  {}: {}\n",
            labels.related,
            entry.facts.related.join(", ")
        ));
    }
    out
}

fn render_comparison(first: &Explanation<'_>, second: &Explanation<'_>, lang: Lang) -> String {
    let labels = labels(lang);
    let (Some(a), Some(b)) = (main_entry(first), main_entry(second)) else {
        // A side the reference has no entry for: each explained on its own.
        return format!("{}{}", render(first, lang), render(second, lang));
    };
    let mut out = format!(
        "{} {}\n    vs\n{} {}\n\n{}\n\n{}:\n",
        a.facts.code,
        a.text(lang).title,
        b.facts.code,
        b.text(lang).title,
        petrel_catalogue::explain::summary(a, b, lang),
        labels.differences
    );
    for row in compare(a, b, lang) {
        out.push_str(&format!(
            "  {}\n    {}: {}\n    {}: {}\n",
            row.label, a.facts.code, row.first, b.facts.code, row.second
        ));
    }
    out.push_str(&format!(
        "\n{}:\n  {}: {}\n  {}: {}\n\n",
        labels.when_each,
        a.facts.code,
        a.text(lang).when,
        b.facts.code,
        b.text(lang).when
    ));
    out.push_str(&render(first, lang));
    out.push_str(&render(second, lang));
    out
}

fn entry_json(entry: &Entry, lang: Lang) -> serde_json::Value {
    let text = entry.text(lang);
    json!({
        "code": entry.facts.code,
        "title": text.title,
        "class": entry.facts.class,
        "rfc": entry.facts.rfc,
        "actor": entry.facts.actor,
        "retry_helps": entry.facts.retry,
        "meaning": text.meaning,
        "when": text.when,
        "fix_sender": text.fix_sender,
        "fix_admin": text.fix_admin,
        "who_acts": text.who_acts,
        "retry": text.retry,
        "related": entry.facts.related,
    })
}

/// The JSON object of one explanation (also each recipient's in `--message`).
pub(crate) fn explanation_json(explanation: &Explanation<'_>, lang: Lang) -> serde_json::Value {
    json!({
        "query": explanation.query.text,
        "lang": lang.as_str(),
        "basic": explanation.basic.map(|e| entry_json(e, lang)),
        "enhanced": explanation.enhanced.map(|e| entry_json(e, lang)),
        "derived": explanation.derived.iter().map(|d| json!({
            "code": d.code,
            "title": d.title,
            "class": d.class,
            "meaning": d.meaning,
            "registered": d.registered,
            "registered_detail": d.is_registered_detail,
        })).collect::<Vec<_>>(),
        "provider": explanation.provider.map(|p| provider_json(p, lang)),
        "warnings": explanation.warnings,
    })
}

fn differences_json(
    first: &Explanation<'_>,
    second: &Explanation<'_>,
    lang: Lang,
) -> serde_json::Value {
    match (main_entry(first), main_entry(second)) {
        (Some(a), Some(b)) => json!(
            compare(a, b, lang)
                .iter()
                .map(|d| json!({"label": d.label, "first": d.first, "second": d.second}))
                .collect::<Vec<_>>()
        ),
        _ => json!([]),
    }
}
