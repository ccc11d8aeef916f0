//! petrel-server: inbound SMTP. Listeners, the connection driver that runs `proto`'s session
//! over a socket, the receiving policy, and the hand-over to the queue (250 only after the
//! message is on disk).
//!
//! Depends on proto and queue, never on delivery (they meet only in the queue). Handles
//! untrusted peers: no peer input may panic a task or stop other sessions.

pub mod aliases;
pub mod connection;
pub mod data_memory;
pub mod deadline;
pub mod greylist;
pub mod handshake;
pub mod listener;
pub mod milter;
pub mod network;
pub mod nullmx;
pub mod per_ip;
pub mod policy;
pub mod proxy_protocol;
pub mod rate;
pub mod receive;
pub mod screen;
pub mod spill;
pub mod stream;
pub mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use petrel_proto::SessionConfig;
use petrel_proto::data::BareNewline;
use petrel_queue::{Queue, QueueId};
use tokio::sync::watch;

use crate::network::IpNetwork;
use crate::policy::Policy;

/// Everything a session needs from the configuration; replaced whole on reload (SIGHUP).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub session: SessionConfig,
    pub idle_timeout: Duration,
    pub policy: Policy,
    /// Clients whose bare CR/LF is normalised although the policy rejects (S-SMUG-2).
    pub bare_newline_normalize_networks: Vec<IpNetwork>,
    /// RCPT to a relayed domain with a null MX: 556 5.1.10 (S-NULLMX-4).
    pub reject_null_mx_recipient: bool,
    /// MAIL FROM a domain with a null MX: 550 5.7.27 (S-NULLMX-5).
    pub reject_null_mx_sender: bool,
    /// The DNS lists of the door (`[screen]`).
    pub screen: Arc<screen::ScreenSettings>,
    /// `[greylist]`.
    pub greylist: greylist::GreylistSettings,
    /// New mail is refused (452 4.3.1 at MAIL) while the queue has less free space than this.
    pub min_free_bytes: u64,
    /// The bound on the memory all sessions' message buffers hold together (0: none).
    pub max_data_memory: u64,
    /// The slowest message content accepted, in octets per second (0: only the idle timeout
    /// per read).
    pub min_data_rate: u64,
    /// How long an inbound TLS handshake may wait for a slot, and then take.
    pub tls_handshake_timeout: Duration,
    /// `[[milter]]`, asked in order for every SMTP session.
    pub milters: Vec<milter::client::MilterSettings>,
    /// EHLO names of port-25 clients of the Internet checked (`screen.helo_checks`).
    pub helo_checks: bool,
    /// MAIL FROM a domain that does not exist, from a port-25 client: 550 5.1.8
    /// (`screen.reject_unknown_sender_domain`).
    pub reject_unknown_sender_domain: bool,
    /// RCPT to a relayed domain that does not exist: 550 5.1.2 (`screen.reject_unknown_recipient_domain`).
    pub reject_unknown_recipient_domain: bool,
    /// Domains (and their subdomains) with a `[[delivery.route]]`: the operator says where they
    /// go, so they are not looked up.
    pub routed_domains: Vec<String>,
    /// The certificate and key for STARTTLS and implicit TLS, when `[tls]` is configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Who may AUTH.
    pub users: Arc<users::UserStore>,
    /// Sessions one client address may hold at once (relay networks exempt).
    pub max_connections_per_ip: usize,
    /// Per-minute rates of one client address, 0 for none (relay networks exempt).
    pub max_connections_per_minute_per_ip: u32,
    pub max_messages_per_minute_per_ip: u32,
    pub max_recipients_per_minute_per_ip: u32,
    /// DKIM keys by signing domain (`[[dkim]]`); mail from authenticated users, relay networks
    /// and local submission is signed when its From: domain has one.
    pub dkim: Arc<petrel_mailauth::Signer>,
    /// Port-25 mail from other clients gets SPF, DKIM and DMARC checks and an
    /// Authentication-Results header (`policy.verify_authentication`, on by default).
    pub verify_authentication: bool,
    /// Refuse (550 5.7.1) what DMARC says to reject (`policy.dmarc_reject`, off by default).
    pub dmarc_reject: bool,
}

/// What a listener speaks (shared/INTERFACE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Port 25: STARTTLS when configured, AUTH optional.
    Smtp,
    /// Port 587: STARTTLS, AUTH required before MAIL (RFC 6409).
    Submission,
    /// Port 465: implicit TLS, AUTH required (RFC 8314).
    Submissions,
}

impl Protocol {
    /// True for the submission protocols (AUTH required, Date and Message-ID added).
    pub fn is_submission(self) -> bool {
        self != Protocol::Smtp
    }

    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Submissions => "submissions",
        }
    }
}

impl ServerSettings {
    /// The per-minute limit of `kind` (0: none).
    pub fn per_minute_limit(&self, kind: rate::RateKind) -> u32 {
        match kind {
            rate::RateKind::Connection => self.max_connections_per_minute_per_ip,
            rate::RateKind::Message => self.max_messages_per_minute_per_ip,
            rate::RateKind::Recipient => self.max_recipients_per_minute_per_ip,
        }
    }

    /// The session configuration for a client at `client` on a `protocol` listener.
    pub fn session_for(&self, client: IpAddr, protocol: Protocol) -> SessionConfig {
        let mut session = self.session.clone();
        let has_tls = self.tls.is_some();
        session.is_tls = protocol == Protocol::Submissions;
        session.can_start_tls = has_tls && protocol != Protocol::Submissions;
        session.offers_auth = has_tls && (protocol.is_submission() || !self.users.is_empty());
        session.requires_auth = protocol.is_submission();
        session.checks_helo = self.helo_checks
            && protocol == Protocol::Smtp
            && !self.policy.is_relay_client(client)
            && !self.screen.is_allowed(client);
        if self
            .bare_newline_normalize_networks
            .iter()
            .any(|n| n.contains(client))
        {
            session.bare_newline = BareNewline::Normalize;
        }
        session
    }
}

/// Where the server is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Running,
    /// Stop accepting; sessions finish their transaction, then get 421 4.3.2.
    Draining,
    /// The grace period is over: every session gets 421 4.3.2 now.
    Stopping,
}

impl Server {
    /// False, and counted in `/metrics`, when `client` is over its per-minute rate of `kind`;
    /// relay networks are exempt.
    pub fn within_rate(
        &self,
        settings: &ServerSettings,
        client: IpAddr,
        kind: rate::RateKind,
    ) -> bool {
        if settings.policy.is_relay_client(client)
            || self.rates.allow(
                client,
                kind,
                settings.per_minute_limit(kind),
                std::time::Instant::now(),
            )
        {
            return true;
        }
        petrel_metrics::registry()
            .increment(petrel_metrics::RATE_LIMITED, &[("limit", kind.as_str())]);
        false
    }
}

/// Called with the id of every message stored, so delivery can start on it.
pub type QueuedHook = Arc<dyn Fn(QueueId) + Send + Sync>;

/// What every connection shares.
pub struct Server {
    pub settings: watch::Receiver<Arc<ServerSettings>>,
    pub resolver: petrel_dns::Resolver,
    /// SPF, DKIM and DMARC checks, on the same resolver.
    pub verifier: petrel_mailauth::Verifier,
    pub queue: Arc<dyn Queue>,
    pub on_queued: QueuedHook,
    pub lifecycle: watch::Receiver<Lifecycle>,
    /// Open sessions per client address.
    pub per_ip: Arc<per_ip::PerIp>,
    /// Connection, message and recipient rates per client address.
    pub rates: rate::RateLimiter,
    /// What the door remembers of clients (pre-greet).
    pub door: screen::DoorMemory,
    /// The client networks greylisting knows are allowed.
    pub greylist: Arc<greylist::Memory>,
    /// What the sessions' message buffers hold together.
    pub data_memory: Arc<data_memory::DataMemory>,
    /// One permit per inbound TLS handshake allowed at once (`limits.max_tls_handshakes`).
    pub tls_handshakes: tokio::sync::Semaphore,
}
