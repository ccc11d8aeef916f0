//! The checks of inbound mail: SPF of the MAIL FROM identity (or of the HELO identity for a
//! null reverse-path, RFC 7208 §2.4), every DKIM signature (RFC 6376 §6), and DMARC (RFC 7489
//! §6.6) over both, reported as one `Authentication-Results:` field (RFC 8601 §2.2) whose
//! authserv-id is petrel's host name.
//!
//! Untrusted input: the message, its signatures and every DNS answer. A temporary DNS failure
//! gives `temperror`, never a rejection; only a DMARC `fail` under `p=reject` is reported as
//! rejectable, and the caller decides (the option is off by default).

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};

/// What the client told us about the message.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    pub client: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// The reverse-path without brackets; empty for `<>`.
    pub mail_from: &'a str,
    /// The message as received (CRLF line ends).
    pub message: &'a [u8],
    /// The authserv-id: petrel's host name.
    pub authserv_id: &'a str,
}

/// The results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Authentication-Results: ...` with its CRLF, to prepend to the message.
    pub header: String,
    /// The method results, for logs: `pass`, `fail`, `softfail`, `neutral`, `none`,
    /// `temperror`, `permerror`.
    pub spf: &'static str,
    pub dkim: &'static str,
    pub dmarc: &'static str,
    /// The `From:` domain DMARC evaluated, when there was one.
    pub from_domain: Option<String>,
    /// DMARC failed and the domain asks receivers to reject (`p=reject`).
    pub is_dmarc_reject: bool,
}

/// Runs the checks, asking the DNS through a shared resolver.
#[derive(Clone)]
pub struct Verifier {
    authenticator: MessageAuthenticator,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier using `resolver`'s servers and cache.
    pub fn new(resolver: &petrel_dns::Resolver) -> Verifier {
        Verifier {
            authenticator: MessageAuthenticator(resolver.hickory().clone()),
        }
    }

    /// SPF of the MAIL FROM identity alone (RFC 7208 §2.4), before any message arrives: `pass`,
    /// `fail`, ... as in `Verdict::spf`.
    pub async fn spf_of_mail_from(
        &self,
        client: IpAddr,
        helo: &str,
        mail_from: &str,
        authserv_id: &str,
    ) -> &'static str {
        let helo = helo.trim_start_matches('[').trim_end_matches(']');
        let spf = self
            .authenticator
            .verify_spf(SpfParameters::verify_mail_from(
                client,
                helo,
                authserv_id,
                mail_from,
            ))
            .await;
        spf_word(spf.result())
    }

    /// Checks SPF, DKIM and DMARC for one message.
    pub async fn verify(&self, request: &VerifyRequest<'_>) -> Verdict {
        let helo = request.helo.trim_start_matches('[').trim_end_matches(']');
        let spf = if request.mail_from.is_empty() {
            self.authenticator
                .verify_spf(SpfParameters::verify_ehlo(
                    request.client,
                    helo,
                    request.authserv_id,
                ))
                .await
        } else {
            self.authenticator
                .verify_spf(SpfParameters::verify_mail_from(
                    request.client,
                    helo,
                    request.authserv_id,
                    request.mail_from,
                ))
                .await
        };
        let mut results = AuthenticationResults::new(request.authserv_id);
        results = if request.mail_from.is_empty() {
            results.with_spf_ehlo_result(&spf, request.client, helo)
        } else {
            results.with_spf_mailfrom_result(&spf, request.client, request.mail_from, helo)
        };
        let Some(message) = AuthenticatedMessage::parse(request.message) else {
            return Verdict {
                header: results.to_header(),
                spf: spf_word(spf.result()),
                dkim: "none",
                dmarc: "none",
                from_domain: None,
                is_dmarc_reject: false,
            };
        };
        let dkim = self.authenticator.verify_dkim(&message).await;
        let header_from = message.from.first().cloned().unwrap_or_default();
        let from_domain = header_from
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());
        let mail_from_domain = match request.mail_from.rsplit_once('@') {
            Some((_, domain)) => domain.to_owned(),
            None => helo.to_owned(),
        };
        let dmarc = self
            .authenticator
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;
        results = results.with_dkim_results(&dkim, &header_from);
        let dmarc_result = dmarc.result();
        if from_domain.is_some() {
            results = results.with_dmarc_result(&dmarc);
        }
        Verdict {
            header: results.to_header(),
            spf: spf_word(spf.result()),
            dkim: dkim_word(dkim.iter().map(|d| d.result())),
            dmarc: dmarc_word(&dmarc_result),
            from_domain,
            is_dmarc_reject: matches!(dmarc_result, DmarcResult::Fail(_))
                && dmarc.policy() == Policy::Reject,
        }
    }
}

fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// The best of the signatures' results: one passing signature is enough (RFC 6376 §6.1).
fn dkim_word<'a>(results: impl Iterator<Item = &'a DkimResult>) -> &'static str {
    let mut best = ("none", 9);
    for result in results {
        let ranked = match result {
            DkimResult::Pass => ("pass", 0),
            DkimResult::TempError(_) => ("temperror", 1),
            DkimResult::Fail(_) => ("fail", 2),
            DkimResult::PermError(_) => ("permerror", 3),
            DkimResult::Neutral(_) => ("neutral", 4),
            DkimResult::None => ("none", 5),
        };
        if ranked.1 < best.1 {
            best = ranked;
        }
    }
    best.0
}

fn dmarc_word(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}
