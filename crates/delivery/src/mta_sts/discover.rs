//! Which MTA-STS policy applies to a recipient domain now (RFC 8461 §3.3, §5.1; C-STS-1,
//! C-STS-2): the `_mta-sts` TXT record says whether the domain has one and its id; a policy
//! cached under the same id is used as it is, a new id (or a policy past half its `max_age`)
//! is fetched; a fetch that fails falls back to the cached policy while it has not expired,
//! else no policy applies (delivery goes on as for a domain without MTA-STS). With no TXT
//! record, or when DNS fails, a cached policy that has not expired still applies (§3.3).
//!
//! The cache is in memory and in the queue backend's records (`Shelf::MtaSts`), so it outlives
//! a restart and, on PostgreSQL, every node shares what one fetched. One fetch per domain at a
//! time: concurrent deliveries to the same domain wait for it.
//!
//! Every step that matters leaves a line in the delivery history. Untrusted inputs (DNS, the
//! policy file, a stored record) are parsed without panics; an unreadable record is absent.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use petrel_dns::Resolver;
use petrel_queue::sync::lock;
use petrel_queue::{Queue, Shelf};

use super::fetch::{FetchError, fetch_policy};
use super::policy::{Policy, parse_policy, parse_txt};
use crate::client::TlsClient;

/// Where the policy that applies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Fetched for this delivery.
    Fetched,
    /// The cached copy, its id unchanged.
    Cached,
    /// The cached copy, because no live policy could be had (DNS or the fetch failed, or the
    /// TXT record is gone) and it has not expired (§3.3).
    CachedFallback,
}

/// The policy that applies to a domain now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub domain: String,
    /// The id of the TXT record it was fetched under.
    pub id: String,
    pub policy: Policy,
    pub source: PolicySource,
    /// When this policy was fetched (Unix seconds).
    pub fetched_at: u64,
}

impl Applied {
    /// `mode enforce, mx mx1.example.org *.example.org, id 2026, cached`, for the history.
    pub fn describe(&self) -> String {
        let mode = match self.policy.mode {
            super::Mode::Enforce => "enforce",
            super::Mode::Testing => "testing",
            super::Mode::None => "none",
        };
        let source = match self.source {
            PolicySource::Fetched => "fetched now",
            PolicySource::Cached => "cached",
            PolicySource::CachedFallback => "cached; no live policy could be had",
        };
        format!(
            "mode {mode}, mx {}, id {} ({source})",
            self.policy.mx.join(" "),
            self.id
        )
    }

    fn expires_at(&self) -> u64 {
        self.fetched_at.saturating_add(self.policy.max_age_seconds)
    }
}

/// Finds policies, keeps them, and fetches each domain's at most once at a time.
pub struct Discovery {
    resolver: Resolver,
    queue: Arc<dyn Queue>,
    memory: Mutex<HashMap<String, Applied>>,
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Discovery")
    }
}

/// What a lookup found, for the history and for TLS reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub applied: Option<Applied>,
    /// The fetch that failed on the way, if one did.
    pub failure: Option<FetchError>,
}

impl Discovery {
    pub fn new(resolver: Resolver, queue: Arc<dyn Queue>) -> Discovery {
        Discovery {
            resolver,
            queue,
            memory: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// The policy of `domain` at Unix time `now`, writing what happened into `history`.
    pub async fn policy_for(
        &self,
        domain: &str,
        tls: &TlsClient,
        source: Option<IpAddr>,
        now: u64,
        history: &mut Vec<String>,
    ) -> Found {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let live_id = self.live_id(&domain, history).await;
        let gate = self.gate(&domain);
        let _turn = gate.lock().await;
        let cached = self.cached(&domain, now, live_id.as_deref()).await;
        let Some(id) = live_id else {
            return Found {
                applied: cached.map(|mut applied| {
                    applied.source = PolicySource::CachedFallback;
                    applied
                }),
                failure: None,
            };
        };
        if let Some(cached) = &cached {
            let is_fresh =
                now.saturating_sub(cached.fetched_at) < cached.policy.max_age_seconds / 2;
            if cached.id == id && is_fresh {
                return Found {
                    applied: Some(cached.clone()),
                    failure: None,
                };
            }
        }
        match self.fetch(&domain, &id, tls, source, now).await {
            Ok(applied) => {
                self.keep(&applied).await;
                Found {
                    applied: Some(applied),
                    failure: None,
                }
            }
            Err(failure) => {
                history.push(format!(
                    "MTA-STS policy of {domain} (id {id}) could not be fetched: {}",
                    failure.detail
                ));
                Found {
                    applied: cached.map(|mut applied| {
                        applied.source = PolicySource::CachedFallback;
                        applied
                    }),
                    failure: Some(failure),
                }
            }
        }
    }

    /// The id of the domain's one `v=STSv1` TXT record, if it has exactly one that parses.
    async fn live_id(&self, domain: &str, history: &mut Vec<String>) -> Option<String> {
        let name = format!("_mta-sts.{domain}");
        let records = match self.resolver.txt(&name).await {
            Ok(records) => records,
            Err(failure) => {
                history.push(format!("MTA-STS: TXT {name}: {failure}"));
                return None;
            }
        };
        let candidates: Vec<&String> = records
            .iter()
            .filter(|r| r.starts_with("v=STSv1"))
            .collect();
        match candidates.as_slice() {
            [] => None,
            [one] => match parse_txt(one) {
                Ok(id) => Some(id),
                Err(error) => {
                    history.push(format!("MTA-STS: TXT {name}: {error}"));
                    None
                }
            },
            _ => {
                history.push(format!(
                    "MTA-STS: TXT {name}: {} STSv1 records; none is used (RFC 8461 §3.1)",
                    candidates.len()
                ));
                None
            }
        }
    }

    fn gate(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = lock(&self.fetching);
        fetching.retain(|_, gate| Arc::strong_count(gate) > 1);
        fetching.entry(domain.to_owned()).or_default().clone()
    }

    /// The cached policy that has not expired: from memory when it is current (same id as the
    /// live record, not expired), else the newer of it and the records' copy (which another
    /// node of a cluster may have refreshed).
    async fn cached(&self, domain: &str, now: u64, live_id: Option<&str>) -> Option<Applied> {
        let in_memory = lock(&self.memory).get(domain).cloned();
        let is_current = in_memory.as_ref().is_some_and(|applied| {
            now < applied.expires_at() && live_id.is_none_or(|id| applied.id == id)
        });
        let cached = if is_current {
            in_memory
        } else {
            let queue = self.queue.clone();
            let key = domain.to_owned();
            let stored =
                tokio::task::spawn_blocking(move || queue.records().get(Shelf::MtaSts, &key))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .and_then(|bytes| decode(domain, &bytes));
            let newer = match (in_memory, stored) {
                (Some(mine), Some(theirs)) if theirs.fetched_at > mine.fetched_at => Some(theirs),
                (Some(mine), _) => Some(mine),
                (None, stored) => stored,
            };
            if let Some(applied) = &newer {
                lock(&self.memory).insert(domain.to_owned(), applied.clone());
            }
            newer
        };
        cached
            .filter(|applied| now < applied.expires_at())
            .map(|mut applied| {
                applied.source = PolicySource::Cached;
                applied
            })
    }

    async fn fetch(
        &self,
        domain: &str,
        id: &str,
        tls: &TlsClient,
        source: Option<IpAddr>,
        now: u64,
    ) -> Result<Applied, FetchError> {
        let text = fetch_policy(&self.resolver, tls, domain, source).await?;
        let policy = parse_policy(&text).map_err(|error| FetchError {
            problem: super::fetch::FetchProblem::Invalid,
            detail: format!("the policy does not parse: {error}"),
        })?;
        Ok(Applied {
            domain: domain.to_owned(),
            id: id.to_owned(),
            policy,
            source: PolicySource::Fetched,
            fetched_at: now,
        })
    }

    /// Keeps a fetched policy in memory and in the records (a failed write only means a later
    /// fetch).
    async fn keep(&self, applied: &Applied) {
        lock(&self.memory).insert(applied.domain.clone(), applied.clone());
        let queue = self.queue.clone();
        let key = applied.domain.clone();
        let bytes = encode(applied);
        let _ =
            tokio::task::spawn_blocking(move || queue.records().put(Shelf::MtaSts, &key, &bytes))
                .await;
    }
}

/// The stored form: `fetched <unix>`, `id <id>`, a blank line, the policy as served.
fn encode(applied: &Applied) -> Vec<u8> {
    let mut text = format!("fetched {}\nid {}\n\n", applied.fetched_at, applied.id);
    text.push_str(&render(&applied.policy));
    text.into_bytes()
}

/// A policy as policy-file text (what `parse_policy` reads back).
pub(crate) fn render(policy: &Policy) -> String {
    let mode = match policy.mode {
        super::Mode::Enforce => "enforce",
        super::Mode::Testing => "testing",
        super::Mode::None => "none",
    };
    let mut text = format!("version: STSv1\nmode: {mode}\n");
    for mx in &policy.mx {
        text.push_str(&format!("mx: {mx}\n"));
    }
    text.push_str(&format!("max_age: {}\n", policy.max_age_seconds));
    text
}

fn decode(domain: &str, bytes: &[u8]) -> Option<Applied> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\n\n")?;
    let mut fetched_at = None;
    let mut id = None;
    for line in head.lines() {
        match line.split_once(' ') {
            Some(("fetched", value)) => fetched_at = value.parse::<u64>().ok(),
            Some(("id", value)) => id = Some(value.to_owned()),
            _ => {}
        }
    }
    Some(Applied {
        domain: domain.to_owned(),
        id: id?,
        policy: parse_policy(body).ok()?,
        source: PolicySource::Cached,
        fetched_at: fetched_at?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mta_sts::Mode;

    #[test]
    fn a_kept_policy_reads_back_and_a_damaged_one_is_absent() {
        let applied = Applied {
            domain: "example.org".into(),
            id: "20261207".into(),
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["mx.example.org".into(), "*.example.net".into()],
                max_age_seconds: 86_400,
            },
            source: PolicySource::Fetched,
            fetched_at: 1_800_000_000,
        };
        let bytes = encode(&applied);
        let back = decode("example.org", &bytes).unwrap();
        assert_eq!(back.policy, applied.policy);
        assert_eq!(
            (back.id.as_str(), back.fetched_at),
            ("20261207", 1_800_000_000)
        );
        assert_eq!(back.expires_at(), 1_800_086_400);
        assert_eq!(
            decode("example.org", b"fetched x\nid 1\n\nversion: STSv1\n"),
            None
        );
        assert_eq!(decode("example.org", &bytes[..20]), None);
        assert_eq!(decode("example.org", &[0xff, 0xfe]), None);
    }
}
