//! Typed ESMTP parameters of MAIL and RCPT (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8,
//! RFC 3461 DSN, RFC 8689 REQUIRETLS) and their validation.
//!
//! Handles untrusted bytes. A parameter that is unknown, malformed or repeated becomes a
//! `ParamError`, which the session turns into exactly one reply (555 5.5.4 or 501 5.5.4).

use crate::xtext;

/// `BODY=` of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

impl Body {
    /// The keyword as written in the parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
        }
    }

    /// Parses the keyword case-insensitively.
    pub fn parse(value: &str) -> Option<Body> {
        if value.eq_ignore_ascii_case("7BIT") {
            Some(Body::SevenBit)
        } else if value.eq_ignore_ascii_case("8BITMIME") {
            Some(Body::EightBitMime)
        } else {
            None
        }
    }
}

/// `RET=` of MAIL (RFC 3461 §4.3): what a bounce carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

impl Ret {
    /// The keyword as written in the parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }

    /// Parses the keyword case-insensitively.
    pub fn parse(value: &str) -> Option<Ret> {
        if value.eq_ignore_ascii_case("FULL") {
            Some(Ret::Full)
        } else if value.eq_ignore_ascii_case("HDRS") {
            Some(Ret::Headers)
        } else {
            None
        }
    }
}

/// `NOTIFY=` of RCPT (RFC 3461 §4.1): `NEVER`, or any of SUCCESS, FAILURE, DELAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub is_never: bool,
    pub on_success: bool,
    pub on_failure: bool,
    pub on_delay: bool,
}

impl Notify {
    /// Parses the comma-separated list; `NEVER` must stand alone and no keyword may repeat.
    pub fn parse(value: &str) -> Option<Notify> {
        let mut notify = Notify::default();
        let mut count = 0;
        for word in value.split(',') {
            count += 1;
            let flag = if word.eq_ignore_ascii_case("NEVER") {
                &mut notify.is_never
            } else if word.eq_ignore_ascii_case("SUCCESS") {
                &mut notify.on_success
            } else if word.eq_ignore_ascii_case("FAILURE") {
                &mut notify.on_failure
            } else if word.eq_ignore_ascii_case("DELAY") {
                &mut notify.on_delay
            } else {
                return None;
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        if notify.is_never && count > 1 {
            return None;
        }
        Some(notify)
    }

    /// Renders the list as written in the parameter.
    pub fn render(&self) -> String {
        if self.is_never {
            return "NEVER".to_owned();
        }
        let mut words = Vec::new();
        if self.on_success {
            words.push("SUCCESS");
        }
        if self.on_failure {
            words.push("FAILURE");
        }
        if self.on_delay {
            words.push("DELAY");
        }
        words.join(",")
    }
}

/// `ORCPT=addr-type;xtext` of RCPT (RFC 3461 §4.2), kept decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRecipient {
    pub address_type: String,
    pub address: String,
}

/// The parameters of one MAIL command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParameters {
    pub size_bytes: Option<u64>,
    pub body: Body,
    pub is_smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID, decoded from xtext.
    pub envelope_id: Option<String>,
    /// `AUTH=` (RFC 4954 §5): the submitter's identity, decoded; `<>` for an unknown one.
    pub auth: Option<String>,
    /// `REQUIRETLS` (RFC 8689 §4.1): every hop must be TLS with a verified certificate.
    pub requires_tls: bool,
}

/// The parameters of one RCPT command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParameters {
    pub notify: Option<Notify>,
    pub original_recipient: Option<OriginalRecipient>,
}

/// Why a parameter list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Not a parameter we know or advertise (RFC 5321 §4.1.1.11: 555 5.5.4).
    Unknown(String),
    /// Known, but its value is malformed, or it appears twice (501 5.5.4).
    Invalid(String),
}

/// Longest ENVID, in octets of xtext (RFC 3461 §4.4).
pub const MAX_ENVID_BYTES: usize = 100;
/// Longest ORCPT value, in octets of xtext (RFC 3461 §4.2).
pub const MAX_ORCPT_BYTES: usize = 500;

/// Splits `KEY[=VALUE]` words; keywords compare case-insensitively.
fn split_param(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (word, None),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::Invalid(format!("{key} given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses the words after `MAIL FROM:<path>`.
///
/// # Errors
/// `ParamError::Unknown` for a keyword we do not implement, `ParamError::Invalid` for a bad or
/// repeated value.
pub fn parse_mail_parameters<'a>(
    words: impl Iterator<Item = &'a str>,
) -> Result<MailParameters, ParamError> {
    let mut params = MailParameters::default();
    let mut body = None;
    let mut smtputf8 = None;
    for word in words {
        let (key, value) = split_param(word);
        let upper = key.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("SIZE", Some(value)) => {
                let size = parse_decimal(value)
                    .ok_or_else(|| ParamError::Invalid("SIZE needs a decimal number".into()))?;
                set_once(&mut params.size_bytes, size, "SIZE")?;
            }
            ("BODY", Some(value)) => {
                let parsed = Body::parse(value)
                    .ok_or_else(|| ParamError::Invalid("BODY must be 7BIT or 8BITMIME".into()))?;
                set_once(&mut body, parsed, "BODY")?;
            }
            ("SMTPUTF8", None) => set_once(&mut smtputf8, true, "SMTPUTF8")?,
            ("REQUIRETLS", None) => {
                if params.requires_tls {
                    return Err(ParamError::Invalid("REQUIRETLS given twice".into()));
                }
                params.requires_tls = true;
            }
            ("RET", Some(value)) => {
                let parsed = Ret::parse(value)
                    .ok_or_else(|| ParamError::Invalid("RET must be FULL or HDRS".into()))?;
                set_once(&mut params.ret, parsed, "RET")?;
            }
            ("ENVID", Some(value)) => {
                if value.is_empty() || value.len() > MAX_ENVID_BYTES {
                    return Err(ParamError::Invalid("ENVID must be 1 to 100 octets".into()));
                }
                let decoded = xtext::decode(value)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| ParamError::Invalid("ENVID is not valid xtext".into()))?;
                set_once(&mut params.envelope_id, decoded, "ENVID")?;
            }
            ("AUTH", Some(value)) => {
                let decoded = xtext::decode(value)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| ParamError::Invalid("AUTH is not valid xtext".into()))?;
                set_once(&mut params.auth, decoded, "AUTH")?;
            }
            ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None)
            | ("SMTPUTF8" | "REQUIRETLS", Some(_)) => {
                return Err(ParamError::Invalid(format!(
                    "{upper} has a malformed value"
                )));
            }
            _ => return Err(ParamError::Unknown(upper)),
        }
    }
    params.body = body.unwrap_or_default();
    params.is_smtputf8 = smtputf8.unwrap_or(false);
    Ok(params)
}

/// Parses the words after `RCPT TO:<path>`.
///
/// # Errors
/// As [`parse_mail_parameters`].
pub fn parse_rcpt_parameters<'a>(
    words: impl Iterator<Item = &'a str>,
) -> Result<RcptParameters, ParamError> {
    let mut params = RcptParameters::default();
    for word in words {
        let (key, value) = split_param(word);
        let upper = key.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("NOTIFY", Some(value)) => {
                let parsed = Notify::parse(value).ok_or_else(|| {
                    ParamError::Invalid("NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY".into())
                })?;
                set_once(&mut params.notify, parsed, "NOTIFY")?;
            }
            ("ORCPT", Some(value)) => {
                let parsed = parse_orcpt(value)?;
                set_once(&mut params.original_recipient, parsed, "ORCPT")?;
            }
            ("NOTIFY" | "ORCPT", None) => {
                return Err(ParamError::Invalid(format!("{upper} needs a value")));
            }
            _ => return Err(ParamError::Unknown(upper)),
        }
    }
    Ok(params)
}

fn parse_orcpt(value: &str) -> Result<OriginalRecipient, ParamError> {
    let invalid =
        || ParamError::Invalid("ORCPT must be addr-type;xtext, at most 500 octets".into());
    if value.len() > MAX_ORCPT_BYTES {
        return Err(invalid());
    }
    let (address_type, encoded) = value.split_once(';').ok_or_else(invalid)?;
    let is_atom =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !is_atom(address_type) || encoded.is_empty() {
        return Err(invalid());
    }
    let decoded = xtext::decode(encoded)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    Ok(OriginalRecipient {
        address_type: address_type.to_owned(),
        address: decoded,
    })
}

/// Parses a decimal number of at most 20 digits without overflow.
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_parameters_parsed_and_typed() {
        let params = parse_mail_parameters(
            "size=1000 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=a+2Bb requiretls".split(' '),
        );
        assert_eq!(
            params,
            Ok(MailParameters {
                size_bytes: Some(1000),
                body: Body::EightBitMime,
                is_smtputf8: true,
                ret: Some(Ret::Headers),
                envelope_id: Some("a+b".into()),
                auth: None,
                requires_tls: true,
            })
        );
        // RFC 8689 §4.1: REQUIRETLS takes no value and comes once.
        for bad in ["REQUIRETLS=yes", "REQUIRETLS REQUIRETLS"] {
            assert!(matches!(
                parse_mail_parameters(bad.split(' ')),
                Err(ParamError::Invalid(_))
            ));
        }
    }

    #[test]
    fn s_dsn_1_duplicates_and_bad_values_refused() {
        assert!(matches!(
            parse_mail_parameters("RET=FULL RET=HDRS".split(' ')),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            parse_rcpt_parameters(["NOTIFY=NEVER,SUCCESS"].into_iter()),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            parse_rcpt_parameters(["NOTIFY=DELAY,DELAY"].into_iter()),
            Err(ParamError::Invalid(_))
        ));
        let long_envid = format!("ENVID={}", "x".repeat(101));
        assert!(matches!(
            parse_mail_parameters([long_envid.as_str()].into_iter()),
            Err(ParamError::Invalid(_))
        ));
    }

    #[test]
    fn s_txn_7_unknown_parameter() {
        assert_eq!(
            parse_mail_parameters(["BODY=8BITMIME", "FOO=1"].into_iter()),
            Err(ParamError::Unknown("FOO".into()))
        );
        assert_eq!(
            parse_mail_parameters(["BODY=BINARYMIME"].into_iter()),
            Err(ParamError::Invalid("BODY must be 7BIT or 8BITMIME".into()))
        );
    }

    #[test]
    fn orcpt_and_notify() {
        let params = parse_rcpt_parameters(
            "NOTIFY=success,failure ORCPT=rfc822;a+2Bb@example.org".split(' '),
        );
        assert_eq!(
            params,
            Ok(RcptParameters {
                notify: Some(Notify {
                    is_never: false,
                    on_success: true,
                    on_failure: true,
                    on_delay: false
                }),
                original_recipient: Some(OriginalRecipient {
                    address_type: "rfc822".into(),
                    address: "a+b@example.org".into()
                }),
            })
        );
    }
}
