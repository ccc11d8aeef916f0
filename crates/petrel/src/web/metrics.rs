//! `/metrics`: the process's counters (petrel-metrics) and the queue gauges, computed at each
//! scrape from the queue's listing (the age of a message is read from its id, which starts with
//! its arrival time), in the OpenMetrics text format.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use petrel_metrics::{QUEUE_MESSAGES, QUEUE_OLDEST_AGE, registry};

use super::http::Response;

/// The exposition.
pub async fn respond(queue: Arc<dyn petrel_queue::Queue>) -> Response {
    let listing = tokio::task::spawn_blocking(move || queue.list()).await;
    if let Ok(Ok(ids)) = listing {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let oldest = ids
            .iter()
            .filter_map(petrel_queue::QueueId::arrival_unix_seconds)
            .min()
            .map_or(0, |arrival| now.saturating_sub(arrival));
        let registry = registry();
        registry.set(
            QUEUE_MESSAGES,
            &[],
            i64::try_from(ids.len()).unwrap_or(i64::MAX),
        );
        registry.set(
            QUEUE_OLDEST_AGE,
            &[],
            i64::try_from(oldest).unwrap_or(i64::MAX),
        );
    }
    Response::text(petrel_metrics::CONTENT_TYPE, registry().render())
}
