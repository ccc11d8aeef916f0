//! The door of port 25, DNS lists (RFC 5782; issue 16, item 2): the client address is looked
//! up in every configured list at once (`d.c.b.a.<zone>` for IPv4, nibbles for IPv6), each
//! list that answers with one of its return codes adds its weight (allowlists have negative
//! weights), and a score at or over the threshold refuses the session before the greeting
//! (554 5.7.1, the lists named). Relay networks and `screen.allow_networks` are exempt.
//!
//! Lookups share the resolver's cache (answers are kept for their TTL). A list that does not
//! answer within the deadline counts as not listing the client: the door never waits longer
//! than the DNS timeout. DNS answers are untrusted: only A records in the configured ranges
//! count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use petrel_dns::{AddressAnswer, Resolver};

use crate::network::IpNetwork;

/// One `[[screen.dnsbl]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsList {
    /// The list's zone, without a final dot.
    pub zone: String,
    /// Added to the score when the list names the client; negative for an allowlist.
    pub weight: i32,
    /// Return codes that count, as inclusive ranges; empty: 127.0.0.2 to 127.0.0.255.
    pub codes: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// `[screen]`'s DNS lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenSettings {
    pub lists: Vec<DnsList>,
    /// Domain lists (`[[screen.dbl]]`): the EHLO name and the sender's domain looked up.
    pub domain_lists: Vec<DnsList>,
    /// A score at or over this refuses the session.
    pub threshold: i32,
    /// Refuse at RCPT (with the sender and recipients logged) instead of at the greeting.
    pub refuses_at_rcpt: bool,
    /// Clients never screened (besides the relay networks).
    pub allow_networks: Vec<IpNetwork>,
    /// The pre-greet wait (zero: none).
    pub pregreet: Duration,
    /// How long a client that waited is remembered (and greeted at once).
    pub pregreet_pass_ttl: Duration,
    /// How long a client that spoke first is remembered (and refused at MAIL).
    pub pregreet_penalty: Duration,
    /// Forward-confirmed reverse DNS of port-25 clients.
    pub fcrdns: Fcrdns,
}

/// What a client whose reverse DNS does not confirm its address gets (`screen.fcrdns`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fcrdns {
    /// Not checked.
    #[default]
    Off,
    /// Checked and logged only.
    Log,
    /// 450 4.7.25 at MAIL.
    Tempfail,
    /// 550 5.7.25 at MAIL (450 4.7.25 when DNS fails).
    Reject,
}

impl Fcrdns {
    /// Parses `off`, `log`, `tempfail`, `reject`.
    pub fn parse(word: &str) -> Option<Fcrdns> {
        match word {
            "off" => Some(Fcrdns::Off),
            "log" => Some(Fcrdns::Log),
            "tempfail" => Some(Fcrdns::Tempfail),
            "reject" => Some(Fcrdns::Reject),
            _ => None,
        }
    }
}

/// What forward-confirmed reverse DNS found (RFC 8601 §3 "iprev").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseDns {
    /// A PTR name whose addresses include the client's.
    Confirmed(String),
    /// No PTR name, or none that leads back to the address.
    Unconfirmed,
    /// DNS could not answer now.
    Failed(String),
}

/// The most PTR names followed (RFC 8601 §3 suggests a limit).
const MAX_PTR_NAMES: usize = 10;

/// Checks that a PTR name of `client` resolves back to it.
pub async fn forward_confirmed(resolver: &Resolver, client: IpAddr) -> ReverseDns {
    let names = match resolver.ptr(client).await {
        Ok(names) => names,
        Err(failure) => return ReverseDns::Failed(failure.to_string()),
    };
    let mut failure = None;
    for name in names.iter().take(MAX_PTR_NAMES) {
        match resolver.addresses(name).await {
            Ok(AddressAnswer::Addresses(addresses)) if addresses.contains(&client) => {
                return ReverseDns::Confirmed(name.clone());
            }
            Ok(_) => {}
            Err(error) => failure = Some(error.to_string()),
        }
    }
    match failure {
        Some(failure) => ReverseDns::Failed(failure),
        None => ReverseDns::Unconfirmed,
    }
}

impl ScreenSettings {
    /// Whether any DNS list is configured.
    pub fn has_lists(&self) -> bool {
        !self.lists.is_empty()
    }

    /// Whether `client` is exempt by `allow_networks`.
    pub fn is_allowed(&self, client: IpAddr) -> bool {
        self.allow_networks.iter().any(|n| n.contains(client))
    }
}

/// What the door decided for a session: how it is refused, if it is, and what the client sent
/// before the greeting (handed to the session as its first input).
#[derive(Debug, Default)]
pub struct Door {
    pub refusal: Option<petrel_proto::Refusal>,
    pub early_input: Vec<u8>,
    /// A DNS allowlist (a list of negative weight) names the client: not greylisted.
    pub is_allowlisted: bool,
    /// The client address's score in the DNS lists (under the threshold, or it would be
    /// refused), added to what the domain lists say at MAIL.
    pub ip_score: i32,
}

/// What the door remembers of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// Waited for the greeting.
    Passed,
    /// Spoke before the greeting.
    SpokeFirst,
}

/// The most clients remembered; beyond it the expired are forgotten, then everything.
const MAX_REMEMBERED: usize = 100_000;

/// The door's memory of clients (postscreen's cache), in this process.
#[derive(Debug, Default)]
pub struct DoorMemory {
    clients: Mutex<HashMap<IpAddr, (Remembered, Instant)>>,
}

impl DoorMemory {
    /// What is remembered of `client` and still valid under `settings`.
    pub fn recall(&self, client: IpAddr, settings: &ScreenSettings) -> Option<Remembered> {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (verdict, since) = clients.get(&client)?;
        let ttl = match verdict {
            Remembered::Passed => settings.pregreet_pass_ttl,
            Remembered::SpokeFirst => settings.pregreet_penalty,
        };
        (since.elapsed() < ttl).then_some(*verdict)
    }

    /// Remembers `verdict` for `client` from now.
    pub fn remember(&self, client: IpAddr, verdict: Remembered, settings: &ScreenSettings) {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if clients.len() >= MAX_REMEMBERED {
            let longest = settings.pregreet_pass_ttl.max(settings.pregreet_penalty);
            clients.retain(|_, (_, since)| since.elapsed() < longest);
            if clients.len() >= MAX_REMEMBERED {
                clients.clear();
            }
        }
        clients.insert(client, (verdict, Instant::now()));
    }
}

/// Parses a return code filter: `127.0.0.2` or `127.0.0.4-127.0.0.7`.
///
/// # Errors
/// A sentence naming the text.
pub fn parse_codes(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let bad = || format!("{text:?} is not a return code like 127.0.0.2 or 127.0.0.4-127.0.0.7");
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let low: Ipv4Addr = low.trim().parse().map_err(|_| bad())?;
    let high: Ipv4Addr = high.trim().parse().map_err(|_| bad())?;
    if low > high {
        return Err(bad());
    }
    Ok((low, high))
}

/// The name to look `client` up under in `zone` (RFC 5782 §2.1, §2.4).
pub fn query_name(client: IpAddr, zone: &str) -> String {
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .rev()
                .flat_map(|byte| [byte & 0x0f, byte >> 4])
                .map(|nibble| format!("{nibble:x}"))
                .collect();
            format!("{}.{zone}", nibbles.join("."))
        }
    }
}

/// Whether an answer address is one of the list's codes.
fn counts(list: &DnsList, address: &IpAddr) -> bool {
    let IpAddr::V4(v4) = address else {
        return false;
    };
    if list.codes.is_empty() {
        let [a, b, c, _] = v4.octets();
        return (a, b, c) == (127, 0, 0) && *v4 >= Ipv4Addr::new(127, 0, 0, 2);
    }
    list.codes.iter().any(|(low, high)| low <= v4 && v4 <= high)
}

/// What the lists say of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    pub total: i32,
    /// The zones that named the client (allowlists included), in configuration order.
    pub listed_by: Vec<String>,
    /// An allowlist (negative weight) named the client.
    pub is_allowlisted: bool,
    /// The domains a domain list named (`domain_score`).
    pub domains: Vec<String>,
}

/// Looks `client` up in every list at once, within `deadline`.
pub async fn score(
    resolver: &Resolver,
    settings: &ScreenSettings,
    client: IpAddr,
    deadline: Duration,
) -> Score {
    let mut lookups = tokio::task::JoinSet::new();
    for (index, list) in settings.lists.iter().enumerate() {
        let resolver = resolver.clone();
        let name = query_name(client, &list.zone);
        lookups.spawn(async move { (index, resolver.addresses(&name).await) });
    }
    let mut named = vec![false; settings.lists.len()];
    let collect = async {
        while let Some(Ok((index, answer))) = lookups.join_next().await {
            if let (Ok(AddressAnswer::Addresses(addresses)), Some(list)) =
                (answer, settings.lists.get(index))
                && addresses.iter().any(|a| counts(list, a))
                && let Some(slot) = named.get_mut(index)
            {
                *slot = true;
            }
        }
    };
    let _ = tokio::time::timeout(deadline, collect).await;
    lookups.abort_all();
    let mut score = Score::default();
    for (list, is_named) in settings.lists.iter().zip(named) {
        if is_named {
            score.total += list.weight;
            score.listed_by.push(list.zone.clone());
            score.is_allowlisted |= list.weight < 0;
        }
    }
    score
}

/// Looks `domains` up in every domain list at once (`<domain>.<zone>`), within `deadline`: a
/// list adds its weight once when it names any of them; `Score::domains` says which it named.
pub async fn domain_score(
    resolver: &Resolver,
    lists: &[DnsList],
    domains: &[String],
    deadline: Duration,
) -> Score {
    let mut lookups = tokio::task::JoinSet::new();
    for (index, list) in lists.iter().enumerate() {
        for domain in domains {
            let resolver = resolver.clone();
            let domain = domain.trim_end_matches('.').to_owned();
            let name = format!("{domain}.{}", list.zone);
            lookups.spawn(async move { (index, domain, resolver.addresses(&name).await) });
        }
    }
    let mut named = vec![false; lists.len()];
    let mut named_domains: Vec<String> = Vec::new();
    let collect = async {
        while let Some(Ok((index, domain, answer))) = lookups.join_next().await {
            if let (Ok(AddressAnswer::Addresses(addresses)), Some(list)) =
                (answer, lists.get(index))
                && addresses.iter().any(|a| counts(list, a))
                && let Some(slot) = named.get_mut(index)
            {
                *slot = true;
                if !named_domains.contains(&domain) {
                    named_domains.push(domain);
                }
            }
        }
    };
    let _ = tokio::time::timeout(deadline, collect).await;
    lookups.abort_all();
    named_domains.sort();
    let mut score = Score {
        domains: named_domains,
        ..Score::default()
    };
    for (list, is_named) in lists.iter().zip(named) {
        if is_named {
            score.total += list.weight;
            score.listed_by.push(list.zone.clone());
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5782_query_names() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "zen.example"),
            "99.2.0.192.zen.example"
        );
        let v6 = query_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "l.example");
        assert_eq!(
            v6,
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.l.example"
        );
    }

    #[test]
    fn return_codes_filter_what_counts() {
        let list = |codes: &[&str]| DnsList {
            zone: "z".into(),
            weight: 1,
            codes: codes.iter().map(|c| parse_codes(c).unwrap()).collect(),
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(counts(&list(&[]), &ip("127.0.0.2")));
        assert!(!counts(&list(&[]), &ip("127.0.0.1")), "not a listing");
        assert!(!counts(&list(&[]), &ip("127.255.255.254")), "an error code");
        let ranged = list(&["127.0.0.2", "127.0.0.4-127.0.0.7"]);
        assert!(counts(&ranged, &ip("127.0.0.5")));
        assert!(!counts(&ranged, &ip("127.0.0.3")));
        assert!(parse_codes("127.0.0.7-127.0.0.4").is_err());
        assert!(parse_codes("listed").is_err());
    }
}
