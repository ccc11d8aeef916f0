//! The MAIL and RCPT command lines of the client session: only parameters of extensions the
//! server advertised (S-TXN-8), DSN's ENVID and ORCPT as xtext (RFC 3461 §4).

use super::{Capabilities, Outgoing};
use crate::params::Body;
use crate::xtext;

/// `MAIL FROM:<path>` with the parameters the server's extensions allow (S-TXN-8); a probe
/// sends no content, so it declares no SIZE.
pub(super) fn mail_command(caps: &Capabilities, message: &Outgoing, is_probe: bool) -> String {
    let mut line = format!("MAIL FROM:<{}>", message.reverse_path);
    if caps.size_bytes.is_some() && !is_probe {
        line.push_str(&format!(" SIZE={}", message.content.len()));
    }
    if caps.eight_bit_mime
        && (message.parameters.body == Body::EightBitMime || !message.content.is_ascii())
    {
        line.push_str(" BODY=8BITMIME");
    }
    if caps.smtputf8
        && (message.parameters.is_smtputf8
            || !message.reverse_path.is_ascii()
            || message.recipients.iter().any(|(r, _)| !r.is_ascii()))
    {
        line.push_str(" SMTPUTF8");
    }
    if caps.requiretls && message.parameters.requires_tls {
        line.push_str(" REQUIRETLS");
    }
    if caps.dsn {
        if let Some(ret) = message.parameters.ret {
            line.push_str(&format!(" RET={}", ret.as_str()));
        }
        if let Some(envid) = &message.parameters.envelope_id {
            line.push_str(&format!(" ENVID={}", xtext::encode(envid.as_bytes())));
        }
    }
    line
}

/// `RCPT TO:<path>` with DSN parameters when the server offers DSN.
pub(super) fn rcpt_command(caps: &Capabilities, message: &Outgoing, index: usize) -> String {
    let Some((address, parameters)) = message.recipients.get(index) else {
        return "RSET".into();
    };
    let mut line = format!("RCPT TO:<{address}>");
    if caps.dsn {
        if let Some(notify) = parameters.notify {
            line.push_str(&format!(" NOTIFY={}", notify.render()));
        }
        if let Some(orcpt) = &parameters.original_recipient {
            line.push_str(&format!(
                " ORCPT={};{}",
                orcpt.address_type,
                xtext::encode(orcpt.address.as_bytes())
            ));
        }
    }
    line
}
