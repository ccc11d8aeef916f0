//! The console's pages as HTML, built with maud (every text is escaped by construction): the
//! login form, the queue with its filters, and one message with its envelope, recipients,
//! every attempt's reply explained from the reference, its headers and the actions. The look
//! is the reference's (its style sheet) with a few rules of its own; no JavaScript.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use petrel_proto::trace::rfc5322_date;
use petrel_queue::{Envelope, Place, QueueId, Recipient};

use crate::queue_view::{age, explained, recipient_state};

use super::filter::{Class, Filter, State};

/// The console's own style rules, after the reference's.
const STYLE: &str = "
header nav.who{font-size:.95rem}header nav.who form{display:inline}
header nav.who button{padding:.1rem .5rem;font-size:.9rem}
table.queue{width:100%;border-collapse:collapse;margin:.5rem 0 1rem;font-size:.95rem}
table.queue th,table.queue td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
table.queue thead th{background:var(--soft)}
table.queue td.id{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
form.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.5rem 1rem;margin:1rem 0;padding:.6rem .8rem;border:1px solid var(--line);border-radius:.4rem}
form.filters label{display:flex;flex-direction:column;font-size:.9rem;color:var(--muted)}
form.filters .go{display:flex;gap:.75rem;align-items:center;align-self:end}
select{font:inherit;padding:.35rem .4rem;border:1px solid var(--line);border-radius:.35rem;background:var(--bg);color:var(--fg)}
.state-held{background:var(--warn);border-color:var(--warnline)}
.state-deferred{border-color:var(--warnline)}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.75rem 0}
.actions form{margin:0}
.actions button.danger{background:#a3261b;border-color:#a3261b}
.flash{background:var(--soft);border-left:4px solid var(--accent);padding:.5rem .8rem;margin:.75rem 0;border-radius:.25rem}
.error{background:var(--warn);border-left:4px solid var(--warnline);padding:.5rem .8rem;margin:.75rem 0;border-radius:.25rem}
ol.history{padding-left:1.5rem;font-size:.92rem}ol.history li{margin:.2rem 0;overflow-wrap:anywhere}
ol.history .means{display:block;color:var(--muted);font-size:.88rem}
pre.headers{font:13px/1.45 ui-monospace,Menlo,Consolas,monospace;background:var(--soft);padding:.6rem .8rem;border-radius:.4rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
form.login{display:flex;flex-direction:column;gap:.6rem;max-width:20rem;margin:1rem 0}
form.login label{display:flex;flex-direction:column;font-weight:600}
";

/// Who is looking, for the header: the user and the CSRF token of their forms.
pub struct Viewer<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
}

/// A whole console page.
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · petrel queue console" }
                style { (PreEscaped(crate::web::html::STYLE)) (PreEscaped(STYLE)) }
            }
            body {
                header {
                    p.site { a href="/queue/" { "petrel queue console" } }
                    @if let Some(viewer) = viewer {
                        nav.who {
                            (viewer.user) " · "
                            form method="post" action="/queue/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                    nav.tools { a href="/codes/" { "Reply-code reference" } }
                }
                main { (body) }
                footer { p { "petrel: every reply explained." } }
            }
        }
    }
    .into_string()
}

/// The login form, with the reason the last try failed.
pub fn login(failure: Option<&str>) -> String {
    page(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(failure) = failure {
                p.error role="alert" { (failure) }
            }
            form.login method="post" action="/queue/login" {
                label { "User" input #user name="user" autocomplete="username" required; }
                label { "Password" input #password name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
            p { "The users are those of " code { "[auth] users_file" } " (" code { "petrel user add NAME" } ")." }
        },
    )
}

/// One row of the list.
pub struct Row {
    pub id: QueueId,
    pub place: Place,
    pub envelope: Envelope,
}

/// The queue page: search, filters, and the messages that pass them (at most `shown`).
pub struct ListPage<'a> {
    pub query: &'a [(String, String)],
    pub filter: &'a Filter,
    pub error: Option<&'a str>,
    pub flash: Option<&'a str>,
    pub total: usize,
    pub rows: &'a [Row],
    pub limit: usize,
    pub now: u64,
}

pub fn list(viewer: &Viewer<'_>, view: &ListPage<'_>) -> String {
    let value = |name: &str| crate::web::http::field(view.query, name).unwrap_or("");
    let body = html! {
        h1 { "Queue" }
        @if let Some(flash) = view.flash { p.flash role="status" { (flash) } }
        @if let Some(error) = view.error { p.error role="alert" { (error) } }
        form.search method="get" action="/queue/" role="search" {
            label for="q" { "Find a message by its queue id or Message-ID" }
            span.row {
                input #q name="q" type="search" value=(value("q")) placeholder="3A7F0C2D1E4B5A6C7 or <id@example.org>";
                button type="submit" { "Find" }
            }
        }
        form.filters method="get" action="/queue/" aria-label="Filters" {
            label { "State"
                select name="state" {
                    option value="" { "any" }
                    @for state in State::ALL {
                        option value=(state.as_str()) selected[view.filter.state == Some(state)] { (state.as_str()) }
                    }
                }
            }
            label { "Recipient domain" input name="domain" value=(value("domain")) placeholder="example.net"; }
            label { "Sender" input name="sender" value=(value("sender")) placeholder="part of the address"; }
            label { "Recipient" input name="recipient" value=(value("recipient")) placeholder="part of the address"; }
            label { "At least this old" input name="age" value=(value("age")) placeholder="30m, 2h, 1d"; }
            label { "Last reply"
                select name="class" {
                    option value="" { "any" }
                    @for class in Class::ALL {
                        option value=(class.as_str()) selected[view.filter.class == Some(class)] { (class.label()) }
                    }
                }
            }
            span.go {
                button type="submit" { "Filter" }
                a href="/queue/" { "Clear" }
            }
        }
        p #count {
            @if view.filter.is_empty() {
                (view.total) " message" @if view.total != 1 { "s" } " in the queue"
            } @else {
                (view.rows.len()) " of " (view.total) " message" @if view.total != 1 { "s" } " match"
            }
            @if view.rows.len() > view.limit { " (the first " (view.limit) " are shown)" }
        }
        @if !view.rows.is_empty() {
            table.queue {
                thead { tr {
                    th scope="col" { "Queue id" } th scope="col" { "State" } th scope="col" { "Age" }
                    th scope="col" { "Sender" } th scope="col" { "Recipients waiting" } th scope="col" { "Next attempt" }
                } }
                tbody {
                    @for row in view.rows.iter().take(view.limit) {
                        @let state = State::of(row.place, &row.envelope, view.now);
                        tr {
                            td.id { a href={ "/queue/" (row.id.as_str()) } { (row.id.as_str()) } }
                            td { span class={ "tag state-" (state.as_str()) } { (state.as_str()) } }
                            td { (age(view.now.saturating_sub(row.envelope.arrival_unix_seconds))) }
                            td { (sender(&row.envelope)) }
                            td {
                                @for (_, recipient) in row.envelope.pending() {
                                    div {
                                        (recipient.address)
                                        @if let Some(last) = &recipient.last {
                                            " " (code_link(&last.code.to_string()))
                                        }
                                    }
                                }
                            }
                            td { (next_attempt(row.place, &row.envelope, view.now)) }
                        }
                    }
                }
            }
        }
    };
    page("Queue", Some(viewer), body)
}

/// The message page.
pub struct MessagePage<'a> {
    pub id: &'a QueueId,
    pub place: Place,
    pub envelope: &'a Envelope,
    pub headers: Option<&'a str>,
    pub size: Option<usize>,
    pub flash: Option<&'a str>,
    pub now: u64,
}

pub fn message(viewer: &Viewer<'_>, view: &MessagePage<'_>) -> String {
    let envelope = view.envelope;
    let state = match view.place {
        Place::Done => "finished",
        place => State::of(place, envelope, view.now).as_str(),
    };
    let body = html! {
        p { a href="/queue/" { "← Queue" } }
        h1 { "Message " code { (view.id.as_str()) } }
        @if let Some(flash) = view.flash { p.flash role="status" { (flash) } }
        dl.facts {
            dt { "State" } dd #state { span class={ "tag state-" (state) } { (state) } }
            dt { "Arrived" } dd { (rfc5322_date(envelope.arrival_unix_seconds as i64)) " (" (age(view.now.saturating_sub(envelope.arrival_unix_seconds))) " ago)" }
            dt { "From client" } dd { (envelope.client_address) " (EHLO " (envelope.client_helo) ")" }
            dt { "Sender" } dd { (sender(envelope)) }
            @if let Some(message_id) = &envelope.message_id { dt { "Message-ID" } dd { code { (message_id) } } }
            @if let Some(size) = view.size { dt { "Size" } dd { (size) " octets" } }
            @if envelope.requires_tls { dt { "REQUIRETLS" } dd { "every hop verified TLS, or no delivery (RFC 8689)" } }
            dt { "Next attempt" } dd { (next_attempt(view.place, envelope, view.now)) }
        }
        @if view.place != Place::Done {
            div.actions aria-label="Actions" {
                @if view.place == Place::Held {
                    (action(viewer, view.id, "release", "Release", false))
                } @else {
                    (action(viewer, view.id, "hold", "Hold", false))
                    (action(viewer, view.id, "flush", "Deliver now", false))
                }
                (action(viewer, view.id, "bounce", "Bounce to sender", true))
                (action(viewer, view.id, "delete", "Delete", true))
            }
        }
        h2 { "Recipients" }
        table.queue {
            thead { tr { th scope="col" { "Recipient" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last outcome" } } }
            tbody {
                @for recipient in &envelope.recipients {
                    tr { td { (recipient.address) } td { (recipient_state(recipient, view.place, view.now)) } td { (recipient.attempts) } td { (last(recipient)) } }
                }
            }
        }
        h2 { "Attempts and history" }
        ol.history {
            @for line in &envelope.history { li { (history_line(line)) } }
        }
        @if let Some(headers) = view.headers {
            h2 { "Headers" }
            pre.headers { (headers) }
        }
    };
    page(&format!("Message {}", view.id.as_str()), Some(viewer), body)
}

/// A POST button for `name` on message `id`, carrying the CSRF token.
fn action(viewer: &Viewer<'_>, id: &QueueId, name: &str, label: &str, is_danger: bool) -> Markup {
    html! {
        form method="post" action={ "/queue/" (id.as_str()) "/" (name) } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" name="action" value=(name) class=[is_danger.then_some("danger")] { (label) }
        }
    }
}

/// The last outcome of a recipient: verdict, code with its title, the reply, the host, and
/// what the code means.
fn last(recipient: &Recipient) -> Markup {
    let Some(last) = &recipient.last else {
        return html! { "no attempt yet" };
    };
    let code = last.code.to_string();
    html! {
        (last.verdict.as_str()) " " (code_link(&code)) " (" (last.cause.describe()) ")"
        @match &last.reply {
            Some(reply) => { div.line { (reply.to_line()) } }
            None => { div { (last.detail) } }
        }
        @if let Some(mta) = &last.remote_mta { div { "from " (mta.to_string()) } }
        @if let Some((title, meaning)) = explained(&code) { div.means { strong { (title) } ": " (meaning) } }
    }
}

/// A history line with the codes in it linked and explained, and the TLS of a hop marked.
fn history_line(line: &str) -> Markup {
    let codes: Vec<(String, String)> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| petrel_proto::EnhancedCode::parse(word).is_some())
        .filter_map(|code| explained(code).map(|(title, _)| (code.to_owned(), title)))
        .collect();
    html! {
        @if let Some(level) = tls_level(line) { span.tag { "TLS: " (level) } " " }
        (line)
        @for (code, title) in &codes {
            span.means { (code_link(code)) " " (title) }
        }
    }
}

/// The TLS level a hop's STARTTLS history line records.
fn tls_level(line: &str) -> Option<&'static str> {
    if !line.contains(": STARTTLS: ") {
        return None;
    }
    Some(if line.contains("(DANE)") {
        "DANE"
    } else if line.contains("certificate verified") && line.contains("MTA-STS") {
        "MTA-STS (verified)"
    } else if line.contains("certificate verified") {
        "verified"
    } else {
        "encrypted, not verified"
    })
}

fn code_link(code: &str) -> Markup {
    html! { a href={ "/codes/" (code) } { code { (code) } } }
}

fn sender(envelope: &Envelope) -> String {
    if envelope.reverse_path.is_empty() {
        "<> (a bounce)".to_owned()
    } else {
        format!("<{}>", envelope.reverse_path)
    }
}

fn next_attempt(place: Place, envelope: &Envelope, now: u64) -> String {
    match place {
        Place::Held => "held: none until released".to_owned(),
        Place::Done => "none: finished".to_owned(),
        Place::Active => match envelope
            .pending()
            .map(|(_, r)| r.next_attempt_unix_seconds)
            .min()
        {
            Some(next) if next > now => {
                format!("{} (in {})", rfc5322_date(next as i64), age(next - now))
            }
            Some(_) => "now".to_owned(),
            None => "none".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_is_marked_with_its_tls_and_codes_in_a_line_are_explained() {
        let line = "Mon, 7 Dec 2026 16:32:54 +0000 mx.example.net [192.0.2.1]: STARTTLS: TLSv1_3 TLS13_AES_256_GCM_SHA384, certificate verified (MTA-STS enforce)";
        assert_eq!(tls_level(line), Some("MTA-STS (verified)"));
        assert_eq!(
            tls_level("mx [192.0.2.1]: STARTTLS: TLSv1_3 X, certificate matched TLSA (DANE)"),
            Some("DANE")
        );
        assert_eq!(
            tls_level("mx [192.0.2.1]: STARTTLS: TLSv1_2 X, certificate verified"),
            Some("verified")
        );
        assert_eq!(
            tls_level(
                "mx [192.0.2.1]: STARTTLS: TLSv1_3 X, certificate not verified (expired; opportunistic TLS)"
            ),
            Some("encrypted, not verified")
        );
        assert_eq!(tls_level("connect mx [192.0.2.1]: refused"), None);
        let html = history_line(line).into_string();
        assert!(
            html.starts_with("<span class=\"tag\">TLS: MTA-STS (verified)</span>"),
            "{html}"
        );

        let html = history_line("bob@example.net: 5.1.10 null MX <b> -> failed").into_string();
        assert!(html.contains("href=\"/codes/5.1.10\""), "{html}");
        assert!(html.contains("&lt;b&gt;"), "escaped: {html}");
        assert!(!html.contains("TLS:"), "{html}");
    }
}
