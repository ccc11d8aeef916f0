//! Opens the queue `[queue] backend` names: the file spool under `<data_dir>/queue`, or the
//! shared queue on PostgreSQL. `serve`, `queue ...` without a daemon and `sendmail` without a
//! daemon all come through here, so they always agree on where the mail is.
//!
//! Failure policy: every failure is a sentence for the operator; what a successful open found
//! (entries quarantined, leases given back) is logged.

use std::sync::Arc;

use petrel_pgqueue::PgQueue;
use petrel_queue::spool::Spool;
use petrel_queue::{Queue, QueueError};
use tracing::{error, info, warn};

use crate::config::Config;

/// Who opens the queue: the daemon (which may take back its own leases of a crashed run) or
/// a command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    Daemon,
    Command,
}

/// Opens the configured queue (blocking: call it off the runtime threads).
///
/// # Errors
/// Why the queue cannot be used.
pub fn open(config: &Config, opener: Opener) -> Result<Arc<dyn Queue>, String> {
    if let Some(mut settings) = config.postgres_settings() {
        if opener == Opener::Daemon {
            // New mail goes straight to this node's scheduler while it has slots free.
            settings.claim_ahead = petrel_delivery::MAX_IN_FLIGHT;
        }
        // The mail, the control socket and the DKIM keys still live under data_dir.
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot make {}: {e}", config.data_dir.display()))?;
        let (queue, report) = PgQueue::open(&settings)
            .map_err(|e| format!("cannot open the queue on PostgreSQL: {e}"))?;
        let leases_released = match opener {
            Opener::Daemon => queue
                .release_leases_of_earlier_run()
                .map_err(|e| format!("cannot open the queue on PostgreSQL: {e}"))?,
            Opener::Command => 0,
        };
        info!(
            node = %settings.node_name,
            schema_version = report.schema_version,
            active = report.active,
            leases_released,
            "queue opened on PostgreSQL"
        );
        return Ok(Arc::new(queue));
    }
    let root = config.data_dir.join("queue");
    let shown = root.display().to_string();
    let (spool, report) = Spool::open_with(root, config.sync_mode()).map_err(|e| match e {
        QueueError::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => format!(
            "the queue {shown} is in use by a running petrel, but {} does not answer",
            config.data_dir.join("control.sock").display()
        ),
        other => format!("cannot open the queue {shown}: {other}"),
    })?;
    info!(
        queue = %shown,
        active = report.active,
        purged_tmp = report.purged_tmp,
        quarantined = report.quarantined.len(),
        "queue opened"
    );
    if let Some(reason) = &report.journal_unavailable {
        warn!(queue = %shown, %reason, "no journal: stores are made durable with syncfs");
    }
    for (name, reason) in &report.quarantined {
        error!(file = %name, %reason, "unreadable queue entry moved to corrupt/");
    }
    Ok(Arc::new(spool))
}
