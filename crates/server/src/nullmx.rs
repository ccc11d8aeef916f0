//! Null MX at MAIL and RCPT (RFC 7505 §4.1; docs/conformance.md S-NULLMX-4, S-NULLMX-5): a
//! relayed recipient whose domain publishes a null MX gets 556 5.1.10, a sender whose domain
//! publishes one gets 550 5.7.27, and a DNS failure during the check gives 451 4.4.3, never a
//! silent accept.
//!
//! The decisions are pure functions of the DNS answer; `check_*` do the lookup. Our own domains,
//! our host name and single-label names (which public DNS cannot hold) are not looked up.

use petrel_dns::{MxAnswer, Resolver, TemporaryFailure};
use petrel_proto::address::{Domain, ForwardPath, ReversePath};
use petrel_proto::{Reply, standard};

use crate::ServerSettings;

/// Which sender checks are on.
#[derive(Debug, Clone, Copy)]
pub struct SenderChecks {
    /// A null MX: 550 5.7.27.
    pub null_mx: bool,
    /// A domain that does not exist: 550 5.1.8.
    pub unknown_domain: bool,
}

/// The refusal a sender domain's MX answer calls for.
///
/// # Errors
/// 550 5.7.27 for a null MX, 550 5.1.8 for a domain that does not exist, 451 4.4.3 for a
/// failed lookup (each only when its check is on).
pub fn sender_decision(
    answer: &Result<MxAnswer, TemporaryFailure>,
    checks: SenderChecks,
) -> Result<(), Reply> {
    match answer {
        Ok(MxAnswer::NullMx) if checks.null_mx => Err(standard::NULL_MX_SENDER.reply()),
        Ok(MxAnswer::NoSuchDomain) if checks.unknown_domain => {
            Err(standard::UNKNOWN_SENDER_DOMAIN.reply())
        }
        Ok(_) => Ok(()),
        Err(_) => Err(standard::LOOKUP_FAILED.reply()),
    }
}

/// Which recipient checks are on.
#[derive(Debug, Clone, Copy)]
pub struct RecipientChecks {
    /// A null MX: 556 5.1.10.
    pub null_mx: bool,
    /// A domain that does not exist: 550 5.1.2.
    pub unknown_domain: bool,
}

/// The refusal a relayed recipient domain's MX answer calls for.
///
/// # Errors
/// 556 5.1.10 for a null MX, 550 5.1.2 for a domain that does not exist, 451 4.4.3 for a
/// failed lookup (each only when its check is on).
pub fn recipient_decision(
    answer: &Result<MxAnswer, TemporaryFailure>,
    checks: RecipientChecks,
) -> Result<(), Reply> {
    match answer {
        Ok(MxAnswer::NullMx) if checks.null_mx => Err(standard::NULL_MX_RECIPIENT.reply()),
        Ok(MxAnswer::NoSuchDomain) if checks.unknown_domain => {
            Err(standard::UNKNOWN_RECIPIENT_DOMAIN.reply())
        }
        Ok(_) => Ok(()),
        Err(_) => Err(standard::LOOKUP_FAILED.reply()),
    }
}

/// The domain to look up, or `None` when it needs no check.
fn checked_domain<'a>(domain: &'a Domain, settings: &ServerSettings) -> Option<&'a str> {
    let Domain::Name(name) = domain else {
        return None;
    };
    let is_ours = settings.policy.is_local_domain(domain) || domain.is(&settings.session.hostname);
    (!is_ours && name.contains('.')).then_some(name.as_str())
}

/// Checks MAIL FROM's domain when `policy.reject_null_mx_sender` is on, and whether it exists
/// when `screen.reject_unknown_sender_domain` is and the client is `is_screened` (port 25,
/// outside the relay networks, not authenticated).
///
/// # Errors
/// The reply refusing the sender.
pub async fn check_sender(
    resolver: &Resolver,
    settings: &ServerSettings,
    path: &ReversePath,
    is_screened: bool,
) -> Result<(), Reply> {
    let ReversePath::Mailbox(mailbox) = path else {
        return Ok(());
    };
    let checks = SenderChecks {
        null_mx: settings.reject_null_mx_sender,
        unknown_domain: settings.reject_unknown_sender_domain && is_screened,
    };
    if !checks.null_mx && !checks.unknown_domain {
        return Ok(());
    }
    match checked_domain(&mailbox.domain, settings) {
        Some(domain) => sender_decision(&looked_up(resolver, domain, "sender").await, checks),
        None => Ok(()),
    }
}

/// Checks a relayed recipient's domain when `policy.reject_null_mx_recipient` or
/// `screen.reject_unknown_recipient_domain` is on; a domain with a `[[delivery.route]]` is not
/// looked up.
///
/// # Errors
/// The reply refusing the recipient.
pub async fn check_recipient(
    resolver: &Resolver,
    settings: &ServerSettings,
    path: &ForwardPath,
) -> Result<(), Reply> {
    let ForwardPath::Mailbox(mailbox) = path else {
        return Ok(());
    };
    let checks = RecipientChecks {
        null_mx: settings.reject_null_mx_recipient,
        unknown_domain: settings.reject_unknown_recipient_domain,
    };
    if !checks.null_mx && !checks.unknown_domain {
        return Ok(());
    }
    match checked_domain(&mailbox.domain, settings) {
        Some(domain) if !is_routed(domain, &settings.routed_domains) => {
            recipient_decision(&looked_up(resolver, domain, "recipient").await, checks)
        }
        _ => Ok(()),
    }
}

/// Whether `domain` is, or is under, one of `routed`.
fn is_routed(domain: &str, routed: &[String]) -> bool {
    let domain = domain.to_ascii_lowercase();
    routed.iter().any(|route| {
        domain == *route
            || domain
                .strip_suffix(route.as_str())
                .is_some_and(|head| head.ends_with('.'))
    })
}

/// The MX answer for `domain`; a failed lookup is logged with its cause (SERVFAIL, timeout,
/// ...), which the 451 4.4.3 the client gets does not say.
async fn looked_up(
    resolver: &Resolver,
    domain: &str,
    whose: &str,
) -> Result<MxAnswer, TemporaryFailure> {
    let answer = resolver.mx(domain).await;
    if let Err(failure) = &answer {
        tracing::info!(%domain, dns = %failure.kind.as_str(), %failure, "MX check of the {whose}'s domain failed: 451 4.4.3");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_nullmx_4_5_decisions() {
        let senders = SenderChecks {
            null_mx: true,
            unknown_domain: true,
        };
        let both = RecipientChecks {
            null_mx: true,
            unknown_domain: true,
        };
        let failure = Err(TemporaryFailure::new(
            petrel_dns::FailureKind::ServFail,
            "test",
        ));
        assert_eq!(
            recipient_decision(&Ok(MxAnswer::NullMx), both)
                .unwrap_err()
                .to_line(),
            "556 5.1.10 Recipient domain does not accept mail (null MX)"
        );
        assert_eq!(
            sender_decision(&Ok(MxAnswer::NullMx), senders)
                .unwrap_err()
                .to_line(),
            "550 5.7.27 Sender domain does not accept mail (null MX)"
        );
        assert_eq!(recipient_decision(&failure, both).unwrap_err().code, 451);
        assert_eq!(sender_decision(&failure, senders).unwrap_err().code, 451);
        assert_eq!(
            sender_decision(&Ok(MxAnswer::NoSuchDomain), senders)
                .unwrap_err()
                .to_line(),
            "550 5.1.8 Sender domain does not exist"
        );
        assert!(recipient_decision(&Ok(MxAnswer::NoMx), both).is_ok());
        assert_eq!(
            recipient_decision(&Ok(MxAnswer::NoSuchDomain), both)
                .unwrap_err()
                .to_line(),
            "550 5.1.2 Recipient domain does not exist"
        );
        let null_mx_only = RecipientChecks {
            null_mx: true,
            unknown_domain: false,
        };
        assert!(recipient_decision(&Ok(MxAnswer::NoSuchDomain), null_mx_only).is_ok());
        assert!(is_routed("a.b.test", &["b.test".into()]));
        assert!(!is_routed("ab.test", &["b.test".into()]));
    }
}
