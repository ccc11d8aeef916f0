//! `petrel dkim keygen DOMAIN`: makes a DKIM key pair, writes the private key (mode 0600, never
//! over an existing file) and prints the TXT record to publish at
//! `<selector>._domainkey.<domain>` and the `[[dkim]]` table that turns signing on
//! (RFC 6376 §3.6.1, RFC 8463).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use petrel_mailauth::KeyAlgorithm;

use crate::config::{self, Source};

/// The dkim subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DkimCommand {
    /// Make a key pair for DOMAIN and print the DNS TXT record to publish.
    Keygen {
        domain: String,
        /// The selector (the `s=` tag; the record goes at SELECTOR._domainkey.DOMAIN).
        #[arg(long, default_value_t = config::default_dkim_selector())]
        selector: String,
        /// rsa (2048 bits, read by every verifier) or ed25519 (RFC 8463, short keys).
        #[arg(long, value_enum, default_value_t = Algorithm::Rsa)]
        algorithm: Algorithm,
        /// RSA key size, 2048 to 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Where to write the private key (default: DATA_DIR/dkim/DOMAIN.SELECTOR.pem).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Key algorithms.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// Runs a dkim command.
///
/// # Errors
/// A sentence for the operator: a bad domain or selector, a file that exists or cannot be
/// written.
pub fn run(source: &Source, command: &DkimCommand) -> Result<(), String> {
    let DkimCommand::Keygen {
        domain,
        selector,
        algorithm,
        bits,
        output,
    } = command;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !petrel_proto::address::is_domain_name(&domain) || !domain.contains('.') {
        return Err(format!(
            "{domain:?} is not a domain name such as example.org"
        ));
    }
    if !petrel_proto::address::is_domain_name(selector) {
        return Err(format!(
            "{selector:?} cannot be a selector: use letters, digits and hyphens"
        ));
    }
    let path = match output {
        Some(path) => path.clone(),
        None => config::load(source)?
            .data_dir
            .join("dkim")
            .join(format!("{domain}.{selector}.pem")),
    };
    let key = petrel_mailauth::generate(match algorithm {
        Algorithm::Rsa => KeyAlgorithm::Rsa { bits: *bits },
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
    })
    .map_err(|e| e.to_string())?;
    write_private_key(&path, &key.private_key_pem)?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    outln!("Wrote the private key to {} (mode 0600).", path.display());
    outln!();
    outln!("Publish this TXT record in the DNS zone of {domain}:");
    outln!();
    outln!("{}", key.zone_line(&domain, selector));
    outln!();
    outln!("Then add this to petrel's configuration and reload (SIGHUP):");
    outln!();
    outln!("[[dkim]]");
    outln!("domain = \"{domain}\"");
    outln!("selector = \"{selector}\"");
    outln!("private_key = \"{}\"", path.display());
    Ok(())
}

fn write_private_key(path: &std::path::Path, pem: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} already exists; remove it or choose another --selector or --output (a published key must not change under its selector)",
                    path.display()
                )
            } else {
                format!("cannot write {}: {e}", path.display())
            }
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
