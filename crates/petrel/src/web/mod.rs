//! The `[http]` server of `petrel serve`: the reply-code reference as web pages,
//! `/metrics` in the Prometheus text format (`metrics.rs`), the MTA-STS policy of our own
//! domains at `/.well-known/mta-sts.txt` when `[http.mta_sts]` gives one, and the JSON API
//! under `/api/v1/` when `[http] api_token_file` gives a token (`api.rs`).
//!
//! A small HTTP/1.1 server written by hand over tokio: one request per connection (GET or
//! HEAD; POST only for the bounce form at `/explain`, its body at most 1 MiB), its head read
//! within 16 KiB and 10 seconds, the answer sent with Content-Length and
//! `Connection: close`. The pages are server-rendered HTML that needs no JavaScript, in
//! English or (with `?lang=id`) Indonesian. See `pages.rs` for which path shows what.

pub mod api;
mod bounce;
mod compare;
mod entry;
mod guides;
mod html;
mod http;
mod markdown;
mod metrics;
mod pages;
mod words;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use http::{MAX_HEAD, Method, Response};

/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sending the answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many connections are served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;

/// The largest form body (a pasted bounce) the server reads.
const MAX_FORM: usize = 1024 * 1024;
/// How long a client may take to send a form body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where senders fetch an MTA-STS policy (RFC 8461 §3.2).
const MTA_STS_PATH: &str = "/.well-known/mta-sts.txt";

/// Serves HTTP on `listener` until the task is dropped; `mta_sts` is the policy file to serve,
/// `api` the JSON API when a token is configured.
pub async fn serve(
    listener: TcpListener,
    queue: Arc<dyn petrel_queue::Queue>,
    mta_sts: Option<Arc<String>>,
    api: Option<Arc<api::Api>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let (queue, mta_sts, api) = (queue.clone(), mta_sts.clone(), api.clone());
                tokio::spawn(async move {
                    handle(stream, queue, mta_sts, api).await;
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

/// Reads one request from `stream`, answers it and closes the connection.
async fn handle(
    mut stream: TcpStream,
    queue: Arc<dyn petrel_queue::Queue>,
    mta_sts: Option<Arc<String>>,
    api: Option<Arc<api::Api>>,
) {
    let (response, head_only) =
        match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
            Err(_) => (
                Some(pages::refused(408, "the request head took too long")),
                false,
            ),
            Ok(Head::Closed) => (None, false),
            Ok(Head::TooLarge) => (
                Some(pages::refused(
                    431,
                    "the request head is larger than 16 KiB",
                )),
                false,
            ),
            Ok(Head::Complete(bytes, rest)) => match http::parse_head(&bytes) {
                Ok(request) if request.path.starts_with("/api/") => {
                    let response = match &api {
                        // The API's requests have no body worth reading.
                        Some(api) if request.content_length.unwrap_or(0) <= MAX_FORM => {
                            api::respond(&request, api).await
                        }
                        Some(_) => pages::refused(413, "the request body is too large"),
                        None => pages::refused(404, "the API is off ([http] api_token_file)"),
                    };
                    debug!(path = %request.path, status = response.status, "http api request");
                    (Some(response), request.method == Method::Head)
                }
                Ok(request) if request.method == Method::Delete => (
                    Some(pages::refused(405, "DELETE is only for the API")),
                    false,
                ),
                Ok(request) if request.method == Method::Post => {
                    (Some(post(&mut stream, request, rest).await), false)
                }
                Ok(request) => {
                    let response = if request.path == "/metrics" {
                        metrics::respond(queue).await
                    } else if let Some(policy) = mta_sts.filter(|_| request.path == MTA_STS_PATH) {
                        Response::text("text/plain", policy.as_str().to_owned())
                    } else {
                        pages::respond(&request)
                    };
                    debug!(path = %request.path, status = response.status, "http request");
                    (Some(response), request.method == Method::Head)
                }
                Err(rejection) => (
                    Some(pages::refused(rejection.status, rejection.reason)),
                    false,
                ),
            },
        };
    if let Some(response) = response {
        send(&mut stream, &response, head_only).await;
    }
}

/// A POST: the bounce form's body read (at most `MAX_FORM`, within `BODY_TIMEOUT`) and
/// answered; any other path is 405.
async fn post(stream: &mut TcpStream, mut request: http::Request, rest: Vec<u8>) -> Response {
    if request.path != "/explain" {
        return pages::refused(405, "only the bounce form at /explain takes POST");
    }
    let Some(length) = request.content_length else {
        return pages::refused(411, "send the form with a Content-Length");
    };
    if length > MAX_FORM {
        return pages::refused(413, "the form is larger than 1 MiB");
    }
    let mut body = rest;
    let read = tokio::time::timeout(BODY_TIMEOUT, async {
        let mut chunk = [0u8; 8192];
        while body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => body.extend_from_slice(&chunk[..read]),
            }
        }
        true
    })
    .await;
    if !matches!(read, Ok(true)) {
        return pages::refused(400, "the form body ended early or took too long");
    }
    body.truncate(length);
    request.body = body;
    let response = pages::respond_post(&request);
    debug!(path = %request.path, status = response.status, "http request");
    response
}

/// What reading a request head gave.
enum Head {
    /// The head, up to and including its empty line, and the bytes read after it.
    Complete(Vec<u8>, Vec<u8>),
    /// More than `MAX_HEAD` bytes without an empty line.
    TooLarge,
    /// The client closed (or the connection failed) before sending anything.
    Closed,
}

async fn read_head(stream: &mut TcpStream) -> Head {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buffer.iter().all(u8::is_ascii_whitespace) => {
                return Head::Closed;
            }
            // A partial head, then the end: answer it (it fails to parse, so a 400).
            Ok(0) | Err(_) => return Head::Complete(buffer, Vec::new()),
            Ok(read) => read,
        };
        buffer.extend_from_slice(&chunk[..read]);
        match http::head_end(&buffer) {
            Some(end) if end <= MAX_HEAD => {
                let rest = buffer.split_off(end);
                return Head::Complete(buffer, rest);
            }
            Some(_) => return Head::TooLarge,
            None => {}
        }
        if buffer.len() > MAX_HEAD {
            return Head::TooLarge;
        }
    }
}

/// Writes `response`, closes our side, and lets the client's remaining bytes drain briefly so
/// the close does not reset the connection before the client has read the answer.
async fn send(stream: &mut TcpStream, response: &Response, head_only: bool) {
    let bytes = response.to_bytes(head_only);
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    })
    .await;
}
