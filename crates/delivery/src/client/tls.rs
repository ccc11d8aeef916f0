//! The client's TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS; C-TLS-6): a handshake on a
//! TCP stream that always checks the server's certificate against the trust anchors (the
//! system's store, `/etc/ssl/certs/ca-certificates.crt`, and an extra CA file when given) and
//! the host name (RFC 6125), and reports the verdict. Whether an unverified certificate ends
//! the session is the policy of the [`TlsClient`]: opportunistic (Postfix's "may", the
//! default) goes on and says so; `requiring_verification` fails with a typed cause.
//!
//! The handshake signatures are always checked. The server's bytes are handled by rustls.

use std::path::Path;
use std::sync::{Arc, Mutex};

use petrel_queue::status::TlsProblem;
use petrel_queue::sync::lock;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;

use super::connection::Broken;
use super::stream::Stream;

/// Debian's bundle of the system's trust anchors (package ca-certificates).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a handshake gave: the protocol, the cipher suite and the certificate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    pub cipher: String,
    /// The chain leads to a trust anchor and names the host.
    pub is_verified: bool,
    /// Why it is not verified, when it is not.
    pub verify_error: Option<String>,
    /// Verified by the host's TLSA records (DANE) rather than the trust store.
    pub is_dane: bool,
}

impl TlsReport {
    /// `TLSv1_3 TLS13_AES_256_GCM_SHA384, certificate verified`, or `..., certificate not
    /// verified (why; opportunistic TLS)`, for the history, logs and transcripts.
    pub fn summary(&self) -> String {
        match &self.verify_error {
            None if self.is_dane => {
                format!(
                    "{} {}, certificate matched TLSA (DANE)",
                    self.version, self.cipher
                )
            }
            None if self.is_verified => {
                format!("{} {}, certificate verified", self.version, self.cipher)
            }
            error => format!(
                "{} {}, certificate not verified ({}; opportunistic TLS)",
                self.version,
                self.cipher,
                error.as_deref().unwrap_or("no verdict")
            ),
        }
    }
}

/// The trust anchors and the policy for unverified certificates.
#[derive(Debug, Clone)]
pub struct TlsClient {
    provider: Arc<CryptoProvider>,
    /// `None` when no anchor could be loaded: nothing can be verified.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    requires_verification: bool,
    /// Names the certificate may have instead of the host's (`tls_policy` `match`).
    match_names: Vec<String>,
    /// The host's usable TLSA records: the certificate must match them (DANE).
    dane: Option<Arc<Vec<petrel_dns::TlsaRecord>>>,
}

impl TlsClient {
    /// The system's anchors and, when given, those of `extra_ca_file` (PEM). Files that are
    /// missing or unreadable add nothing (every certificate then reads as unverified).
    pub fn new(extra_ca_file: Option<&Path>) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for path in std::iter::once(Path::new(SYSTEM_BUNDLE)).chain(extra_ca_file) {
            if let Ok(certificates) = CertificateDer::pem_file_iter(path) {
                roots.add_parsable_certificates(certificates.flatten());
            }
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok();
        TlsClient {
            provider,
            verifier,
            requires_verification: false,
            match_names: Vec::new(),
            dane: None,
        }
    }

    /// The same client, checking the certificate against `records` (usable DANE TLSA records,
    /// RFC 7672) instead of the trust store; a mismatch fails the handshake.
    pub fn with_dane(mut self, records: Vec<petrel_dns::TlsaRecord>) -> TlsClient {
        self.dane = Some(Arc::new(records));
        self.requires_verification = true;
        self
    }

    /// The same anchors; the certificate must name one of `names` (when there are any)
    /// instead of the host connected to.
    pub fn matching(mut self, names: &[String]) -> TlsClient {
        self.match_names = names.to_vec();
        self
    }

    /// The same anchors; a certificate that does not verify fails the handshake.
    pub fn requiring_verification(mut self) -> TlsClient {
        self.requires_verification = true;
        self
    }

    /// Runs the handshake on `tcp` with `host` (a name, an address, or `[address]`).
    ///
    /// # Errors
    /// A `Broken` with `Tls(Handshake)`, or `Tls(Certificate)` when verification is required
    /// and fails.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> Result<(Stream, TlsReport), Broken> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match crate::mxplan::literal_address(bare) {
            Some(address) => ServerName::IpAddress(address.into()),
            None => ServerName::try_from(bare.to_owned())
                .map_err(|e| Broken::tls(TlsProblem::Handshake, format!("bad server name: {e}")))?,
        };
        let verdict = Arc::new(Mutex::new(None));
        let recording = Arc::new(Recording {
            provider: self.provider.clone(),
            verifier: self.verifier.clone(),
            verdict: verdict.clone(),
            requires_verification: self.requires_verification,
            dane: self.dane.clone(),
            match_names: self
                .match_names
                .iter()
                .filter_map(|n| ServerName::try_from(n.clone()).ok())
                .collect(),
        });
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Broken::tls(TlsProblem::Handshake, e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(recording)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = match connector.connect(name, tcp).await {
            Ok(stream) => stream,
            Err(error) => {
                let problem = match lock(&verdict).as_ref() {
                    Some(Err(_)) if self.requires_verification => TlsProblem::Certificate,
                    _ => TlsProblem::Handshake,
                };
                return Err(Broken::tls(
                    problem,
                    format!("TLS handshake failed: {error}"),
                ));
            }
        };
        let (_, connection) = stream.get_ref();
        let version = connection
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let cipher = connection
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let verify_error = match lock(&verdict).take() {
            Some(Ok(())) => None,
            Some(Err(error)) => Some(error),
            None => Some("no certificate checked".into()),
        };
        let report = TlsReport {
            version,
            cipher,
            is_verified: verify_error.is_none(),
            verify_error,
            is_dane: self.dane.is_some(),
        };
        Ok((Stream::Tls(Box::new(stream)), report))
    }
}

/// Checks the chain with webpki, records the verdict, and accepts an unverified chain unless
/// verification is required; always checks the handshake signatures.
#[derive(Debug)]
struct Recording {
    provider: Arc<CryptoProvider>,
    verifier: Option<Arc<WebPkiServerVerifier>>,
    verdict: Arc<Mutex<Option<Result<(), String>>>>,
    requires_verification: bool,
    /// When not empty: the names to check the certificate against, any of them.
    match_names: Vec<ServerName<'static>>,
    /// DANE: the usable TLSA records the chain must match instead.
    dane: Option<Arc<Vec<petrel_dns::TlsaRecord>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let names: Vec<&ServerName<'_>> = if self.match_names.is_empty() {
            vec![server_name]
        } else {
            self.match_names.iter().collect()
        };
        if let Some(records) = &self.dane {
            let owned: Vec<ServerName<'_>> = names.iter().map(|n| (*n).clone()).collect();
            let checked = super::dane::verify(
                records,
                end_entity,
                intermediates,
                &owned,
                now,
                &self.provider,
            );
            let failure = checked.as_ref().err().cloned();
            *lock(&self.verdict) = Some(checked);
            return match failure {
                Some(error) => Err(rustls::Error::General(error)),
                None => Ok(ServerCertVerified::assertion()),
            };
        }
        let checked = match &self.verifier {
            Some(verifier) => {
                let results: Vec<Result<(), String>> = names
                    .iter()
                    .map(|name| {
                        verifier
                            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    })
                    .collect();
                match results.iter().find(|r| r.is_ok()) {
                    Some(_) => Ok(()),
                    None => results
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| Err("no name to check".to_owned())),
                }
            }
            None => Err("no trust anchors".to_owned()),
        };
        let failure = checked.as_ref().err().cloned();
        *lock(&self.verdict) = Some(checked);
        match failure {
            Some(error) if self.requires_verification => Err(rustls::Error::General(error)),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
