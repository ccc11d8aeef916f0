//! Per-client rates: connections, messages (at MAIL) and recipients (at RCPT) one client
//! address may start per minute (`limits.max_*_per_minute_per_ip`), like Postfix's anvil. A
//! token bucket per address and kind: it holds at most the per-minute limit and refills
//! continuously, so a client may burst up to the limit and then goes at the limit's pace.
//! Clients in `relay.networks` are exempt (the caller checks). Over the rate: 421 4.7.0 for a
//! connection, 450 4.7.1 for MAIL or RCPT, and the client may try again later.
//!
//! Time comes in as an argument (`Instant`), so the arithmetic is tested without a clock. The
//! table is bounded: past `MAX_TRACKED_ADDRESSES`, buckets that have refilled are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use petrel_queue::sync::lock;

/// Addresses tracked before full buckets are swept out.
const MAX_TRACKED_ADDRESSES: usize = 50_000;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    Connection,
    Message,
    Recipient,
}

impl RateKind {
    /// The name in `/metrics` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RateKind::Connection => "connection_rate",
            RateKind::Message => "message_rate",
            RateKind::Recipient => "recipient_rate",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every client address.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(IpAddr, RateKind), Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `client`; false when it has none left. `per_minute` 0 means no limit.
    pub fn allow(&self, client: IpAddr, kind: RateKind, per_minute: u32, now: Instant) -> bool {
        if per_minute == 0 {
            return true;
        }
        let capacity = f64::from(per_minute);
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_TRACKED_ADDRESSES {
            buckets.retain(|_, b| refilled(b, capacity, now) < capacity);
        }
        let bucket = buckets.entry((client, kind)).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        bucket.tokens = refilled(bucket, capacity, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn refilled(bucket: &Bucket, capacity: f64, now: Instant) -> f64 {
    let seconds = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + seconds * capacity / 60.0).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_to_the_limit_then_refills_at_its_pace() {
        let limiter = RateLimiter::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            assert!(limiter.allow(client, RateKind::Message, 6, start));
        }
        assert!(!limiter.allow(client, RateKind::Message, 6, start));
        // Other clients and other kinds have their own buckets.
        assert!(limiter.allow(other, RateKind::Message, 6, start));
        assert!(limiter.allow(client, RateKind::Recipient, 6, start));
        // 6 a minute is one every 10 seconds: none after 9 s, two after 20 s.
        assert!(!limiter.allow(client, RateKind::Message, 6, start + Duration::from_secs(9)));
        let later = start + Duration::from_secs(20);
        assert!(limiter.allow(client, RateKind::Message, 6, later));
        assert!(limiter.allow(client, RateKind::Message, 6, later));
        assert!(!limiter.allow(client, RateKind::Message, 6, later));
        // A long pause refills the bucket only up to the limit.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..6 {
            assert!(limiter.allow(client, RateKind::Message, 6, much_later));
        }
        assert!(!limiter.allow(client, RateKind::Message, 6, much_later));
        // Zero means no limit.
        for _ in 0..100 {
            assert!(limiter.allow(client, RateKind::Connection, 0, start));
        }
    }
}
