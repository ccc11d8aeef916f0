//! Per-request deadlines against slowloris clients (issue 18, item 3), as Postfix's
//! `smtpd_per_request_deadline` and `smtpd_min_data_rate`: a command or SASL line must arrive
//! whole within `limits.idle_timeout` of when the session began waiting for it, however its
//! octets trickle in; message content must keep up `limits.min_data_rate`: each read of N
//! octets moves the deadline N / rate seconds later, never past `idle_timeout` from now.
//! Pure: the caller gives the time.

use std::time::{Duration, Instant};

use petrel_proto::Awaiting;

/// When the client's time is up, and what for.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub awaiting: Awaiting,
}

impl Deadline {
    /// A session waiting for its first request.
    pub fn new(now: Instant, idle: Duration) -> Deadline {
        Deadline {
            at: later(now, idle),
            awaiting: Awaiting::Request,
        }
    }

    /// Before a read, with what the session awaits now and whether it has just replied (a
    /// reply means a request was completed, so the time the server then took to answer is not
    /// charged to what the client sends next).
    pub fn before_read(
        &mut self,
        awaiting: Awaiting,
        has_replied: bool,
        now: Instant,
        idle: Duration,
    ) {
        let is_new = has_replied
            || match awaiting {
                Awaiting::Request => true,
                // A request continues; one that follows content is new.
                Awaiting::RestOfRequest => self.awaiting == Awaiting::Content,
                Awaiting::Content => self.awaiting != Awaiting::Content,
            };
        if is_new {
            self.at = later(now, idle);
        }
        self.awaiting = awaiting;
    }

    /// After a read of `octets` (content moves the deadline; `min_rate` 0: each read resets
    /// it, as a plain idle timeout).
    pub fn after_read(&mut self, octets: usize, now: Instant, idle: Duration, min_rate: u64) {
        if self.awaiting != Awaiting::Content {
            return;
        }
        let limit = later(now, idle);
        self.at = if min_rate == 0 {
            limit
        } else {
            let earned = Duration::from_secs_f64(octets as f64 / min_rate as f64);
            later(self.at, earned).min(limit)
        };
    }

    /// What the log says when it passes.
    pub fn what(&self) -> &'static str {
        match self.awaiting {
            Awaiting::Request => "idle timeout",
            Awaiting::RestOfRequest => {
                "timeout: a command line not completed within limits.idle_timeout"
            }
            Awaiting::Content => "timeout: message content slower than limits.min_data_rate",
        }
    }
}

/// `at + by`, or as far as an `Instant` goes (a configured timeout of centuries).
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    #[test]
    fn a_trickled_command_line_keeps_its_first_deadline() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start, IDLE);
        deadline.before_read(Awaiting::Request, false, start, IDLE);
        for second in 1..30 {
            let now = start + Duration::from_secs(second);
            deadline.after_read(1, now, IDLE, 500);
            deadline.before_read(Awaiting::RestOfRequest, false, now, IDLE);
            assert_eq!(deadline.at, start + IDLE);
        }
        // A reply (a pipelined request completed in the same read) starts the time again.
        let replied = start + Duration::from_secs(3);
        deadline.before_read(Awaiting::RestOfRequest, true, replied, IDLE);
        assert_eq!(deadline.at, replied + IDLE);
        // The line completes: the next request gets its own time.
        let later = start + Duration::from_secs(5);
        deadline.before_read(Awaiting::Request, false, later, IDLE);
        assert_eq!(deadline.at, later + IDLE);
    }

    #[test]
    fn content_must_keep_up_the_minimum_rate() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start, IDLE);
        deadline.before_read(Awaiting::Content, false, start, IDLE);
        assert_eq!(deadline.at, start + IDLE);
        // 1,000 octets at 500 octets/s earn 2 s; a fast client is capped at idle from now.
        let now = start + Duration::from_secs(5);
        deadline.after_read(1000, now, IDLE, 500);
        assert_eq!(deadline.at, start + IDLE + Duration::from_secs(2));
        deadline.after_read(1_000_000, now, IDLE, 500);
        assert_eq!(deadline.at, now + IDLE);
        // Content continues: the deadline is not reset before a read.
        let later = start + Duration::from_secs(6);
        deadline.before_read(Awaiting::Content, false, later, IDLE);
        assert_eq!(deadline.at, now + IDLE);
        // Without a rate every read resets it.
        deadline.after_read(1, later, IDLE, 0);
        assert_eq!(deadline.at, later + IDLE);
        // A command after the content is a new request.
        let next = start + Duration::from_secs(7);
        deadline.before_read(Awaiting::RestOfRequest, false, next, IDLE);
        assert_eq!(deadline.awaiting, Awaiting::RestOfRequest);
        assert_eq!(deadline.at, next + IDLE);
    }
}
