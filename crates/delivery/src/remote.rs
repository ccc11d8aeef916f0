//! Remote delivery of one message to one destination domain: the walk over its hosts
//! (`client::walk`: MX plan, addresses, mail-loop check), one `client::Connection` per host in
//! turn, and the outcome each recipient gets, with the history lines that say what was tried.
//!
//! Remote servers are untrusted: their replies are parsed by `proto`; IO errors and timeouts
//! become transient outcomes. A null MX or NXDOMAIN fails at once and nothing is connected to
//! (C-NULLMX-2, C-ROUTE-1); a refused greeting or a connection failure moves on to the next host
//! (C-521-2, C-ROUTE-4).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use petrel_dns::Resolver;
use petrel_proto::client::{ClientCredentials, ClientSession, Outgoing, SessionFailure, Stage};
use petrel_proto::reply::Reply;
use petrel_proto::{EnhancedCode, status};
use petrel_queue::status::{Cause, ConnectProblem, RouteProblem, TlsProblem};
use petrel_queue::{DeliveryStatus, RemoteMta, Verdict};

use crate::client::stream::connect_tcp;
use crate::client::walk::{self, is_mail_loop};
use crate::client::{
    Broken, Connection, Observer, Quiet, Step, Stream, Timeouts, TlsClient, TlsReport, Work,
};
use crate::dane_hosts::HostDane;

mod policy;
use crate::mta_sts::{Applied, Discovery, Mode};
use crate::mxplan::{MxPlan, PlannedHost, literal_address};
use crate::pool::Pool;
use crate::route::Nexthop;
use crate::tls_policy::{Dane, Effective, SecurityLevel, TlsPolicies};
use crate::tlsrpt::{FailureKey, PolicyKey, Reporter, ResultType, SessionResult};
use policy::{
    Strength, policy_key, screen_by_policy, session_result, sts_policy, tls_status, tlsa_policy_key,
};

/// What remote delivery needs to know.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub helo_name: String,
    /// Names that are this server among a domain's MX hosts (C-ROUTE-5).
    pub our_names: Vec<String>,
    /// TCP port of remote MX hosts (25).
    pub port: u16,
    /// Our own listeners: an MX host at one of these is us (C-ROUTE-5).
    pub own_addresses: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// Bind outbound connections to this local address (when the families match).
    pub source_address: Option<IpAddr>,
    /// The TLS levels by destination.
    pub tls: TlsPolicies,
    /// The trust anchors.
    pub tls_client: TlsClient,
    /// MTA-STS policies of recipient domains (`delivery.mta_sts`), when honoured.
    pub mta_sts: Option<Arc<Discovery>>,
    /// Where TLS sessions are counted for reports (`delivery.tls_reports`), when on.
    pub tls_reports: Option<Arc<Reporter>>,
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
    let requires_tls = message.parameters.requires_tls;
    // C-RTLS-4: the sender waives MTA-STS for this message (never with REQUIRETLS).
    let waives_policy = !requires_tls && crate::requiretls::tls_required_no(&message.content);
    // A kept session is reused only when its TLS is as strong as this delivery's policy asks
    // (known once the policies are looked up); never for REQUIRETLS, and a session opened with
    // the policy waived is not kept at all.
    let may_reuse = !requires_tls && !waives_policy;
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
    let mut tls = settings
        .tls
        .for_destinations(&[&destination, domain], credentials.is_some());
    if tls.level != SecurityLevel::May {
        history.push(format!(
            "TLS policy for {destination}: {}",
            tls.level.as_str()
        ));
    }
    if may_reuse && route.is_some() {
        let needs = Strength::of(&tls, &HashMap::new());
        if let Some(outcomes) = reuse(pool, domain, message, needs, &mut history).await {
            return Attempt { outcomes, history };
        }
    }
    let (sts, sts_failure) = match route {
        None if waives_policy => {
            history.push(format!(
                "TLS-Required: No: the MTA-STS policy of {domain} is not applied (RFC 8689 §5)"
            ));
            (None, None)
        }
        None => sts_policy(settings, domain, &mut history).await,
        Some(_) => (None, None),
    };
    // RFC 8460: sessions with the domain's MX hosts are counted under the policy they had
    // (routes are the operator's, not the domain's, and are not counted).
    let report_policy = match (&settings.tls_reports, route) {
        (Some(_), None) if !domain.starts_with('[') => Some(policy_key(sts.as_ref())),
        _ => None,
    };
    if let (Some(reporter), Some(failure), None) = (&settings.tls_reports, &sts_failure, &sts) {
        let result = SessionResult::Failure(FailureKey {
            result_type: ResultType::of_fetch(failure.problem),
            receiving_mx_hostname: None,
            receiving_ip: None,
        });
        reporter.count(domain, &PolicyKey::none(), result);
    }
    if requires_tls {
        // C-RTLS-2: verified TLS to a server that offers REQUIRETLS, on a vouched-for path.
        tls.level = tls.level.max(SecurityLevel::Verify);
        tls.allows_plaintext_fallback = false;
        if route.is_none() {
            tls.match_names.clear();
        }
        history.push("REQUIRETLS: only verified TLS to a server that offers REQUIRETLS".to_owned());
    }
    if let Some(applied) = sts.as_ref().filter(|a| a.policy.mode == Mode::Enforce) {
        // C-STS-3: only TLS with a certificate valid for the MX host's own name.
        tls.level = tls.level.max(SecurityLevel::Verify);
        tls.match_names.clear();
        tls.allows_plaintext_fallback = false;
        history.push(format!(
            "TLS policy for {domain}: verify (MTA-STS enforce, id {})",
            applied.id
        ));
    }
    let planned = if is_direct {
        match destination.parse::<IpAddr>() {
            Ok(address) => vec![(configured(&destination), Some(vec![address]))],
            Err(_) => vec![(configured(&destination), None)],
        }
    } else {
        match plan_by_mx(resolver, settings, &destination, count, &mut history).await {
            Ok(hosts) => hosts,
            Err(attempt) => return attempt,
        }
    };
    // DANE (RFC 7672) for the domain's own MX hosts, when DNS answers can be told validated.
    let dane_of: HashMap<String, HostDane> = if route.is_none()
        && !domain.starts_with('[')
        && tls.dane != Dane::Off
        && resolver.is_validating()
    {
        let names: Vec<PlannedHost> = planned.iter().map(|(host, _)| host.clone()).collect();
        crate::dane_hosts::look_up(resolver, domain, &names, port, &mut history).await
    } else {
        HashMap::new()
    };
    let hosts = if route.is_some() {
        planned
    } else {
        screen_by_policy(planned, sts.as_ref(), requires_tls, &dane_of, &mut history)
    };
    if may_reuse && route.is_none() && !hosts.is_empty() {
        let needs = Strength::of(&tls, &dane_of);
        if let Some(outcomes) = reuse(pool, domain, message, needs, &mut history).await {
            return Attempt { outcomes, history };
        }
    }
    if hosts.is_empty() {
        let reason = if requires_tls && sts.is_none() {
            format!(
                "REQUIRETLS: neither DANE nor an MTA-STS policy vouches for an MX host of {domain}"
            )
        } else {
            format!("no MX host of {domain} matches its MTA-STS policy")
        };
        history.push(format!("{reason}; will retry"));
        let outcome = DeliveryStatus::decided(
            Verdict::Deferred,
            tls_status(requires_tls),
            Cause::Tls(TlsProblem::Policy),
            reason,
        );
        return all(count, Outcome::of(outcome), history);
    }
    // Why the last host could not be used: what a deferral says when none could.
    let mut last_problem = Cause::Connect(ConnectProblem::Other);
    for (planned, known) in hosts {
        let host = planned.name.clone();
        let host_dane = dane_of.get(&host).unwrap_or(&HostDane::None);
        match host_dane {
            HostDane::Unusable(_) => {
                history.push(format!("{host}: not used (its DANE lookup failed)"));
                count_skipped(settings, domain, &host, ResultType::DnssecInvalid);
                last_problem = Cause::Tls(TlsProblem::Policy);
                continue;
            }
            HostDane::None if tls.dane == Dane::Required => {
                history.push(format!(
                    "{host}: no validated TLSA records; not used (dane-only)"
                ));
                count_skipped(settings, domain, &host, ResultType::DaneRequired);
                last_problem = Cause::Tls(TlsProblem::Policy);
                continue;
            }
            _ => {}
        }
        // A host DANE decides for is reported under its TLSA policy (RFC 8460 §4.4).
        let dane_key = match host_dane {
            HostDane::Match(records) if report_policy.is_some() => Some(tlsa_policy_key(records)),
            _ => None,
        };
        let host_report_policy = dane_key.as_ref().or(report_policy.as_ref());
        let addresses = match known {
            Some(addresses) => addresses,
            None => match walk::addresses(resolver, &planned, &mut history).await {
                Ok(addresses) => addresses,
                Err((cause, _)) => {
                    last_problem = cause;
                    continue;
                }
            },
        };
        for address in addresses {
            let target = SocketAddr::new(address, port);
            if is_mail_loop(target, &settings.own_addresses) {
                history.push(format!("{host} [{address}] is this server: it and less preferred hosts are skipped (mail loop)"));
                return all(count, Outcome::of(walk::mail_loop(domain)), history);
            }
            let connection = Target {
                settings,
                pool,
                domain,
                host: &host,
                target,
                credentials,
                tls: &tls,
                // C-STS-4: where DANE applies, MTA-STS does not decide.
                sts: sts.as_ref().filter(|_| !host_dane.vouches()),
                dane: host_dane,
                is_poolable: !waives_policy,
                report: settings.tls_reports.as_deref().zip(host_report_policy),
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
            Cause::Tls(_) => tls_status(requires_tls),
            _ => status::NO_ANSWER_FROM_HOST,
        },
        last_problem,
        match last_problem {
            Cause::Tls(_) if !dane_of.is_empty() => {
                format!("no MX host of {destination} gave the TLS its policy asks for (DANE)")
            }
            Cause::Tls(_) => format!(
                "no MX host of {destination} gave the TLS its policy asks for (level {})",
                tls.level.as_str()
            ),
            _ => format!("no MX host of {destination} answered"),
        },
    );
    all(count, Outcome::of(outcome), history)
}

/// Counts a host DANE kept from being used as a failed session (RFC 8460 §4.3.2), under the
/// TLSA policy.
fn count_skipped(settings: &RemoteSettings, domain: &str, host: &str, result: ResultType) {
    if let Some(reporter) = &settings.tls_reports {
        let failure = FailureKey {
            result_type: result,
            receiving_mx_hostname: Some(host.to_owned()),
            receiving_ip: None,
        };
        reporter.count(
            domain,
            &tlsa_policy_key(&[]),
            SessionResult::Failure(failure),
        );
    }
}

/// Hosts to try, with their addresses when already known (a literal).
type Hosts = Vec<(PlannedHost, Option<Vec<IpAddr>>)>;

/// A host the configuration names (a route, a literal): no MX preference of its own.
fn configured(name: &str) -> PlannedHost {
    PlannedHost {
        name: name.to_owned(),
        preference: 0,
    }
}

/// (null MX, NXDOMAIN, a bad literal, a DNS failure).
async fn plan_by_mx(
    resolver: &Resolver,
    settings: &RemoteSettings,
    domain: &str,
    count: usize,
    history: &mut Vec<String>,
) -> Result<Hosts, Attempt> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match literal_address(literal) {
            Some(address) => Ok(vec![(configured(domain), Some(vec![address]))]),
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
    let names: Vec<&str> = settings.our_names.iter().map(String::as_str).collect();
    match walk::mx_plan(resolver, domain, &names, true, history)
        .await
        .1
    {
        MxPlan::Fail(outcome) => {
            history.push(format!(
                "no connection attempted: {} ({})",
                outcome.detail,
                outcome.cause.describe()
            ));
            Err(all(count, Outcome::of(outcome), std::mem::take(history)))
        }
        MxPlan::Literal(address) => Ok(vec![(configured(domain), Some(vec![address]))]),
        MxPlan::Hosts(hosts) => Ok(hosts.into_iter().map(|h| (h, None)).collect()),
    }
}

enum HostResult {
    Done(Vec<Outcome>),
    /// This host could not be used, for this reason; try the next.
    NextHost(Cause),
}

/// Runs one session with one host at the destination's TLS level: STARTTLS unless the level
/// is `none`. When TLS fails (no STARTTLS where it is required, a failed handshake, a
/// certificate that does not verify under `verify`) the next host is tried, as RFC 8461 §5
/// has it; only `may` with plaintext fallback allowed tries the same host once more without
/// TLS (C-TLS-6).
async fn try_host(
    target: &Target<'_>,
    message: &Outgoing,
    history: &mut Vec<String>,
) -> HostResult {
    let mta = target.remote_mta();
    let level = target.tls.level;
    match try_session(target, message, history, level != SecurityLevel::None).await {
        Err(broken)
            if matches!(broken.cause, Cause::Tls(_))
                && level == SecurityLevel::May
                && target.tls.allows_plaintext_fallback
                && !target.dane.applies() =>
        {
            history.push(format!(
                "{mta}: {}; trying again without TLS",
                broken.detail
            ));
            try_session(target, message, history, false)
                .await
                .unwrap_or_else(|broken| lost(&mta, message, history, broken))
        }
        Err(broken) if matches!(broken.cause, Cause::Tls(_)) => {
            let level = if target.dane.applies() {
                "dane"
            } else {
                level.as_str()
            };
            history.push(format!(
                "{mta}: {} (TLS level {level}); trying the next host",
                broken.detail
            ));
            HostResult::NextHost(broken.cause)
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
struct Target<'a> {
    settings: &'a RemoteSettings,
    pool: &'a Pool,
    domain: &'a str,
    host: &'a str,
    target: SocketAddr,
    /// AUTH for a smarthost (only inside TLS).
    credentials: Option<&'a ClientCredentials>,
    /// The TLS level and names for this destination.
    tls: &'a Effective,
    /// The recipient domain's MTA-STS policy, when one applies.
    sts: Option<&'a Applied>,
    /// What DANE makes of this host.
    dane: &'a HostDane,
    /// A clean session may be kept for the next message (not when the policy was waived).
    is_poolable: bool,
    /// Where the session's TLS result is counted, and under which policy.
    report: Option<(&'a Reporter, &'a PolicyKey)>,
}

impl Target<'_> {
    fn remote_mta(&self) -> RemoteMta {
        RemoteMta {
            host: self.host.to_owned(),
            address: Some(self.target.ip()),
        }
    }
}

/// Writes the TLS result into the history, with what the MTA-STS policy makes of it, and
/// keeps it for the TLS report.
struct History<'a> {
    mta: &'a RemoteMta,
    lines: &'a mut Vec<String>,
    sts: Option<&'a Applied>,
    seen: Option<TlsReport>,
}

impl Observer for History<'_> {
    fn tls(&mut self, report: &TlsReport) {
        self.seen = Some(report.clone());
        let policy = match self.sts.map(|a| a.policy.mode) {
            Some(Mode::Enforce) => " (MTA-STS enforce)",
            Some(Mode::Testing) if !report.is_verified => {
                " (MTA-STS testing: would fail enforce; delivering anyway)"
            }
            Some(Mode::Testing) => " (MTA-STS testing)",
            _ => "",
        };
        self.lines.push(format!(
            "{}: STARTTLS: {}{policy}",
            self.mta,
            report.summary()
        ));
    }
}

/// Keeps a session for reuse only after a transaction every recipient of which succeeded: a
/// server that refused something gets a fresh connection next time.
fn keep_if_clean(
    pool: &Pool,
    domain: &str,
    connection: Connection,
    result: &petrel_proto::client::TransactionResult,
) {
    if result.mail.code == 250 && result.recipients.iter().all(|r| r.reply.code < 300) {
        pool.put(domain, connection);
    }
}

/// Sends over a kept session to `domain`, if there is one that still works.
async fn reuse(
    pool: &Pool,
    domain: &str,
    message: &Outgoing,
    needs: Strength,
    history: &mut Vec<String>,
) -> Option<Vec<Outcome>> {
    let mut connection = pool.take(domain)?;
    if !needs.allows(connection.tls()) {
        // Opened under a weaker policy than applies now: closed, not reused.
        return None;
    }
    let work = Work::Send {
        message,
        is_checked: true,
    };
    match connection.run(work, &mut Quiet).await {
        Ok(Step::Sent(result)) => {
            let label = format!("{} (connection reused)", connection.remote);
            Some(sent(
                Some(pool),
                domain,
                connection,
                &result,
                &label,
                history,
            ))
        }
        _ => None,
    }
}

/// Records a finished transaction, keeps a clean session for reuse in `pool` (when given),
/// and gives the outcomes.
fn sent(
    pool: Option<&Pool>,
    domain: &str,
    connection: Connection,
    result: &petrel_proto::client::TransactionResult,
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
                Some(connection.remote.clone()),
            ),
            hop_has_dsn: connection.session.capabilities().dsn,
        })
        .collect();
    if let Some(pool) = pool {
        keep_if_clean(pool, domain, connection, result);
    }
    outcomes
}

/// One connection and session; `Err` when the connection was lost after the greeting.
async fn try_session(
    target: &Target<'_>,
    message: &Outgoing,
    history: &mut Vec<String>,
    wants_tls: bool,
) -> Result<HostResult, Broken> {
    let Target {
        settings,
        pool,
        domain,
        host,
        target: address,
        credentials,
        tls,
        sts,
        dane,
        is_poolable,
        report,
    } = *target;
    let source = settings.source_address;
    let tcp = match connect_tcp(address, source, settings.connect_timeout).await {
        Ok(stream) => stream,
        Err(broken) => {
            history.push(format!("connect {host} [{address}]: {}", broken.detail));
            return Ok(HostResult::NextHost(broken.cause));
        }
    };
    let session = match credentials {
        Some(credentials) => ClientSession::new(&settings.helo_name).with_auth(credentials.clone()),
        None if wants_tls => ClientSession::with_starttls(&settings.helo_name),
        None => ClientSession::new(&settings.helo_name),
    };
    let mta = target.remote_mta();
    let mut tls_client = settings.tls_client.clone();
    match dane {
        HostDane::Match(records) => tls_client = tls_client.with_dane(records.clone()),
        _ if tls.level == SecurityLevel::Verify => {
            tls_client = tls_client
                .requiring_verification()
                .matching(&tls.match_names);
        }
        _ => {}
    }
    let mut connection = Connection::new(
        Stream::Tcp(tcp),
        mta.clone(),
        session,
        tls_client,
        Timeouts::SMTP,
    )
    .counting_replies();
    if wants_tls && (tls.level >= SecurityLevel::Encrypt || dane.applies()) {
        connection = connection.requiring_tls();
    }
    let work = Work::Send {
        message,
        is_checked: true,
    };
    let mut observer = History {
        mta: &mta,
        lines: history,
        sts,
        seen: None,
    };
    let result = connection.run(work, &mut observer).await;
    if let Some((reporter, policy)) = report {
        let seen = observer.seen.take();
        if let Some(session) = session_result(&result, seen.as_ref(), wants_tls, sts.is_some()) {
            let failure = |result_type| FailureKey {
                result_type,
                receiving_mx_hostname: Some(host.to_owned()),
                receiving_ip: Some(address.ip().to_string()),
            };
            let session = match session {
                Ok(()) => SessionResult::Success,
                Err(result_type) => SessionResult::Failure(failure(result_type)),
            };
            reporter.count(domain, policy, session);
        }
    }
    let count = message.recipients.len();
    Ok(match result {
        Ok(Step::Sent(result)) => {
            if connection.tls().is_none() {
                let why = if wants_tls {
                    "the server offers no STARTTLS"
                } else {
                    "TLS not tried"
                };
                history.push(format!("{mta}: plaintext ({why})"));
            }
            let label = mta.to_string();
            let keep = is_poolable.then_some(pool);
            HostResult::Done(sent(keep, domain, connection, &result, &label, history))
        }
        Ok(Step::Unsendable(refusal)) if refusal.status == status::REQUIRETLS_NEEDED => {
            history.push(format!("{mta}: {}; trying the next host", refusal.reason));
            HostResult::NextHost(Cause::Tls(TlsProblem::Policy))
        }
        Ok(Step::Unsendable(refusal)) => {
            history.push(format!("{mta}: {}", refusal.reason));
            let cause = Cause::Route(RouteProblem::Unsupported);
            let outcome =
                DeliveryStatus::decided(Verdict::Failed, refusal.status, cause, refusal.reason)
                    .at(mta);
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        Ok(Step::Failed(failure)) => {
            let cause = connection.cause_of(&failure);
            failed(failure, cause, &mta, count, history)
        }
        Err(broken)
            if connection
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

/// What a refused session means: the next host (greeting, EHLO, garbage), or a deferral of
/// every recipient (our credentials refused, or AUTH impossible).
fn failed(
    failure: SessionFailure,
    cause: Cause,
    mta: &RemoteMta,
    count: usize,
    history: &mut Vec<String>,
) -> HostResult {
    match failure {
        SessionFailure::Greeting(reply) | SessionFailure::Hello(reply) => {
            history.push(format!(
                "{mta}: refused the session: {}; trying the next host",
                explained(&reply)
            ));
            HostResult::NextHost(cause)
        }
        SessionFailure::Auth(reply) => {
            let reason = format!("refused our credentials: {}", explained(&reply));
            history.push(format!("{mta}: {reason}; will retry"));
            let refused = DeliveryStatus::from_reply(&reply, Stage::Hello, Some(mta.clone()));
            let outcome = DeliveryStatus {
                verdict: Verdict::Deferred,
                code: reply
                    .enhanced
                    .map_or(status::SECURITY_TRANSIENT, EnhancedCode::as_transient),
                ..refused
            };
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        SessionFailure::AuthUnavailable(reason) => {
            history.push(format!("{mta}: {reason}; will retry"));
            let outcome = DeliveryStatus::decided(
                Verdict::Deferred,
                status::SECURITY_TRANSIENT,
                Cause::AuthUnavailable,
                format!("{mta}: {reason}"),
            )
            .at(mta.clone());
            HostResult::Done(vec![Outcome::of(outcome); count])
        }
        SessionFailure::Protocol(reason) => {
            history.push(format!(
                "{mta}: protocol error: {reason}; trying the next host"
            ));
            HostResult::NextHost(cause)
        }
    }
}

fn summarize(result: &petrel_proto::client::TransactionResult) -> String {
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
