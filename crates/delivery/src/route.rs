//! Outbound routing (issue 7): where mail for a domain goes instead of its MX hosts.
//! `delivery.relayhost` sends everything through a smarthost; `[[delivery.route]]` sends one
//! domain (and its subdomains) to a given next hop; the most specific route wins, then the
//! relayhost, then the MX records (RFC 5321 §5.1).
//!
//! A next hop is written as in Postfix: `[host]:port` or `[192.0.2.1]:25` connects to the host's
//! own addresses; `host:port` (no brackets) looks up the MX records of `host` first; an IPv6
//! address needs its brackets (`[::1]:25`); `discard:` accepts the mail as delivered and sends
//! it nowhere (Postfix's discard transport, for sinks and benchmarks). Pure: the
//! configuration's text in, plain values out.

use petrel_proto::client::ClientCredentials;

/// One next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nexthop {
    /// A host name or an IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// True when the host's MX records are looked up (no brackets).
    pub is_mx_lookup: bool,
    /// AUTH credentials (sent only inside TLS).
    pub credentials: Option<ClientCredentials>,
    /// `discard:`: delivered to nowhere.
    pub is_discard: bool,
}

/// A next hop that is not `[host]:port`, `host:port`, `host` or `discard:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopError(pub String);

impl std::fmt::Display for NexthopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NexthopError {}

impl Nexthop {
    /// Parses `[host]:port`, `[host]`, `host:port` or `host`; `default_port` when none is given.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(text: &str, default_port: u16) -> Result<Nexthop, NexthopError> {
        Self::parse_text(text, default_port).map_err(NexthopError)
    }

    fn parse_text(text: &str, default_port: u16) -> Result<Nexthop, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("discard:") || text.eq_ignore_ascii_case("discard") {
            return Ok(Nexthop {
                host: "discard".into(),
                port: 0,
                is_mx_lookup: false,
                credentials: None,
                is_discard: true,
            });
        }
        let (host, is_mx_lookup, rest) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner
                    .split_once(']')
                    .ok_or_else(|| format!("{text:?}: a '[' without its ']'"))?;
                (host, false, rest)
            }
            None => match text.rsplit_once(':') {
                Some((host, _)) => (host, true, &text[host.len()..]),
                None => (text, true, ""),
            },
        };
        let port = match rest.strip_prefix(':') {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{text:?}: {port:?} is not a port"))?,
            None if rest.is_empty() => default_port,
            None => return Err(format!("{text:?}: unexpected {rest:?} after the host")),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let is_address = host.parse::<std::net::IpAddr>().is_ok();
        if host.is_empty() || (!is_address && !petrel_proto::address::is_domain_name(&host)) {
            return Err(format!(
                "{text:?}: {host:?} is not a host name or an address"
            ));
        }
        Ok(Nexthop {
            host,
            port,
            is_mx_lookup: is_mx_lookup && !is_address,
            credentials: None,
            is_discard: false,
        })
    }

    /// How the history names it.
    pub fn describe(&self) -> String {
        if self.is_discard {
            "discard:".into()
        } else if self.is_mx_lookup {
            format!("{}:{}", self.host, self.port)
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

/// The routes of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    pub relayhost: Option<Nexthop>,
    /// (domain, next hop); a domain also covers its subdomains.
    pub by_domain: Vec<(String, Nexthop)>,
}

impl Routes {
    /// The next hop for `domain`, or `None` for MX routing.
    pub fn for_domain(&self, domain: &str) -> Option<&Nexthop> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.by_domain
            .iter()
            .filter(|(route, _)| {
                domain == *route
                    || domain
                        .strip_suffix(route.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            })
            .max_by_key(|(route, _)| route.len())
            .map(|(_, nexthop)| nexthop)
            .or(self.relayhost.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nexthop_forms() {
        let bracketed = Nexthop::parse("[smtp.provider.example]:587", 25).unwrap();
        assert_eq!(
            (
                bracketed.host.as_str(),
                bracketed.port,
                bracketed.is_mx_lookup
            ),
            ("smtp.provider.example", 587, false)
        );
        let mx = Nexthop::parse("relay.example.net", 25).unwrap();
        assert_eq!((mx.port, mx.is_mx_lookup), (25, true));
        let mx_port = Nexthop::parse("relay.example.net:2525", 25).unwrap();
        assert_eq!(
            (mx_port.host.as_str(), mx_port.port),
            ("relay.example.net", 2525)
        );
        assert!(Nexthop::parse("discard:", 25).unwrap().is_discard);
        let address = Nexthop::parse("[10.0.0.5]:25", 25).unwrap();
        assert_eq!(
            (address.host.as_str(), address.is_mx_lookup),
            ("10.0.0.5", false)
        );
        let v6 = Nexthop::parse("[::1]:2525", 25).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2525));
        for bad in ["[host:25", "host:0", "host:x", "[]:25", "[a b]:25", "[h]x"] {
            assert!(Nexthop::parse(bad, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_specific_route_then_relayhost() {
        let hop = |h: &str| Nexthop::parse(h, 25).unwrap();
        let routes = Routes {
            relayhost: Some(hop("[smart.example]:587")),
            by_domain: vec![
                ("example.net".into(), hop("[10.0.0.5]")),
                ("eu.example.net".into(), hop("[10.0.0.6]")),
            ],
        };
        assert_eq!(routes.for_domain("example.net").unwrap().host, "10.0.0.5");
        assert_eq!(
            routes.for_domain("mx.Example.NET").unwrap().host,
            "10.0.0.5"
        );
        assert_eq!(
            routes.for_domain("a.eu.example.net").unwrap().host,
            "10.0.0.6"
        );
        assert_eq!(
            routes.for_domain("badexample.net").unwrap().host,
            "smart.example"
        );
        assert!(Routes::default().for_domain("example.org").is_none());
    }
}
