//! The coordination half of the PostgreSQL queue (`petrel_queue::Claims`): claims are leases
//! on rows (`lease_owner`, `lease_until`), taken for a message this node was told of (`claim`,
//! grouped with the other claims made at the same time: batch.rs) or for every due, unleased
//! message (`claim_due`, `FOR UPDATE SKIP LOCKED`
//! so nodes never wait on each other); `leases.rs` renews them and listens for wake-ups.
//!
//! A claim fetches the row's envelope and message with it, so the delivery that follows reads
//! them from memory; the storage calls that end a delivery forget the claim. Each claim raises
//! the row's `lease_epoch` and keeps the value: the changes that end a delivery are made only
//! while the row still has it (fencing), so a node that stalled past its lease cannot overwrite
//! what the node that took the message over wrote.

use std::time::Duration;

use petrel_queue::sync::lock;
use petrel_queue::{Claims, QueueError, QueueId};

use crate::PgQueue;
use crate::queue::unix_now;

const CLAIM_DUE: &str = "WITH due AS (
        SELECT id, lease_owner FROM petrel_messages
        WHERE place = 'active' AND next_attempt <= $1
          AND (lease_until IS NULL OR lease_until < now())
        ORDER BY next_attempt, id LIMIT $2
        FOR UPDATE SKIP LOCKED)
    UPDATE petrel_messages m
    SET lease_owner = $3, lease_until = now() + make_interval(secs => $4),
        lease_epoch = m.lease_epoch + 1
    FROM due WHERE m.id = due.id
    RETURNING m.id, due.lease_owner, m.envelope, m.message, m.lease_epoch";

impl Claims for PgQueue {
    fn claim(&self, id: &QueueId) -> Result<bool, QueueError> {
        if self.holds(id) {
            return Ok(true);
        }
        // Stored leased to us moments ago: ours without asking the database.
        let kept = lock(&self.kept).remove(id);
        if let Some((stored, fetched)) = kept
            && stored.elapsed() < self.lease / 2
        {
            lock(&self.claimed).insert(id.clone(), fetched);
            petrel_metrics::registry().increment(petrel_metrics::QUEUE_CLAIMS, &[]);
            return Ok(true);
        }
        // Grouped with the claims of the other deliveries starting at the same time.
        self.claims.put_and_wait(id.clone(), ())
    }

    fn claim_due(&self, limit: usize) -> Result<Vec<QueueId>, QueueError> {
        let rows = self.rows(
            "claim_due",
            CLAIM_DUE,
            (
                unix_now(),
                i64::try_from(limit).unwrap_or(i64::MAX),
                self.node.to_string(),
                self.lease_seconds(),
            ),
        )?;
        Ok(self.note_claims(&rows))
    }

    fn holds(&self, id: &QueueId) -> bool {
        lock(&self.claimed).contains_key(id)
    }

    fn unclaim(&self, id: &QueueId) -> Result<(), QueueError> {
        let was_claimed = lock(&self.claimed).remove(id).is_some();
        if !was_claimed {
            return Ok(());
        }
        self.changed(
            "unclaim",
            "UPDATE petrel_messages SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2",
            (id.to_string(), self.node.to_string()),
        )?;
        Ok(())
    }

    fn on_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        lock(&self.wakers).push(wake);
    }

    fn rescan_interval(&self) -> Duration {
        (self.lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}
