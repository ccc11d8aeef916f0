//! The operator's handle on the queue (`petrel queue flush | hold | release | delete | bounce`):
//! each works on a message only while no delivery holds it (the scheduler's in-flight set is
//! the per-message lock), so an operator never races a delivery in progress. Without a running
//! daemon the same handle works on the spool alone.
//!
//! Deleting keeps the history (`done/`); bouncing fails every pending recipient with 5.0.0 and
//! sends the sender one DSN, as a failed delivery would.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petrel_proto::status;
use petrel_queue::status::Cause;
use petrel_queue::sync::lock;
use petrel_queue::{DeliveryStatus, Place, Queue, QueueError, QueueId, RecipientState, Verdict};
use tokio::sync::{mpsc, watch};

use crate::outcome::notice_for;
use crate::scheduler::{DeliverySettings, blocking, save, unix_now};

/// How long an operator's command waits for a delivery in progress to finish.
const CLAIM_WAIT: Duration = Duration::from_secs(60);

/// The operator's handle.
#[derive(Clone)]
pub struct Control {
    queue: Arc<dyn Queue>,
    settings: watch::Receiver<Arc<DeliverySettings>>,
    in_flight: Arc<Mutex<HashSet<QueueId>>>,
    requeue: Option<mpsc::UnboundedSender<QueueId>>,
    /// The running scheduler's set of flushed messages (its own queue, not shared): a flush
    /// marks them there instead of rewriting every envelope.
    flushed: Option<Arc<Mutex<HashSet<QueueId>>>>,
}

/// Holds a message against deliveries until dropped: this node's (the in-flight set) and, on
/// a shared queue, every node's (the queue's claim, given back when dropped unless the
/// operation ended it).
struct Claim {
    in_flight: Arc<Mutex<HashSet<QueueId>>>,
    id: QueueId,
    shared: Option<Arc<dyn Queue>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.id);
        if let Some(queue) = self.shared.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let id = self.id.clone();
            runtime.spawn_blocking(move || {
                if let Some(Err(error)) = queue.claims().map(|c| c.unclaim(&id)) {
                    tracing::warn!(queue_id = %id, %error, "cannot give the operator's claim back; its lease runs out by itself");
                }
            });
        }
    }
}

impl Control {
    /// A handle sharing the scheduler's in-flight set (or a fresh one without a daemon).
    pub fn new(
        queue: Arc<dyn Queue>,
        settings: watch::Receiver<Arc<DeliverySettings>>,
        in_flight: Arc<Mutex<HashSet<QueueId>>>,
        requeue: Option<mpsc::UnboundedSender<QueueId>>,
    ) -> Control {
        Control {
            queue,
            settings,
            in_flight,
            requeue,
            flushed: None,
        }
    }

    /// Flushes through the running scheduler's `flushed` set (see `flush`).
    pub(crate) fn with_flushed(mut self, flushed: Arc<Mutex<HashSet<QueueId>>>) -> Control {
        self.flushed = Some(flushed);
        self
    }

    /// The queue behind the handle.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    async fn claim(&self, id: &QueueId) -> Result<Claim, ControlError> {
        let deadline = Instant::now() + CLAIM_WAIT;
        loop {
            let is_claimed = lock(&self.in_flight).insert(id.clone());
            if is_claimed {
                let mut claim = Claim {
                    in_flight: self.in_flight.clone(),
                    id: id.clone(),
                    shared: None,
                };
                if self.queue.claims().is_none() {
                    return Ok(claim);
                }
                // Another node may be delivering it: its lease says so.
                let (queue, probe) = (self.queue.clone(), id.clone());
                let claimed =
                    blocking(move || queue.claims().map_or(Ok(true), |c| c.claim(&probe)));
                match claimed.await {
                    Some(Ok(true)) => {
                        claim.shared = Some(self.queue.clone());
                        return Ok(claim);
                    }
                    // Not active: held or gone, which the operation itself reports.
                    Some(Ok(false)) if self.place_of(id).await.ok() != Some(Place::Active) => {
                        return Ok(claim);
                    }
                    Some(Err(error)) => return Err(ControlError::queue(id, error)),
                    Some(Ok(false)) => {
                        return Err(ControlError::Busy {
                            id: id.clone(),
                            is_other_node: true,
                        });
                    }
                    None => return Err(ControlError::TaskFailed),
                }
            }
            if Instant::now() > deadline {
                return Err(ControlError::Busy {
                    id: id.clone(),
                    is_other_node: false,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the message aside.
    ///
    /// # Errors
    /// [`ControlError`]: not in the queue, busy, or the queue failed.
    pub async fn hold(&self, id: &QueueId) -> Result<String, ControlError> {
        let _claim = self.claim(id).await?;
        self.run(id, |queue, id| queue.hold(id)).await?;
        Ok(format!(
            "{id} held: it stays queued and is not delivered until released"
        ))
    }

    /// Puts a held message back and delivers it now.
    ///
    /// # Errors
    /// [`ControlError`]: not in the queue, busy, or the queue failed.
    pub async fn release(&self, id: &QueueId) -> Result<String, ControlError> {
        let claim = self.claim(id).await?;
        self.run(id, |queue, id| queue.release(id)).await?;
        drop(claim);
        self.wake(id);
        Ok(format!("{id} released"))
    }

    /// Removes the message (active or held) without delivering it; its history is kept.
    ///
    /// # Errors
    /// [`ControlError`]: not in the queue, busy, or the queue failed.
    pub async fn delete(&self, id: &QueueId) -> Result<String, ControlError> {
        let _claim = self.claim(id).await?;
        let place = self.place_of(id).await?;
        let note = format!(
            "{} deleted by the operator",
            petrel_proto::trace::rfc5322_date(unix_now() as i64)
        );
        self.run(id, move |queue, id| {
            if place == Place::Held {
                queue.release(id)?;
            }
            let mut envelope = queue.load(id)?.envelope;
            for recipient in &mut envelope.recipients {
                if recipient.state == RecipientState::Pending {
                    recipient.state = RecipientState::Failed;
                    recipient.last = Some(DeliveryStatus::decided(
                        Verdict::Failed,
                        status::PERMANENT_UNDEFINED,
                        Cause::Operator,
                        "deleted by the operator".into(),
                    ));
                }
            }
            envelope.history.push(note);
            queue.archive(id, &envelope)
        })
        .await?;
        Ok(format!("{id} deleted (its history stays for queue show)"))
    }

    /// Fails every pending recipient now and tells the sender.
    ///
    /// # Errors
    /// [`ControlError`]: not in the queue, busy, or the queue failed.
    pub async fn bounce(&self, id: &QueueId) -> Result<String, ControlError> {
        let _claim = self.claim(id).await?;
        if self.place_of(id).await? == Place::Held {
            self.run(id, |queue, id| queue.release(id)).await?;
        }
        let queue = self.queue.clone();
        let load_id = id.clone();
        let (mut loaded, message) = blocking(move || {
            let loaded = queue.load(&load_id)?;
            let message = queue.read_message(&load_id).unwrap_or_else(|error| {
                tracing::warn!(queue_id = %load_id, %error, "cannot read the message; the bounce goes without its header section");
                Vec::new()
            });
            Ok((loaded, message))
        })
        .await
        .ok_or(ControlError::TaskFailed)?
        .map_err(|error| ControlError::queue(id, error))?;
        let envelope = &mut loaded.envelope;
        let before: Vec<RecipientState> = envelope.recipients.iter().map(|r| r.state).collect();
        for recipient in &mut envelope.recipients {
            if recipient.state == RecipientState::Pending {
                recipient.state = RecipientState::Failed;
                recipient.last = Some(DeliveryStatus::decided(
                    Verdict::Failed,
                    status::PERMANENT_UNDEFINED,
                    Cause::Operator,
                    "returned to the sender by the mail administrator".into(),
                ));
            }
        }
        let now = unix_now();
        envelope.history.push(format!(
            "{} bounced by the operator",
            petrel_proto::trace::rfc5322_date(now as i64)
        ));
        let settings = self.settings.borrow().clone();
        let bounce = notice_for(&settings, id, envelope, &before, &[], &message, now);
        match save(self.queue.clone(), id.clone(), loaded, bounce).await {
            Some(Ok(Some(bounce_id))) => {
                self.wake(&bounce_id);
                Ok(format!(
                    "{id} bounced; notification {bounce_id} queued for the sender"
                ))
            }
            Some(Ok(None)) => Ok(format!(
                "{id} bounced (no notification: null sender or NOTIFY)"
            )),
            Some(Err(error)) => Err(ControlError::queue(id, error)),
            None => Err(ControlError::TaskFailed),
        }
    }

    /// Makes every pending recipient due now: of `id`, or of every active message. With a
    /// running scheduler on a queue of its own the messages are only marked for it (the next
    /// attempt of each is now; a restart before it keeps the old schedule), which spares a
    /// rewrite of every envelope; otherwise the envelopes are updated.
    ///
    /// # Errors
    /// [`ControlError`]: not in the queue, busy, or the queue failed.
    pub async fn flush(&self, id: Option<&QueueId>) -> Result<String, ControlError> {
        let ids = match id {
            Some(id) => vec![id.clone()],
            None => {
                let queue = self.queue.clone();
                blocking(move || queue.list())
                    .await
                    .ok_or(ControlError::TaskFailed)?
                    .map_err(|error| ControlError::Queue { id: None, error })?
            }
        };
        let is_shared = self.queue.claims().is_some();
        if let Some(flushed) = self.flushed.as_ref().filter(|_| !is_shared) {
            if let Some(id) = id
                && self.place_of(id).await? != Place::Active
            {
                return Err(ControlError::NotInQueue(id.clone()));
            }
            lock(flushed).extend(ids.iter().cloned());
            for id in &ids {
                self.wake(id);
            }
            return Ok(format!("{} message(s) due now", ids.len()));
        }
        let mut count = 0;
        for id in &ids {
            let _claim = self.claim(id).await?;
            self.run(id, |queue, id| {
                let mut envelope = queue.load(id)?.envelope;
                for recipient in &mut envelope.recipients {
                    if recipient.state == RecipientState::Pending {
                        recipient.next_attempt_unix_seconds = 0;
                    }
                }
                queue.update(id, &envelope)
            })
            .await?;
            count += 1;
        }
        for id in &ids {
            self.wake(id);
        }
        Ok(format!("{count} message(s) due now"))
    }

    async fn place_of(&self, id: &QueueId) -> Result<Place, ControlError> {
        for place in [Place::Active, Place::Held] {
            let queue = self.queue.clone();
            let probe = id.clone();
            if let Some(Ok(_)) = blocking(move || queue.load_in(&probe, place)).await {
                return Ok(place);
            }
        }
        Err(ControlError::NotInQueue(id.clone()))
    }

    async fn run(
        &self,
        id: &QueueId,
        work: impl FnOnce(&dyn Queue, &QueueId) -> Result<(), QueueError> + Send + 'static,
    ) -> Result<(), ControlError> {
        let queue = self.queue.clone();
        let work_id = id.clone();
        match blocking(move || work(queue.as_ref(), &work_id)).await {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(ControlError::queue(id, error)),
            None => Err(ControlError::TaskFailed),
        }
    }

    fn wake(&self, id: &QueueId) {
        if let Some(requeue) = &self.requeue {
            let _ = requeue.send(id.clone());
        }
    }
}

/// Why an operator's command did not happen; its `Display` is the sentence for the operator.
#[derive(Debug)]
pub enum ControlError {
    /// Neither active nor held.
    NotInQueue(QueueId),
    /// A delivery holds the message (here past the wait, or on another node's lease).
    Busy { id: QueueId, is_other_node: bool },
    /// The queue failed (`id` is the message it failed on, when one).
    Queue {
        id: Option<QueueId>,
        error: QueueError,
    },
    /// The blocking task running the queue operation did not finish (the runtime is stopping).
    TaskFailed,
}

impl ControlError {
    fn queue(id: &QueueId, error: QueueError) -> ControlError {
        match error {
            QueueError::NotFound(_) => ControlError::NotInQueue(id.clone()),
            error => ControlError::Queue {
                id: Some(id.clone()),
                error,
            },
        }
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NotInQueue(id) => write!(f, "{id} is not in the queue"),
            ControlError::Busy {
                id,
                is_other_node: true,
            } => write!(
                f,
                "{id} is being delivered by another node right now; try again"
            ),
            ControlError::Busy { id, .. } => {
                write!(f, "{id} is being delivered right now; try again")
            }
            ControlError::Queue {
                id: Some(id),
                error,
            } => write!(f, "{id}: {error}"),
            ControlError::Queue { id: None, error } => write!(f, "{error}"),
            ControlError::TaskFailed => f.write_str("the queue task failed"),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Queue { error, .. } => Some(error),
            _ => None,
        }
    }
}
