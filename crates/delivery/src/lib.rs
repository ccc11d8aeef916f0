//! petrel-delivery: everything that leaves the queue: the scheduler, local delivery into
//! Maildir or over LMTP, the remote SMTP client with MX routing, retries and DSNs, and the
//! operator's queue control.
//!
//! Depends on proto and queue, never on server (they meet only in the queue). A message leaves
//! the queue only after every copy it owes is durable.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod client;
pub mod control;
pub mod dane_hosts;
pub mod dsn;
pub mod lmtp;
pub mod local;
pub mod maildir;
pub mod mta_sts;
pub mod mxplan;
pub mod outcome;
pub mod pool;
pub mod remote;
pub mod requiretls;
pub mod route;
pub mod schedule;
pub mod scheduler;
pub mod tls_policy;
pub mod tlsrpt;

pub use scheduler::{DeliverySettings, MAX_IN_FLIGHT, Scheduler};
