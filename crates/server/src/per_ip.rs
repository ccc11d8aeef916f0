//! `limits.max_connections_per_ip`: how many sessions one client address may hold at once, so
//! one abusive client cannot take every slot. Clients in `relay.networks` are exempt, as in
//! Postfix. Over the limit the client hears 421 4.7.0 and is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use petrel_queue::sync::lock;

/// Open sessions per client address.
#[derive(Debug, Default)]
pub struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One session's place in the count; released when dropped.
#[derive(Debug)]
pub struct IpSlot {
    table: Arc<PerIp>,
    address: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.table.counts);
        if let Some(count) = counts.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

impl PerIp {
    /// Takes a slot for `address`, or `None` when it already holds `limit` sessions.
    pub fn acquire(self: &Arc<PerIp>, address: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: self.clone(),
            address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_releases() {
        let table = Arc::new(PerIp::default());
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let first = table.acquire(address, 2).unwrap();
        let _second = table.acquire(address, 2).unwrap();
        assert!(table.acquire(address, 2).is_none());
        assert!(table.acquire("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(table.acquire(address, 2).is_some());
    }
}
