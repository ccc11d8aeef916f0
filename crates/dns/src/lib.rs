//! petrel-dns: the resolver shared by receiving (null-MX checks at MAIL and RCPT) and delivery
//! (MX routing), with typed answers that keep apart what RFC 5321 §5.1 and RFC 7505 treat
//! differently: MX records, a null MX, no MX at all (implicit MX), a name that does not exist,
//! and a temporary failure.
//!
//! Built on hickory-resolver, pointed at `dns.nameservers` (ip:port, so tests can run a server
//! on loopback) or at the system configuration; its cache keeps answers within their TTL.
//! Names are queried fully qualified (no search domains, C-ROUTE-6). Handles untrusted DNS
//! answers; never panics.

#[cfg(feature = "test-responder")]
pub mod responder;
pub mod validated;

pub use validated::{TlsaRecord, Validated};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

/// Where the system's configuration sends queries when it names no nameserver.
pub const LOCAL_NAMESERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53);

/// Whether `/etc/resolv.conf` names a nameserver. resolv.conf(5): "If there are no nameserver
/// lines, the default is to use the name server on the local machine", and so do the C
/// library's resolver and Postfix; hickory refuses such a configuration (or a missing file)
/// instead, and petrel would not start. Without one, `LOCAL_NAMESERVER` is asked. A file that
/// cannot be read for another reason is left to hickory, which says why.
fn system_has_nameservers() -> bool {
    match std::fs::read_to_string("/etc/resolv.conf") {
        Ok(text) => names_a_nameserver(&text),
        Err(error) => error.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Whether resolv.conf `text` has a `nameserver` line.
fn names_a_nameserver(text: &str) -> bool {
    text.lines().any(|line| {
        line.trim_start()
            .strip_prefix("nameserver")
            .is_some_and(|rest| rest.starts_with([' ', '\t']))
    })
}

/// The TLS configuration hickory's resolver is given. Left without one, it builds one for DNS
/// over TLS from the system's trust store as it starts, and fails where there is none (a
/// minimal container without ca-certificates, an empty `SSL_CERT_FILE`), so petrel could not
/// start there. petrel asks its nameservers over UDP and TCP only: this configuration is never
/// used, and trusts nothing.
fn unused_tls_config() -> Result<rustls::ClientConfig, ResolverError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        .map_err(|e| ResolverError(format!("cannot start the DNS resolver: {e}")))
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// The exchange host, lower-case, without the final dot; empty for ".".
    pub exchange: String,
}

/// What the DNS says about a domain's mail exchangers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// One or more MX records (possibly with a "." among real ones, C-NULLMX-3).
    Records(Vec<MxRecord>),
    /// Exactly one MX, preference 0, exchange ".": the domain accepts no mail (RFC 7505 §3).
    NullMx,
    /// The domain exists but has no MX: the implicit MX is the domain itself (C-ROUTE-2).
    NoMx,
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
}

impl MxAnswer {
    /// Classifies a set of MX records (RFC 7505 §3: a null MX is the only record).
    pub fn from_records(records: Vec<MxRecord>) -> MxAnswer {
        match records.as_slice() {
            [] => MxAnswer::NoMx,
            [only] if only.exchange.is_empty() && only.preference == 0 => MxAnswer::NullMx,
            _ => MxAnswer::Records(records),
        }
    }
}

/// What the DNS says about a host's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressAnswer {
    Addresses(Vec<IpAddr>),
    /// The name exists but has no A or AAAA record.
    NoAddresses,
    NoSuchDomain,
}

/// A lookup that could not be answered now (SERVFAIL, timeout, no server): retry later (4.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryFailure {
    pub kind: FailureKind,
    /// The resolver's own words, for logs.
    pub detail: String,
}

/// How a lookup failed, as the delivery record and the log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server answered SERVFAIL (RFC 1035 §4.1.1 RCODE 2).
    ServFail,
    /// The server answered REFUSED (RCODE 5).
    Refused,
    /// No answer in time.
    Timeout,
    /// Anything else: no server reachable, another RCODE, a malformed answer.
    Other,
}

impl FailureKind {
    /// `SERVFAIL`, `REFUSED`, `timeout` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ServFail => "SERVFAIL",
            FailureKind::Refused => "REFUSED",
            FailureKind::Timeout => "timeout",
            FailureKind::Other => "failure",
        }
    }
}

impl TemporaryFailure {
    /// A failure of `kind`, `detail` saying more.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> TemporaryFailure {
        TemporaryFailure {
            kind,
            detail: detail.into(),
        }
    }

    fn from_error(error: &NetError) -> TemporaryFailure {
        let kind = match error {
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => FailureKind::ServFail,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => FailureKind::Refused,
            NetError::Timeout => FailureKind::Timeout,
            NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FailureKind::Timeout,
            _ => FailureKind::Other,
        };
        TemporaryFailure::new(kind, error.to_string())
    }
}

impl std::fmt::Display for TemporaryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DNS {} ({})", self.kind.as_str(), self.detail)
    }
}

impl std::error::Error for TemporaryFailure {}

/// The resolver cannot be made: the system's configuration does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverError(pub String);

impl std::fmt::Display for ResolverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResolverError {}

/// The resolver.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    /// The validating nameservers whose AD bit is trusted (`dns.validating`), or none.
    validating: Vec<SocketAddr>,
    timeout: Duration,
    /// Asked for the system's nameservers where the system names none: `LOCAL_NAMESERVER`.
    asks_local_nameserver: bool,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver asking `nameservers` (UDP, then TCP on truncation), or the system's
    /// configuration when the list is empty. Call inside a Tokio runtime.
    ///
    /// # Errors
    /// When the system configuration cannot be read.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Resolver, ResolverError> {
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = 2;
        options.ndots = 0;
        let asks_local_nameserver = nameservers.is_empty() && !system_has_nameservers();
        let builder = if nameservers.is_empty() && !asks_local_nameserver {
            TokioResolver::builder_tokio().map_err(|e| {
                ResolverError(format!("cannot read the system DNS configuration: {e}"))
            })?
        } else {
            let nameservers = if nameservers.is_empty() {
                &[LOCAL_NAMESERVER][..]
            } else {
                nameservers
            };
            let mut config = ResolverConfig::default();
            for address in nameservers {
                let mut udp = ConnectionConfig::udp();
                udp.port = address.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = address.port();
                config.add_name_server(NameServerConfig::new(address.ip(), true, vec![udp, tcp]));
            }
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let inner = builder
            .with_options(options)
            .with_tls_config(unused_tls_config()?)
            .build()
            .map_err(|e| ResolverError(format!("cannot start the DNS resolver: {e}")))?;
        Ok(Resolver {
            inner,
            validating: Vec::new(),
            timeout,
            asks_local_nameserver,
        })
    }

    /// Trusts the AD bit of `nameservers`, which validate DNSSEC (unbound, say), for the
    /// lookups DANE needs (`tlsa`, `mx_security`). Only loopback nameservers are trusted: an
    /// AD bit that crossed a network proves nothing.
    ///
    /// # Errors
    /// A nameserver that is not on loopback, or none at all.
    pub fn trusting_ad_of(mut self, nameservers: &[SocketAddr]) -> Result<Resolver, ResolverError> {
        if nameservers.is_empty() {
            return Err(ResolverError(
                "dns.validating needs dns.nameservers: the validating resolver's address".into(),
            ));
        }
        if let Some(remote) = nameservers.iter().find(|a| !a.ip().is_loopback()) {
            return Err(ResolverError(format!(
                "dns.validating: {remote} is not on loopback; only a local validating resolver's AD bit is trusted"
            )));
        }
        self.validating = nameservers.to_vec();
        Ok(self)
    }

    /// Whether DNSSEC answers can be told from others (`dns.validating`).
    pub fn is_validating(&self) -> bool {
        !self.validating.is_empty()
    }

    /// The TLSA records of `host`'s `port`/tcp (`_25._tcp.mx.example.org`, RFC 7672 §2.2), with
    /// whether they are validated.
    pub async fn tlsa(&self, host: &str, port: u16) -> Validated<Vec<TlsaRecord>> {
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        match validated::ask(&self.validating, &name, RecordType::TLSA, self.timeout).await {
            Validated::Secure(records) => Validated::Secure(validated::tlsa_records(records)),
            Validated::Insecure(records) => Validated::Insecure(validated::tlsa_records(records)),
            Validated::Failed(failure) => Validated::Failed(failure),
        }
    }

    /// Whether `host`'s address answer (A) is validated (RFC 7672 §2.2.2: TLSA records are
    /// looked up only for hosts whose address records are secure).
    pub async fn address_security(&self, host: &str) -> Validated<()> {
        match validated::ask(&self.validating, host, RecordType::A, self.timeout).await {
            Validated::Secure(_) => Validated::Secure(()),
            Validated::Insecure(_) => Validated::Insecure(()),
            Validated::Failed(failure) => Validated::Failed(failure),
        }
    }

    /// Whether `domain`'s MX answer is validated (RFC 7672 §2.2.1: DANE applies to MX hosts
    /// only when the MX RRset is secure).
    pub async fn mx_security(&self, domain: &str) -> Validated<()> {
        match validated::ask(&self.validating, domain, RecordType::MX, self.timeout).await {
            Validated::Secure(_) => Validated::Secure(()),
            Validated::Insecure(_) => Validated::Insecure(()),
            Validated::Failed(failure) => Validated::Failed(failure),
        }
    }

    /// Whether it asks `LOCAL_NAMESERVER` because it was to ask the system's nameservers and
    /// /etc/resolv.conf names none (for the caller to say so).
    pub fn asks_local_nameserver(&self) -> bool {
        self.asks_local_nameserver
    }

    /// The underlying hickory resolver, shared with SPF, DKIM and DMARC checks so that they ask
    /// the same servers and share one cache.
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The MX answer for `domain` (an A-label or U-label name, without a final dot).
    ///
    /// # Errors
    /// `TemporaryFailure` for SERVFAIL, timeouts and unreachable servers.
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer, TemporaryFailure> {
        match self.inner.mx_lookup(fully_qualified(domain)).await {
            Ok(lookup) => Ok(MxAnswer::from_records(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some(MxRecord {
                            preference: mx.preference,
                            exchange: host_name(&mx.exchange.to_ascii()),
                        }),
                        _ => None,
                    })
                    .collect(),
            )),
            Err(error) => match negative(&error) {
                Some(Negative::NoSuchDomain) => Ok(MxAnswer::NoSuchDomain),
                Some(Negative::NoRecords) => Ok(MxAnswer::NoMx),
                None => Err(TemporaryFailure::from_error(&error)),
            },
        }
    }

    /// The A and AAAA addresses of `host`, in the resolver's order.
    ///
    /// # Errors
    /// `TemporaryFailure` for SERVFAIL, timeouts and unreachable servers.
    pub async fn addresses(&self, host: &str) -> Result<AddressAnswer, TemporaryFailure> {
        match self.inner.lookup_ip(fully_qualified(host)).await {
            Ok(lookup) => {
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                Ok(if addresses.is_empty() {
                    AddressAnswer::NoAddresses
                } else {
                    AddressAnswer::Addresses(addresses)
                })
            }
            Err(error) => match negative(&error) {
                Some(Negative::NoSuchDomain) => Ok(AddressAnswer::NoSuchDomain),
                Some(Negative::NoRecords) => Ok(AddressAnswer::NoAddresses),
                None => Err(TemporaryFailure::from_error(&error)),
            },
        }
    }

    /// The host names of `address`'s PTR records (`in-addr.arpa` / `ip6.arpa`), lower-case,
    /// without the final dot; none when there are none.
    ///
    /// # Errors
    /// `TemporaryFailure` for SERVFAIL, timeouts and unreachable servers.
    pub async fn ptr(&self, address: IpAddr) -> Result<Vec<String>, TemporaryFailure> {
        let name = match address {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
            }
            IpAddr::V6(v6) => {
                let nibbles: Vec<String> = v6
                    .octets()
                    .iter()
                    .rev()
                    .flat_map(|byte| [byte & 0x0f, byte >> 4])
                    .map(|nibble| format!("{nibble:x}"))
                    .collect();
                format!("{}.ip6.arpa.", nibbles.join("."))
            }
        };
        match self.inner.lookup(name, RecordType::PTR).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::PTR(ptr) => Some(host_name(&ptr.0.to_ascii())),
                    _ => None,
                })
                .collect()),
            Err(error) => match negative(&error) {
                Some(_) => Ok(Vec::new()),
                None => Err(TemporaryFailure::from_error(&error)),
            },
        }
    }

    /// The TXT records at `name`, each one's character-strings joined (RFC 7208 §3.3 and
    /// RFC 8461 §3.1 read them so); empty when the name does not exist or has none.
    ///
    /// # Errors
    /// `TemporaryFailure` for SERVFAIL, timeouts and unreachable servers.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, TemporaryFailure> {
        match self.inner.txt_lookup(fully_qualified(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(error) => match negative(&error) {
                Some(_) => Ok(Vec::new()),
                None => Err(TemporaryFailure::from_error(&error)),
            },
        }
    }
}

enum Negative {
    NoSuchDomain,
    NoRecords,
}

/// Tells an authoritative "no" (NXDOMAIN, or NOERROR with no records) from a failure.
fn negative(error: &NetError) -> Option<Negative> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => match no_records.response_code {
            ResponseCode::NXDomain => Some(Negative::NoSuchDomain),
            ResponseCode::NoError => Some(Negative::NoRecords),
            _ => None,
        },
        _ => None,
    }
}

fn fully_qualified(name: &str) -> String {
    let trimmed = name.trim_end_matches('.');
    format!("{trimmed}.")
}

fn host_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(preference: u16, exchange: &str) -> MxRecord {
        MxRecord {
            preference,
            exchange: exchange.into(),
        }
    }

    #[test]
    fn a_resolv_conf_names_a_nameserver_only_on_a_nameserver_line() {
        assert!(names_a_nameserver(
            "search example.org\nnameserver 192.0.2.53\n"
        ));
        assert!(names_a_nameserver("  nameserver\t::1"));
        assert!(!names_a_nameserver(""));
        assert!(!names_a_nameserver(
            "# nameserver 192.0.2.53\noptions ndots:1\n"
        ));
        assert!(!names_a_nameserver("nameservers 192.0.2.53\n"));
    }

    #[test]
    fn s_nullmx_1_only_a_lone_zero_dot_is_null() {
        assert_eq!(MxAnswer::from_records(vec![mx(0, "")]), MxAnswer::NullMx);
        assert_eq!(MxAnswer::from_records(vec![]), MxAnswer::NoMx);
        assert!(matches!(
            MxAnswer::from_records(vec![mx(10, "")]),
            MxAnswer::Records(_)
        ));
        assert!(matches!(
            MxAnswer::from_records(vec![mx(0, ""), mx(10, "mx.example")]),
            MxAnswer::Records(_)
        ));
    }
}
