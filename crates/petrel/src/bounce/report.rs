//! A read bounce, explained: for each recipient its address, what happened, the remote server,
//! its reply, and what the reference says of the reply (meaning, what the sender and the
//! administrator can do), as text in either language or as JSON (`petrel explain --message`,
//! and the web's bounce form).

use petrel_catalogue::explain::{Explanation, explain, labels, parse_query};
use petrel_catalogue::{Catalogue, Lang};
use serde_json::json;

use super::{Bounce, Recipient};

/// The words of a bounce report.
struct Words {
    bounce_from: &'static str,
    reported_by: &'static str,
    remote: &'static str,
    reply: &'static str,
    none: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            bounce_from: "Bounce written by",
            reported_by: "reported by",
            remote: "Remote server",
            reply: "Reply",
            none: "not given",
        },
        Lang::Id => Words {
            bounce_from: "Pesan pentalan ditulis oleh",
            reported_by: "dilaporkan oleh",
            remote: "Server tujuan",
            reply: "Balasan",
            none: "tidak disebutkan",
        },
    }
}

/// What happened to a recipient, in `lang` (RFC 3464 §2.3.3's actions).
pub fn action(action: &str, lang: Lang) -> &str {
    match (action, lang) {
        ("failed", Lang::En) => "failed",
        ("failed", Lang::Id) => "gagal",
        ("delayed", Lang::En) => "delayed, still being retried",
        ("delayed", Lang::Id) => "tertunda, masih dicoba lagi",
        ("delivered", Lang::En) => "delivered",
        ("delivered", Lang::Id) => "terkirim",
        ("relayed", Lang::En) => "relayed to a server that sends no reports",
        ("relayed", Lang::Id) => "di-relay ke server yang tidak mengirim laporan",
        ("expanded", Lang::En) => "expanded to other addresses",
        ("expanded", Lang::Id) => "diperluas ke alamat lain",
        (other, _) => other,
    }
}

/// The text the reference explains for a recipient: its reply, else its status.
pub fn explained<'a>(
    catalogue: &'a Catalogue,
    recipient: &Recipient,
    lang: Lang,
) -> Option<Explanation<'a>> {
    let mut query = recipient
        .reply
        .as_deref()
        .and_then(parse_query)
        .or_else(|| recipient.status.as_deref().and_then(parse_query))?;
    if query.enhanced.is_none() {
        query.enhanced.clone_from(&recipient.status);
    }
    let mut explanation = explain(catalogue, &query, lang).ok()?;
    // The replying host helps tell providers apart.
    if let Some(reply) = &recipient.reply {
        explanation.provider =
            petrel_catalogue::providers::matching(reply, recipient.remote_mta.as_deref())
                .first()
                .copied();
    }
    Some(explanation)
}

/// The bounce as text in `lang`.
pub fn text(bounce: &Bounce, catalogue: &Catalogue, lang: Lang) -> String {
    let words = words(lang);
    let labels = labels(lang);
    let mut out = format!("{}: {}", words.bounce_from, bounce.software);
    if let Some(mta) = &bounce.reporting_mta {
        out.push_str(&format!(" ({} {mta})", words.reported_by));
    }
    out.push_str("\n\n");
    for (index, recipient) in bounce.recipients.iter().enumerate() {
        out.push_str(&format!(
            "{}. {}: {}{}\n",
            index + 1,
            recipient.address,
            action(&recipient.action, lang),
            recipient
                .status
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "   {}: {}\n   {}: {}\n",
            words.remote,
            recipient.remote_mta.as_deref().unwrap_or(words.none),
            words.reply,
            recipient.reply.as_deref().unwrap_or(words.none)
        ));
        if let Some(explanation) = explained(catalogue, recipient, lang) {
            if let Some(provider) = explanation.provider {
                for line in crate::explain::render_provider(provider, lang).lines() {
                    out.push_str(&format!("   {line}\n"));
                }
            }
            // The most precise of: the enhanced code's entry, its explanation from its parts,
            // the basic code's entry.
            let entry = explanation
                .enhanced
                .or(explanation.basic.filter(|_| explanation.derived.is_empty()));
            if let Some(entry) = entry {
                let text = entry.text(lang);
                out.push_str(&format!(
                    "   {} {}\n     {}: {}\n     {}: {}\n     {}: {}\n",
                    entry.facts.code,
                    text.title,
                    labels.meaning,
                    text.meaning,
                    labels.fix_sender,
                    text.fix_sender,
                    labels.fix_admin,
                    text.fix_admin
                ));
            }
            for derived in &explanation.derived {
                out.push_str(&format!(
                    "   {} {}\n     {}: {}\n",
                    derived.code, derived.title, labels.meaning, derived.meaning
                ));
            }
        }
        out.push('\n');
    }
    out
}

/// The bounce as JSON: the software, and per recipient its fields and the reference's
/// explanation of its reply (the object of `petrel explain --json`).
pub fn json(bounce: &Bounce, catalogue: &Catalogue, lang: Lang) -> serde_json::Value {
    let recipients: Vec<serde_json::Value> = bounce
        .recipients
        .iter()
        .map(|recipient| {
            let explanation = explained(catalogue, recipient, lang);
            json!({
                "address": recipient.address,
                "action": recipient.action,
                "status": recipient.status,
                "remote_mta": recipient.remote_mta,
                "reply": recipient.reply,
                "explanation": explanation.as_ref().map(|e| crate::explain::explanation_json(e, lang)),
            })
        })
        .collect();
    json!({
        "software": bounce.software,
        "reporting_mta": bounce.reporting_mta,
        "lang": lang.as_str(),
        "recipients": recipients,
    })
}
