//! Connection reuse per destination (RFC 5321 §4.5.4.1 spirit; C-ROUTE-8): after a
//! transaction the session is kept open for a few seconds, and the next message to the same
//! domain goes over it instead of a new connection, TLS handshake and EHLO.
//!
//! A reused session that turns out to be dead costs nothing but a fresh connection. Sessions
//! idle too long are dropped (closing the socket).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use petrel_queue::sync::lock;

use crate::client::Connection;

/// How long an idle session is kept.
const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// Idle sessions kept per destination: as many as deliveries to one domain may run at once
/// (`delivery.concurrency_per_domain`'s default), so a busy destination keeps its sessions
/// (and TLS handshakes stay rare) instead of opening a new one for most messages.
const MAX_IDLE_PER_DESTINATION: usize = 20;

/// Idle sessions by destination domain.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<(Connection, Instant)>>>,
}

impl Pool {
    /// An idle session to `domain`, if a fresh one is kept.
    pub(crate) fn take(&self, domain: &str) -> Option<Connection> {
        let mut idle = lock(&self.idle);
        let sessions = idle.get_mut(domain)?;
        sessions.retain(|(_, since)| since.elapsed() < IDLE_LIMIT);
        sessions.pop().map(|(connection, _)| connection)
    }

    /// Keeps a ready session for the next message to `domain`.
    pub(crate) fn put(&self, domain: &str, connection: Connection) {
        let mut idle = lock(&self.idle);
        let sessions = idle.entry(domain.to_owned()).or_default();
        if sessions.len() < MAX_IDLE_PER_DESTINATION {
            sessions.push((connection, Instant::now()));
        }
    }

    /// Drops sessions idle too long.
    pub fn sweep(&self) {
        let mut idle = lock(&self.idle);
        for sessions in idle.values_mut() {
            sessions.retain(|(_, since)| since.elapsed() < IDLE_LIMIT);
        }
        idle.retain(|_, sessions| !sessions.is_empty());
    }
}
