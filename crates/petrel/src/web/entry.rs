//! One entry of the reference as HTML (maud): its title, class, every text under its label, the
//! defining RFCs as links to rfc-editor.org (with the section anchor when one is given), the
//! related codes with "compare" links. Also the numeric order of codes (5.1.2 before 5.1.10).

use petrel_catalogue::explain::labels;
use petrel_catalogue::{Entry, Lang};

use maud::{Markup, html};

use super::html::{Ctx, code_link, heading, joined, paragraphs};
use super::words::{actor, retry, words};

/// The IANA registry of enhanced status codes, linked from entries that cite it.
const IANA: &str = "https://www.iana.org/assignments/smtp-enhanced-status-codes/";

/// A key that orders codes by their numbers: 250 < 354, 5.1.2 < 5.1.10.
pub fn code_key(code: &str) -> Vec<u32> {
    code.split('.')
        .map(|part| part.parse().unwrap_or(u32::MAX))
        .collect()
}

/// Renders a provider's own meaning of a reply (the provider knowledge) as an `<article>`, with
/// a link to its public source.
pub fn provider_article(
    ctx: &Ctx<'_>,
    provider: &petrel_catalogue::providers::Provider,
    level: u8,
) -> Markup {
    let labels = labels(ctx.lang);
    let text = provider.text(ctx.lang);
    html! {
        article.entry.provider id={ "provider-" (provider.id) } {
            (heading(level, html! { (labels.recognised) ": " (provider.provider) ": " (text.title) }))
            @for (label, value) in [
                (labels.meaning, &text.meaning),
                (labels.fix_sender, &text.fix_sender),
                (labels.fix_admin, &text.fix_admin),
            ] {
                (heading(level + 1, html! { (label) }))
                (paragraphs(value))
            }
            p { (labels.source) ": " a href=(provider.source) rel="noreferrer" { (provider.source) } }
        }
    }
}

/// Renders a code the reference has no entry for, explained from its parts, as an `<article>`
/// with links to the registered codes it was explained from.
pub fn derived_article(
    ctx: &Ctx<'_>,
    derived: &petrel_catalogue::derive::Derived,
    level: u8,
) -> Markup {
    let labels = labels(ctx.lang);
    let links: Vec<Markup> = derived
        .registered
        .iter()
        .map(|code| code_link(ctx, code, ""))
        .collect();
    html! {
        article.entry id={ "code-" (derived.code.replace('.', "-")) } {
            (heading(level, html! { code { (derived.code) } " " (derived.title) }))
            dl.facts {
                dt { (labels.class_label) } dd { (labels.class(derived.class)) }
                dt { (labels.rfc) } dd { (labels.not_in_reference) }
            }
            (heading(level + 1, html! { (labels.meaning) }))
            (paragraphs(&derived.meaning))
            @if !links.is_empty() {
                p { (labels.related) ": " (joined(&links, ", ")) }
            }
        }
    }
}

/// Renders `entry` as an `<article>`, its heading at `level` (2 or 3), its parts one below.
pub fn article(ctx: &Ctx<'_>, entry: &Entry, level: u8) -> Markup {
    let labels = labels(ctx.lang);
    let text = entry.text(ctx.lang);
    let facts = &entry.facts;
    let sub = level + 1;
    html! {
        article.entry id={ "code-" (facts.code.replace('.', "-")) } {
            (heading(level, html! { code { (facts.code) } " " (text.title) }))
            dl.facts {
                dt { (labels.class_label) } dd { (labels.class(&facts.class)) }
                dt { (labels.rfc) } dd { (rfc_links(&facts.rfc)) }
            }
            @for (label, value) in [
                (labels.meaning, &text.meaning),
                (labels.when, &text.when),
                (labels.fix_sender, &text.fix_sender),
                (labels.fix_admin, &text.fix_admin),
            ] {
                (heading(sub, html! { (label) }))
                (paragraphs(value))
            }
            @for (label, tag, value) in [
                (labels.who_acts, actor(ctx.lang, &facts.actor), &text.who_acts),
                (labels.retry, retry(ctx.lang, &facts.retry), &text.retry),
            ] {
                (heading(sub, html! { (label) }))
                p { span.tag { (tag) } " " (value.trim()) }
            }
            (related(ctx, entry, sub))
        }
    }
}

/// The related codes, each with its title and a link comparing it with `entry`.
fn related(ctx: &Ctx<'_>, entry: &Entry, level: u8) -> Markup {
    if entry.facts.related.is_empty() {
        return html! {};
    }
    let catalogue = petrel_catalogue::Catalogue::get().ok();
    let compare = words(ctx.lang).compare;
    html! {
        (heading(level, html! { (labels(ctx.lang).related) }))
        ul.codes {
            @for code in &entry.facts.related {
                @let known = catalogue.and_then(|c| c.entry(code));
                li {
                    (code_link(ctx, code, known.map_or("", |e| e.text(ctx.lang).title.as_str())))
                    @if known.is_some() {
                        " · " a href=(ctx.href(&format!("/compare/{}/{code}", entry.facts.code))) { (compare) }
                    }
                }
            }
        }
    }
}

/// The text of `facts.rfc` with every `RFC NNNN` (and its `§x.y`) as a link to
/// rfc-editor.org; a bare `§x.y` after one links into the same RFC.
pub fn rfc_links(text: &str) -> Markup {
    let mut parts: Vec<Markup> = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    let mut current: Option<String> = None;
    let link = |plain: &mut String, parts: &mut Vec<Markup>, href: String, shown: &str| {
        parts.push(html! { (plain) a href=(href) { (shown) } });
        plain.clear();
    };
    while !rest.is_empty() {
        if let Some((number, section, used)) = rfc_reference(rest) {
            link(
                &mut plain,
                &mut parts,
                rfc_href(&number, section.as_deref()),
                &rest[..used],
            );
            current = Some(number);
            rest = &rest[used..];
        } else if let (Some(number), Some((section, used))) = (&current, section_reference(rest)) {
            link(
                &mut plain,
                &mut parts,
                rfc_href(number, Some(&section)),
                &rest[..used],
            );
            rest = &rest[used..];
        } else if let Some(after) = rest.strip_prefix("IANA registry") {
            link(&mut plain, &mut parts, IANA.to_owned(), "IANA registry");
            rest = after;
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                plain.push(c);
            }
            rest = chars.as_str();
        }
    }
    html! { @for part in &parts { (part) } (plain) }
}

fn rfc_href(number: &str, section: Option<&str>) -> String {
    let fragment = section.map_or(String::new(), |s| format!("#section-{s}"));
    format!("https://www.rfc-editor.org/rfc/rfc{number}{fragment}")
}

/// At the start of `text`: `RFC NNNN` with an optional ` §x.y`; (number, section, bytes used).
fn rfc_reference(text: &str) -> Option<(String, Option<String>, usize)> {
    let after = text
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("rfc"))
        .map(|_| &text[3..])?;
    let spaces = after.len() - after.trim_start_matches(' ').len();
    let digits = leading(&after[spaces..], |c| c.is_ascii_digit());
    if digits == 0 || digits > 5 {
        return None;
    }
    let number = after[spaces..spaces + digits].to_owned();
    let used = 3 + spaces + digits;
    let tail = &text[used..];
    let gap = tail.len() - tail.trim_start_matches(' ').len();
    match section_reference(&tail[gap..]) {
        Some((section, more)) => Some((number, Some(section), used + gap + more)),
        None => Some((number, None, used)),
    }
}

/// At the start of `text`: `§x.y` (maybe `§ x.y`); (section, bytes used).
fn section_reference(text: &str) -> Option<(String, usize)> {
    let after = text.strip_prefix('§')?;
    let spaces = after.len() - after.trim_start_matches(' ').len();
    let body = &after[spaces..];
    let mut length = leading(body, |c| c.is_ascii_digit() || c == '.');
    while body[..length].ends_with('.') {
        length -= 1;
    }
    if length == 0 {
        return None;
    }
    Some((body[..length].to_owned(), '§'.len_utf8() + spaces + length))
}

/// How many bytes at the start of `text` satisfy `accept` (ASCII only).
fn leading(text: &str, accept: impl Fn(char) -> bool) -> usize {
    text.find(|c: char| !accept(c)).unwrap_or(text.len())
}

/// The index of a class in the order positive, intermediate, transient, permanent.
pub fn class_rank(class: &str) -> usize {
    match class {
        "positive" => 0,
        "intermediate" => 1,
        "transient" => 2,
        _ => 3,
    }
}

/// The class names in order, as `facts.class` spells them.
pub const CLASSES: [&str; 4] = ["positive", "intermediate", "transient", "permanent"];

/// An entry's title in `lang`, for lists.
pub fn title(entry: &Entry, lang: Lang) -> &str {
    entry.text(lang).title.as_str()
}
