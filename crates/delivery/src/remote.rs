//! Remote delivery of one message to one destination domain: the MX plan, address lookups,
//! connecting to each host in turn, and running `proto`'s client session over the socket with
//! the timeouts of C-TIME-1. Returns one outcome per recipient and the history lines that say
//! what was tried.
//!
//! Remote servers are untrusted: their replies are parsed by `proto`; IO errors and timeouts
//! become transient outcomes. A null MX or NXDOMAIN fails at once and nothing is connected to
//! (C-NULLMX-2, C-ROUTE-1); a refused greeting or a connection failure moves on to the next host
//! (C-521-2, C-ROUTE-4).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use petrel_dns::{AddressAnswer, Resolver};
use petrel_proto::EnhancedCode;
use petrel_proto::client::{
    ClientCredentials, ClientSession, Outgoing, SessionFailure, TransactionResult, Waiting,
};
use petrel_proto::reply::Reply;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::driver::{Driver, Step};
use crate::mxplan::{MxPlan, PlannedHost, literal_address, plan};
use crate::pool::Pool;
use crate::route::Nexthop;
use crate::tls::Transport;

/// What remote delivery needs to know.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub helo_name: String,
    /// TCP port of remote MX hosts (25).
    pub port: u16,
    /// Our own listeners: an MX host at one of these is us (C-ROUTE-5).
    pub own_addresses: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// Bind outbound connections to this local address (when the families match).
    pub source_address: Option<IpAddr>,
}

/// The outcome for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub is_success: bool,
    pub is_permanent: bool,
    /// Enhanced status (from the reply, or ours when there was none).
    pub status: EnhancedCode,
    /// The remote reply on one line, or our description of what failed.
    pub detail: String,
    pub remote_mta: Option<String>,
    /// The server that took it offers DSN, so it (not we) reports success (RFC 3461 §5.2.2).
    pub hop_has_dsn: bool,
}

/// Outcomes (one per recipient, in order) and the history of the attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcomes: Vec<Outcome>,
    pub history: Vec<String>,
}

/// Delivers `message` to its recipients, all at `domain` (a name, or `[literal]`), through
/// `route` when the configuration gives one (relayhost, `[[delivery.route]]`), else to the
/// domain's MX hosts.
pub async fn deliver(
    resolver: &Resolver,
    settings: &RemoteSettings,
    pool: &Pool,
    domain: &str,
    route: Option<&Nexthop>,
    message: &Outgoing,
) -> Attempt {
    let mut history = Vec::new();
    let count = message.recipients.len();
    if let Some(outcomes) = reuse(pool, domain, message, &mut history).await {
        return Attempt { outcomes, history };
    }
    if let Some(nexthop) = route.filter(|r| r.is_discard) {
        history.push(format!("routed to {}: discarded", nexthop.describe()));
        let outcome = Outcome {
            is_success: true,
            is_permanent: false,
            status: EnhancedCode::new(2, 0, 0),
            detail: "discarded (delivery route discard:)".into(),
            remote_mta: None,
            hop_has_dsn: true,
        };
        return all(count, outcome, history);
    }
    let (port, credentials) = match route {
        Some(nexthop) => {
            history.push(format!("routed to {} (configuration)", nexthop.describe()));
            (nexthop.port, nexthop.credentials.as_ref())
        }
        None => (settings.port, None),
    };
    let (destination, is_direct) = match route {
        Some(nexthop) if nexthop.is_mx_lookup => (nexthop.host.clone(), false),
        Some(nexthop) => (nexthop.host.clone(), true),
        None => (domain.to_owned(), false),
    };
    let hosts = if is_direct {
        match destination.parse::<IpAddr>() {
            Ok(address) => vec![(destination.clone(), vec![address])],
            Err(_) => {
                let planned = PlannedHost {
                    name: destination.clone(),
                    preference: 0,
                };
                resolve_hosts(resolver, vec![planned], &mut history).await
            }
        }
    } else {
        match route_by_mx(resolver, settings, &destination, count, &mut history).await {
            Ok(hosts) => hosts,
            Err(attempt) => return attempt,
        }
    };
    for (host, addresses) in hosts {
        for address in addresses {
            let target = SocketAddr::new(address, port);
            if settings.own_addresses.contains(&target) {
                history.push(format!("{host} [{address}] is this server: it and less preferred hosts are skipped (mail loop)"));
                return all(
                    count,
                    failure(
                        true,
                        (5, 4, 4),
                        format!("the best MX host of {domain} is this server (mail loop)"),
                    ),
                    history,
                );
            }
            let connection = Connection {
                settings,
                pool,
                domain,
                host: &host,
                target,
                credentials,
            };
            match try_host(&connection, message, &mut history).await {
                HostResult::Done(outcomes) => return Attempt { outcomes, history },
                HostResult::NextHost => {}
            }
        }
    }
    history.push("no host could be reached; will retry".to_owned());
    all(
        count,
        failure(
            false,
            (4, 4, 1),
            format!("no MX host of {destination} answered"),
        ),
        history,
    )
}

/// The hosts of `domain` by its MX records (or the literal), or the attempt that ends here
/// (null MX, NXDOMAIN, a bad literal, a DNS failure).
async fn route_by_mx(
    resolver: &Resolver,
    settings: &RemoteSettings,
    domain: &str,
    count: usize,
    history: &mut Vec<String>,
) -> Result<Vec<(String, Vec<IpAddr>)>, Attempt> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match literal_address(literal) {
            Some(address) => Ok(vec![(domain.to_owned(), vec![address])]),
            None => Err(all(
                count,
                failure(true, (5, 1, 2), format!("bad address literal {domain}")),
                std::mem::take(history),
            )),
        };
    }
    let answer = resolver.mx(domain).await;
    history.push(format!("DNS MX {domain}: {}", describe_answer(&answer)));
    let is_our_name = |name: &str| name.eq_ignore_ascii_case(&settings.helo_name);
    match plan(domain, &answer, &is_our_name, &mut shuffle) {
        MxPlan::Fail(no_route) => {
            history.push(format!("no connection attempted: {}", no_route.reason));
            let outcome = Outcome {
                is_success: false,
                is_permanent: no_route.is_permanent,
                status: no_route.status,
                detail: no_route.reason,
                remote_mta: None,
                hop_has_dsn: false,
            };
            Err(all(count, outcome, std::mem::take(history)))
        }
        MxPlan::Literal(address) => Ok(vec![(domain.to_owned(), vec![address])]),
        MxPlan::Hosts(hosts) => Ok(resolve_hosts(resolver, hosts, history).await),
    }
}

enum HostResult {
    Done(Vec<Outcome>),
    NextHost,
}

async fn resolve_hosts(
    resolver: &Resolver,
    hosts: Vec<PlannedHost>,
    history: &mut Vec<String>,
) -> Vec<(String, Vec<IpAddr>)> {
    let mut resolved = Vec::new();
    for host in hosts {
        match resolver.addresses(&host.name).await {
            Ok(AddressAnswer::Addresses(addresses)) => {
                history.push(format!(
                    "{} (preference {}): {:?}",
                    host.name, host.preference, addresses
                ));
                resolved.push((host.name, addresses));
            }
            Ok(other) => history.push(format!("{}: no address ({other:?})", host.name)),
            Err(failure) => history.push(format!("{}: {failure}", host.name)),
        }
    }
    resolved
}

/// Runs one session with one host: opportunistic STARTTLS first; when the TLS handshake fails,
/// once more in plaintext, as no policy requires TLS yet (C-TLS-6).
async fn try_host(
    connection: &Connection<'_>,
    message: &Outgoing,
    history: &mut Vec<String>,
) -> HostResult {
    let (host, target) = (connection.host, connection.target);
    match try_session(connection, message, history, true).await {
        Err(reason) if reason.starts_with("TLS handshake") => {
            history.push(format!(
                "{host} [{}]: {reason}; trying again without TLS",
                target.ip()
            ));
            try_session(connection, message, history, false)
                .await
                .unwrap_or_else(|reason| lost(host, target, message, history, &reason))
        }
        Err(reason) => lost(host, target, message, history, &reason),
        Ok(result) => result,
    }
}

/// The connection was lost after the greeting: the outcome is unknown, retry later (C-RETRY-3).
fn lost(
    host: &str,
    target: SocketAddr,
    message: &Outgoing,
    history: &mut Vec<String>,
    reason: &str,
) -> HostResult {
    let mta = format!("{host} [{}]", target.ip());
    history.push(format!(
        "{mta}: {reason} during the transaction; will retry"
    ));
    let outcome = failure_at(
        false,
        EnhancedCode::new(4, 4, 2),
        format!("connection to {mta} lost: {reason}"),
        &mta,
    );
    HostResult::Done(vec![outcome; message.recipients.len()])
}

/// Where one connection goes.
struct Connection<'a> {
    settings: &'a RemoteSettings,
    pool: &'a Pool,
    domain: &'a str,
    host: &'a str,
    target: SocketAddr,
    /// AUTH for a smarthost (only inside TLS).
    credentials: Option<&'a ClientCredentials>,
}

/// Connects to `target`, from `source_address` when one of the same family is configured.
async fn connect(settings: &RemoteSettings, target: SocketAddr) -> std::io::Result<TcpStream> {
    let source = settings
        .source_address
        .filter(|s| s.is_ipv4() == target.is_ipv4());
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// Keeps a session for reuse only after a transaction every recipient of which succeeded: a
/// server that refused something gets a fresh connection next time.
fn keep_if_clean(pool: &Pool, domain: &str, driver: Driver, result: &TransactionResult) {
    if result.mail.code == 250 && result.recipients.iter().all(|r| r.code < 300) {
        pool.put(domain, driver);
    }
}

/// Sends over a kept session to `domain`, if there is one that still works.
async fn reuse(
    pool: &Pool,
    domain: &str,
    message: &Outgoing,
    history: &mut Vec<String>,
) -> Option<Vec<Outcome>> {
    let mut driver = pool.take(domain)?;
    let mta = driver.mta.clone();
    match driver.run(message).await {
        Ok(Step::Sent(result)) => {
            let label = format!("{mta} (connection reused)");
            Some(sent(pool, domain, driver, &result, &label, history))
        }
        _ => None,
    }
}

/// Records a finished transaction, keeps a clean session for reuse, and gives the outcomes.
fn sent(
    pool: &Pool,
    domain: &str,
    driver: Driver,
    result: &TransactionResult,
    label: &str,
    history: &mut Vec<String>,
) -> Vec<Outcome> {
    history.push(format!(
        "{label}: MAIL {}; {}",
        result.mail.to_line(),
        summarize(result)
    ));
    let outcomes = result
        .recipients
        .iter()
        .map(|reply| Outcome {
            hop_has_dsn: driver.session.capabilities().dsn,
            ..from_reply(reply, &driver.mta)
        })
        .collect();
    keep_if_clean(pool, domain, driver, result);
    outcomes
}

/// One connection and session; `Err` when the connection was lost after the greeting.
async fn try_session(
    connection: &Connection<'_>,
    message: &Outgoing,
    history: &mut Vec<String>,
    wants_tls: bool,
) -> Result<HostResult, String> {
    let Connection {
        settings,
        pool,
        domain,
        host,
        target,
        credentials,
    } = *connection;
    let stream = match timeout(settings.connect_timeout, connect(settings, target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            history.push(format!("connect {host} [{target}]: {error}"));
            return Ok(HostResult::NextHost);
        }
        Err(_) => {
            history.push(format!("connect {host} [{target}]: timed out"));
            return Ok(HostResult::NextHost);
        }
    };
    let mut driver = Driver {
        transport: Some(Transport::Plain(stream)),
        session: match credentials {
            Some(credentials) => {
                ClientSession::new(&settings.helo_name).with_auth(credentials.clone())
            }
            None if wants_tls => ClientSession::with_starttls(&settings.helo_name),
            None => ClientSession::new(&settings.helo_name),
        },
        buffer: vec![0u8; 8192],
        host: host.to_owned(),
        mta: format!("{host} [{}]", target.ip()),
        tls_note: None,
        replies: petrel_metrics::replies::ReplyScanner::default(),
    };
    let mta = driver.mta.clone();
    let result = driver.run(message).await;
    if let Some(note) = driver.tls_note.take() {
        history.push(format!("{mta}: {note}"));
    }
    Ok(match result {
        Ok(Step::Sent(result)) => {
            HostResult::Done(sent(pool, domain, driver, &result, &mta, history))
        }
        Ok(Step::Unsendable(status, reason)) => {
            history.push(format!("{mta}: {reason}"));
            HostResult::Done(vec![
                failure_at(true, status, reason, &mta);
                message.recipients.len()
            ])
        }
        Ok(Step::Failed(SessionFailure::Greeting(reply) | SessionFailure::Hello(reply))) => {
            history.push(format!(
                "{mta}: refused the session: {}; trying the next host",
                explained(&reply)
            ));
            HostResult::NextHost
        }
        Ok(Step::Failed(SessionFailure::Auth(reply))) => {
            let reason = format!("refused our credentials: {}", explained(&reply));
            history.push(format!("{mta}: {reason}; will retry"));
            let status = reply.enhanced.map_or(EnhancedCode::new(4, 7, 0), |e| {
                EnhancedCode::new(4, e.subject, e.detail)
            });
            HostResult::Done(vec![
                failure_at(
                    false,
                    status,
                    format!("{mta} {reason}"),
                    &mta
                );
                message.recipients.len()
            ])
        }
        Ok(Step::Failed(SessionFailure::AuthUnavailable(reason))) => {
            history.push(format!("{mta}: {reason}; will retry"));
            HostResult::Done(vec![
                failure_at(
                    false,
                    EnhancedCode::new(4, 7, 0),
                    format!("{mta}: {reason}"),
                    &mta
                );
                message.recipients.len()
            ])
        }
        Ok(Step::Failed(SessionFailure::Protocol(reason))) => {
            history.push(format!(
                "{mta}: protocol error: {reason}; trying the next host"
            ));
            HostResult::NextHost
        }
        Err(reason)
            if driver
                .session
                .waiting()
                .is_some_and(|w| matches!(w, Waiting::Greeting)) =>
        {
            history.push(format!("{mta}: {reason}; trying the next host"));
            HostResult::NextHost
        }
        // Lost after the greeting: the outcome is unknown, so retry later (C-RETRY-3).
        Err(reason) => return Err(reason),
    })
}

/// The outcome a reply means for its recipient, `mta` naming who gave it.
pub(crate) fn from_reply(reply: &Reply, mta: &str) -> Outcome {
    let class = u8::try_from(reply.code / 100).unwrap_or(4);
    Outcome {
        is_success: reply.code < 300,
        is_permanent: reply.code >= 500,
        status: reply.enhanced.unwrap_or(EnhancedCode::new(class, 0, 0)),
        detail: reply.to_line(),
        remote_mta: Some(mta.to_owned()),
        hop_has_dsn: false,
    }
}

fn summarize(result: &TransactionResult) -> String {
    result
        .recipients
        .iter()
        .map(explained)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A reply line with the reference's short title, for history and logs.
fn explained(reply: &Reply) -> String {
    let enhanced = reply.enhanced.map(|e| e.to_string());
    match petrel_catalogue::short_title(reply.code, enhanced.as_deref()) {
        Some(title) => format!("{} ({title})", reply.to_line()),
        None => reply.to_line(),
    }
}

fn failure(
    is_permanent: bool,
    (class, subject, detail): (u8, u16, u16),
    reason: String,
) -> Outcome {
    Outcome {
        is_success: false,
        is_permanent,
        status: EnhancedCode::new(class, subject, detail),
        detail: reason,
        remote_mta: None,
        hop_has_dsn: false,
    }
}

fn failure_at(is_permanent: bool, status: EnhancedCode, reason: String, mta: &str) -> Outcome {
    Outcome {
        is_success: false,
        is_permanent,
        status,
        detail: reason,
        remote_mta: Some(mta.to_owned()),
        hop_has_dsn: false,
    }
}

fn all(count: usize, outcome: Outcome, history: Vec<String>) -> Attempt {
    Attempt {
        outcomes: vec![outcome; count],
        history,
    }
}

fn describe_answer(answer: &Result<petrel_dns::MxAnswer, petrel_dns::TemporaryFailure>) -> String {
    match answer {
        Ok(petrel_dns::MxAnswer::Records(records)) => records
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.preference,
                    if r.exchange.is_empty() {
                        "."
                    } else {
                        &r.exchange
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Ok(petrel_dns::MxAnswer::NullMx) => "0 . (null MX)".into(),
        Ok(petrel_dns::MxAnswer::NoMx) => "no MX (implicit MX: the domain's own addresses)".into(),
        Ok(petrel_dns::MxAnswer::NoSuchDomain) => "NXDOMAIN".into(),
        Err(failure) => failure.to_string(),
    }
}

/// Shuffles a run of equal-preference hosts (C-ROUTE-3) with a cheap clock-seeded generator.
fn shuffle(hosts: &mut [PlannedHost]) {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.subsec_nanos() as u64 | 1);
    for index in (1..hosts.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let other = usize::try_from(state % (index as u64 + 1)).unwrap_or(0);
        hosts.swap(index, other);
    }
}
