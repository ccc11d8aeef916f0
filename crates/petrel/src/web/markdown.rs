//! The Markdown subset of the guides, to HTML: paragraphs (split at blank lines), `## `
//! headings, `- ` lists, `code` spans and [text](target) links to our own pages or to https
//! sites. Everything else is text, escaped by construction: no HTML from the data reaches the
//! page as markup.

use super::html::{Ctx, escape};

/// Renders `text`; internal links keep the page's language.
pub fn render(ctx: &Ctx<'_>, text: &str) -> String {
    let mut out = String::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        if let Some(heading) = block.strip_prefix("## ") {
            let id: String = heading
                .to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '-' })
                .collect();
            out.push_str(&format!(
                "<h2 id=\"{}\">{}</h2>\n",
                escape(id.trim_matches('-')),
                inline(ctx, heading)
            ));
        } else if block.starts_with("- ") {
            out.push_str("<ul>\n");
            let mut item = String::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("- ") {
                    if !item.is_empty() {
                        out.push_str(&format!("<li>{}</li>\n", inline(ctx, &item)));
                    }
                    item = rest.to_owned();
                } else {
                    item.push(' ');
                    item.push_str(line.trim());
                }
            }
            if !item.is_empty() {
                out.push_str(&format!("<li>{}</li>\n", inline(ctx, &item)));
            }
            out.push_str("</ul>\n");
        } else {
            let joined = block.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            out.push_str(&format!("<p>{}</p>\n", inline(ctx, &joined)));
        }
    }
    out
}

/// One line of text: `code` spans and [text](target) links, the rest escaped.
fn inline(ctx: &Ctx<'_>, text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let code_at = rest.find('`');
        let link_at = rest.find('[');
        match (code_at, link_at) {
            (Some(c), l) if l.is_none_or(|l| c < l) => {
                out.push_str(&escape(&rest[..c]));
                let after = &rest[c + 1..];
                match after.find('`') {
                    Some(end) => {
                        out.push_str(&format!("<code>{}</code>", escape(&after[..end])));
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&escape(&rest[c..]));
                        rest = "";
                    }
                }
            }
            (_, Some(l)) => {
                out.push_str(&escape(&rest[..l]));
                let after = &rest[l + 1..];
                let parsed = after.find("](").and_then(|mid| {
                    let end = after[mid + 2..].find(')')? + mid + 2;
                    Some((&after[..mid], &after[mid + 2..end], &after[end + 1..]))
                });
                match parsed {
                    Some((label, target, tail)) if is_allowed(target) => {
                        let href = if target.starts_with('/') {
                            internal(ctx, target)
                        } else {
                            escape(target)
                        };
                        let label = inline(ctx, label);
                        if target.starts_with('/') {
                            out.push_str(&format!("<a href=\"{href}\">{label}</a>"));
                        } else {
                            out.push_str(&format!(
                                "<a href=\"{href}\" rel=\"noreferrer\">{label}</a>"
                            ));
                        }
                        rest = tail;
                    }
                    _ => {
                        out.push('[');
                        rest = after;
                    }
                }
            }
            _ => {
                out.push_str(&escape(rest));
                rest = "";
            }
        }
    }
    out
}

/// Links the guides may hold: our own paths, and https pages.
fn is_allowed(target: &str) -> bool {
    (target.starts_with('/') && !target.starts_with("//")) || target.starts_with("https://")
}

/// An internal link in the page's language, its `#fragment` kept.
fn internal(ctx: &Ctx<'_>, target: &str) -> String {
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let mut href = ctx.href(path);
    if !fragment.is_empty() {
        href.push('#');
        href.push_str(&escape(fragment));
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
        );
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
        let html = render(&ctx(Lang::En), "See [DSN](/glossary#dsn).");
        assert!(html.contains("<a href=\"/glossary#dsn\">DSN</a>"), "{html}");
    }
}
