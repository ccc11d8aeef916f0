//! A network namespace made by a test (tests run as root): a veth pair whose host end is
//! `<prefix>.1/24` and whose namespace end holds the client addresses asked for, so a client
//! can come from an address other than loopback (which the resolver answers "localhost" for
//! without asking). The /24 is one of a few rarely used private ones that no route of this
//! machine covers (the machine's own network may be anything, TEST-NET-1 included). Nothing
//! leaves the machine; the namespace is deleted when dropped.

use std::process::{Command, Output};

pub struct Netns {
    name: String,
    /// The first three octets of the /24, e.g. `100.127.253`.
    pub prefix: String,
}

/// /24s to choose from, in order.
const CANDIDATES: &[&str] = &["100.127.253", "10.254.253", "172.31.253"];

/// The first candidate no route of this machine covers.
fn free_prefix() -> String {
    let routes = Command::new("ip")
        .args(["route", "show", "table", "all"])
        .output()
        .expect("ip (iproute2)");
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let covered = |prefix: &str| {
        let address: std::net::Ipv4Addr = format!("{prefix}.1").parse().unwrap();
        routes.lines().any(|line| {
            let Some(destination) = line.split_whitespace().next() else {
                return false;
            };
            let (network, bits) = destination.split_once('/').unwrap_or((destination, "32"));
            let (Ok(network), Ok(bits)) =
                (network.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>())
            else {
                return false;
            };
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits.min(32))
            };
            (u32::from(address) & mask) == (u32::from(network) & mask)
        })
    };
    CANDIDATES
        .iter()
        .find(|p| !covered(p))
        .map(|p| (*p).to_owned())
        .expect("a private /24 no route of this machine covers")
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Netns {
    /// Creates the namespace `tag`, with the client addresses `<prefix>.<octet>` inside it.
    pub fn create(tag: &str, client_octets: &[u8]) -> Netns {
        let id = std::process::id() % 100_000;
        let name = format!("petrel-{tag}-{id}");
        let host_end = format!("ph{id}");
        let inner_end = format!("pn{id}");
        let prefix = free_prefix();
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = Netns {
            name: name.clone(),
            prefix: prefix.clone(),
        };
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", &inner_end,
        ]);
        ip(&["link", "set", &inner_end, "netns", &name]);
        ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", &host_end]);
        ip(&["link", "set", &host_end, "up"]);
        for octet in client_octets {
            let address = format!("{prefix}.{octet}/24");
            ip(&["-n", &name, "addr", "add", &address, "dev", &inner_end]);
        }
        ip(&["-n", &name, "link", "set", &inner_end, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        netns
    }

    /// Runs `program` inside the namespace.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and the pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
