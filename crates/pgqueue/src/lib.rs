//! petrel-pgqueue: the [`Queue`] on PostgreSQL, so several petrel nodes share one queue.
//!
//! Contents: [`PgQueue`] (the queue: `queue`, the SQL of every operation; `leases`, lease
//! renewal and LISTEN/NOTIFY; `claims`, the coordination of nodes), [`schema`] (embedded
//! migrations, applied by `open`), the `bridge` from the synchronous trait to the asynchronous
//! client, and, for tests only (feature `test-cluster`), `cluster`: a private PostgreSQL
//! cluster on loopback.
//! Depends on `petrel-queue` (trait, ids, envelope records), `petrel-metrics`, tokio,
//! tokio-postgres and deadpool-postgres.
//!
//! Durability: a store is one INSERT committed with `synchronous_commit = on` (set for every
//! connection), and the store's callback runs only after the commit, so the receiver's 250
//! follows a commit that is on the database's disk. A lost database turns into
//! `QueueError::Io` (transient: 451 4.3.0 to the client, a deferred delivery), and the pool
//! opens new connections by itself when the database is back.
//!
//! Work sharing: any node may deliver any message, but only while it holds the message's
//! lease (`lease_owner`, `lease_until`). `claim_due` takes due, unleased messages with
//! `SELECT ... FOR UPDATE SKIP LOCKED`, so two nodes never take the same one; the holder renews
//! its leases while it works; a node that dies stops renewing and another takes its messages
//! over once the lease has run out. A node that receives mail while it has delivery slots to
//! spare stores it leased to itself and delivers it at once (no claim query); mail beyond that
//! is stored unleased, with a NOTIFY on `petrel_queue` (as releases send) that wakes the other
//! nodes' schedulers to take it.
//!
//! Failure policy: no panics; every failure is a `QueueError`. Rows read from the database are
//! decoded with the same untrusting record parser as spool files.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batch;
mod bridge;
mod claims;
#[cfg(feature = "test-cluster")]
pub mod cluster;
pub mod directory;
mod leases;
mod queue;
pub mod schema;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use petrel_queue::QueueError;
use tokio_postgres::NoTls;

use bridge::Bridge;

/// The NOTIFY channel of new and released mail.
pub(crate) const CHANNEL: &str = "petrel_queue";

/// What the PostgreSQL queue needs from `[queue]`.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `queue.postgres_url`, e.g. `postgres://petrel@127.0.0.1:5432/petrel`.
    pub url: String,
    /// `queue.node_name`: this node's name in leases and history; unique per node.
    pub node_name: String,
    /// `queue.lease`: how long a claim lasts without renewal (a dead node's mail waits this
    /// long before another node takes it over).
    pub lease: Duration,
    /// Database connections this node opens at most.
    pub pool_size: usize,
    /// How many messages this node may hold at once and still take new mail it receives
    /// straight into its own delivery (stored already leased to it: no claim, no NOTIFY);
    /// beyond that, new mail is stored unleased and the other nodes are woken to take it.
    /// The scheduler's number of deliveries at once; 0 for a process that does not deliver
    /// (`sendmail`, `queue` commands).
    pub claim_ahead: usize,
}

/// What `PgQueue::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Schema version after the migrations.
    pub schema_version: i32,
    /// Active messages in the shared queue.
    pub active: usize,
}

/// What a claim read along with the lease: the scheduler's next two calls need it.
#[derive(Default)]
pub(crate) struct Fetched {
    pub(crate) envelope: Option<String>,
    pub(crate) message: Option<Vec<u8>>,
    /// The `lease_epoch` the claim left on the row (0 for mail stored leased to this node).
    pub(crate) epoch: i64,
}

/// The messages this node holds leases on, with what their claims fetched.
pub(crate) type Claimed = Arc<Mutex<HashMap<petrel_queue::QueueId, Fetched>>>;

/// The mail a node stored leased to itself and has not claimed yet.
pub(crate) type Kept = Arc<Mutex<HashMap<petrel_queue::QueueId, (std::time::Instant, Fetched)>>>;

/// The queue on PostgreSQL.
pub struct PgQueue {
    bridge: Bridge,
    pool: Pool,
    node: Arc<str>,
    lease: Duration,
    /// Messages this process holds leases on (renewed by `leases` until given back), with
    /// the envelope and bytes the claim fetched, handed out once by `load` and `read_message`.
    claimed: Claimed,
    /// Mail this node stored leased to itself, not yet claimed by its scheduler: when it was
    /// stored, and its envelope and bytes (see `PgSettings::claim_ahead`).
    kept: Kept,
    /// Where stores wait for their group commit.
    stores: batch::Group<batch::Stores>,
    /// Where archives wait for theirs.
    archives: batch::Group<batch::Archives>,
    /// Where claims of single messages wait for theirs.
    claims: batch::Group<batch::Claims>,
    claim_ahead: usize,
    wakers: leases::Wakers,
}

impl PgQueue {
    /// Connects, applies the migrations and starts lease renewal and LISTEN.
    ///
    /// # Errors
    /// `QueueError::Io` with the database's reason when it cannot be reached or migrated.
    pub fn open(settings: &PgSettings) -> Result<(PgQueue, OpenReport), QueueError> {
        let config = connection_config(&settings.url, &settings.node_name)?;
        let bridge = Bridge::start()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| QueueError::Io(io::Error::other(format!("database pool: {e}"))))?;
        petrel_queue::id::seed_counter(&settings.node_name);
        let node: Arc<str> = Arc::from(settings.node_name.as_str());
        let lease = settings.lease.max(Duration::from_secs(1));
        let kept = Kept::default();
        let stores = batch::Group::start(
            &bridge,
            pool.clone(),
            batch::Stores {
                node: node.clone(),
                lease_seconds: lease.as_secs_f64(),
            },
        );
        let archives = batch::Group::start(&bridge, pool.clone(), batch::Archives);
        let claimed = Claimed::default();
        let claims = batch::Group::start(
            &bridge,
            pool.clone(),
            batch::Claims {
                node: node.clone(),
                lease_seconds: lease.as_secs_f64(),
                claimed: claimed.clone(),
            },
        );
        let queue = PgQueue {
            bridge,
            pool,
            node,
            lease,
            claimed,
            kept,
            stores,
            archives,
            claims,
            claim_ahead: settings.claim_ahead,
            wakers: Arc::default(),
        };
        let report = queue.prepare()?;
        leases::start(&queue, config);
        Ok((queue, report))
    }

    /// Connects to `url` once and says what is there: server version and schema version.
    ///
    /// # Errors
    /// `QueueError::Io` with the database's reason.
    pub fn check(url: &str) -> Result<String, QueueError> {
        let config = connection_config(url, "check-config")?;
        let bridge = Bridge::start()?;
        bridge.run(async move {
            let (client, connection) = config.connect(NoTls).await.map_err(database_error)?;
            let driver = tokio::spawn(connection);
            let server: String = client
                .query_one("SHOW server_version", &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(database_error)?;
            let schema = schema::current_version(&client).await.unwrap_or(0);
            drop(client);
            let _ = driver.await;
            Ok(format!(
                "PostgreSQL {server}, petrel schema version {schema} of {}",
                schema::known_versions()
            ))
        })
    }

    /// Gives back the leases this node's name holds from an earlier run (a crash): only the
    /// daemon may, at start; a `queue` command must not take a running node's leases away.
    ///
    /// # Errors
    /// `QueueError::Io` when the database cannot be reached.
    pub fn release_leases_of_earlier_run(&self) -> Result<u64, QueueError> {
        let (pool, node) = (self.pool.clone(), self.node.to_string());
        self.bridge.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "UPDATE petrel_messages SET lease_owner = NULL, lease_until = NULL
                     WHERE lease_owner = $1",
                    &[&node],
                )
                .await
                .map_err(database_error)
        })
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.node
    }
}

/// The connection settings: the URL, with `synchronous_commit = on` for every session (the
/// 250 waits for a commit that is on disk, whatever the server's default) and our name.
fn connection_config(url: &str, node: &str) -> Result<tokio_postgres::Config, QueueError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        QueueError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("queue.postgres_url: {e}"),
        ))
    })?;
    config
        .options("-c synchronous_commit=on")
        .application_name(format!("petrel {node}"))
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true);
    Ok(config)
}

/// A database error as a transient queue error with the server's message.
pub(crate) fn database_error(error: tokio_postgres::Error) -> QueueError {
    let text = match error.as_db_error() {
        Some(db) => format!("database: {} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(&error) {
            Some(source) => format!("database: {error}: {source}"),
            None => format!("database: {error}"),
        },
    };
    QueueError::Io(io::Error::other(text))
}

/// A pool error (no connection could be had) as a transient queue error.
pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> QueueError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => database_error(error),
        other => QueueError::Io(io::Error::other(format!("database connection: {other}"))),
    }
}
