//! This node's TLS report counts (RFC 8460 §4): sessions are counted in memory by UTC day and
//! policy domain, and written out now and then (`flush`) into the queue backend's records,
//! one record per day, domain and node (`<day>/<domain>/<node>`), so nodes never write each
//! other's counts and the whole cluster's tally is the sum of every node's record.
//!
//! Memory is bounded: beyond `MAX_PENDING_DOMAINS` domains between two flushes, new domains
//! are not counted (a report is a sample; delivery never waits for it). A record that does not
//! parse counts as empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use petrel_proto::trace::iso_date;
use petrel_queue::sync::lock;
use petrel_queue::{Queue, QueueError, Shelf};
use serde::{Deserialize, Serialize};

use super::report::{PolicyKey, SessionResult, Tally};

/// The most domains counted in memory between two flushes.
pub const MAX_PENDING_DOMAINS: usize = 10_000;

/// What one record holds: whose counts of which domain and day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub day: String,
    pub domain: String,
    pub node: String,
    pub tally: Tally,
}

/// The counts of this node.
pub struct Collector {
    queue: Arc<dyn Queue>,
    node: String,
    pending: Mutex<HashMap<(String, String), Tally>>,
    /// One flush at a time: each reads, adds to and writes this node's records.
    flushing: Mutex<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

fn key(day: &str, domain: &str, node: &str) -> String {
    format!("{day}/{}/{node}", domain_key(domain))
}

/// A domain as a part of a key: itself when short and ASCII, else a hash of it (keys become
/// file names on the spool, which have a length limit); the record holds the real name.
fn domain_key(domain: &str) -> String {
    if domain.len() <= 120 && domain.is_ascii() {
        return domain.to_owned();
    }
    // FNV-1a, 64 bits: stable across runs and nodes.
    let hash = domain
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("h{hash:016x}")
}

impl Collector {
    pub fn new(queue: Arc<dyn Queue>, node: &str) -> Collector {
        Collector {
            queue,
            node: node.to_owned(),
            pending: Mutex::new(HashMap::new()),
            flushing: Mutex::new(()),
        }
    }

    /// Counts one session with `domain`'s MX hosts under `policy`, at Unix time `now`.
    pub fn count(&self, domain: &str, policy: &PolicyKey, result: SessionResult, now: u64) {
        let day = iso_date(i64::try_from(now).unwrap_or(i64::MAX));
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut pending = lock(&self.pending);
        let slot = (day, domain);
        if !pending.contains_key(&slot) && pending.len() >= MAX_PENDING_DOMAINS {
            return;
        }
        pending.entry(slot).or_default().count(policy, result);
    }

    /// Adds the counts in memory to this node's records (blocking: call from a blocking
    /// thread). What cannot be written stays in memory for the next flush.
    ///
    /// # Errors
    /// The first error of the queue backend.
    pub fn flush(&self) -> Result<(), QueueError> {
        let _turn = lock(&self.flushing);
        let pending = std::mem::take(&mut *lock(&self.pending));
        let records = self.queue.records();
        let mut failed = Vec::new();
        let mut first_error = None;
        for ((day, domain), tally) in pending {
            let key = key(&day, &domain, &self.node);
            let written = records.get(Shelf::TlsReports, &key).and_then(|old| {
                let mut stored = old
                    .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
                    .unwrap_or(Stored {
                        day: day.clone(),
                        domain: domain.clone(),
                        node: self.node.clone(),
                        tally: Tally::default(),
                    });
                stored.tally.merge(&tally);
                let bytes = serde_json::to_vec(&stored).unwrap_or_default();
                records.put(Shelf::TlsReports, &key, &bytes)
            });
            if let Err(error) = written {
                first_error.get_or_insert(error);
                failed.push(((day, domain), tally));
            }
        }
        let mut pending = lock(&self.pending);
        for (slot, tally) in failed {
            pending.entry(slot).or_default().merge(&tally);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The whole cluster's counts of `domain` on `day` (after flushing this node's).
    ///
    /// # Errors
    /// As `flush`, or when the records cannot be read.
    pub fn tally(&self, domain: &str, day: &str) -> Result<Tally, QueueError> {
        self.flush()?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut tally = Tally::default();
        for stored in self.stored(&format!("{day}/{}/", domain_key(&domain)))? {
            if stored.domain == domain {
                tally.merge(&stored.tally);
            }
        }
        Ok(tally)
    }

    /// Every domain counted on `day`, by any node, with the cluster's tally of each.
    ///
    /// # Errors
    /// As `tally`.
    pub fn day(&self, day: &str) -> Result<Vec<(String, Tally)>, QueueError> {
        self.flush()?;
        let mut domains: HashMap<String, Tally> = HashMap::new();
        for stored in self.stored(&format!("{day}/"))? {
            if stored.day == day {
                domains
                    .entry(stored.domain)
                    .or_default()
                    .merge(&stored.tally);
            }
        }
        let mut domains: Vec<(String, Tally)> = domains.into_iter().collect();
        domains.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(domains)
    }

    fn stored(&self, prefix: &str) -> Result<Vec<Stored>, QueueError> {
        Ok(self
            .queue
            .records()
            .values_with_prefix(Shelf::TlsReports, prefix)?
            .iter()
            .filter_map(|bytes| serde_json::from_slice::<Stored>(bytes).ok())
            .collect())
    }

    /// Marks `domain`'s report of `day` as sent: `true` for the one caller (of every node) that
    /// should send it.
    ///
    /// # Errors
    /// When the records cannot be written.
    pub fn claim_sending(&self, domain: &str, day: &str) -> Result<bool, QueueError> {
        self.queue.records().put_new(
            Shelf::TlsReports,
            &format!("sent/{day}/{}", domain_key(domain)),
            self.node.as_bytes(),
        )
    }
}
