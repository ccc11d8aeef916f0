//! Every enhanced status code petrel's own decisions carry (RFC 3463, RFC 5248 registry), as a
//! named value, the way `standard` names every reply.
//!
//! Call sites outside this module and `standard` never spell a code (`"4.4.7"`, `(5, 4, 4)`,
//! `EnhancedCode::new`): a test in this crate's suite fails when one does. A code that comes
//! from a peer's reply is parsed (`parse::parse_enhanced`), never written here.
//!
//! Names follow the registry's titles. Pure data; handles no untrusted bytes.

use super::EnhancedCode;

/// 2.0.0 Other undefined status: delivered, with nothing more specific to say.
pub const DELIVERED: EnhancedCode = EnhancedCode::new(2, 0, 0);
/// 4.0.0 Other undefined status, transient: a delay reported without a better code.
pub const TRANSIENT_UNDEFINED: EnhancedCode = EnhancedCode::new(4, 0, 0);
/// 5.0.0 Other undefined status, permanent: a failure reported without a better code (also an
/// operator's `queue bounce`).
pub const PERMANENT_UNDEFINED: EnhancedCode = EnhancedCode::new(5, 0, 0);
/// 5.1.2 Bad destination system address: NXDOMAIN, or an address literal that is no address.
pub const BAD_DESTINATION_SYSTEM: EnhancedCode = EnhancedCode::new(5, 1, 2);
/// 5.1.3 Bad destination mailbox address syntax.
pub const BAD_DESTINATION_MAILBOX_SYNTAX: EnhancedCode = EnhancedCode::new(5, 1, 3);
/// 5.1.10 Recipient address has null MX (RFC 7505 §4.2).
pub const NULL_MX: EnhancedCode = EnhancedCode::new(5, 1, 10);
/// 4.3.0 Other or undefined mail system status, transient: a local mailbox write failed.
pub const MAIL_SYSTEM_TRANSIENT: EnhancedCode = EnhancedCode::new(4, 3, 0);
/// 5.3.4 Message too big for system: over the receiving server's SIZE.
pub const MESSAGE_TOO_BIG_FOR_SYSTEM: EnhancedCode = EnhancedCode::new(5, 3, 4);
/// 4.4.1 No answer from host: no host of the destination could be reached.
pub const NO_ANSWER_FROM_HOST: EnhancedCode = EnhancedCode::new(4, 4, 1);
/// 4.4.2 Bad connection: lost, or no reply in time, after the greeting (C-RETRY-3).
pub const BAD_CONNECTION: EnhancedCode = EnhancedCode::new(4, 4, 2);
/// 4.4.3 Directory server failure: the DNS answered SERVFAIL, timed out or could not be asked.
pub const DIRECTORY_SERVER_FAILURE: EnhancedCode = EnhancedCode::new(4, 4, 3);
/// 5.4.4 Unable to route: the best MX host is this server (a mail loop, C-ROUTE-5).
pub const UNABLE_TO_ROUTE: EnhancedCode = EnhancedCode::new(5, 4, 4);
/// 4.4.7 Delivery time expired: older than `delivery.max_age` (C-RETRY-2).
pub const DELIVERY_TIME_EXPIRED: EnhancedCode = EnhancedCode::new(4, 4, 7);
/// 5.6.3 Conversion required but not supported: 8-bit content, no 8BITMIME (C-8BIT-2).
pub const CONVERSION_NOT_SUPPORTED: EnhancedCode = EnhancedCode::new(5, 6, 3);
/// 5.6.7 Non-ASCII addresses not permitted for that sender/recipient (RFC 6531 §3.5, C-UTF8-3).
pub const NON_ASCII_ADDRESS_NOT_PERMITTED: EnhancedCode = EnhancedCode::new(5, 6, 7);
/// 4.7.0 Other or undefined security status, transient: AUTH to a smarthost went wrong.
pub const SECURITY_TRANSIENT: EnhancedCode = EnhancedCode::new(4, 7, 0);
/// 4.7.5 Cryptographic failure: the TLS a policy requires could not be had (no STARTTLS, a
/// failed handshake, a certificate that does not verify).
pub const CRYPTOGRAPHIC_FAILURE: EnhancedCode = EnhancedCode::new(4, 7, 5);
/// 4.7.30 REQUIRETLS support required: no next hop offers REQUIRETLS over verified TLS on a
/// vouched-for path yet (RFC 8689 §4.2; 5.7.30 once the message expires, C-RTLS-2).
pub const REQUIRETLS_NEEDED: EnhancedCode = EnhancedCode::new(4, 7, 30);

/// Every named code, for the tests that check each has a reference entry.
pub const ALL: &[EnhancedCode] = &[
    DELIVERED,
    TRANSIENT_UNDEFINED,
    PERMANENT_UNDEFINED,
    BAD_DESTINATION_SYSTEM,
    BAD_DESTINATION_MAILBOX_SYNTAX,
    NULL_MX,
    MAIL_SYSTEM_TRANSIENT,
    MESSAGE_TOO_BIG_FOR_SYSTEM,
    NO_ANSWER_FROM_HOST,
    BAD_CONNECTION,
    DIRECTORY_SERVER_FAILURE,
    UNABLE_TO_ROUTE,
    DELIVERY_TIME_EXPIRED,
    CONVERSION_NOT_SUPPORTED,
    NON_ASCII_ADDRESS_NOT_PERMITTED,
    SECURITY_TRANSIENT,
    CRYPTOGRAPHIC_FAILURE,
    REQUIRETLS_NEEDED,
];
