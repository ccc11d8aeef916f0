//! The frame every reference page shares, built with maud (text is escaped by construction):
//! links that keep the chosen language, the page layout (header with the search form and the
//! language switch) and its small inline style sheet, readable on a phone. No JavaScript
//! anywhere.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use petrel_catalogue::Lang;

use super::http::{encode, encode_path};
use super::words::words;

/// Escapes text for HTML content and quoted attribute values (for the few responses built
/// without maud: the redirect page).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// What a page is rendered for: the language and the request's path and query.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub lang: Lang,
    /// The decoded path of the request.
    pub path: &'a str,
    /// The decoded query of the request.
    pub query: &'a [(String, String)],
}

impl Ctx<'_> {
    /// An internal link to `path` (decoded) keeping the language (maud escapes it).
    pub fn href(&self, path: &str) -> String {
        self.location_with(path, &[])
    }

    /// A Location value for `path` with `params`, keeping the language: Indonesian pages
    /// live under `/id/`.
    pub fn location_with(&self, path: &str, params: &[(&str, &str)]) -> String {
        with_query(&encode_path(&lang_path(self.lang, path)), params)
    }

    /// The page being shown, in `lang`, keeping the rest of its query.
    pub fn location_in(&self, lang: Lang) -> String {
        let params: Vec<(&str, &str)> = self
            .query
            .iter()
            .filter(|(key, _)| key != "lang")
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        with_query(&encode_path(&lang_path(lang, self.path)), &params)
    }

    /// A hidden field carrying the language into a form, or nothing for English.
    pub fn lang_field(&self) -> Markup {
        html! {
            @if self.lang == Lang::Id { input type="hidden" name="lang" value="id"; }
        }
    }
}

/// `path` in `lang`: as it is in English, under `/id` in Indonesian.
pub fn lang_path(lang: Lang, path: &str) -> String {
    match lang {
        Lang::En => path.to_owned(),
        Lang::Id => format!("/id{path}"),
    }
}

fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// A link to a code's page: `<a href=…><code>CODE</code> title</a>`; no title when empty.
pub fn code_link(ctx: &Ctx<'_>, code: &str, title: &str) -> Markup {
    html! {
        a href=(ctx.href(&format!("/codes/{code}"))) {
            code { (code) }
            @if !title.is_empty() { " " (title) }
        }
    }
}

/// Links joined by `separator`.
pub fn joined(items: &[Markup], separator: &str) -> Markup {
    html! {
        @for (index, item) in items.iter().enumerate() {
            @if index > 0 { (separator) }
            (item)
        }
    }
}

/// Turns a text from the data files into paragraphs, split at blank lines.
pub fn paragraphs(text: &str) -> Markup {
    html! {
        @for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            p { (paragraph) }
        }
    }
}

/// A heading of `level` (1 to 6) holding `content`.
pub fn heading(level: u8, content: Markup) -> Markup {
    html! {
        @match level {
            1 => h1 { (content) },
            2 => h2 { (content) },
            3 => h3 { (content) },
            4 => h4 { (content) },
            5 => h5 { (content) },
            _ => h6 { (content) },
        }
    }
}

/// A whole page: `title` in the tab, `body` in the main part.
pub fn page(ctx: &Ctx<'_>, title: &str, body: Markup) -> String {
    let words = words(ctx.lang);
    let guides = super::guides::titles(ctx.lang);
    let query = if ctx.path == "/search" {
        ctx.query
            .iter()
            .find(|(k, _)| k == "q")
            .map_or("", |(_, v)| v.as_str())
    } else {
        ""
    };
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.as_str()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (words.site) }
                link rel="alternate" hreflang="en" href=(ctx.location_in(Lang::En));
                link rel="alternate" hreflang="id" href=(ctx.location_in(Lang::Id));
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    p.site { a href=(ctx.href("/codes/")) { (words.site) } }
                    nav.lang aria-label=(words.language) {
                        a href=(ctx.location_in(Lang::En)) hreflang="en" lang="en" aria-current=[(ctx.lang == Lang::En).then_some("true")] { "English" }
                        " · "
                        a href=(ctx.location_in(Lang::Id)) hreflang="id" lang="id" aria-current=[(ctx.lang == Lang::Id).then_some("true")] { "Bahasa Indonesia" }
                    }
                    nav.tools {
                        a href=(ctx.href("/guides/")) { (guides.0) }
                        " · "
                        a href=(ctx.href("/glossary")) { (guides.1) }
                        " · "
                        a href=(ctx.href("/explain")) { (words.read_bounce) }
                    }
                    form.search action="/search" method="get" role="search" {
                        label for="q" { (words.search_label) }
                        " "
                        span.row {
                            input #q name="q" type="search" value=(query) placeholder=(words.search_hint);
                            (ctx.lang_field())
                            " "
                            button type="submit" { (words.search) }
                        }
                    }
                }
                main { (body) }
                footer { p { (words.footer) } }
            }
        }
    }
    .into_string()
}

/// The style sheet: one column, system fonts, tables that stack on a narrow screen.
pub const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1d2430;--bg:#fdfdfb;--muted:#5b6472;--line:#d5d9e0;--accent:#0b5cad;--soft:#eef3f9;--warn:#fff4d6;--warnline:#d9a400}
@media (prefers-color-scheme:dark){:root{--fg:#e4e7ec;--bg:#16191e;--muted:#a3abb8;--line:#39404b;--accent:#7cb7ff;--soft:#1f2630;--warn:#3a3114;--warnline:#b38a00}}
*{box-sizing:border-box}
body{margin:0;font:17px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:62rem;margin:0 auto;padding:0 1rem}
header{padding-top:.75rem;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:.25rem 1.5rem;align-items:baseline}
.site{margin:0;font-weight:700;font-size:1.15rem;flex:1 1 auto}
.site a{color:var(--fg);text-decoration:none}
nav.lang{font-size:.95rem}
nav.lang a[aria-current]{font-weight:700;color:var(--fg);text-decoration:none}
form.search{flex:1 1 100%;margin:.5rem 0 .75rem}
form.search label{display:block;font-size:.9rem;color:var(--muted)}
.row{display:flex;gap:.5rem;flex-wrap:wrap}
textarea{width:100%;font:14px/1.4 ui-monospace,monospace;padding:.5rem;border:1px solid var(--line);border-radius:.35rem;background:var(--bg);color:var(--fg)}
form.bounce{display:flex;flex-direction:column;gap:.5rem;margin:1rem 0}form.bounce button{align-self:flex-start}
input,button{font:inherit;padding:.35rem .6rem;border:1px solid var(--line);border-radius:.35rem;background:var(--bg);color:var(--fg)}
input[type=search],input[name=b]{flex:1 1 12rem;min-width:0}
button{background:var(--accent);color:var(--bg);border-color:var(--accent);cursor:pointer}
a{color:var(--accent)}
code{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:.95em;font-weight:600}
h1{font-size:1.6rem;line-height:1.25;margin:1.25rem 0 .75rem}
h2{font-size:1.3rem;margin:1.75rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
h3{font-size:1.08rem;margin:1.25rem 0 .25rem}
h4{font-size:1rem;margin:1rem 0 .25rem;color:var(--muted)}
p{margin:.35rem 0 .75rem}
ul.codes{list-style:none;padding:0;margin:0 0 1rem;columns:2 22rem;column-gap:2rem}
ul.codes li{break-inside:avoid;padding:.15rem 0 .15rem 4.6em;text-indent:-4.6em}
ul.codes a{text-decoration:none}ul.codes a:hover{text-decoration:underline}
ul.codes code{display:inline-block;min-width:4.55em;text-indent:0}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0 1rem;padding:.6rem .8rem;background:var(--soft);border-radius:.4rem}
.facts dt{font-weight:600}.facts dd{margin:0}
.tag{display:inline-block;font-size:.85rem;font-weight:600;padding:0 .45rem;border:1px solid var(--line);border-radius:1rem;background:var(--soft)}
.warning{background:var(--warn);border-left:4px solid var(--warnline);padding:.5rem .8rem;margin:.75rem 0;border-radius:.25rem}
.line{font-family:ui-monospace,Menlo,Consolas,monospace;background:var(--soft);padding:.4rem .6rem;border-radius:.3rem;overflow-wrap:anywhere}
form.compare{margin:1rem 0;padding:.6rem .8rem;border:1px solid var(--line);border-radius:.4rem}
form.compare label{display:block;font-weight:600;margin-bottom:.25rem}
table.cmp{width:100%;border-collapse:collapse;margin:.5rem 0 1rem;table-layout:fixed}
table.cmp th,table.cmp td{text-align:left;vertical-align:top;padding:.45rem .6rem;border-bottom:1px solid var(--line)}
table.cmp thead th{background:var(--soft)}
table.cmp thead td{width:20%}
table.cmp th[scope=row]{font-weight:600}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(17rem,1fr));gap:0 2rem}
.pair article h3:first-child{margin-top:.5rem}
footer{margin-top:2rem;border-top:1px solid var(--line);color:var(--muted);font-size:.9rem}
@media (max-width:40rem){
body{font-size:16px}
table.cmp,table.cmp tbody,table.cmp tr,table.cmp th,table.cmp td{display:block;width:auto}
table.cmp thead{display:none}
table.cmp tr{border-bottom:2px solid var(--line);padding:.3rem 0}
table.cmp thead td,table.cmp th[scope=row]{width:auto}
table.cmp th[scope=row]{border:0;padding-bottom:0}
table.cmp td{border:0;padding-top:.15rem}
table.cmp td::before{content:attr(data-label);display:block;font-size:.85rem;color:var(--muted);font-weight:600}
}
";
