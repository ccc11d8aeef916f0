//! A real DNSSEC test bed on loopback: zones signed at test time with ldns-keygen and
//! ldns-signzone (a chosen RRSIG can be broken on purpose, for "bogus"), served by NSD, and a
//! validating unbound that trusts the zones' keys and asks only NSD (every other name is
//! refused, so nothing leaves the machine). Both are ended by PID when dropped.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::wait_until;

/// One zone: its name, its records (zone-file lines with full owner names), whether it is
/// signed, and the owners whose TLSA signature is broken after signing.
pub struct Zone<'a> {
    pub name: &'a str,
    pub records: Vec<String>,
    pub is_signed: bool,
    pub broken_tlsa: Vec<&'a str>,
}

/// NSD and unbound, running.
pub struct SignedDns {
    nsd: Child,
    unbound: Child,
    /// unbound's address: what petrel's `dns.nameservers` names.
    pub address: SocketAddr,
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Signs `zone` in `dir`: the signed file's name and the KSK's DNSKEY file (the trust anchor).
fn sign(dir: &Path, zone: &Zone<'_>, file: &str) -> (String, PathBuf) {
    let keygen = |ksk: bool| {
        let mut command = Command::new("ldns-keygen");
        command.current_dir(dir).args(["-a", "ECDSAP256SHA256"]);
        if ksk {
            command.arg("-k");
        }
        run(command.arg(zone.name))
    };
    let ksk = keygen(true);
    let zsk = keygen(false);
    run(Command::new("ldns-signzone")
        .current_dir(dir)
        .args([file, &ksk, &zsk]));
    let signed = format!("{file}.signed");
    if !zone.broken_tlsa.is_empty() {
        let path = dir.join(&signed);
        let text = std::fs::read_to_string(&path).unwrap();
        let broken: Vec<String> = text
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let is_target = fields.len() > 5
                    && fields[3] == "RRSIG"
                    && fields[4] == "TLSA"
                    && zone
                        .broken_tlsa
                        .iter()
                        .any(|owner| fields[0].trim_end_matches('.') == *owner);
                if !is_target {
                    return line.to_owned();
                }
                // Flip one character of the signature: the RRset no longer validates.
                let mut line = line.to_owned();
                let at = line.len() - 10;
                let flipped = if &line[at..=at] == "A" { "B" } else { "A" };
                line.replace_range(at..=at, flipped);
                line
            })
            .collect();
        std::fs::write(&path, broken.join("\n") + "\n").unwrap();
    }
    (signed, dir.join(format!("{ksk}.key")))
}

impl SignedDns {
    pub fn start(dir: &Path, zones: &[Zone<'_>]) -> SignedDns {
        let nsd_port = crate::harness::server_port();
        let unbound_port = crate::harness::server_port();
        let mut nsd_zones = String::new();
        let mut anchors = String::new();
        let mut stubs = String::new();
        for zone in zones {
            let file = format!("{}.zone", zone.name);
            let mut text = format!(
                "$ORIGIN {name}.\n$TTL 300\n@ IN SOA ns.{name}. hostmaster.{name}. 1 3600 600 86400 300\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n",
                name = zone.name
            );
            for record in &zone.records {
                text.push_str(record);
                text.push('\n');
            }
            std::fs::write(dir.join(&file), text).unwrap();
            let served = if zone.is_signed {
                let (signed, anchor) = sign(dir, zone, &file);
                anchors.push_str(&format!(
                    "    trust-anchor-file: \"{}\"\n",
                    anchor.display()
                ));
                signed
            } else {
                file
            };
            nsd_zones.push_str(&format!(
                "zone:\n    name: \"{}\"\n    zonefile: \"{served}\"\n",
                zone.name
            ));
            stubs.push_str(&format!(
                "stub-zone:\n    name: \"{}\"\n    stub-addr: 127.0.0.1@{nsd_port}\n",
                zone.name
            ));
            anchors.push_str(&format!("    local-zone: \"{}.\" transparent\n", zone.name));
        }
        let d = dir.display();
        std::fs::write(
            dir.join("nsd.conf"),
            format!(
                "server:\n    ip-address: 127.0.0.1@{nsd_port}\n    port: {nsd_port}\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    logfile: \"{d}/nsd.log\"\nremote-control:\n    control-enable: no\n{nsd_zones}"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("unbound.conf"),
            format!(
                "server:\n    interface: 127.0.0.1@{unbound_port}\n    port: {unbound_port}\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    logfile: \"{d}/unbound.log\"\n    use-syslog: no\n    do-not-query-localhost: no\n    module-config: \"validator iterator\"\n    qname-minimisation: no\n    val-log-level: 2\n    access-control: 127.0.0.0/8 allow\n    local-zone: \".\" refuse\n{anchors}remote-control:\n    control-enable: no\n{stubs}"
            ),
        )
        .unwrap();
        let spawn = |program: &str| {
            Command::new(program)
                .args(["-d", "-c"])
                .arg(dir.join(format!("{program}.conf")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{program} (installed by .ci/run): {e}"))
        };
        let nsd = spawn("nsd");
        let unbound = spawn("unbound");
        let address = SocketAddr::from(([127, 0, 0, 1], unbound_port));
        let first = zones.first().map_or("test", |z| z.name);
        wait_until("unbound to answer", || answers(address, first));
        SignedDns {
            nsd,
            unbound,
            address,
        }
    }
}

impl Drop for SignedDns {
    fn drop(&mut self) {
        for child in [&mut self.nsd, &mut self.unbound] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `server` answers a SOA query for `zone` with NOERROR.
fn answers(server: SocketAddr, zone: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in zone.split('.').filter(|l| !l.is_empty()) {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    if socket.send_to(&query, server).is_err() {
        return false;
    }
    let mut buffer = [0_u8; 1500];
    matches!(socket.recv(&mut buffer), Ok(n) if n > 3 && buffer[3] & 0x0f == 0)
}
