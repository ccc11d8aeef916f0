//! What `petrel probe` found, as `--json` prints it: the MX answer, each host with its
//! addresses, connections, capabilities and TLS, every exchange with its explanation, and the
//! verdict.

use serde::Serialize;

use crate::transcript::Explanation;

/// Everything the probe found, as `--json` prints it.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    pub(super) address: String,
    pub(super) domain: Option<String>,
    pub(super) mx: Option<MxReport>,
    /// The recipient domain's MTA-STS policy, when `delivery.mta_sts` is on.
    pub(super) mta_sts: Option<super::sts::StsReport>,
    /// What DANE found: the MX answer's validation and each host's TLSA records (with
    /// `dns.validating`).
    pub(super) dane: Option<Vec<String>>,
    pub(super) hosts: Vec<HostReport>,
    pub(super) steps: Vec<Step>,
    pub(super) verdict: Verdict,
}

#[derive(Debug, Serialize)]
pub(super) struct MxReport {
    /// records | null_mx | no_mx | nxdomain | temporary_failure | address_literal
    pub(super) answer: &'static str,
    pub(super) records: Vec<MxRecordReport>,
    pub(super) detail: String,
}

#[derive(Debug, Serialize)]
pub(super) struct MxRecordReport {
    pub(super) preference: u16,
    pub(super) exchange: String,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct HostReport {
    pub(super) name: String,
    pub(super) preference: u16,
    pub(super) addresses: Vec<String>,
    /// Why the host has no usable address, when it has none.
    pub(super) error: Option<String>,
    /// One line per address tried: connected, refused, timed out.
    pub(super) connections: Vec<String>,
    pub(super) capabilities: Vec<String>,
    /// Whether the host offered STARTTLS.
    pub(super) starttls: Option<bool>,
    /// What TLS gave, when the session upgraded.
    pub(super) tls: Option<TlsHostReport>,
}

/// The TLS of one host's session.
#[derive(Debug, Serialize)]
pub(super) struct TlsHostReport {
    pub(super) version: String,
    pub(super) cipher: String,
    /// The certificate chain leads to a trust anchor and names the host.
    #[serde(rename = "verified")]
    pub(super) is_verified: bool,
    pub(super) verify_error: Option<String>,
}

/// One exchange: a command (none for the greeting) and the reply.
#[derive(Debug, Serialize)]
pub(super) struct Step {
    pub(super) host: String,
    pub(super) command: Option<String>,
    pub(super) reply: String,
    pub(super) code: u16,
    pub(super) enhanced: Option<String>,
    pub(super) explanation: Option<Explanation>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Verdict {
    pub(super) accepted: bool,
    /// The enhanced status delivery would record.
    pub(super) status: Option<String>,
    pub(super) summary: String,
    pub(super) explanation: Option<Explanation>,
}
