//! Inbound TLS handshakes (STARTTLS and implicit TLS), bounded (issue 18, item 3): at most
//! `limits.max_tls_handshakes` run at once and the others wait for a slot; the wait and the
//! handshake are each bounded by `limits.tls_handshake_timeout`, so a client that opens a
//! handshake and stalls (a TLS slowloris) is dropped instead of holding its session, a slot
//! or the CPU of a flood of handshakes. Shown as the gauges `petrel_tls_handshakes_running` and
//! `petrel_tls_handshakes_waiting`.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::Server;

/// Why a handshake did not give a TLS stream.
#[derive(Debug)]
pub enum HandshakeError {
    /// No slot, or no finished handshake, within `limits.tls_handshake_timeout`.
    TimedOut,
    /// The handshake failed (the client's error or ours).
    Failed(std::io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::TimedOut => f.write_str("the TLS handshake timed out"),
            HandshakeError::Failed(error) => write!(f, "{error}"),
        }
    }
}

/// One gauge raised while it lives (a dropped future lowers it too).
struct Raised(&'static str);

impl Raised {
    fn new(name: &'static str) -> Raised {
        petrel_metrics::registry().add(name, &[], 1);
        Raised(name)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        petrel_metrics::registry().add(self.0, &[], -1);
    }
}

/// Runs the server side of a handshake on `tcp` with `config`, within the bounds.
///
/// # Errors
/// `TimedOut`, or `Failed` with the handshake's error.
pub async fn accept(
    server: &Server,
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    let timeout = server.settings.borrow().tls_handshake_timeout;
    let waiting = Raised::new(petrel_metrics::TLS_HANDSHAKES_WAITING);
    let _slot = match tokio::time::timeout(timeout, server.tls_handshakes.acquire()).await {
        Ok(Ok(slot)) => slot,
        Ok(Err(_)) => {
            return Err(HandshakeError::Failed(std::io::Error::other(
                "the server is stopping",
            )));
        }
        Err(_) => return Err(HandshakeError::TimedOut),
    };
    drop(waiting);
    let _running = Raised::new(petrel_metrics::TLS_HANDSHAKES_RUNNING);
    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result.map_err(HandshakeError::Failed),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}
