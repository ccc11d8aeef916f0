//! The Sender Rewriting Scheme (issue 16, item 7), as libsrs2 and postsrsd spell it: mail
//! forwarded to another domain leaves with a sender of the forwarding domain, so SPF passes at
//! the next hop, and bounces to that sender find their way back.
//!
//! - `SRS0=HHHH=TT=orig-domain=orig-local@srs-domain`: HHHH the first four base64 characters of
//!   an HMAC-SHA1 (with the configured secret) of `TT`, the original domain and local part
//!   (lower-case); TT the day (days since 1970 mod 1024) in two base32 characters.
//! - A sender that is already `SRS0=...@other` becomes `SRS1=HHHH=other==HHHH=TT=...@srs-domain`
//!   (the hash over `other` and the rest), so a chain of forwarders does not grow the address.
//!
//! `reverse` checks the hash (in constant time) and, for SRS0, that the timestamp is at most
//! 21 days old. Addresses come from the network: anything malformed is an error, never a panic.

use ring::hmac;

/// How long an SRS0 address is honoured for bounces.
pub const MAX_AGE_DAYS: u64 = 21;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The rewriting of one forwarding domain.
#[derive(Clone)]
pub struct Srs {
    key: hmac::Key,
    /// The domain forwarded senders are rewritten into (lower-case).
    pub domain: String,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Srs({})", self.domain)
    }
}

/// Why an SRS address does not reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrsError {
    /// Not an SRS0/SRS1 address of ours.
    NotSrs,
    /// Malformed, a wrong hash, or too old.
    Invalid(&'static str),
}

fn timestamp(days: u64) -> String {
    let t = days % 1024;
    let hi = BASE32
        .get(usize::try_from(t >> 5).unwrap_or(0))
        .copied()
        .unwrap_or(b'A');
    let lo = BASE32
        .get(usize::try_from(t & 31).unwrap_or(0))
        .copied()
        .unwrap_or(b'A');
    String::from_utf8_lossy(&[hi, lo]).into_owned()
}

fn timestamp_days(text: &str) -> Option<u64> {
    let value = |c: u8| BASE32.iter().position(|b| *b == c.to_ascii_uppercase());
    match text.as_bytes() {
        [hi, lo] => Some(((value(*hi)? as u64) << 5) | value(*lo)? as u64),
        _ => None,
    }
}

impl Srs {
    pub fn new(secret: &[u8], domain: &str) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        for part in parts {
            context.update(part.to_ascii_lowercase().as_bytes());
        }
        let tag = context.sign();
        let encoded = crate::base64_encode(tag.as_ref());
        encoded.chars().take(4).collect()
    }

    fn hash_matches(&self, given: &str, parts: &[&str]) -> bool {
        let wanted = self.hash(parts);
        // Constant time, case-insensitively as libsrs2 compares.
        given.len() == wanted.len()
            && given
                .bytes()
                .zip(wanted.bytes())
                .fold(0_u8, |diff, (a, b)| {
                    diff | (a.to_ascii_lowercase() ^ b.to_ascii_lowercase())
                })
                == 0
    }

    /// The SRS form of `sender` (`local@domain`) on day `days` (since 1970).
    pub fn forward(&self, sender: &str, days: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_owned();
        };
        if domain.eq_ignore_ascii_case(&self.domain) {
            return sender.to_owned();
        }
        let upper = local.to_ascii_uppercase();
        if upper.starts_with("SRS0=") || upper.starts_with("SRS0-") || upper.starts_with("SRS0+") {
            // Already rewritten by `domain`: SRS1 keeps the first forwarder and the rest.
            let rest = &local[4..];
            let hash = self.hash(&[domain, rest]);
            return format!("SRS1={hash}={domain}={rest}@{}", self.domain);
        }
        if upper.starts_with("SRS1=") {
            // SRS1=HHHH=first==rest@other: re-hash for ourselves, keep first and rest.
            let mut fields = local.splitn(3, '=');
            let (_, _, tail) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
            if let Some((first, rest)) = tail.split_once("==") {
                let rest = format!("={rest}");
                let hash = self.hash(&[first, &rest]);
                return format!("SRS1={hash}={first}={rest}@{}", self.domain);
            }
        }
        let stamp = timestamp(days);
        let hash = self.hash(&[&stamp, domain, local]);
        format!("SRS0={hash}={stamp}={domain}={local}@{}", self.domain)
    }

    /// The address an SRS address of ours stands for, on day `days`.
    ///
    /// # Errors
    /// `NotSrs` for an address that is not SRS of our domain, `Invalid` for a bad hash, an
    /// expired timestamp or a malformed address.
    pub fn reverse(&self, address: &str, days: u64) -> Result<String, SrsError> {
        let (local, domain) = address.rsplit_once('@').ok_or(SrsError::NotSrs)?;
        if !domain.eq_ignore_ascii_case(&self.domain) || local.len() < 5 {
            return Err(SrsError::NotSrs);
        }
        let (scheme, body) = local.split_at(4);
        let body = body.strip_prefix(['=', '-', '+']).ok_or(SrsError::NotSrs)?;
        if scheme.eq_ignore_ascii_case("SRS0") {
            let mut fields = body.splitn(4, '=');
            let (Some(hash), Some(stamp), Some(original_domain), Some(original_local)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(SrsError::Invalid("malformed SRS0 address"));
            };
            if !self.hash_matches(hash, &[stamp, original_domain, original_local]) {
                return Err(SrsError::Invalid("the SRS hash does not match"));
            }
            let then = timestamp_days(stamp).ok_or(SrsError::Invalid("bad SRS timestamp"))?;
            let age = (days % 1024 + 1024 - then) % 1024;
            if age > MAX_AGE_DAYS {
                return Err(SrsError::Invalid("the SRS address has expired"));
            }
            if original_domain.is_empty() || original_local.is_empty() {
                return Err(SrsError::Invalid("malformed SRS0 address"));
            }
            return Ok(format!("{original_local}@{original_domain}"));
        }
        if scheme.eq_ignore_ascii_case("SRS1") {
            let mut fields = body.splitn(2, '=');
            let (Some(hash), Some(tail)) = (fields.next(), fields.next()) else {
                return Err(SrsError::Invalid("malformed SRS1 address"));
            };
            let (first, rest) = tail
                .split_once("==")
                .ok_or(SrsError::Invalid("malformed SRS1 address"))?;
            let rest = format!("={rest}");
            if !self.hash_matches(hash, &[first, &rest]) {
                return Err(SrsError::Invalid("the SRS hash does not match"));
            }
            return Ok(format!("SRS0{rest}@{first}"));
        }
        Err(SrsError::NotSrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srs0_round_trips_and_refuses_forgeries_and_old_addresses() {
        let srs = Srs::new(b"secret", "fwd.example");
        let day = 20_429;
        let rewritten = srs.forward("alice@sender.example", day);
        assert!(rewritten.starts_with("SRS0="), "{rewritten}");
        assert!(
            rewritten.ends_with("=sender.example=alice@fwd.example"),
            "{rewritten}"
        );
        assert_eq!(
            srs.reverse(&rewritten, day + 3),
            Ok("alice@sender.example".into())
        );
        assert_eq!(
            srs.reverse(
                &rewritten
                    .to_uppercase()
                    .replace("FWD.EXAMPLE", "fwd.example"),
                day
            ),
            Ok("ALICE@SENDER.EXAMPLE".into()),
            "case-insensitive"
        );
        assert!(matches!(
            srs.reverse(&rewritten, day + 30),
            Err(SrsError::Invalid(_))
        ));
        let forged = rewritten.replacen("SRS0=", "SRS0=x", 1);
        assert!(srs.reverse(&forged, day).is_err());
        let other = Srs::new(b"another secret", "fwd.example");
        assert!(matches!(
            other.reverse(&rewritten, day),
            Err(SrsError::Invalid(_))
        ));
        assert_eq!(srs.reverse("bob@fwd.example", day), Err(SrsError::NotSrs));
        assert_eq!(
            srs.reverse("SRS0=a=b@elsewhere.example", day),
            Err(SrsError::NotSrs)
        );
        assert!(srs.reverse("SRS0=@fwd.example", day).is_err());
        assert_eq!(srs.forward("carol@fwd.example", day), "carol@fwd.example");
    }

    #[test]
    fn a_second_forwarder_makes_srs1_which_reverses_to_the_first_forwarder() {
        let first = Srs::new(b"one", "first.example");
        let second = Srs::new(b"two", "second.example");
        let day = 20_429;
        let srs0 = first.forward("alice@sender.example", day);
        let srs1 = second.forward(&srs0, day);
        assert!(srs1.starts_with("SRS1="), "{srs1}");
        assert!(srs1.ends_with("@second.example"), "{srs1}");
        let back = second.reverse(&srs1, day).unwrap();
        assert_eq!(back, srs0, "back to the first forwarder's address");
        assert_eq!(first.reverse(&back, day), Ok("alice@sender.example".into()));
        assert_eq!(timestamp_days(&timestamp(day)), Some(day % 1024));
    }
}
