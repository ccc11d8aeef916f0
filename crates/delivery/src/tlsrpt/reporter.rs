//! The TLS reporter of a running petrel: counts what `remote` tells it, flushes the counts to
//! the records every minute, and once a UTC day has ended sends each domain's report of that
//! day, exactly once for the whole cluster (`Collector::claim_sending`). `petrel tls-report`
//! reads (and with `--send` sends) the current day's report through it.
//!
//! Failure policy: reporting never holds up delivery; a report that cannot be sent is logged
//! and not retried (the next day's report comes anyway).

use std::sync::Arc;
use std::time::Duration;

use petrel_dns::Resolver;
use petrel_proto::params::Body;
use petrel_proto::trace::{iso_date, rfc5322_date};
use petrel_queue::{Envelope, NewMessage, Queue, QueueId, Recipient};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::collect::Collector;
use super::report::{About, PolicyKey, SessionResult, Tally};
use super::send;
use crate::scheduler::{DeliverySettings, unix_now};

/// How often the counts in memory go to the records.
const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// How long after midnight (UTC) a day's reports wait, so every node has flushed its last
/// counts of that day.
const SEND_AFTER_MIDNIGHT_SECONDS: u64 = 5 * 60;

/// The reporter.
pub struct Reporter {
    collector: Arc<Collector>,
    resolver: Resolver,
    queue: Arc<dyn Queue>,
    requeue: mpsc::UnboundedSender<QueueId>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

impl Reporter {
    /// A reporter whose counts are `node`'s; report mails are stored in `queue` and handed to
    /// the scheduler through `requeue`.
    pub fn new(
        queue: Arc<dyn Queue>,
        resolver: Resolver,
        requeue: mpsc::UnboundedSender<QueueId>,
        node: &str,
    ) -> Reporter {
        Reporter {
            collector: Arc::new(Collector::new(queue.clone(), node)),
            resolver,
            queue,
            requeue,
        }
    }

    /// Counts one session with `domain`'s MX hosts.
    pub fn count(&self, domain: &str, policy: &PolicyKey, result: SessionResult) {
        self.collector.count(domain, policy, result, unix_now());
    }

    /// The whole cluster's tally of `domain` on `day`.
    ///
    /// # Errors
    /// When the records cannot be read.
    pub async fn tally(&self, domain: &str, day: &str) -> Result<Tally, String> {
        let collector = self.collector.clone();
        let (domain, day) = (domain.to_owned(), day.to_owned());
        tokio::task::spawn_blocking(move || collector.tally(&domain, &day))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the TLS report counts: {e}"))
    }

    /// The report (RFC 8460 §4.4) of `domain` on `day` as JSON.
    ///
    /// # Errors
    /// When the records cannot be read.
    pub async fn report(
        &self,
        settings: &DeliverySettings,
        domain: &str,
        day: &str,
    ) -> Result<Value, String> {
        let tally = self.tally(domain, day).await?;
        let contact = contact(settings);
        Ok(tally.report(&about(settings, &contact, domain, day)))
    }

    /// Sends the report of `domain` on `day` to the addresses of its `_smtp._tls` record;
    /// returns what was done, a line each.
    ///
    /// # Errors
    /// No counts, no record, or nothing could be sent.
    pub async fn send(
        &self,
        settings: &DeliverySettings,
        domain: &str,
        day: &str,
        is_manual: bool,
    ) -> Result<Vec<String>, String> {
        let tally = self.tally(domain, day).await?;
        if tally.is_empty() {
            return Err(format!("no session with {domain} was counted on {day}"));
        }
        let rua = send::lookup(&self.resolver, domain).await?;
        let contact = contact(settings);
        let mut about = about(settings, &contact, domain, day);
        if is_manual {
            about.manual_at = Some(unix_now());
        }
        let json = serde_json::to_vec_pretty(&tally.report(&about)).unwrap_or_default();
        let gzipped = send::gzip(&json);
        let (begin, end) = day_bounds(day);
        let name = send::file_name(&about, begin, end);
        let mut done = Vec::new();
        for address in &rua.mailto {
            match self.mail(settings, &about, address, &name, &gzipped).await {
                Ok(id) => done.push(format!("mailed to {address} (queue id {id})")),
                Err(error) => done.push(format!("not mailed to {address}: {error}")),
            }
        }
        for url in &rua.https {
            let tls = settings.tls_client.clone();
            match send::post(&self.resolver, &tls, url, &gzipped, settings.source_address).await {
                Ok(()) => done.push(format!("posted to {url}")),
                Err(error) => done.push(format!("not posted: {error}")),
            }
        }
        Ok(done)
    }

    async fn mail(
        &self,
        settings: &DeliverySettings,
        about: &About<'_>,
        to: &str,
        name: &str,
        gzipped: &[u8],
    ) -> Result<QueueId, String> {
        let now = unix_now();
        let content = send::mail(
            about,
            to,
            &rfc5322_date(i64::try_from(now).unwrap_or(0)),
            name,
            gzipped,
        );
        let envelope = Envelope {
            arrival_unix_seconds: now,
            client_address: "127.0.0.1".into(),
            client_helo: settings.hostname.clone(),
            reverse_path: String::new(),
            body: Body::SevenBit,
            is_smtputf8: false,
            requires_tls: false,
            ret: None,
            envelope_id: None,
            recipients: vec![Recipient::new(to)],
            message_id: Some(format!("<{}>", about.report_id())),
            history: vec![format!(
                "TLS report (RFC 8460) of {} for {}",
                about.domain, about.day
            )],
        };
        let queue = self.queue.clone();
        let id = tokio::task::spawn_blocking(move || {
            queue.store(&envelope, &NewMessage::without_header(&content))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let _ = self.requeue.send(id.clone());
        Ok(id)
    }

    /// Runs until `stop`: flushes every minute, and sends the reports of a day once it ended.
    pub async fn run(
        self: Arc<Self>,
        settings: watch::Receiver<Arc<DeliverySettings>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        let mut reported_day: Option<String> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {
                    self.flush().await;
                    return;
                }
            }
            self.flush().await;
            let now = unix_now();
            if now % 86_400 < SEND_AFTER_MIDNIGHT_SECONDS {
                continue;
            }
            let yesterday = iso_date(i64::try_from(now).unwrap_or(0) - 86_400);
            if reported_day.as_deref() != Some(yesterday.as_str()) {
                let settings = settings.borrow().clone();
                self.send_day(&settings, &yesterday).await;
                reported_day = Some(yesterday);
            }
        }
    }

    async fn flush(&self) {
        let collector = self.collector.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || collector.flush()).await {
            warn!(%error, "cannot write the TLS report counts; kept in memory");
        }
    }

    /// Sends every domain's report of `day` that no node has sent yet.
    async fn send_day(&self, settings: &DeliverySettings, day: &str) {
        let collector = self.collector.clone();
        let wanted = day.to_owned();
        let domains = match tokio::task::spawn_blocking(move || collector.day(&wanted)).await {
            Ok(Ok(domains)) => domains,
            Ok(Err(error)) => {
                warn!(%error, day, "cannot read the TLS report counts");
                return;
            }
            Err(_) => return,
        };
        for (domain, _) in domains {
            let collector = self.collector.clone();
            let (claim_domain, claim_day) = (domain.clone(), day.to_owned());
            let is_ours = tokio::task::spawn_blocking(move || {
                collector.claim_sending(&claim_domain, &claim_day)
            })
            .await;
            if !matches!(is_ours, Ok(Ok(true))) {
                continue;
            }
            match self.send(settings, &domain, day, false).await {
                Ok(done) => info!(%domain, day, "TLS report sent: {}", done.join("; ")),
                Err(reason) => info!(%domain, day, "no TLS report sent: {reason}"),
            }
        }
    }
}

fn about<'a>(
    settings: &'a DeliverySettings,
    contact: &'a str,
    domain: &'a str,
    day: &'a str,
) -> About<'a> {
    About {
        domain,
        day,
        submitter: &settings.hostname,
        organization: &settings.hostname,
        contact,
        manual_at: None,
    }
}

/// Who to write to about a report: the postmaster of this host.
fn contact(settings: &DeliverySettings) -> String {
    format!("postmaster@{}", settings.hostname)
}

/// The first and last second of `day` (`YYYY-MM-DD`, UTC), in Unix seconds.
pub fn day_bounds(day: &str) -> (i64, i64) {
    let mut parts = day.split('-').map(|p| p.parse::<i64>().unwrap_or(1));
    let (year, month, date) = (
        parts.next().unwrap_or(1970),
        parts.next().unwrap_or(1),
        parts.next().unwrap_or(1),
    );
    // Days from civil (proleptic Gregorian), the inverse of trace::iso_date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + date - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400, days * 86_400 + 86_399)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_bounds_invert_iso_date() {
        for unix in [0_i64, 951_782_400, 1_796_601_600, 1_796_687_999] {
            let day = iso_date(unix);
            let (begin, end) = day_bounds(&day);
            assert!(
                begin <= unix && unix <= end,
                "{day}: {begin}..{end} for {unix}"
            );
            assert_eq!(end - begin, 86_399);
        }
    }
}
