//! Two codes side by side (`/compare/354/556`): a sentence naming both classes as the RFCs
//! name them, the key differences of `explain::compare` in a two-column table that stacks on a
//! narrow screen (short answers, no sentence repeated), what to do about each side by side,
//! when each applies, and both entries in full. Also the "compare with" form and `/compare?a=…&b=…`, which it
//! sends to (the form works without JavaScript).

use petrel_catalogue::explain::{compare, labels, parse_query, summary};
use petrel_catalogue::{Catalogue, Entry};

use super::entry::{article, rfc_links};
use super::html::{Ctx, code_link, escape, page};
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
    let (title_a, title_b) = (&a.text(ctx.lang).title, &b.text(ctx.lang).title);
    let mut body = format!(
        "<h1>{} <code>{}</code> {} <code>{}</code></h1>\n<ul class=\"codes titles\">\n<li>{}</li>\n<li>{}</li>\n</ul>\n",
        words.compare,
        escape(&a.facts.code),
        words.and,
        escape(&b.facts.code),
        code_link(ctx, &a.facts.code, title_a),
        code_link(ctx, &b.facts.code, title_b),
    );
    body.push_str(&format!(
        "<p class=\"summary\">{}</p>\n",
        escape(&summary(a, b, ctx.lang))
    ));
    body.push_str(&format!(
        "<h2 id=\"differences\">{}</h2>\n{}",
        labels.differences,
        differences(ctx, a, b)
    ));
    let todo_rows = format!(
        "<tr><th scope=\"row\">{}</th>{}{}</tr>\n<tr><th scope=\"row\">{}</th>{}{}</tr>\n",
        labels.fix_sender,
        cell(a, &escape(&a.text(ctx.lang).fix_sender)),
        cell(b, &escape(&b.text(ctx.lang).fix_sender)),
        labels.fix_admin,
        cell(a, &escape(&a.text(ctx.lang).fix_admin)),
        cell(b, &escape(&b.text(ctx.lang).fix_admin)),
    );
    body.push_str(&format!(
        "<h2 id=\"what-to-do\">{}</h2>\n{}",
        words.what_to_do,
        table(ctx, a, b, &todo_rows)
    ));
    let when_rows = format!(
        "<tr><th scope=\"row\">{}</th>{}{}</tr>\n",
        labels.when,
        cell(a, &escape(&a.text(ctx.lang).when)),
        cell(b, &escape(&b.text(ctx.lang).when))
    );
    body.push_str(&format!(
        "<h2 id=\"when\">{}</h2>\n{}",
        labels.when_each,
        table(ctx, a, b, &when_rows)
    ));
    body.push_str(&format!(
        "<h2 id=\"entries\">{}</h2>\n<div class=\"pair\">\n{}{}</div>\n",
        words.full_entries,
        article(ctx, a, 3),
        article(ctx, b, 3)
    ));
    body.push_str(&format!(
        "<p><a href=\"{}\">{} ⇄</a> · <a href=\"{}\">{}</a></p>\n",
        ctx.href(&format!("/compare/{}/{}", b.facts.code, a.facts.code)),
        words.compare,
        ctx.href("/codes/"),
        words.all_codes
    ));
    let title = format!(
        "{} {} {} {}",
        words.compare, a.facts.code, words.and, b.facts.code
    );
    Response::html(200, page(ctx, &title, &body))
}

/// The rows of `explain::compare`: the short who-acts and retry answers (their sentences are
/// in the entries below) and the RFCs as links.
fn differences(ctx: &Ctx<'_>, a: &Entry, b: &Entry) -> String {
    let labels = labels(ctx.lang);
    let mut rows = String::new();
    for row in compare(a, b, ctx.lang) {
        let render = |entry: &Entry, value: &str| {
            if row.label == labels.who_acts {
                escape(&actor(ctx.lang, &entry.facts.actor))
            } else if row.label == labels.retry {
                escape(&retry(ctx.lang, &entry.facts.retry))
            } else if row.label == labels.rfc {
                rfc_links(value)
            } else {
                escape(value)
            }
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{}</th>{}{}</tr>\n",
            escape(row.label),
            cell(a, &render(a, &row.first)),
            cell(b, &render(b, &row.second))
        ));
    }
    table(ctx, a, b, &rows)
}

/// A table with a column per entry; `rows` is the body.
fn table(ctx: &Ctx<'_>, a: &Entry, b: &Entry, rows: &str) -> String {
    format!(
        "<table class=\"cmp\">\n<thead><tr><td></td><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n",
        code_link(ctx, &a.facts.code, ""),
        code_link(ctx, &b.facts.code, ""),
    )
}

/// One cell of `entry`'s column, labelled with its code for the stacked narrow layout.
fn cell(entry: &Entry, html: &str) -> String {
    format!(
        "<td data-label=\"{}\">{html}</td>",
        escape(&entry.facts.code)
    )
}

/// The "compare with" form; `first` fixed when given, `second` prefilled when given.
pub fn form(ctx: &Ctx<'_>, first: Option<&str>, second: Option<&str>) -> String {
    let words = words(ctx.lang);
    let second = escape(second.unwrap_or(""));
    let first_part = match first {
        Some(code) => format!(
            "<input type=\"hidden\" name=\"a\" value=\"{code}\">\n<label for=\"b\">{} <code>{code}</code> {}</label>\n",
            words.compare,
            words.with,
            code = escape(code),
        ),
        None => format!(
            "<label for=\"a\">{}</label>\n<span class=\"row\"><input id=\"a\" name=\"a\" required placeholder=\"556\"></span>\n<label for=\"b\">{}</label>\n",
            words.first_code, words.second_code
        ),
    };
    format!(
        "<form class=\"compare\" action=\"/compare\" method=\"get\">\n{first_part}<span class=\"row\"><input id=\"b\" name=\"b\" required value=\"{second}\" placeholder=\"{hint}\">{lang}<button type=\"submit\">{compare}</button></span>\n</form>\n",
        hint = words.compare_hint,
        lang = ctx.lang_field(),
        compare = words.compare,
    )
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
    let body = format!(
        "<h1>{}</h1>\n{}<p><a href=\"{}\">{}</a></p>\n",
        words.compare_title,
        form(ctx, pick(first).as_deref(), pick(second).as_deref()),
        ctx.href("/codes/"),
        words.all_codes
    );
    Response::html(200, page(ctx, words.compare_title, &body))
}
