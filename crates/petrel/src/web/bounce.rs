//! The bounce form (`/explain`, issue 17, item 3): paste a whole bounce, get each failed
//! recipient explained, as `petrel explain --message` does. A plain HTML form (POST, no
//! JavaScript); the server reads at most 1 MiB and keeps nothing.

use petrel_catalogue::{Catalogue, Lang};

use super::entry::{article, derived_article, provider_article};
use super::html::{Ctx, escape, page};
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
fn form(ctx: &Ctx<'_>, message: &str) -> String {
    let words = words(ctx.lang);
    format!(
        "<form class=\"bounce\" action=\"/explain\" method=\"post\">\n<label for=\"message\">{}</label>\n<textarea id=\"message\" name=\"message\" rows=\"16\" required>{}</textarea>\n{}<button type=\"submit\">{}</button>\n</form>\n",
        words.paste,
        escape(message),
        ctx.lang_field(),
        words.submit
    )
}

/// `GET /explain`: the empty form.
pub fn form_page(ctx: &Ctx<'_>) -> Response {
    let words = words(ctx.lang);
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n{}",
        words.title,
        words.intro,
        form(ctx, "")
    );
    Response::html(200, page(ctx, words.title, &body))
}

/// `POST /explain`: the pasted bounce, read and explained, and the form again below.
pub fn answer(ctx: &Ctx<'_>, catalogue: &Catalogue, message: &str) -> Response {
    let words = words(ctx.lang);
    let mut body = format!("<h1>{}</h1>\n", words.title);
    // Pasted text often has bare newlines; the reader wants a message, CRLF or not.
    let Some(bounce) = crate::bounce::read(message.as_bytes()) else {
        body.push_str(&format!(
            "<p class=\"warning\" role=\"note\">{}</p>\n{}",
            words.not_a_bounce,
            form(ctx, message)
        ));
        return Response::html(422, page(ctx, words.title, &body));
    };
    body.push_str(&format!(
        "<p>{}: {}{}</p>\n",
        words.written_by,
        escape(bounce.software),
        bounce
            .reporting_mta
            .as_deref()
            .map(|m| format!(" (<code>{}</code>)", escape(m)))
            .unwrap_or_default()
    ));
    for recipient in &bounce.recipients {
        body.push_str(&format!(
            "<section class=\"recipient\">\n<h2><code>{}</code>: {}{}</h2>\n<dl class=\"facts\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd><code>{}</code></dd></dl>\n",
            escape(&recipient.address),
            escape(crate::bounce::report::action(&recipient.action, ctx.lang)),
            recipient
                .status
                .as_deref()
                .map(|s| format!(", <code>{}</code>", escape(s)))
                .unwrap_or_default(),
            words.remote,
            escape(recipient.remote_mta.as_deref().unwrap_or(words.none)),
            words.reply,
            escape(recipient.reply.as_deref().unwrap_or(words.none)),
        ));
        if let Some(explanation) = crate::bounce::report::explained(catalogue, recipient, ctx.lang)
        {
            if let Some(provider) = explanation.provider {
                body.push_str(&provider_article(ctx, provider, 3));
            }
            let entry = explanation
                .enhanced
                .or(explanation.basic.filter(|_| explanation.derived.is_empty()));
            if let Some(entry) = entry {
                body.push_str(&article(ctx, entry, 3));
            }
            for derived in &explanation.derived {
                body.push_str(&derived_article(ctx, derived, 3));
            }
        }
        body.push_str("</section>\n");
    }
    body.push_str(&form(ctx, ""));
    Response::html(200, page(ctx, words.title, &body))
}
