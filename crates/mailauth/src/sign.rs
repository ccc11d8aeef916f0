//! DKIM signing (RFC 6376 §5): one key per signing domain, chosen by the domain of the
//! message's `From:` field, relaxed/relaxed canonicalization, rsa-sha256 or ed25519-sha256
//! (RFC 8463). The caller prepends the returned `DKIM-Signature:` field to the message.
//!
//! Keys are PEM files: PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY", RSA or Ed25519), as
//! `petrel dkim keygen`, openssl and opendkim-genkey write them. Signing failures are reported,
//! never panics; the message then goes out unsigned (the caller logs it).

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::Error;

/// The header fields signed when present (RFC 6376 §5.4.1's recommended set). `From` is listed
/// twice so that a second `From:` added on the way breaks the signature (over-signing, §8.15).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
];

enum KeySigner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// One signing key: the `d=` domain, the `s=` selector and the private key.
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    signer: KeySigner,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKey({}, selector {})", self.domain, self.selector)
    }
}

impl DkimKey {
    /// A key for `domain` under `selector` from a PEM private key.
    ///
    /// # Errors
    /// `BadKey` when the PEM holds no RSA or Ed25519 private key.
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<DkimKey, Error> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::BadKey(e.to_string()))?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let signer = match &der {
            PrivateKeyDer::Pkcs1(_) => KeySigner::Rsa(rsa_signer(&der, &domain, selector)?),
            PrivateKeyDer::Pkcs8(pkcs8) => match rsa_signer(&der, &domain, selector) {
                Ok(signer) => KeySigner::Rsa(signer),
                Err(_) => {
                    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                        .map_err(|e| Error::BadKey(e.to_string()))?;
                    KeySigner::Ed25519(template(key, &domain, selector))
                }
            },
            _ => return Err(Error::BadKey("an EC key; use RSA or Ed25519".into())),
        };
        Ok(DkimKey {
            domain,
            selector: selector.to_owned(),
            signer,
        })
    }

    /// The `DKIM-Signature:` field (with its CRLF) for `message` (CRLF line ends).
    ///
    /// # Errors
    /// When the message has none of the signed header fields, or the key cannot sign.
    pub fn sign(&self, message: &[u8]) -> Result<String, Error> {
        let signature = match &self.signer {
            KeySigner::Rsa(signer) => signer.sign(message),
            KeySigner::Ed25519(signer) => signer.sign(message),
        };
        signature.map(|s| s.to_header()).map_err(|e| Error::Sign {
            domain: self.domain.clone(),
            detail: e.to_string(),
        })
    }
}

fn rsa_signer(
    der: &PrivateKeyDer<'_>,
    domain: &str,
    selector: &str,
) -> Result<DkimSigner<RsaKey<Sha256>, Done>, Error> {
    let key = RsaKey::<Sha256>::from_key_der(der.clone_key())
        .map_err(|e| Error::BadKey(e.to_string()))?;
    Ok(template(key, domain, selector))
}

fn template<T: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    key: T,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The configured signing keys, looked up by the `From:` domain.
#[derive(Debug, Default)]
pub struct Signer {
    keys: Vec<DkimKey>,
}

impl Signer {
    pub fn new(keys: Vec<DkimKey>) -> Signer {
        Signer { keys }
    }

    /// True when no domain has a key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for `domain`, if one is configured.
    pub fn key_for(&self, domain: &str) -> Option<&DkimKey> {
        self.keys
            .iter()
            .find(|k| k.domain.eq_ignore_ascii_case(domain.trim_end_matches('.')))
    }

    /// The `DKIM-Signature:` field for `message` when its `From:` domain has a key; `None`
    /// when it has none (the message goes unsigned, as it should).
    ///
    /// # Errors
    /// When the domain has a key but signing failed.
    pub fn sign(&self, message: &[u8]) -> Option<Result<String, Error>> {
        let domain = crate::from_domain(message)?;
        self.key_for(&domain).map(|key| key.sign(message))
    }
}
