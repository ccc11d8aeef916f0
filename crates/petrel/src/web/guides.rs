//! The guides (`/guides/`, `/guides/<slug>`) and the glossary (`/glossary`) of the reference,
//! and the "guides" box of a code page (issue 17, item 4).

use petrel_catalogue::Lang;
use petrel_catalogue::guides::{Guide, glossary, guide, guides, guides_for, terms_for};

use maud::{Markup, html};

use super::html::{Ctx, code_link, joined, page};
use super::http::Response;
use super::markdown;
use super::pages::not_found;

struct Words {
    guides: &'static str,
    glossary: &'static str,
    glossary_intro: &'static str,
    codes: &'static str,
    read_more: &'static str,
    in_other: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            guides: "Guides",
            glossary: "Glossary",
            glossary_intro: "The terms this reference uses, each with the Indonesian term the Indonesian pages use for it.",
            codes: "Codes this guide explains",
            read_more: "Read more",
            in_other: "Indonesian",
        },
        Lang::Id => Words {
            guides: "Panduan",
            glossary: "Glosarium",
            glossary_intro: "Istilah yang dipakai referensi ini, masing-masing dengan istilah bahasa Inggrisnya.",
            codes: "Kode yang dijelaskan panduan ini",
            read_more: "Baca selengkapnya",
            in_other: "Inggris",
        },
    }
}

/// The labels of the guides and the glossary, for the index and the header.
pub fn titles(lang: Lang) -> (&'static str, &'static str) {
    let words = words(lang);
    (words.guides, words.glossary)
}

/// A list of guides with their summaries.
fn list(ctx: &Ctx<'_>, guides: &[&Guide]) -> Markup {
    html! {
        ul.guides {
            @for guide in guides {
                @let text = guide.text(ctx.lang);
                li { a href=(ctx.href(&format!("/guides/{}", guide.slug))) { (text.title) } ": " (text.summary) }
            }
        }
    }
}

/// `/guides/`: every guide, then the glossary.
pub fn index(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let all: Vec<&Guide> = guides().map(|g| g.iter().collect()).unwrap_or_default();
    let body = html! {
        h1 { (words.guides) }
        (list(ctx, &all))
        p { a href=(ctx.href("/glossary")) { (words.glossary) } }
    };
    Response::html(200, page(ctx, words.guides, body))
}

/// The guides in the index of the codes.
pub fn index_section(ctx: &Ctx<'_>) -> Markup {
    let words = words(ctx.lang);
    let all: Vec<&Guide> = guides().map(|g| g.iter().collect()).unwrap_or_default();
    html! {
        h2 #guides { (words.guides) }
        (list(ctx, &all))
        p { a href=(ctx.href("/glossary")) { (words.glossary) } }
    }
}

/// `/guides/<slug>`.
pub fn guide_page(ctx: &Ctx<'_>, slug: &str) -> Response {
    let Some(guide) = guide(slug) else {
        return not_found(ctx);
    };
    let words = words(ctx.lang);
    let text = guide.text(ctx.lang);
    let links: Vec<Markup> = guide
        .codes
        .iter()
        .map(|code| code_link(ctx, code, ""))
        .collect();
    let body = html! {
        article.guide {
            h1 { (text.title) }
            p.summary { (text.summary) }
            (markdown::render(ctx, &text.body))
            @if !links.is_empty() {
                h2 #codes { (words.codes) }
                p { (joined(&links, ", ")) }
            }
        }
        p {
            a href=(ctx.href("/guides/")) { (words.guides) }
            " · "
            a href=(ctx.href("/glossary")) { (words.glossary) }
        }
    };
    Response::html(200, page(ctx, &text.title, body))
}

/// `/glossary`: every term, its definition, and its term in the other language.
pub fn glossary_page(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let other_lang = match ctx.lang {
        Lang::En => "id",
        Lang::Id => "en",
    };
    let body = html! {
        h1 { (words.glossary) }
        p { (words.glossary_intro) }
        dl.glossary {
            @for term in glossary().unwrap_or_default() {
                @let (name, definition) = term.in_lang(ctx.lang);
                @let other = match ctx.lang {
                    Lang::En => &term.indonesian,
                    Lang::Id => &term.english,
                };
                @let codes: Vec<Markup> = term.codes.iter().map(|code| code_link(ctx, code, "")).collect();
                dt id=(term.key) {
                    (name) " "
                    span.other lang=(other_lang) { "(" (words.in_other) ": " (other) ")" }
                }
                dd {
                    (definition)
                    @if !codes.is_empty() { " " (joined(&codes, ", ")) }
                }
            }
        }
    };
    Response::html(200, page(ctx, words.glossary, body))
}

/// The guides and glossary terms whose text holds every one of `needles` (lower-case), in
/// either language, as a list for the search page; `None` when none does.
pub fn search(ctx: &Ctx<'_>, needles: &[String]) -> Option<Markup> {
    let has_all = |texts: &[&str]| {
        let all = texts.join(" ").to_lowercase();
        needles.iter().all(|n| all.contains(n.as_str()))
    };
    let found: Vec<&Guide> = guides()
        .unwrap_or_default()
        .iter()
        .filter(|g| {
            has_all(&[
                &g.english.title,
                &g.english.summary,
                &g.english.body,
                &g.indonesian.title,
                &g.indonesian.summary,
                &g.indonesian.body,
            ])
        })
        .collect();
    let terms: Vec<Markup> = glossary()
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            has_all(&[
                &t.english,
                &t.indonesian,
                &t.english_definition,
                &t.indonesian_definition,
            ])
        })
        .map(|t| term_link(ctx, t))
        .collect();
    if found.is_empty() && terms.is_empty() {
        return None;
    }
    let words = words(ctx.lang);
    Some(html! {
        @if !found.is_empty() {
            h2 { (words.guides) }
            (list(ctx, &found))
        }
        @if !terms.is_empty() {
            h2 { (words.glossary) }
            p { (joined(&terms, ", ")) }
        }
    })
}

/// A link to `term` in the glossary, named in the page's language.
fn term_link(ctx: &Ctx<'_>, term: &petrel_catalogue::guides::Term) -> Markup {
    html! {
        a href={ (ctx.href("/glossary")) "#" (term.key) } { (term.in_lang(ctx.lang).0) }
    }
}

/// The box of a code page: the guides that explain the code and the glossary terms about it.
pub fn for_code(ctx: &Ctx<'_>, code: &str) -> Markup {
    let words = words(ctx.lang);
    let guides = guides_for(code);
    let terms: Vec<Markup> = terms_for(code).iter().map(|t| term_link(ctx, t)).collect();
    html! {
        @if !guides.is_empty() || !terms.is_empty() {
            aside.guides {
                h2 { (words.read_more) }
                @if !guides.is_empty() { (list(ctx, &guides)) }
                @if !terms.is_empty() { p { (words.glossary) ": " (joined(&terms, ", ")) } }
            }
        }
    }
}
