//! The bounce form (`/explain`, issue 17, item 3): paste a whole bounce, get each failed
//! recipient explained, as `petrel explain --message` does. A plain HTML form (POST, no
//! JavaScript); the server reads at most 1 MiB and keeps nothing.

use petrel_catalogue::{Catalogue, Lang};

use super::entry::{article, derived_article, provider_article};
use maud::{Markup, html};

use super::html::{Ctx, page};
use super::http::Response;

struct Words {
    title: &'static str,
    intro: &'static str,
    paste: &'static str,
    submit: &'static str,
    written_by: &'static str,
    remote: &'static str,
    reply: &'static str,
    none: &'static str,
    not_a_bounce: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            title: "Read a bounce",
            intro: "Paste a whole bounce message (with its header, as your mail program shows it with \"view source\" or \"show original\"). Each failed recipient is listed with the server that refused it, its reply and what that means. Nothing is stored.",
            paste: "The bounce message",
            submit: "Explain",
            written_by: "Written by",
            remote: "Remote server",
            reply: "Reply",
            none: "not given",
            not_a_bounce: "No failed or delayed recipient was found in this text. Paste the whole message, header included: a delivery status notification, or a bounce from Postfix, Exim, qmail, Exchange, Microsoft 365 or Gmail.",
        },
        Lang::Id => Words {
            title: "Membaca pesan pentalan",
            intro: "Tempelkan seluruh pesan pentalan (beserta header-nya, seperti yang ditampilkan program surel Anda melalui \"view source\" atau \"show original\"). Setiap penerima yang gagal dicantumkan bersama server yang menolaknya, balasannya, dan artinya. Tidak ada yang disimpan.",
            paste: "Pesan pentalan",
            submit: "Jelaskan",
            written_by: "Ditulis oleh",
            remote: "Server tujuan",
            reply: "Balasan",
            none: "tidak disebutkan",
            not_a_bounce: "Tidak ditemukan penerima yang gagal atau tertunda dalam teks ini. Tempelkan seluruh pesan beserta header-nya: pemberitahuan status pengiriman, atau pesan pentalan dari Postfix, Exim, qmail, Exchange, Microsoft 365, atau Gmail.",
        },
    }
}

/// The form, with `message` in it when given.
fn form(ctx: &Ctx<'_>, message: &str) -> Markup {
    let words = words(ctx.lang);
    html! {
        form.bounce action="/explain" method="post" {
            label for="message" { (words.paste) }
            textarea #message name="message" rows="16" required { (message) }
            (ctx.lang_field())
            button type="submit" { (words.submit) }
        }
    }
}

/// `GET /explain`: the empty form.
pub fn form_page(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let body = html! {
        h1 { (words.title) }
        p { (words.intro) }
        (form(ctx, ""))
    };
    Response::html(200, page(ctx, words.title, body))
}

/// `POST /explain`: the pasted bounce, read and explained, and the form again below.
pub fn answer(ctx: &Ctx<'_>, catalogue: &Catalogue, message: &str) -> Response {
    let words = words(ctx.lang);
    // Pasted text often has bare newlines; the reader wants a message, CRLF or not.
    let Some(bounce) = crate::bounce::read(message.as_bytes()) else {
        let body = html! {
            h1 { (words.title) }
            p.warning role="note" { (words.not_a_bounce) }
            (form(ctx, message))
        };
        return Response::html(422, page(ctx, words.title, body));
    };
    let body = html! {
        h1 { (words.title) }
        p {
            (words.written_by) ": " (bounce.software)
            @if let Some(mta) = &bounce.reporting_mta { " (" code { (mta) } ")" }
        }
        @for recipient in &bounce.recipients {
            section.recipient {
                h2 {
                    code { (recipient.address) } ": "
                    (crate::bounce::report::action(&recipient.action, ctx.lang))
                    @if let Some(status) = &recipient.status { ", " code { (status) } }
                }
                dl.facts {
                    dt { (words.remote) } dd { (recipient.remote_mta.as_deref().unwrap_or(words.none)) }
                    dt { (words.reply) } dd { code { (recipient.reply.as_deref().unwrap_or(words.none)) } }
                }
                @if let Some(explanation) = crate::bounce::report::explained(catalogue, recipient, ctx.lang) {
                    @if let Some(provider) = explanation.provider { (provider_article(ctx, provider, 3)) }
                    @if let Some(entry) = explanation
                        .enhanced
                        .or(explanation.basic.filter(|_| explanation.derived.is_empty()))
                    {
                        (article(ctx, entry, 3))
                    }
                    @for derived in &explanation.derived { (derived_article(ctx, derived, 3)) }
                }
            }
        }
        (form(ctx, ""))
    };
    Response::html(200, page(ctx, words.title, body))
}
