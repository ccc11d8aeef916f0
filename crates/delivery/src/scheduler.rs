//! The scheduler: walks the queue and delivers what is due, a bounded number of messages at
//! once. Local recipients go to Maildir; remote ones are grouped by domain and sent through
//! `remote`, at most `concurrency_per_domain` at once per domain. Each outcome is recorded
//! with the recipient (state, status, reply, next attempt) and in the message's history; a
//! 5xx is final and never retried, also not after a restart, because the state is on disk.
//! Failed recipients get one DSN per message (never for the null sender, C-BOUNCE-1, C-RETRY-5).
//!
//! New messages arrive by id; deferred ones are woken at their next attempt, and a periodic
//! rescan picks up what an earlier run left. A record that cannot be read is moved to
//! `corrupt/`, never deleted.
//!
//! On a shared queue (PostgreSQL, several nodes) a message is delivered only under a claim:
//! `process` claims it first and gives the claim back when done; the rescan (every
//! `Claims::rescan_interval`, and whenever the queue says another node left work) claims due
//! messages no node holds, as many as there are free delivery slots.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use petrel_dns::Resolver;
use petrel_proto::address::{Domain, parse_mailbox};
use petrel_queue::sync::lock;
use petrel_queue::{
    Claims, Envelope, Loaded, Queue, QueueError, QueueId, RecipientState, Residence,
};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::{error, info, warn};

use crate::dsn::Action;
use crate::local::deliver_local_recipients;
use crate::outcome::{Transport, apply_outcomes, notice_for};
use crate::remote::{RemoteSettings, deliver};
use crate::schedule::RetryPolicy;

/// Messages delivered at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// How soon a message whose claim failed (the database away) is tried again.
const RETRY_SOON: Duration = Duration::from_secs(5);
/// How often old histories are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often a queue of one node is walked for due mail (a shared queue says its own).
const RESCAN_INTERVAL: Duration = Duration::from_secs(60);

/// What delivery needs from the configuration; replaced whole on reload.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub hostname: String,
    /// `<data_dir>/mail`.
    pub mail_root: PathBuf,
    /// Lower-case local domains; the first receives mail for a bare `Postmaster`.
    pub local_domains: Vec<String>,
    pub recipient_delimiter: Option<String>,
    /// TCP port of remote MX hosts.
    pub port: u16,
    pub retry: RetryPolicy,
    pub concurrency_per_domain: usize,
    /// Our listeners, to recognise ourselves among a domain's MX hosts.
    pub own_addresses: Vec<SocketAddr>,
    /// How long the history of a finished message is kept for `queue show`.
    pub keep_history: Duration,
    /// Smarthost and per-domain routes.
    pub routes: crate::route::Routes,
    /// The name we give in EHLO (`delivery.helo_name`, else the host name).
    pub helo_name: String,
    /// The local address outbound connections come from (`delivery.source_address`).
    pub source_address: Option<std::net::IpAddr>,
    /// A pending recipient this old gets one delay notice (DSN Action: delayed); zero: never.
    pub delay_notice_after: Duration,
    /// `local.lmtp`: local mail goes to this LMTP server instead of Maildir.
    pub lmtp: Option<crate::lmtp::LmtpAddress>,
    /// Outbound TLS: the levels by destination.
    pub tls: crate::tls_policy::TlsPolicies,
    /// The trust anchors (the system's and `delivery.ca_file`).
    pub tls_client: crate::client::TlsClient,
    /// `delivery.mta_sts`: honour the MTA-STS policies of recipient domains (RFC 8461).
    pub mta_sts: bool,
    /// `delivery.tls_reports`: count TLS sessions and send daily reports (RFC 8460).
    pub tls_reports: bool,
    /// This node's name (its TLS report counts are kept under it).
    pub node_name: String,
}

/// Runs deliveries until told to stop.
pub struct Scheduler {
    context: Arc<Context>,
}

/// A message above this size is read for delivery only when there is room for it under
/// `LARGE_MESSAGES_KIB` (issue 18): a crowd of large messages is delivered a few at a time
/// instead of all read into memory at once.
const LARGE_MESSAGE_BYTES: u64 = 1024 * 1024;
/// The room, in KiB, for large messages being delivered at once (32 MiB); one message larger
/// than all of it takes all of it. A message waits for its room in turn (the semaphore is
/// fair) after giving its delivery slot back, so large messages never hold the slots the
/// others need, and takes a slot again once it has the room.
const LARGE_MESSAGES_KIB: u32 = 32 * 1024;

/// What a load found of the message itself.
enum Content {
    /// Nothing is due: not read.
    NotDue,
    Read(Vec<u8>),
    /// Due and large: read once there is room (`LARGE_MESSAGES_KIB`).
    Large(u64),
}

struct Context {
    queue: Arc<dyn Queue>,
    /// Room for large messages being delivered (permits are KiB).
    large_messages: Arc<Semaphore>,
    resolver: Resolver,
    settings: watch::Receiver<Arc<DeliverySettings>>,
    in_flight: Arc<Mutex<HashSet<QueueId>>>,
    slots: Arc<Semaphore>,
    domains: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Idle outbound sessions, reused by the next message to the same domain.
    pool: crate::pool::Pool,
    /// MTA-STS policies found and cached (used when `mta_sts` is on).
    mta_sts: Arc<crate::mta_sts::Discovery>,
    /// TLS report counts and the daily reports (used when `tls_reports` is on).
    tls_reports: Arc<crate::tlsrpt::Reporter>,
    /// Messages with a wake-up timer running, so each has at most one.
    waking: Mutex<HashSet<QueueId>>,
    /// Feeds ids back into the scheduler (bounces, wake-ups).
    requeue: mpsc::UnboundedSender<QueueId>,
    /// A shared queue's "look for due mail now" (another node queued mail, or a full claim
    /// left more behind).
    wake: Arc<Notify>,
    /// The last claim pass filled every free slot: look again when a delivery ends.
    more: std::sync::atomic::AtomicBool,
    /// Flushed by an operator (`Control::flush`): due now whatever their envelopes say.
    flushed: Arc<Mutex<HashSet<QueueId>>>,
}

impl Scheduler {
    /// The TLS reporter (for `petrel tls-report`).
    pub fn tls_reporter(&self) -> Arc<crate::tlsrpt::Reporter> {
        self.context.tls_reports.clone()
    }

    /// A scheduler over `queue`; `requeue` must feed the receiver later given to `run`.
    pub fn new(
        queue: Arc<dyn Queue>,
        resolver: Resolver,
        settings: watch::Receiver<Arc<DeliverySettings>>,
        requeue: mpsc::UnboundedSender<QueueId>,
    ) -> Scheduler {
        let node_name = settings.borrow().node_name.clone();
        let wake = Arc::new(Notify::new());
        let notified = wake.clone();
        if let Some(claims) = queue.claims() {
            claims.on_wake(Box::new(move || notified.notify_one()));
        }
        Scheduler {
            context: Arc::new(Context {
                mta_sts: Arc::new(crate::mta_sts::Discovery::new(
                    resolver.clone(),
                    queue.clone(),
                )),
                tls_reports: Arc::new(crate::tlsrpt::Reporter::new(
                    queue.clone(),
                    resolver.clone(),
                    requeue.clone(),
                    &node_name,
                )),
                queue,
                resolver,
                settings,
                in_flight: Arc::new(Mutex::new(HashSet::new())),
                slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                large_messages: Arc::new(Semaphore::new(LARGE_MESSAGES_KIB as usize)),
                domains: Mutex::new(HashMap::new()),
                waking: Mutex::new(HashSet::new()),
                pool: crate::pool::Pool::default(),
                requeue,
                wake,
                more: std::sync::atomic::AtomicBool::new(false),
                flushed: Arc::default(),
            }),
        }
    }

    /// Delivers queued messages and each id sent on `queued`, until `stop` turns true; then
    /// waits for deliveries in progress to finish.
    pub async fn run(
        self,
        mut queued: mpsc::UnboundedReceiver<QueueId>,
        mut stop: watch::Receiver<bool>,
    ) {
        let interval = self
            .context
            .queue
            .claims()
            .map_or(RESCAN_INTERVAL, Claims::rescan_interval);
        let mut rescan = tokio::time::interval(interval);
        let is_shared = self.context.queue.claims().is_some();
        let mut last_purge: Option<tokio::time::Instant> = None;
        if self.context.settings.borrow().tls_reports {
            let reporter = self.context.tls_reports.clone();
            tokio::spawn(reporter.run(self.context.settings.clone(), stop.clone()));
        }
        let wake = self.context.wake.clone();
        loop {
            tokio::select! {
                _ = rescan.tick() => {
                    if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
                        last_purge = Some(tokio::time::Instant::now());
                        self.purge().await;
                    }
                    self.rescan().await;
                }
                _ = wake.notified(), if is_shared => self.rescan().await,
                id = queued.recv() => match id {
                    Some(id) => self.start(id).await,
                    None => break,
                },
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        let _ = self.context.slots.acquire_many(MAX_IN_FLIGHT as u32).await;
    }

    /// The operator's handle on this scheduler's queue (hold, flush, ...).
    pub fn control(&self) -> crate::control::Control {
        crate::control::Control::new(
            self.context.queue.clone(),
            self.context.settings.clone(),
            self.context.in_flight.clone(),
            Some(self.context.requeue.clone()),
        )
        .with_flushed(self.context.flushed.clone())
    }

    async fn purge(&self) {
        self.context.pool.sweep();
        let queue = self.context.queue.clone();
        let keep = self.context.settings.borrow().keep_history;
        match tokio::task::spawn_blocking(move || queue.purge_history(keep)).await {
            Ok(Ok(purged)) if purged > 0 => info!(purged, "old message histories removed"),
            Ok(Err(error)) => warn!(%error, "cannot purge old histories"),
            _ => {}
        }
    }

    /// Starts what is due: every active message of the spool; on a shared queue, as many
    /// unclaimed due messages as there are free slots.
    async fn rescan(&self) {
        let queue = self.context.queue.clone();
        let listing = if queue.claims().is_some() {
            let free = self.context.slots.available_permits();
            if free == 0 {
                self.context
                    .more
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let claimed = tokio::task::spawn_blocking(move || {
                queue.claims().map_or(Ok(Vec::new()), |c| c.claim_due(free))
            })
            .await;
            if let Ok(Ok(ids)) = &claimed {
                self.context
                    .more
                    .store(ids.len() >= free, std::sync::atomic::Ordering::Relaxed);
            }
            claimed
        } else {
            tokio::task::spawn_blocking(move || queue.list()).await
        };
        match listing {
            Ok(Ok(ids)) => {
                for id in ids {
                    self.start(id).await;
                }
            }
            Ok(Err(error)) => error!(%error, "cannot list the queue"),
            Err(error) => error!(%error, "queue listing task failed"),
        }
    }

    /// Starts delivering `id` unless it is already in progress; waits for a free slot.
    async fn start(&self, id: QueueId) {
        let Ok(permit) = self.context.slots.clone().acquire_owned().await else {
            return;
        };
        if !lock(&self.context.in_flight).insert(id.clone()) {
            return;
        }
        let context = self.context.clone();
        tokio::spawn(async move {
            let mut slot = Some(permit);
            process(&context, &id, &mut slot).await;
            if context.queue.claims().is_some_and(|c| c.holds(&id)) {
                // A path of `process` that recorded nothing: the claim ends here.
                let (queue, claimed) = (context.queue.clone(), id.clone());
                let unclaimed = blocking(move || queue.claims().map(|c| c.unclaim(&claimed)));
                if let Some(Some(Err(error))) = unclaimed.await {
                    warn!(queue_id = %id, %error, "cannot give the claim back; its lease runs out by itself");
                }
            }
            lock(&context.in_flight).remove(&id);
            drop(slot);
            if context
                .more
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                context.wake.notify_one();
            }
        });
    }
}

/// Stores the bounce (if any), then updates or archives the message; returns the bounce's id.
pub(crate) async fn save(
    queue: Arc<dyn Queue>,
    id: QueueId,
    loaded: Loaded,
    bounce: Option<(Envelope, Vec<u8>)>,
) -> Option<Result<Option<QueueId>, QueueError>> {
    // A bounce is a store, which waits for the disk: only without one may this run here. The
    // residence is the load's: a message the checkpoint wrote out as files during a long
    // delivery (over 30 s) costs one unsynced write and rename of its envelope here, never an
    // fsync; asking the queue again would cost every delivery a copy of the envelope.
    let Loaded {
        envelope,
        residence,
    } = loaded;
    let is_here = bounce.is_none() && residence == Residence::Memory;
    here_or_blocking(is_here, move || {
        let bounce_id = match bounce {
            Some((bounce_envelope, content)) => Some(queue.store(
                &bounce_envelope,
                &petrel_queue::NewMessage::without_header(&content),
            )?),
            None => None,
        };
        if envelope.is_finished() {
            queue.archive(&id, &envelope)?;
        } else {
            queue.update(&id, &envelope)?;
        }
        Ok(bounce_id)
    })
    .await
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// The work right here when `is_here` (the queue answers from memory, a journal-resident
/// message: a thread hop costs more than the work then), else `blocking`.
async fn here_or_blocking<T: Send + 'static>(
    is_here: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if is_here {
        Some(work())
    } else {
        blocking(work).await
    }
}

/// Delivers what is due of one message and records the results.
async fn process(
    context: &Arc<Context>,
    id: &QueueId,
    slot: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) {
    if context.queue.claims().is_some() {
        let (queue, claim_id) = (context.queue.clone(), id.clone());
        let claimed = blocking(move || queue.claims().map_or(Ok(true), |c| c.claim(&claim_id)));
        match claimed.await {
            Some(Ok(true)) => {}
            // Another node has it, or it is no longer active.
            Some(Ok(false)) | None => return,
            Some(Err(error)) => {
                warn!(queue_id = %id, %error, "cannot claim the message now; will retry");
                return retry_soon(context, id);
            }
        }
    }
    // Envelope and (when something is due) message in one trip to a blocking thread.
    let queue = context.queue.clone();
    let load_id = id.clone();
    let now = unix_now();
    let is_flushed = lock(&context.flushed).remove(id);
    let resident = context.queue.load_resident(id);
    let loaded = here_or_blocking(resident.is_some(), move || {
        let loaded = match resident {
            Some(loaded) => loaded,
            None => queue.load(&load_id),
        };
        let Loaded {
            mut envelope,
            residence,
        } = loaded.map_err(|e| (true, e))?;
        if is_flushed {
            for recipient in &mut envelope.recipients {
                if recipient.state == RecipientState::Pending {
                    recipient.next_attempt_unix_seconds = 0;
                }
            }
        }
        if !envelope
            .pending()
            .any(|(_, r)| r.next_attempt_unix_seconds <= now)
        {
            return Ok((envelope, residence, Content::NotDue));
        }
        if residence == Residence::Storage
            && let Some(size) = queue
                .message_size_hint(&load_id)
                .filter(|size| *size > LARGE_MESSAGE_BYTES)
        {
            return Ok((envelope, residence, Content::Large(size)));
        }
        let message = queue.read_message(&load_id).map_err(|e| (false, e))?;
        Ok((envelope, residence, Content::Read(message)))
    })
    .await;
    let (mut envelope, residence, content) = match loaded {
        Some(Ok(loaded)) => loaded,
        Some(Err((true, QueueError::NotFound(_)))) | None => return,
        Some(Err((_, error))) => return quarantine(context, id, &error).await,
    };
    // A large message is read only when there is room for it (issue 18: memory bounded
    // whatever the message sizes); the permit is held until its delivery ends.
    let mut _room = None;
    let message = match content {
        Content::NotDue => return wake_later(context, id, &envelope),
        Content::Read(message) => Arc::new(message),
        Content::Large(size) => {
            let kib = u32::try_from(size.div_ceil(1024))
                .unwrap_or(u32::MAX)
                .min(LARGE_MESSAGES_KIB);
            if let Ok(room) = context.large_messages.clone().try_acquire_many_owned(kib) {
                _room = Some(room);
            } else {
                // Wait for the room in turn without holding a delivery slot; the message stays
                // in flight, so it is not started twice meanwhile.
                drop(slot.take());
                _room = context
                    .large_messages
                    .clone()
                    .acquire_many_owned(kib)
                    .await
                    .ok();
                *slot = context.slots.clone().acquire_owned().await.ok();
            }
            let (queue, read_id) = (context.queue.clone(), id.clone());
            match blocking(move || queue.read_message(&read_id)).await {
                Some(Ok(message)) => Arc::new(message),
                Some(Err(QueueError::NotFound(_))) | None => return,
                Some(Err(error)) => return quarantine(context, id, &error).await,
            }
        }
    };
    let settings = context.settings.borrow().clone();
    let before: Vec<RecipientState> = envelope.recipients.iter().map(|r| r.state).collect();
    let (local_settings, local_id, local_message) = (settings.clone(), id.clone(), message.clone());
    let (mut envelope, mut successes) = match &settings.lmtp {
        Some(server) => {
            let delivered =
                crate::lmtp::deliver_lmtp(&settings, server, id, &mut envelope, &message, now)
                    .await;
            (envelope, delivered)
        }
        // No blocking trip when no due recipient is local (relayed mail).
        None if !envelope.pending().any(|(_, r)| {
            r.next_attempt_unix_seconds <= now
                && crate::local::local_target(&settings, &r.address).is_some()
        }) =>
        {
            (envelope, Vec::new())
        }
        None => match blocking(move || {
            let delivered = deliver_local_recipients(
                &local_settings,
                &local_id,
                &mut envelope,
                &local_message,
                now,
            );
            (envelope, delivered)
        })
        .await
        {
            Some(done) => done,
            None => return,
        },
    };
    successes.extend(deliver_remote(context, &settings, id, &mut envelope, &message, now).await);
    let bounce = notice_for(
        &settings,
        id,
        &mut envelope,
        &before,
        &successes,
        &message,
        unix_now(),
    );
    let loaded = Loaded {
        envelope,
        residence,
    };
    // The delivery is over: its slot goes to the next message while the outcome is recorded.
    // On PostgreSQL an archive waits for a group commit, which gathers more rows the more
    // deliveries finish meanwhile; the message stays in flight (and claimed) until recorded.
    drop(slot.take());
    record(context, id, loaded, bounce).await;
}

/// Sends the due remote recipients, one transaction per domain.
async fn deliver_remote(
    context: &Context,
    settings: &DeliverySettings,
    id: &QueueId,
    envelope: &mut Envelope,
    message: &[u8],
    now: u64,
) -> Vec<(usize, Action)> {
    let mut successes = Vec::new();
    let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, recipient) in envelope.pending() {
        if recipient.next_attempt_unix_seconds > now
            || crate::local::local_target(settings, &recipient.address).is_some()
        {
            continue;
        }
        let domain = match parse_mailbox(&recipient.address).map(|m| m.domain) {
            // A local domain's address that has no Maildir folder stays for an operator.
            Ok(Domain::Name(name))
                if settings.local_domains.contains(&name.to_ascii_lowercase()) =>
            {
                continue;
            }
            Ok(Domain::Name(name)) => name.to_ascii_lowercase(),
            Ok(literal @ Domain::AddressLiteral(_)) => literal.to_string(),
            Err(_) => continue,
        };
        by_domain.entry(domain).or_default().push(index);
    }
    let remote = RemoteSettings {
        helo_name: settings.helo_name.clone(),
        our_names: vec![settings.helo_name.clone(), settings.hostname.clone()],
        tls: settings.tls.clone(),
        tls_client: settings.tls_client.clone(),
        port: settings.port,
        own_addresses: settings.own_addresses.clone(),
        connect_timeout: Duration::from_secs(30),
        source_address: settings.source_address,
        mta_sts: settings.mta_sts.then(|| context.mta_sts.clone()),
        tls_reports: settings.tls_reports.then(|| context.tls_reports.clone()),
    };
    for (domain, indexes) in by_domain {
        let outgoing = crate::outcome::outgoing(envelope, &indexes, message);
        let limit = domain_slot(context, &domain, settings.concurrency_per_domain);
        let _permit = limit.acquire_owned().await;
        let attempt = deliver(
            &context.resolver,
            &remote,
            &context.pool,
            &domain,
            settings.routes.for_domain(&domain),
            &outgoing,
        )
        .await;
        for line in &attempt.history {
            info!(queue_id = %id, %domain, "{line}");
        }
        successes.extend(apply_outcomes(
            settings,
            envelope,
            &indexes,
            &attempt,
            unix_now(),
            Transport::Smtp,
        ));
        crate::outcome::log_outcomes(id, envelope, &indexes, Transport::Smtp);
    }
    successes
}

fn domain_slot(context: &Context, domain: &str, limit: usize) -> Arc<Semaphore> {
    lock(&context.domains)
        .entry(domain.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
        .clone()
}

/// Writes the new state, queues the bounce, and archives the message once nothing is pending.
async fn record(
    context: &Arc<Context>,
    id: &QueueId,
    loaded: Loaded,
    bounce: Option<(Envelope, Vec<u8>)>,
) {
    let finished = loaded.envelope.is_finished();
    let wake = loaded.envelope.clone();
    let result = save(context.queue.clone(), id.clone(), loaded, bounce).await;
    match result {
        Some(Ok(bounce_id)) => {
            if let Some(bounce_id) = bounce_id {
                info!(queue_id = %id, bounce = %bounce_id, "delivery status notification queued");
                petrel_metrics::registry().increment(petrel_metrics::BOUNCES_QUEUED, &[]);
                let _ = context.requeue.send(bounce_id);
            }
            if finished {
                info!(queue_id = %id, "finished: every recipient is done; history kept for queue show");
            } else {
                wake_later(context, id, &wake);
            }
        }
        Some(Err(QueueError::LeaseLost(_))) => {
            warn!(queue_id = %id, "lease lost while delivering: another node took the message over and records its deliveries; this node's outcome is dropped (a recipient it reached may get a second copy)")
        }
        Some(Err(error)) => {
            error!(queue_id = %id, %error, "cannot record the delivery; the message stays queued")
        }
        None => error!(queue_id = %id, "recording task failed"),
    }
}

/// Feeds `id` back in when its earliest pending recipient is due.
fn wake_later(context: &Arc<Context>, id: &QueueId, envelope: &Envelope) {
    let Some(next) = envelope
        .pending()
        .map(|(_, r)| r.next_attempt_unix_seconds)
        .min()
    else {
        return;
    };
    wake_in(
        context,
        id,
        Duration::from_secs(next.saturating_sub(unix_now())),
    );
}

/// Feeds `id` back in a few seconds (the queue could not be reached).
fn retry_soon(context: &Arc<Context>, id: &QueueId) {
    wake_in(context, id, RETRY_SOON);
}

/// Feeds `id` back after `delay`, unless a wake-up for it is already running.
fn wake_in(context: &Arc<Context>, id: &QueueId, delay: Duration) {
    let is_new = lock(&context.waking).insert(id.clone());
    if !is_new {
        return;
    }
    let (context, id) = (context.clone(), id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        lock(&context.waking).remove(&id);
        let _ = context.requeue.send(id);
    });
}

async fn quarantine(context: &Context, id: &QueueId, error: &QueueError) {
    if error.is_transient() {
        warn!(queue_id = %id, %error, "cannot read the message now; will retry");
        return;
    }
    error!(queue_id = %id, %error, "unreadable queue entry moved to corrupt/");
    let (queue, id, reason) = (context.queue.clone(), id.clone(), error.to_string());
    if let Some(Err(error)) = blocking(move || queue.quarantine(&id, &reason)).await {
        error!(%error, "cannot move the entry to corrupt/");
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
