//! The bound on message data in flight (issue 18, item 1): the octets of message content the
//! sessions hold together, counted against `limits.max_data_memory`. A session whose message
//! would pass it has that message refused (452 4.3.1 at its end, the data still read), and
//! while the bound is reached a new message is refused the same way (its first BDAT at once),
//! so a crowd of large messages cannot exhaust the machine. Shown as the gauge
//! `petrel_data_memory_bytes`. It counts content octets held in memory (with streaming,
//! `spill`, a large message's first part and its latest, or the whole message while a step
//! reads it at once); the buffers' spare capacity (up to as much again) and the copy a store
//! makes are not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What all sessions hold now.
#[derive(Debug, Default)]
pub struct DataMemory {
    used: AtomicU64,
    /// Told whenever a share is given back, for sessions waiting for room.
    freed: tokio::sync::Notify,
}

impl DataMemory {
    /// Completes once some share is given back after it was enabled (tokio's `Notified`).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// Takes `bytes` more unless that would pass `limit` (0: no bound).
    fn try_take(&self, bytes: u64, limit: u64) -> bool {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            if limit > 0 && next > limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        add_to_gauge(bytes, 1);
        true
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        add_to_gauge(bytes, -1);
        if bytes > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Whether the bound is reached: a new message would be refused at its first octets.
    pub fn is_full(&self, limit: u64) -> bool {
        limit > 0 && self.used.load(Ordering::Relaxed) >= limit
    }
}

fn add_to_gauge(bytes: u64, sign: i64) {
    let delta = i64::try_from(bytes)
        .unwrap_or(i64::MAX)
        .saturating_mul(sign);
    petrel_metrics::registry().add(petrel_metrics::DATA_MEMORY, &[], delta);
}

/// One session's share, given back when the session ends or its message is done.
#[derive(Debug)]
pub struct DataShare {
    memory: Arc<DataMemory>,
    held: u64,
}

impl DataShare {
    pub fn new(memory: Arc<DataMemory>) -> DataShare {
        DataShare { memory, held: 0 }
    }

    /// Makes the share `bytes` (what the session's buffers hold now); false when growing it
    /// would pass `limit`, and then nothing is taken.
    pub fn hold(&mut self, bytes: u64, limit: u64) -> bool {
        if bytes > self.held {
            if !self.memory.try_take(bytes - self.held, limit) {
                return false;
            }
        } else {
            self.memory.give_back(self.held - bytes);
        }
        self.held = bytes;
        true
    }

    /// Gives the whole share back.
    pub fn release(&mut self) {
        self.memory.give_back(self.held);
        self.held = 0;
    }
}

impl Drop for DataShare {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_bounded_together_and_given_back() {
        let memory = Arc::new(DataMemory::default());
        let mut a = DataShare::new(memory.clone());
        let mut b = DataShare::new(memory.clone());
        assert!(a.hold(600, 1000));
        assert!(!b.hold(500, 1000), "600 + 500 passes 1000");
        assert!(b.hold(400, 1000));
        assert!(memory.is_full(1000));
        assert!(a.hold(100, 1000), "shrinking always works");
        assert!(!memory.is_full(1000));
        drop(a);
        b.release();
        assert!(!memory.is_full(1));
        assert!(b.hold(5000, 0), "0 is no bound");
    }
}
