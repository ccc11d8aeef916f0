//! The recipient outcome attributes of an envelope record: the typed outcome of version 2
//! (`outcome`, `status`, `cause`, `detail`, `reply-code`, `reply-status`, `reply-line`, `mta`,
//! `mta-address`) and the text of version 1 (`reply`, `status`, `remote-mta`), turned into a
//! [`DeliveryStatus`].
//!
//! Failure policy: values come from disk and may be damaged; a bad or repeated value, a
//! version-1 key in a version-2 record (or the reverse) or an incomplete outcome is an error
//! naming the attribute, never a panic.

use std::net::IpAddr;

use petrel_proto::params::parse_decimal;
use petrel_proto::{EnhancedCode, Reply};

use super::{Version, set_once, unescape};
use crate::envelope::RecipientState;
use crate::status::{Cause, DeliveryStatus, RemoteMta, Verdict};

/// The outcome attributes of one `rcpt` line, as read.
#[derive(Default)]
pub(super) struct OutcomeFields {
    verdict: Option<Verdict>,
    code: Option<EnhancedCode>,
    cause: Option<Cause>,
    detail: Option<String>,
    reply_code: Option<u16>,
    reply_status: Option<EnhancedCode>,
    reply_lines: Vec<String>,
    mta: Option<String>,
    mta_address: Option<IpAddr>,
    /// Version 1: `status=` as text, `reply=`, `remote-mta=`.
    legacy_status: Option<String>,
    legacy_reply: Option<String>,
    legacy_remote_mta: Option<String>,
}

impl OutcomeFields {
    /// Takes one attribute `key=value` of the record's `version`.
    pub(super) fn parse(&mut self, version: Version, key: &str, value: &str) -> Result<(), String> {
        match (version, key) {
            (Version::Current, "outcome") => {
                set_once(&mut self.verdict, Verdict::parse(value), key)
            }
            (Version::Current, "status") => {
                set_once(&mut self.code, EnhancedCode::parse(value), key)
            }
            (Version::Current, "cause") => set_once(&mut self.cause, Cause::parse(value), key),
            (Version::Current, "detail") => set_once(&mut self.detail, unescape(value), key),
            (Version::Current, "reply-code") => {
                let code = parse_decimal(value)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (200..600).contains(n));
                set_once(&mut self.reply_code, code, key)
            }
            (Version::Current, "reply-status") => {
                set_once(&mut self.reply_status, EnhancedCode::parse(value), key)
            }
            (Version::Current, "reply-line") => {
                let line = unescape(value).ok_or("malformed value of reply-line")?;
                self.reply_lines.push(line);
                Ok(())
            }
            (Version::Current, "mta") => set_once(&mut self.mta, unescape(value), key),
            (Version::Current, "mta-address") => {
                set_once(&mut self.mta_address, value.parse().ok(), key)
            }
            (Version::One, "status") => set_once(&mut self.legacy_status, unescape(value), key),
            (Version::One, "reply") => set_once(&mut self.legacy_reply, unescape(value), key),
            (Version::One, "remote-mta") => {
                set_once(&mut self.legacy_remote_mta, unescape(value), key)
            }
            _ => Err(format!("unknown recipient attribute {key:?}")),
        }
    }

    /// The outcome read, or `None` when the recipient has none yet.
    pub(super) fn finish(
        self,
        version: Version,
        state: RecipientState,
    ) -> Result<Option<DeliveryStatus>, String> {
        match version {
            Version::Current => self.finish_typed(),
            Version::One => Ok(self.finish_legacy(state)),
        }
    }

    fn finish_typed(self) -> Result<Option<DeliveryStatus>, String> {
        let Some(verdict) = self.verdict else {
            let is_empty = self.code.is_none()
                && self.cause.is_none()
                && self.detail.is_none()
                && self.reply_code.is_none()
                && self.reply_status.is_none()
                && self.reply_lines.is_empty()
                && self.mta.is_none()
                && self.mta_address.is_none();
            return if is_empty {
                Ok(None)
            } else {
                Err("outcome attributes without outcome".into())
            };
        };
        let missing = |key: &str| format!("outcome without {key}");
        let reply = match self.reply_code {
            Some(code) => Some(Reply {
                code,
                enhanced: self.reply_status,
                lines: self.reply_lines,
            }),
            None if self.reply_status.is_some() || !self.reply_lines.is_empty() => {
                return Err(missing("reply-code"));
            }
            None => None,
        };
        let remote_mta = match self.mta {
            Some(host) => Some(RemoteMta {
                host,
                address: self.mta_address,
            }),
            None if self.mta_address.is_some() => return Err(missing("mta")),
            None => None,
        };
        Ok(Some(DeliveryStatus {
            verdict,
            code: self.code.ok_or_else(|| missing("status"))?,
            cause: self.cause.ok_or_else(|| missing("cause"))?,
            reply,
            remote_mta,
            detail: self.detail.ok_or_else(|| missing("detail"))?,
        }))
    }

    /// A version-1 outcome: the verdict from the state, the code from `status=` (or the
    /// state's class), the reply when `reply=` reads as one from the `remote-mta=`.
    fn finish_legacy(self, state: RecipientState) -> Option<DeliveryStatus> {
        if self.legacy_status.is_none() && self.legacy_reply.is_none() {
            return None;
        }
        let (verdict, class) = match state {
            RecipientState::Delivered => (Verdict::Delivered, 2),
            RecipientState::Pending => (Verdict::Deferred, 4),
            RecipientState::Failed => (Verdict::Failed, 5),
        };
        let remote_mta = self.legacy_remote_mta.map(|text| legacy_remote_mta(&text));
        let detail = self.legacy_reply.unwrap_or_default();
        let reply = remote_mta.as_ref().and_then(|_| legacy_reply(&detail));
        Some(DeliveryStatus {
            verdict,
            code: self
                .legacy_status
                .as_deref()
                .and_then(EnhancedCode::parse)
                .unwrap_or(EnhancedCode::undefined(class)),
            cause: Cause::Unknown,
            reply,
            remote_mta,
            detail,
        })
    }
}

/// `host [address]` as version 1 wrote it.
fn legacy_remote_mta(text: &str) -> RemoteMta {
    let parsed = text
        .strip_suffix(']')
        .and_then(|rest| rest.rsplit_once(" ["));
    match parsed.and_then(|(host, address)| Some((host, address.parse().ok()?))) {
        Some((host, address)) => RemoteMta {
            host: host.to_owned(),
            address: Some(address),
        },
        None => RemoteMta {
            host: text.to_owned(),
            address: None,
        },
    }
}

/// A reply line `550 5.1.1 text` as version 1 stored a remote reply, read by the reply parser.
fn legacy_reply(line: &str) -> Option<Reply> {
    let wire = format!("{line}\r\n");
    match petrel_proto::reply::parse::parse_reply(wire.as_bytes()) {
        Ok(Some((reply, _))) => Some(reply),
        _ => None,
    }
}
