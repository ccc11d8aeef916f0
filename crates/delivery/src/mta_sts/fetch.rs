//! The HTTPS GET of a policy file (RFC 8461 §3.3, C-STS-1): `https://mta-sts.<domain>` at
//! `/.well-known/mta-sts.txt`, over TLS whose certificate must be valid for that name (PKIX,
//! with the trust anchors of delivery), HTTP/1.1 by hyper, 200 only (redirects are never
//! followed), `text/plain`, at most 64 KiB, all within 30 seconds.
//!
//! The policy host's name is resolved by petrel's own resolver (the same DNS delivery asks).
//! Every failure is a typed `FetchError` whose kind maps to the result types of TLS reporting
//! (RFC 8460 §4.3: `sts-policy-fetch-error`, `sts-webpki-invalid`); nothing here panics on
//! what a server sends.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use petrel_dns::{AddressAnswer, Resolver};
use petrel_queue::status::{Cause, TlsProblem};

use crate::client::stream::connect_tcp;
use crate::client::{Stream, TlsClient};

/// Where the policy lives on its host (§3.2).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// The largest policy file read (§3.2 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The whole fetch, from the address lookup to the last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HTTPS_PORT: u16 = 443;

/// Why a policy could not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchProblem {
    /// `mta-sts.<domain>` has no address, or its lookup failed.
    Dns,
    /// No address of the policy host could be connected to.
    Connect,
    /// The certificate is not valid for `mta-sts.<domain>` (`sts-webpki-invalid`).
    Certificate,
    /// The TLS handshake failed for another reason.
    Handshake,
    /// Not an HTTP 200 `text/plain` answer of at most 64 KiB (a redirect among them).
    Http,
    /// The fetch took longer than `FETCH_TIMEOUT`.
    Timeout,
    /// The file came, but is not a valid policy (`sts-policy-invalid`).
    Invalid,
}

impl FetchProblem {
    /// The RFC 8460 §4.3 result type a report gives this failure.
    pub fn result_type(self) -> &'static str {
        match self {
            FetchProblem::Certificate => "sts-webpki-invalid",
            FetchProblem::Invalid => "sts-policy-invalid",
            _ => "sts-policy-fetch-error",
        }
    }
}

/// A failed fetch: its kind and words for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub problem: FetchProblem,
    pub detail: String,
}

impl FetchError {
    fn new(problem: FetchProblem, detail: impl Into<String>) -> FetchError {
        FetchError {
            problem,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Fetches the policy file of `domain` and returns its text (not yet parsed).
///
/// # Errors
/// A `FetchError` saying what failed.
pub async fn fetch_policy(
    resolver: &Resolver,
    tls: &TlsClient,
    domain: &str,
    source: Option<IpAddr>,
) -> Result<String, FetchError> {
    let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
    match tokio::time::timeout(FETCH_TIMEOUT, fetch_from(resolver, tls, &host, source)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::new(
            FetchProblem::Timeout,
            format!("https://{host}{POLICY_PATH}: no answer within {FETCH_TIMEOUT:?}"),
        )),
    }
}

async fn fetch_from(
    resolver: &Resolver,
    tls: &TlsClient,
    host: &str,
    source: Option<IpAddr>,
) -> Result<String, FetchError> {
    let stream = connect_https(resolver, tls, host, HTTPS_PORT, source).await?;
    get(stream, host).await
}

/// The TLS stream of an HTTPS connection to `host`:`port`, its certificate verified for
/// `host` (the first address that answers; a certificate that does not verify ends it).
///
/// # Errors
/// A `FetchError`: no address, no connection, a failed handshake or certificate.
pub(crate) async fn connect_https(
    resolver: &Resolver,
    tls: &TlsClient,
    host: &str,
    port: u16,
    source: Option<IpAddr>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FetchError> {
    let addresses = match resolver.addresses(host).await {
        Ok(AddressAnswer::Addresses(addresses)) => addresses,
        Ok(_) => {
            return Err(FetchError::new(
                FetchProblem::Dns,
                format!("{host} has no address"),
            ));
        }
        Err(failure) => {
            return Err(FetchError::new(
                FetchProblem::Dns,
                format!("{host}: {failure}"),
            ));
        }
    };
    let verifying = tls.clone().requiring_verification();
    let mut last = FetchError::new(FetchProblem::Connect, format!("{host}: no address"));
    for address in addresses {
        let target = SocketAddr::new(address, port);
        let tcp = match connect_tcp(target, source, CONNECT_TIMEOUT).await {
            Ok(tcp) => tcp,
            Err(broken) => {
                last = FetchError::new(
                    FetchProblem::Connect,
                    format!("connect {host} [{address}]: {}", broken.detail),
                );
                continue;
            }
        };
        let stream = match verifying.handshake(tcp, host).await {
            Ok((Stream::Tls(stream), _)) => stream,
            Ok(_) => {
                return Err(FetchError::new(FetchProblem::Handshake, "not a TLS stream"));
            }
            Err(broken) => {
                let problem = match broken.cause {
                    Cause::Tls(TlsProblem::Certificate) => FetchProblem::Certificate,
                    _ => FetchProblem::Handshake,
                };
                return Err(FetchError::new(
                    problem,
                    format!("{host} [{address}]: {}", broken.detail),
                ));
            }
        };
        return Ok(*stream);
    }
    Err(last)
}

/// One GET over an established TLS stream.
async fn get<S>(stream: S, host: &str) -> Result<String, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |detail: String| FetchError::new(FetchProblem::Http, detail);
    let url = format!("https://{host}{POLICY_PATH}");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(format!("{url}: {e}")))?;
    let driver = tokio::spawn(connection);
    let _stop = AbortOnDrop(driver);
    let request = Request::get(POLICY_PATH)
        .header(HOST, host)
        .header(USER_AGENT, concat!("petrel/", env!("CARGO_PKG_VERSION")))
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(format!("{url}: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(format!("{url}: {e}")))?;
    let status = response.status();
    if status != StatusCode::OK {
        let why = if status.is_redirection() {
            " (redirects are not followed, RFC 8461 §3.3)"
        } else {
            ""
        };
        return Err(http(format!("{url}: HTTP {status}{why}")));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type != "text/plain" {
        return Err(http(format!(
            "{url}: Content-Type {content_type:?}, not text/plain"
        )));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| http(format!("{url}: {e} (at most {MAX_POLICY_BYTES} bytes)")))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| http(format!("{url}: the policy is not UTF-8")))
}

/// Stops the connection's task when the fetch is over (or abandoned by the timeout).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
