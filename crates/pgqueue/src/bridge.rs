//! The bridge between the synchronous `Queue` trait and the asynchronous PostgreSQL client:
//! a small runtime of its own on a thread named `petrel-pg`, and `Bridge::run`, which hands it
//! one future and blocks the calling thread until the answer comes back.
//!
//! Why a runtime of its own: the trait is called from blocking threads, from the CLI (no
//! runtime at all) and now and then from a runtime worker; blocking on a channel is allowed in
//! all three, entering another runtime's `block_on` is not. The connections' tasks live here,
//! so they keep running while callers wait.
//!
//! Failure policy: a future that does not finish within `OPERATION_TIMEOUT`, or a runtime that
//! is gone, is a transient `QueueError::Io`: never a hang, never a panic.

use std::future::Future;
use std::io;
use std::time::Duration;

use petrel_queue::QueueError;

/// The longest one queue operation may take before it counts as failed (a database that does
/// not answer must turn into 451 4.3.0, not a client left waiting).
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// A handle on the `petrel-pg` runtime; the runtime stops once the `Bridge` is dropped and
/// the operations it started have finished (each holds a clone of `alive`).
pub(crate) struct Bridge {
    handle: tokio::runtime::Handle,
    alive: std::sync::Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Bridge {
    /// Starts the runtime thread.
    pub(crate) fn start() -> Result<Bridge, QueueError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("petrel-pg".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("petrel-pg")
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready_tx.send(Ok(runtime.handle().clone()));
                        runtime.block_on(async {
                            let _ = stop_rx.await;
                        });
                        runtime.shutdown_background();
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            })?;
        let handle = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the database runtime did not start"))??;
        Ok(Bridge {
            handle,
            alive: std::sync::Arc::new(stop_tx),
        })
    }

    /// The runtime, for background tasks (lease renewal, LISTEN).
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `work` on the runtime and waits for its result, at most `OPERATION_TIMEOUT`.
    pub(crate) fn run<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(work, move |result| {
            let _ = tx.send(result);
        });
        rx.recv()
            .map_err(|_| QueueError::Io(io::Error::other("the database runtime stopped")))?
    }

    /// Runs `work` on the runtime and hands its result to `done` there, without waiting.
    pub(crate) fn spawn<T, F>(
        &self,
        work: F,
        done: impl FnOnce(Result<T, QueueError>) + Send + 'static,
    ) where
        T: Send + 'static,
        F: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        let alive = self.alive.clone();
        self.handle.spawn(async move {
            let _alive = alive;
            let result = match tokio::time::timeout(OPERATION_TIMEOUT, work).await {
                Ok(result) => result,
                Err(_) => Err(QueueError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the database did not answer in time",
                ))),
            };
            done(result);
        });
    }
}
