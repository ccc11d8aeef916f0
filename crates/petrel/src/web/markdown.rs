//! The Markdown subset of the guides, to HTML: paragraphs (split at blank lines), `## `
//! headings, `- ` lists, `code` spans and [text](target) links to our own pages or to https
//! sites. Everything else is text, escaped by construction (maud): no HTML from the data
//! reaches the page as markup.

use maud::{Markup, html};

use super::html::Ctx;

/// Renders `text`; internal links keep the page's language.
pub fn render(ctx: &Ctx<'_>, text: &str) -> Markup {
    let blocks: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    html! {
        @for block in blocks {
            @if let Some(heading) = block.strip_prefix("## ") {
                @let id: String = heading
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_alphanumeric() { c } else { '-' })
                    .collect();
                h2 id=(id.trim_matches('-')) { (inline(ctx, heading)) }
            } @else if block.starts_with("- ") {
                ul {
                    @for item in items(block) { li { (inline(ctx, &item)) } }
                }
            } @else {
                p { (inline(ctx, &block.lines().map(str::trim).collect::<Vec<_>>().join(" "))) }
            }
        }
    }
}

/// The items of a `- ` list, each with its continuation lines joined.
fn items(block: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for line in block.lines() {
        match (line.strip_prefix("- "), items.last_mut()) {
            (Some(rest), _) => items.push(rest.to_owned()),
            (None, Some(item)) => {
                item.push(' ');
                item.push_str(line.trim());
            }
            (None, None) => items.push(line.trim().to_owned()),
        }
    }
    items
}

/// One line of text: `code` spans and [text](target) links, the rest text.
fn inline(ctx: &Ctx<'_>, text: &str) -> Markup {
    let mut parts: Vec<Markup> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let code_at = rest.find('`');
        let link_at = rest.find('[');
        match (code_at, link_at) {
            (Some(c), l) if l.is_none_or(|l| c < l) => {
                parts.push(html! { (&rest[..c]) });
                let after = &rest[c + 1..];
                match after.find('`') {
                    Some(end) => {
                        parts.push(html! { code { (&after[..end]) } });
                        rest = &after[end + 1..];
                    }
                    None => {
                        parts.push(html! { (&rest[c..]) });
                        rest = "";
                    }
                }
            }
            (_, Some(l)) => {
                parts.push(html! { (&rest[..l]) });
                let after = &rest[l + 1..];
                let parsed = after.find("](").and_then(|mid| {
                    let end = after[mid + 2..].find(')')? + mid + 2;
                    Some((&after[..mid], &after[mid + 2..end], &after[end + 1..]))
                });
                match parsed {
                    Some((label, target, tail)) if is_allowed(target) => {
                        let label = inline(ctx, label);
                        parts.push(if target.starts_with('/') {
                            html! { a href=(internal(ctx, target)) { (label) } }
                        } else {
                            html! { a href=(target) rel="noreferrer" { (label) } }
                        });
                        rest = tail;
                    }
                    _ => {
                        parts.push(html! { "[" });
                        rest = after;
                    }
                }
            }
            _ => {
                parts.push(html! { (rest) });
                rest = "";
            }
        }
    }
    html! { @for part in &parts { (part) } }
}

/// Links the guides may hold: our own paths, and https pages.
fn is_allowed(target: &str) -> bool {
    (target.starts_with('/') && !target.starts_with("//")) || target.starts_with("https://")
}

/// An internal link in the page's language, its `#fragment` kept (maud escapes it).
fn internal(ctx: &Ctx<'_>, target: &str) -> String {
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let mut href = ctx.href(path);
    if !fragment.is_empty() {
        href.push('#');
        href.push_str(fragment);
    }
    href
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_catalogue::Lang;

    fn ctx(lang: Lang) -> Ctx<'static> {
        Ctx {
            lang,
            path: "/guides/x",
            query: &[],
        }
    }

    #[test]
    fn the_subset_renders_and_everything_else_is_escaped() {
        let html = render(
            &ctx(Lang::Id),
            "## Why <b>\n\nA [null MX](/codes/556) and `a<b>` see [RFC 7505](https://www.rfc-editor.org/rfc/rfc7505).\n\n- one\n- two [x](javascript:alert(1))\n\n<script>",
        )
        .into_string();
        assert!(
            html.contains("<h2 id=\"why--b\">Why &lt;b&gt;</h2>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/id/codes/556\">null MX</a>"),
            "{html}"
        );
        assert!(html.contains("<code>a&lt;b&gt;</code>"), "{html}");
        assert!(html.contains("rel=\"noreferrer\">RFC 7505</a>"), "{html}");
        assert!(
            html.contains("<li>two [x](javascript:alert(1))</li>"),
            "{html}"
        );
        assert!(html.contains("<p>&lt;script&gt;</p>"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
    }

    #[test]
    fn glossary_fragments_are_kept() {
        let html = render(&ctx(Lang::En), "See [DSN](/glossary#dsn).").into_string();
        assert!(html.contains("<a href=\"/glossary#dsn\">DSN</a>"), "{html}");
    }
}
