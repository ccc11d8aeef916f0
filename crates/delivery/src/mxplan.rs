//! The MX plan (RFC 5321 §5.1, RFC 7505; docs/conformance.md §11-12): from a domain's MX answer
//! to the ordered list of hosts to try, or the reason there is none.
//!
//! Pure: the DNS answer and the shuffle come in as arguments, so tests are deterministic.
//! A lone `0 .` is a permanent failure with status 5.1.10 and no connection (C-NULLMX-2); no MX
//! means the implicit MX, the domain itself (C-ROUTE-2); NXDOMAIN is permanent 5.1.2
//! (C-ROUTE-1); a temporary DNS failure is transient 4.4.3; records are sorted by preference
//! with equal ones shuffled (C-ROUTE-3); a "." beside real records is skipped (C-NULLMX-3); we
//! as one of the hosts drop that host and every less preferred one (C-ROUTE-5).

use std::net::IpAddr;

use petrel_dns::{FailureKind, MxAnswer, TemporaryFailure};
use petrel_proto::{EnhancedCode, status};
use petrel_queue::status::{Cause, DnsProblem, RouteProblem};
use petrel_queue::{DeliveryStatus, Verdict};

/// A host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedHost {
    pub name: String,
    pub preference: u16,
}

/// The hosts of one destination, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxPlan {
    Hosts(Vec<PlannedHost>),
    /// `user@[192.0.2.1]`: connect to the address, no MX lookup (C-ROUTE-7).
    Literal(IpAddr),
    /// The domain cannot be tried now: the outcome for every recipient, no connection made.
    Fail(DeliveryStatus),
}

/// Plans delivery to `domain` from its MX answer. `shuffle` reorders a run of hosts of equal
/// preference (pass a random shuffle in production, the identity in tests). `is_our_name` says
/// whether a host name is ours (our `hostname`).
pub fn plan(
    domain: &str,
    answer: &Result<MxAnswer, TemporaryFailure>,
    is_our_name: &dyn Fn(&str) -> bool,
    shuffle: &mut dyn FnMut(&mut [PlannedHost]),
) -> MxPlan {
    let records = match answer {
        Err(failure) => {
            return fail(
                Verdict::Deferred,
                status::DIRECTORY_SERVER_FAILURE,
                Cause::Dns(dns_problem(failure.kind)),
                format!("MX lookup for {domain} failed: {failure}"),
            );
        }
        Ok(MxAnswer::NullMx) => {
            return fail(
                Verdict::Failed,
                status::NULL_MX,
                Cause::Dns(DnsProblem::NullMx),
                format!("{domain} publishes a null MX: it accepts no mail (RFC 7505)"),
            );
        }
        Ok(MxAnswer::NoSuchDomain) => {
            return fail(
                Verdict::Failed,
                status::BAD_DESTINATION_SYSTEM,
                Cause::Dns(DnsProblem::NoSuchDomain),
                format!("{domain} does not exist (NXDOMAIN)"),
            );
        }
        Ok(MxAnswer::NoMx) => {
            return MxPlan::Hosts(vec![PlannedHost {
                name: domain.to_ascii_lowercase(),
                preference: 0,
            }]);
        }
        Ok(MxAnswer::Records(records)) => records,
    };
    let mut hosts: Vec<PlannedHost> = records
        .iter()
        .filter(|r| !r.exchange.is_empty())
        .map(|r| PlannedHost {
            name: r.exchange.clone(),
            preference: r.preference,
        })
        .collect();
    hosts.sort_by_key(|h| h.preference);
    let mut start = 0;
    while start < hosts.len() {
        let end = hosts[start..]
            .iter()
            .position(|h| h.preference != hosts[start].preference)
            .map_or(hosts.len(), |offset| start + offset);
        shuffle(&mut hosts[start..end]);
        start = end;
    }
    let hosts = drop_self(hosts, |host| is_our_name(&host.name));
    if hosts.is_empty() {
        return fail(
            Verdict::Failed,
            status::UNABLE_TO_ROUTE,
            Cause::Route(RouteProblem::MailLoop),
            format!("no MX host of {domain} is usable: the best one is this server (mail loop)"),
        );
    }
    MxPlan::Hosts(hosts)
}

/// Drops the first host that is us and every host not more preferred than it (C-ROUTE-5).
pub fn drop_self<T: HasPreference>(hosts: Vec<T>, is_self: impl Fn(&T) -> bool) -> Vec<T> {
    match hosts.iter().position(&is_self) {
        Some(index) => {
            let limit = hosts[index].preference();
            hosts
                .into_iter()
                .filter(|h| h.preference() < limit)
                .collect()
        }
        None => hosts,
    }
}

/// Anything ordered by MX preference.
pub trait HasPreference {
    fn preference(&self) -> u16;
}

impl HasPreference for PlannedHost {
    fn preference(&self) -> u16 {
        self.preference
    }
}

fn fail(verdict: Verdict, code: EnhancedCode, cause: Cause, reason: String) -> MxPlan {
    MxPlan::Fail(DeliveryStatus::decided(verdict, code, cause, reason))
}

/// The record's name for how a DNS lookup failed.
pub fn dns_problem(kind: FailureKind) -> DnsProblem {
    match kind {
        FailureKind::ServFail => DnsProblem::ServFail,
        FailureKind::Refused => DnsProblem::Refused,
        FailureKind::Timeout => DnsProblem::Timeout,
        FailureKind::Other => DnsProblem::Other,
    }
}

/// Parses the address of an address literal (`192.0.2.1`, `IPv6:2001:db8::1`).
pub fn literal_address(literal: &str) -> Option<IpAddr> {
    match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => literal[5..].parse().ok(),
        _ => literal.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_dns::MxRecord;

    fn records(list: &[(u16, &str)]) -> Result<MxAnswer, TemporaryFailure> {
        Ok(MxAnswer::from_records(
            list.iter()
                .map(|(p, e)| MxRecord {
                    preference: *p,
                    exchange: (*e).into(),
                })
                .collect(),
        ))
    }

    fn names(plan: &MxPlan) -> Vec<String> {
        match plan {
            MxPlan::Hosts(hosts) => hosts.iter().map(|h| h.name.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn status(plan: &MxPlan) -> String {
        match plan {
            MxPlan::Fail(outcome) => format!("{} {}", outcome.code, outcome.verdict.as_str()),
            other => panic!("{other:?}"),
        }
    }

    fn plan_of(answer: &Result<MxAnswer, TemporaryFailure>) -> MxPlan {
        plan(
            "example.org",
            answer,
            &|name| name == "mx.us.example",
            &mut |_| {},
        )
    }

    #[test]
    fn c_nullmx_2_null_mx_fails_permanently_with_5_1_10() {
        assert_eq!(status(&plan_of(&records(&[(0, "")]))), "5.1.10 failed");
    }

    #[test]
    fn c_route_1_2_nxdomain_temporary_and_implicit() {
        assert_eq!(
            status(&plan_of(&Ok(MxAnswer::NoSuchDomain))),
            "5.1.2 failed"
        );
        assert_eq!(
            status(&plan_of(&Err(TemporaryFailure::new(
                FailureKind::ServFail,
                "test"
            )))),
            "4.4.3 deferred"
        );
        let MxPlan::Fail(servfail) =
            plan_of(&Err(TemporaryFailure::new(FailureKind::ServFail, "x")))
        else {
            panic!("a SERVFAIL plans no hosts");
        };
        assert_eq!(servfail.cause, Cause::Dns(DnsProblem::ServFail));
        assert!(servfail.detail.contains("SERVFAIL"), "{}", servfail.detail);
        assert_eq!(names(&plan_of(&Ok(MxAnswer::NoMx))), ["example.org"]);
    }

    #[test]
    fn c_route_3_sorted_and_equal_preferences_shuffled() {
        let answer = records(&[(20, "c"), (10, "b"), (10, "a"), (5, "z")]);
        let plan = plan("example.org", &answer, &|_| false, &mut |run| run.reverse());
        assert_eq!(names(&plan), ["z", "a", "b", "c"]);
    }

    #[test]
    fn c_nullmx_3_dot_beside_real_records_skipped() {
        assert_eq!(
            names(&plan_of(&records(&[(0, ""), (10, "mx.example")]))),
            ["mx.example"]
        );
    }

    #[test]
    fn c_route_5_we_and_less_preferred_dropped() {
        let answer = records(&[(10, "a"), (20, "mx.us.example"), (20, "b"), (30, "c")]);
        assert_eq!(names(&plan_of(&answer)), ["a"]);
        let answer = records(&[(10, "mx.us.example"), (20, "b")]);
        assert_eq!(status(&plan_of(&answer)), "5.4.4 failed");
    }

    #[test]
    fn c_route_7_literals() {
        assert_eq!(
            literal_address("192.0.2.1"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            literal_address("IPv6:2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(literal_address("nonsense"), None);
    }
}
