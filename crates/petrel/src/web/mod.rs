//! The `[http]` server of `petrel serve`: the reply-code reference as web pages.

use tokio::net::TcpListener;

/// Serves HTTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let _ = listener;
}
