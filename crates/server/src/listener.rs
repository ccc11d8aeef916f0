//! The accept loop of one listener: a bounded number of concurrent sessions
//! (`limits.max_connections`), each in its own task, until the server drains.
//!
//! A client over the limit gets 421 4.7.0 and is closed. Accept errors (such as running out of
//! file descriptors) are logged and retried after a pause; they never end the listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use petrel_proto::standard;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::connection::serve_connection;
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

/// Accepts connections until the lifecycle leaves `Running`. `connections` holds one permit
/// per session allowed at once, shared by all listeners; the caller waits for them to return.
/// `milters` names the `[[milter]]`s its sessions are asked by (`None`: all of them).
pub async fn run_listener(
    listener: TcpListener,
    protocol: Protocol,
    milters: Option<Arc<[String]>>,
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
        let ip_slot = {
            let settings = server.settings.borrow();
            if settings.policy.is_relay_client(peer.ip()) {
                None
            } else if !server.within_rate(&settings, peer.ip(), RateKind::Connection) {
                warn!(%peer, "connection rate exceeded");
                refuse(stream, standard::TOO_MANY_CONNECTIONS_PER_MINUTE.reply());
                continue;
            } else {
                match server
                    .per_ip
                    .acquire(peer.ip(), settings.max_connections_per_ip)
                {
                    Some(slot) => Some(slot),
                    None => {
                        warn!(%peer, "too many connections from this address");
                        limited("max_connections_per_ip");
                        refuse(stream, standard::TOO_MANY_CONNECTIONS_FROM_ADDRESS.reply());
                        continue;
                    }
                }
            }
        };
        let session_id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let server = server.clone();
        let milters = milters.clone();
        let registry = petrel_metrics::registry();
        let labels = [("protocol", protocol.as_str())];
        registry.increment(petrel_metrics::SMTP_CONNECTIONS, &labels);
        registry.add(petrel_metrics::SMTP_CONNECTIONS_OPEN, &labels, 1);
        tokio::spawn(async move {
            let mut stream = stream;
            let door = if protocol == Protocol::Smtp {
                let mut door = at_the_door(&server, &mut stream, peer.ip()).await;
                if door.refusal.is_none() {
                    door.refusal = reverse_dns_refusal(&server, peer.ip()).await;
                }
                door
            } else {
                crate::screen::Door::default()
            };
            if let Some(stream) = open_stream(&server, stream, protocol).await {
                let listening = crate::connection::Listening { protocol, milters };
                serve_connection(server, stream, peer, session_id, listening, door).await;
            }
            registry.add(petrel_metrics::SMTP_CONNECTIONS_OPEN, &labels, -1);
            drop(permit);
            drop(ip_slot);
        });
    }
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
