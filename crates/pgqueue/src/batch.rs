//! Group commit of stores (issue 20, item 3): the messages that SMTP sessions store while a
//! commit is under way wait for the next one, and go in together, one INSERT of many rows
//! committed once; each session hears of its message (and only then answers 250) after that
//! commit. As the journal groups fdatasyncs, this groups PostgreSQL's synchronous commits: with
//! one client every store still has its own commit at once, with fifty they share them.
//!
//! `WRITERS` tasks take turns: one collects a batch (everything queued, up to `MAX_BATCH`
//! messages or `MAX_BATCH_BYTES`) while the others commit theirs. The statement stores each
//! row as `store_then` asked (leased to this node, or shared and announced with NOTIFY) and
//! returns the ids it stored; a row whose id was taken (another node made the same id) fails
//! alone. A failed or timed-out commit fails every message of its batch, transiently.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use petrel_queue::sync::lock;
use petrel_queue::{QueueError, QueueId, StoreDone};
use tokio::sync::{Mutex, mpsc};

use crate::bridge::{Bridge, OPERATION_TIMEOUT};
use crate::{Kept, database_error, pool_error};

/// Batches committed at once.
const WRITERS: usize = 2;
/// The most messages in one batch.
const MAX_BATCH: usize = 256;
/// The most message octets in one batch (the first message always goes, whatever its size).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// All the rows of a batch in one statement: leased rows get this node as owner and a lease,
/// shared rows are announced (the NOTIFY is sent at the commit).
const INSERT_BATCH: &str = "WITH rows AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::bool[])
            AS r(id, envelope, message, next_attempt, is_kept)),
    stored AS (
        INSERT INTO petrel_messages
            (id, envelope, message, next_attempt, stored_by, lease_owner, lease_until)
        SELECT id, envelope, message, next_attempt, $6,
            CASE WHEN is_kept THEN $6 END,
            CASE WHEN is_kept THEN now() + make_interval(secs => $7) END
        FROM rows
        ON CONFLICT (id) DO NOTHING
        RETURNING id, lease_owner),
    announced AS (
        SELECT pg_notify('petrel_queue', $6 || ' ' || id) FROM stored WHERE lease_owner IS NULL)
    SELECT id FROM stored WHERE (SELECT count(*) FROM announced) >= 0";

/// One message waiting for a commit.
pub(crate) struct Pending {
    pub(crate) id: QueueId,
    pub(crate) record: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) next_attempt: i64,
    /// Leased to this node from the start, else shared with the others.
    pub(crate) is_kept: bool,
    pub(crate) done: StoreDone,
}

/// The columns of a batch, one array each, as the statement takes them.
#[derive(Default)]
struct Rows {
    ids: Vec<String>,
    records: Vec<String>,
    messages: Vec<Vec<u8>>,
    next_attempts: Vec<i64>,
    is_kept: Vec<bool>,
}

/// Where `store_then` puts its messages.
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

/// What the writers need.
struct Writer {
    pool: deadpool_postgres::Pool,
    node: Arc<str>,
    lease_seconds: f64,
    kept: Kept,
    waiting: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
}

impl Batcher {
    /// Starts the writers on the queue's runtime.
    pub(crate) fn start(
        bridge: &Bridge,
        pool: deadpool_postgres::Pool,
        node: Arc<str>,
        lease_seconds: f64,
        kept: Kept,
    ) -> Batcher {
        let (queue, waiting) = mpsc::unbounded_channel();
        let writer = Arc::new(Writer {
            pool,
            node,
            lease_seconds,
            kept,
            waiting: Arc::new(Mutex::new(waiting)),
        });
        for _ in 0..WRITERS {
            bridge.handle().spawn(writer.clone().run());
        }
        Batcher { queue }
    }

    /// Queues `pending` for the next commit.
    pub(crate) fn store(&self, pending: Pending) {
        if let Err(mpsc::error::SendError(pending)) = self.queue.send(pending) {
            (pending.done)(Err(QueueError::Io(io::Error::other(
                "the database runtime stopped",
            ))));
        }
    }
}

impl Writer {
    async fn run(self: Arc<Writer>) {
        while let Some(batch) = self.next_batch().await {
            // The rows go to the statement; who waits for each stays here (a StoreDone is
            // not Sync, and is not needed across the await).
            let mut rows = Rows::default();
            let mut waiting = Vec::with_capacity(batch.len());
            for pending in batch {
                rows.ids.push(pending.id.to_string());
                rows.records.push(pending.record);
                rows.messages.push(pending.bytes);
                rows.next_attempts.push(pending.next_attempt);
                rows.is_kept.push(pending.is_kept);
                waiting.push((pending.id, pending.is_kept, pending.done));
            }
            let result = tokio::time::timeout(
                OPERATION_TIMEOUT,
                crate::queue::timed("store", self.commit(&rows)),
            )
            .await;
            drop(rows);
            self.answer(waiting, result);
        }
    }

    /// Waits for a message, then takes what else is waiting, within the limits.
    async fn next_batch(&self) -> Option<Vec<Pending>> {
        let mut waiting = self.waiting.lock().await;
        let first = waiting.recv().await?;
        let mut size = first.bytes.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && size < MAX_BATCH_BYTES {
            match waiting.try_recv() {
                Ok(next) => {
                    size = size.saturating_add(next.bytes.len());
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Stores the rows in one statement; the ids stored.
    async fn commit(&self, rows: &Rows) -> Result<HashSet<String>, QueueError> {
        let node: &str = &self.node;
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(INSERT_BATCH)
            .await
            .map_err(database_error)?;
        let rows = client
            .query(
                &statement,
                &[
                    &rows.ids,
                    &rows.records,
                    &rows.messages,
                    &rows.next_attempts,
                    &rows.is_kept,
                    &node,
                    &self.lease_seconds,
                ],
            )
            .await
            .map_err(database_error)?;
        rows.iter()
            .map(|row| row.try_get::<_, String>(0).map_err(database_error))
            .collect()
    }

    /// Tells each message of the batch how its store went.
    fn answer(
        &self,
        waiting: Vec<(QueueId, bool, StoreDone)>,
        result: Result<Result<HashSet<String>, QueueError>, tokio::time::error::Elapsed>,
    ) {
        // io::Error is not Clone: each message gets the same kind and text.
        let failure = match &result {
            Ok(Ok(_)) => None,
            Ok(Err(QueueError::Io(error))) => Some((error.kind(), error.to_string())),
            Ok(Err(error)) => Some((io::ErrorKind::Other, error.to_string())),
            Err(_) => Some((
                io::ErrorKind::TimedOut,
                "the database did not answer in time".to_owned(),
            )),
        };
        let stored = match result {
            Ok(Ok(stored)) => stored,
            _ => HashSet::new(),
        };
        for (id, is_kept, done) in waiting {
            let outcome = if stored.contains(id.as_str()) {
                Ok(id.clone())
            } else if let Some((kind, text)) = &failure {
                Err(QueueError::Io(io::Error::new(*kind, text.clone())))
            } else {
                Err(QueueError::Io(io::Error::other(format!(
                    "queue id {id} is taken; try again"
                ))))
            };
            if outcome.is_err() && is_kept {
                lock(&self.kept).remove(&id);
            }
            done(outcome);
        }
    }
}
