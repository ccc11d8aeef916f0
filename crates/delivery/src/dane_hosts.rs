//! DANE for SMTP, the DNS side (RFC 7672 §2; C-DANE-1, C-DANE-2, C-DANE-4): for a domain whose
//! MX answer the validating resolver authenticated, what each MX host's TLSA records
//! (`_<port>._tcp.<host>`) make of it:
//!
//! - usable validated records: the certificate must match them (`Match`), STARTTLS required;
//! - validated records of which none is usable: TLS required, unauthenticated (`EncryptOnly`);
//! - no records (validated NXDOMAIN/NODATA), or an unsigned zone: no DANE (`None`);
//! - a lookup that failed (SERVFAIL: bogus): the host is not used now, never in plaintext
//!   (`Unusable`).
//!
//! An MX answer that is not validated means no DANE for any host (§2.2.1); one that fails
//! validation makes every host unusable. A host whose address answer is not validated gets no
//! TLSA lookup (§2.2.2).

use std::collections::HashMap;

use petrel_dns::{Resolver, TlsaRecord, Validated};

use crate::client::dane::usable;
use crate::mxplan::PlannedHost;

/// What DANE makes of one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDane {
    None,
    Match(Vec<TlsaRecord>),
    EncryptOnly,
    Unusable(String),
}

impl HostDane {
    /// Whether DANE makes TLS mandatory for this host (never plaintext).
    pub fn applies(&self) -> bool {
        matches!(self, HostDane::Match(_) | HostDane::EncryptOnly)
    }

    /// Whether DANE authenticates this host (so MTA-STS does not decide, C-STS-4, and the host
    /// is vouched for, RFC 8689 §4.2.1). Unusable records authenticate nothing: such a host
    /// stays under MTA-STS and the level, with TLS required.
    pub fn vouches(&self) -> bool {
        matches!(self, HostDane::Match(_))
    }
}

/// The DANE verdict of each of `hosts` (by name), with a history line for what was found.
pub async fn look_up(
    resolver: &Resolver,
    domain: &str,
    hosts: &[PlannedHost],
    port: u16,
    history: &mut Vec<String>,
) -> HashMap<String, HostDane> {
    let mut found = HashMap::new();
    match resolver.mx_security(domain).await {
        Validated::Secure(()) => {}
        Validated::Insecure(()) => {
            history.push(format!(
                "DANE: the MX answer of {domain} is not DNSSEC-validated; no TLSA lookup"
            ));
            return found;
        }
        Validated::Failed(failure) => {
            history.push(format!(
                "DANE: the MX answer of {domain} does not validate ({failure}); its hosts are not used"
            ));
            for host in hosts {
                found.insert(host.name.clone(), HostDane::Unusable(failure.to_string()));
            }
            return found;
        }
    }
    for host in hosts {
        // §2.2.2: a host whose address is not validated gets no TLSA lookup (an unsigned
        // zone's server may even fail TLSA queries).
        match resolver.address_security(&host.name).await {
            Validated::Secure(()) => {}
            Validated::Insecure(()) => {
                history.push(format!(
                    "DANE: the address of {} is not DNSSEC-validated; no TLSA lookup",
                    host.name
                ));
                found.insert(host.name.clone(), HostDane::None);
                continue;
            }
            Validated::Failed(failure) => {
                history.push(format!(
                    "DANE: the address of {} does not validate ({failure}): not used now, never in plaintext",
                    host.name
                ));
                found.insert(host.name.clone(), HostDane::Unusable(failure.to_string()));
                continue;
            }
        }
        let verdict = match resolver.tlsa(&host.name, port).await {
            Validated::Secure(records) if records.is_empty() => HostDane::None,
            Validated::Secure(records) => {
                let usable = usable(&records);
                if usable.is_empty() {
                    HostDane::EncryptOnly
                } else {
                    HostDane::Match(usable)
                }
            }
            Validated::Insecure(_) => HostDane::None,
            Validated::Failed(failure) => HostDane::Unusable(failure.to_string()),
        };
        let line = match &verdict {
            HostDane::None => "no validated TLSA records: DANE does not apply".to_owned(),
            HostDane::Match(records) => format!(
                "{} usable validated TLSA record(s): the certificate must match them",
                records.len()
            ),
            HostDane::EncryptOnly => {
                "validated TLSA records, none usable: TLS required, unauthenticated".to_owned()
            }
            HostDane::Unusable(why) => {
                format!("the TLSA lookup failed ({why}): not used now, never in plaintext")
            }
        };
        history.push(format!("DANE: _{port}._tcp.{}: {line}", host.name));
        found.insert(host.name.clone(), verdict);
    }
    found
}
