//! The background work of a `PgQueue` on its runtime: renewing the leases this node holds,
//! and LISTEN on `petrel_queue` to wake the scheduler when another node queues or releases
//! mail.
//!
//! Renewal runs every third of the lease, for the ids in `claimed` only, so a message this
//! process gave back or forgot is never kept from the other nodes. The listener reconnects by
//! itself (one second apart) and wakes the scheduler after each reconnect, because
//! notifications sent while it was away are lost.
//!
//! Failure policy: errors are retried on the next tick; nothing here panics or ends the
//! process. A node cut off from the database for longer than the lease loses its messages to
//! the others (delivery is at least once).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use petrel_queue::sync::lock;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{CHANNEL, PgQueue};

/// The scheduler's wake-up callbacks.
pub(crate) type Wakers = Arc<Mutex<Vec<Box<dyn Fn() + Send + Sync>>>>;

/// Starts renewal and the listener on the queue's runtime.
pub(crate) fn start(queue: &PgQueue, config: tokio_postgres::Config) {
    let (pool, node, claimed) = (
        queue.pool.clone(),
        queue.node.to_string(),
        queue.claimed.clone(),
    );
    let lease = queue.lease;
    queue.bridge.handle().spawn(async move {
        let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(300)));
        let mut is_failing = false;
        let mut reported_lost = std::collections::HashSet::new();
        loop {
            tick.tick().await;
            let ids: Vec<String> = lock(&claimed).keys().map(ToString::to_string).collect();
            if ids.is_empty() {
                reported_lost.clear();
                continue;
            }
            let renewed = match pool.get().await {
                Ok(client) => client
                    .query(
                        // Rows locked in id order, as the grouped archives and claims
                        // lock theirs: two statements over many rows cannot deadlock.
                        "WITH mine AS (
                             SELECT id FROM petrel_messages
                             WHERE lease_owner = $1 AND id = ANY($2)
                             ORDER BY id FOR UPDATE)
                         UPDATE petrel_messages m
                         SET lease_until = now() + make_interval(secs => $3)
                         FROM mine WHERE m.id = mine.id
                         RETURNING m.id",
                        &[&node, &ids, &lease.as_secs_f64()],
                    )
                    .await
                    .map(|rows| {
                        rows.iter()
                            .filter_map(|row| row.try_get::<_, String>(0).ok())
                            .collect::<std::collections::HashSet<String>>()
                    })
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Ok(renewed) = &renewed {
                // Claimed here, not renewed: another node holds it now, or it is gone. The
                // fenced change that ends this node's delivery will not be made.
                for id in ids.iter().filter(|id| !renewed.contains(*id)) {
                    if reported_lost.insert(id.clone()) {
                        tracing::warn!(queue_id = %id, "lease not renewed: another node took this message over or it left the queue");
                    }
                }
                reported_lost.retain(|id| ids.contains(id));
            }
            is_failing = report_renewal(renewed.map(drop), is_failing, ids.len());
        }
    });
    let wakers = queue.wakers.clone();
    let own = format!("{} ", queue.node);
    queue.bridge.handle().spawn(async move {
        let mut is_reconnect = false;
        loop {
            listen(&config, &wakers, &own, is_reconnect).await;
            is_reconnect = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// One LISTEN connection, until it breaks. Notifications whose payload begins with `own`
/// (this node's name and a space: mail it stored itself and delivers anyway) are ignored.
async fn listen(config: &tokio_postgres::Config, wakers: &Wakers, own: &str, is_reconnect: bool) {
    let Ok((client, mut connection)) = config.connect(NoTls).await else {
        return;
    };
    let forward = wakers.clone();
    let own = own.to_owned();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) if !note.payload().starts_with(&own) => {
                    wake(&forward)
                }
                Some(Ok(AsyncMessage::Notification(_))) => {}
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    if client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .is_err()
    {
        driver.abort();
        return;
    }
    if is_reconnect {
        // Whatever was announced while no one listened (at start the scheduler looks anyway).
        wake(wakers);
    }
    let _ = driver.await;
    drop(client);
}

fn wake(wakers: &Wakers) {
    for wake in lock(wakers).iter() {
        wake();
    }
}

/// Logs a failed renewal once when renewals start failing and once when they work again (not
/// every tick), and counts every failure; returns whether renewals are failing now.
fn report_renewal(renewed: Result<(), String>, was_failing: bool, count: usize) -> bool {
    match renewed {
        Ok(()) => {
            if was_failing {
                tracing::info!(leases = count, "lease renewal works again");
            }
            false
        }
        Err(error) => {
            petrel_metrics::registry().increment(
                petrel_metrics::QUEUE_DATABASE_ERRORS,
                &[("operation", "renew_leases")],
            );
            petrel_metrics::registry().increment(petrel_metrics::QUEUE_LEASE_RENEWAL_FAILURES, &[]);
            if !was_failing {
                tracing::warn!(leases = count, %error, "cannot renew this node's leases; other nodes take the messages over when they run out");
            }
            true
        }
    }
}
