//! The retry schedule (RFC 5321 §4.5.4.1, C-RETRY-1): after the n-th failed attempt the next one
//! waits `retry[n-1]` (the last interval repeats), until the message is older than `max_age`,
//! when the recipient fails with status 4.4.7.
//!
//! Pure: times are passed in as Unix seconds.

use std::time::Duration;

/// What to do with a recipient after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this Unix time.
    RetryAt(u64),
    /// Too old: give up (DSN status 4.4.7, reported as a failure).
    Expire,
}

/// The retry policy from `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub intervals: Vec<Duration>,
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetryPolicy {
            intervals: vec![
                minutes(5),
                minutes(30),
                minutes(60),
                minutes(120),
                minutes(240),
            ],
            max_age: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// Decides after attempt number `attempts` (1 for the first) failed at `now`.
    pub fn after_failure(&self, arrival: u64, attempts: u32, now: u64) -> RetryDecision {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let interval = self
            .intervals
            .get(index)
            .or(self.intervals.last())
            .map_or(300, Duration::as_secs);
        let next = now.saturating_add(interval);
        let deadline = arrival.saturating_add(self.max_age.as_secs());
        if now >= deadline {
            RetryDecision::Expire
        } else {
            RetryDecision::RetryAt(next.min(deadline))
        }
    }

    /// When the message expires, as a Unix time (for `Will-Retry-Until`).
    pub fn expiry(&self, arrival: u64) -> u64 {
        arrival.saturating_add(self.max_age.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_retry_1_schedule_then_expiry() {
        let policy = RetryPolicy {
            intervals: vec![Duration::from_secs(60), Duration::from_secs(600)],
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(
            policy.after_failure(1000, 1, 1000),
            RetryDecision::RetryAt(1060)
        );
        assert_eq!(
            policy.after_failure(1000, 2, 1100),
            RetryDecision::RetryAt(1700)
        );
        assert_eq!(
            policy.after_failure(1000, 9, 1800),
            RetryDecision::RetryAt(2400)
        );
        // Never scheduled past the expiry, and at the expiry it gives up.
        assert_eq!(
            policy.after_failure(1000, 9, 4500),
            RetryDecision::RetryAt(4600)
        );
        assert_eq!(policy.after_failure(1000, 9, 4600), RetryDecision::Expire);
    }
}
