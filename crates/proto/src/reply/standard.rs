//! Every reply petrel sends, as a named value (docs/conformance.md §16).
//!
//! Call sites use these names and never spell a code. `ALL` lists them for the tests that check
//! each has a reference entry and that each enhanced code's class matches its basic code.

use super::{EnhancedCode, Template};

macro_rules! replies {
    ($( $(#[$doc:meta])* $name:ident = $code:literal $( [$class:literal, $subject:literal, $detail:literal] )? $text:literal; )*) => {
        $(
            $(#[$doc])*
            pub const $name: Template = Template {
                name: stringify!($name),
                code: $code,
                enhanced: replies!(@enhanced $( $class, $subject, $detail )?),
                text: $text,
            };
        )*
        /// Every reply template, for tests and the reference.
        pub const ALL: &[Template] = &[$($name),*];
    };
    (@enhanced) => { None };
    (@enhanced $class:literal, $subject:literal, $detail:literal) => {
        Some(EnhancedCode::new($class, $subject, $detail))
    };
}

replies! {
    /// The greeting (S-SESS-1); the text is replaced by `<hostname> ESMTP`.
    GREETING = 220 "ESMTP";
    /// Answer to HELP before or after EHLO (S-SESS-11).
    HELP = 214 [2, 0, 0] "See https://www.rfc-editor.org/rfc/rfc5321";
    /// QUIT (S-SESS-7).
    CLOSING = 221 [2, 0, 0] "Bye";
    /// The EHLO and HELO replies carry no enhanced code (S-REPLY-3).
    HELLO = 250 "Hello";
    /// RSET, NOOP (S-SESS-7).
    OK = 250 [2, 0, 0] "OK";
    /// MAIL accepted (S-TXN-9).
    MAIL_OK = 250 [2, 1, 0] "Sender OK";
    /// RCPT accepted (S-TXN-9).
    RCPT_OK = 250 [2, 1, 5] "Recipient OK";
    /// End of data: the message is on disk (S-DATA-6, S-DATA-10).
    QUEUED = 250 [2, 0, 0] "queued";
    /// A non-final BDAT chunk received (S-BDAT-1).
    CHUNK_OK = 250 [2, 0, 0] "octets received";
    /// VRFY: we never verify live (S-SESS-10).
    CANNOT_VERIFY = 252 [2, 1, 5] "Cannot VRFY user, but will accept message and attempt delivery";
    /// DATA accepted (S-DATA-1); no enhanced code on 3yz.
    START_MAIL_INPUT = 354 "Start mail input; end with <CRLF>.<CRLF>";
    /// Shutting down (S-SESS-9).
    SHUTTING_DOWN = 421 [4, 3, 2] "Service shutting down, closing transmission channel";
    /// Idle timeout (S-SESS-13).
    IDLE_TIMEOUT = 421 [4, 4, 2] "Idle timeout, closing transmission channel";
    /// Too many errors in one session (S-SESS-9).
    TOO_MANY_ERRORS = 421 [4, 7, 0] "Too many errors, closing transmission channel";
    /// Over `limits.max_connections`: greeting refused, then close.
    TOO_MANY_CONNECTIONS = 421 [4, 7, 0] "Too many connections, try again later";
    /// Over `limits.max_connections_per_minute_per_ip`: greeting refused, then close.
    TOO_MANY_CONNECTIONS_PER_MINUTE = 421 [4, 7, 0] "Too many connections from your address in the last minute, try again later";
    /// MAIL over `limits.max_messages_per_minute_per_ip`.
    MESSAGE_RATE_EXCEEDED = 450 [4, 7, 1] "Too much mail from your address, try again later";
    /// RCPT of a triplet seen for the first time, or retried too soon (`[greylist]`, RFC 6647).
    GREYLISTED = 451 [4, 7, 1] "Greylisted: please try again later";
    /// RCPT over `limits.max_recipients_per_minute_per_ip`.
    RECIPIENT_RATE_EXCEEDED = 450 [4, 7, 1] "Too many recipients from your address, try again later";
    /// The client's address scored at or over `screen.dnsbl_threshold` in the DNS lists:
    /// greeting refused (no enhanced code on a greeting), then 503 until QUIT (S-SESS-1).
    DNSBL_LISTED = 554 "Service unavailable; client blocked by a DNS blocklist";
    /// RCPT from a client the DNS lists score at or over the threshold, with
    /// `screen.dnsbl_action = "rcpt"`.
    DNSBL_LISTED_AT_RCPT = 554 [5, 7, 1] "Service unavailable; client blocked by a DNS blocklist";
    /// MAIL whose sender domain or EHLO name the domain lists (`[[screen.dbl]]`) score, with
    /// the client's address, at or over the threshold.
    DBL_LISTED = 554 [5, 7, 1] "Service unavailable; domain blocked by a DNS domain blocklist";
    /// A milter asked to discard the message: taken, and dropped.
    MILTER_DISCARDED = 250 [2, 0, 0] "Message accepted";
    /// A milter rejected the command or message without a reply of its own.
    MILTER_REJECT = 550 [5, 7, 1] "Command rejected";
    /// A milter asked to try later, or could not be asked (`default_action = "tempfail"`).
    MILTER_TEMPFAIL = 451 [4, 7, 1] "Service temporarily unavailable, try again later";
    /// MAIL from a client that spoke before the greeting (`screen.pregreet`), then or lately.
    PREGREET_VIOLATION = 554 [5, 5, 1] "Protocol error: the client spoke before the greeting";
    /// MAIL from a client whose reverse DNS does not confirm its address (`screen.fcrdns =
    /// "reject"`).
    REVERSE_DNS_FAILED = 550 [5, 7, 25] "Client host rejected: reverse DNS does not confirm your address";
    /// The same, `screen.fcrdns = "tempfail"`, or DNS could not answer.
    REVERSE_DNS_FAILED_TRANSIENT = 450 [4, 7, 25] "Client host rejected: reverse DNS does not confirm your address, try again later";
    /// Over `limits.max_connections_per_ip`: greeting refused, then close.
    TOO_MANY_CONNECTIONS_FROM_ADDRESS = 421 [4, 7, 0] "Too many connections from your address, try again later";
    /// Local error while storing (S-DATA-10).
    LOCAL_ERROR = 451 [4, 3, 0] "Local error in processing, try again later";
    /// A lookup the decision needs failed (S-TXN-9).
    LOOKUP_FAILED = 451 [4, 4, 3] "Temporary lookup failure, try again later";
    /// No room for the message now (S-SIZE-1, S-DATA-10).
    INSUFFICIENT_STORAGE = 452 [4, 3, 1] "Insufficient system storage, try again later";
    /// Recipient past the limit (S-LINE-5).
    TOO_MANY_RECIPIENTS = 452 [4, 5, 3] "Too many recipients";
    /// STARTTLS without TLS configured (S-TLS-1).
    TLS_NOT_AVAILABLE = 454 [4, 7, 0] "TLS not available";
    /// Unknown command, bare CR or LF in a command line (S-SESS-8, S-SMUG-3).
    UNRECOGNISED_COMMAND = 500 [5, 5, 2] "Command unrecognized";
    /// Command line over the limit (S-LINE-6).
    LINE_TOO_LONG = 500 [5, 5, 2] "Line too long";
    /// Command line with a bare CR or LF (S-SMUG-3).
    BARE_NEWLINE_IN_COMMAND = 500 [5, 5, 2] "Bare CR or LF in command line; lines must end with CRLF";
    /// Syntax error in the arguments (S-TXN-3, S-SIZE-1, S-DSN-1).
    SYNTAX_ERROR = 501 [5, 5, 4] "Syntax error in parameters or arguments";
    /// Malformed sender (S-TXN-4).
    BAD_SENDER_SYNTAX = 501 [5, 1, 7] "Bad sender address syntax";
    /// Malformed recipient (S-TXN-4).
    BAD_RECIPIENT_SYNTAX = 501 [5, 1, 3] "Bad recipient address syntax";
    /// EXPN, TURN (S-SESS-8).
    NOT_IMPLEMENTED = 502 [5, 5, 1] "Command not implemented";
    /// Commands out of order (S-TXN-1, S-BDAT-3).
    BAD_SEQUENCE = 503 [5, 5, 1] "Bad sequence of commands";
    /// Data sent before the 354 (S-SMUG-5).
    IMPROPER_PIPELINING = 503 [5, 5, 1] "Improper use of pipelining: data sent before the 354 reply";
    /// Unknown local user (S-TXN-9).
    NO_SUCH_USER = 550 [5, 1, 1] "No such user here";
    /// Relaying refused, site policy (S-TXN-9).
    RELAY_DENIED = 554 [5, 7, 1] "Relay access denied";
    /// Bare CR or LF in the message (S-SMUG-2).
    BARE_NEWLINE_IN_DATA = 550 [5, 5, 2] "Message refused: bare CR or LF; lines must end with CRLF";
    /// Message over SIZE or over the real limit (S-SIZE-1).
    MESSAGE_TOO_BIG = 552 [5, 3, 4] "Message size exceeds fixed maximum message size";
    /// A local part that cannot be a Maildir folder name (spool safety, ARCHITECTURE.md).
    MAILBOX_NAME_NOT_ALLOWED = 550 [5, 1, 3] "Mailbox name not allowed";
    /// UTF-8 in a path without SMTPUTF8 (S-UTF8-1).
    UTF8_NOT_NEGOTIATED = 553 [5, 6, 7] "Non-ASCII address requires SMTPUTF8";
    /// DATA with no accepted recipient (S-TXN-2).
    NO_VALID_RECIPIENTS = 554 [5, 5, 1] "No valid recipients";
    /// A data line over the limit (S-LINE-7).
    DATA_LINE_TOO_LONG = 554 [5, 6, 0] "Message refused: a line exceeds the maximum length";
    /// Too many Received headers (S-DATA-12).
    MAIL_LOOP = 554 [5, 4, 6] "Too many hops: mail loop detected";
    /// The recipient's domain publishes a null MX (S-NULLMX-4, RFC 7505 §4.1).
    NULL_MX_RECIPIENT = 556 [5, 1, 10] "Recipient domain does not accept mail (null MX)";
    /// An HTTP request (GET, POST, CONNECT ...) on an SMTP port: answered once, then closed.
    NON_SMTP_COMMAND = 554 [5, 5, 1] "Protocol error: not an SMTP command; closing transmission channel";
    /// MAIL from a checked client that sent commands before the reply to its EHLO.
    PIPELINED_BEFORE_EHLO = 554 [5, 5, 1] "Protocol error: commands sent before the EHLO reply";
    /// EHLO/HELO with a name no host could have, from a checked client (`screen.helo_checks`).
    HELO_INVALID = 501 [5, 5, 4] "Invalid EHLO/HELO name";
    /// EHLO/HELO naming this host, from a client of the Internet (`screen.helo_checks`).
    HELO_CLAIMS_TO_BE_US = 550 [5, 7, 1] "EHLO/HELO name claims to be this host";
    /// RCPT to an SRS address of ours whose hash is wrong or whose time is past (`[srs]`).
    SRS_INVALID = 550 [5, 1, 1] "Invalid SRS address: wrong hash or expired";
    /// MAIL FROM a domain that does not exist (NXDOMAIN; `screen.reject_unknown_sender_domain`).
    UNKNOWN_SENDER_DOMAIN = 550 [5, 1, 8] "Sender domain does not exist";
    /// RCPT to a relayed domain that does not exist (NXDOMAIN; `screen.reject_unknown_recipient_domain`).
    UNKNOWN_RECIPIENT_DOMAIN = 550 [5, 1, 2] "Recipient domain does not exist";
    /// The sender's domain publishes a null MX (S-NULLMX-5, RFC 7505 §4.1).
    NULL_MX_SENDER = 550 [5, 7, 27] "Sender domain does not accept mail (null MX)";
    /// Unknown MAIL/RCPT parameter (S-TXN-7).
    UNKNOWN_PARAMETER = 555 [5, 5, 4] "Unrecognized MAIL or RCPT parameter";
    /// AUTH when not offered on this listener.
    AUTH_NOT_OFFERED = 503 [5, 5, 1] "Authentication not enabled";
    /// STARTTLS accepted (S-TLS-1).
    READY_TO_START_TLS = 220 [2, 0, 0] "Ready to start TLS";
    /// Bytes were pipelined after STARTTLS (S-TLS-2, CVE-2011-0411): refused after the handshake.
    STARTTLS_INJECTION = 421 [4, 7, 0] "Commands sent with STARTTLS were discarded; closing transmission channel";
    /// AUTH succeeded (S-AUTH-3).
    AUTH_OK = 235 [2, 7, 0] "Authentication successful";
    /// A SASL challenge (S-AUTH-2); the text is the base64 challenge.
    AUTH_CHALLENGE = 334 "";
    /// Wrong credentials, unknown user alike (S-AUTH-3).
    AUTH_FAILED = 535 [5, 7, 8] "Authentication credentials invalid";
    /// AUTH outside TLS (S-AUTH-8).
    AUTH_NEEDS_TLS = 538 [5, 7, 11] "Encryption required for requested authentication mechanism";
    /// The credential store could not be read (S-AUTH-3).
    AUTH_TEMPORARY = 454 [4, 7, 0] "Temporary authentication failure";
    /// Unknown mechanism (S-AUTH-2).
    AUTH_MECHANISM_UNKNOWN = 504 [5, 5, 4] "Unrecognized authentication mechanism";
    /// The client answered `*` (S-AUTH-2).
    AUTH_CANCELLED = 501 [5, 7, 0] "Authentication cancelled";
    /// A response that is not base64 (S-AUTH-2).
    AUTH_BAD_BASE64 = 501 [5, 5, 2] "Invalid base64 data";
    /// An AUTH line over 12,288 octets (S-AUTH-5).
    AUTH_LINE_TOO_LONG = 500 [5, 5, 6] "Authentication exchange line is too long";
    /// MAIL with REQUIRETLS on a session without TLS (S-RTLS-1).
    REQUIRETLS_NEEDS_TLS = 530 [5, 7, 10] "REQUIRETLS needs a TLS session: STARTTLS first";
    /// MAIL before AUTH on submission (S-SUB-1, S-AUTH-4).
    AUTH_REQUIRED = 530 [5, 7, 0] "Authentication required";
    /// Five failed AUTH in one session (S-AUTH-9).
    TOO_MANY_AUTH_FAILURES = 421 [4, 7, 0] "Too many authentication failures, closing transmission channel";
    /// Submission with a sender the user does not own (S-SUB-2).
    SENDER_NOT_OWNED = 553 [5, 7, 1] "Sender address not owned by the authenticated user";
    /// End of data, `policy.dmarc_reject` on: the From: domain publishes `p=reject` and the
    /// message passed neither aligned SPF nor aligned DKIM (RFC 7489).
    DMARC_REJECT = 550 [5, 7, 1] "Message refused by the DMARC policy of its From domain";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_reply_3_enhanced_class_matches_basic_code() {
        for template in ALL {
            assert!((200..600).contains(&template.code), "{}", template.name);
            if let Some(enhanced) = template.enhanced {
                assert_eq!(
                    u16::from(enhanced.class),
                    template.code / 100,
                    "{}",
                    template.name
                );
            } else {
                // A refused greeting comes before EHLO, so before ENHANCEDSTATUSCODES
                // (S-SESS-1, S-REPLY-3).
                let is_refused_greeting = template.code == 554 && template.name == "DNSBL_LISTED";
                assert!(
                    matches!(template.code, 220 | 250 | 334 | 354) || is_refused_greeting,
                    "{} lacks an enhanced code",
                    template.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
