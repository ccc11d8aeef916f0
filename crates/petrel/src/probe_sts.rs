//! `petrel probe`'s MTA-STS part (issue 15, item 7): the recipient domain's `_mta-sts` TXT
//! record and its policy fetched now (delivery's own `mta_sts::fetch`, trusting
//! `delivery.ca_file` as delivery does), and what the policy makes of each MX host: under
//! `enforce` a host it does not list is skipped, as delivery would, and a certificate that does
//! not verify is named as the reason delivery would not use the host.

use petrel_delivery::client::TlsClient;
use petrel_delivery::mta_sts::fetch::fetch_policy;
use petrel_delivery::mta_sts::{Mode, parse_policy, parse_txt};
use petrel_dns::Resolver;
use serde::Serialize;

use super::Probe;
use crate::config::Config;

/// The policy as the probe found it.
#[derive(Debug, Serialize)]
pub(super) struct StsReport {
    /// The id of the `_mta-sts` TXT record, when it has one.
    pub(super) id: Option<String>,
    /// enforce | testing | none, when a policy was fetched.
    pub(super) mode: Option<&'static str>,
    pub(super) mx: Vec<String>,
    pub(super) max_age_seconds: Option<u64>,
    /// Why there is no policy to apply, when there is none.
    pub(super) error: Option<String>,
}

impl StsReport {
    pub(super) fn is_enforced(&self) -> bool {
        self.mode == Some("enforce")
    }

    /// Whether the policy lists `host` (`None` without a policy).
    pub(super) fn lists(&self, host: &str) -> Option<bool> {
        self.mode?;
        let policy = petrel_delivery::mta_sts::Policy {
            mode: Mode::Testing,
            mx: self.mx.clone(),
            max_age_seconds: 0,
        };
        Some(policy.matches_mx(host))
    }
}

impl Probe {
    /// Looks up and fetches the MTA-STS policy of `domain`, says what it found and keeps it in
    /// the report.
    pub(super) async fn mta_sts(&mut self, config: &Config, resolver: &Resolver, domain: &str) {
        let name = format!("_mta-sts.{domain}");
        let mut report = StsReport {
            id: None,
            mode: None,
            mx: Vec::new(),
            max_age_seconds: None,
            error: None,
        };
        let ids: Vec<Result<String, String>> = match resolver.txt(&name).await {
            Ok(records) => records
                .iter()
                .filter(|r| r.starts_with("v=STSv1"))
                .map(|r| parse_txt(r))
                .collect(),
            Err(failure) => vec![Err(failure.to_string())],
        };
        match ids.as_slice() {
            [] => report.error = Some(format!("no {name} TXT record: no policy")),
            [Ok(id)] => report.id = Some(id.clone()),
            [Err(error)] => report.error = Some(format!("{name}: {error}")),
            _ => report.error = Some(format!("{name}: several STSv1 records: none applies")),
        }
        if report.id.is_some() {
            let tls = TlsClient::new(config.delivery.ca_file.as_deref());
            let source = config.delivery.source_address;
            match fetch_policy(resolver, &tls, domain, source).await {
                Ok(text) => match parse_policy(&text) {
                    Ok(policy) => {
                        report.mode = Some(match policy.mode {
                            Mode::Enforce => "enforce",
                            Mode::Testing => "testing",
                            Mode::None => "none",
                        });
                        report.mx = policy.mx;
                        report.max_age_seconds = Some(policy.max_age_seconds);
                    }
                    Err(error) => {
                        report.error = Some(format!("the policy does not parse: {error}"))
                    }
                },
                Err(failure) => report.error = Some(failure.detail),
            }
        }
        match (&report.mode, &report.error) {
            (Some(mode), _) => self.say(&format!(
                "MTA-STS: policy id {}, mode {mode}, mx {}, max_age {} s",
                report.id.as_deref().unwrap_or("?"),
                report.mx.join(" "),
                report.max_age_seconds.unwrap_or(0)
            )),
            (None, Some(error)) => self.say(&format!("MTA-STS: {error}")),
            (None, None) => {}
        }
        self.report.mta_sts = Some(report);
    }

    /// Whether delivery would skip `host` because the enforced policy does not list it (and says
    /// so).
    pub(super) fn skipped_by_policy(&self, host: &str) -> bool {
        let Some(sts) = &self.report.mta_sts else {
            return false;
        };
        match sts.lists(host) {
            Some(false) if sts.is_enforced() => {
                self.say(&format!(
                    "  {host} is not in the MTA-STS policy: delivery skips it (enforce)"
                ));
                true
            }
            Some(false) => {
                self.say(&format!(
                    "  {host} is not in the MTA-STS policy: delivery goes on (testing)"
                ));
                false
            }
            _ => false,
        }
    }

    /// Under an enforced policy, a certificate that does not verify means delivery would not
    /// use the host.
    pub(super) fn policy_verdict_on_tls(&self, is_verified: bool) {
        if !is_verified
            && self
                .report
                .mta_sts
                .as_ref()
                .is_some_and(StsReport::is_enforced)
        {
            self.say(
                "  MTA-STS enforce: delivery would not use this host (certificate not verified)",
            );
        }
    }
}
