//! IP networks in CIDR notation (`127.0.0.0/8`, `::1/128`) for `relay.networks`.
//!
//! Parses operator configuration, not peer input; a malformed network is an error the binary
//! reports with its key, file and line.

use std::fmt;
use std::net::IpAddr;

/// An address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix_bits: u8,
}

/// An `ADDRESS/PREFIX` that is not one; the text says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkError(pub String);

impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetworkError {}

impl IpNetwork {
    /// Parses `ADDRESS/PREFIX` or a bare address (a host network).
    ///
    /// # Errors
    /// A message saying what is wrong with `text`.
    pub fn parse(text: &str) -> Result<IpNetwork, NetworkError> {
        Self::parse_text(text).map_err(NetworkError)
    }

    fn parse_text(text: &str) -> Result<IpNetwork, String> {
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let max_bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix_bits = match prefix_text {
            None => max_bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|bits| *bits <= max_bits)
                .ok_or_else(|| format!("{text:?} has a prefix length over {max_bits}"))?,
        };
        Ok(IpNetwork {
            address,
            prefix_bits,
        })
    }

    /// True when every address of the network is a loopback address.
    pub fn is_loopback(&self) -> bool {
        match self.address {
            IpAddr::V4(v4) => v4.is_loopback() && self.prefix_bits >= 8,
            IpAddr::V6(v6) => v6.is_loopback() && self.prefix_bits == 128,
        }
    }

    /// True when `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                prefix_matches(&network.octets(), &ip.octets(), self.prefix_bits)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                prefix_matches(&network.octets(), &ip.octets(), self.prefix_bits)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_bits)
    }
}

fn prefix_matches(network: &[u8], ip: &[u8], prefix_bits: u8) -> bool {
    let full_bytes = usize::from(prefix_bits / 8);
    let rest_bits = prefix_bits % 8;
    if network[..full_bytes] != ip[..full_bytes] {
        return false;
    }
    if rest_bits == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest_bits);
    network[full_bytes] & mask == ip[full_bytes] & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains() {
        let loopback = IpNetwork::parse("127.0.0.0/8").unwrap();
        assert!(loopback.contains("127.1.2.3".parse().unwrap()));
        assert!(loopback.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback.contains("128.0.0.1".parse().unwrap()));
        let odd = IpNetwork::parse("192.0.2.64/26").unwrap();
        assert!(odd.contains("192.0.2.127".parse().unwrap()));
        assert!(!odd.contains("192.0.2.128".parse().unwrap()));
        let v6 = IpNetwork::parse("::1").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("::2".parse().unwrap()));
        assert!(IpNetwork::parse("10.0.0.0/33").is_err());
        assert!(IpNetwork::parse("example.org").is_err());
    }
}
