//! The database schema, as numbered migrations embedded in the binary and applied at start.
//!
//! Contract: `migrate` brings any database (empty, or made by an older petrel) to the newest
//! version, in one transaction, under a transaction-level advisory lock so two
//! nodes starting at once do not both apply it. Versions only grow; a database newer than this
//! binary is refused (an older node must not write rows it does not understand).
//!
//! Tables:
//! - `petrel_messages`: one row per message. `place` is active, held, done or corrupt;
//!   `envelope` is the versioned envelope record of `petrel_queue::record` (sender, each
//!   recipient's state, attempts, next attempt, last reply, and the history lines), so both
//!   backends keep exactly the same facts; `message` the bytes as received (NULL once done);
//!   `next_attempt` the earliest next attempt of a pending recipient (Unix seconds), which the
//!   claim query orders and filters by; `lease_owner`/`lease_until` the node delivering it,
//!   and `lease_epoch` the number of claims so far (the fencing token).
//! - `petrel_records`: the small records beside the queue (`petrel_queue::Records`), one row
//!   per shelf and key (MTA-STS policies by domain), shared by every node.
//! - `petrel_domains`, `petrel_mailboxes`, `petrel_aliases`, `petrel_users` and
//!   `petrel_directory_version`: the directory of `[local] store = "postgres"` (`directory.rs`).
//! - `petrel_schema_migrations`: the versions applied.

use tokio_postgres::Client;

/// The advisory lock key of migrations ("petrel" in ASCII).
const MIGRATION_LOCK: i64 = 0x7065_7472_656c;

/// The migrations, in order; index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE petrel_messages (
        id            text PRIMARY KEY,
        place         text NOT NULL DEFAULT 'active'
                      CHECK (place IN ('active', 'held', 'done', 'corrupt')),
        envelope      text NOT NULL,
        message       bytea,
        next_attempt  bigint NOT NULL DEFAULT 0,
        lease_owner   text,
        lease_until   timestamptz,
        stored_at     timestamptz NOT NULL DEFAULT now(),
        stored_by     text NOT NULL,
        finished_at   timestamptz,
        reason        text
    );
    CREATE INDEX petrel_messages_due ON petrel_messages (next_attempt) WHERE place = 'active';
    CREATE INDEX petrel_messages_finished ON petrel_messages (finished_at) WHERE place = 'done';",
    "CREATE TABLE petrel_records (
        shelf       text NOT NULL,
        key         text NOT NULL,
        value       bytea NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (shelf, key)
    );",
    // Fencing: each claim raises the epoch; a node's change to a message it claimed is made
    // only while the epoch is still the one its claim returned.
    "ALTER TABLE petrel_messages ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;",
    // The directory (`directory.rs`): domains, mailboxes, aliases and users shared by the
    // nodes, and the version every change raises.
    "CREATE TABLE petrel_domains (name text PRIMARY KEY);
    CREATE TABLE petrel_mailboxes (address text PRIMARY KEY);
    CREATE TABLE petrel_aliases (name text PRIMARY KEY, targets text NOT NULL);
    CREATE TABLE petrel_users (name text PRIMARY KEY, hash text NOT NULL);
    CREATE TABLE petrel_directory_version (
        one      boolean PRIMARY KEY DEFAULT true CHECK (one),
        version  bigint NOT NULL
    );
    INSERT INTO petrel_directory_version (version) VALUES (0);",
    // Message content is compressed with lz4 where the server has it (PostgreSQL 14 and
    // later, built with lz4): pglz, the default, cost PostgreSQL a quarter of its time per
    // stored message (BENCHMARKS.md). Rows stored before keep pglz; both read back alike.
    "DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
            ALTER TABLE petrel_messages ALTER COLUMN message SET COMPRESSION lz4;
        END IF;
    END $$;",
];

/// Applies every migration the database lacks, all in one transaction under the advisory
/// lock (so even the migrations table is made by one node only); returns how many it knows.
pub(crate) async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS petrel_schema_migrations (
                version    integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let applied = transaction
            .query_opt(
                "SELECT 1 FROM petrel_schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if !applied {
            transaction.batch_execute(sql).await?;
            transaction
                .execute(
                    "INSERT INTO petrel_schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await?;
        }
    }
    transaction.commit().await?;
    Ok(MIGRATIONS.len())
}

/// The newest version in the database (0 for none).
pub(crate) async fn current_version(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM petrel_schema_migrations",
            &[],
        )
        .await?;
    row.try_get(0)
}

/// How many migrations this binary knows.
pub(crate) fn known_versions() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}
