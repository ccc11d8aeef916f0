//! The pages of the reference and which path shows which: the index of all codes by class,
//! the search (a code or a reply line goes straight to its page), one page per code, a page
//! for a whole reply line (basic and enhanced code with the warnings of `explain`), and the
//! 404 pages that offer the nearest known codes. Comparisons live in `compare.rs`.

use petrel_catalogue::explain::{Explanation, Query, explain, labels, nearest, parse_query};
use petrel_catalogue::{Catalogue, Entry, Lang};

use super::compare;
use super::entry::{
    CLASSES, article, class_rank, code_key, derived_article, provider_article, title,
};
use maud::{Markup, html};

use super::html::{Ctx, code_link, page};
use super::http::{Request, Response};
use super::words::{subject, words};

/// Answers a parsed GET or HEAD request (the caller drops the body for HEAD).
pub fn respond(request: &Request) -> Response {
    // Indonesian pages live under /id/ (`?lang=id` is still understood).
    let (lang, path) = match request.path.strip_prefix("/id") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            (Lang::Id, if rest.is_empty() { "/" } else { rest })
        }
        _ => (
            request
                .param("lang")
                .and_then(Lang::parse)
                .unwrap_or(Lang::En),
            request.path.as_str(),
        ),
    };
    let ctx = Ctx {
        lang,
        path,
        query: &request.query,
    };
    let catalogue = match Catalogue::get() {
        Ok(catalogue) => catalogue,
        Err(error) => return broken(&ctx, &error.0),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        [""] | ["codes"] => Response::redirect(&ctx.location_with("/codes/", &[])),
        ["codes", ""] => Response::html(200, index(&ctx, catalogue)),
        ["codes", code] => code_page(&ctx, catalogue, code),
        ["search"] => search(&ctx, catalogue, request.param("q").unwrap_or("")),
        ["reply", basic, enhanced] => {
            reply_page(&ctx, catalogue, basic, enhanced, request.param("line"))
        }
        ["compare"] | ["compare", ""] => {
            compare::form_page(&ctx, request.param("a"), request.param("b"))
        }
        ["compare", first] => compare::form_page(&ctx, Some(first), None),
        ["compare", first, second] => compare::compare_page(&ctx, catalogue, first, second),
        ["explain"] => super::bounce::form_page(&ctx),
        ["guides"] => Response::redirect(&ctx.location_with("/guides/", &[])),
        ["guides", ""] => super::guides::index(&ctx),
        ["guides", slug] => super::guides::guide_page(&ctx, slug),
        ["glossary"] => super::guides::glossary_page(&ctx),
        _ => not_found(&ctx),
    }
}

/// Answers a POST (the server sends only `/explain` here): the bounce form's message, read
/// and explained.
pub fn respond_post(request: &Request) -> Response {
    let form = request.form();
    let field = |name: &str| super::http::field(&form, name);
    let lang = field("lang")
        .or(request.param("lang"))
        .and_then(Lang::parse)
        .unwrap_or(Lang::En);
    let ctx = Ctx {
        lang,
        path: &request.path,
        query: &request.query,
    };
    let catalogue = match Catalogue::get() {
        Ok(catalogue) => catalogue,
        Err(error) => return broken(&ctx, &error.0),
    };
    super::bounce::answer(&ctx, catalogue, field("message").unwrap_or(""))
}

/// The index: basic codes, then enhanced codes, each grouped by class.
fn index(ctx: &Ctx<'_>, catalogue: &Catalogue) -> String {
    let words = words(ctx.lang);
    let mut entries: Vec<&Entry> = catalogue.entries().collect();
    entries.sort_by_key(|e| code_key(&e.facts.code));
    let (enhanced, basic): (Vec<&Entry>, Vec<&Entry>) = entries
        .into_iter()
        .partition(|e| e.facts.code.contains('.'));
    let body = html! {
        h1 { (words.site) }
        p { (words.intro) }
        (super::guides::index_section(ctx))
        h2 #basic { (words.basic_codes) }
        (class_groups(ctx, &basic, false))
        h2 #enhanced { (words.enhanced_codes) }
        (class_groups(ctx, &enhanced, true))
    };
    page(ctx, words.site, body)
}

/// The entries of one kind under a heading per class (and, for enhanced codes, per subject).
fn class_groups(ctx: &Ctx<'_>, entries: &[&Entry], enhanced: bool) -> Markup {
    if entries.is_empty() {
        return html! { p { (words(ctx.lang).no_codes) } };
    }
    let labels = labels(ctx.lang);
    let kind = if enhanced { "enhanced" } else { "basic" };
    html! {
        @for (rank, class) in CLASSES.iter().enumerate() {
            @let group: Vec<&Entry> = entries
                .iter()
                .copied()
                .filter(|e| class_rank(&e.facts.class) == rank)
                .collect();
            @if let Some(first) = group.first() {
                @let digit = first.facts.code.get(..1).unwrap_or("");
                h3 id={ (kind) "-" (class) } {
                    code { (digit) @if enhanced { ".x.x" } @else { "xx" } }
                    " " (labels.class(class))
                }
                @if enhanced { (subject_groups(ctx, &group)) } @else { (code_list(ctx, &group)) }
            }
        }
    }
}

/// Enhanced codes under a heading per subject (the middle number).
fn subject_groups(ctx: &Ctx<'_>, group: &[&Entry]) -> Markup {
    let subject_of = |e: &Entry| e.facts.code.split('.').nth(1).unwrap_or("").to_owned();
    let mut runs: Vec<(String, &[&Entry])> = Vec::new();
    let mut start = 0;
    while let Some(first) = group.get(start) {
        let current = subject_of(first);
        let length = group[start..]
            .iter()
            .take_while(|e| subject_of(e) == current)
            .count()
            .max(1);
        runs.push((current, &group[start..start + length]));
        start += length;
    }
    html! {
        @for (current, run) in &runs {
            h4 { (subject(ctx.lang, current)) }
            (code_list(ctx, run))
        }
    }
}

/// A list of links to codes with their titles.
pub fn code_list(ctx: &Ctx<'_>, entries: &[&Entry]) -> Markup {
    html! {
        ul.codes {
            @for e in entries { li { (code_link(ctx, &e.facts.code, title(e, ctx.lang))) } }
        }
    }
}

/// A link back to the index of all codes.
fn all_codes(ctx: &Ctx<'_>) -> Markup {
    html! { p { a href=(ctx.href("/codes/")) { (words(ctx.lang).all_codes) } } }
}

/// One code's page, or a 404 with the nearest known codes.
fn code_page(ctx: &Ctx<'_>, catalogue: &Catalogue, code: &str) -> Response {
    let Some(entry) = catalogue.entry(code) else {
        let derived = petrel_catalogue::derive::enhanced(catalogue, code, ctx.lang)
            .or_else(|| petrel_catalogue::derive::basic(catalogue, code, ctx.lang));
        let Some(derived) = derived else {
            return unknown_codes(ctx, catalogue, &[code]);
        };
        let body = html! { (derived_article(ctx, &derived, 1)) (all_codes(ctx)) };
        let title = format!("{} {}", derived.code, derived.title);
        return Response::html(200, page(ctx, &title, body));
    };
    let text = entry.text(ctx.lang);
    let body = html! {
        (article(ctx, entry, 1))
        (super::guides::for_code(ctx, &entry.facts.code))
        (compare::form(ctx, Some(&entry.facts.code), None))
        (all_codes(ctx))
    };
    let title = format!("{} {}", entry.facts.code, text.title);
    Response::html(200, page(ctx, &title, body))
}

/// The search: a code or a reply line redirects to its page; other text lists the entries
/// whose code or title contains it.
fn search(ctx: &Ctx<'_>, catalogue: &Catalogue, q: &str) -> Response {
    let words = words(ctx.lang);
    let q = q.trim();
    if let Some(query) = parse_query(q) {
        let location = match (&query.basic, &query.enhanced) {
            (Some(basic), Some(enhanced)) => {
                ctx.location_with(&format!("/reply/{basic}/{enhanced}"), &[("line", q)])
            }
            (Some(code), None) | (None, Some(code)) => {
                ctx.location_with(&format!("/codes/{code}"), &[])
            }
            (None, None) => ctx.location_with("/codes/", &[]),
        };
        return Response::redirect(&location);
    }
    if q.is_empty() {
        let body = html! { h1 { (words.search) } p { (words.type_something) } };
        return Response::html(200, page(ctx, words.search, body));
    }
    // Full text: every word of the query in the code, title, meaning, when or what to do, in
    // either language; entries whose title holds them all first.
    let needles: Vec<String> = q
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut ranked: Vec<(u8, &Entry)> = catalogue
        .entries()
        .filter_map(|e| {
            let titles = format!(
                "{} {} {}",
                e.facts.code, e.english.title, e.indonesian.title
            )
            .to_lowercase();
            if needles.iter().all(|n| titles.contains(n.as_str())) {
                return Some((0, e));
            }
            let text = [&e.english, &e.indonesian]
                .iter()
                .flat_map(|t| [&t.meaning, &t.when, &t.fix_sender, &t.fix_admin])
                .map(|s| s.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            let all = format!("{titles} {text}");
            needles
                .iter()
                .all(|n| all.contains(n.as_str()))
                .then_some((1, e))
        })
        .collect();
    ranked.sort_by_key(|(rank, e)| (*rank, code_key(&e.facts.code)));
    let matches: Vec<&Entry> = ranked.into_iter().map(|(_, e)| e).collect();
    let found_guides = super::guides::search(ctx, &needles);
    // Looks like a code the reference does not have: offer the nearest ones.
    let looks_like_code = q.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let near: Vec<&Entry> = if matches.is_empty() && found_guides.is_none() && looks_like_code {
        nearest(catalogue, q)
            .iter()
            .filter_map(|c| catalogue.entry(c))
            .collect()
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { (words.results_for) " “" (q) "”" }
        @if let Some(found) = &found_guides { (found) }
        @if !matches.is_empty() {
            (code_list(ctx, &matches))
        } @else if found_guides.is_none() && looks_like_code {
            p { (words.no_results) }
            h2 { (words.nearest) }
            (code_list(ctx, &near))
        } @else if found_guides.is_none() {
            p { (words.no_results) }
            p { (words.type_something) }
        }
    };
    Response::html(200, page(ctx, &format!("{} {q}", words.search), body))
}

/// A reply line's page: both entries and the warnings of `explain`.
fn reply_page(
    ctx: &Ctx<'_>,
    catalogue: &Catalogue,
    basic: &str,
    enhanced: &str,
    line: Option<&str>,
) -> Response {
    let parsed = parse_query(&format!("{basic} {enhanced}"));
    let Some(query) = parsed
        .filter(|q| q.basic.as_deref() == Some(basic) && q.enhanced.as_deref() == Some(enhanced))
    else {
        return not_found(ctx);
    };
    let line = line.map(str::trim).filter(|l| !l.is_empty());
    let query = Query {
        text: line.unwrap_or(&query.text).to_owned(),
        ..query
    };
    let explanation = match explain(catalogue, &query, ctx.lang) {
        Ok(explanation) => explanation,
        Err(_) => return unknown_codes(ctx, catalogue, &[basic, enhanced]),
    };
    let words = words(ctx.lang);
    let body = html! {
        h1 { (words.reply_line) " " code { (basic) " " (enhanced) } }
        @if let Some(line) = line { p.line { (line) } }
        p { (words.reply_parts) }
        (reply_notes(ctx, &explanation))
        @if let Some(provider) = explanation.provider { (provider_article(ctx, provider, 2)) }
        @for entry in [explanation.basic, explanation.enhanced].into_iter().flatten() {
            (article(ctx, entry, 2))
        }
        @for derived in &explanation.derived { (derived_article(ctx, derived, 2)) }
    };
    let title = format!("{} {basic} {enhanced}", words.reply_line);
    Response::html(200, page(ctx, &title, body))
}

/// The warnings of an explanation, and a link comparing its two entries when it has both.
fn reply_notes(ctx: &Ctx<'_>, explanation: &Explanation<'_>) -> Markup {
    let words = words(ctx.lang);
    html! {
        @for warning in &explanation.warnings {
            p.warning role="note" { strong { (words.warning) ":" } " " (warning) }
        }
        @if let (Some(first), Some(second)) = (explanation.basic, explanation.enhanced) {
            p {
                a href=(ctx.href(&format!("/compare/{}/{}", first.facts.code, second.facts.code))) {
                    (words.compare) " " code { (first.facts.code) } " " (words.and) " " code { (second.facts.code) }
                }
            }
        }
    }
}

/// A 404 for codes the reference does not have, each with its nearest known codes.
pub fn unknown_codes(ctx: &Ctx<'_>, catalogue: &Catalogue, codes: &[&str]) -> Response {
    let labels = labels(ctx.lang);
    let words = words(ctx.lang);
    let mut unknown: Vec<&str> = codes
        .iter()
        .copied()
        .filter(|c| catalogue.entry(c).is_none())
        .collect();
    unknown.dedup();
    let shown = |code: &str| html! { code { (code) } };
    let body = html! {
        h1 {
            (labels.unknown) ": "
            @for (index, code) in unknown.iter().enumerate() {
                @if index > 0 { ", " }
                (shown(code))
            }
        }
        @for code in &unknown {
            @let near: Vec<&Entry> = nearest(catalogue, code)
                .iter()
                .filter_map(|c| catalogue.entry(c))
                .collect();
            h2 {
                (words.nearest)
                @if unknown.len() > 1 { ": " (shown(code)) }
            }
            @if near.is_empty() { p { (words.no_codes) } } @else { (code_list(ctx, &near)) }
        }
        (all_codes(ctx))
    };
    let title = format!("{}: {}", labels.unknown, unknown.join(", "));
    Response::html(404, page(ctx, &title, body))
}

/// The 404 for a path that shows nothing.
pub fn not_found(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let body = html! {
        h1 { (words.not_found) }
        p { (words.not_found_text) }
        (all_codes(ctx))
    };
    Response::html(404, page(ctx, words.not_found, body))
}

/// The 500 when the embedded reference does not parse.
fn broken(ctx: &Ctx<'_>, message: &str) -> Response {
    let words = words(ctx.lang);
    let body = html! { h1 { (words.broken) } p.line { (message) } };
    Response::html(500, page(ctx, words.broken, body))
}

/// The page for a request the server refused (400, 405, 408, 431, 505), in English: the
/// request may not have been readable enough to know the language.
pub fn refused(status: u16, reason: &str) -> Response {
    let ctx = Ctx {
        lang: Lang::En,
        path: "/codes/",
        query: &[],
    };
    let heading = format!("{status} {}", super::http::reason(status));
    let body = html! {
        h1 { (heading) }
        p { (reason) "." }
        p { a href="/codes/" { (words(Lang::En).all_codes) } }
    };
    let mut response = Response::html(status, page(&ctx, &heading, body));
    if status == 405 {
        response.headers.push(("Allow", "GET, HEAD".to_owned()));
    }
    response
}
