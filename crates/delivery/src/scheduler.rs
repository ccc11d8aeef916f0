//! The scheduler: walks the queue and delivers what is due, a bounded number of messages at
//! once. Local recipients go to Maildir; a message leaves the queue once no recipient is
//! pending. Remote recipients stay pending until the SMTP client of issue 3 exists.
//!
//! New messages arrive by id from the receiving side (through the binary's wiring); a periodic
//! rescan picks up what was queued before a restart and what failed transiently. A record that
//! cannot be read is moved to `corrupt/` and logged, never deleted. Delivery and queue updates
//! run on blocking threads.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use petrel_proto::address::{Domain, mailbox_folder, parse_mailbox};
use petrel_queue::{Envelope, Queue, QueueError, QueueId, RecipientState};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info, warn};

use crate::maildir::{MaildirCopy, deliver};

/// Messages delivered at once.
const MAX_IN_FLIGHT: usize = 32;
/// How often the whole queue is walked for what is due.
const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// Wait before retrying a recipient whose local delivery failed.
const LOCAL_RETRY_SECONDS: u64 = 60;

/// What delivery needs from the configuration; replaced whole on reload.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub hostname: String,
    /// `<data_dir>/mail`.
    pub mail_root: PathBuf,
    /// Lower-case local domains; the first receives mail for a bare `Postmaster`.
    pub local_domains: Vec<String>,
    pub recipient_delimiter: Option<String>,
}

/// Runs deliveries until told to stop.
pub struct Scheduler {
    queue: Arc<dyn Queue>,
    settings: watch::Receiver<Arc<DeliverySettings>>,
    in_flight: Arc<Mutex<HashSet<QueueId>>>,
    slots: Arc<Semaphore>,
}

impl Scheduler {
    /// A scheduler over `queue`.
    pub fn new(
        queue: Arc<dyn Queue>,
        settings: watch::Receiver<Arc<DeliverySettings>>,
    ) -> Scheduler {
        Scheduler {
            queue,
            settings,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Delivers queued messages and each id sent on `queued`, until `stop` turns true; then
    /// waits for deliveries in progress to finish.
    pub async fn run(
        self,
        mut queued: mpsc::UnboundedReceiver<QueueId>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
        loop {
            tokio::select! {
                _ = rescan.tick() => self.rescan().await,
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
        let _ = self.slots.acquire_many(MAX_IN_FLIGHT as u32).await;
    }

    async fn rescan(&self) {
        let queue = self.queue.clone();
        match tokio::task::spawn_blocking(move || queue.list()).await {
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
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        if let Ok(mut in_flight) = self.in_flight.lock()
            && !in_flight.insert(id.clone())
        {
            return;
        }
        let queue = self.queue.clone();
        let settings = self.settings.borrow().clone();
        let in_flight = self.in_flight.clone();
        tokio::task::spawn_blocking(move || {
            deliver_message(queue.as_ref(), &settings, &id);
            if let Ok(mut in_flight) = in_flight.lock() {
                in_flight.remove(&id);
            }
            drop(permit);
        });
    }
}

/// Delivers what is due of one message and records the result.
fn deliver_message(queue: &dyn Queue, settings: &DeliverySettings, id: &QueueId) {
    let mut envelope = match queue.load(id) {
        Ok(envelope) => envelope,
        Err(QueueError::NotFound(_)) => return,
        Err(error) => return quarantine(queue, id, &error),
    };
    let now = unix_now();
    if !envelope.pending().any(|(_, r)| {
        r.next_attempt_unix_seconds <= now && local_target(settings, &r.address).is_some()
    }) {
        return;
    }
    let message = match queue.read_message(id) {
        Ok(message) => message,
        Err(error) => return quarantine(queue, id, &error),
    };
    deliver_local_recipients(settings, id, &mut envelope, &message, now);
    let result = if envelope.is_finished() {
        queue.remove(id)
    } else {
        queue.update(id, &envelope)
    };
    if let Err(error) = result {
        error!(queue_id = %id, %error, "cannot record the delivery; the message stays queued");
    }
}

fn deliver_local_recipients(
    settings: &DeliverySettings,
    id: &QueueId,
    envelope: &mut Envelope,
    message: &[u8],
    now: u64,
) {
    let reverse_path = envelope.reverse_path.clone();
    for recipient in &mut envelope.recipients {
        if recipient.state != RecipientState::Pending || recipient.next_attempt_unix_seconds > now {
            continue;
        }
        let Some((domain, folder)) = local_target(settings, &recipient.address) else {
            continue;
        };
        recipient.attempts = recipient.attempts.saturating_add(1);
        let copy = MaildirCopy {
            mail_root: &settings.mail_root,
            domain: &domain,
            folder: &folder,
            reverse_path: &reverse_path,
            delivered_to: &recipient.address,
            hostname: &settings.hostname,
            message,
        };
        match deliver(&copy) {
            Ok(path) => {
                info!(queue_id = %id, recipient = %recipient.address, path = %path.display(), "delivered to Maildir");
                recipient.state = RecipientState::Delivered;
                recipient.last_reply = Some(format!("delivered to {}", path.display()));
            }
            Err(error) => {
                warn!(queue_id = %id, recipient = %recipient.address, %error, "Maildir delivery failed; will retry");
                recipient.next_attempt_unix_seconds = now + LOCAL_RETRY_SECONDS;
                recipient.last_reply = Some(format!("Maildir write failed: {error}"));
            }
        }
    }
}

/// The (domain, folder) of a local recipient, or `None` for a remote or unusable address.
fn local_target(settings: &DeliverySettings, address: &str) -> Option<(String, String)> {
    if address.eq_ignore_ascii_case("Postmaster") {
        let domain = settings
            .local_domains
            .first()
            .cloned()
            .unwrap_or_else(|| settings.hostname.to_lowercase());
        return Some((domain, "postmaster".to_owned()));
    }
    let mailbox = parse_mailbox(address).ok()?;
    let Domain::Name(name) = &mailbox.domain else {
        return None;
    };
    let domain = name.to_lowercase();
    if !settings.local_domains.contains(&domain) {
        return None;
    }
    let folder = mailbox_folder(
        &mailbox.local_part_content(),
        settings.recipient_delimiter.as_deref(),
    )?;
    Some((domain, folder))
}

fn quarantine(queue: &dyn Queue, id: &QueueId, error: &QueueError) {
    if error.is_transient() {
        warn!(queue_id = %id, %error, "cannot read the message now; will retry");
        return;
    }
    error!(queue_id = %id, %error, "unreadable queue entry moved to corrupt/");
    if let Err(error) = queue.quarantine(id, &error.to_string()) {
        error!(queue_id = %id, %error, "cannot move the entry to corrupt/");
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
