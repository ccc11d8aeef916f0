//! `petrel probe ADDRESS`: the dry run of a delivery. Shows what petrel would do if it sent to
//! ADDRESS now: the MX answer (null MX, NXDOMAIN, implicit MX, temporary failure), the ordered
//! hosts and their addresses, then one SMTP session with the first host that answers: greeting,
//! EHLO capabilities, MAIL FROM and RCPT TO, then RSET and QUIT. Never DATA.
//!
//! Uses the same pieces as delivery (`petrel_dns::Resolver`, `mxplan::plan`) so the answer is
//! the one a real attempt would get. The session runs in lockstep (one command, one reply):
//! `ClientSession` pipelines DATA after RCPT, which a probe must never send. Each reply is
//! explained from the reference when it has the code. Exit 0 only when RCPT was accepted.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use petrel_delivery::mxplan::{MxPlan, PlannedHost, literal_address, plan};
use petrel_dns::{AddressAnswer, MxAnswer, Resolver, TemporaryFailure};
use petrel_proto::address::{Domain, Mailbox, parse_mailbox};
use petrel_proto::reply::Reply;
use petrel_proto::{EnhancedCode, standard, status};
use serde::Serialize;

use crate::config::{Config, Source};
use crate::send::{Connection, Explanation, Received, explain_code, explanation};

/// How long to wait for each reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

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
        println!("{text}");
    } else {
        println!("verdict: {}", probe.report.verdict.summary);
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

/// Everything the probe found, as `--json` prints it.
#[derive(Debug, Default, Serialize)]
struct Report {
    address: String,
    domain: Option<String>,
    mx: Option<MxReport>,
    hosts: Vec<HostReport>,
    steps: Vec<Step>,
    verdict: Verdict,
}

#[derive(Debug, Serialize)]
struct MxReport {
    /// records | null_mx | no_mx | nxdomain | temporary_failure | address_literal
    answer: &'static str,
    records: Vec<MxRecordReport>,
    detail: String,
}

#[derive(Debug, Serialize)]
struct MxRecordReport {
    preference: u16,
    exchange: String,
}

#[derive(Debug, Default, Serialize)]
struct HostReport {
    name: String,
    preference: u16,
    addresses: Vec<String>,
    /// Why the host has no usable address, when it has none.
    error: Option<String>,
    /// One line per address tried: connected, refused, timed out.
    connections: Vec<String>,
    capabilities: Vec<String>,
    starttls: Option<bool>,
}

/// One exchange: a command (none for the greeting) and the reply.
#[derive(Debug, Serialize)]
struct Step {
    host: String,
    command: Option<String>,
    reply: String,
    code: u16,
    enhanced: Option<String>,
    explanation: Option<Explanation>,
}

#[derive(Debug, Default, Serialize)]
struct Verdict {
    accepted: bool,
    /// The enhanced status delivery would record.
    status: Option<String>,
    summary: String,
    explanation: Option<Explanation>,
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
}

impl Probe {
    fn new(is_json: bool, address: &str) -> Probe {
        Probe {
            is_json,
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
            println!("{text}");
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
        let resolver = match Resolver::new(&config.dns.nameservers, config.dns.timeout) {
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
        for (name, preference, addresses) in hosts {
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
                if let HostEnd::Answered =
                    self.try_host(config, index, target, sender, &mailbox).await
                {
                    return;
                }
            }
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
        let answer = resolver.mx(name).await;
        self.report_mx(name, &answer);
        let is_our_name = |host: &str| host.eq_ignore_ascii_case(&config.hostname);
        match plan(name, &answer, &is_our_name, &mut |_: &mut [PlannedHost]| {}) {
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
        let (addresses, line) = match resolver.addresses(&host.name).await {
            Ok(AddressAnswer::Addresses(addresses)) => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                let line = format!("{}: addresses {}", host.name, list.join(", "));
                host.addresses = list;
                (addresses, line)
            }
            Ok(AddressAnswer::NoAddresses) => (Vec::new(), "no A or AAAA record".to_owned()),
            Ok(AddressAnswer::NoSuchDomain) => (Vec::new(), "NXDOMAIN".to_owned()),
            Err(failure) => (Vec::new(), failure.to_string()),
        };
        let line = if addresses.is_empty() {
            host.error = Some(line.clone());
            format!("{}: {line}; skipped", host.name)
        } else {
            line
        };
        self.say(&line);
        addresses
    }

    /// Connects to one address of host `index` and runs the session.
    async fn try_host(
        &mut self,
        config: &Config,
        index: usize,
        target: SocketAddr,
        sender: &str,
        mailbox: &Mailbox,
    ) -> HostEnd {
        let name = self
            .report
            .hosts
            .get(index)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        if config.listener.iter().any(|l| l.address == target) {
            let summary = format!("{name} [{target}] is this server (mail loop)");
            self.connection_line(index, &summary);
            self.conclude(false, Some(status::UNABLE_TO_ROUTE), summary);
            return HostEnd::Answered;
        }
        let mut connection = match Connection::open(target, REPLY_TIMEOUT).await {
            Ok(connection) => connection,
            Err(error) => {
                self.connection_line(index, &format!("connect {name} [{target}]: {error}"));
                return HostEnd::NextHost;
            }
        };
        self.connection_line(index, &format!("connect {name} [{target}]: connected"));
        let mut session = Session {
            probe: self,
            connection: &mut connection,
            host: name,
            index,
        };
        session.run(&config.hostname, sender, mailbox).await
    }

    fn connection_line(&mut self, index: usize, line: &str) {
        self.say(line);
        if let Some(host) = self.report.hosts.get_mut(index) {
            host.connections.push(line.to_owned());
        }
    }
}

/// One lockstep session with one host.
struct Session<'a> {
    probe: &'a mut Probe,
    connection: &'a mut Connection,
    host: String,
    index: usize,
}

impl Session<'_> {
    async fn run(&mut self, helo_name: &str, sender: &str, mailbox: &Mailbox) -> HostEnd {
        let greeting = match self.exchange(None).await {
            Ok(reply) => reply,
            Err(error) => return self.next_host(&format!("no greeting: {error}")),
        };
        if greeting.code != 220 {
            let _ = self.exchange(Some("QUIT")).await;
            return self.next_host(&format!("refused the session: {}", greeting.to_line()));
        }
        let hello = match self.hello(helo_name).await {
            Ok(hello) => hello,
            Err(error) => return self.next_host(&error),
        };
        let utf8 = if mailbox.is_utf8() && hello.lines.iter().any(|l| keyword(l) == "SMTPUTF8") {
            " SMTPUTF8"
        } else {
            ""
        };
        match self.transaction(sender, mailbox, utf8).await {
            Ok(()) => {}
            Err(error) => {
                let summary = format!(
                    "the connection to {} was lost: {error}; delivery would retry later",
                    self.host
                );
                self.probe.say(&summary);
                self.probe
                    .conclude(false, Some(status::BAD_CONNECTION), summary);
            }
        }
        HostEnd::Answered
    }

    fn next_host(&mut self, reason: &str) -> HostEnd {
        let line = format!("{}: {reason}; delivery would try the next host", self.host);
        self.probe.connection_line(self.index, &line);
        HostEnd::NextHost
    }

    /// EHLO (HELO when EHLO is refused); records the capabilities.
    async fn hello(&mut self, helo_name: &str) -> Result<Reply, String> {
        let mut reply = self.exchange(Some(&format!("EHLO {helo_name}"))).await?;
        if reply.is_permanent() {
            reply = self.exchange(Some(&format!("HELO {helo_name}"))).await?;
        }
        if reply.code != 250 {
            let _ = self.exchange(Some("QUIT")).await;
            return Err(format!("refused EHLO and HELO: {}", reply.to_line()));
        }
        let keywords: Vec<String> = reply.lines.iter().skip(1).cloned().collect();
        let starttls = keywords.iter().any(|k| keyword(k) == "STARTTLS");
        self.probe.say(&format!(
            "capabilities: {}",
            if keywords.is_empty() {
                "none (no ESMTP extensions)".to_owned()
            } else {
                keywords.join(", ")
            }
        ));
        self.probe.say(if starttls {
            "STARTTLS: offered (delivery would upgrade to TLS; the probe stays in plaintext)"
        } else {
            "STARTTLS: not offered (delivery would send in plaintext)"
        });
        if let Some(host) = self.probe.report.hosts.get_mut(self.index) {
            host.capabilities = keywords;
            host.starttls = Some(starttls);
        }
        Ok(reply)
    }

    /// MAIL FROM, RCPT TO, RSET, QUIT; concludes from the replies.
    async fn transaction(
        &mut self,
        sender: &str,
        mailbox: &Mailbox,
        utf8: &str,
    ) -> Result<(), String> {
        let mail = self
            .exchange(Some(&format!("MAIL FROM:<{sender}>{utf8}")))
            .await?;
        if mail.code != 250 {
            let _ = self.exchange(Some("QUIT")).await;
            self.refused("the sender", &mail);
            return Ok(());
        }
        let rcpt = self.exchange(Some(&format!("RCPT TO:<{mailbox}>"))).await?;
        let _ = self.exchange(Some("RSET")).await;
        let _ = self.exchange(Some("QUIT")).await;
        if rcpt.code < 300 {
            let summary = format!(
                "{mailbox} would be accepted by {}: {}",
                self.host,
                rcpt.to_line()
            );
            self.probe.conclude(true, rcpt.enhanced, summary);
        } else {
            self.refused("the recipient", &rcpt);
        }
        Ok(())
    }

    fn refused(&mut self, what: &str, reply: &Reply) {
        let class = if reply.is_transient() {
            "temporarily (delivery would retry)"
        } else {
            "permanently (delivery would bounce)"
        };
        let summary = format!("{} refused {what} {class}: {}", self.host, reply.to_line());
        self.probe.conclude(false, reply.enhanced, summary);
    }

    /// Sends `command` (none: waits for the greeting), reads the reply, records and prints both.
    async fn exchange(&mut self, command: Option<&str>) -> Result<Reply, String> {
        if let Some(command) = command {
            self.probe.say(&format!("C: {command}"));
            self.connection
                .write(format!("{command}\r\n").as_bytes())
                .await?;
        }
        let received: Received = match self.connection.reply().await {
            Ok(received) => received,
            Err(error) => {
                self.probe.say(&format!("   ({error})"));
                return Err(error);
            }
        };
        for line in received.lines() {
            self.probe.say(&format!("S: {line}"));
        }
        let explanation = explanation(&received.reply);
        self.probe.explain_line(explanation.as_ref());
        self.probe.report.steps.push(Step {
            host: self.host.clone(),
            command: command.map(str::to_owned),
            reply: received.reply.to_line(),
            code: received.reply.code,
            enhanced: received.reply.enhanced.map(|e| e.to_string()),
            explanation,
        });
        Ok(received.reply)
    }
}

/// The keyword of an EHLO line, upper-case.
fn keyword(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}
