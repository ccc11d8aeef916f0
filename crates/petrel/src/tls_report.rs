//! `petrel tls-report DOMAIN [--json] [--send] [--day YYYY-MM-DD]`: the TLS report (RFC 8460)
//! of a policy domain for today (UTC), as it would be sent: the whole cluster's counts, read
//! through the running daemon (which writes its latest counts first). `--send` sends it now to
//! the addresses of the domain's `_smtp._tls` record, under a report id of its own (the daily
//! report of that day still goes, once, as usual). Without a running daemon the stored
//! counts are read from the queue backend directly (and nothing can be sent).

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use petrel_delivery::scheduler::{DeliverySettings, unix_now};
use petrel_delivery::tlsrpt::{Collector, Reporter};
use petrel_proto::trace::iso_date;
use serde_json::Value;

use crate::config::{self, Source};

/// Arguments of `petrel tls-report`.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsReportArgs {
    /// The policy domain (a recipient domain petrel delivers to).
    domain: String,
    /// Print the report's JSON, as it is sent.
    #[arg(long)]
    json: bool,
    /// Send the report now to the domain's reporting addresses.
    #[arg(long)]
    send: bool,
    /// Another day than today (UTC), as YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    day: Option<String>,
}

impl TlsReportArgs {
    fn to_line(&self) -> String {
        let mut line = format!("tls-report {}", self.domain);
        if self.json {
            line.push_str(" --json");
        }
        if self.send {
            line.push_str(" --send");
        }
        if let Some(day) = &self.day {
            line.push_str(&format!(" --day {day}"));
        }
        line
    }

    /// Parses a request line of the control socket (after `tls-report `).
    pub fn parse_line(rest: &str) -> Option<TlsReportArgs> {
        let mut words = rest.split_whitespace();
        let mut args = TlsReportArgs {
            domain: words.next()?.to_owned(),
            json: false,
            send: false,
            day: None,
        };
        while let Some(word) = words.next() {
            match word {
                "--json" => args.json = true,
                "--send" => args.send = true,
                "--day" => args.day = Some(words.next()?.to_owned()),
                _ => return None,
            }
        }
        Some(args)
    }

    fn day(&self) -> Result<String, String> {
        match &self.day {
            None => Ok(iso_date(i64::try_from(unix_now()).unwrap_or(0))),
            Some(day) => {
                let is_date = day.len() == 10
                    && day.bytes().enumerate().all(|(i, b)| {
                        if i == 4 || i == 7 {
                            b == b'-'
                        } else {
                            b.is_ascii_digit()
                        }
                    });
                if is_date {
                    Ok(day.clone())
                } else {
                    Err(format!("--day {day:?} is not a date like 2026-12-07"))
                }
            }
        }
    }
}

/// Runs the command.
///
/// # Errors
/// A sentence for the operator.
pub fn run(source: &Source, args: &TlsReportArgs) -> Result<(), String> {
    let config = config::load(source)?;
    args.day()?;
    let socket = config.data_dir.join("control.sock");
    if let Ok(stream) = UnixStream::connect(&socket) {
        return through_daemon(stream, args);
    }
    if args.send {
        return Err("--send needs the running petrel (its queue delivers the report)".into());
    }
    let queue = crate::queue_open::open(&config, crate::queue_open::Opener::Command)?;
    let settings = config.delivery_settings(&[])?;
    let collector = Collector::new(queue, &settings.node_name);
    let day = args.day()?;
    let tally = collector
        .tally(&args.domain, &day)
        .map_err(|e| format!("cannot read the TLS report counts: {e}"))?;
    let contact = format!("postmaster@{}", settings.hostname);
    let about = petrel_delivery::tlsrpt::report::About {
        domain: &args.domain,
        day: &day,
        submitter: &settings.hostname,
        organization: &settings.hostname,
        contact: &contact,
        manual_at: None,
    };
    out!("{}", render(&tally.report(&about), args.json));
    Ok(())
}

fn through_daemon(stream: UnixStream, args: &TlsReportArgs) -> Result<(), String> {
    crate::queue_cli::ask_daemon(stream, &args.to_line())
}

/// The daemon's answer to a `tls-report` request.
///
/// # Errors
/// A sentence for the operator.
pub async fn answer(
    reporter: &Arc<Reporter>,
    settings: &DeliverySettings,
    args: &TlsReportArgs,
) -> Result<String, String> {
    let day = args.day()?;
    let report = reporter.report(settings, &args.domain, &day).await?;
    let mut text = render(&report, args.json);
    if args.send {
        let done = reporter.send(settings, &args.domain, &day, true).await?;
        for line in done {
            text.push_str(&format!("{line}\n"));
        }
    }
    Ok(text)
}

/// The report as JSON, or for people.
fn render(report: &Value, is_json: bool) -> String {
    if is_json {
        return serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
    }
    let domain = report["policies"][0]["policy"]["policy-domain"]
        .as_str()
        .unwrap_or("");
    let start = report["date-range"]["start-datetime"]
        .as_str()
        .unwrap_or("");
    let mut text = format!(
        "TLS report (RFC 8460) from {}, {} to {}:\n",
        report["organization-name"].as_str().unwrap_or(""),
        start,
        report["date-range"]["end-datetime"].as_str().unwrap_or("")
    );
    let policies = report["policies"].as_array().cloned().unwrap_or_default();
    if policies.is_empty() {
        text.push_str("  no session counted\n");
    }
    for policy in policies {
        let mx: Vec<&str> = policy["policy"]["mx-host"]
            .as_array()
            .map(|hosts| hosts.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        text.push_str(&format!(
            "  {domain}, policy {}{}: {} successful, {} failed\n",
            policy["policy"]["policy-type"].as_str().unwrap_or(""),
            if mx.is_empty() {
                String::new()
            } else {
                format!(" (mx {})", mx.join(" "))
            },
            policy["summary"]["total-successful-session-count"],
            policy["summary"]["total-failure-session-count"]
        ));
        for detail in policy["failure-details"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            text.push_str(&format!(
                "    {}: {} ({} {})\n",
                detail["result-type"].as_str().unwrap_or(""),
                detail["failed-session-count"],
                detail["receiving-mx-hostname"].as_str().unwrap_or("-"),
                detail["receiving-ip"].as_str().unwrap_or("-")
            ));
        }
    }
    text
}
