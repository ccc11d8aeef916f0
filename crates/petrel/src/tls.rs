//! TLS material: the `[tls]` certificates (PEM chains and keys) turned into a rustls server
//! configuration with the ring provider (the only provider in the build). Several
//! certificates are chosen by the name the client asks for (SNI), the first answering clients
//! that ask for no name or another one; `check` is what `check-config` says of each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How soon an expiry makes `check-config` warn.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// One configured certificate: the names it answers for (none: only as the default), its
/// chain file and key file.
pub type Certificate = (Vec<String>, PathBuf, PathBuf);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The provider of the server side: the same suites, with AES-128-GCM first in each TLS
/// version. Most clients list AES-256-GCM-SHA384 first; its key schedule runs on SHA-384,
/// which has no instructions of its own on x86 (SHA-256 does), and AES-128 is as sound for
/// mail. Go's TLS server makes the same choice.
fn server_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        (
            suite.version().version != rustls::ProtocolVersion::TLSv1_3,
            !is_aes_128(suite),
        )
    });
    Arc::new(provider)
}

fn is_aes_128(suite: &rustls::SupportedCipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite.suite(),
        TLS13_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls.certificate {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.certificate {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(chain)
}

/// The chain and key of one certificate, checked to belong together.
fn certified_key(certificate: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = read_chain(certificate)?;
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        format!(
            "tls: the key {} does not fit the certificate {}: {e}",
            key.display(),
            certificate.display()
        )
    })
}

/// The certificates by name (SNI).
#[derive(Debug)]
struct ByName {
    /// Lower-case names, `*.` patterns included, with their certificate.
    names: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl ByName {
    fn find(&self, asked: &str) -> Arc<CertifiedKey> {
        let asked = asked.trim_end_matches('.').to_ascii_lowercase();
        let exact = self.names.iter().find(|(name, _)| *name == asked);
        let wildcard = || {
            let (_, parent) = asked.split_once('.')?;
            self.names
                .iter()
                .find(|(name, _)| name.strip_prefix("*.") == Some(parent))
        };
        exact
            .or_else(wildcard)
            .map_or_else(|| self.default.clone(), |(_, key)| key.clone())
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match client_hello.server_name() {
            Some(name) => self.find(name),
            None => self.default.clone(),
        })
    }
}

/// Reads the certificates and keys into a server configuration.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn server_config(certificates: &[Certificate]) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut names = Vec::new();
    let mut default = None;
    for (certificate_names, certificate, key) in certificates {
        let key = Arc::new(certified_key(certificate, key)?);
        default.get_or_insert_with(|| key.clone());
        for name in certificate_names {
            names.push((name.trim_end_matches('.').to_ascii_lowercase(), key.clone()));
        }
    }
    let default = default.ok_or("tls: no certificate")?;
    let mut config = rustls::ServerConfig::builder_with_provider(server_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByName { names, default }));
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// What `check-config` says of each certificate: that its chain leads to its last
/// certificate (a warning when it does not), that it is valid for each of its names (for a
/// lone certificate, a warning when it does not name `hostname`), and whether it expires
/// within 14 days. Errors for what makes it unusable: a file, a key that does not fit, a
/// configured name it does not cover, a date past.
///
/// # Errors
/// A file cannot be read, a key does not fit, a chain is broken, a name is not covered, or a
/// certificate has expired.
pub fn check(certificates: &[Certificate], hostname: &str) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    for (names, certificate, key) in certificates {
        certified_key(certificate, key)?;
        let chain = read_chain(certificate)?;
        let (leaf, intermediates) = chain.split_first().ok_or("tls: empty chain")?;
        let mut roots = rustls::RootCertStore::empty();
        let anchor = chain.last().unwrap_or(leaf).clone();
        roots.add(anchor).map_err(|e| {
            format!(
                "tls.certificate {}: the last certificate of the chain cannot be read: {e}",
                certificate.display()
            )
        })?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| format!("tls.certificate {}: {e}", certificate.display()))?;
        let checked_names = if names.is_empty() {
            vec![hostname.to_owned()]
        } else {
            names.clone()
        };
        let at = |time: SystemTime| {
            UnixTime::since_unix_epoch(
                time.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
            )
        };
        let mut expiring = false;
        let mut warnings = Vec::new();
        for name in &checked_names {
            // A `*.` pattern is checked with a name under it.
            let probe = match name.strip_prefix("*.") {
                Some(parent) => format!("sni-check.{parent}"),
                None => name.clone(),
            };
            let server_name = ServerName::try_from(probe.clone()).map_err(|_| {
                format!(
                    "tls.certificate {}: {name:?} is not a host name",
                    certificate.display()
                )
            })?;
            let now = verifier.verify_server_cert(
                leaf,
                intermediates,
                &server_name,
                &[],
                at(SystemTime::now()),
            );
            match now {
                Ok(_) => {}
                // A lone certificate need not name this host (it may serve another name).
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) if names.is_empty() => {
                    warnings.push(format!("not valid for the hostname {name}"));
                    continue;
                }
                // A name the configuration gives it, or a date past: it cannot serve.
                Err(
                    e @ rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                        | rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. },
                    ),
                ) => {
                    return Err(format!(
                        "tls.certificate {} for {name}: {e}",
                        certificate.display()
                    ));
                }
                // The chain does not lead to its last certificate (a file with the leaf
                // alone, a self-signed certificate marked as a CA): serve takes it, senders
                // that verify may not.
                Err(e) => {
                    warnings.push(format!("its chain could not be checked: {e}"));
                    continue;
                }
            }
            expiring |= verifier
                .verify_server_cert(
                    leaf,
                    intermediates,
                    &server_name,
                    &[],
                    at(SystemTime::now() + EXPIRY_WARNING),
                )
                .is_err();
        }
        if expiring {
            warnings.push("expires within 14 days".to_owned());
        }
        report.push(format!(
            "tls.certificate = {} for {}{}",
            certificate.display(),
            checked_names.join(", "),
            if warnings.is_empty() {
                String::new()
            } else {
                format!(" (warning: {})", warnings.join("; "))
            }
        ));
    }
    Ok(report)
}
