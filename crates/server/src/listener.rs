//! The accept loop of one listener: a bounded number of concurrent sessions
//! (`limits.max_connections`), each in its own task, until the server drains.
//!
//! On a listener with `proxy_protocol` the connection must come from its `proxy_networks` and
//! start with a PROXY header (`proxy_protocol`), and the client it names is the session's
//! peer for every check, limit and log line (a header that names no client closes it: the
//! proxy's own address, often in the relay networks, never stands in).
//!
//! A client over the limit gets 421 4.7.0 and is closed. Accept errors (such as running out of
//! file descriptors) are logged and retried after a pause; they never end the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use petrel_proto::{Reply, standard};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::connection::{Listening, serve_connection};
use crate::network::IpNetwork;
use crate::proxy_protocol::Proxied;
use crate::rate::RateKind;
use crate::stream::Stream;
use crate::{Lifecycle, Protocol, Server};

/// Implicit TLS (RFC 8314) handshakes before the greeting; other protocols start in plaintext.
async fn open_stream(
    server: &Server,
    stream: tokio::net::TcpStream,
    protocol: Protocol,
) -> Option<Stream> {
    if protocol != Protocol::Submissions {
        return Some(Stream::Plain(stream));
    }
    let config = server.settings.borrow().tls.clone()?;
    match crate::handshake::accept(server, config, stream).await {
        Ok(tls) => {
            petrel_metrics::registry().increment(
                petrel_metrics::SMTP_TLS_SESSIONS,
                &[("direction", "inbound")],
            );
            Some(Stream::Tls(Box::new(tls)))
        }
        Err(error) => {
            tracing::info!(%error, "implicit TLS handshake failed");
            None
        }
    }
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// How long a proxy has to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the lifecycle leaves `Running`. `connections` holds one permit
/// per session allowed at once, shared by all listeners; the caller waits for them to return.
/// `listening` says what the sessions speak, which `[[milter]]`s ask them, and whether a PROXY
/// header comes first (and from which networks).
pub async fn run_listener(
    listener: TcpListener,
    listening: Listening,
    server: Arc<Server>,
    connections: Arc<Semaphore>,
) {
    let mut lifecycle = server.lifecycle.clone();
    loop {
        if *lifecycle.borrow() != Lifecycle::Running {
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = lifecycle.changed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            warn!(%peer, "too many connections");
            limited("max_connections");
            refuse(stream, standard::TOO_MANY_CONNECTIONS.reply());
            continue;
        };
        let server = server.clone();
        let listening = listening.clone();
        if let Some(networks) = listening.proxy_networks.clone() {
            // The client's address comes in the PROXY header, read in the session's own task.
            tokio::spawn(async move {
                let mut stream = stream;
                let Some(client) = proxied_client(&mut stream, peer, &networks).await else {
                    return;
                };
                match admit(&server, client) {
                    Ok(ip_slot) => {
                        run_session(server, stream, client, listening, (permit, ip_slot)).await;
                    }
                    Err(reply) => refuse(stream, reply),
                }
            });
            continue;
        }
        match admit(&server, peer) {
            Ok(ip_slot) => {
                tokio::spawn(run_session(
                    server,
                    stream,
                    peer,
                    listening,
                    (permit, ip_slot),
                ));
            }
            Err(reply) => refuse(stream, reply),
        }
    }
}

/// The PROXY header of a connection from `proxy` (issue 19): the client it names, or `None`
/// (logged) when `proxy` is not in `networks` or its header is missing, malformed or names no
/// client; the connection is then closed without a word.
async fn proxied_client(
    stream: &mut tokio::net::TcpStream,
    proxy: SocketAddr,
    networks: &[IpNetwork],
) -> Option<SocketAddr> {
    if !networks.iter().any(|network| network.contains(proxy.ip())) {
        warn!(%proxy, "a connection to a PROXY protocol listener from outside its proxy_networks: closed");
        limited("proxy_networks");
        return None;
    }
    let header = tokio::time::timeout(
        PROXY_HEADER_TIMEOUT,
        crate::proxy_protocol::read_header(stream),
    )
    .await;
    match header {
        Ok(Ok(Proxied::Client(client))) => Some(client),
        // The proxy's own address must not stand in for the client: on the proxy's host it
        // would be a relay network. (Health checks need only a TCP connection.)
        Ok(Ok(Proxied::Unknown)) => {
            warn!(%proxy, "a PROXY header that names no client (LOCAL or UNKNOWN): closed");
            None
        }
        Ok(Err(error)) => {
            warn!(%proxy, %error, "no valid PROXY header: closed");
            None
        }
        Err(_) => {
            warn!(%proxy, "no PROXY header within 10 s: closed");
            None
        }
    }
}

/// The per-client limits at connection time (relay networks exempt): the slot the client
/// takes, or the reply that refuses it.
fn admit(server: &Server, peer: SocketAddr) -> Result<Option<crate::per_ip::IpSlot>, Reply> {
    let settings = server.settings.borrow();
    if settings.policy.is_relay_client(peer.ip()) {
        return Ok(None);
    }
    if !server.within_rate(&settings, peer.ip(), RateKind::Connection) {
        warn!(%peer, "connection rate exceeded");
        return Err(standard::TOO_MANY_CONNECTIONS_PER_MINUTE.reply());
    }
    match server
        .per_ip
        .acquire(peer.ip(), settings.max_connections_per_ip)
    {
        Some(slot) => Ok(Some(slot)),
        None => {
            warn!(%peer, "too many connections from this address");
            limited("max_connections_per_ip");
            Err(standard::TOO_MANY_CONNECTIONS_FROM_ADDRESS.reply())
        }
    }
}

/// One admitted connection: the door (port 25), TLS (port 465), then the session; `held` is
/// given back when it ends. The door, the handshake and the session run as boxed futures:
/// kept inline, their states took 6 KiB of every session's task (measured with
/// `size_of_val`), boxed the task keeps 0.6 KiB beside the session's own 3 KiB.
async fn run_session(
    server: Arc<Server>,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    listening: Listening,
    held: (
        tokio::sync::OwnedSemaphorePermit,
        Option<crate::per_ip::IpSlot>,
    ),
) {
    let protocol = listening.protocol;
    let session_id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let registry = petrel_metrics::registry();
    let labels = [("protocol", protocol.as_str())];
    registry.increment(petrel_metrics::SMTP_CONNECTIONS, &labels);
    registry.add(petrel_metrics::SMTP_CONNECTIONS_OPEN, &labels, 1);
    let door = if protocol == Protocol::Smtp {
        let mut door = Box::pin(at_the_door(&server, &mut stream, peer.ip())).await;
        if door.refusal.is_none() {
            door.refusal = Box::pin(reverse_dns_refusal(&server, peer.ip())).await;
        }
        door
    } else {
        crate::screen::Door::default()
    };
    if let Some(stream) = Box::pin(open_stream(&server, stream, protocol)).await {
        Box::pin(serve_connection(
            server, stream, peer, session_id, listening, door,
        ))
        .await;
    }
    registry.add(petrel_metrics::SMTP_CONNECTIONS_OPEN, &labels, -1);
    drop(held);
}

/// The door of port 25 (relay networks and `screen.allow_networks` exempt): the DNS lists
/// (a refused greeting, S-SESS-1), then the pre-greet wait: "220-" goes out, and a client that
/// speaks before the rest of the greeting is refused at MAIL and remembered for
/// `screen.pregreet_penalty`; one that waits is remembered for `screen.pregreet_pass_ttl` and
/// greeted at once next time.
async fn at_the_door(
    server: &Server,
    stream: &mut tokio::net::TcpStream,
    client: std::net::IpAddr,
) -> crate::screen::Door {
    use crate::screen::Door;
    let listed = screen_refusal(server, client).await;
    if matches!(listed.refusal, Some(petrel_proto::Refusal::Greeting(_))) {
        return listed;
    }
    let door = pregreet(server, stream, client).await;
    Door {
        refusal: door.refusal.or(listed.refusal),
        early_input: door.early_input,
        is_allowlisted: listed.is_allowlisted,
        ip_score: listed.ip_score,
    }
}

/// The pre-greet wait and what is remembered of the client.
async fn pregreet(
    server: &Server,
    stream: &mut tokio::net::TcpStream,
    client: std::net::IpAddr,
) -> crate::screen::Door {
    use crate::screen::{Door, Remembered};
    let settings = server.settings.borrow().clone();
    let screen = &settings.screen;
    if screen.pregreet.is_zero()
        || settings.policy.is_relay_client(client)
        || screen.is_allowed(client)
    {
        return Door::default();
    }
    let caught = || {
        Some(petrel_proto::Refusal::Mail(
            standard::PREGREET_VIOLATION.reply(),
        ))
    };
    match server.door.recall(client, screen) {
        Some(Remembered::Passed) => return Door::default(),
        Some(Remembered::SpokeFirst) => {
            info!(%client, check = "pregreet", "remembered at the door (spoke before the greeting, pipelined before EHLO or sent no SMTP): its MAIL will be refused");
            petrel_metrics::registry()
                .increment(petrel_metrics::SCREEN_REFUSALS, &[("check", "pregreet")]);
            return Door {
                refusal: caught(),
                ..Door::default()
            };
        }
        None => {}
    }
    let mut first = Vec::new();
    standard::GREETING
        .with_text(format!("{} ESMTP", settings.session.hostname))
        .render_continued(&mut first);
    if stream.write_all(&first).await.is_err() {
        return Door::default();
    }
    let mut early = vec![0_u8; 4096];
    match tokio::time::timeout(
        screen.pregreet,
        tokio::io::AsyncReadExt::read(stream, &mut early),
    )
    .await
    {
        Ok(Ok(count)) if count > 0 => {
            early.truncate(count);
            server.door.remember(client, Remembered::SpokeFirst, screen);
            warn!(%client, check = "pregreet", "refused at the door: spoke before the greeting");
            petrel_metrics::registry()
                .increment(petrel_metrics::SCREEN_REFUSALS, &[("check", "pregreet")]);
            Door {
                refusal: caught(),
                early_input: early,
                ..Door::default()
            }
        }
        // Waited (or hung up): remembered as having waited only when it did wait.
        Err(_) => {
            server.door.remember(client, Remembered::Passed, screen);
            Door::default()
        }
        _ => Door::default(),
    }
}

/// Forward-confirmed reverse DNS of a port-25 client (`screen.fcrdns`; relay networks and
/// `screen.allow_networks` exempt): the refusal its MAIL gets, if any.
async fn reverse_dns_refusal(
    server: &Server,
    client: std::net::IpAddr,
) -> Option<petrel_proto::Refusal> {
    use crate::screen::{Fcrdns, ReverseDns};
    let settings = server.settings.borrow().clone();
    let mode = settings.screen.fcrdns;
    if mode == Fcrdns::Off
        || settings.policy.is_relay_client(client)
        || settings.screen.is_allowed(client)
    {
        return None;
    }
    let found = crate::screen::forward_confirmed(&server.resolver, client).await;
    let reply = match (&found, mode) {
        (ReverseDns::Confirmed(_), _) | (_, Fcrdns::Log) | (_, Fcrdns::Off) => None,
        (ReverseDns::Unconfirmed, Fcrdns::Reject) => Some(standard::REVERSE_DNS_FAILED.reply()),
        _ => Some(standard::REVERSE_DNS_FAILED_TRANSIENT.reply()),
    };
    match &found {
        ReverseDns::Confirmed(name) => tracing::debug!(%client, %name, "reverse DNS confirmed"),
        ReverseDns::Unconfirmed => {
            tracing::info!(%client, check = "fcrdns", refused = reply.is_some(), "reverse DNS does not confirm the client's address")
        }
        ReverseDns::Failed(why) => {
            tracing::info!(%client, check = "fcrdns", refused = reply.is_some(), "reverse DNS could not be checked: {why}")
        }
    }
    if reply.is_some() {
        petrel_metrics::registry()
            .increment(petrel_metrics::SCREEN_REFUSALS, &[("check", "fcrdns")]);
    }
    reply.map(petrel_proto::Refusal::Mail)
}

/// The DNS lists' verdict on a port-25 client (relay networks and `screen.allow_networks`
/// exempt): the refusal when its score reaches the threshold.
async fn screen_refusal(server: &Server, client: std::net::IpAddr) -> crate::screen::Door {
    use crate::screen::Door;
    let settings = server.settings.borrow().clone();
    let screen = &settings.screen;
    if !screen.has_lists() || settings.policy.is_relay_client(client) || screen.is_allowed(client) {
        return Door::default();
    }
    let deadline = Duration::from_secs(5);
    let score = crate::screen::score(&server.resolver, screen, client, deadline).await;
    if score.total < screen.threshold {
        if !score.listed_by.is_empty() {
            tracing::info!(%client, score = score.total, lists = %score.listed_by.join(" "), "DNS lists: under the threshold; accepted");
        }
        return Door {
            is_allowlisted: score.is_allowlisted,
            ip_score: score.total,
            ..Door::default()
        };
    }
    let lists = score.listed_by.join(", ");
    warn!(%client, score = score.total, %lists, check = "dnsbl", "refused at the door: listed");
    petrel_metrics::registry().increment(petrel_metrics::SCREEN_REFUSALS, &[("check", "dnsbl")]);
    let text = format!("Service unavailable; client [{client}] blocked using {lists}");
    let refusal = if screen.refuses_at_rcpt {
        petrel_proto::Refusal::Recipient(standard::DNSBL_LISTED_AT_RCPT.with_text(text))
    } else {
        petrel_proto::Refusal::Greeting(standard::DNSBL_LISTED.with_text(text))
    };
    Door {
        refusal: Some(refusal),
        ..Door::default()
    }
}

/// Counts a refusal by a named limit (`/metrics`).
pub fn limited(limit: &str) {
    petrel_metrics::registry().increment(petrel_metrics::RATE_LIMITED, &[("limit", limit)]);
}

/// Answers a connection that gets no session with `reply` and closes it, in its own task.
fn refuse(mut stream: tokio::net::TcpStream, reply: petrel_proto::Reply) {
    tokio::spawn(async move {
        let mut out = Vec::new();
        reply.render(&mut out);
        crate::connection::count_replies_sent(&out);
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    });
}
