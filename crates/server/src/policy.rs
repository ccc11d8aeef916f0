//! The receiving policy (RFC 5321 §3.6, docs/conformance.md S-SESS-12, S-TXN-9): which
//! recipients are ours, which clients may relay, and the Maildir-safety rule for local parts.
//!
//! Pure: decisions take the client address and the parsed path, and return a complete `Reply`
//! when they refuse. Handles peer-supplied addresses (already parsed by `proto`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use petrel_proto::address::{Domain, ForwardPath, mailbox_folder, parse_mailbox};
use petrel_proto::{Reply, standard};

use crate::aliases::Aliases;
use crate::network::IpNetwork;

/// What the operator configured about recipients and relaying.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Domains delivered here (lower-case).
    pub local_domains: Vec<String>,
    /// `alice+tag` -> `alice` when this is `+`.
    pub recipient_delimiter: Option<String>,
    /// When set, the only mailboxes that exist (lower-case, without tag): a local part, in
    /// every local domain, or `local@domain`, in that one; postmaster always.
    pub mailboxes: Option<HashSet<String>>,
    /// Clients that may relay to other domains.
    pub relay_networks: Vec<IpNetwork>,
    /// `local.aliases`.
    pub aliases: Arc<Aliases>,
    /// `[srs]`: senders of forwarded mail rewritten, and bounces to them routed back.
    pub srs: Option<Arc<petrel_mailauth::srs::Srs>>,
}

/// Today in days since 1970 (SRS timestamps).
pub fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

impl Policy {
    /// True when `domain` is one of ours.
    pub fn is_local_domain(&self, domain: &Domain) -> bool {
        self.local_domains.iter().any(|local| domain.is(local))
    }

    /// True when `client` may relay.
    pub fn is_relay_client(&self, client: IpAddr) -> bool {
        self.relay_networks.iter().any(|n| n.contains(client))
    }

    /// Decides one RCPT.
    ///
    /// # Errors
    /// The reply refusing the recipient: 550 5.1.3 (a local part that cannot be a folder),
    /// 550 5.1.1 (no such mailbox), 554 5.7.1 (relaying denied).
    pub fn check_recipient(
        &self,
        client: IpAddr,
        is_authenticated: bool,
        path: &ForwardPath,
    ) -> Result<(), Reply> {
        let mailbox = match path {
            ForwardPath::Postmaster => return Ok(()),
            ForwardPath::Mailbox(mailbox) => mailbox,
        };
        // A bounce to a sender we rewrote (SRS) goes back to the original sender.
        match self.srs_original(&path.to_string()) {
            Some(Ok(_)) => return Ok(()),
            Some(Err(_)) => return Err(standard::SRS_INVALID.reply()),
            None => {}
        }
        if !self.is_local_domain(&mailbox.domain) {
            return if is_authenticated || self.is_relay_client(client) {
                Ok(())
            } else {
                Err(standard::RELAY_DENIED.reply())
            };
        }
        let content = mailbox.local_part_content();
        let folder = mailbox_folder(&content, self.recipient_delimiter.as_deref())
            .ok_or_else(|| standard::MAILBOX_NAME_NOT_ALLOWED.reply())?;
        let domain = mailbox.domain.to_string();
        let is_mailbox = self.has_mailbox(&folder, &domain);
        let is_alias = self.aliases.targets(&folder, &domain, is_mailbox).is_some();
        if is_mailbox || is_alias || folder == "postmaster" || folder == "abuse" {
            Ok(())
        } else {
            Err(standard::NO_SUCH_USER.reply())
        }
    }

    /// For an SRS address of ours, the address it stands for (or why it stands for none);
    /// `None` for any other address.
    pub fn srs_original(
        &self,
        address: &str,
    ) -> Option<Result<String, petrel_mailauth::srs::SrsError>> {
        let srs = self.srs.as_ref()?;
        match srs.reverse(address, today()) {
            Err(petrel_mailauth::srs::SrsError::NotSrs) => None,
            other => Some(other),
        }
    }

    /// For an address of ours: its folder, its domain, and whether that mailbox exists.
    pub fn local_address(&self, address: &str) -> Option<(String, String, bool)> {
        if address.eq_ignore_ascii_case("Postmaster") {
            return Some((
                "postmaster".into(),
                self.local_domains.first()?.clone(),
                true,
            ));
        }
        let mailbox = parse_mailbox(address).ok()?;
        if !self.is_local_domain(&mailbox.domain) {
            return None;
        }
        let folder = mailbox_folder(
            &mailbox.local_part_content(),
            self.recipient_delimiter.as_deref(),
        )?;
        let domain = mailbox.domain.to_string().to_lowercase();
        let exists =
            self.has_mailbox(&folder, &domain) || folder == "postmaster" || folder == "abuse";
        Some((folder, domain, exists))
    }

    /// Whether mailbox `folder` exists in local `domain` (every one does when none are listed).
    fn has_mailbox(&self, folder: &str, domain: &str) -> bool {
        self.mailboxes.as_ref().is_none_or(|listed| {
            listed.contains(folder)
                || listed.contains(&format!("{folder}@{}", domain.to_ascii_lowercase()))
        })
    }

    /// The final recipients of `address` after alias expansion.
    pub fn expand(&self, address: &str) -> Vec<String> {
        if let Some(Ok(original)) = self.srs_original(address) {
            return vec![original];
        }
        if self.aliases.is_empty() {
            return vec![address.to_owned()];
        }
        self.aliases.expand(address, &|a| self.local_address(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_proto::address::parse_forward_path;

    fn policy() -> Policy {
        Policy {
            local_domains: vec!["example.org".into(), "example.net".into()],
            recipient_delimiter: Some("+".into()),
            mailboxes: Some(
                ["alice".to_owned(), "carol@example.org".to_owned()]
                    .into_iter()
                    .collect(),
            ),
            relay_networks: vec![IpNetwork::parse("127.0.0.0/8").unwrap()],
            aliases: Arc::new(Aliases::parse("team: alice\n").unwrap()),
            srs: None,
        }
    }

    fn check(client: &str, path: &str) -> Result<(), u16> {
        let path = parse_forward_path(path).unwrap();
        policy()
            .check_recipient(client.parse().unwrap(), false, &path)
            .map_err(|r| r.code)
    }

    #[test]
    fn s_sess_12_postmaster_always() {
        assert_eq!(check("192.0.2.1", "<Postmaster>"), Ok(()));
        assert_eq!(check("192.0.2.1", "<POSTMASTER@Example.ORG>"), Ok(()));
    }

    #[test]
    fn s_txn_9_local_mailboxes_and_relay() {
        assert_eq!(check("192.0.2.1", "<Alice+news@example.org>"), Ok(()));
        assert_eq!(check("192.0.2.1", "<bob@example.org>"), Err(550));
        assert_eq!(check("192.0.2.1", "<alice@example.net>"), Ok(()));
        assert_eq!(
            check("192.0.2.1", "<Carol@Example.ORG>"),
            Ok(()),
            "a mailbox of one domain"
        );
        assert_eq!(check("192.0.2.1", "<carol@example.net>"), Err(550));
        assert_eq!(
            check("192.0.2.1", "<team@example.org>"),
            Ok(()),
            "an alias exists"
        );
        assert_eq!(
            check("192.0.2.1", "<abuse@example.org>"),
            Ok(()),
            "abuse always exists"
        );
        assert_eq!(check("192.0.2.1", "<\".\"@example.org>"), Err(550));
        assert_eq!(check("192.0.2.1", "<\"a/b\"@example.org>"), Err(550));
        assert_eq!(check("192.0.2.1", "<x@elsewhere.example>"), Err(554));
        assert_eq!(check("127.0.0.1", "<x@elsewhere.example>"), Ok(()));
        let path = parse_forward_path("<x@elsewhere.example>").unwrap();
        assert!(
            policy()
                .check_recipient("192.0.2.1".parse().unwrap(), true, &path)
                .is_ok(),
            "authenticated users relay"
        );
    }
}
