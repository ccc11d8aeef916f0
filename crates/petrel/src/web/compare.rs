//! Two codes side by side (`/compare/354/556`): a sentence naming both classes as the RFCs
//! name them, the key differences of `explain::compare` in a two-column table that stacks on a
//! narrow screen (short answers, no sentence repeated), what to do about each side by side,
//! when each applies, and both entries in full. Also the "compare with" form and `/compare?a=…&b=…`, which it
//! sends to (the form works without JavaScript).

use petrel_catalogue::explain::{compare, labels, parse_query, summary};
use petrel_catalogue::{Catalogue, Entry};

use super::entry::{article, rfc_links};
use maud::{Markup, html};

use super::html::{Ctx, code_link, page};
use super::http::Response;
use super::pages::unknown_codes;
use super::words::{actor, retry, words};

/// The comparison page, or a 404 naming the unknown code(s) with the nearest known ones.
pub fn compare_page(ctx: &Ctx<'_>, catalogue: &Catalogue, first: &str, second: &str) -> Response {
    let (Some(a), Some(b)) = (catalogue.entry(first), catalogue.entry(second)) else {
        return unknown_codes(ctx, catalogue, &[first, second]);
    };
    let words = words(ctx.lang);
    let labels = labels(ctx.lang);
    let (text_a, text_b) = (a.text(ctx.lang), b.text(ctx.lang));
    let row = |label: &str, first: Markup, second: Markup| {
        html! { tr { th scope="row" { (label) } (cell(a, first)) (cell(b, second)) } }
    };
    let body = html! {
        h1 { (words.compare) " " code { (a.facts.code) } " " (words.and) " " code { (b.facts.code) } }
        ul.codes.titles {
            li { (code_link(ctx, &a.facts.code, &text_a.title)) }
            li { (code_link(ctx, &b.facts.code, &text_b.title)) }
        }
        p.summary { (summary(a, b, ctx.lang)) }
        h2 #differences { (labels.differences) }
        (differences(ctx, a, b))
        h2 #what-to-do { (words.what_to_do) }
        (table(ctx, a, b, html! {
            (row(labels.fix_sender, html! { (text_a.fix_sender) }, html! { (text_b.fix_sender) }))
            (row(labels.fix_admin, html! { (text_a.fix_admin) }, html! { (text_b.fix_admin) }))
        }))
        h2 #when { (labels.when_each) }
        (table(ctx, a, b, row(labels.when, html! { (text_a.when) }, html! { (text_b.when) })))
        h2 #entries { (words.full_entries) }
        div.pair { (article(ctx, a, 3)) (article(ctx, b, 3)) }
        p {
            a href=(ctx.href(&format!("/compare/{}/{}", b.facts.code, a.facts.code))) { (words.compare) " ⇄" }
            " · "
            a href=(ctx.href("/codes/")) { (words.all_codes) }
        }
    };
    let title = format!(
        "{} {} {} {}",
        words.compare, a.facts.code, words.and, b.facts.code
    );
    Response::html(200, page(ctx, &title, body))
}

/// The rows of `explain::compare`: the short who-acts and retry answers (their sentences are
/// in the entries below) and the RFCs as links.
fn differences(ctx: &Ctx<'_>, a: &Entry, b: &Entry) -> Markup {
    let labels = labels(ctx.lang);
    let rows = compare(a, b, ctx.lang);
    let render = |label: &str, entry: &Entry, value: &str| {
        if label == labels.who_acts {
            html! { (actor(ctx.lang, &entry.facts.actor)) }
        } else if label == labels.retry {
            html! { (retry(ctx.lang, &entry.facts.retry)) }
        } else if label == labels.rfc {
            rfc_links(value)
        } else {
            html! { (value) }
        }
    };
    table(
        ctx,
        a,
        b,
        html! {
            @for row in &rows {
                tr {
                    th scope="row" { (row.label) }
                    (cell(a, render(row.label, a, &row.first)))
                    (cell(b, render(row.label, b, &row.second)))
                }
            }
        },
    )
}

/// A table with a column per entry; `rows` is the body.
fn table(ctx: &Ctx<'_>, a: &Entry, b: &Entry, rows: Markup) -> Markup {
    html! {
        table.cmp {
            thead { tr { td {} th scope="col" { (code_link(ctx, &a.facts.code, "")) } th scope="col" { (code_link(ctx, &b.facts.code, "")) } } }
            tbody { (rows) }
        }
    }
}

/// One cell of `entry`'s column, labelled with its code for the stacked narrow layout.
fn cell(entry: &Entry, content: Markup) -> Markup {
    html! { td data-label=(entry.facts.code) { (content) } }
}

/// The "compare with" form; `first` fixed when given, `second` prefilled when given.
pub fn form(ctx: &Ctx<'_>, first: Option<&str>, second: Option<&str>) -> Markup {
    let words = words(ctx.lang);
    html! {
        form.compare action="/compare" method="get" {
            @match first {
                Some(code) => {
                    input type="hidden" name="a" value=(code);
                    label for="b" { (words.compare) " " code { (code) } " " (words.with) }
                }
                None => {
                    label for="a" { (words.first_code) }
                    span.row { input #a name="a" required placeholder="556"; }
                    label for="b" { (words.second_code) }
                }
            }
            span.row {
                input #b name="b" required value=(second.unwrap_or("")) placeholder=(words.compare_hint);
                (ctx.lang_field())
                button type="submit" { (words.compare) }
            }
        }
    }
}

/// `/compare`: redirects to `/compare/A/B` when the form gave both codes (each may be a
/// reply line: its enhanced code counts, else its basic one), else shows the form.
pub fn form_page(ctx: &Ctx<'_>, first: Option<&str>, second: Option<&str>) -> Response {
    let pick = |text: Option<&str>| {
        let text = text.map(str::trim).filter(|t| !t.is_empty())?;
        Some(match parse_query(text) {
            Some(query) => query.enhanced.or(query.basic).unwrap_or_default(),
            None => text.to_owned(),
        })
    };
    if let (Some(a), Some(b)) = (pick(first), pick(second)) {
        return Response::redirect(&ctx.location_with(&format!("/compare/{a}/{b}"), &[]));
    }
    let words = words(ctx.lang);
    let body = html! {
        h1 { (words.compare_title) }
        (form(ctx, pick(first).as_deref(), pick(second).as_deref()))
        p { a href=(ctx.href("/codes/")) { (words.all_codes) } }
    };
    Response::html(200, page(ctx, words.compare_title, body))
}
