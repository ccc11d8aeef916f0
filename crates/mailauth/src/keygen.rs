//! DKIM key pairs for `petrel dkim keygen`: the private key as PEM, and the TXT record to
//! publish at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.1, RFC 8463 for Ed25519).
//!
//! RSA keys are 2048 bits by default (RFC 8301 §3.2 asks for at least 1024 and recommends 2048;
//! ring, which signs, takes 2048 to 4096), written
//! PKCS#1; their public key is published as a SubjectPublicKeyInfo, the form every verifier
//! reads (opendkim, dkimpy, mail-auth). Ed25519 keys are PKCS#8 v1 (RFC 8410).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::dkim::generate::DkimKeyPair;

use crate::Error;

/// Which kind of key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa { bits: usize },
    Ed25519,
}

/// A new key pair.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The private key, PEM.
    pub private_key_pem: String,
    /// The TXT record's value, e.g. `v=DKIM1; k=rsa; p=MIIB...`.
    pub txt_record: String,
}

impl GeneratedKey {
    /// The record as a zone-file line: `selector._domainkey.domain. IN TXT "..." "..."`,
    /// split into strings of at most 255 octets (RFC 1035 §3.3).
    pub fn zone_line(&self, domain: &str, selector: &str) -> String {
        let chunks: Vec<String> = self
            .txt_record
            .as_bytes()
            .chunks(250)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!(
            "{selector}._domainkey.{}. IN TXT ( {} )",
            domain.trim_end_matches('.'),
            chunks.join(" ")
        )
    }
}

/// Makes a key pair.
///
/// # Errors
/// `Generate` when the random source or the key library fails, or RSA bits are outside
/// 2048..=4096.
pub fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey, Error> {
    match algorithm {
        KeyAlgorithm::Rsa { bits } => {
            if !(2048..=4096).contains(&bits) {
                return Err(Error::Generate(format!(
                    "RSA keys must have 2048 to 4096 bits, not {bits}"
                )));
            }
            let pair =
                DkimKeyPair::generate_rsa(bits).map_err(|e| Error::Generate(e.to_string()))?;
            let (private, public) = pair.into_inner();
            Ok(GeneratedKey {
                private_key_pem: pem("RSA PRIVATE KEY", &private),
                txt_record: format!(
                    "v=DKIM1; k=rsa; p={}",
                    STANDARD.encode(rsa_subject_public_key_info(&public))
                ),
            })
        }
        KeyAlgorithm::Ed25519 => {
            let pair =
                DkimKeyPair::generate_ed25519().map_err(|e| Error::Generate(e.to_string()))?;
            let (private, public) = pair.into_inner();
            Ok(GeneratedKey {
                private_key_pem: pem("PRIVATE KEY", &ed25519_pkcs8_v1(&private)?),
                txt_record: format!("v=DKIM1; k=ed25519; p={}", STANDARD.encode(public)),
            })
        }
    }
}

/// The PKCS#8 v1 form of an Ed25519 key (RFC 8410 §7), which openssl and other signers read;
/// ring makes v2 (with the public key), which some of them refuse.
fn ed25519_pkcs8_v1(v2: &[u8]) -> Result<Vec<u8>, Error> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const V2_PREFIX_AFTER_HEADER: [u8; 14] = [
        0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    let seed = v2
        .get(2..16)
        .filter(|p| *p == V2_PREFIX_AFTER_HEADER)
        .and_then(|_| v2.get(16..48))
        .ok_or_else(|| Error::Generate("unexpected Ed25519 PKCS#8 layout".into()))?;
    let mut v1 = PREFIX.to_vec();
    v1.extend_from_slice(seed);
    Ok(v1)
}

/// PEM armour (RFC 7468): base64 in lines of 64 characters.
fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280 §4.1, RFC 3279 §2.3.1):
/// SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { 0 unused bits, key } }.
fn rsa_subject_public_key_info(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long_form() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn rsa_bits_out_of_range_are_refused() {
        assert!(generate(KeyAlgorithm::Rsa { bits: 1024 }).is_err());
    }

    #[test]
    fn zone_line_splits_long_records() {
        let key = GeneratedKey {
            private_key_pem: String::new(),
            txt_record: "x".repeat(400),
        };
        let line = key.zone_line("example.org", "s1");
        assert!(line.starts_with("s1._domainkey.example.org. IN TXT ( \""));
        assert_eq!(line.matches('"').count(), 4);
    }
}
