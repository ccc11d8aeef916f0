//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy specifies it
//! (haproxy.org/download/2.6/doc/proxy-protocol.txt): a load balancer in front of a listener
//! with `proxy_protocol = true` says first who the client is, so the session checks, limits
//! and logs the real client address. Only connections from `proxy_networks` may speak it; the
//! header is read whole before anything else (no octet of the client's is taken with it).
//!
//! Parsing is pure (bytes in, an address or an error out); `read_header` does the reads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;

/// The version 2 signature (§2.2).
const SIGNATURE_V2: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// A version 1 line is at most 107 octets with its CR LF (§2.1).
const MAX_V1: usize = 107;

/// Who the proxy says the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// The client's address and port.
    Client(SocketAddr),
    /// The proxy speaks for itself (LOCAL, UNKNOWN, or a family other than TCP over IP): no
    /// client address (the listener closes such a connection).
    Unknown,
}

/// Parses a version 1 line (with its CR LF).
///
/// # Errors
/// What is wrong with it.
pub fn parse_v1(line: &[u8]) -> Result<Proxied, &'static str> {
    let text = std::str::from_utf8(line).map_err(|_| "the PROXY line is not ASCII")?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or("the PROXY line does not end with CR LF")?;
    let mut words = text.split(' ');
    if words.next() != Some("PROXY") {
        return Err("the line does not start with PROXY");
    }
    let family = words.next().ok_or("no protocol family")?;
    if family == "UNKNOWN" {
        return Ok(Proxied::Unknown);
    }
    let (Some(source), Some(destination), Some(source_port), Some(destination_port), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err("the PROXY line does not have four addresses and ports");
    };
    let parse_ip = |text: &str| -> Result<IpAddr, &'static str> {
        match family {
            "TCP4" => text
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| "a TCP4 address is not IPv4"),
            "TCP6" => text
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| "a TCP6 address is not IPv6"),
            _ => Err("the protocol family is not TCP4, TCP6 or UNKNOWN"),
        }
    };
    let parse_port = |text: &str| -> Result<u16, &'static str> {
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a port is not a number");
        }
        text.parse().map_err(|_| "a port is out of range")
    };
    let source = parse_ip(source)?;
    parse_ip(destination)?;
    let source_port = parse_port(source_port)?;
    parse_port(destination_port)?;
    Ok(Proxied::Client(SocketAddr::new(source, source_port)))
}

/// The length of the rest of a version 2 header, from its first 16 octets.
///
/// # Errors
/// Not a version 2 header.
pub fn v2_length(first: &[u8; 16]) -> Result<usize, &'static str> {
    if first[..12] != SIGNATURE_V2 {
        return Err("not a PROXY protocol version 2 signature");
    }
    if first[12] >> 4 != 2 {
        return Err("PROXY protocol version 2 header of another version");
    }
    Ok(usize::from(u16::from_be_bytes([first[14], first[15]])))
}

/// Parses a version 2 header: its first 16 octets and the `rest` they announce.
///
/// # Errors
/// What is wrong with it.
pub fn parse_v2(first: &[u8; 16], rest: &[u8]) -> Result<Proxied, &'static str> {
    if v2_length(first)? != rest.len() {
        return Err("the PROXY header's length does not match");
    }
    match first[12] & 0x0F {
        0 => return Ok(Proxied::Unknown), // LOCAL: the proxy's own connection (health checks)
        1 => {}
        _ => return Err("the PROXY command is neither LOCAL nor PROXY"),
    }
    match first[13] {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let address: [u8; 12] = rest
                .get(..12)
                .and_then(|a| a.try_into().ok())
                .ok_or("the PROXY header is too short for IPv4")?;
            let ip = Ipv4Addr::new(address[0], address[1], address[2], address[3]);
            let port = u16::from_be_bytes([address[8], address[9]]);
            Ok(Proxied::Client(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // TCP over IPv6.
        0x21 => {
            let address: [u8; 36] = rest
                .get(..36)
                .and_then(|a| a.try_into().ok())
                .ok_or("the PROXY header is too short for IPv6")?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&address[..16]);
            let port = u16::from_be_bytes([address[32], address[33]]);
            Ok(Proxied::Client(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // UNSPEC, UDP, unix sockets: nothing to use.
        _ => Ok(Proxied::Unknown),
    }
}

/// Reads one header, version 1 or 2, from `stream`, and not an octet more.
///
/// # Errors
/// A read failed or the header is malformed.
pub async fn read_header<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Proxied, String> {
    let mut first = [0u8; 16];
    stream
        .read_exact(&mut first[..6])
        .await
        .map_err(|e| e.to_string())?;
    if &first[..6] == b"PROXY " {
        let mut line = first[..6].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= MAX_V1 {
                return Err("the PROXY line is longer than 107 octets".into());
            }
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
            line.push(byte[0]);
        }
        return parse_v1(&line).map_err(str::to_owned);
    }
    if first[..6] != SIGNATURE_V2[..6] {
        return Err("the connection did not start with a PROXY header".into());
    }
    stream
        .read_exact(&mut first[6..])
        .await
        .map_err(|e| e.to_string())?;
    let mut rest = vec![0u8; v2_length(&first)?];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|e| e.to_string())?;
    parse_v2(&first, &rest).map_err(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_lines() {
        assert_eq!(
            parse_v1(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n"),
            Ok(Proxied::Client("192.0.2.7:56324".parse().unwrap()))
        );
        assert_eq!(
            parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 25\r\n"),
            Ok(Proxied::Client("[2001:db8::7]:4000".parse().unwrap()))
        );
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(Proxied::Unknown));
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\n"[..],
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"EHLO x\r\n",
        ] {
            assert!(parse_v1(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn v2(command: u8, family: u8, rest: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut first = [0u8; 16];
        first[..12].copy_from_slice(&SIGNATURE_V2);
        first[12] = 0x20 | command;
        first[13] = family;
        first[14..].copy_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
        (first, rest.to_vec())
    }

    #[test]
    fn version_2_headers() {
        let mut ipv4 = vec![192, 0, 2, 7, 198, 51, 100, 1];
        ipv4.extend_from_slice(&56324u16.to_be_bytes());
        ipv4.extend_from_slice(&25u16.to_be_bytes());
        // With a TLV after the addresses (ignored).
        ipv4.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]);
        let (first, rest) = v2(1, 0x11, &ipv4);
        assert_eq!(
            parse_v2(&first, &rest),
            Ok(Proxied::Client("192.0.2.7:56324".parse().unwrap()))
        );
        let mut ipv6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)
            .octets()
            .to_vec();
        ipv6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ipv6.extend_from_slice(&[0x0f, 0xa0, 0, 25]);
        let (first, rest) = v2(1, 0x21, &ipv6);
        assert_eq!(
            parse_v2(&first, &rest),
            Ok(Proxied::Client("[2001:db8::7]:4000".parse().unwrap()))
        );
        let (first, rest) = v2(0, 0x00, &[]);
        assert_eq!(parse_v2(&first, &rest), Ok(Proxied::Unknown));
        let (first, rest) = v2(1, 0x11, &ipv4[..8]);
        assert!(parse_v2(&first, &rest).is_err(), "too short");
        let (first, _) = v2(1, 0x11, &ipv4);
        assert!(parse_v2(&first, &ipv4[..5]).is_err(), "length mismatch");
        let (mut first, rest) = v2(1, 0x11, &ipv4);
        first[12] = 0x31;
        assert!(parse_v2(&first, &rest).is_err(), "version 3");
        let (first, rest) = v2(2, 0x11, &ipv4);
        assert!(parse_v2(&first, &rest).is_err(), "command 2");
    }

    #[tokio::test]
    async fn read_header_takes_the_header_and_nothing_more() {
        let mut input: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n";
        assert_eq!(
            read_header(&mut input).await,
            Ok(Proxied::Client("192.0.2.7:56324".parse().unwrap()))
        );
        assert_eq!(input, b"EHLO x\r\n");
        let mut ipv4 = vec![192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 25];
        let (first, _) = v2(1, 0x11, &ipv4);
        let mut bytes = first.to_vec();
        bytes.append(&mut ipv4);
        bytes.extend_from_slice(b"EHLO x\r\n");
        let mut input: &[u8] = &bytes;
        assert_eq!(
            read_header(&mut input).await,
            Ok(Proxied::Client("192.0.2.7:1".parse().unwrap()))
        );
        assert_eq!(input, b"EHLO x\r\n");
        let mut input: &[u8] = b"EHLO x\r\n";
        assert!(read_header(&mut input).await.is_err());
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let mut input: &[u8] = long.as_bytes();
        assert!(read_header(&mut input).await.is_err());
    }
}
