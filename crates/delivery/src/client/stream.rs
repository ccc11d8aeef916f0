//! The byte stream under a client session: TCP, a Unix socket (LMTP), or TLS over TCP after
//! STARTTLS or from the first byte; and opening TCP and Unix connections within a time limit,
//! failing with a typed `Broken` (refused, timed out, unreachable).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use petrel_queue::status::ConnectProblem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use super::connection::Broken;

/// The byte stream of one session.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// One end of an in-memory pipe: the client and server sessions paired without sockets.
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
}

impl Stream {
    pub async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buffer).await,
            Stream::Unix(stream) => stream.read(buffer).await,
            Stream::Tls(stream) => stream.read(buffer).await,
            #[cfg(test)]
            Stream::Memory(stream) => stream.read(buffer).await,
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.write_all(bytes).await,
            Stream::Unix(stream) => stream.write_all(bytes).await,
            Stream::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            #[cfg(test)]
            Stream::Memory(stream) => stream.write_all(bytes).await,
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown().await,
            Stream::Unix(stream) => stream.shutdown().await,
            Stream::Tls(stream) => stream.shutdown().await,
            #[cfg(test)]
            Stream::Memory(stream) => stream.shutdown().await,
        };
    }
}

/// The record's name for why a connect failed.
fn connect_problem(error: &io::Error) -> ConnectProblem {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectProblem::Refused,
        io::ErrorKind::TimedOut => ConnectProblem::Timeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ConnectProblem::Unreachable
        }
        _ => ConnectProblem::Other,
    }
}

/// Connects to `target` within `limit`, from `source` when it is of the same family.
///
/// # Errors
/// A `Broken` with the connect problem.
pub async fn connect_tcp(
    target: SocketAddr,
    source: Option<IpAddr>,
    limit: Duration,
) -> Result<TcpStream, Broken> {
    let source = source.filter(|s| s.is_ipv4() == target.is_ipv4());
    let connect = async {
        let Some(source) = source else {
            return TcpStream::connect(target).await;
        };
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(target).await
    };
    match timeout(limit, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(Broken::connect(connect_problem(&error), error.to_string())),
        Err(_) => Err(Broken::connect(ConnectProblem::Timeout, "timed out")),
    }
}

/// Connects to `host:port` (a name or an address), trying each address the name resolves to
/// in turn, each within `limit`; gives the stream and the address it reached.
///
/// # Errors
/// A `Broken`: the name does not resolve, or the last address's connect problem.
pub async fn connect_any(server: &str, limit: Duration) -> Result<(TcpStream, SocketAddr), Broken> {
    let addresses: Vec<SocketAddr> = match timeout(limit, tokio::net::lookup_host(server)).await {
        Ok(Ok(found)) => found.collect(),
        _ => Vec::new(),
    };
    let mut last = Broken::connect(ConnectProblem::Other, format!("cannot resolve {server}"));
    for address in addresses {
        match connect_tcp(address, None, limit).await {
            Ok(stream) => return Ok((stream, address)),
            Err(broken) => last = broken,
        }
    }
    Err(last)
}

/// Connects to the Unix socket at `path` within `limit`.
///
/// # Errors
/// A `Broken` with the connect problem.
pub async fn connect_unix(path: &Path, limit: Duration) -> Result<UnixStream, Broken> {
    match timeout(limit, UnixStream::connect(path)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(Broken::connect(
            connect_problem(&error),
            format!("connect: {error}"),
        )),
        Err(_) => Err(Broken::connect(
            ConnectProblem::Timeout,
            "connect timed out",
        )),
    }
}
