//! The guides (`/guides/`, `/guides/<slug>`) and the glossary (`/glossary`) of the reference,
//! and the "guides" box of a code page (issue 17, item 4).

use petrel_catalogue::Lang;
use petrel_catalogue::guides::{Guide, glossary, guide, guides, guides_for, terms_for};

use super::html::{Ctx, code_link, escape, page};
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
fn list(ctx: &Ctx<'_>, guides: &[&Guide]) -> String {
    let mut out = String::from("<ul class=\"guides\">\n");
    for guide in guides {
        let text = guide.text(ctx.lang);
        out.push_str(&format!(
            "<li><a href=\"{}\">{}</a>: {}</li>\n",
            ctx.href(&format!("/guides/{}", guide.slug)),
            escape(&text.title),
            escape(&text.summary)
        ));
    }
    out.push_str("</ul>\n");
    out
}

/// `/guides/`: every guide, then the glossary.
pub fn index(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let all: Vec<&Guide> = guides().map(|g| g.iter().collect()).unwrap_or_default();
    let body = format!(
        "<h1>{}</h1>\n{}<p><a href=\"{}\">{}</a></p>\n",
        words.guides,
        list(ctx, &all),
        ctx.href("/glossary"),
        words.glossary
    );
    Response::html(200, page(ctx, words.guides, &body))
}

/// The guides in the index of the codes.
pub fn index_section(ctx: &Ctx<'_>) -> String {
    let words = words(ctx.lang);
    let all: Vec<&Guide> = guides().map(|g| g.iter().collect()).unwrap_or_default();
    format!(
        "<h2 id=\"guides\">{}</h2>\n{}<p><a href=\"{}\">{}</a></p>\n",
        words.guides,
        list(ctx, &all),
        ctx.href("/glossary"),
        words.glossary
    )
}

/// `/guides/<slug>`.
pub fn guide_page(ctx: &Ctx<'_>, slug: &str) -> Response {
    let Some(guide) = guide(slug) else {
        return not_found(ctx);
    };
    let words = words(ctx.lang);
    let text = guide.text(ctx.lang);
    let mut body = format!(
        "<article class=\"guide\">\n<h1>{}</h1>\n<p class=\"summary\">{}</p>\n{}",
        escape(&text.title),
        escape(&text.summary),
        markdown::render(ctx, &text.body)
    );
    if !guide.codes.is_empty() {
        let links: Vec<String> = guide
            .codes
            .iter()
            .map(|code| code_link(ctx, code, ""))
            .collect();
        body.push_str(&format!(
            "<h2 id=\"codes\">{}</h2>\n<p>{}</p>\n",
            words.codes,
            links.join(", ")
        ));
    }
    body.push_str(&format!(
        "</article>\n<p><a href=\"{}\">{}</a> · <a href=\"{}\">{}</a></p>\n",
        ctx.href("/guides/"),
        words.guides,
        ctx.href("/glossary"),
        words.glossary
    ));
    Response::html(200, page(ctx, &text.title, &body))
}

/// `/glossary`: every term, its definition, and its term in the other language.
pub fn glossary_page(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<dl class=\"glossary\">\n",
        words.glossary, words.glossary_intro
    );
    for term in glossary().unwrap_or_default() {
        let (name, definition) = term.in_lang(ctx.lang);
        let other = match ctx.lang {
            Lang::En => &term.indonesian,
            Lang::Id => &term.english,
        };
        let codes: Vec<String> = term
            .codes
            .iter()
            .map(|code| code_link(ctx, code, ""))
            .collect();
        body.push_str(&format!(
            "<dt id=\"{}\">{} <span class=\"other\" lang=\"{}\">({}: {})</span></dt>\n<dd>{}{}</dd>\n",
            escape(&term.key),
            escape(name),
            match ctx.lang {
                Lang::En => "id",
                Lang::Id => "en",
            },
            words.in_other,
            escape(other),
            escape(definition),
            if codes.is_empty() {
                String::new()
            } else {
                format!(" {}", codes.join(", "))
            }
        ));
    }
    body.push_str("</dl>\n");
    Response::html(200, page(ctx, words.glossary, &body))
}

/// The guides and glossary terms whose text holds every one of `needles` (lower-case), in
/// either language, as a list for the search page; empty when none does.
pub fn search(ctx: &Ctx<'_>, needles: &[String]) -> String {
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
    let terms: Vec<String> = glossary()
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
    let words = words(ctx.lang);
    let mut out = String::new();
    if !found.is_empty() {
        out.push_str(&format!("<h2>{}</h2>\n{}", words.guides, list(ctx, &found)));
    }
    if !terms.is_empty() {
        out.push_str(&format!(
            "<h2>{}</h2>\n<p>{}</p>\n",
            words.glossary,
            terms.join(", ")
        ));
    }
    out
}

/// A link to `term` in the glossary, named in the page's language.
fn term_link(ctx: &Ctx<'_>, term: &petrel_catalogue::guides::Term) -> String {
    format!(
        "<a href=\"{}#{}\">{}</a>",
        ctx.href("/glossary"),
        escape(&term.key),
        escape(term.in_lang(ctx.lang).0)
    )
}

/// The box of a code page: the guides that explain the code and the glossary terms about it.
pub fn for_code(ctx: &Ctx<'_>, code: &str) -> String {
    let words = words(ctx.lang);
    let guides = guides_for(code);
    let terms = terms_for(code);
    if guides.is_empty() && terms.is_empty() {
        return String::new();
    }
    let mut out = format!("<aside class=\"guides\">\n<h2>{}</h2>\n", words.read_more);
    if !guides.is_empty() {
        out.push_str(&list(ctx, &guides));
    }
    if !terms.is_empty() {
        let links: Vec<String> = terms.iter().map(|t| term_link(ctx, t)).collect();
        out.push_str(&format!(
            "<p>{}: {}</p>\n",
            words.glossary,
            links.join(", ")
        ));
    }
    out.push_str("</aside>\n");
    out
}
