//! Greylisting (RFC 6647; issue 16, item 4): a port-25 client's first try of a triplet (its
//! network, the sender, the recipient) is answered 451 4.7.1 at RCPT; the same triplet tried
//! again after `delay` (and within `retry_window` of the first try) passes, and its network is
//! then allowed for `lifetime` (RFC 6647 §4.2's automatic allowlisting of clients that retry),
//! as is the triplet. Relay networks, authenticated clients, `screen.allow_networks`, clients a
//! DNS allowlist names and senders whose domain is in `spf_exempt_domains` with a passing SPF
//! (the large providers, which retry from pools of addresses) are never greylisted.
//!
//! The state lives in the queue backend's records (`Shelf::Greylist`: files on the spool, a
//! table in PostgreSQL), so every node of a cluster agrees. A store that cannot be read or
//! written lets the mail through (greylisting is a nuisance filter, never a reason to lose
//! mail). Keys are hashes of the triplet and of the network (addresses can be long).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use petrel_queue::{Queue, Shelf};

/// `[greylist]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistSettings {
    pub enabled: bool,
    /// A triplet passes when tried again at least this long after its first try.
    pub delay: Duration,
    /// ... and at most this long after it (then it starts over).
    pub retry_window: Duration,
    /// How long a passed triplet, and a client network that retried, stay allowed.
    pub lifetime: Duration,
    /// Senders of these domains (and their subdomains) are not greylisted when SPF passes for
    /// the client address.
    pub spf_exempt_domains: Vec<String>,
}

impl GreylistSettings {
    /// True when the reverse-path `sender` (`<a@b>` or `a@b`) is of a domain in
    /// `spf_exempt_domains`, so that a passing SPF exempts it.
    pub fn is_spf_exempt_domain(&self, sender: &str) -> bool {
        let sender = sender.trim_start_matches('<').trim_end_matches('>');
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.spf_exempt_domains.iter().any(|listed| {
            let listed = listed.trim_end_matches('.').to_ascii_lowercase();
            domain == listed
                || domain
                    .strip_suffix(&listed)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

impl Default for GreylistSettings {
    fn default() -> GreylistSettings {
        GreylistSettings {
            enabled: false,
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(2 * 86_400),
            lifetime: Duration::from_secs(35 * 86_400),
            spf_exempt_domains: Vec::new(),
        }
    }
}

/// What greylisting says of one RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Seen before and retried in time, or an allowed network.
    Pass,
    /// A first try, or a retry too soon: 451 4.7.1.
    Wait,
}

/// The network greylisting treats as one client: the /24 of IPv4, the /64 of IPv6 (senders
/// that retry from another address of their pool are the same client).
pub fn client_network(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

fn hash(text: &str) -> String {
    let value = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{value:016x}")
}

/// A stored entry: when first tried, and when it last passed (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    first: u64,
    passed: u64,
}

impl Entry {
    fn encode(self) -> Vec<u8> {
        format!("first {}\npassed {}\n", self.first, self.passed).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut first = None;
        let mut passed = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("first", value)) => first = value.parse().ok(),
                Some(("passed", value)) => passed = value.parse().ok(),
                _ => {}
            }
        }
        Some(Entry {
            first: first?,
            passed: passed?,
        })
    }
}

/// The decision for an entry (`None`: never seen) at `now`, and the entry to store.
fn decide(entry: Option<Entry>, now: u64, settings: &GreylistSettings) -> (Verdict, Entry) {
    let delay = settings.delay.as_secs();
    let window = settings.retry_window.as_secs();
    let lifetime = settings.lifetime.as_secs();
    match entry {
        Some(entry) if entry.passed > 0 && now.saturating_sub(entry.passed) < lifetime => (
            Verdict::Pass,
            Entry {
                passed: now,
                ..entry
            },
        ),
        Some(entry) if entry.passed == 0 && now.saturating_sub(entry.first) > delay + window => {
            // The retry window ran out: a first try again.
            (
                Verdict::Wait,
                Entry {
                    first: now,
                    passed: 0,
                },
            )
        }
        Some(entry) if entry.passed == 0 && now.saturating_sub(entry.first) >= delay => (
            Verdict::Pass,
            Entry {
                passed: now,
                ..entry
            },
        ),
        Some(entry) if entry.passed == 0 => (Verdict::Wait, entry),
        _ => (
            Verdict::Wait,
            Entry {
                first: now,
                passed: 0,
            },
        ),
    }
}

/// The client networks this node knows are allowed, and until when (Unix seconds), so that a
/// client that retried once costs no store read per recipient. Allowing only grows until the
/// lifetime ends, so a node's memory never disagrees with the store of the cluster.
#[derive(Debug, Default)]
pub struct Memory {
    allowed: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// Networks remembered at most; past it the memory starts over (the store still knows).
const REMEMBERED_NETWORKS: usize = 100_000;

impl Memory {
    /// True when `client`'s network is known allowed at `now`.
    pub fn allows(&self, client: IpAddr, now: u64) -> bool {
        let Ok(allowed) = self.allowed.lock() else {
            return false;
        };
        allowed
            .get(&client_network(client))
            .is_some_and(|until| now < *until)
    }

    fn remember(&self, network: String, until: u64) {
        if let Ok(mut allowed) = self.allowed.lock() {
            if allowed.len() >= REMEMBERED_NETWORKS {
                allowed.clear();
            }
            allowed.insert(network, until);
        }
    }
}

/// Checks (and records) the triplet of `client`, `sender`, `recipient` at Unix time `now`,
/// noting in `memory` a network found or made allowed. Blocking: call from a blocking thread.
pub fn check_remembering(
    queue: &Arc<dyn Queue>,
    memory: &Memory,
    settings: &GreylistSettings,
    client: IpAddr,
    sender: &str,
    recipient: &str,
    now: u64,
) -> Verdict {
    let verdict = check(queue, settings, client, sender, recipient, now);
    if verdict == Verdict::Pass {
        let records = queue.records();
        let network = client_network(client);
        let key = format!("client-{}", hash(&network));
        if let Some(entry) = records
            .get(Shelf::Greylist, &key)
            .ok()
            .flatten()
            .and_then(|bytes| Entry::decode(&bytes))
        {
            memory.remember(network, entry.passed + settings.lifetime.as_secs());
        }
    }
    verdict
}

/// Checks (and records) the triplet of `client`, `sender`, `recipient` at Unix time `now`.
/// Blocking: call from a blocking thread.
pub fn check(
    queue: &Arc<dyn Queue>,
    settings: &GreylistSettings,
    client: IpAddr,
    sender: &str,
    recipient: &str,
    now: u64,
) -> Verdict {
    let records = queue.records();
    let network = client_network(client);
    let network_key = format!("client-{}", hash(&network));
    let network_entry = records
        .get(Shelf::Greylist, &network_key)
        .ok()
        .flatten()
        .and_then(|bytes| Entry::decode(&bytes));
    if network_entry.is_some_and(|e| now.saturating_sub(e.passed) < settings.lifetime.as_secs()) {
        return Verdict::Pass;
    }
    let triplet = format!(
        "{network}\n{}\n{}",
        sender.to_ascii_lowercase(),
        recipient.to_ascii_lowercase()
    );
    let key = format!("triplet-{}", hash(&triplet));
    let stored = match records.get(Shelf::Greylist, &key) {
        Ok(stored) => stored.and_then(|bytes| Entry::decode(&bytes)),
        Err(_) => return Verdict::Pass,
    };
    let (verdict, entry) = decide(stored, now, settings);
    if stored != Some(entry) {
        let _ = records.put(Shelf::Greylist, &key, &entry.encode());
    }
    if verdict == Verdict::Pass {
        // A client that retried is allowed as a whole (RFC 6647 §4.2).
        let allowed = Entry {
            first: now,
            passed: now,
        };
        let _ = records.put(Shelf::Greylist, &network_key, &allowed.encode());
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6647_first_try_waits_a_timely_retry_passes_a_late_one_starts_over() {
        let settings = GreylistSettings {
            enabled: true,
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(3600),
            lifetime: Duration::from_secs(86_400),
            spf_exempt_domains: Vec::new(),
        };
        let (verdict, entry) = decide(None, 1000, &settings);
        assert_eq!(verdict, Verdict::Wait);
        assert_eq!(
            decide(Some(entry), 1100, &settings).0,
            Verdict::Wait,
            "too soon"
        );
        let (verdict, passed) = decide(Some(entry), 1300, &settings);
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            decide(Some(passed), 50_000, &settings).0,
            Verdict::Pass,
            "within the lifetime"
        );
        assert_eq!(
            decide(Some(passed), 200_000, &settings).0,
            Verdict::Wait,
            "expired"
        );
        let (verdict, again) = decide(Some(entry), 1000 + 300 + 3601, &settings);
        assert_eq!(
            (verdict, again.first),
            (Verdict::Wait, 4901),
            "the window ran out"
        );
        assert_eq!(Entry::decode(&passed.encode()), Some(passed));
        assert_eq!(
            client_network("192.0.2.77".parse().unwrap()),
            "192.0.2.0/24"
        );
        assert_eq!(
            client_network("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn spf_exempt_domains_match_the_domain_and_its_subdomains_only() {
        let settings = GreylistSettings {
            spf_exempt_domains: vec!["Gmail.com".into()],
            ..GreylistSettings::default()
        };
        assert!(settings.is_spf_exempt_domain("<alice@gmail.com>"));
        assert!(settings.is_spf_exempt_domain("bob@mx.GMAIL.com."));
        assert!(!settings.is_spf_exempt_domain("<carol@notgmail.com>"));
        assert!(!settings.is_spf_exempt_domain("<>"));
        assert!(!settings.is_spf_exempt_domain("<dave@gmail.com.evil.test>"));
    }

    #[test]
    fn memory_allows_a_network_until_its_lifetime_ends() {
        let memory = Memory::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!memory.allows(client, 1000));
        memory.remember(client_network(client), 2000);
        assert!(memory.allows(client, 1999));
        assert!(memory.allows(neighbour, 1999), "the same /24");
        assert!(!memory.allows(stranger, 1999));
        assert!(!memory.allows(client, 2000), "the lifetime ended");
    }
}
