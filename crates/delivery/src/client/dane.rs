//! DANE for SMTP, the certificate side (RFC 7672 §3, RFC 6698 §2.1, RFC 7671; C-DANE-2,
//! C-DANE-3): whether the chain a server presents matches its validated TLSA records.
//!
//! - DANE-EE(3): the end-entity certificate (selector 0) or its public key (selector 1), exact
//!   or by SHA-256/SHA-512, matches a record; name and expiry are not checked (§3.1.1).
//! - DANE-TA(2): a certificate of the chain matches a record; that certificate is the trust
//!   anchor, and the chain must lead to it and name one of the reference identifiers (the MX
//!   host name; §3.2.2) with the usual checks (expiry included).
//! - PKIX-TA(0) and PKIX-EE(1) are unusable in SMTP (§3.1.3); records with unknown usages,
//!   selectors or matching types are unusable too. A set with no usable record means
//!   unauthenticated TLS (`usable` is empty).
//!
//! The certificates come from the server and are untrusted: parse failures are mismatches,
//! never panics.

use std::sync::Arc;

use petrel_dns::TlsaRecord;
use ring::digest::{SHA256, SHA512, digest};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The records DANE can use in SMTP: usage 2 or 3, selector 0 or 1, matching 0, 1 or 2.
pub fn usable(records: &[TlsaRecord]) -> Vec<TlsaRecord> {
    records
        .iter()
        .filter(|r| matches!(r.usage, 2 | 3) && r.selector <= 1 && r.matching <= 2)
        .cloned()
        .collect()
}

/// Whether `record` matches the certificate `der` (its selector's part, hashed as it says).
pub fn matches(record: &TlsaRecord, der: &[u8]) -> bool {
    let selected: Vec<u8> = match record.selector {
        0 => der.to_vec(),
        1 => match spki(der) {
            Some(spki) => spki,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => selected == record.data,
        1 => digest(&SHA256, &selected).as_ref() == record.data.as_slice(),
        2 => digest(&SHA512, &selected).as_ref() == record.data.as_slice(),
        _ => false,
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn spki(der: &[u8]) -> Option<Vec<u8>> {
    let certificate = CertificateDer::from(der);
    let parsed = webpki::EndEntityCert::try_from(&certificate).ok()?;
    Some(parsed.subject_public_key_info().as_ref().to_vec())
}

/// Checks a presented chain against usable TLSA records.
///
/// # Errors
/// Why no record matched, in words for the history.
pub fn verify(
    records: &[TlsaRecord],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    names: &[ServerName<'_>],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    if records
        .iter()
        .any(|r| r.usage == 3 && matches(r, end_entity.as_ref()))
    {
        return Ok(());
    }
    let mut last = "no TLSA record matches the server's certificate chain".to_owned();
    for record in records.iter().filter(|r| r.usage == 2) {
        for anchor in intermediates.iter().filter(|c| matches(record, c.as_ref())) {
            let mut roots = RootCertStore::empty();
            if roots.add(anchor.clone().into_owned()).is_err() {
                continue;
            }
            let Ok(verifier) =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
            else {
                continue;
            };
            for name in names {
                match verifier.verify_server_cert(end_entity, intermediates, name, &[], now) {
                    Ok(_) => return Ok(()),
                    Err(error) => last = format!("DANE-TA: {error}"),
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> TlsaRecord {
        TlsaRecord {
            usage,
            selector,
            matching,
            data,
        }
    }

    struct Chain {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
    }

    fn chain(names: &[&str]) -> Chain {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        Chain {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn names(host: &str) -> Vec<ServerName<'static>> {
        vec![ServerName::try_from(host.to_owned()).unwrap()]
    }

    #[test]
    fn c_dane_3_ee_matches_the_key_whatever_the_name() {
        let chain = chain(&["other.example"]);
        let spki = spki(chain.leaf.as_ref()).unwrap();
        let sha256 = digest(&SHA256, &spki).as_ref().to_vec();
        let sha512_full = digest(&SHA512, chain.leaf.as_ref()).as_ref().to_vec();
        let now = UnixTime::now();
        for good in [
            record(3, 1, 1, sha256.clone()),
            record(3, 0, 2, sha512_full),
            record(3, 0, 0, chain.leaf.as_ref().to_vec()),
        ] {
            assert!(
                verify(
                    std::slice::from_ref(&good),
                    &chain.leaf,
                    &[],
                    &names("mx.example"),
                    now,
                    &provider()
                )
                .is_ok(),
                "{good:?}"
            );
        }
        let mut wrong = sha256.clone();
        wrong[0] ^= 1;
        assert!(
            verify(
                &[record(3, 1, 1, wrong)],
                &chain.leaf,
                &[],
                &names("mx.example"),
                now,
                &provider()
            )
            .is_err()
        );
        // PKIX-EE(1) with the same data is unusable in SMTP.
        assert!(usable(&[record(1, 1, 1, sha256), record(3, 1, 9, vec![])]).is_empty());
    }

    #[test]
    fn c_dane_3_ta_needs_the_chain_and_the_mx_name() {
        let chain = chain(&["mx.example"]);
        let ta = record(
            2,
            0,
            1,
            digest(&SHA256, chain.ca.as_ref()).as_ref().to_vec(),
        );
        let presented = [chain.ca.clone()];
        let now = UnixTime::now();
        assert!(
            verify(
                std::slice::from_ref(&ta),
                &chain.leaf,
                &presented,
                &names("mx.example"),
                now,
                &provider()
            )
            .is_ok()
        );
        assert!(
            verify(
                std::slice::from_ref(&ta),
                &chain.leaf,
                &presented,
                &names("mx2.example"),
                now,
                &provider()
            )
            .is_err(),
            "DANE-TA checks the name"
        );
        assert!(
            verify(
                &[ta],
                &chain.leaf,
                &[],
                &names("mx.example"),
                now,
                &provider()
            )
            .is_err(),
            "the anchor must be in the chain"
        );
    }
}
