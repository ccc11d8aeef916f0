//! MTA-STS (RFC 8461), the pure part: the `_mta-sts` TXT record (§3.1), the policy file
//! fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (§3.2), and whether an MX
//! host name matches the policy's `mx` patterns (§4.1). Nothing here does IO.
//!
//! Both inputs come from the network and are untrusted: anything malformed is an error value,
//! never a panic; sizes are bounded by the caller (the fetch's 64 KiB limit, §3.3).

/// What a policy asks of senders (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to matching MX hosts over verified TLS; defer otherwise.
    Enforce,
    /// Report failures (TLSRPT) but deliver anyway.
    Testing,
    /// No policy (a domain withdrawing one).
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `mx` patterns, lower-case, without a trailing dot: `mx.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// How long the policy may be cached, in seconds (at most 31557600, §3.2).
    pub max_age_seconds: u64,
}

/// The largest `max_age` a policy may give (about a year, §3.2).
pub const MAX_AGE_LIMIT_SECONDS: u64 = 31_557_600;

/// Parses the `_mta-sts` TXT record: `v=STSv1; id=...;`. Returns the policy id, which changes
/// when the policy does.
///
/// # Errors
/// A sentence saying what is wrong: not version STSv1 first, no id, an id that is not 1-32
/// letters and digits.
pub fn parse_txt(record: &str) -> Result<String, String> {
    let mut fields = record
        .split(';')
        .map(str::trim)
        .filter(|field| !field.is_empty());
    if fields.next() != Some("v=STSv1") {
        return Err(format!("not an MTA-STS record (v=STSv1 first): {record:?}"));
    }
    let id = fields
        .filter_map(|field| field.split_once('='))
        .find(|(key, _)| key.trim() == "id")
        .map(|(_, value)| value.trim())
        .ok_or_else(|| format!("MTA-STS record without id: {record:?}"))?;
    let is_valid = (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !is_valid {
        return Err(format!("MTA-STS id is not 1-32 letters and digits: {id:?}"));
    }
    Ok(id.to_owned())
}

/// Refuses a second value for a single-valued key.
fn once<T>(slot: &Option<T>, key: &str) -> Result<(), String> {
    match slot {
        Some(_) => Err(format!("policy key {key} given twice")),
        None => Ok(()),
    }
}

/// Parses a policy file (`key: value` lines, CRLF or LF; unknown keys ignored, §3.2).
///
/// # Errors
/// A sentence: a missing or wrong `version`, a missing or unknown `mode`, a missing or bad
/// `max_age`, no `mx` where the mode needs one, a repeated single-valued key.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("policy line without a colon: {line:?}"));
        };
        let value = value.trim();
        match key.trim() {
            "version" => {
                once(&version, "version")?;
                version = Some(value.to_owned());
            }
            "mode" => {
                once(&mode, "mode")?;
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown policy mode {other:?}")),
                });
            }
            "max_age" => {
                once(&max_age, "max_age")?;
                let seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= MAX_AGE_LIMIT_SECONDS && value.len() <= 10)
                    .ok_or_else(|| format!("bad max_age {value:?}"))?;
                max_age = Some(seconds);
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("policy without version: STSv1".into());
    }
    let mode = mode.ok_or("policy without mode")?;
    let max_age_seconds = max_age.ok_or("policy without max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("policy without mx".into());
    }
    Ok(Policy {
        mode,
        mx,
        max_age_seconds,
    })
}

impl Policy {
    /// Whether `host` (an MX host name) matches one of the `mx` patterns (§4.1): the same name,
    /// or `*.` followed by the name without exactly its leftmost label.
    pub fn matches_mx(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_txt_record_gives_the_policy_id() {
        assert_eq!(
            parse_txt("v=STSv1; id=20160831085700Z;"),
            Ok("20160831085700Z".into())
        );
        assert_eq!(parse_txt("v=STSv1;id=abc"), Ok("abc".into()));
        assert!(parse_txt("id=abc; v=STSv1").is_err(), "version first");
        assert!(parse_txt("v=STSv1;").is_err(), "no id");
        assert!(parse_txt("v=STSv1; id=not-alnum").is_err());
        assert!(parse_txt(&format!("v=STSv1; id={}", "a".repeat(33))).is_err());
    }

    #[test]
    fn the_policy_file_of_rfc_8461() {
        let text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";
        let policy = parse_policy(text).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age_seconds, 604_800);
        assert_eq!(policy.mx.len(), 3);
        assert!(policy.matches_mx("mail.example.com"));
        assert!(policy.matches_mx("MAIL.example.com."));
        assert!(policy.matches_mx("foo.example.net"));
        assert!(!policy.matches_mx("foo.bar.example.net"), "one label only");
        assert!(!policy.matches_mx("example.net"));
        assert!(!policy.matches_mx("evil-mail.example.com"));
        let lf =
            parse_policy("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 86400\nfuture: x\n");
        assert_eq!(
            lf.map(|p| p.mode),
            Ok(Mode::Testing),
            "LF lines, unknown keys ignored"
        );
    }

    #[test]
    fn malformed_policies_are_refused() {
        let cases = [
            ("mode: enforce\nmx: a.test\nmax_age: 1\n", "version"),
            (
                "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                "version",
            ),
            (
                "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
                "mode",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx"),
            ("version: STSv1\nmode: enforce\nmx: a.test\n", "max_age"),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999999\n",
                "max_age",
            ),
            (
                "version: STSv1\nmode: enforce\nmode: testing\nmx: a\nmax_age: 1\n",
                "twice",
            ),
            ("version STSv1\n", "colon"),
        ];
        for (text, word) in cases {
            let error = parse_policy(text).unwrap_err();
            assert!(error.contains(word), "{error} for {text:?}");
        }
        let none = parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
        assert_eq!(none.mode, Mode::None);
    }
}
