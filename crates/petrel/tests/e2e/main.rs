//! End-to-end tests of the `petrel` binary over loopback: real clients (Python's smtplib,
//! swaks, curl, lettre, dkimpy), crash safety under SIGKILL, fsync ordering under strace, bad input,
//! signals and configuration. The one integration-test binary of this crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod authentication;
mod backend;
mod bad_input;
mod clients;
mod cluster;
mod console;
mod dane;
mod directory;
mod dist;
mod dnssec;
mod durability;
mod explain;
mod fakemx;
mod forwarding;
mod full_disk;
mod greylist;
mod harness;
mod journal_fault;
mod lifecycle;
mod limits;
mod lmtp;
mod metrics;
mod milter;
mod mta_sts;
mod netns;
mod notices;
mod nullmx;
mod privileges;
mod proxy;
mod queue_tools;
mod relay;
mod requiretls;
mod rspamd;
mod screen;
mod sendmail;
mod smarthost;
mod sni;
mod streaming;
mod tls;
mod tls_reports;
mod tools;
mod web;
mod websites;
