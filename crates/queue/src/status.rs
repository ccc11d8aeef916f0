//! The typed outcome of the last delivery attempt for one recipient: what was decided
//! (delivered, deferred, failed), the enhanced status code the DSN reports, the cause (a DNS
//! answer, a connection failure, TLS, the receiving server's reply at a stage, a local mailbox,
//! the queue's own age limit or an operator), the reply itself and the host that gave it.
//!
//! This is the one type a delivery outcome travels in: the delivery core decides it, the
//! envelope record stores it (record format 2), and history lines, DSNs, `queue show`, logs and
//! metrics read it. Nothing parses its text back.
//!
//! Pure data; names and words are stable because records store them.

use std::fmt;
use std::net::IpAddr;

use petrel_proto::client::Stage;
use petrel_proto::{EnhancedCode, Reply};

/// What the last attempt decided for the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Taken by the next hop or written to the mailbox: done.
    Delivered,
    /// Not delivered this time; retried at the schedule's next time.
    Deferred,
    /// Failed for good: a bounce is owed unless NOTIFY says otherwise.
    Failed,
}

impl Verdict {
    /// `delivered`, `deferred` or `failed`, as records, logs and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Deferred => "deferred",
            Verdict::Failed => "failed",
        }
    }

    /// Parses the word written by [`Verdict::as_str`].
    pub fn parse(word: &str) -> Option<Verdict> {
        [Verdict::Delivered, Verdict::Deferred, Verdict::Failed]
            .into_iter()
            .find(|verdict| verdict.as_str() == word)
    }
}

/// How a DNS question ended when it gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsProblem {
    /// NXDOMAIN: the domain does not exist (permanent, C-ROUTE-1).
    NoSuchDomain,
    /// A lone `MX 0 .` (RFC 7505, C-NULLMX-2).
    NullMx,
    /// The server answered SERVFAIL (transient).
    ServFail,
    /// No answer in time (transient).
    Timeout,
    /// The server refused the query (REFUSED).
    Refused,
    /// The host has no A or AAAA record.
    NoAddress,
    /// Anything else: the servers unreachable, a malformed answer.
    Other,
}

/// Why a TCP connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectProblem {
    /// RST to our SYN.
    Refused,
    /// No answer within `delivery.connect_timeout`.
    Timeout,
    /// No route to the host or network.
    Unreachable,
    /// Any other socket error.
    Other,
}

/// What went wrong with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The handshake failed (protocol versions, ciphers, an alert).
    Handshake,
    /// The server's certificate was not acceptable.
    Certificate,
    /// A policy required TLS (or verification) that the server did not give.
    Policy,
}

/// What a session could not do locally before any reply decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteProblem {
    /// The best MX host is this server (C-ROUTE-5).
    MailLoop,
    /// An address literal that is no address.
    BadLiteral,
    /// The message needs an extension the server lacks (SMTPUTF8, 8BITMIME, SIZE).
    Unsupported,
    /// A configured `discard:` route took it.
    Discarded,
}

/// Why the attempt ended as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The receiving server (SMTP or LMTP) decided it with its reply at this stage.
    Reply(Stage),
    /// The destination's DNS gave no usable answer.
    Dns(DnsProblem),
    /// No host could be connected to; the last failure.
    Connect(ConnectProblem),
    /// TLS failed.
    Tls(TlsProblem),
    /// The connection was lost, or a reply did not come in time, at this stage (C-RETRY-3).
    Lost(Stage),
    /// The server sent something that is not a reply at this stage.
    Malformed(Stage),
    /// Credentials are configured but cannot be used with this server (no TLS, no mechanism).
    AuthUnavailable,
    /// Decided before a session: a loop, a bad literal, a missing extension, a discard route.
    Route(RouteProblem),
    /// Written to (or failed to write to) a local Maildir.
    Mailbox,
    /// Older than `delivery.max_age` (C-RETRY-2).
    Expired,
    /// An operator's `queue bounce` or `queue delete`.
    Operator,
    /// Read from a record of format 1, which kept no cause.
    Unknown,
}

const CAUSE_WORDS: &[(Cause, &str)] = &[
    (Cause::Dns(DnsProblem::NoSuchDomain), "dns-nxdomain"),
    (Cause::Dns(DnsProblem::NullMx), "dns-null-mx"),
    (Cause::Dns(DnsProblem::ServFail), "dns-servfail"),
    (Cause::Dns(DnsProblem::Timeout), "dns-timeout"),
    (Cause::Dns(DnsProblem::Refused), "dns-refused"),
    (Cause::Dns(DnsProblem::NoAddress), "dns-no-address"),
    (Cause::Dns(DnsProblem::Other), "dns-failure"),
    (Cause::Connect(ConnectProblem::Refused), "connect-refused"),
    (Cause::Connect(ConnectProblem::Timeout), "connect-timeout"),
    (
        Cause::Connect(ConnectProblem::Unreachable),
        "connect-unreachable",
    ),
    (Cause::Connect(ConnectProblem::Other), "connect-failure"),
    (Cause::Tls(TlsProblem::Handshake), "tls-handshake"),
    (Cause::Tls(TlsProblem::Certificate), "tls-certificate"),
    (Cause::Tls(TlsProblem::Policy), "tls-policy"),
    (Cause::AuthUnavailable, "auth-unavailable"),
    (Cause::Route(RouteProblem::MailLoop), "mail-loop"),
    (Cause::Route(RouteProblem::BadLiteral), "bad-literal"),
    (Cause::Route(RouteProblem::Unsupported), "unsupported"),
    (Cause::Route(RouteProblem::Discarded), "discarded"),
    (Cause::Mailbox, "mailbox"),
    (Cause::Expired, "expired"),
    (Cause::Operator, "operator"),
    (Cause::Unknown, "unknown"),
];

impl Cause {
    /// The record's word: `dns-servfail`, `reply-rcpt`, `lost-data-end`, `mail-loop`, ...
    pub fn to_word(self) -> String {
        match self {
            Cause::Reply(stage) => format!("reply-{}", stage.as_str()),
            Cause::Lost(stage) => format!("lost-{}", stage.as_str()),
            Cause::Malformed(stage) => format!("malformed-{}", stage.as_str()),
            other => CAUSE_WORDS
                .iter()
                .find(|(cause, _)| *cause == other)
                .map_or("unknown", |(_, word)| word)
                .to_owned(),
        }
    }

    /// Parses the word written by [`Cause::to_word`].
    pub fn parse(word: &str) -> Option<Cause> {
        let staged = |prefix: &str| word.strip_prefix(prefix).and_then(Stage::parse);
        if let Some(stage) = staged("reply-") {
            return Some(Cause::Reply(stage));
        }
        if let Some(stage) = staged("lost-") {
            return Some(Cause::Lost(stage));
        }
        if let Some(stage) = staged("malformed-") {
            return Some(Cause::Malformed(stage));
        }
        CAUSE_WORDS
            .iter()
            .find(|(_, known)| *known == word)
            .map(|(cause, _)| *cause)
    }

    /// A few words for people: `DNS SERVFAIL`, `the server's reply to RCPT`, ...
    pub fn describe(self) -> String {
        match self {
            Cause::Reply(stage) => format!("the server's reply at {}", stage_name(stage)),
            Cause::Dns(problem) => match problem {
                DnsProblem::NoSuchDomain => "DNS NXDOMAIN".into(),
                DnsProblem::NullMx => "DNS null MX".into(),
                DnsProblem::ServFail => "DNS SERVFAIL".into(),
                DnsProblem::Timeout => "DNS timeout".into(),
                DnsProblem::Refused => "DNS REFUSED".into(),
                DnsProblem::NoAddress => "DNS: no address for the host".into(),
                DnsProblem::Other => "DNS failure".into(),
            },
            Cause::Connect(problem) => match problem {
                ConnectProblem::Refused => "connection refused".into(),
                ConnectProblem::Timeout => "connection timed out".into(),
                ConnectProblem::Unreachable => "host unreachable".into(),
                ConnectProblem::Other => "connection failed".into(),
            },
            Cause::Tls(problem) => match problem {
                TlsProblem::Handshake => "TLS handshake failed".into(),
                TlsProblem::Certificate => "TLS certificate not acceptable".into(),
                TlsProblem::Policy => "TLS policy not met".into(),
            },
            Cause::Lost(stage) => format!("connection lost at {}", stage_name(stage)),
            Cause::Malformed(stage) => format!("malformed reply at {}", stage_name(stage)),
            Cause::AuthUnavailable => "AUTH not possible with this server".into(),
            Cause::Route(problem) => match problem {
                RouteProblem::MailLoop => "mail loop".into(),
                RouteProblem::BadLiteral => "bad address literal".into(),
                RouteProblem::Unsupported => {
                    "the server lacks an extension the message needs".into()
                }
                RouteProblem::Discarded => "discarded by a route".into(),
            },
            Cause::Mailbox => "local mailbox".into(),
            Cause::Expired => "too old (delivery.max_age)".into(),
            Cause::Operator => "the operator".into(),
            Cause::Unknown => "not recorded".into(),
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Greeting => "the greeting",
        Stage::Hello => "EHLO",
        Stage::Mail => "MAIL",
        Stage::Rcpt => "RCPT",
        Stage::Data => "DATA",
        Stage::DataEnd => "the end of data",
        Stage::Quit => "QUIT",
    }
}

/// The host that gave a reply (the DSN's `Remote-MTA:`, RFC 3464 §2.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMta {
    /// The host name tried (an MX name, a relayhost, an LMTP address).
    pub host: String,
    /// The address connected to, when there was one.
    pub address: Option<IpAddr>,
}

impl fmt::Display for RemoteMta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            Some(address) => write!(f, "{} [{address}]", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// The outcome of the last attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub verdict: Verdict,
    /// The enhanced status code (the reply's, or ours), for the DSN's `Status:`.
    pub code: EnhancedCode,
    pub cause: Cause,
    /// The receiving server's reply, when one decided it (the DSN's `Diagnostic-Code:`).
    pub reply: Option<Reply>,
    /// Who gave the reply or was being talked to.
    pub remote_mta: Option<RemoteMta>,
    /// One line for people: the reply line, or our description of what happened.
    pub detail: String,
}

impl DeliveryStatus {
    /// The outcome a server's `reply` at `stage` means, `remote_mta` having given it (C-RETRY-4):
    /// delivered only for a 2yz at the end of the data (the server took the content); 4yz
    /// deferred, 5yz failed; any other positive reply (a 2yz or 3yz where the content was not
    /// taken) is not a delivery, so it is deferred with 4.0.0. The code is the reply's when it
    /// fits the verdict, else the class's `x.0.0`.
    pub fn from_reply(reply: &Reply, stage: Stage, remote_mta: Option<RemoteMta>) -> Self {
        let (verdict, class) = match reply.code {
            code if code < 300 && stage == Stage::DataEnd => (Verdict::Delivered, 2),
            code if code < 500 => (Verdict::Deferred, 4),
            _ => (Verdict::Failed, 5),
        };
        let code = reply
            .enhanced
            .filter(|enhanced| enhanced.class == class)
            .unwrap_or(EnhancedCode::undefined(class));
        DeliveryStatus {
            verdict,
            code,
            cause: Cause::Reply(stage),
            reply: Some(reply.clone()),
            remote_mta,
            detail: reply.to_line(),
        }
    }

    /// An outcome decided without a reply: `cause` with our `code` and description.
    pub fn decided(verdict: Verdict, code: EnhancedCode, cause: Cause, detail: String) -> Self {
        DeliveryStatus {
            verdict,
            code,
            cause,
            reply: None,
            remote_mta: None,
            detail,
        }
    }

    /// The same outcome, attributed to `remote_mta`.
    pub fn at(mut self, remote_mta: RemoteMta) -> Self {
        self.remote_mta = Some(remote_mta);
        self
    }

    /// A line for history and logs: `4.4.3 DNS SERVFAIL: MX lookup for example.org failed`.
    pub fn summary(&self) -> String {
        match &self.reply {
            Some(_) => format!("{} ({})", self.detail, self.cause.describe()),
            None => format!("{} {}: {}", self.code, self.cause.describe(), self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_words_round_trip() {
        let mut causes: Vec<Cause> = CAUSE_WORDS.iter().map(|(cause, _)| *cause).collect();
        for stage in [Stage::Greeting, Stage::Rcpt, Stage::DataEnd] {
            causes.extend([
                Cause::Reply(stage),
                Cause::Lost(stage),
                Cause::Malformed(stage),
            ]);
        }
        for cause in causes {
            assert_eq!(Cause::parse(&cause.to_word()), Some(cause), "{cause:?}");
        }
        assert_eq!(Cause::parse("reply-nowhere"), None);
        assert_eq!(Cause::parse("dns-"), None);
    }

    #[test]
    fn a_reply_decides_by_its_class() {
        let reply = |code, enhanced| Reply {
            code,
            enhanced,
            lines: vec!["text".into()],
        };
        let delivered = DeliveryStatus::from_reply(&reply(250, None), Stage::DataEnd, None);
        assert_eq!(delivered.verdict, Verdict::Delivered);
        assert_eq!(delivered.code.to_string(), "2.0.0");
        // A positive reply anywhere but the end of data delivered nothing (an untrusted
        // server's 3yz or stray 2yz must not lose the message).
        for (code, stage) in [
            (354, Stage::Rcpt),
            (250, Stage::Data),
            (334, Stage::DataEnd),
        ] {
            let odd = DeliveryStatus::from_reply(&reply(code, None), stage, None);
            assert_eq!(odd.verdict, Verdict::Deferred, "{code} at {stage:?}");
            assert_eq!(odd.code.to_string(), "4.0.0");
        }
        let deferred = DeliveryStatus::from_reply(&reply(451, None), Stage::Rcpt, None);
        assert_eq!(
            (deferred.verdict, deferred.code.to_string()),
            (Verdict::Deferred, "4.0.0".to_owned())
        );
        let code = EnhancedCode::parse("5.1.1");
        let failed = DeliveryStatus::from_reply(&reply(550, code), Stage::Rcpt, None);
        assert_eq!(failed.verdict, Verdict::Failed);
        assert_eq!(failed.code.to_string(), "5.1.1");
        assert_eq!(failed.cause, Cause::Reply(Stage::Rcpt));
    }
}
