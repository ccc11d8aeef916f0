//! The walk over a destination's hosts, shared by remote delivery and `petrel probe`: the MX
//! plan of a domain (RFC 5321 §5.1, RFC 7505; `mxplan`), each host's addresses, and the
//! mail-loop check (C-ROUTE-5: an address that is one of our listeners ends the walk with
//! 5.4.4). Each step writes the history line delivery keeps, so both tell the same story.
//!
//! DNS answers are untrusted data; a failure is a typed `Cause`, never a panic.

use std::net::{IpAddr, SocketAddr};

use petrel_dns::{AddressAnswer, MxAnswer, Resolver, TemporaryFailure};
use petrel_proto::status;
use petrel_queue::status::{Cause, DnsProblem, RouteProblem};
use petrel_queue::{DeliveryStatus, Verdict};

use crate::mxplan::{MxPlan, PlannedHost, dns_problem, plan};

/// The MX answer for `domain` and the plan from it; a name in `our_names` is this server
/// (C-ROUTE-5). `is_shuffled`: equal preferences in random order (delivery), or as answered
/// (a probe, so it is repeatable).
pub async fn mx_plan(
    resolver: &Resolver,
    domain: &str,
    our_names: &[&str],
    is_shuffled: bool,
    history: &mut Vec<String>,
) -> (Result<MxAnswer, TemporaryFailure>, MxPlan) {
    let answer = resolver.mx(domain).await;
    history.push(format!("DNS MX {domain}: {}", describe_answer(&answer)));
    let is_our_name = |name: &str| our_names.iter().any(|n| n.eq_ignore_ascii_case(name));
    let plan = if is_shuffled {
        plan(domain, &answer, &is_our_name, &mut shuffle)
    } else {
        plan(domain, &answer, &is_our_name, &mut |_| {})
    };
    (answer, plan)
}

/// The addresses of `host`, or why it has none (a DNS cause) in words.
///
/// # Errors
/// The cause (NXDOMAIN, no address, SERVFAIL, ...) and a line for people.
pub async fn addresses(
    resolver: &Resolver,
    host: &PlannedHost,
    history: &mut Vec<String>,
) -> Result<Vec<IpAddr>, (Cause, String)> {
    match resolver.addresses(&host.name).await {
        Ok(AddressAnswer::Addresses(addresses)) => {
            history.push(format!(
                "{} (preference {}): {:?}",
                host.name, host.preference, addresses
            ));
            Ok(addresses)
        }
        Ok(other) => {
            history.push(format!("{}: no address ({other:?})", host.name));
            let (problem, words) = match other {
                AddressAnswer::NoSuchDomain => (DnsProblem::NoSuchDomain, "NXDOMAIN"),
                _ => (DnsProblem::NoAddress, "no A or AAAA record"),
            };
            Err((Cause::Dns(problem), words.to_owned()))
        }
        Err(failure) => {
            history.push(format!("{}: {failure}", host.name));
            Err((Cause::Dns(dns_problem(failure.kind)), failure.to_string()))
        }
    }
}

/// Whether `target` is one of our own listeners (a mail loop, C-ROUTE-5).
pub fn is_mail_loop(target: SocketAddr, own_addresses: &[SocketAddr]) -> bool {
    own_addresses.contains(&target)
}

/// The outcome of a walk that reached ourselves: 5.4.4, never retried.
pub fn mail_loop(domain: &str) -> DeliveryStatus {
    DeliveryStatus::decided(
        Verdict::Failed,
        status::UNABLE_TO_ROUTE,
        Cause::Route(RouteProblem::MailLoop),
        format!("the best MX host of {domain} is this server (mail loop)"),
    )
}

/// The MX answer in a line: `10 mx.example.net, 20 mx2.example.net`, `0 . (null MX)`, ...
fn describe_answer(answer: &Result<MxAnswer, TemporaryFailure>) -> String {
    match answer {
        Ok(MxAnswer::Records(records)) => records
            .iter()
            .map(|r| {
                let exchange = if r.exchange.is_empty() {
                    "."
                } else {
                    &r.exchange
                };
                format!("{} {exchange}", r.preference)
            })
            .collect::<Vec<_>>()
            .join(", "),
        Ok(MxAnswer::NullMx) => "0 . (null MX)".into(),
        Ok(MxAnswer::NoMx) => "no MX (implicit MX: the domain's own addresses)".into(),
        Ok(MxAnswer::NoSuchDomain) => "NXDOMAIN".into(),
        Err(failure) => failure.to_string(),
    }
}

/// Shuffles a run of equal-preference hosts (C-ROUTE-3) with a cheap clock-seeded generator.
fn shuffle(hosts: &mut [PlannedHost]) {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.subsec_nanos() as u64 | 1);
    for index in (1..hosts.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let other = usize::try_from(state % (index as u64 + 1)).unwrap_or(0);
        hosts.swap(index, other);
    }
}
