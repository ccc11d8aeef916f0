//! `impl Queue for PgQueue`: every queue operation as one SQL statement (stores are grouped:
//! the messages stored while a commit is under way go in together, one INSERT with its NOTIFYs
//! committed before any of their callers hears of it; batch.rs), timed into `/metrics`.
//!
//! Places map to the `place` column; ids, envelopes and message bytes are the same values the
//! file spool keeps (the envelope as its versioned record). A row that does not decode is
//! `QueueError::Corrupt`, and `quarantine` moves it to place `corrupt` with the reason.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use petrel_queue::sync::lock;
use petrel_queue::{
    Claims, Envelope, Loaded, NewMessage, Place, Queue, QueueError, QueueId, Records, Residence,
    Shelf, StoreDone, record,
};

use crate::{PgQueue, database_error, pool_error};

/// The column value of a place.
fn place_name(place: Place) -> &'static str {
    match place {
        Place::Active => "active",
        Place::Held => "held",
        Place::Done => "done",
    }
}

/// The earliest next attempt of a pending recipient (what `claim_due` filters on).
fn next_attempt(envelope: &Envelope) -> i64 {
    let next = envelope
        .pending()
        .map(|(_, r)| r.next_attempt_unix_seconds)
        .min()
        .unwrap_or(0);
    i64::try_from(next).unwrap_or(i64::MAX)
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The envelope record as text (the record format is UTF-8 by construction).
fn record_text(id: &QueueId, envelope: &Envelope) -> String {
    String::from_utf8_lossy(&record::encode(id, envelope)).into_owned()
}

fn decode(id: &QueueId, text: &str) -> Result<Envelope, QueueError> {
    record::decode(text.as_bytes())
        .map(|(_, envelope)| envelope)
        .map_err(|e| QueueError::Corrupt {
            id: id.to_string(),
            reason: e.to_string(),
        })
}

fn not_found(id: &QueueId) -> QueueError {
    QueueError::NotFound(id.to_string())
}

/// Counts one database operation and its duration for `/metrics`.
pub(crate) async fn timed<T>(
    operation: &'static str,
    work: impl Future<Output = Result<T, QueueError>>,
) -> Result<T, QueueError> {
    let started = Instant::now();
    let result = work.await;
    let registry = petrel_metrics::registry();
    let micros = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    registry.add(
        petrel_metrics::QUEUE_DATABASE_MICROSECONDS,
        &[("operation", operation)],
        micros,
    );
    registry.increment(
        petrel_metrics::QUEUE_DATABASE_OPERATIONS,
        &[("operation", operation)],
    );
    if result.as_ref().is_err_and(QueueError::is_transient) {
        registry.increment(
            petrel_metrics::QUEUE_DATABASE_ERRORS,
            &[("operation", operation)],
        );
    }
    result
}

impl PgQueue {
    /// Runs one statement (`sql` with `params` built on the runtime) and returns its rows.
    pub(crate) fn rows<P>(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: P,
    ) -> Result<Vec<tokio_postgres::Row>, QueueError>
    where
        P: Params,
    {
        let pool = self.pool.clone();
        self.bridge.run(timed(
            operation,
            async move { query(&pool, sql, params).await },
        ))
    }

    /// Runs one statement and returns how many rows it changed.
    pub(crate) fn changed<P: Params>(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: P,
    ) -> Result<u64, QueueError> {
        let pool = self.pool.clone();
        self.bridge.run(timed(operation, async move {
            execute(&pool, sql, params).await
        }))
    }

    /// Whether new mail may be kept for this node's own delivery (see `claim_ahead`); forgets
    /// kept mail the scheduler did not claim within half a lease (the others may take it).
    fn has_room_to_keep(&self) -> bool {
        if self.claim_ahead == 0 {
            return false;
        }
        let held = lock(&self.claimed).len();
        let mut kept = lock(&self.kept);
        let half_lease = self.lease / 2;
        kept.retain(|_, (stored, _)| stored.elapsed() < half_lease);
        held.saturating_add(kept.len()) < self.claim_ahead
    }

    pub(crate) fn lease_seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Takes what the claim of `id` fetched (`pick` chooses envelope or message), once.
    fn take_fetched<T>(
        &self,
        id: &QueueId,
        pick: impl FnOnce(&mut crate::Fetched) -> Option<T>,
    ) -> Option<T> {
        lock(&self.claimed).get_mut(id).and_then(pick)
    }

    /// Forgets the claim of `id`, returning the epoch it held (`None`: not claimed here).
    fn forget_claim(&self, id: &QueueId) -> Option<i64> {
        lock(&self.claimed).remove(id).map(|fetched| fetched.epoch)
    }

    /// Why a fenced change to `id` changed no row: the row is still active, so the claim's
    /// epoch is gone (another node took it over: logged and counted), or it is not there.
    fn fenced_out(&self, operation: &'static str, id: &QueueId, epoch: Option<i64>) -> QueueError {
        let active = self
            .rows(
                "fence",
                "SELECT lease_owner, lease_epoch FROM petrel_messages
                 WHERE id = $1 AND place = 'active'",
                (id.to_string(),),
            )
            .ok()
            .and_then(|rows| rows.into_iter().next());
        let Some(row) = active.filter(|_| epoch.is_some()) else {
            return not_found(id);
        };
        let owner: Option<String> = row.try_get(0).unwrap_or(None);
        let now: i64 = row.try_get(1).unwrap_or(0);
        tracing::warn!(queue_id = %id, operation, claimed_epoch = epoch, epoch = now, owner = owner.as_deref().unwrap_or("none"), "lease lost: another node took this message over; this node's change is not made");
        petrel_metrics::registry().increment(petrel_metrics::QUEUE_LEASES_LOST, &[]);
        QueueError::LeaseLost(id.to_string())
    }

    /// Notes the rows a claim returned (see `note_claims`); the ids claimed.
    pub(crate) fn note_claims(&self, rows: &[tokio_postgres::Row]) -> Vec<QueueId> {
        note_claims(rows, &self.node, &self.claimed)
    }

    /// At open: the migrations, and what is there.
    pub(crate) fn prepare(&self) -> Result<crate::OpenReport, QueueError> {
        let pool = self.pool.clone();
        self.bridge.run(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let found = crate::schema::current_version(&client).await.unwrap_or(0);
            if found > crate::schema::known_versions() {
                return Err(QueueError::Io(io::Error::other(format!(
                    "the database has petrel schema version {found}, newer than this petrel's {}",
                    crate::schema::known_versions()
                ))));
            }
            crate::schema::migrate(&mut client)
                .await
                .map_err(database_error)?;
            let schema_version = crate::schema::current_version(&client)
                .await
                .map_err(database_error)?;
            let active: i64 = client
                .query_one(
                    "SELECT count(*) FROM petrel_messages WHERE place = 'active'",
                    &[],
                )
                .await
                .and_then(|row| row.try_get(0))
                .map_err(database_error)?;
            Ok(crate::OpenReport {
                schema_version,
                active: usize::try_from(active).unwrap_or(0),
            })
        })
    }
}

/// Statement parameters owned by the future (the runtime outlives the caller's borrows).
pub(crate) trait Params: Send + 'static {
    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)>;
}

macro_rules! params_tuple {
    ($($name:ident),*) => {
        impl<$($name: tokio_postgres::types::ToSql + Sync + Send + 'static),*> Params for ($($name,)*) {
            #[allow(non_snake_case)]
            fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
                let ($($name,)*) = self;
                vec![$($name as &(dyn tokio_postgres::types::ToSql + Sync)),*]
            }
        }
    };
}
params_tuple!(A);
params_tuple!(A, B);
params_tuple!(A, B, C);
params_tuple!(A, B, C, D);
params_tuple!(A, B, C, D, E);
params_tuple!(A, B, C, D, E, F);

async fn query<P: Params>(
    pool: &deadpool_postgres::Pool,
    sql: &'static str,
    params: P,
) -> Result<Vec<tokio_postgres::Row>, QueueError> {
    let client = pool.get().await.map_err(pool_error)?;
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .query(&statement, &params.refs())
        .await
        .map_err(database_error)
}

async fn execute<P: Params>(
    pool: &deadpool_postgres::Pool,
    sql: &'static str,
    params: P,
) -> Result<u64, QueueError> {
    let client = pool.get().await.map_err(pool_error)?;
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .execute(&statement, &params.refs())
        .await
        .map_err(database_error)
}

impl Queue for PgQueue {
    fn store(&self, envelope: &Envelope, message: &NewMessage<'_>) -> Result<QueueId, QueueError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.store_then(
            envelope,
            message,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .map_err(|_| QueueError::Io(io::Error::other("the database runtime stopped")))?
    }

    /// Never waits: the insert runs on the queue's own runtime.
    fn try_store_then(
        &self,
        envelope: &Envelope,
        message: &NewMessage<'_>,
        done: StoreDone,
    ) -> Option<StoreDone> {
        self.store_then(envelope, message, done);
        None
    }

    /// Queued for the next group commit (batch.rs); `done` hears of it after that commit.
    fn store_then(&self, envelope: &Envelope, message: &NewMessage<'_>, done: StoreDone) {
        // The database takes content from memory only (no `spill_dir`): a streamed rest would
        // be lost, so it is refused rather than stored short.
        if message.rest.is_some() {
            return done(Err(QueueError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "the PostgreSQL queue takes no streamed content",
            ))));
        }
        let id = QueueId::generate(SystemTime::now());
        let mut bytes = (message.header)(&id).into_bytes();
        bytes.extend_from_slice(message.content);
        let record = record_text(&id, envelope);
        let is_kept = self.has_room_to_keep();
        if is_kept {
            // Kept before the commit is known, so the scheduler finds it when told of it.
            let fetched = crate::Fetched {
                envelope: Some(record.clone()),
                message: Some(bytes.clone()),
                epoch: 0,
            };
            lock(&self.kept).insert(id.clone(), (std::time::Instant::now(), fetched));
        }
        let kept = self.kept.clone();
        let stored_id = id.clone();
        self.stores.put(
            id,
            crate::batch::NewRow {
                record,
                bytes,
                next_attempt: next_attempt(envelope),
                is_kept,
            },
            Box::new(move |result| {
                let result = match result {
                    Ok(true) => Ok(stored_id.clone()),
                    Ok(false) => Err(QueueError::Io(io::Error::other(format!(
                        "queue id {stored_id} is taken; try again"
                    )))),
                    Err(error) => Err(error),
                };
                if result.is_err() && is_kept {
                    lock(&kept).remove(&stored_id);
                }
                done(result);
            }),
        );
    }

    fn list(&self) -> Result<Vec<QueueId>, QueueError> {
        self.list_in(Place::Active)
    }

    fn load(&self, id: &QueueId) -> Result<Loaded, QueueError> {
        let envelope = match self.take_fetched(id, |fetched| fetched.envelope.take()) {
            Some(text) => decode(id, &text)?,
            None => self.load_in(id, Place::Active)?,
        };
        // Updates go to the database even when the claim fetched the row.
        Ok(Loaded {
            envelope,
            residence: Residence::Storage,
        })
    }

    fn read_message(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        match self.take_fetched(id, |fetched| fetched.message.take()) {
            Some(message) => Ok(message),
            None => self.read_message_in(id, Place::Active),
        }
    }

    fn update(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        let epoch = self.forget_claim(id);
        let changed = self.changed(
            "update",
            "UPDATE petrel_messages SET envelope = $2, next_attempt = $3,
                 lease_owner = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_until END
             WHERE id = $1 AND place = 'active'
               AND ($5::bigint IS NULL OR lease_epoch = $5)",
            (
                id.to_string(),
                record_text(id, envelope),
                next_attempt(envelope),
                self.node.to_string(),
                epoch,
            ),
        )?;
        if changed == 0 {
            return Err(self.fenced_out("update", id, epoch));
        }
        Ok(())
    }

    fn remove(&self, id: &QueueId) -> Result<(), QueueError> {
        let epoch = self.forget_claim(id);
        let changed = self.changed(
            "remove",
            "DELETE FROM petrel_messages WHERE id = $1 AND place = 'active'
               AND ($2::bigint IS NULL OR lease_epoch = $2)",
            (id.to_string(), epoch),
        )?;
        if changed == 0 {
            return Err(self.fenced_out("remove", id, epoch));
        }
        Ok(())
    }

    fn list_in(&self, place: Place) -> Result<Vec<QueueId>, QueueError> {
        let rows = self.rows(
            "list",
            "SELECT id FROM petrel_messages WHERE place = $1 ORDER BY id",
            (place_name(place),),
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .filter_map(|text| QueueId::parse(&text))
            .collect())
    }

    fn envelopes_in(&self, place: Place) -> Result<Vec<(QueueId, Envelope)>, QueueError> {
        // The size costs the database only the stored length, not the content.
        Ok(self
            .summaries_in(place)?
            .into_iter()
            .map(|(id, envelope, _)| (id, envelope))
            .collect())
    }

    fn summaries_in(&self, place: Place) -> Result<Vec<(QueueId, Envelope, usize)>, QueueError> {
        let rows = self.rows(
            "envelopes",
            "SELECT id, envelope, coalesce(octet_length(message), 0)::bigint
             FROM petrel_messages WHERE place = $1 ORDER BY id",
            (place_name(place),),
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let id = QueueId::parse(&row.try_get::<_, String>(0).ok()?)?;
                let envelope = decode(&id, &row.try_get::<_, String>(1).ok()?).ok()?;
                let size = usize::try_from(row.try_get::<_, i64>(2).ok()?).unwrap_or(0);
                Some((id, envelope, size))
            })
            .collect())
    }

    fn load_in(&self, id: &QueueId, place: Place) -> Result<Envelope, QueueError> {
        let rows = self.rows(
            "load",
            "SELECT envelope FROM petrel_messages WHERE id = $1 AND place = $2",
            (id.to_string(), place_name(place)),
        )?;
        let row = rows.first().ok_or_else(|| not_found(id))?;
        let text: String = row.try_get(0).map_err(database_error)?;
        decode(id, &text)
    }

    fn read_message_in(&self, id: &QueueId, place: Place) -> Result<Vec<u8>, QueueError> {
        let rows = self.rows(
            "read",
            "SELECT message FROM petrel_messages WHERE id = $1 AND place = $2",
            (id.to_string(), place_name(place)),
        )?;
        let row = rows.first().ok_or_else(|| not_found(id))?;
        let message: Option<Vec<u8>> = row.try_get(0).map_err(database_error)?;
        message.ok_or_else(|| not_found(id))
    }

    /// Counted by the database, the bytes left where they are.
    fn message_size_in(&self, id: &QueueId, place: Place) -> Result<usize, QueueError> {
        let rows = self.rows(
            "size",
            "SELECT octet_length(message)::bigint FROM petrel_messages
             WHERE id = $1 AND place = $2",
            (id.to_string(), place_name(place)),
        )?;
        let row = rows.first().ok_or_else(|| not_found(id))?;
        let size: Option<i64> = row.try_get(0).map_err(database_error)?;
        size.and_then(|size| usize::try_from(size).ok())
            .ok_or_else(|| not_found(id))
    }

    fn hold(&self, id: &QueueId) -> Result<(), QueueError> {
        self.forget_claim(id);
        let changed = self.changed(
            "hold",
            "UPDATE petrel_messages SET place = 'held', lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND place = 'active'",
            (id.to_string(),),
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    fn release(&self, id: &QueueId) -> Result<(), QueueError> {
        let rows = self.rows(
            "release",
            "WITH released AS (
                 UPDATE petrel_messages SET place = 'active'
                 WHERE id = $1 AND place = 'held' RETURNING id)
             SELECT pg_notify('petrel_queue', id) FROM released",
            (id.to_string(),),
        )?;
        if rows.is_empty() {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Grouped with the archives of the other deliveries finishing at the same time.
    fn archive(&self, id: &QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        let epoch = self.forget_claim(id);
        let row = crate::batch::DoneRow {
            record: record_text(id, envelope),
            epoch,
        };
        if !self.archives.put_and_wait(id.clone(), row)? {
            return Err(self.fenced_out("archive", id, epoch));
        }
        Ok(())
    }

    fn purge_history(&self, keep: Duration) -> Result<usize, QueueError> {
        let purged = self.changed(
            "purge",
            "DELETE FROM petrel_messages
             WHERE place = 'done' AND finished_at < now() - make_interval(secs => $1)",
            (keep.as_secs_f64(),),
        )?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    fn claims(&self) -> Option<&dyn Claims> {
        Some(self)
    }

    fn records(&self) -> &dyn Records {
        self
    }

    fn quarantine(&self, id: &QueueId, reason: &str) -> Result<(), QueueError> {
        self.forget_claim(id);
        let changed = self.changed(
            "quarantine",
            "UPDATE petrel_messages SET place = 'corrupt', reason = $2,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND place IN ('active', 'held')",
            (id.to_string(), reason.to_owned()),
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }
}

impl Records for PgQueue {
    fn get(&self, shelf: Shelf, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let rows = self.rows(
            "record-get",
            "SELECT value FROM petrel_records WHERE shelf = $1 AND key = $2",
            (shelf.as_str().to_owned(), key.to_ascii_lowercase()),
        )?;
        match rows.first() {
            Some(row) => Ok(Some(row.try_get::<_, Vec<u8>>(0).map_err(database_error)?)),
            None => Ok(None),
        }
    }

    fn put(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<(), QueueError> {
        self.changed(
            "record-put",
            "INSERT INTO petrel_records (shelf, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (shelf, key) DO UPDATE SET value = excluded.value, updated_at = now()",
            (
                shelf.as_str().to_owned(),
                key.to_ascii_lowercase(),
                value.to_vec(),
            ),
        )?;
        Ok(())
    }

    fn put_new(&self, shelf: Shelf, key: &str, value: &[u8]) -> Result<bool, QueueError> {
        let changed = self.changed(
            "record-put-new",
            "INSERT INTO petrel_records (shelf, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (shelf, key) DO NOTHING",
            (
                shelf.as_str().to_owned(),
                key.to_ascii_lowercase(),
                value.to_vec(),
            ),
        )?;
        Ok(changed == 1)
    }

    fn values_with_prefix(&self, shelf: Shelf, prefix: &str) -> Result<Vec<Vec<u8>>, QueueError> {
        let rows = self.rows(
            "record-prefix",
            "SELECT value FROM petrel_records WHERE shelf = $1 AND starts_with(key, $2)",
            (shelf.as_str().to_owned(), prefix.to_ascii_lowercase()),
        )?;
        rows.iter()
            .map(|row| row.try_get::<_, Vec<u8>>(0).map_err(database_error))
            .collect()
    }
}

/// Notes the rows a claim returned (id, previous owner, envelope, message, epoch): each is
/// now held by `node` with what it fetched, counted, and a takeover counted when another node
/// held it; the ids claimed.
pub(crate) fn note_claims(
    rows: &[tokio_postgres::Row],
    node: &str,
    claimed: &crate::Claimed,
) -> Vec<QueueId> {
    let registry = petrel_metrics::registry();
    let mut ids = Vec::new();
    for row in rows {
        let Some(id) = row
            .try_get::<_, String>(0)
            .ok()
            .and_then(|text| QueueId::parse(&text))
        else {
            continue;
        };
        let previous: Option<String> = row.try_get(1).unwrap_or(None);
        registry.increment(petrel_metrics::QUEUE_CLAIMS, &[]);
        if previous.is_some_and(|owner| owner != node) {
            registry.increment(petrel_metrics::QUEUE_LEASE_TAKEOVERS, &[]);
        }
        let fetched = crate::Fetched {
            envelope: row.try_get(2).ok(),
            message: row.try_get::<_, Option<Vec<u8>>>(3).ok().flatten(),
            epoch: row.try_get(4).unwrap_or(0),
        };
        lock(claimed).insert(id.clone(), fetched);
        ids.push(id);
    }
    ids
}
