//! The configuration file (shared/INTERFACE.md): where it is looked for, the embedded defaults,
//! and its translation into the plain settings structs of `server` and `delivery`.
//!
//! The only module that reads settings files or the environment. Every error names the file,
//! the line and the key or value at fault; an unknown key is an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use petrel_delivery::schedule::RetryPolicy;
use petrel_proto::data::BareNewline;
use petrel_server::network::IpNetwork;
use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "system_hostname")]
    pub hostname: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_listeners")]
    pub listener: Vec<ListenerConfig>,
    #[serde(default)]
    pub local: LocalConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    /// `[http]`: when present, the reference pages (and later /metrics) are served.
    pub http: Option<HttpConfig>,
    /// `[tls]`: when present, STARTTLS is offered and `submissions` listeners work.
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[[dkim]]`: one signing key per domain.
    #[serde(default)]
    pub dkim: Vec<DkimConfig>,
    #[serde(default)]
    pub privileges: PrivilegesConfig,
    /// `[screen]`: the checks at the door of "smtp" listeners.
    #[serde(default)]
    pub screen: ScreenConfig,
    /// `[greylist]`: RFC 6647 greylisting at RCPT, off by default.
    #[serde(default)]
    pub greylist: GreylistConfig,
    /// `[srs]`: the sender rewriting of forwarded mail, when configured.
    pub srs: Option<SrsConfig>,
    /// `[[milter]]`: milters asked, in order, for every SMTP session.
    #[serde(default)]
    pub milter: Vec<MilterConfig>,
}

/// One `[[milter]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilterConfig {
    /// What `[[listener]] milters` calls it; its address when not given.
    #[serde(default)]
    pub name: Option<String>,
    /// `host:port` (an address) or `unix:/path/to/socket`.
    pub address: String,
    /// When the milter cannot be asked: "tempfail" (the default) or "accept".
    #[serde(default = "tempfail")]
    pub default_action: String,
    /// For each exchange with the milter.
    #[serde(default = "milter_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn tempfail() -> String {
    "tempfail".into()
}

fn milter_timeout() -> Duration {
    Duration::from_secs(30)
}

impl MilterConfig {
    /// The milter as the server asks it.
    ///
    /// # Errors
    /// An address that is neither `host:port` nor `unix:/path`, an unknown default action.
    pub fn settings(&self) -> Result<petrel_server::milter::client::MilterSettings, String> {
        use petrel_server::milter::client::{DefaultAction, MilterAddress, MilterSettings};
        let address = match self.address.strip_prefix("unix:") {
            Some(path) => MilterAddress::Unix(PathBuf::from(path)),
            None => MilterAddress::Tcp(self.address.parse().map_err(|_| {
                format!(
                    "milter.address: {:?} is not an address like 127.0.0.1:11332 or unix:/run/milter.sock",
                    self.address
                )
            })?),
        };
        let default_action = match self.default_action.as_str() {
            "tempfail" => DefaultAction::Tempfail,
            "accept" => DefaultAction::Accept,
            other => {
                return Err(format!(
                    "milter.default_action: {other:?} is not \"tempfail\" or \"accept\""
                ));
            }
        };
        Ok(MilterSettings {
            name: self.name.clone().unwrap_or_else(|| self.address.clone()),
            address,
            default_action,
            timeout: self.timeout,
        })
    }
}

/// `[srs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrsConfig {
    /// The domain rewritten senders are in (one of ours: bounces to it come here).
    pub domain: String,
    /// A file holding the secret of the SRS hashes (any bytes; keep it, or old bounces fail).
    pub secret_file: PathBuf,
}

impl SrsConfig {
    /// The rewriting, with its secret read.
    ///
    /// # Errors
    /// The secret file cannot be read or is empty.
    pub fn srs(&self) -> Result<petrel_mailauth::srs::Srs, String> {
        let secret = std::fs::read(&self.secret_file)
            .map_err(|e| format!("srs.secret_file {}: {e}", self.secret_file.display()))?;
        let secret = secret.trim_ascii();
        if secret.is_empty() {
            return Err(format!(
                "srs.secret_file {} is empty",
                self.secret_file.display()
            ));
        }
        Ok(petrel_mailauth::srs::Srs::new(secret, &self.domain))
    }
}

/// `[greylist]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    pub enabled: bool,
    /// A retry passes after this long.
    #[serde(deserialize_with = "duration")]
    pub delay: Duration,
    /// ... and within this long of the first try.
    #[serde(deserialize_with = "duration")]
    pub retry_window: Duration,
    /// How long a passed triplet and a client network that retried stay allowed.
    #[serde(deserialize_with = "duration")]
    pub lifetime: Duration,
    /// Senders of these domains (and subdomains) are not greylisted when SPF passes: large
    /// providers retry from pools of addresses, so greylisting only delays them.
    pub spf_exempt_domains: Vec<String>,
}

/// The providers whose SPF-passing mail is never greylisted, unless configured otherwise.
const SPF_EXEMPT_DOMAINS: [&str; 9] = [
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "yahoo.com",
    "aol.com",
    "icloud.com",
    "me.com",
];

impl Default for GreylistConfig {
    fn default() -> GreylistConfig {
        let defaults = petrel_server::greylist::GreylistSettings::default();
        GreylistConfig {
            enabled: defaults.enabled,
            delay: defaults.delay,
            retry_window: defaults.retry_window,
            lifetime: defaults.lifetime,
            spf_exempt_domains: SPF_EXEMPT_DOMAINS.map(str::to_owned).to_vec(),
        }
    }
}

/// `[screen]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenConfig {
    /// When relaying, refuse a recipient whose domain does not exist (NXDOMAIN: 550 5.1.2;
    /// a failed lookup: 451 4.4.3), so nothing is queued that can only bounce. Not with a
    /// relayhost, nor for domains with a `[[delivery.route]]`.
    pub reject_unknown_recipient_domain: bool,
    /// Check the EHLO names of port-25 clients outside the relay networks: garbage 501 5.5.4,
    /// this host's own name 550 5.7.1.
    pub helo_checks: bool,
    /// Refuse MAIL FROM a domain that does not exist (550 5.1.8) from port-25 clients outside
    /// the relay networks: replies to it could not be delivered.
    pub reject_unknown_sender_domain: bool,
    /// `[[screen.dnsbl]]`: DNS blocklists and allowlists (RFC 5782), none by default.
    pub dnsbl: Vec<DnsblConfig>,
    /// `[[screen.dbl]]`: domain lists for the sender's domain and the EHLO name, scored at MAIL
    /// with the client address's score; none by default.
    pub dbl: Vec<DnsblConfig>,
    /// A score (the weights of the lists that name the client) at or over this refuses the
    /// session before the greeting; default 1.
    pub dnsbl_threshold: i32,
    /// Where a listed client is refused: "connect" (the greeting, the default) or "rcpt".
    pub dnsbl_action: String,
    /// Clients never screened, besides the relay networks.
    #[serde(deserialize_with = "networks")]
    pub allow_networks: Vec<IpNetwork>,
    /// The pre-greet wait: "220-" first, the rest after this long; a client that speaks in
    /// between is refused at MAIL. "0s" (the default): no wait.
    #[serde(deserialize_with = "duration")]
    pub pregreet: Duration,
    /// How long a client that waited is remembered and greeted at once.
    #[serde(deserialize_with = "duration")]
    pub pregreet_pass_ttl: Duration,
    /// How long a client that spoke first stays refused at MAIL.
    #[serde(deserialize_with = "duration")]
    pub pregreet_penalty: Duration,
    /// Forward-confirmed reverse DNS: "off" (the default), "log", "tempfail" (450 4.7.25 at
    /// MAIL) or "reject" (550 5.7.25).
    pub fcrdns: String,
}

/// One `[[screen.dnsbl]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsblConfig {
    pub zone: String,
    /// Negative for an allowlist.
    #[serde(default = "one")]
    pub weight: i32,
    /// Return codes that count: "127.0.0.2" or "127.0.0.4-127.0.0.7"; empty: 127.0.0.2-255.
    #[serde(default)]
    pub codes: Vec<String>,
}

fn one() -> i32 {
    1
}

/// `[[screen.dnsbl]]` or `[[screen.dbl]]` as the server uses them.
fn dns_lists(
    key: &str,
    lists: &[DnsblConfig],
) -> Result<Vec<petrel_server::screen::DnsList>, String> {
    let mut out = Vec::new();
    for list in lists {
        let zone = list.zone.trim().trim_end_matches('.').to_ascii_lowercase();
        if zone.is_empty() || zone.contains(char::is_whitespace) {
            return Err(format!("{key}: {:?} is not a zone", list.zone));
        }
        let codes = list
            .codes
            .iter()
            .map(|c| petrel_server::screen::parse_codes(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{key} {zone}: {e}"))?;
        out.push(petrel_server::screen::DnsList {
            zone,
            weight: list.weight,
            codes,
        });
    }
    Ok(out)
}

impl Default for ScreenConfig {
    fn default() -> ScreenConfig {
        ScreenConfig {
            reject_unknown_recipient_domain: true,
            reject_unknown_sender_domain: true,
            helo_checks: true,
            dnsbl: Vec::new(),
            dbl: Vec::new(),
            dnsbl_threshold: 1,
            dnsbl_action: "connect".into(),
            allow_networks: Vec::new(),
            pregreet: Duration::ZERO,
            pregreet_pass_ttl: Duration::from_secs(86_400),
            pregreet_penalty: Duration::from_secs(3_600),
            fcrdns: "off".into(),
        }
    }
}

impl ScreenConfig {
    /// The DNS lists as the server uses them.
    ///
    /// # Errors
    /// A zone that is empty, a return code that does not parse.
    pub fn screen_settings(&self) -> Result<petrel_server::screen::ScreenSettings, String> {
        let lists = dns_lists("screen.dnsbl", &self.dnsbl)?;
        let domain_lists = dns_lists("screen.dbl", &self.dbl)?;
        let fcrdns = petrel_server::screen::Fcrdns::parse(&self.fcrdns).ok_or_else(|| {
            format!(
                "screen.fcrdns: {:?} is not one of \"off\", \"log\", \"tempfail\", \"reject\"",
                self.fcrdns
            )
        })?;
        let refuses_at_rcpt = match self.dnsbl_action.as_str() {
            "connect" => false,
            "rcpt" => true,
            other => {
                return Err(format!(
                    "screen.dnsbl_action: {other:?} is not \"connect\" or \"rcpt\""
                ));
            }
        };
        Ok(petrel_server::screen::ScreenSettings {
            domain_lists,
            refuses_at_rcpt,
            fcrdns,
            lists,
            threshold: self.dnsbl_threshold,
            allow_networks: self.allow_networks.clone(),
            pregreet: self.pregreet,
            pregreet_pass_ttl: self.pregreet_pass_ttl,
            pregreet_penalty: self.pregreet_penalty,
        })
    }
}

/// `[privileges]`: started as root, petrel binds its ports and then runs as `user`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegesConfig {
    pub user: Option<String>,
    /// Default: the user's own group.
    pub group: Option<String>,
}

/// One `[[dkim]]` table: mail whose From: domain is `domain` is signed with this key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub domain: String,
    #[serde(default = "default_dkim_selector")]
    pub selector: String,
    pub private_key: PathBuf,
}

impl Config {
    /// The PostgreSQL queue's settings, when `queue.backend = "postgres"`.
    pub fn postgres_settings(&self) -> Option<petrel_pgqueue::PgSettings> {
        if self.queue.backend != QueueBackend::Postgres {
            return None;
        }
        Some(petrel_pgqueue::PgSettings {
            url: self.queue.postgres_url.clone()?,
            node_name: self
                .queue
                .node_name
                .clone()
                .unwrap_or_else(|| self.hostname.clone()),
            lease: self.queue.lease,
            pool_size: self.queue.postgres_pool_size,
            claim_ahead: 0,
        })
    }

    /// The spool's sync mode from `queue.sync`.
    pub fn sync_mode(&self) -> petrel_queue::SyncMode {
        match self.queue.sync {
            Some(QueueSync::Fsync) => petrel_queue::SyncMode::Fsync,
            Some(QueueSync::Syncfs) => petrel_queue::SyncMode::Syncfs,
            Some(QueueSync::Journal) => petrel_queue::SyncMode::Journal,
            None => petrel_queue::SyncMode::default(),
        }
    }
}

/// The selector `petrel dkim keygen` and `[[dkim]]` use when none is given.
pub fn default_dkim_selector() -> String {
    "petrel".into()
}

/// `[tls]`: one certificate (`certificate` and `private_key`), or several chosen by the name
/// a client asks for with SNI (`[[tls.certificate]]`, each with `names`, `certificate` and
/// `key`, and/or a `directory` of one directory per host name); the first also answers
/// clients that ask for no name or another one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: Option<CertificateSetting>,
    pub private_key: Option<PathBuf>,
    /// A directory with one directory per host name, each holding `fullchain.pem` and
    /// `privkey.pem` (as certbot's `live/`), read again on SIGHUP; after the certificates
    /// named above, if any.
    pub directory: Option<PathBuf>,
}

/// `tls.certificate`: a PEM file, or the certificates by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CertificateSetting {
    File(PathBuf),
    ByName(Vec<NamedCertificate>),
}

/// One `[[tls.certificate]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCertificate {
    /// The host names it answers for (`*.example.org` for one label under it).
    pub names: Vec<String>,
    /// The chain, leaf first (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl TlsConfig {
    /// The certificates: (names, chain file, key file); the first is the default.
    ///
    /// # Errors
    /// `directory` cannot be read.
    pub fn certificates(&self) -> Result<Vec<(Vec<String>, PathBuf, PathBuf)>, String> {
        let mut certificates = match (&self.certificate, &self.private_key) {
            (Some(CertificateSetting::File(certificate)), Some(key)) => {
                vec![(Vec::new(), certificate.clone(), key.clone())]
            }
            (Some(CertificateSetting::ByName(named)), _) => named
                .iter()
                .map(|n| (n.names.clone(), n.certificate.clone(), n.key.clone()))
                .collect(),
            _ => Vec::new(),
        };
        if let Some(directory) = &self.directory {
            let entries = std::fs::read_dir(directory)
                .map_err(|e| format!("tls.directory {}: {e}", directory.display()))?;
            let mut hosts: Vec<(String, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join("fullchain.pem").is_file())
                .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
                .collect();
            hosts.sort();
            for (name, path) in hosts {
                certificates.push((
                    vec![name],
                    path.join("fullchain.pem"),
                    path.join("privkey.pem"),
                ));
            }
        }
        Ok(certificates)
    }

    fn check(&self) -> Result<(), String> {
        match (&self.certificate, &self.private_key) {
            (None, None) if self.directory.is_none() => Err(
                "tls: name a certificate (and private_key), [[tls.certificate]] or a directory"
                    .into(),
            ),
            (None, None) => Ok(()),
            (None, Some(_)) => Err("tls: private_key needs certificate".into()),
            (Some(CertificateSetting::File(_)), None) => {
                Err("tls: certificate needs private_key".into())
            }
            (Some(CertificateSetting::ByName(_)), Some(_)) => Err(
                "tls: with [[tls.certificate]] each one names its key; private_key is not used"
                    .into(),
            ),
            (Some(CertificateSetting::ByName(named)), None) if named.is_empty() => {
                Err("tls: no [[tls.certificate]]".into())
            }
            (Some(CertificateSetting::ByName(named)), None) => {
                match named.iter().find(|n| n.names.is_empty()) {
                    Some(n) => Err(format!(
                        "tls.certificate {}: names is empty",
                        n.certificate.display()
                    )),
                    None => Ok(()),
                }
            }
            (Some(CertificateSetting::File(_)), Some(_)) => Ok(()),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// One `name:argon2-hash` per line; `petrel user add NAME` writes it.
    pub users_file: Option<PathBuf>,
    /// User lines from the directory, after the users file's (not a key of the file).
    #[serde(skip)]
    pub directory_users: String,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub address: SocketAddr,
    /// `[http.mta_sts]`: the MTA-STS policy of petrel's own domains, served at
    /// `/.well-known/mta-sts.txt` (RFC 8461 §3.2; put it behind HTTPS as
    /// `https://mta-sts.<domain>/`).
    pub mta_sts: Option<MtaStsPolicyConfig>,
    /// A file holding the token of the JSON API at `/api/v1/` (`Authorization: Bearer
    /// TOKEN`); no API without it. Read at start.
    pub api_token_file: Option<PathBuf>,
    /// The queue console at `/queue/`: login with the users of `[auth] users_file`. Off
    /// unless set.
    #[serde(default)]
    pub console: bool,
    /// The networks the console answers (others get 403); loopback when not given.
    #[serde(default, deserialize_with = "networks")]
    pub console_networks: Vec<IpNetwork>,
    /// HTTPS instead of HTTP, with the certificates of `[tls]` (chosen by SNI as on the
    /// mail listeners, reloaded on SIGHUP).
    #[serde(default)]
    pub tls: bool,
}

/// `[http.mta_sts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaStsPolicyConfig {
    /// "enforce", "testing" or "none".
    pub mode: String,
    /// The MX host names (or `*.` patterns) senders may deliver to.
    #[serde(default)]
    pub mx: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
}

impl MtaStsPolicyConfig {
    /// The policy file (CR LF lines, RFC 8461 §3.2).
    pub fn render(&self) -> String {
        let mut text = format!("version: STSv1\r\nmode: {}\r\n", self.mode);
        for mx in &self.mx {
            text.push_str(&format!("mx: {mx}\r\n"));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age.as_secs()));
        text
    }
}

/// `[queue]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// How long `queue show` can find a delivered or bounced message.
    #[serde(deserialize_with = "duration")]
    pub keep_history: Duration,
    /// "spool" (files under data_dir) or "postgres" (many nodes, one queue).
    pub backend: QueueBackend,
    /// The database of `backend = "postgres"`.
    pub postgres_url: Option<String>,
    /// This node's name in the shared queue; the host name when not set. Unique per node.
    pub node_name: Option<String>,
    /// How long a node's claim on a message lasts without renewal: a node that dies leaves its
    /// messages to the others after this long.
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
    /// Database connections a node opens at most.
    pub postgres_pool_size: usize,
    /// How a store is made durable before its 250: "journal" (one shared fdatasync of the
    /// spool's preallocated journal per group of messages, the default on Linux), "syncfs"
    /// (files, one shared syncfs(2) per group) or "fsync" (each file fsynced, directories
    /// shared).
    pub sync: Option<QueueSync>,
    /// New mail is refused with 452 4.3.1 at MAIL while the spool's filesystem has less free
    /// than this (Postfix's queue_minfree); by default one and a half times
    /// `limits.max_message_bytes`, as Postfix's smtpd asks. 0 turns the check off.
    pub min_free_bytes: Option<u64>,
}

/// `queue.backend`: where the queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// Files under `<data_dir>/queue`.
    Spool,
    /// A PostgreSQL database shared by the nodes (`postgres_url`).
    Postgres,
}

/// `queue.sync`: how the spool makes a store durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueSync {
    /// One shared fdatasync of the spool's journal per group of stores; messages become files
    /// when they stay queued (the default on Linux).
    Journal,
    /// One shared syncfs(2) per group of stores.
    Syncfs,
    /// Each file fsynced by its writer, directory fsyncs shared.
    Fsync,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            keep_history: Duration::from_secs(7 * 24 * 3600),
            backend: QueueBackend::Spool,
            postgres_url: None,
            node_name: None,
            lease: Duration::from_secs(60),
            postgres_pool_size: 16,
            sync: None,
            min_free_bytes: None,
        }
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// TCP port used to reach remote MX hosts.
    pub port: u16,
    /// Waits between attempts; then the last one repeats.
    #[serde(deserialize_with = "durations")]
    pub retry: Vec<Duration>,
    /// Then the recipient fails with 4.4.7.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    pub concurrency_per_domain: usize,
    /// Outbound TLS level: "none", "may" (the default; "opportunistic"), "encrypt"
    /// ("required") or "verify"; "dane" and "dane-only" come later.
    pub tls: String,
    /// Trust anchors besides the system's (PEM), for private CAs and tests.
    pub ca_file: Option<PathBuf>,
    /// At level "may", retry a host in plaintext when its TLS handshake fails.
    pub tls_plaintext_fallback: bool,
    /// Hosts that may get AUTH over TLS whose certificate is not verified (by name).
    pub auth_unverified_hosts: Vec<String>,
    /// `[[delivery.tls_policy]]`: a level per domain (and its subdomains).
    pub tls_policy: Vec<TlsPolicyConfig>,
    /// Honour the MTA-STS policies of recipient domains (RFC 8461); on by default.
    pub mta_sts: bool,
    /// Count outbound TLS sessions and send daily reports to the domains that ask for them
    /// (RFC 8460); on by default.
    pub tls_reports: bool,
    /// Honour TLSA records (DANE, RFC 7672) when `dns.validating` says the DNS answers are
    /// validated; on by default.
    pub dane: bool,
    /// A smarthost for all remote mail: `[host]:port` (its addresses) or `host:port` (its MX).
    pub relayhost: Option<String>,
    /// `user:/path/to/password-file` for AUTH at the relayhost (sent only inside TLS).
    pub relayhost_auth: Option<String>,
    /// `[[delivery.route]]`: a next hop per domain (and its subdomains).
    pub route: Vec<RouteConfig>,
    /// The EHLO name of outbound sessions (default: `hostname`).
    pub helo_name: Option<String>,
    /// The local address outbound connections are made from.
    pub source_address: Option<std::net::IpAddr>,
    /// One delay notice (DSN Action: delayed) when a recipient has waited this long; "0s": none.
    #[serde(deserialize_with = "duration")]
    pub delay_notice_after: Duration,
}

/// One `[[delivery.tls_policy]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPolicyConfig {
    pub domain: String,
    pub level: String,
    /// With "verify": the names the certificate may have instead of the MX host's.
    #[serde(default, rename = "match")]
    pub match_names: Vec<String>,
    /// With "may": retry in plaintext after a failed handshake.
    #[serde(default)]
    pub plaintext_fallback: bool,
}

/// One `[[delivery.route]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub domain: String,
    pub nexthop: String,
    /// `user:/path/to/password-file`, as `relayhost_auth`.
    pub auth: Option<String>,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        let policy = RetryPolicy::default();
        DeliveryConfig {
            port: 25,
            retry: policy.intervals,
            max_age: policy.max_age,
            concurrency_per_domain: 20,
            tls: "may".into(),
            ca_file: None,
            tls_plaintext_fallback: false,
            auth_unverified_hosts: Vec::new(),
            tls_policy: Vec::new(),
            mta_sts: true,
            tls_reports: true,
            dane: true,
            relayhost: None,
            relayhost_auth: None,
            route: Vec::new(),
            helo_name: None,
            source_address: None,
            delay_notice_after: Duration::from_secs(4 * 3600),
        }
    }
}

/// `[dns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `ip:port` of the servers to ask; empty means the system configuration.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    #[serde(default = "default_dns_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// The nameservers validate DNSSEC (a local unbound, say): their AD bit is trusted, which
    /// DANE needs. Only loopback nameservers may be named so.
    #[serde(default)]
    pub validating: bool,
}

impl DnsConfig {
    /// The resolver this configuration asks.
    ///
    /// # Errors
    /// The system's configuration cannot be read, or `validating` names a non-loopback server.
    pub fn resolver(&self) -> Result<petrel_dns::Resolver, String> {
        let resolver = petrel_dns::Resolver::new(&self.nameservers, self.timeout)
            .map_err(|error| error.to_string())?;
        if resolver.asks_local_nameserver() {
            tracing::warn!(
                nameserver = %petrel_dns::LOCAL_NAMESERVER,
                "/etc/resolv.conf names no nameserver: asking the local machine's, as resolv.conf(5) says (set dns.nameservers to choose)"
            );
        }
        if self.validating {
            return resolver
                .trusting_ad_of(&self.nameservers)
                .map_err(|error| error.to_string());
        }
        Ok(resolver)
    }
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: default_dns_timeout(),
            validating: false,
        }
    }
}

fn default_dns_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    #[serde(default)]
    pub protocol: Protocol,
    /// The `[[milter]]`s this listener's sessions are asked by, by name (or address); every
    /// one when not given, none with `[]`.
    #[serde(default)]
    pub milters: Option<Vec<String>>,
    /// Connections start with a PROXY protocol header (version 1 or 2) naming the client,
    /// as HAProxy's `send-proxy` sends; only from `proxy_networks`.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The networks of the proxies allowed to send the PROXY header.
    #[serde(default, deserialize_with = "networks")]
    pub proxy_networks: Vec<IpNetwork>,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Smtp,
    Submission,
    Submissions,
}

impl Protocol {
    /// The server's own name for the protocol.
    pub fn server_protocol(self) -> petrel_server::Protocol {
        match self {
            Protocol::Smtp => petrel_server::Protocol::Smtp,
            Protocol::Submission => petrel_server::Protocol::Submission,
            Protocol::Submissions => petrel_server::Protocol::Submissions,
        }
    }

    /// The name used in the configuration and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Submissions => "submissions",
        }
    }
}

/// `[local]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    #[serde(default = "default_local_domains")]
    pub domains: Vec<String>,
    #[serde(default = "default_delimiter")]
    pub recipient_delimiter: String,
    pub mailboxes: Option<Vec<String>>,
    /// `name: target, target` lines (see the `aliases` module of petrel-server).
    pub aliases: Option<PathBuf>,
    /// Deliver local mail over LMTP (`127.0.0.1:24`, or a Unix socket `/path`) instead of
    /// into Maildir.
    pub lmtp: Option<String>,
    /// Where `petrel domain|mailbox|alias|user` keep what they manage: "file" (this file,
    /// the aliases file, the users file) or "postgres" (the directory tables, shared by every
    /// node and used by each within seconds of a change, beside what the files hold).
    #[serde(default)]
    pub store: DirectoryStore,
    /// The directory's database when `store = "postgres"`; `queue.postgres_url` when not set.
    pub postgres_url: Option<String>,
    /// Alias lines from the directory, after the aliases file's (not a key of the file).
    #[serde(skip)]
    pub directory_aliases: String,
}

/// `local.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryStore {
    #[default]
    File,
    Postgres,
}

impl Default for LocalConfig {
    fn default() -> LocalConfig {
        LocalConfig {
            domains: default_local_domains(),
            recipient_delimiter: default_delimiter(),
            mailboxes: None,
            aliases: None,
            lmtp: None,
            store: DirectoryStore::File,
            postgres_url: None,
            directory_aliases: String::new(),
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "yes")]
    pub reject_null_mx_recipient: bool,
    #[serde(default = "yes")]
    pub reject_null_mx_sender: bool,
    #[serde(default, deserialize_with = "bare_newline")]
    pub bare_newline: BareNewline,
    #[serde(default, deserialize_with = "networks")]
    pub bare_newline_normalize_networks: Vec<IpNetwork>,
    /// SPF, DKIM and DMARC checks of port-25 mail, reported in Authentication-Results.
    #[serde(default = "yes")]
    pub verify_authentication: bool,
    /// Refuse (550 5.7.1) mail that fails DMARC when the From: domain says `p=reject`.
    #[serde(default)]
    pub dmarc_reject: bool,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            reject_null_mx_recipient: true,
            reject_null_mx_sender: true,
            bare_newline: BareNewline::Reject,
            bare_newline_normalize_networks: Vec::new(),
            verify_authentication: true,
            dmarc_reject: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[relay]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    #[serde(default = "default_relay_networks", deserialize_with = "networks")]
    pub networks: Vec<IpNetwork>,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            networks: default_relay_networks(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_message_bytes: u64,
    pub max_recipients: usize,
    /// How long a session waits for a whole command line (however its octets trickle in:
    /// Postfix's per-request deadline) and, between reads, for message content.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    pub max_connections: usize,
    /// Relay networks are exempt.
    pub max_connections_per_ip: usize,
    /// Per-minute rates of one client address (0: none); relay networks are exempt.
    pub max_connections_per_minute_per_ip: u32,
    pub max_messages_per_minute_per_ip: u32,
    pub max_recipients_per_minute_per_ip: u32,
    pub max_command_line_bytes: usize,
    pub max_data_line_bytes: usize,
    pub max_errors: u32,
    /// The memory all SMTP sessions' message content may hold together (on the file spool a
    /// message past 64 KiB streams to disk, so this counts the parts in memory and the
    /// messages read back whole for DKIM, SPF/DMARC and milters); a message that would pass
    /// it gets 452 4.3.1 at its end, and while it is reached so does every new message (a
    /// first BDAT at once). 0: no bound.
    pub max_data_memory: u64,
    /// The slowest message content accepted, in octets per second (Postfix's
    /// smtpd_min_data_rate): each read of N octets gives the client N / rate more seconds,
    /// never more than idle_timeout from then. 0: only idle_timeout per read.
    pub min_data_rate: u64,
    /// Inbound TLS handshakes (STARTTLS, port 465) running at once; the others wait. Read at
    /// start (a reload keeps the number the server started with).
    pub max_tls_handshakes: usize,
    /// How long an inbound TLS handshake may wait for a slot, and then take; past either the
    /// connection is closed.
    #[serde(deserialize_with = "duration")]
    pub tls_handshake_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_message_bytes: 36_700_160,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 50,
            max_connections_per_minute_per_ip: 600,
            max_messages_per_minute_per_ip: 600,
            max_recipients_per_minute_per_ip: 6000,
            max_command_line_bytes: 2048,
            max_data_line_bytes: 65_536,
            max_errors: 20,
            max_data_memory: 256 << 20,
            min_data_rate: 500,
            max_tls_handshakes: 100,
            tls_handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the configuration came from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("the embedded defaults"),
        }
    }
}

/// Finds the file: `--config`, `$PETREL_CONFIG`, `./petrel.toml`, `/etc/petrel/petrel.toml`,
/// else the embedded defaults.
pub fn locate(explicit: Option<&Path>) -> Source {
    if let Some(path) = explicit {
        return Source::File(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PETREL_CONFIG").filter(|p| !p.is_empty()) {
        return Source::File(PathBuf::from(path));
    }
    for candidate in ["petrel.toml", "/etc/petrel/petrel.toml"] {
        if Path::new(candidate).is_file() {
            return Source::File(PathBuf::from(candidate));
        }
    }
    Source::Embedded
}

/// Reads and checks the configuration.
///
/// # Errors
/// A message naming the file, the line and what is wrong.
pub fn load(source: &Source) -> Result<Config, String> {
    let (name, text) = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read the configuration: {e}", path.display()))?;
            (path.display().to_string(), text)
        }
        Source::Embedded => ("embedded defaults".to_owned(), String::new()),
    };
    let config: Config = toml::from_str(&text).map_err(|e| describe(&name, &text, &e))?;
    config.validate().map_err(|e| format!("{name}: {e}"))?;
    Ok(config)
}

/// The fuzz target `configuration` (fuzz/, which includes this file): any text read as a
/// configuration gives a checked `Config` or a message naming the line, never a panic.
/// Replayed over the corpus by the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub fn fuzz_configuration(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match toml::from_str::<Config>(text) {
        Ok(config) => {
            if config.validate().is_ok() {
                let _ = config.screen.screen_settings();
                let _ = config.postgres_settings();
                let _ = config.sync_mode();
                for milter in &config.milter {
                    let _ = milter.settings();
                }
            }
        }
        Err(error) => {
            let _ = describe("fuzz", text, &error);
        }
    }
}

fn describe(name: &str, text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("{name}:{line}: {message} (in `{line_text}`)")
        }
        None => format!("{name}: {message}"),
    }
}

/// A TLS level the configuration may name.
fn check_tls_level(key: &str, word: &str) -> Result<(), String> {
    match petrel_delivery::tls_policy::parse_level(word) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{key}: {word:?} is not a TLS level; use \"none\", \"may\", \"encrypt\", \"verify\", \"dane\" or \"dane-only\""
        )),
    }
}

impl DnsConfig {
    /// `validating` only with loopback nameservers.
    fn resolver_check(&self) -> Result<(), String> {
        if self.nameservers.is_empty() {
            return Err("dns.validating needs dns.nameservers: the validating resolver's address (on loopback)".into());
        }
        match self.nameservers.iter().find(|a| !a.ip().is_loopback()) {
            Some(remote) => Err(format!(
                "dns.validating: {remote} is not on loopback; only a local validating resolver's AD bit is trusted"
            )),
            None => Ok(()),
        }
    }
}

impl Config {
    /// The directory's database URL when `local.store = "postgres"`.
    pub fn directory_url(&self) -> Option<&str> {
        if self.local.store != DirectoryStore::Postgres {
            return None;
        }
        self.local
            .postgres_url
            .as_deref()
            .or(self.queue.postgres_url.as_deref())
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(tls) = &self.tls {
            tls.check()?;
        }
        if self.listener.is_empty() {
            return Err("listener: at least one [[listener]] is needed".into());
        }
        if self.local.store == DirectoryStore::Postgres && self.directory_url().is_none() {
            return Err(
                "local.store = \"postgres\" needs local.postgres_url or queue.postgres_url".into(),
            );
        }
        if let Some(http) = &self.http {
            if http.console
                && self.auth.users_file.is_none()
                && self.local.store == DirectoryStore::File
            {
                return Err("http.console: the console's users are those of [auth] users_file (or of local.store = \"postgres\"); set it (petrel user add NAME writes it)".into());
            }
            if http.tls && self.tls.is_none() {
                return Err(
                    "http.tls: HTTPS uses the certificates of [tls]; configure them".into(),
                );
            }
            if http
                .console_networks
                .iter()
                .any(|network| !network.is_loopback())
                && !http.tls
            {
                return Err("http.console_networks: a client that is not on loopback needs HTTPS (http.tls = true): the console's cookie is Secure, and a password must not cross the network in clear".into());
            }
            if !http.console && !http.console_networks.is_empty() {
                return Err("http.console_networks is set but http.console is not".into());
            }
        }
        for listener in &self.listener {
            if listener.proxy_protocol && listener.proxy_networks.is_empty() {
                return Err(format!(
                    "listener {}: proxy_protocol needs proxy_networks, the networks of the proxies allowed to send the PROXY header",
                    listener.address
                ));
            }
            if !listener.proxy_protocol && !listener.proxy_networks.is_empty() {
                return Err(format!(
                    "listener {}: proxy_networks is set but proxy_protocol is not",
                    listener.address
                ));
            }
            if listener.protocol != Protocol::Smtp && self.tls.is_none() {
                return Err(format!(
                    "listener {}: protocol \"{}\" needs a [tls] certificate and key (AUTH is only offered inside TLS)",
                    listener.address,
                    listener.protocol.as_str()
                ));
            }
        }
        self.screen.screen_settings()?;
        let mut milter_names = Vec::new();
        for milter in &self.milter {
            milter_names.push(milter.settings()?.name);
        }
        for listener in &self.listener {
            for name in listener.milters.iter().flatten() {
                if !milter_names.contains(name) {
                    return Err(format!(
                        "listener {}: milters names {name:?}, which no [[milter]] is (its name, or its address when it has none)",
                        listener.address
                    ));
                }
            }
        }
        check_tls_level("delivery.tls", &self.delivery.tls)?;
        let names_dane = std::iter::once(self.delivery.tls.as_str())
            .chain(self.delivery.tls_policy.iter().map(|p| p.level.as_str()))
            .any(|level| level.starts_with("dane"));
        if names_dane && !self.dns.validating {
            return Err("delivery.tls: the DANE levels need dns.validating = true (a validating resolver on loopback in dns.nameservers)".into());
        }
        if self.dns.validating {
            self.dns.resolver_check()?;
        }
        for policy in &self.delivery.tls_policy {
            check_tls_level(
                &format!("delivery.tls_policy {}", policy.domain),
                &policy.level,
            )?;
        }
        if let Some(policy) = self.http.as_ref().and_then(|h| h.mta_sts.as_ref()) {
            petrel_delivery::mta_sts::parse_policy(&policy.render())
                .map_err(|e| format!("http.mta_sts: {e}"))?;
        }
        if let Some(path) = &self.delivery.ca_file {
            std::fs::metadata(path)
                .map_err(|e| format!("delivery.ca_file {}: {e}", path.display()))?;
        }
        if self.queue.backend == QueueBackend::Postgres && self.queue.postgres_url.is_none() {
            return Err(
                "queue.postgres_url: backend = \"postgres\" needs the database's URL, e.g. \"postgres://petrel@127.0.0.1:5432/petrel\"".into(),
            );
        }
        if self.queue.lease < Duration::from_secs(1) {
            return Err("queue.lease: must be at least 1s".into());
        }
        if self.limits.max_recipients < 100 {
            return Err("limits.max_recipients: must be at least 100 (RFC 5321 §4.5.3.1.8)".into());
        }
        if self.limits.max_command_line_bytes < 512 {
            return Err(
                "limits.max_command_line_bytes: must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
            );
        }
        if self.limits.max_data_line_bytes < 998 {
            return Err(
                "limits.max_data_line_bytes: must be at least 998 (RFC 5321 §4.5.3.1.6)".into(),
            );
        }
        if self.limits.max_errors == 0 || self.limits.max_connections == 0 {
            return Err("limits: max_errors and max_connections must be above 0".into());
        }
        for domain in &self.local.domains {
            if !petrel_proto::address::is_domain_name(domain) {
                return Err(format!("local.domains: {domain:?} is not a domain name"));
            }
        }
        for (index, dkim) in self.dkim.iter().enumerate() {
            if !petrel_proto::address::is_domain_name(&dkim.domain) {
                return Err(format!(
                    "dkim.domain: {:?} is not a domain name",
                    dkim.domain
                ));
            }
            if !petrel_proto::address::is_domain_name(&dkim.selector) {
                return Err(format!(
                    "dkim.selector: {:?} is not a DNS name",
                    dkim.selector
                ));
            }
            if self.dkim[..index]
                .iter()
                .any(|d| d.domain.eq_ignore_ascii_case(&dkim.domain))
            {
                return Err(format!(
                    "dkim: {} has two [[dkim]] tables; one key per domain",
                    dkim.domain
                ));
            }
        }
        Ok(())
    }
}

/// This system's host name (a valid domain name), else "localhost".
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| petrel_proto::address::is_domain_name(name))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("petrel-data")
}

fn default_listeners() -> Vec<ListenerConfig> {
    vec![ListenerConfig {
        address: SocketAddr::from(([127, 0, 0, 1], 2525)),
        protocol: Protocol::Smtp,
        milters: None,
        proxy_protocol: false,
        proxy_networks: Vec::new(),
    }]
}

fn default_local_domains() -> Vec<String> {
    vec!["localhost".to_owned()]
}

fn default_delimiter() -> String {
    "+".to_owned()
}

fn default_relay_networks() -> Vec<IpNetwork> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| IpNetwork::parse(n).ok())
        .collect()
}

fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNetwork>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| IpNetwork::parse(text).map_err(serde::de::Error::custom))
        .collect()
}

fn durations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    if texts.is_empty() {
        return Err(serde::de::Error::custom("needs at least one interval"));
    }
    texts
        .iter()
        .map(|text| {
            humantime::parse_duration(text).map_err(|e| {
                serde::de::Error::custom(format!("{text:?} is not a duration like \"5m\": {e}"))
            })
        })
        .collect()
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"30s\" or \"5m\": {e}"
        ))
    })
}

fn bare_newline<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BareNewline, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "reject" => Ok(BareNewline::Reject),
        "normalize" => Ok(BareNewline::Normalize),
        other => Err(serde::de::Error::custom(format!(
            "{other:?} is not \"reject\" or \"normalize\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus of the `configuration` fuzz target.
    #[test]
    fn fuzz_corpus_replays() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/configuration");
        let mut count = 0;
        for entry in std::fs::read_dir(corpus).unwrap() {
            super::fuzz_configuration(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0);
    }

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| describe("petrel.toml", text, &e))?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn embedded_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.listener[0].address.to_string(), "127.0.0.1:2525");
        assert_eq!(config.local.domains, ["localhost"]);
        assert_eq!(config.data_dir, PathBuf::from("petrel-data"));
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn tls_levels_and_policies() {
        let config = parse("[delivery]\ntls = \"verify\"\n\n[[delivery.tls_policy]]\ndomain = \"example.net\"\nlevel = \"encrypt\"\nmatch = [\"mx.example.net\"]\n").unwrap();
        assert_eq!(
            config.delivery.tls_policy[0].match_names,
            ["mx.example.net"]
        );
        assert!(
            parse("[delivery]\ntls = \"opportunistic\"\n").is_ok(),
            "old spelling"
        );
        assert!(parse("[delivery]\ndane = false\nmta_sts = false\n").is_ok());
        let error =
            parse("[[screen.dnsbl]]\nzone = \"zen.test\"\ncodes = [\"listed\"]\n").unwrap_err();
        assert!(error.contains("screen.dnsbl zen.test"), "{error}");
        assert!(
            parse(
                "[screen]\ndnsbl_threshold = 3\n[[screen.dnsbl]]\nzone = \"a.test\"\nweight = -2\n"
            )
            .is_ok()
        );
        let error =
            parse("[dns]\nnameservers = [\"192.0.2.1:53\"]\nvalidating = true\n").unwrap_err();
        assert!(error.contains("not on loopback"), "{error}");
        assert!(parse("[dns]\nnameservers = [\"127.0.0.1:53\"]\nvalidating = true\n\n[delivery]\ntls = \"dane-only\"\n").is_ok());
        let error = parse("[delivery]\ntls = \"dane\"\n").unwrap_err();
        assert!(error.contains("dns.validating"), "{error}");
        let error =
            parse("[[delivery.tls_policy]]\ndomain = \"x.test\"\nlevel = \"high\"\n").unwrap_err();
        assert!(
            error.contains("x.test") && error.contains("not a TLS level"),
            "{error}"
        );
        let error = parse("[delivery]\nca_file = \"/nonexistent/ca.pem\"\n").unwrap_err();
        assert!(error.contains("delivery.ca_file"), "{error}");
        let http = "[http]\naddress = \"127.0.0.1:0\"\n[http.mta_sts]\nmax_age = \"1d\"\n";
        let error = parse(&format!("{http}mode = \"strict\"\nmx = [\"a.test\"]\n")).unwrap_err();
        assert!(
            error.contains("http.mta_sts") && error.contains("mode"),
            "{error}"
        );
        let error = parse(&format!("{http}mode = \"enforce\"\n")).unwrap_err();
        assert!(error.contains("without mx"), "{error}");
    }

    #[test]
    fn errors_name_key_and_line() {
        let error = parse("hostname = \"a\"\n[limits]\nidle_tmeout = \"5m\"\n").unwrap_err();
        assert!(
            error.starts_with("petrel.toml:3: unknown field `idle_tmeout`"),
            "{error}"
        );
        let error = parse("[relay]\nnetworks = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(
            error.starts_with("petrel.toml:2:") && error.contains("10.0.0.0/33"),
            "{error}"
        );
        let error = parse("[limits]\nshutdown_grace = \"soon\"\n").unwrap_err();
        assert!(
            error.starts_with("petrel.toml:2:") && error.contains("shutdown_grace"),
            "{error}"
        );
    }
}
