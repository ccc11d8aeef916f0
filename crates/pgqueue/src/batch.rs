//! Group commit (issue 20, item 3): the stores (and the archives) that callers ask for while a
//! commit is under way wait for the next one and go in together, one statement over arrays of
//! rows committed once; each caller hears of its row only after that commit (a session answers
//! 250 then). As the journal groups fdatasyncs, this groups PostgreSQL's synchronous commits:
//! with one client every row still has its own commit at once, with fifty they share them.
//!
//! One writer task per kind takes everything queued (up to `MAX_BATCH` rows or
//! `MAX_BATCH_BYTES` of message) as a batch, commits it, and takes what came meanwhile. A
//! statement returns the ids it changed; a row it did not change (a store whose id another
//! node took, an archive fenced out by a lost lease) is answered `Ok(false)` alone, and a
//! failed or timed-out commit fails every row of its batch, transiently.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::sync::Arc;

use deadpool_postgres::Client;
use petrel_queue::{QueueError, QueueId};
use tokio::sync::{Mutex, mpsc};

use crate::bridge::{Bridge, OPERATION_TIMEOUT};
use crate::{database_error, pool_error};

/// Batches of one kind committed at once: one, so that everything asked for while it commits
/// goes into the next batch (two writers made batches half as large and were 8% slower).
const WRITERS: usize = 1;
/// The most rows in one batch.
const MAX_BATCH: usize = 256;
/// The most message octets in one batch (the first row always goes, whatever its size).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Told whether its row was changed (`Ok(false)`: not, and why is the caller's to find out).
pub(crate) type Done = Box<dyn FnOnce(Result<bool, QueueError>) + Send>;

/// What one kind of grouped statement does with its rows.
pub(crate) trait Kind: Send + Sync + 'static {
    /// One row as the caller gives it.
    type Row: Send + 'static;
    /// The rows of a batch as the statement takes them (one array per column).
    type Columns: Default + Send + Sync + 'static;
    /// Its name in `/metrics`.
    const OPERATION: &'static str;
    /// How long a batch that is not full waits for more rows after its first (zero: it goes
    /// at once; only for rows nobody answers a client for).
    const LINGER: std::time::Duration = std::time::Duration::ZERO;
    /// How long a batch waits for more rows when the batch before it had several (callers
    /// storing at once: more are on their way), as PostgreSQL's commit_delay waits only with
    /// commit_siblings. Zero: never.
    const LINGER_WITH_SIBLINGS: std::time::Duration = std::time::Duration::ZERO;
    /// The message octets of `row`, for `MAX_BATCH_BYTES`.
    fn size(row: &Self::Row) -> usize;
    /// Adds `row` (of message `id`) to the columns.
    fn add(columns: &mut Self::Columns, id: &QueueId, row: Self::Row);
    /// The columns of row `index` alone (a copy: only when a batch is refused for its data).
    fn one(columns: &Self::Columns, index: usize) -> Self::Columns;
    /// Runs the statement; the ids it changed.
    fn commit<'a>(
        &'a self,
        client: &'a Client,
        columns: &'a Self::Columns,
    ) -> impl Future<Output = Result<HashSet<String>, Refused>> + Send + 'a;
}

/// Where callers put their rows.
pub(crate) struct Group<K: Kind> {
    queue: mpsc::UnboundedSender<Queued<K>>,
}

/// A row waiting for its commit: its message, the row, who waits, and by when it must be
/// answered (`OPERATION_TIMEOUT` after it was put, as every other queue operation).
struct Queued<K: Kind> {
    id: QueueId,
    row: K::Row,
    done: Done,
    deadline: tokio::time::Instant,
}

struct Writer<K: Kind> {
    kind: K,
    pool: deadpool_postgres::Pool,
    waiting: Mutex<mpsc::UnboundedReceiver<Queued<K>>>,
    /// The rows of the batch before.
    previous: std::sync::atomic::AtomicUsize,
}

impl<K: Kind> Group<K> {
    /// Starts the writers of `kind` on the queue's runtime.
    pub(crate) fn start(bridge: &Bridge, pool: deadpool_postgres::Pool, kind: K) -> Group<K> {
        let (queue, waiting) = mpsc::unbounded_channel();
        let writer = Arc::new(Writer {
            kind,
            pool,
            waiting: Mutex::new(waiting),
            previous: std::sync::atomic::AtomicUsize::new(0),
        });
        for _ in 0..WRITERS {
            bridge.handle().spawn(writer.clone().run());
        }
        Group { queue }
    }

    /// Queues `row` of message `id` for the next commit; `done` hears how it went.
    pub(crate) fn put(&self, id: QueueId, row: K::Row, done: Done) {
        let queued = Queued {
            id,
            row,
            done,
            deadline: tokio::time::Instant::now() + OPERATION_TIMEOUT,
        };
        if let Err(mpsc::error::SendError(queued)) = self.queue.send(queued) {
            (queued.done)(Err(QueueError::Io(io::Error::other(
                "the database runtime stopped",
            ))));
        }
    }

    /// Queues `row` and waits for its commit (for the synchronous `Queue` calls, which run
    /// on blocking threads: many of them at once share a commit).
    pub(crate) fn put_and_wait(&self, id: QueueId, row: K::Row) -> Result<bool, QueueError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.put(
            id,
            row,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .map_err(|_| QueueError::Io(io::Error::other("the database runtime stopped")))?
    }
}

impl<K: Kind> Writer<K> {
    async fn run(self: Arc<Self>) {
        while let Some(mut batch) = self.next_batch().await {
            // A row that waited its whole time for this batch is answered now, uncommitted.
            let now = tokio::time::Instant::now();
            let (expired, live): (Vec<_>, Vec<_>) =
                batch.drain(..).partition(|queued| queued.deadline <= now);
            answer(
                expired.into_iter().map(|q| (q.id, q.done)).collect(),
                Err(Elapsed),
            );
            let Some(deadline) = live.iter().map(|q| q.deadline).min() else {
                continue;
            };
            // The columns go to the statement; who waits for each row stays here (a Done is
            // not Sync, and is not needed across the await).
            let mut columns = K::Columns::default();
            let mut waiting = Vec::with_capacity(live.len());
            for queued in live {
                K::add(&mut columns, &queued.id, queued.row);
                waiting.push((queued.id, queued.done));
            }
            let count = waiting.len();
            let result = tokio::time::timeout_at(deadline, async {
                let batch = crate::queue::timed(K::OPERATION, async {
                    let client = self.pool.get().await.map_err(pool_error)?;
                    Ok(self.kind.commit(&client, &columns).await)
                })
                .await?;
                match batch {
                    // One row the database refuses (a data error) must not fail the others:
                    // each goes alone then, and only the refused ones fail.
                    Err(Refused::Data) if count > 1 => {
                        let mut changed = HashSet::new();
                        for index in 0..count {
                            let one = K::one(&columns, index);
                            let client = self.pool.get().await.map_err(pool_error)?;
                            if let Ok(ids) = self.kind.commit(&client, &one).await {
                                changed.extend(ids);
                            }
                        }
                        Ok(changed)
                    }
                    other => other.map_err(QueueError::from),
                }
            })
            .await
            .map_err(|_| Elapsed);
            drop(columns);
            answer(waiting, result);
        }
    }

    /// Waits for a row, then takes what else is waiting, within the limits.
    async fn next_batch(&self) -> Option<Vec<Queued<K>>> {
        let mut waiting = self.waiting.lock().await;
        let first = waiting.recv().await?;
        let mut size = K::size(&first.row);
        let mut batch = vec![first];
        // With siblings, wait (at most LINGER_WITH_SIBLINGS) for as many rows as the batch
        // before had: two sessions storing at once wait for each other, not for the timer.
        let previous = self.previous.load(std::sync::atomic::Ordering::Relaxed);
        let expected = if previous > 1 && !K::LINGER_WITH_SIBLINGS.is_zero() {
            previous
        } else {
            0
        };
        let until = tokio::time::Instant::now() + K::LINGER_WITH_SIBLINGS;
        let mut lingered = K::LINGER.is_zero();
        while batch.len() < MAX_BATCH && size < MAX_BATCH_BYTES {
            let next = match waiting.try_recv() {
                Ok(next) => next,
                Err(_) if batch.len() < expected => {
                    match tokio::time::timeout_at(until, waiting.recv()).await {
                        Ok(Some(next)) => next,
                        _ => break,
                    }
                }
                Err(_) if !lingered => {
                    lingered = true;
                    tokio::time::sleep(K::LINGER).await;
                    continue;
                }
                Err(_) => break,
            };
            size = size.saturating_add(K::size(&next.row));
            batch.push(next);
        }
        self.previous
            .store(batch.len(), std::sync::atomic::Ordering::Relaxed);
        Some(batch)
    }
}

/// The batch's time ran out.
struct Elapsed;

/// Why a statement failed: the database refused a row's data (SQLSTATE class 22 or 23: worth
/// trying the rows one by one), or anything else.
pub(crate) enum Refused {
    Data,
    Other(QueueError),
}

impl From<Refused> for QueueError {
    fn from(refused: Refused) -> QueueError {
        match refused {
            Refused::Data => QueueError::Io(io::Error::other("the database refused the data")),
            Refused::Other(error) => error,
        }
    }
}

impl From<QueueError> for Refused {
    fn from(error: QueueError) -> Refused {
        Refused::Other(error)
    }
}

/// A statement's error, with data errors told apart.
fn refused(error: tokio_postgres::Error) -> Refused {
    match error.code().map(|code| code.code()) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => Refused::Data,
        _ => Refused::Other(database_error(error)),
    }
}

/// Tells each row of a batch how its commit went.
fn answer(
    waiting: Vec<(QueueId, Done)>,
    result: Result<Result<HashSet<String>, QueueError>, Elapsed>,
) {
    // io::Error is not Clone: each row gets the same kind and text.
    let failure = match &result {
        Ok(Ok(_)) => None,
        Ok(Err(QueueError::Io(error))) => Some((error.kind(), error.to_string())),
        Ok(Err(error)) => Some((io::ErrorKind::Other, error.to_string())),
        Err(_) => Some((
            io::ErrorKind::TimedOut,
            "the database did not answer in time".to_owned(),
        )),
    };
    let changed = match result {
        Ok(Ok(changed)) => changed,
        _ => HashSet::new(),
    };
    for (id, done) in waiting {
        done(match &failure {
            Some((kind, text)) => Err(QueueError::Io(io::Error::new(*kind, text.clone()))),
            None => Ok(changed.contains(id.as_str())),
        });
    }
}

/// The ids a statement returned.
fn ids(rows: Vec<tokio_postgres::Row>) -> Result<HashSet<String>, Refused> {
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(refused))
        .collect()
}

/// New messages: leased rows get this node as owner and a lease, shared rows are announced
/// (the NOTIFY is sent at the commit).
pub(crate) struct Stores {
    pub(crate) node: Arc<str>,
    pub(crate) lease_seconds: f64,
}

/// One new message.
pub(crate) struct NewRow {
    pub(crate) record: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) next_attempt: i64,
    /// Leased to this node from the start, else shared with the others.
    pub(crate) is_kept: bool,
}

#[derive(Default)]
pub(crate) struct NewColumns {
    ids: Vec<String>,
    records: Vec<String>,
    messages: Vec<Vec<u8>>,
    next_attempts: Vec<i64>,
    is_kept: Vec<bool>,
}

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

impl Kind for Stores {
    type Row = NewRow;
    type Columns = NewColumns;
    const OPERATION: &'static str = "store";
    /// A client waits for its store: only while others store too, for at most one tick.
    const LINGER_WITH_SIBLINGS: std::time::Duration = std::time::Duration::from_millis(1);

    fn size(row: &NewRow) -> usize {
        row.bytes.len()
    }

    fn add(columns: &mut NewColumns, id: &QueueId, row: NewRow) {
        columns.ids.push(id.to_string());
        columns.records.push(row.record);
        columns.messages.push(row.bytes);
        columns.next_attempts.push(row.next_attempt);
        columns.is_kept.push(row.is_kept);
    }

    fn one(columns: &NewColumns, index: usize) -> NewColumns {
        NewColumns {
            ids: columns.ids[index..=index].to_vec(),
            records: columns.records[index..=index].to_vec(),
            messages: columns.messages[index..=index].to_vec(),
            next_attempts: columns.next_attempts[index..=index].to_vec(),
            is_kept: columns.is_kept[index..=index].to_vec(),
        }
    }

    async fn commit(
        &self,
        client: &Client,
        columns: &NewColumns,
    ) -> Result<HashSet<String>, Refused> {
        let statement = client.prepare_cached(INSERT_BATCH).await.map_err(refused)?;
        let node: &str = &self.node;
        let rows = client
            .query(
                &statement,
                &[
                    &columns.ids,
                    &columns.records,
                    &columns.messages,
                    &columns.next_attempts,
                    &columns.is_kept,
                    &node,
                    &self.lease_seconds,
                ],
            )
            .await
            .map_err(refused)?;
        ids(rows)
    }
}

/// Finished messages moved to the history: each only while it is active and, when this node
/// claimed it, while the claim's epoch is still the row's (fencing).
pub(crate) struct Archives;

/// One finished message.
pub(crate) struct DoneRow {
    pub(crate) record: String,
    pub(crate) epoch: Option<i64>,
}

#[derive(Default)]
pub(crate) struct DoneColumns {
    ids: Vec<String>,
    records: Vec<String>,
    epochs: Vec<Option<i64>>,
}

// The rows are locked in id order first (as the lease renewal and the claims lock theirs), so
// statements over many rows cannot deadlock each other.
const ARCHIVE_BATCH: &str = "WITH u AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, envelope, epoch)),
    locked AS (
        SELECT m.id FROM petrel_messages m JOIN u ON m.id = u.id
        WHERE m.place = 'active' AND (u.epoch IS NULL OR m.lease_epoch = u.epoch)
        ORDER BY m.id FOR UPDATE OF m)
    UPDATE petrel_messages m SET place = 'done', envelope = u.envelope,
        message = NULL, next_attempt = 0, finished_at = now(), lease_owner = NULL,
        lease_until = NULL
    FROM u, locked
    WHERE m.id = u.id AND m.id = locked.id
    RETURNING m.id";

impl Kind for Archives {
    type Row = DoneRow;
    type Columns = DoneColumns;
    const OPERATION: &'static str = "archive";
    /// An archive answers no client, and its delivery has given its slot back: waiting 3 ms
    /// gathers the archives of the deliveries that end meanwhile into the same commit.
    const LINGER: std::time::Duration = std::time::Duration::from_millis(3);

    fn size(_: &DoneRow) -> usize {
        0
    }

    fn add(columns: &mut DoneColumns, id: &QueueId, row: DoneRow) {
        columns.ids.push(id.to_string());
        columns.records.push(row.record);
        columns.epochs.push(row.epoch);
    }

    fn one(columns: &DoneColumns, index: usize) -> DoneColumns {
        DoneColumns {
            ids: columns.ids[index..=index].to_vec(),
            records: columns.records[index..=index].to_vec(),
            epochs: columns.epochs[index..=index].to_vec(),
        }
    }

    async fn commit(
        &self,
        client: &Client,
        columns: &DoneColumns,
    ) -> Result<HashSet<String>, Refused> {
        let statement = client
            .prepare_cached(ARCHIVE_BATCH)
            .await
            .map_err(refused)?;
        let rows = client
            .query(
                &statement,
                &[&columns.ids, &columns.records, &columns.epochs],
            )
            .await
            .map_err(refused)?;
        ids(rows)
    }
}

/// Claims of messages this node was told of: each row leased to this node with a new epoch
/// and fetched (into `claimed`), unless another node holds an unexpired lease on it.
pub(crate) struct Claims {
    pub(crate) node: Arc<str>,
    pub(crate) lease_seconds: f64,
    pub(crate) claimed: crate::Claimed,
}

// FOR UPDATE without SKIP LOCKED: a claim_due of this node may hold a row for a moment, and
// the row it leaves (leased to us) must count as ours, not be skipped. Locked in id order, so
// two nodes claiming overlapping sets do not deadlock.
const CLAIM_BATCH: &str = "WITH target AS (
        SELECT id, lease_owner FROM petrel_messages
        WHERE id = ANY($1) AND place = 'active'
          AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $2)
        ORDER BY id
        FOR UPDATE)
    UPDATE petrel_messages m
    SET lease_owner = $2, lease_until = now() + make_interval(secs => $3),
        lease_epoch = m.lease_epoch + 1
    FROM target WHERE m.id = target.id
    RETURNING m.id, target.lease_owner, m.envelope, m.message, m.lease_epoch";

impl Kind for Claims {
    type Row = ();
    type Columns = Vec<String>;
    const OPERATION: &'static str = "claim";
    /// A claim answers no client either: 2 ms gathers the claims of deliveries that start
    /// together (a wake-up hands out many at once).
    const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

    fn size(_: &()) -> usize {
        0
    }

    fn add(columns: &mut Vec<String>, id: &QueueId, _: ()) {
        columns.push(id.to_string());
    }

    fn one(columns: &Vec<String>, index: usize) -> Vec<String> {
        columns[index..=index].to_vec()
    }

    async fn commit(
        &self,
        client: &Client,
        columns: &Vec<String>,
    ) -> Result<HashSet<String>, Refused> {
        let statement = client.prepare_cached(CLAIM_BATCH).await.map_err(refused)?;
        let node: &str = &self.node;
        let rows = client
            .query(&statement, &[columns, &node, &self.lease_seconds])
            .await
            .map_err(refused)?;
        Ok(crate::queue::note_claims(&rows, &self.node, &self.claimed)
            .iter()
            .map(ToString::to_string)
            .collect())
    }
}
