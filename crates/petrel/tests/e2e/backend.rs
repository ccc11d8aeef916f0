//! Which queue the e2e suite runs against: the file spool (the default), or PostgreSQL when
//! `PETREL_TEST_QUEUE=postgres` (CI runs the suite both ways). In PostgreSQL mode every petrel
//! the harness configures gets a database of its own on one private cluster (started on first
//! use, on a loopback port, ended with the test process), and a node name of its own.
//!
//! `cluster()` also serves the multi-node tests (cluster.rs), which always run on PostgreSQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use petrel_pgqueue::cluster::Cluster;

/// Whether this run uses the PostgreSQL queue for every petrel.
pub fn is_postgres() -> bool {
    std::env::var("PETREL_TEST_QUEUE").is_ok_and(|v| v == "postgres")
}

/// True (and says why on stderr) when a spool-only test meets the PostgreSQL queue.
pub fn skip_on_postgres(why: &str) -> bool {
    if is_postgres() {
        eprintln!("skipped with PETREL_TEST_QUEUE=postgres: this test {why}");
    }
    is_postgres()
}

/// The private cluster of this test process.
pub fn cluster() -> MutexGuard<'static, Cluster> {
    static CLUSTER: OnceLock<Mutex<Cluster>> = OnceLock::new();
    let cluster = CLUSTER
        .get_or_init(|| Mutex::new(Cluster::start().expect("start a private PostgreSQL cluster")));
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new empty database on the cluster; returns its URL.
pub fn new_database() -> String {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let name = {
        let mut next = NEXT.lock().unwrap();
        *next += 1;
        format!("petrel_{}", *next)
    };
    let cluster = cluster();
    cluster.create_database(&name).expect("createdb");
    cluster.url(&name)
}

/// The `[queue]` keys that put the petrel of `data_dir` on its own database (the same one each
/// time for one data_dir, so a rewritten configuration keeps its queue).
pub fn queue_keys(data_dir: &Path) -> String {
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, (String, String)>>> = OnceLock::new();
    let mut databases = DATABASES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let count = databases.len();
    let (url, node) = databases
        .entry(data_dir.to_path_buf())
        .or_insert_with(|| (new_database(), format!("node-{count}")))
        .clone();
    format!("backend = \"postgres\"\npostgres_url = \"{url}\"\nnode_name = \"{node}\"\n")
}

/// `extra` with the PostgreSQL queue keys added (into its `[queue]` table when it has one).
pub fn with_queue(data_dir: &Path, extra: &str) -> String {
    if !is_postgres() || extra.contains("backend = ") {
        return extra.to_owned();
    }
    let keys = queue_keys(data_dir);
    match extra.find("[queue]\n") {
        Some(at) => {
            let (head, tail) = extra.split_at(at + "[queue]\n".len());
            format!("{head}{keys}{tail}")
        }
        None => format!("{extra}\n[queue]\n{keys}"),
    }
}
