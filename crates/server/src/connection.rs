//! The connection driver: runs one `proto` server session over a TCP stream.
//!
//! Reads with the idle timeout (S-SESS-13), writes pending replies whenever the session has
//! drained its input (S-PIPE-2), answers MAIL/RCPT from the policy and stores messages through
//! `receive`. Watches the server's lifecycle for shutdown (S-SESS-9). Handles an untrusted peer:
//! IO errors end this session only; a dropped connection abandons its open transaction
//! (S-SESS-14).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use petrel_proto::address::ForwardPath;
use petrel_proto::{Event, Reply, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::nullmx::{check_recipient, check_sender};
use crate::receive::store_message;
use crate::{Lifecycle, Server, ServerSettings};

/// Octets read from the socket at once.
const READ_BUFFER_BYTES: usize = 8192;

/// Serves one client until QUIT, 421, timeout or disconnect.
pub async fn serve_connection(
    server: Arc<Server>,
    mut stream: TcpStream,
    peer: SocketAddr,
    session_id: u64,
) {
    let client = peer.ip();
    let settings = server.settings.borrow().clone();
    let mut session = ServerSession::new(settings.session_for(client));
    let mut lifecycle = server.lifecycle.clone();
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    debug!(session = session_id, %peer, "connected");
    loop {
        match session.poll() {
            Event::NeedInput => {
                if write_output(&mut stream, &mut session).await.is_err() {
                    return;
                }
                let idle = server.settings.borrow().idle_timeout;
                tokio::select! {
                    read = tokio::time::timeout(idle, stream.read(&mut buffer)) => match read {
                        Err(_) => {
                            info!(session = session_id, %peer, "idle timeout");
                            session.idle_timeout();
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            debug!(session = session_id, %peer, "disconnected");
                            return;
                        }
                        Ok(Ok(count)) => session.receive(&buffer[..count]),
                    },
                    changed = lifecycle.changed() => {
                        let phase = if changed.is_ok() { *lifecycle.borrow() } else { Lifecycle::Stopping };
                        apply_lifecycle(&mut session, phase);
                    }
                }
            }
            Event::Mail(request) => {
                let settings = server.settings.borrow().clone();
                match check_sender(&server.resolver, &settings, &request.reverse_path).await {
                    Ok(()) => session.accept(),
                    Err(reply) => {
                        info!(session = session_id, %peer, sender = %request.reverse_path, reply = %reply, meaning = %title(&reply), "sender refused");
                        session.refuse(reply);
                    }
                }
            }
            Event::Rcpt(request) => {
                let settings = server.settings.borrow().clone();
                match decide_recipient(&server, &settings, client, &request.forward_path).await {
                    Ok(()) => session.accept(),
                    Err(reply) => {
                        info!(session = session_id, %peer, recipient = %request.forward_path, reply = %reply, meaning = %title(&reply), "recipient refused");
                        session.refuse(reply);
                    }
                }
            }
            Event::Message(message) => {
                let hostname = settings.session.hostname.clone();
                let sender = message.reverse_path.to_string();
                let count = message.recipients.len();
                let size = message.content.len();
                let stored = store_message(server.queue.clone(), message, client, &hostname).await;
                match (&stored.queue_id, &stored.error) {
                    (Some(id), _) => {
                        info!(session = session_id, queue_id = %id, %peer, sender = %sender, recipients = count, size, "queued");
                        (server.on_queued)(id.clone());
                    }
                    (None, error) => {
                        warn!(session = session_id, %peer, error = ?error, reply = %stored.reply, meaning = %title(&stored.reply), "message not queued");
                    }
                }
                session.finish_message(stored.reply);
                if *lifecycle.borrow() != Lifecycle::Running {
                    apply_lifecycle(&mut session, *lifecycle.borrow());
                }
            }
            Event::Close => {
                let _ = write_output(&mut stream, &mut session).await;
                let _ = stream.shutdown().await;
                debug!(session = session_id, %peer, "closed");
                return;
            }
        }
    }
}

/// Local and relay policy first, then the null-MX check of a relayed domain.
async fn decide_recipient(
    server: &Server,
    settings: &ServerSettings,
    client: IpAddr,
    path: &ForwardPath,
) -> Result<(), Reply> {
    settings.policy.check_recipient(client, path)?;
    check_recipient(&server.resolver, settings, path).await
}

/// The reference's short title of a reply, for log lines.
fn title(reply: &Reply) -> String {
    let enhanced = reply.enhanced.map(|e| e.to_string());
    petrel_catalogue::short_title(reply.code, enhanced.as_deref()).unwrap_or_default()
}

fn apply_lifecycle(session: &mut ServerSession, phase: Lifecycle) {
    match phase {
        Lifecycle::Running => {}
        Lifecycle::Draining => {
            session.begin_shutdown();
        }
        Lifecycle::Stopping => session.end_shutdown(),
    }
}

async fn write_output(stream: &mut TcpStream, session: &mut ServerSession) -> std::io::Result<()> {
    let output = session.take_output();
    if output.is_empty() {
        return Ok(());
    }
    stream.write_all(&output).await
}
