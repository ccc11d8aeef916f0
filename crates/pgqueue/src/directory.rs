//! Domains, mailboxes, aliases and users in PostgreSQL (issue 19, item 6), for clusters where
//! every node must agree: `[local] store = "postgres"`. `petrel domain|mailbox|alias|user`
//! change the tables through `DirectoryStore::change`; each change raises the directory's
//! version in the same transaction, and every node polls that version (`version`) and, when
//! it moved, reads the whole directory again (`load`) and uses it as it would after a SIGHUP.
//!
//! Tables (schema version 4): `petrel_domains (name)`, `petrel_mailboxes (address)` with
//! `local@domain`, `petrel_aliases (name, targets)` as in an aliases file (`name` is `local`,
//! `local@domain` or `*@domain`; `targets` a comma-separated list), `petrel_users (name, hash)`
//! with an argon2 PHC string, and `petrel_directory_version`, one row. Names are kept in
//! lower case (a user name as given).

use std::sync::Mutex;

use petrel_queue::QueueError;
use tokio_postgres::{Client, NoTls};

use crate::bridge::Bridge;
use crate::{connection_config, database_error};

/// Everything the directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub version: i64,
    pub domains: Vec<String>,
    /// `local@domain`.
    pub mailboxes: Vec<String>,
    /// (name, targets), as the lines of an aliases file.
    pub aliases: Vec<(String, String)>,
    /// (name, argon2 hash).
    pub users: Vec<(String, String)>,
}

/// One change an operator makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddDomain(String),
    RemoveDomain(String),
    AddMailbox(String),
    RemoveMailbox(String),
    /// The alias `name` now expands to `targets` (comma-separated).
    SetAlias {
        name: String,
        targets: String,
    },
    RemoveAlias(String),
    /// The user `name` now has this password hash.
    SetUser {
        name: String,
        hash: String,
    },
    RemoveUser(String),
}

/// A connection to the directory, made again when it breaks.
pub struct DirectoryStore {
    bridge: Bridge,
    config: tokio_postgres::Config,
    client: Mutex<Option<std::sync::Arc<Client>>>,
}

impl DirectoryStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// # Errors
    /// `QueueError::Io` with the database's reason.
    pub fn connect(url: &str, name: &str) -> Result<DirectoryStore, QueueError> {
        let store = DirectoryStore {
            bridge: Bridge::start()?,
            config: connection_config(url, name)?,
            client: Mutex::new(None),
        };
        let config = store.config.clone();
        let client = store.bridge.run(async move {
            let (mut client, connection) = config.connect(NoTls).await.map_err(database_error)?;
            tokio::spawn(connection);
            crate::schema::migrate(&mut client)
                .await
                .map_err(database_error)?;
            Ok(std::sync::Arc::new(client))
        })?;
        *lock(&store.client) = Some(client);
        Ok(store)
    }

    /// The client, connected again when the last one broke.
    fn client(&self) -> Result<std::sync::Arc<Client>, QueueError> {
        if let Some(client) = lock(&self.client).as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let config = self.config.clone();
        let client = self.bridge.run(async move {
            let (client, connection) = config.connect(NoTls).await.map_err(database_error)?;
            tokio::spawn(connection);
            Ok(std::sync::Arc::new(client))
        })?;
        *lock(&self.client) = Some(client.clone());
        Ok(client)
    }

    /// The directory's version: it moves with every change.
    ///
    /// # Errors
    /// `QueueError::Io` when the database cannot be read.
    pub fn version(&self) -> Result<i64, QueueError> {
        let client = self.client()?;
        self.bridge.run(async move {
            let row = client
                .query_opt("SELECT version FROM petrel_directory_version", &[])
                .await
                .map_err(database_error)?;
            match row {
                Some(row) => row.try_get(0).map_err(database_error),
                None => Ok(0),
            }
        })
    }

    /// The whole directory, read in one transaction.
    ///
    /// # Errors
    /// `QueueError::Io` when the database cannot be read.
    pub fn load(&self) -> Result<Directory, QueueError> {
        let config = self.config.clone();
        self.bridge.run(async move {
            // Its own connection, for its own transaction.
            let (client, connection) = config.connect(NoTls).await.map_err(database_error)?;
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(database_error)?;
            let read = async {
                let column = |rows: Vec<tokio_postgres::Row>| {
                    rows.iter()
                        .map(|row| row.try_get(0))
                        .collect::<Result<Vec<String>, _>>()
                };
                let pairs = |rows: Vec<tokio_postgres::Row>| {
                    rows.iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect::<Result<Vec<(String, String)>, tokio_postgres::Error>>()
                };
                let version = match client
                    .query_opt("SELECT version FROM petrel_directory_version", &[])
                    .await?
                {
                    Some(row) => row.try_get(0)?,
                    None => 0,
                };
                Ok::<_, tokio_postgres::Error>(Directory {
                    version,
                    domains: column(
                        client
                            .query("SELECT name FROM petrel_domains ORDER BY name", &[])
                            .await?,
                    )?,
                    mailboxes: column(
                        client
                            .query("SELECT address FROM petrel_mailboxes ORDER BY address", &[])
                            .await?,
                    )?,
                    aliases: pairs(
                        client
                            .query(
                                "SELECT name, targets FROM petrel_aliases ORDER BY name",
                                &[],
                            )
                            .await?,
                    )?,
                    users: pairs(
                        client
                            .query("SELECT name, hash FROM petrel_users ORDER BY name", &[])
                            .await?,
                    )?,
                })
            };
            let result = read.await;
            let _ = client.batch_execute("COMMIT").await;
            result.map_err(database_error)
        })
    }

    /// Makes one change and raises the version with it; whether anything changed (adding what
    /// is there already, or removing what is not, changes nothing).
    ///
    /// # Errors
    /// `QueueError::Io` when the database cannot be written.
    pub fn change(&self, change: Change) -> Result<bool, QueueError> {
        let config = self.config.clone();
        self.bridge.run(async move {
            // Its own connection: a transaction must not share one with the polls.
            let (mut client, connection) = config.connect(NoTls).await.map_err(database_error)?;
            tokio::spawn(connection);
            let transaction = client.transaction().await.map_err(database_error)?;
            let changed = match &change {
                Change::AddDomain(name) => {
                    transaction
                        .execute(
                            "INSERT INTO petrel_domains (name) VALUES ($1) ON CONFLICT DO NOTHING",
                            &[name],
                        )
                        .await
                }
                Change::RemoveDomain(name) => {
                    transaction
                        .execute("DELETE FROM petrel_domains WHERE name = $1", &[name])
                        .await
                }
                Change::AddMailbox(address) => transaction
                    .execute(
                        "INSERT INTO petrel_mailboxes (address) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[address],
                    )
                    .await,
                Change::RemoveMailbox(address) => {
                    transaction
                        .execute(
                            "DELETE FROM petrel_mailboxes WHERE address = $1",
                            &[address],
                        )
                        .await
                }
                Change::SetAlias { name, targets } => {
                    transaction
                        .execute(
                            "INSERT INTO petrel_aliases (name, targets) VALUES ($1, $2)
                             ON CONFLICT (name) DO UPDATE SET targets = excluded.targets
                             WHERE petrel_aliases.targets <> excluded.targets",
                            &[name, targets],
                        )
                        .await
                }
                Change::RemoveAlias(name) => {
                    transaction
                        .execute("DELETE FROM petrel_aliases WHERE name = $1", &[name])
                        .await
                }
                Change::SetUser { name, hash } => {
                    transaction
                        .execute(
                            "INSERT INTO petrel_users (name, hash) VALUES ($1, $2)
                             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash",
                            &[name, hash],
                        )
                        .await
                }
                Change::RemoveUser(name) => {
                    transaction
                        .execute("DELETE FROM petrel_users WHERE name = $1", &[name])
                        .await
                }
            }
            .map_err(database_error)?
                > 0;
            if changed {
                transaction
                    .execute(
                        "UPDATE petrel_directory_version SET version = version + 1",
                        &[],
                    )
                    .await
                    .map_err(database_error)?;
            }
            transaction.commit().await.map_err(database_error)?;
            Ok(changed)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
