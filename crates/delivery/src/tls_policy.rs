//! Outbound TLS policy (issue 15, first part): the security levels Postfix names (`none`,
//! `may`, `encrypt`, `verify`), a default and per-domain overrides where the most specific
//! domain wins, whether a failed handshake may be retried in plaintext, and the rule that AUTH
//! to a smarthost needs a verified connection unless the operator names the host.
//!
//! Pure: the configuration comes in as data; `for_destination` is a function of it.

/// How much TLS a delivery insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecurityLevel {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered; the certificate is checked and the verdict recorded, not enforced.
    May,
    /// TLS or nothing: a server without STARTTLS, or a failed handshake, defers (4.7.5).
    Encrypt,
    /// TLS with a certificate that chains to a trust anchor and names the host (PKIX).
    Verify,
}

impl SecurityLevel {
    /// Parses `none`, `may`, `encrypt`, `verify` (and the old `opportunistic`, `required`).
    pub fn parse(word: &str) -> Option<SecurityLevel> {
        match word {
            "none" => Some(SecurityLevel::None),
            "may" | "opportunistic" => Some(SecurityLevel::May),
            "encrypt" | "required" => Some(SecurityLevel::Encrypt),
            "verify" => Some(SecurityLevel::Verify),
            _ => None,
        }
    }

    /// The configuration's word.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::None => "none",
            SecurityLevel::May => "may",
            SecurityLevel::Encrypt => "encrypt",
            SecurityLevel::Verify => "verify",
        }
    }
}

/// Whether TLSA records (DANE, RFC 7672) are looked up and used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Dane {
    /// Not looked up.
    #[default]
    Off,
    /// Used when the host has usable validated TLSA records (Postfix's `dane`).
    Opportunistic,
    /// Required: a host without usable validated TLSA records is not used (`dane-only`).
    Required,
}

/// Parses a level word, DANE's included: `dane` is `may` with opportunistic DANE, `dane-only`
/// is `encrypt` with DANE required.
pub fn parse_level(word: &str) -> Option<(SecurityLevel, Dane)> {
    match word {
        "dane" => Some((SecurityLevel::May, Dane::Opportunistic)),
        "dane-only" => Some((SecurityLevel::Encrypt, Dane::Required)),
        other => SecurityLevel::parse(other).map(|level| (level, Dane::Off)),
    }
}

/// One `[[delivery.tls_policy]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPolicy {
    /// Lower-case; covers its subdomains too.
    pub domain: String,
    pub level: SecurityLevel,
    /// With `verify`: the names the certificate may have (else the host's own name).
    pub match_names: Vec<String>,
    /// With `may`: a failed handshake is retried in plaintext.
    pub allows_plaintext_fallback: bool,
    /// `dane` or `dane-only` as the level.
    pub dane: Dane,
}

/// What applies to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub level: SecurityLevel,
    pub match_names: Vec<String>,
    pub allows_plaintext_fallback: bool,
    pub dane: Dane,
}

/// `[delivery] tls`, `tls_plaintext_fallback`, `auth_unverified_hosts` and the per-domain
/// policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicies {
    pub default_level: SecurityLevel,
    pub allows_plaintext_fallback: bool,
    pub domains: Vec<DomainPolicy>,
    /// Hosts that may get AUTH over TLS that is not verified (the operator's choice, by name).
    pub auth_unverified_hosts: Vec<String>,
    /// DANE by default: `Opportunistic` with `delivery.dane` and a validating resolver, or what
    /// `delivery.tls` names.
    pub default_dane: Dane,
}

impl Default for TlsPolicies {
    fn default() -> TlsPolicies {
        TlsPolicies {
            default_level: SecurityLevel::May,
            allows_plaintext_fallback: false,
            domains: Vec::new(),
            auth_unverified_hosts: Vec::new(),
            default_dane: Dane::Off,
        }
    }
}

impl TlsPolicies {
    /// The policy for `destination` (the recipient domain, or a route's next-hop host): the
    /// most specific `[[delivery.tls_policy]]` that covers it, else the default. With
    /// `has_credentials` the level is at least `verify` unless the host is named in
    /// `auth_unverified_hosts` (a password never goes over a connection we cannot vouch for).
    pub fn for_destination(&self, destination: &str, has_credentials: bool) -> Effective {
        self.for_destinations(&[destination], has_credentials)
    }

    /// Whether a `[[delivery.tls_policy]]` covers `destination` (the operator's word for it
    /// then wins over what the domain publishes, MTA-STS).
    pub fn has_policy_for(&self, destination: &str) -> bool {
        let destination = destination.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|p| {
            destination == p.domain
                || destination
                    .strip_suffix(&p.domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }

    /// As `for_destination`, for the first of `destinations` a policy covers (a route's
    /// next-hop host, then the recipient domain), else the default.
    pub fn for_destinations(&self, destinations: &[&str], has_credentials: bool) -> Effective {
        let bare = |name: &str| {
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_ascii_lowercase()
        };
        let names: Vec<String> = destinations.iter().map(|d| bare(d)).collect();
        let covers = |destination: &str, domain: &str| {
            destination == domain
                || destination
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        let chosen = names.iter().find_map(|destination| {
            self.domains
                .iter()
                .filter(|p| covers(destination, &p.domain))
                .max_by_key(|p| p.domain.len())
        });
        let destination = names.first().cloned().unwrap_or_default();
        let mut effective = match chosen {
            Some(policy) => Effective {
                level: policy.level,
                match_names: policy.match_names.clone(),
                allows_plaintext_fallback: policy.allows_plaintext_fallback,
                dane: if policy.level == SecurityLevel::None {
                    Dane::Off
                } else {
                    policy.dane.max(self.default_dane.min(Dane::Opportunistic))
                },
            },
            None => Effective {
                level: self.default_level,
                match_names: Vec::new(),
                allows_plaintext_fallback: self.allows_plaintext_fallback,
                dane: self.default_dane,
            },
        };
        let is_trusted_unverified = self
            .auth_unverified_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&destination));
        if has_credentials && !is_trusted_unverified {
            effective.level = effective.level.max(SecurityLevel::Verify);
        } else if has_credentials {
            effective.level = effective.level.max(SecurityLevel::Encrypt);
        }
        if effective.level > SecurityLevel::May {
            effective.allows_plaintext_fallback = false;
        }
        effective
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(domain: &str, level: SecurityLevel) -> DomainPolicy {
        DomainPolicy {
            domain: domain.into(),
            level,
            match_names: Vec::new(),
            allows_plaintext_fallback: false,
            dane: Dane::Off,
        }
    }

    #[test]
    fn the_most_specific_domain_wins_and_subdomains_are_covered() {
        let policies = TlsPolicies {
            domains: vec![
                policy("example.org", SecurityLevel::Encrypt),
                policy("mail.example.org", SecurityLevel::Verify),
                policy("plain.test", SecurityLevel::None),
            ],
            ..TlsPolicies::default()
        };
        let level = |d: &str| policies.for_destination(d, false).level;
        assert_eq!(level("example.org"), SecurityLevel::Encrypt);
        assert_eq!(level("a.example.org"), SecurityLevel::Encrypt);
        assert_eq!(level("x.mail.example.org"), SecurityLevel::Verify);
        assert_eq!(level("Mail.Example.Org."), SecurityLevel::Verify);
        assert_eq!(
            level("badexample.org"),
            SecurityLevel::May,
            "not a subdomain"
        );
        assert_eq!(level("plain.test"), SecurityLevel::None);
        assert!(policies.has_policy_for("a.mail.example.org."));
        assert!(!policies.has_policy_for("badexample.org"));
        assert_eq!(level("[plain.test]"), SecurityLevel::None);
        // A route's next hop first, then the recipient domain.
        let both = |hop: &str, domain: &str| policies.for_destinations(&[hop, domain], false).level;
        assert_eq!(both("127.0.0.1", "plain.test"), SecurityLevel::None);
        assert_eq!(
            both("mail.example.org", "plain.test"),
            SecurityLevel::Verify
        );
        assert_eq!(both("127.0.0.1", "elsewhere.test"), SecurityLevel::May);
    }

    #[test]
    fn credentials_need_a_verified_connection_unless_the_host_is_named() {
        let policies = TlsPolicies {
            domains: vec![policy("smart.test", SecurityLevel::None)],
            auth_unverified_hosts: vec!["named.test".into()],
            ..TlsPolicies::default()
        };
        assert_eq!(
            policies.for_destination("smart.test", true).level,
            SecurityLevel::Verify
        );
        assert_eq!(
            policies.for_destination("named.test", true).level,
            SecurityLevel::Encrypt,
            "named: TLS still, unverified allowed"
        );
        assert_eq!(
            policies.for_destination("named.test", false).level,
            SecurityLevel::May
        );
    }

    #[test]
    fn plaintext_fallback_only_where_allowed_and_never_above_may() {
        let mut policies = TlsPolicies::default();
        assert!(
            !policies
                .for_destination("x.test", false)
                .allows_plaintext_fallback
        );
        policies.allows_plaintext_fallback = true;
        assert!(
            policies
                .for_destination("x.test", false)
                .allows_plaintext_fallback
        );
        assert!(
            !policies
                .for_destination("x.test", true)
                .allows_plaintext_fallback
        );
        for word in [
            "none",
            "may",
            "opportunistic",
            "encrypt",
            "required",
            "verify",
        ] {
            let level = SecurityLevel::parse(word).unwrap();
            assert_eq!(SecurityLevel::parse(level.as_str()), Some(level));
        }
        assert_eq!(SecurityLevel::parse("dane"), None);
        assert_eq!(
            parse_level("dane"),
            Some((SecurityLevel::May, Dane::Opportunistic))
        );
        assert_eq!(
            parse_level("dane-only"),
            Some((SecurityLevel::Encrypt, Dane::Required))
        );
        assert_eq!(
            parse_level("verify"),
            Some((SecurityLevel::Verify, Dane::Off))
        );
    }
}
