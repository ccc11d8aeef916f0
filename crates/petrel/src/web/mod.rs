//! The `[http]` server of `petrel serve`: the reply-code reference as web pages,
//! `/metrics` in the OpenMetrics text format (`metrics.rs`), the MTA-STS policy of our own
//! domains at `/.well-known/mta-sts.txt` when `[http.mta_sts]` gives one, and the JSON API
//! under `/api/v1/` when `[http] api_token_file` gives a token (`api.rs`), and the queue
//! console under `/queue/` when `[http] console` is on (`console/`).
//!
//! HTTP/1.1 by hyper (issue 19, item 1), over TLS with the `[tls]` certificates (SNI) when
//! `[http] tls` is on: keep-alive, a request head within 16 KiB and 10
//! seconds (hyper answers 431 and 400 itself), at most 256 connections at once and 5 minutes
//! each; GET and HEAD for the pages, POST for the bounce form at `/explain` (its body at most
//! 1 MiB) and the API, DELETE for the API. The pages are server-rendered HTML that needs no
//! JavaScript, in English or (under `/id/`) Indonesian. See `pages.rs` for which path shows
//! what, `http.rs` for the request and response as the pages see them.

pub mod api;
mod bounce;
mod compare;
pub mod console;
mod entry;
mod guides;
mod html;
mod http;
mod markdown;
mod metrics;
mod pages;
mod words;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE, HOST, ORIGIN, REFERER};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use http::{MAX_HEAD, Method, Response};

/// How long a client may take to send a request head (also the longest idle time between
/// requests on a kept-alive connection).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may last, its requests together.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);
/// How many connections are served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;

/// The largest form body (a pasted bounce) the server reads.
const MAX_FORM: usize = 1024 * 1024;
/// The largest console form (a login, an action).
const MAX_CONSOLE_FORM: usize = 16 * 1024;
/// How long a client may take to send a form body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where senders fetch an MTA-STS policy (RFC 8461 §3.2).
const MTA_STS_PATH: &str = "/.well-known/mta-sts.txt";

/// What the requests are answered from.
struct State {
    queue: Arc<dyn petrel_queue::Queue>,
    extras: Extras,
}

/// What the server answers besides the reference pages and `/metrics`.
pub struct Extras {
    /// The MTA-STS policy file to serve.
    pub mta_sts: Option<Arc<String>>,
    /// The JSON API, when a token is configured.
    pub api: Option<Arc<api::Api>>,
    /// The queue console, when `[http] console` is on.
    pub console: Option<Arc<console::Console>>,
    /// HTTPS with the certificates of these settings (`[http] tls`), read at each connection
    /// so that a SIGHUP's new certificates are used.
    pub tls: Option<watch::Receiver<Arc<petrel_server::ServerSettings>>>,
}

/// Serves HTTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, queue: Arc<dyn petrel_queue::Queue>, extras: Extras) {
    let state = Arc::new(State { queue, extras });
    // The HTTPS configuration: the mail listeners' certificates offered for HTTP/1.1 only
    // (ALPN), so that a TLS session cannot be taken across to another protocol; made again
    // only when a reload brought new certificates.
    let mut https: Option<(Arc<rustls::ServerConfig>, Arc<rustls::ServerConfig>)> = None;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let tls = state.extras.tls.as_ref().map(|settings| {
                    let current = settings.borrow().tls.clone()?;
                    match &https {
                        Some((source, made)) if Arc::ptr_eq(source, &current) => Some(made.clone()),
                        _ => {
                            let mut config = rustls::ServerConfig::clone(&current);
                            config.alpn_protocols = vec![b"http/1.1".to_vec()];
                            let made = Arc::new(config);
                            https = Some((current, made.clone()));
                            Some(made)
                        }
                    }
                });
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, async {
                        match tls {
                            None => connection(stream, peer.ip(), state).await,
                            Some(Some(config)) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                                match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream))
                                    .await
                                {
                                    Ok(Ok(stream)) => connection(stream, peer.ip(), state).await,
                                    Ok(Err(error)) => debug!(%error, "https: handshake failed"),
                                    Err(_) => debug!("https: handshake timed out"),
                                }
                            }
                            Some(None) => warn!("https: [tls] has no certificate now"),
                        }
                    })
                    .await;
                    drop(slot);
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(%error, "http: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves the requests of one connection (plain or TLS) until it ends.
async fn connection<S>(stream: S, peer: std::net::IpAddr, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(answer(request, peer, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Answers one request (hyper has read and checked its head).
async fn answer(
    request: hyper::Request<Incoming>,
    peer: std::net::IpAddr,
    state: &State,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let is_head = parts.method == hyper::Method::HEAD;
    let response = match read_request(&parts, peer) {
        Ok(request) => route(request, body, state).await,
        Err(refusal) => refusal,
    };
    debug!(path = %parts.uri.path(), status = response.status, "http request");
    to_hyper(response, is_head)
}

/// Our view of a request head: method, decoded path and query, the fields we read.
fn read_request(
    parts: &hyper::http::request::Parts,
    peer: std::net::IpAddr,
) -> Result<http::Request, Response> {
    let method = match parts.method {
        hyper::Method::GET => Method::Get,
        hyper::Method::HEAD => Method::Head,
        hyper::Method::POST => Method::Post,
        hyper::Method::DELETE => Method::Delete,
        _ => {
            return Err(pages::refused(
                405,
                "only GET, HEAD, POST and DELETE are allowed",
            ));
        }
    };
    if parts.version == hyper::Version::HTTP_11 && !parts.headers.contains_key(HOST) {
        return Err(pages::refused(
            400,
            "an HTTP/1.1 request needs a Host field",
        ));
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let (path, query) = http::parse_target(target)
        .map_err(|rejection| pages::refused(rejection.status, rejection.reason))?;
    let text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &hyper::header::HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    Ok(http::Request {
        method,
        path,
        query,
        content_length: text(CONTENT_LENGTH).and_then(|l| l.trim().parse().ok()),
        authorization: text(AUTHORIZATION),
        cookie: text(COOKIE),
        origin: text(ORIGIN).or_else(|| text(REFERER)),
        host: text(HOST),
        peer: Some(peer),
        body: Vec::new(),
    })
}

async fn route(mut request: http::Request, body: Incoming, state: &State) -> Response {
    if request.path == "/queue" || request.path.starts_with("/queue/") {
        let Some(console) = &state.extras.console else {
            return pages::refused(404, "the queue console is off ([http] console)");
        };
        if request.method == Method::Post {
            match read_body(&mut request, body, MAX_CONSOLE_FORM).await {
                Ok(()) => {}
                Err(refusal) => return refusal,
            }
        }
        return console::respond(&request, console).await;
    }
    if request.path.starts_with("/api/") {
        return match &state.extras.api {
            Some(api) => api::respond(&request, api).await,
            None => pages::refused(404, "the API is off ([http] api_token_file)"),
        };
    }
    match request.method {
        Method::Delete => pages::refused(405, "DELETE is only for the API"),
        Method::Post => post(request, body).await,
        Method::Get | Method::Head => {
            if request.path == "/metrics" {
                metrics::respond(state.queue.clone()).await
            } else if let Some(policy) = state
                .extras
                .mta_sts
                .as_ref()
                .filter(|_| request.path == MTA_STS_PATH)
            {
                Response::text("text/plain", policy.as_str().to_owned())
            } else {
                pages::respond(&request)
            }
        }
    }
}

/// A POST: the bounce form's body read and answered; any other path is 405.
async fn post(mut request: http::Request, body: Incoming) -> Response {
    if request.path != "/explain" {
        return pages::refused(405, "only the bounce form at /explain takes POST");
    }
    match read_body(&mut request, body, MAX_FORM).await {
        Ok(()) => pages::respond_post(&request),
        Err(refusal) => refusal,
    }
}

/// Reads a form body of at most `limit` octets, within `BODY_TIMEOUT`, into `request.body`.
async fn read_body(
    request: &mut http::Request,
    body: Incoming,
    limit: usize,
) -> Result<(), Response> {
    let too_large = || pages::refused(413, "the form is larger than this server takes");
    if request.content_length.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    match read {
        Ok(Ok(collected)) => {
            request.body = collected.to_bytes().to_vec();
            Ok(())
        }
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        _ => Err(pages::refused(
            400,
            "the form body ended early or took too long",
        )),
    }
}

/// Our response as hyper's, with the header fields every answer carries.
fn to_hyper(response: Response, is_head: bool) -> hyper::Response<Full<Bytes>> {
    let length = response.body.len();
    let body = if is_head {
        Full::new(Bytes::new())
    } else {
        Full::new(Bytes::from(response.body.into_bytes()))
    };
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("Content-Type", response.content_type)
        .header("Content-Length", length)
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", http::CONTENT_SECURITY_POLICY);
    // Defaults a response may set otherwise (the console: no-store, same-origin).
    for (name, value) in [
        ("Cache-Control", "no-cache"),
        ("Referrer-Policy", "no-referrer"),
    ] {
        if !response.headers.iter().any(|(n, _)| *n == name) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in &response.headers {
        // Values are built from encoded text; a stray control character is dropped.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        builder = builder.header(*name, value);
    }
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
