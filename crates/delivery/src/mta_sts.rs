//! MTA-STS (RFC 8461) for outbound mail: the policy of a recipient domain, found through its
//! `_mta-sts` TXT record, fetched over HTTPS, cached beside the queue and applied to the
//! domain's MX hosts by `remote`.
//!
//! - `policy`: the TXT record, the policy file and MX pattern matching (pure).
//! - `fetch`: the HTTPS GET of the policy file (verified TLS, no redirects, size and time limits).
//! - `discover`: which policy applies now, from DNS, the cache and a fetch (§3.3, §5.1).

pub mod discover;
pub mod fetch;
mod policy;

pub use discover::{Applied, Discovery, Found, PolicySource};
pub use policy::{MAX_AGE_LIMIT_SECONDS, Mode, Policy, parse_policy, parse_txt};
