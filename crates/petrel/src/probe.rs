//! `petrel probe ADDRESS`: the dry run of a delivery. Shows what petrel would do if it sent to
//! ADDRESS now: the MX answer (null MX, NXDOMAIN, implicit MX, temporary failure), the ordered
//! hosts and their addresses, then one SMTP session with the first host that answers: greeting,
//! EHLO capabilities, STARTTLS with the TLS version and the certificate's verdict, MAIL FROM
//! and RCPT TO, then RSET and QUIT. Never DATA.
//!
//! With `dns.validating`, each MX host's TLSA records are looked up as delivery does (DANE) and
//! the certificate is checked against them; the MTA-STS policy is shown too (`probe_sts.rs`).
//!
//! Runs delivery's own pieces (`client::walk` for the MX plan, addresses and the mail-loop
//! check; `client::Connection` with a probe transaction for the session), so the answer is the
//! one a real attempt would get. Each reply is explained from the reference when it has the
//! code. Exit 0 only when RCPT was accepted.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use petrel_delivery::client::stream::connect_tcp;
use petrel_delivery::client::walk;
use petrel_delivery::client::{
    Connection, Observer, Step as SessionStep, Stream, Timeouts, TlsClient, TlsReport, Work,
};
use petrel_delivery::dane_hosts::HostDane;
use petrel_delivery::mxplan::{MxPlan, PlannedHost, literal_address};
use petrel_dns::{MxAnswer, Resolver, TemporaryFailure};
use petrel_proto::address::{Domain, parse_mailbox};
use petrel_proto::client::{ClientSession, Outgoing, Stage, TransactionResult, TranscriptLine};
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::reply::Reply;
use petrel_proto::{EnhancedCode, standard, status};
use petrel_queue::RemoteMta;
use petrel_queue::status::Cause;

use crate::config::{Config, Source};
use crate::transcript::{Explanation, explain_code, explanation, printed, refusal};

#[path = "probe_report.rs"]
mod report;
#[path = "probe_sts.rs"]
mod sts;
use report::{HostReport, MxRecordReport, MxReport, Report, Step, TlsHostReport, Verdict};

/// How long to wait to connect, for each reply and for the TLS handshake.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `petrel probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The recipient to probe, e.g. user@example.org.
    address: String,
    /// Print one JSON object instead of the steps.
    #[arg(long)]
    json: bool,
    /// The sender given in MAIL FROM (default: the null sender <>).
    #[arg(long, value_name = "ADDR", default_value = "")]
    from: String,
}

/// Runs the command.
///
/// # Errors
/// Why the recipient would not be accepted, or what stopped the probe.
pub fn run(source: &Source, args: &ProbeArgs) -> Result<(), String> {
    let config = crate::config::load(source)?;
    let sender = args.from.trim_start_matches('<').trim_end_matches('>');
    if !sender.is_empty() && parse_mailbox(sender).is_err() {
        return Err(format!(
            "--from {:?} is not an address like user@example.org",
            args.from
        ));
    }
    let mut probe = Probe::new(args.json, &args.address);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(probe.run(&config, sender));
    if args.json {
        let text = serde_json::to_string_pretty(&probe.report)
            .map_err(|e| format!("cannot write JSON: {e}"))?;
        outln!("{text}");
    } else {
        outln!("verdict: {}", probe.report.verdict.summary);
    }
    if probe.report.verdict.accepted {
        Ok(())
    } else {
        Err(format!(
            "{} would not be accepted now",
            probe.report.address
        ))
    }
}

/// The hosts to try, in order: name, preference, and the addresses when already known.
type Route = Vec<(String, u16, Option<Vec<IpAddr>>)>;

/// How a session with one host ended.
enum HostEnd {
    /// The host answered MAIL and RCPT (or refused them): the probe is over.
    Answered,
    /// Refused the session or was unreachable: delivery would try the next one.
    NextHost,
}

struct Probe {
    is_json: bool,
    report: Report,
    /// What DANE makes of each MX host (with `dns.validating`).
    dane_of: std::collections::HashMap<String, HostDane>,
}

impl Probe {
    fn new(is_json: bool, address: &str) -> Probe {
        Probe {
            is_json,
            dane_of: std::collections::HashMap::new(),
            report: Report {
                address: address
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned(),
                ..Report::default()
            },
        }
    }

    /// Prints a line of the human output.
    fn say(&self, text: &str) {
        if !self.is_json {
            outln!("{text}");
        }
    }

    fn explain_line(&self, explanation: Option<&Explanation>) {
        if let Some(explanation) = explanation {
            self.say(&format!("    {explanation}"));
        }
    }

    fn conclude(&mut self, accepted: bool, status: Option<EnhancedCode>, summary: String) {
        let status = status.map(|code| code.to_string());
        let explanation = status.as_deref().and_then(explain_code);
        self.report.verdict = Verdict {
            accepted,
            status,
            summary,
            explanation,
        };
    }

    async fn run(&mut self, config: &Config, sender: &str) {
        let mailbox = match parse_mailbox(&self.report.address) {
            Ok(mailbox) => mailbox,
            Err(error) => {
                let summary = format!(
                    "{:?} is not an address like user@example.org ({error:?})",
                    self.report.address
                );
                self.say(&format!("address: {summary}"));
                return self.conclude(false, Some(status::BAD_DESTINATION_MAILBOX_SYNTAX), summary);
            }
        };
        self.report.domain = Some(mailbox.domain.to_string());
        self.say(&format!("address: {mailbox} (domain {})", mailbox.domain));
        let resolver = match config.dns.resolver() {
            Ok(resolver) => resolver,
            Err(error) => {
                return self.conclude(
                    false,
                    Some(status::DIRECTORY_SERVER_FAILURE),
                    error.to_string(),
                );
            }
        };
        let Some(hosts) = self.route(config, &resolver, &mailbox.domain).await else {
            return;
        };
        if let Domain::Name(name) = &mailbox.domain
            && config.delivery.mta_sts
            && config.delivery.relayhost.is_none()
        {
            self.mta_sts(config, &resolver, name).await;
        }
        if let Domain::Name(name) = &mailbox.domain
            && config.delivery.dane
            && resolver.is_validating()
            && config.delivery.relayhost.is_none()
        {
            let planned: Vec<PlannedHost> = hosts
                .iter()
                .map(|(name, preference, _)| PlannedHost {
                    name: name.clone(),
                    preference: *preference,
                })
                .collect();
            let mut lines = Vec::new();
            self.dane_of = petrel_delivery::dane_hosts::look_up(
                &resolver,
                name,
                &planned,
                config.delivery.port,
                &mut lines,
            )
            .await;
            for line in &lines {
                self.say(line);
            }
            self.report.dane = Some(lines);
        }
        let envelope = Outgoing {
            reverse_path: sender.to_owned(),
            parameters: MailParameters {
                is_smtputf8: mailbox.is_utf8(),
                ..MailParameters::default()
            },
            recipients: vec![(mailbox.to_string(), RcptParameters::default())],
            content: Vec::new(),
        };
        for (name, preference, addresses) in hosts {
            if self.skipped_by_policy(&name) {
                continue;
            }
            let index = self.report.hosts.len();
            self.report.hosts.push(HostReport {
                name: name.clone(),
                preference,
                ..HostReport::default()
            });
            let addresses = match addresses {
                Some(addresses) => addresses,
                None => self.addresses(&resolver, index).await,
            };
            for address in addresses {
                let target = SocketAddr::new(address, config.delivery.port);
                if let HostEnd::Answered = self.try_host(config, index, target, &envelope).await {
                    return;
                }
            }
        }
        if self.report.hosts.is_empty() && self.report.mta_sts.is_some() {
            return self.conclude(
                false,
                Some(status::CRYPTOGRAPHIC_FAILURE),
                format!(
                    "no MX host of {} is in its MTA-STS policy; delivery would defer (4.7.5)",
                    mailbox.domain
                ),
            );
        }
        self.conclude(
            false,
            Some(status::NO_ANSWER_FROM_HOST),
            format!(
                "no host of {} answered; delivery would retry later",
                mailbox.domain
            ),
        );
    }

    /// The hosts to try, each with its addresses when already known (an address literal);
    /// `None` when the MX answer ends the probe.
    async fn route(
        &mut self,
        config: &Config,
        resolver: &Resolver,
        domain: &Domain,
    ) -> Option<Route> {
        let name = match domain {
            Domain::AddressLiteral(literal) => return self.literal(literal),
            Domain::Name(name) => name,
        };
        let helo = config
            .delivery
            .helo_name
            .as_deref()
            .unwrap_or(&config.hostname);
        let our_names = [config.hostname.as_str(), helo];
        let (answer, plan) =
            walk::mx_plan(resolver, name, &our_names, false, &mut Vec::new()).await;
        self.report_mx(name, &answer);
        match plan {
            MxPlan::Fail(no_route) => {
                if matches!(answer, Ok(MxAnswer::NullMx)) {
                    let reply = standard::NULL_MX_RECIPIENT.reply();
                    self.say(&reply.to_line());
                    self.explain_line(explain_code("556").as_ref());
                }
                let status = no_route.code.to_string();
                let reason = format!("{} ({})", no_route.detail, no_route.cause.describe());
                self.say(&format!("status {status}: {reason}"));
                self.explain_line(explain_code(&status).as_ref());
                self.say("no connection attempted");
                let summary = format!("{status} {reason}; no connection attempted");
                self.conclude(false, Some(no_route.code), summary);
                None
            }
            MxPlan::Literal(address) => Some(vec![(name.clone(), 0, Some(vec![address]))]),
            MxPlan::Hosts(hosts) => {
                self.say("hosts, in the order delivery tries them:");
                for (position, host) in hosts.iter().enumerate() {
                    self.say(&format!(
                        "  {}. {} (preference {})",
                        position + 1,
                        host.name,
                        host.preference
                    ));
                }
                Some(
                    hosts
                        .into_iter()
                        .map(|h| (h.name, h.preference, None))
                        .collect(),
                )
            }
        }
    }

    fn literal(&mut self, literal: &str) -> Option<Route> {
        let Some(address) = literal_address(literal) else {
            let summary = format!("[{literal}] is not a usable address literal");
            self.say(&summary);
            self.conclude(false, Some(status::BAD_DESTINATION_SYSTEM), summary);
            return None;
        };
        self.report.mx = Some(MxReport {
            answer: "address_literal",
            records: Vec::new(),
            detail: format!("address literal {address}: no MX lookup"),
        });
        self.say(&format!(
            "address literal [{literal}]: no MX lookup, host {address}"
        ));
        Some(vec![(format!("[{literal}]"), 0, Some(vec![address]))])
    }

    fn report_mx(&mut self, domain: &str, answer: &Result<MxAnswer, TemporaryFailure>) {
        let (kind, records, detail) = match answer {
            Ok(MxAnswer::Records(records)) => (
                "records",
                records
                    .iter()
                    .map(|r| MxRecordReport {
                        preference: r.preference,
                        exchange: if r.exchange.is_empty() {
                            ".".into()
                        } else {
                            r.exchange.clone()
                        },
                    })
                    .collect(),
                format!("{} MX record(s)", records.len()),
            ),
            Ok(MxAnswer::NullMx) => (
                "null_mx",
                vec![MxRecordReport {
                    preference: 0,
                    exchange: ".".into(),
                }],
                format!("0 . (null MX): {domain} accepts no mail (RFC 7505)"),
            ),
            Ok(MxAnswer::NoMx) => (
                "no_mx",
                Vec::new(),
                format!("no MX records: the implicit MX is used, {domain}'s own A/AAAA addresses"),
            ),
            Ok(MxAnswer::NoSuchDomain) => (
                "nxdomain",
                Vec::new(),
                format!("NXDOMAIN: {domain} does not exist"),
            ),
            Err(failure) => ("temporary_failure", Vec::new(), failure.to_string()),
        };
        self.say(&format!("MX {domain}: {detail}"));
        if kind == "records" {
            for record in &records {
                self.say(&format!("  MX {} {}", record.preference, record.exchange));
            }
        }
        self.report.mx = Some(MxReport {
            answer: kind,
            records,
            detail,
        });
    }

    /// Looks up the host's addresses and records them.
    async fn addresses(&mut self, resolver: &Resolver, index: usize) -> Vec<IpAddr> {
        let Some(host) = self.report.hosts.get_mut(index) else {
            return Vec::new();
        };
        let planned = PlannedHost {
            name: host.name.clone(),
            preference: host.preference,
        };
        let line = match walk::addresses(resolver, &planned, &mut Vec::new()).await {
            Ok(addresses) => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                let line = format!("{}: addresses {}", host.name, list.join(", "));
                host.addresses = list;
                self.say(&line);
                return addresses;
            }
            Err((_, why)) => why,
        };
        host.error = Some(line.clone());
        let line = format!("{}: {line}; skipped", host.name);
        self.say(&line);
        Vec::new()
    }

    /// Connects to one address of host `index` and runs the probe session, as delivery would:
    /// STARTTLS, and once more in plaintext when the handshake fails only where delivery would
    /// (`tls_plaintext_fallback`, never for a DANE host).
    async fn try_host(
        &mut self,
        config: &Config,
        index: usize,
        target: SocketAddr,
        envelope: &Outgoing,
    ) -> HostEnd {
        let name = self
            .report
            .hosts
            .get(index)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        let own: Vec<SocketAddr> = config.listener.iter().map(|l| l.address).collect();
        if walk::is_mail_loop(target, &own) {
            let summary = format!("{name} [{target}] is this server (mail loop)");
            self.connection_line(index, &summary);
            self.conclude(false, Some(status::UNABLE_TO_ROUTE), summary);
            return HostEnd::Answered;
        }
        let helo = config
            .delivery
            .helo_name
            .as_deref()
            .unwrap_or(&config.hostname);
        // The trust anchors delivery uses, so the certificate's verdict is the one it would get;
        // a host with usable TLSA records is checked against them instead (DANE).
        let mut tls_client = TlsClient::new(config.delivery.ca_file.as_deref());
        let is_dane = match self.dane_of.get(&name) {
            Some(HostDane::Match(records)) => {
                tls_client = tls_client.with_dane(records.clone());
                true
            }
            Some(HostDane::Unusable(_)) => {
                return self.next_host(
                    index,
                    &name,
                    "its DANE lookup failed (bogus or unanswered)",
                );
            }
            _ => false,
        };
        for wants_tls in [true, false] {
            let tcp = match connect_tcp(target, config.delivery.source_address, TIMEOUT).await {
                Ok(tcp) => tcp,
                Err(broken) => {
                    let line = format!("connect {name} [{target}]: {}", broken.detail);
                    self.connection_line(index, &line);
                    return HostEnd::NextHost;
                }
            };
            self.connection_line(index, &format!("connect {name} [{target}]: connected"));
            let session = if wants_tls {
                ClientSession::with_starttls(helo)
            } else {
                ClientSession::new(helo)
            };
            let remote = RemoteMta {
                host: name.clone(),
                address: Some(target.ip()),
            };
            let mut connection = Connection::new(
                Stream::Tcp(tcp),
                remote,
                session.with_transcript(),
                tls_client.clone(),
                Timeouts::uniform(TIMEOUT),
            );
            let step = connection
                .run(Work::Probe(envelope), &mut self.watcher(&name, index))
                .await;
            match step {
                Err(broken)
                    if matches!(broken.cause, Cause::Tls(_))
                        && wants_tls
                        && config.delivery.tls_plaintext_fallback
                        && !is_dane =>
                {
                    let line = format!(
                        "{name}: {}; delivery would try again without TLS",
                        broken.detail
                    );
                    self.connection_line(index, &line);
                }
                Err(broken) if matches!(broken.cause, Cause::Tls(_)) => {
                    return self.next_host(index, &name, &broken.detail);
                }
                Err(broken)
                    if matches!(broken.cause, Cause::Lost(Stage::Greeting | Stage::Hello)) =>
                {
                    return self.next_host(index, &name, &broken.detail);
                }
                Err(broken) => {
                    let summary = format!(
                        "the connection to {name} was lost: {}; delivery would retry later",
                        broken.detail
                    );
                    self.say(&summary);
                    self.conclude(false, Some(status::BAD_CONNECTION), summary);
                    return HostEnd::Answered;
                }
                Ok(SessionStep::Failed(failure)) => {
                    return self.next_host(index, &name, &refusal(&failure));
                }
                Ok(SessionStep::Unsendable(refusal)) => {
                    let summary = format!("{name} cannot take this message: {}", refusal.reason);
                    self.conclude(false, Some(refusal.status), summary);
                    return HostEnd::Answered;
                }
                Ok(SessionStep::Sent(result)) => {
                    connection.quit(&mut self.watcher(&name, index)).await;
                    self.answered(&name, envelope, &result);
                    return HostEnd::Answered;
                }
            }
        }
        HostEnd::NextHost
    }

    /// Watches a session with host `index`, called `name`.
    fn watcher(&mut self, name: &str, index: usize) -> Watcher<'_> {
        Watcher {
            probe: self,
            host: name.to_owned(),
            index,
            commands: VecDeque::new(),
        }
    }

    fn next_host(&mut self, index: usize, name: &str, reason: &str) -> HostEnd {
        let line = format!("{name}: {reason}; delivery would try the next host");
        self.connection_line(index, &line);
        HostEnd::NextHost
    }

    /// Concludes from the MAIL and RCPT replies.
    fn answered(&mut self, host: &str, envelope: &Outgoing, result: &TransactionResult) {
        let mailbox = envelope.recipients.first().map_or("", |(r, _)| r.as_str());
        if result.mail.code != 250 {
            return self.refused(host, "the sender", &result.mail);
        }
        let Some(rcpt) = result.recipients.first().map(|r| &r.reply) else {
            return;
        };
        if rcpt.code < 300 {
            let summary = format!("{mailbox} would be accepted by {host}: {}", rcpt.to_line());
            self.conclude(true, rcpt.enhanced, summary);
        } else {
            self.refused(host, "the recipient", rcpt);
        }
    }

    fn refused(&mut self, host: &str, what: &str, reply: &Reply) {
        let class = if reply.is_transient() {
            "temporarily (delivery would retry)"
        } else {
            "permanently (delivery would bounce)"
        };
        let summary = format!("{host} refused {what} {class}: {}", reply.to_line());
        self.conclude(false, reply.enhanced, summary);
    }

    fn connection_line(&mut self, index: usize, line: &str) {
        self.say(line);
        if let Some(host) = self.report.hosts.get_mut(index) {
            host.connections.push(line.to_owned());
        }
    }
}

/// Watches one session: prints and records each exchange (commands paired with their
/// replies), the capabilities, and what TLS gave.
struct Watcher<'a> {
    probe: &'a mut Probe,
    host: String,
    index: usize,
    /// Commands sent and not yet answered, in order.
    commands: VecDeque<String>,
}

impl Observer for Watcher<'_> {
    fn transcript(&mut self, lines: Vec<TranscriptLine>) {
        for line in lines {
            for text in printed(&line) {
                self.probe.say(&text);
            }
            match line {
                TranscriptLine::Command(text) | TranscriptLine::Secret(text) => {
                    self.commands.push_back(text)
                }
                TranscriptLine::Content { .. } => {}
                TranscriptLine::Reply { stage, reply } => self.reply(stage, &reply),
            }
        }
    }

    fn tls(&mut self, report: &TlsReport) {
        self.probe.say(&format!("TLS: {}", report.summary()));
        self.probe.policy_verdict_on_tls(report.is_verified);
        if let Some(host) = self.probe.report.hosts.get_mut(self.index) {
            host.tls = Some(TlsHostReport {
                version: report.version.clone(),
                cipher: report.cipher.clone(),
                is_verified: report.is_verified,
                verify_error: report.verify_error.clone(),
            });
        }
    }
}

impl Watcher<'_> {
    fn reply(&mut self, stage: Stage, reply: &Reply) {
        let command = match stage {
            Stage::Greeting => None,
            _ => self.commands.pop_front(),
        };
        let explanation = explanation(reply);
        if let Some(explanation) = &explanation {
            self.probe.say(&format!("    {explanation}"));
        }
        if command.as_deref().is_some_and(|c| c.starts_with("EHLO")) && reply.code == 250 {
            self.capabilities(reply);
        }
        self.probe.report.steps.push(Step {
            host: self.host.clone(),
            command,
            reply: reply.to_line(),
            code: reply.code,
            enhanced: reply.enhanced.map(|e| e.to_string()),
            explanation,
        });
    }

    /// Records and prints the EHLO keywords and whether STARTTLS is offered.
    fn capabilities(&mut self, reply: &Reply) {
        let keywords: Vec<String> = reply.lines.iter().skip(1).cloned().collect();
        let starttls = keywords.iter().any(|k| {
            k.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))
        });
        self.probe.say(&format!(
            "capabilities: {}",
            if keywords.is_empty() {
                "none (no ESMTP extensions)".to_owned()
            } else {
                keywords.join(", ")
            }
        ));
        if let Some(host) = self.probe.report.hosts.get_mut(self.index) {
            host.capabilities = keywords;
            if host.starttls.is_none() {
                host.starttls = Some(starttls);
            }
        }
        if !starttls
            && self
                .probe
                .report
                .hosts
                .get(self.index)
                .is_some_and(|h| h.tls.is_none())
        {
            self.probe
                .say("STARTTLS: not offered (delivery would send in plaintext)");
        }
    }
}
