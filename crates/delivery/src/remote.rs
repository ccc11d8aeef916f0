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
use petrel_proto::client::{
    ClientCredentials, ClientSession, Outgoing, SessionFailure, Stage, TransactionResult,
};
use petrel_proto::reply::Reply;
use petrel_proto::{EnhancedCode, status};
use petrel_queue::status::{Cause, ConnectProblem, DnsProblem, RouteProblem};
use petrel_queue::{DeliveryStatus, RemoteMta, Verdict};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::driver::{Broken, Driver, Step};
use crate::mxplan::{MxPlan, PlannedHost, dns_problem, literal_address, plan};
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
    pub status: DeliveryStatus,
    /// The server that took it offers DSN, so it (not we) reports success (RFC 3461 §5.2.2).
    pub hop_has_dsn: bool,
}

impl Outcome {
    /// `status`, from a hop without DSN.
    pub fn of(status: DeliveryStatus) -> Outcome {
        Outcome {
            status,
            hop_has_dsn: false,
        }
    }
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
            status: DeliveryStatus::decided(
                Verdict::Delivered,
                status::DELIVERED,
                Cause::Route(RouteProblem::Discarded),
                "discarded (delivery route discard:)".into(),
            ),
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
    // Why the last host could not be used: what a deferral says when none could.
    let mut last_problem = Cause::Connect(ConnectProblem::Other);
    let hosts = if is_direct {
        match destination.parse::<IpAddr>() {
            Ok(address) => vec![(destination.clone(), vec![address])],
            Err(_) => {
                let planned = PlannedHost {
                    name: destination.clone(),
                    preference: 0,
                };
                resolve_hosts(resolver, vec![planned], &mut history, &mut last_problem).await
            }
        }
    } else {
        let routed = route_by_mx(resolver, settings, &destination, count, &mut history);
        match routed.await {
            Ok((hosts, problem)) => {
                last_problem = problem.unwrap_or(last_problem);
                hosts
            }
            Err(attempt) => return attempt,
        }
    };
    for (host, addresses) in hosts {
        for address in addresses {
            let target = SocketAddr::new(address, port);
            if settings.own_addresses.contains(&target) {
                history.push(format!("{host} [{address}] is this server: it and less preferred hosts are skipped (mail loop)"));
                let outcome = DeliveryStatus::decided(
                    Verdict::Failed,
                    status::UNABLE_TO_ROUTE,
                    Cause::Route(RouteProblem::MailLoop),
                    format!("the best MX host of {domain} is this server (mail loop)"),
                );
                return all(count, Outcome::of(outcome), history);
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
                HostResult::NextHost(problem) => last_problem = problem,
            }
        }
    }
    history.push("no host could be reached; will retry".to_owned());
    let outcome = DeliveryStatus::decided(
        Verdict::Deferred,
        match last_problem {
            Cause::Dns(_) => status::DIRECTORY_SERVER_FAILURE,
            _ => status::NO_ANSWER_FROM_HOST,
        },
        last_problem,
        format!("no MX host of {destination} answered"),
    );
    all(count, Outcome::of(outcome), history)
}

/// Hosts to try with their addresses, and why hosts were left out when some were.
type Hosts = (Vec<(String, Vec<IpAddr>)>, Option<Cause>);

/// The hosts of `domain` by its MX records (or the literal), or the attempt that ends here
/// (null MX, NXDOMAIN, a bad literal, a DNS failure).
async fn route_by_mx(
    resolver: &Resolver,
    settings: &RemoteSettings,
    domain: &str,
    count: usize,
    history: &mut Vec<String>,
) -> Result<Hosts, Attempt> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match literal_address(literal) {
            Some(address) => Ok((vec![(domain.to_owned(), vec![address])], None)),
            None => {
                let outcome = DeliveryStatus::decided(
                    Verdict::Failed,
                    status::BAD_DESTINATION_SYSTEM,
                    Cause::Route(RouteProblem::BadLiteral),
                    format!("bad address literal {domain}"),
                );
                Err(all(count, Outcome::of(outcome), std::mem::take(history)))
            }
        };
    }
    let answer = resolver.mx(domain).await;
    history.push(format!("DNS MX {domain}: {}", describe_answer(&answer)));
    let is_our_name = |name: &str| name.eq_ignore_ascii_case(&settings.helo_name);
    match plan(domain, &answer, &is_our_name, &mut shuffle) {
        MxPlan::Fail(outcome) => {
            history.push(format!(
                "no connection attempted: {} ({})",
                outcome.detail,
                outcome.cause.describe()
            ));
            Err(all(count, Outcome::of(outcome), std::mem::take(history)))
        }
        MxPlan::Literal(address) => Ok((vec![(domain.to_owned(), vec![address])], None)),
        MxPlan::Hosts(hosts) => {
            let mut problem = None;
            let mut last = Cause::Connect(ConnectProblem::Other);
            let resolved = resolve_hosts(resolver, hosts, history, &mut last).await;
            if resolved.is_empty() {
                problem = Some(last);
            }
            Ok((resolved, problem))
        }
    }
}

enum HostResult {
    Done(Vec<Outcome>),
    /// This host could not be used, for this reason; try the next.
    NextHost(Cause),
}

/// The addresses of each host; `last_problem` becomes why the last host without an address
/// had none.
async fn resolve_hosts(
    resolver: &Resolver,
    hosts: Vec<PlannedHost>,
    history: &mut Vec<String>,
    last_problem: &mut Cause,
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
            Ok(other) => {
                *last_problem = Cause::Dns(match other {
                    AddressAnswer::NoSuchDomain => DnsProblem::NoSuchDomain,
                    _ => DnsProblem::NoAddress,
                });
                history.push(format!("{}: no address ({other:?})", host.name));
            }
            Err(failure) => {
                *last_problem = Cause::Dns(dns_problem(failure.kind));
                history.push(format!("{}: {failure}", host.name));
            }
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
    let mta = connection.remote_mta();
    match try_session(connection, message, history, true).await {
        Err(broken) if matches!(broken.cause, Cause::Tls(_)) => {
            history.push(format!(
                "{mta}: {}; trying again without TLS",
                broken.detail
            ));
            try_session(connection, message, history, false)
                .await
                .unwrap_or_else(|broken| lost(&mta, message, history, broken))
        }
        Err(broken) => lost(&mta, message, history, broken),
        Ok(result) => result,
    }
}

/// The connection was lost after the greeting: the outcome is unknown, retry later (C-RETRY-3).
fn lost(
    mta: &RemoteMta,
    message: &Outgoing,
    history: &mut Vec<String>,
    broken: Broken,
) -> HostResult {
    history.push(format!(
        "{mta}: {} during the transaction; will retry",
        broken.detail
    ));
    let outcome = DeliveryStatus::decided(
        Verdict::Deferred,
        status::BAD_CONNECTION,
        broken.cause,
        format!("connection to {mta} lost: {}", broken.detail),
    )
    .at(mta.clone());
    HostResult::Done(vec![Outcome::of(outcome); message.recipients.len()])
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

impl Connection<'_> {
    fn remote_mta(&self) -> RemoteMta {
        RemoteMta {
            host: self.host.to_owned(),
            address: Some(self.target.ip()),
        }
    }
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
    if result.mail.code == 250 && result.recipients.iter().all(|r| r.reply.code < 300) {
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
    match driver.run(message).await {
        Ok(Step::Sent(result)) => {
            let label = format!("{} (connection reused)", driver.remote);
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
        .map(|decided| Outcome {
            status: DeliveryStatus::from_reply(
                &decided.reply,
                decided.stage,
                Some(driver.remote.clone()),
            ),
            hop_has_dsn: driver.session.capabilities().dsn,
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
) -> Result<HostResult, Broken> {
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
            return Ok(HostResult::NextHost(Cause::Connect(connect_problem(
                &error,
            ))));
        }
        Err(_) => {
            history.push(format!("connect {host} [{target}]: timed out"));
            return Ok(HostResult::NextHost(Cause::Connect(
                ConnectProblem::Timeout,
            )));
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
        remote: connection.remote_mta(),
        tls_note: None,
        replies: petrel_metrics::replies::ReplyScanner::default(),
    };
    let mta = driver.remote.clone();
    let count = message.recipients.len();
    let result = driver.run(message).await;
    if let Some(note) = driver.tls_note.take() {
        history.push(format!("{mta}: {note}"));
    }
    Ok(match result {
        Ok(Step::Sent(result)) => {
            let label = mta.to_string();
            HostResult::Done(sent(pool, domain, driver, &result, &label, history))
        }
        Ok(Step::Unsendable(code, reason)) => {
            history.push(format!("{mta}: {reason}"));
            let cause = Cause::Route(RouteProblem::Unsupported);
            let outcome = DeliveryStatus::decided(Verdict::Failed, code, cause, reason).at(mta);
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        Ok(Step::Failed(SessionFailure::Greeting(reply))) => {
            history.push(format!(
                "{mta}: refused the session: {}; trying the next host",
                explained(&reply)
            ));
            HostResult::NextHost(Cause::Reply(Stage::Greeting))
        }
        Ok(Step::Failed(SessionFailure::Hello(reply))) => {
            history.push(format!(
                "{mta}: refused the session: {}; trying the next host",
                explained(&reply)
            ));
            HostResult::NextHost(Cause::Reply(Stage::Hello))
        }
        Ok(Step::Failed(SessionFailure::Auth(reply))) => {
            let reason = format!("refused our credentials: {}", explained(&reply));
            history.push(format!("{mta}: {reason}; will retry"));
            let refused = DeliveryStatus::from_reply(&reply, Stage::Hello, Some(mta));
            let outcome = DeliveryStatus {
                verdict: Verdict::Deferred,
                code: reply
                    .enhanced
                    .map_or(status::SECURITY_TRANSIENT, EnhancedCode::as_transient),
                ..refused
            };
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        Ok(Step::Failed(SessionFailure::AuthUnavailable(reason))) => {
            history.push(format!("{mta}: {reason}; will retry"));
            let outcome = DeliveryStatus::decided(
                Verdict::Deferred,
                status::SECURITY_TRANSIENT,
                Cause::AuthUnavailable,
                format!("{mta}: {reason}"),
            )
            .at(mta);
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        Ok(Step::Failed(SessionFailure::Protocol(reason))) => {
            history.push(format!(
                "{mta}: protocol error: {reason}; trying the next host"
            ));
            let stage = driver.session.waiting().unwrap_or(Stage::Greeting);
            HostResult::NextHost(Cause::Malformed(stage))
        }
        Err(broken)
            if driver
                .session
                .waiting()
                .is_some_and(|w| matches!(w, Stage::Greeting)) =>
        {
            history.push(format!("{mta}: {}; trying the next host", broken.detail));
            HostResult::NextHost(broken.cause)
        }
        // Lost after the greeting: the outcome is unknown, so retry later (C-RETRY-3).
        Err(broken) => return Err(broken),
    })
}

/// The record's name for why a connect failed.
pub(crate) fn connect_problem(error: &std::io::Error) -> ConnectProblem {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => ConnectProblem::Refused,
        ErrorKind::TimedOut => ConnectProblem::Timeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => ConnectProblem::Unreachable,
        _ => ConnectProblem::Other,
    }
}

fn summarize(result: &TransactionResult) -> String {
    result
        .recipients
        .iter()
        .map(|decided| explained(&decided.reply))
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
