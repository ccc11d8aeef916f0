//! What the policies make of one delivery: the MTA-STS policy that applies and the MX hosts
//! it (with DANE and REQUIRETLS) lets a delivery use, the code of a deferral for want of TLS,
//! and how a session is reported (RFC 8460). Split from `remote` so the walk stays readable.

use std::collections::HashMap;

use petrel_proto::{EnhancedCode, status};
use petrel_queue::status::{Cause, TlsProblem};

use super::{Hosts, RemoteSettings};
use crate::client::{Broken, Step, TlsReport};
use crate::dane_hosts::HostDane;
use crate::mta_sts::{Applied, Mode};
use crate::mxplan::PlannedHost;
use crate::tls_policy::{Effective, SecurityLevel};
use crate::tlsrpt::{PolicyKey, ResultType};

/// The code of a deferral for want of TLS: 4.7.30 for a REQUIRETLS message (5.7.30 once it
/// expires), 4.7.5 otherwise.
pub(super) fn tls_status(requires_tls: bool) -> EnhancedCode {
    if requires_tls {
        status::REQUIRETLS_NEEDED
    } else {
        status::CRYPTOGRAPHIC_FAILURE
    }
}

/// The policy a session is reported under (RFC 8460 §4.4): the MTA-STS policy, or none.
pub(super) fn policy_key(sts: Option<&Applied>) -> PolicyKey {
    match sts {
        Some(applied) => PolicyKey {
            policy_type: "sts".into(),
            policy_string: crate::mta_sts::discover::render(&applied.policy)
                .lines()
                .map(str::to_owned)
                .collect(),
            mx_host: applied.policy.mx.clone(),
        },
        None => PolicyKey::none(),
    }
}

/// The TLSA policy of a DANE host, as RFC 8460 §4.4 reports it.
pub(super) fn tlsa_policy_key(records: &[petrel_dns::TlsaRecord]) -> PolicyKey {
    PolicyKey {
        policy_type: "tlsa".into(),
        policy_string: records
            .iter()
            .map(|r| {
                let data: String = r.data.iter().map(|b| format!("{b:02x}")).collect();
                format!("{} {} {} {data}", r.usage, r.selector, r.matching)
            })
            .collect(),
        mx_host: Vec::new(),
    }
}

/// The MTA-STS policy of `domain` when `delivery.mta_sts` is on, the domain is a name, and no
/// `[[delivery.tls_policy]]` of the operator's covers it (mode `none` is no policy), and the
/// fetch that failed on the way, if one did.
pub(super) async fn sts_policy(
    settings: &RemoteSettings,
    domain: &str,
    history: &mut Vec<String>,
) -> (Option<Applied>, Option<crate::mta_sts::fetch::FetchError>) {
    let Some(discovery) = settings.mta_sts.as_ref() else {
        return (None, None);
    };
    if domain.starts_with('[') || settings.tls.has_policy_for(domain) {
        return (None, None);
    }
    let now = crate::scheduler::unix_now();
    let found = discovery
        .policy_for(
            domain,
            &settings.tls_client,
            settings.source_address,
            now,
            history,
        )
        .await;
    let Some(applied) = found.applied else {
        return (None, found.failure);
    };
    history.push(format!(
        "MTA-STS policy of {domain}: {}",
        applied.describe()
    ));
    let applies = (applied.policy.mode != Mode::None).then_some(applied);
    (applies, found.failure)
}

/// The MX hosts a delivery may use (C-STS-3, C-RTLS-2, C-STS-4): a host DANE applies to is
/// kept whatever MTA-STS says; otherwise under `enforce` (or for a REQUIRETLS message) a host
/// the policy does not list is skipped, and without a policy a REQUIRETLS message has no
/// vouched-for host; under `testing` every host is kept and the history says which would not
/// pass.
pub(super) fn screen_by_policy(
    hosts: Hosts,
    sts: Option<&Applied>,
    requires_tls: bool,
    dane_of: &HashMap<String, HostDane>,
    history: &mut Vec<String>,
) -> Hosts {
    hosts
        .into_iter()
        .filter(|(PlannedHost { name: host, .. }, _)| {
            if dane_of.get(host).is_some_and(HostDane::vouches) {
                return true;
            }
            let Some(applied) = sts else {
                return !requires_tls;
            };
            if applied.policy.matches_mx(host) {
                return true;
            }
            let is_enforced = applied.policy.mode == Mode::Enforce || requires_tls;
            let what = if requires_tls {
                "skipped (REQUIRETLS)"
            } else if is_enforced {
                "skipped (MTA-STS enforce)"
            } else {
                "delivering anyway (MTA-STS testing)"
            };
            history.push(format!(
                "{host} is not among the MX patterns of the MTA-STS policy of {}: {what}",
                applied.domain
            ));
            !is_enforced
        })
        .collect()
}

/// What a session came to for TLS reporting (RFC 8460 §4.3): `Ok` for TLS as the policy wants
/// it, the result type of the failure, or `None` when no TLS was in question (not wanted, or
/// the connection failed before it).
pub(super) fn session_result(
    result: &Result<Step, Broken>,
    seen: Option<&TlsReport>,
    wants_tls: bool,
    has_policy: bool,
) -> Option<Result<(), ResultType>> {
    match (result, seen) {
        (_, Some(report)) if has_policy && !report.is_verified => Some(Err(
            ResultType::of_certificate_error(report.verify_error.as_deref().unwrap_or("")),
        )),
        (_, Some(_)) => Some(Ok(())),
        (Err(broken), None) => match broken.cause {
            Cause::Tls(TlsProblem::Certificate) => {
                Some(Err(ResultType::of_certificate_error(&broken.detail)))
            }
            Cause::Tls(TlsProblem::Policy) => Some(Err(ResultType::StarttlsNotSupported)),
            Cause::Tls(TlsProblem::Handshake) => Some(Err(ResultType::ValidationFailure)),
            _ => None,
        },
        (Ok(Step::Sent(_) | Step::Unsendable(_)), None) if wants_tls => {
            Some(Err(ResultType::StarttlsNotSupported))
        }
        (Ok(_), None) => None,
    }
}

/// How strong a kept session's TLS must be to carry a delivery (a session is reused only
/// under a policy no stronger than the one it was opened under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Strength {
    Any,
    Tls,
    Verified,
    Dane,
}

impl Strength {
    /// What `tls` (after MTA-STS) and the hosts' DANE verdicts ask of a session.
    pub(super) fn of(tls: &Effective, dane_of: &HashMap<String, HostDane>) -> Strength {
        if dane_of.values().any(HostDane::vouches) {
            Strength::Dane
        } else if tls.level >= SecurityLevel::Verify {
            Strength::Verified
        } else if tls.level >= SecurityLevel::Encrypt || dane_of.values().any(HostDane::applies) {
            Strength::Tls
        } else {
            Strength::Any
        }
    }

    /// Whether a session whose TLS gave `report` (none: plaintext) is strong enough.
    pub(super) fn allows(self, report: Option<&TlsReport>) -> bool {
        match self {
            Strength::Any => true,
            Strength::Tls => report.is_some(),
            Strength::Verified => report.is_some_and(|r| r.is_verified),
            Strength::Dane => report.is_some_and(|r| r.is_dane),
        }
    }
}
