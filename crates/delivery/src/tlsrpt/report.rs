//! The counts of TLS reporting (RFC 8460) and the report made of them, pure: a `Tally` holds,
//! for one policy domain and one UTC day, the successful and failed sessions of each policy
//! seen (MTA-STS or none), failures by the RFC's result types (§4.3) with the receiving host;
//! tallies from several nodes (or flushes) merge by adding; `Tally::report` writes the JSON of
//! §4.4 with the RFC's field names.
//!
//! A stored tally is parsed from JSON that any node may have written: unreadable input is an
//! error value, never a panic.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// RFC 8460 §4.3 result types petrel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
    DnssecInvalid,
    DaneRequired,
}

impl ResultType {
    /// The RFC's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
        }
    }

    /// The result type of a policy that could not be fetched (§4.3.2).
    pub fn of_fetch(problem: crate::mta_sts::fetch::FetchProblem) -> ResultType {
        use crate::mta_sts::fetch::FetchProblem;
        match problem {
            FetchProblem::Certificate => ResultType::StsWebpkiInvalid,
            FetchProblem::Invalid => ResultType::StsPolicyInvalid,
            _ => ResultType::StsPolicyFetchError,
        }
    }

    /// The result type of a certificate that did not verify, from the verifier's words.
    pub fn of_certificate_error(error: &str) -> ResultType {
        let error = error.to_ascii_lowercase();
        if error.contains("not valid for name") || error.contains("notvalidforname") {
            ResultType::CertificateHostMismatch
        } else if error.contains("expired") {
            ResultType::CertificateExpired
        } else if error.contains("unknownissuer")
            || error.contains("unknown issuer")
            || error.contains("trust anchor")
        {
            ResultType::CertificateNotTrusted
        } else {
            ResultType::ValidationFailure
        }
    }
}

/// The policy a session was held under (§4.4 "policy").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyKey {
    /// `sts` or `no-policy-found`.
    pub policy_type: String,
    /// The policy file's lines (MTA-STS), empty for none.
    pub policy_string: Vec<String>,
    /// The policy's `mx` patterns.
    pub mx_host: Vec<String>,
}

impl PolicyKey {
    pub fn none() -> PolicyKey {
        PolicyKey {
            policy_type: "no-policy-found".into(),
            policy_string: Vec::new(),
            mx_host: Vec::new(),
        }
    }
}

/// One failure detail's identity (§4.4 "failure-details").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FailureKey {
    pub result_type: ResultType,
    pub receiving_mx_hostname: Option<String>,
    pub receiving_ip: Option<String>,
}

/// The counts under one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCounts {
    pub successful: u64,
    pub failed: u64,
    /// Failure details with their counts, as pairs (JSON maps need string keys).
    pub failures: Vec<(FailureKey, u64)>,
}

/// The counts of one policy domain and day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub policies: Vec<(PolicyKey, PolicyCounts)>,
}

/// What one session (or one policy lookup) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionResult {
    Success,
    Failure(FailureKey),
}

impl Tally {
    fn counts(&mut self, policy: &PolicyKey) -> &mut PolicyCounts {
        let index = match self.policies.iter().position(|(key, _)| key == policy) {
            Some(index) => index,
            None => {
                self.policies
                    .push((policy.clone(), PolicyCounts::default()));
                self.policies.len() - 1
            }
        };
        &mut self.policies[index].1
    }

    /// Counts one session under `policy`.
    pub fn count(&mut self, policy: &PolicyKey, result: SessionResult) {
        let counts = self.counts(policy);
        match result {
            SessionResult::Success => counts.successful += 1,
            SessionResult::Failure(failure) => {
                counts.failed += 1;
                match counts.failures.iter_mut().find(|(key, _)| *key == failure) {
                    Some((_, count)) => *count += 1,
                    None => counts.failures.push((failure, 1)),
                }
            }
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        for (policy, theirs) in &other.policies {
            let ours = self.counts(policy);
            ours.successful += theirs.successful;
            ours.failed += theirs.failed;
            for (failure, count) in &theirs.failures {
                match ours.failures.iter_mut().find(|(key, _)| key == failure) {
                    Some((_, ours)) => *ours += count,
                    None => ours.failures.push((failure.clone(), *count)),
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The tally as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored tally.
    ///
    /// # Errors
    /// When the bytes are not a tally.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tally, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The RFC 8460 §4.4 report of this tally for `domain` on `day` (`YYYY-MM-DD`, UTC).
    pub fn report(&self, about: &About<'_>) -> Value {
        let policies: Vec<Value> = self
            .policies
            .iter()
            .map(|(policy, counts)| {
                let mut failures: Vec<&(FailureKey, u64)> = counts.failures.iter().collect();
                failures.sort();
                json!({
                    "policy": {
                        "policy-type": policy.policy_type,
                        "policy-string": policy.policy_string,
                        "policy-domain": about.domain,
                        "mx-host": policy.mx_host,
                    },
                    "summary": {
                        "total-successful-session-count": counts.successful,
                        "total-failure-session-count": counts.failed,
                    },
                    "failure-details": failures.iter().map(|(failure, count)| {
                        let mut detail = json!({
                            "result-type": failure.result_type.as_str(),
                            "failed-session-count": count,
                        });
                        if let Some(host) = &failure.receiving_mx_hostname {
                            detail["receiving-mx-hostname"] = json!(host);
                        }
                        if let Some(ip) = &failure.receiving_ip {
                            detail["receiving-ip"] = json!(ip);
                        }
                        detail
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "organization-name": about.organization,
            "date-range": {
                "start-datetime": format!("{}T00:00:00Z", about.day),
                "end-datetime": format!("{}T23:59:59Z", about.day),
            },
            "contact-info": about.contact,
            "report-id": about.report_id(),
            "policies": policies,
        })
    }
}

/// Who reports on what.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// The policy domain.
    pub domain: &'a str,
    /// `YYYY-MM-DD`, UTC.
    pub day: &'a str,
    /// The reporting MTA's host name (the submitter).
    pub submitter: &'a str,
    pub organization: &'a str,
    pub contact: &'a str,
    /// When an operator sent it by hand (`petrel tls-report --send`): the Unix time, which
    /// gives it a report id of its own, apart from the daily report's.
    pub manual_at: Option<u64>,
}

impl About<'_> {
    /// `2026-12-07_example.org@mx.example.net`: unique per domain, day and submitter, and a
    /// valid msg-id (RFC 5322 §3.6.4: no colon), as the mail's Report-ID must be (RFC 8460 §5.3).
    pub fn report_id(&self) -> String {
        match self.manual_at {
            None => format!("{}_{}@{}", self.day, self.domain, self.submitter),
            Some(at) => format!("{}_{}.manual{at}@{}", self.day, self.domain, self.submitter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> PolicyKey {
        PolicyKey {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx_host: vec!["mx.example.org".into()],
        }
    }

    fn mismatch(host: &str) -> SessionResult {
        SessionResult::Failure(FailureKey {
            result_type: ResultType::CertificateHostMismatch,
            receiving_mx_hostname: Some(host.into()),
            receiving_ip: Some("192.0.2.1".into()),
        })
    }

    #[test]
    fn counts_merge_and_read_back() {
        let mut a = Tally::default();
        a.count(&sts(), SessionResult::Success);
        a.count(&sts(), mismatch("mx2.example.org"));
        a.count(&PolicyKey::none(), SessionResult::Success);
        let mut b = Tally::default();
        b.count(&sts(), mismatch("mx2.example.org"));
        b.count(&sts(), SessionResult::Success);
        a.merge(&b);
        let back = Tally::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(back, a);
        let (_, counts) = &back.policies[0];
        assert_eq!((counts.successful, counts.failed), (2, 2));
        assert_eq!(counts.failures.len(), 1);
        assert_eq!(counts.failures[0].1, 2);
        assert!(Tally::from_bytes(b"{\"policies\": 7}").is_err());
    }

    #[test]
    fn the_report_has_the_fields_of_rfc_8460() {
        let mut tally = Tally::default();
        tally.count(&sts(), SessionResult::Success);
        tally.count(&sts(), mismatch("mx2.example.org"));
        let about = About {
            domain: "example.org",
            day: "2026-12-07",
            submitter: "mx.example.net",
            organization: "mx.example.net",
            contact: "postmaster@mx.example.net",
            manual_at: None,
        };
        let report = tally.report(&about);
        assert_eq!(
            report["date-range"]["start-datetime"],
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(report["date-range"]["end-datetime"], "2026-12-07T23:59:59Z");
        let policy = &report["policies"][0];
        assert_eq!(policy["policy"]["policy-type"], "sts");
        assert_eq!(policy["policy"]["policy-domain"], "example.org");
        assert_eq!(policy["summary"]["total-successful-session-count"], 1);
        assert_eq!(policy["summary"]["total-failure-session-count"], 1);
        let detail = &policy["failure-details"][0];
        assert_eq!(detail["result-type"], "certificate-host-mismatch");
        assert_eq!(detail["receiving-mx-hostname"], "mx2.example.org");
        assert_eq!(detail["failed-session-count"], 1);
        assert_eq!(
            ResultType::of_certificate_error("invalid peer certificate: UnknownIssuer"),
            ResultType::CertificateNotTrusted
        );
        assert_eq!(
            ResultType::of_certificate_error("certificate not valid for name \"a\""),
            ResultType::CertificateHostMismatch
        );
    }
}
