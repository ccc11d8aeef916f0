//! Coordination of several nodes that share one queue (the PostgreSQL queue): who delivers a
//! message now (a claim: a lease the queue renews while this process holds it), which due
//! messages no node holds, and wake-ups when another node leaves work.
//!
//! Apart from storage on purpose: a queue of one node (the file spool) has no `Claims` at all
//! (`Queue::claims` is `None`), and its scheduler walks `Queue::list` instead. A claim ends with
//! the storage calls that finish a delivery (`update`, `archive`, `hold`, `remove`,
//! `quarantine`) or with `unclaim`.

use std::time::Duration;

use crate::error::QueueError;
use crate::id::QueueId;

/// The coordination half of a shared queue.
pub trait Claims: Send + Sync {
    /// Takes the right to deliver `id` now; false when another node holds it or it is no
    /// longer active.
    ///
    /// # Errors
    /// `QueueError::Io` when the queue cannot be reached.
    fn claim(&self, id: &QueueId) -> Result<bool, QueueError>;

    /// Claims up to `limit` active messages that are due and held by no node.
    ///
    /// # Errors
    /// `QueueError::Io` when the queue cannot be reached.
    fn claim_due(&self, limit: usize) -> Result<Vec<QueueId>, QueueError>;

    /// Whether this process still holds a claim on `id` (answered from memory, no IO).
    fn holds(&self, id: &QueueId) -> bool;

    /// Gives a claim back unchanged (the message was not due yet, or is done with elsewhere).
    ///
    /// # Errors
    /// `QueueError::Io` when the queue cannot be reached (the lease then runs out by itself).
    fn unclaim(&self, id: &QueueId) -> Result<(), QueueError>;

    /// Registers `wake`, called when another node may have left work (mail queued or released
    /// there).
    fn on_wake(&self, wake: Box<dyn Fn() + Send + Sync>);

    /// How often the scheduler looks for due mail it was not told about (deferred mail, leases
    /// that ran out on a node that died).
    fn rescan_interval(&self) -> Duration;
}
