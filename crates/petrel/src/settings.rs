//! From the configuration to the plain settings structs of `server` and `delivery`, built
//! once at start and again on SIGHUP. Reads the files the configuration names (certificate,
//! key, users file, DKIM keys) and says which one failed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use petrel_delivery::DeliverySettings;
use petrel_delivery::client::TlsClient;
use petrel_delivery::route::{Nexthop, Routes};
use petrel_delivery::schedule::RetryPolicy;
use petrel_delivery::tls_policy::{Dane, DomainPolicy, SecurityLevel, TlsPolicies, parse_level};
use petrel_proto::SessionConfig;
use petrel_proto::client::ClientCredentials;
use petrel_server::ServerSettings;
use petrel_server::aliases::Aliases;
use petrel_server::policy::Policy;
use petrel_server::users::UserStore;

use crate::config::Config;

/// `user:/path/to/password-file` into credentials: the password is the file's first line.
fn credentials(value: Option<&str>, key: &str) -> Result<Option<ClientCredentials>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (username, path) = value
        .split_once(':')
        .filter(|(user, path)| !user.is_empty() && !path.is_empty())
        .ok_or_else(|| format!("delivery.{key}: write it as \"user:/path/to/password-file\""))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("delivery.{key}: cannot read the password file {path}: {e}"))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(format!("delivery.{key}: the password file {path} is empty"));
    }
    Ok(Some(ClientCredentials {
        username: username.to_owned(),
        password,
    }))
}

impl Config {
    /// What sessions need; reads the certificate, key and users file.
    ///
    /// # Errors
    /// A message naming the file that could not be used.
    pub fn server_settings(&self) -> Result<Arc<ServerSettings>, String> {
        let tls = match &self.tls {
            Some(tls) => Some(crate::tls::server_config(&tls.certificates()?)?),
            None => None,
        };
        // The files' lines first, then the directory's (local.store = "postgres").
        let aliases = match &self.local.aliases {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("local.aliases {}: {e}", path.display()))?;
                Aliases::parse(&(text + "\n" + &self.local.directory_aliases))
                    .map_err(|e| format!("local.aliases {}: {e}", path.display()))?
            }
            None => Aliases::parse(&self.local.directory_aliases)
                .map_err(|e| format!("the directory's aliases: {e}"))?,
        };
        let users = match &self.auth.users_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("auth.users_file {}: {e}", path.display()))?;
                UserStore::parse(&(text + "\n" + &self.auth.directory_users))
                    .map_err(|e| format!("auth.users_file {}: {e}", path.display()))?
            }
            None => UserStore::parse(&self.auth.directory_users)
                .map_err(|e| format!("the directory's users: {e}"))?,
        };
        let dkim = self.dkim_signer()?;
        Ok(Arc::new(ServerSettings {
            session: SessionConfig {
                hostname: self.hostname.clone(),
                max_message_bytes: self.limits.max_message_bytes,
                max_recipients: self.limits.max_recipients,
                max_command_line_bytes: self.limits.max_command_line_bytes,
                max_data_line_bytes: self.limits.max_data_line_bytes,
                max_errors: self.limits.max_errors,
                max_received_headers: 100,
                bare_newline: self.policy.bare_newline,
                ..SessionConfig::default()
            },
            idle_timeout: self.limits.idle_timeout,
            policy: Policy {
                local_domains: self.local_domains(),
                recipient_delimiter: self.delimiter(),
                mailboxes: self.local.mailboxes.as_ref().map(|list| {
                    list.iter()
                        .map(|m| m.to_lowercase())
                        .collect::<HashSet<_>>()
                }),
                relay_networks: self.relay.networks.clone(),
                aliases: Arc::new(aliases),
                srs: match &self.srs {
                    Some(srs) => Some(Arc::new(srs.srs()?)),
                    None => None,
                },
            },
            bare_newline_normalize_networks: self.policy.bare_newline_normalize_networks.clone(),
            reject_null_mx_recipient: self.policy.reject_null_mx_recipient,
            screen: Arc::new(self.screen.screen_settings()?),
            milters: self
                .milter
                .iter()
                .map(crate::config::MilterConfig::settings)
                .collect::<Result<Vec<_>, _>>()?,
            max_data_memory: self.limits.max_data_memory,
            tls_handshake_timeout: self.limits.tls_handshake_timeout,
            min_data_rate: self.limits.min_data_rate,
            min_free_bytes: self
                .queue
                .min_free_bytes
                .unwrap_or(self.limits.max_message_bytes.saturating_mul(3) / 2),
            greylist: petrel_server::greylist::GreylistSettings {
                enabled: self.greylist.enabled,
                delay: self.greylist.delay,
                retry_window: self.greylist.retry_window,
                lifetime: self.greylist.lifetime,
                spf_exempt_domains: self.greylist.spf_exempt_domains.clone(),
            },
            // With a relayhost every domain goes to the smarthost, which judges it (internal
            // domains may exist only in its DNS).
            reject_unknown_sender_domain: self.screen.reject_unknown_sender_domain,
            helo_checks: self.screen.helo_checks,
            reject_unknown_recipient_domain: self.screen.reject_unknown_recipient_domain
                && self.delivery.relayhost.is_none(),
            routed_domains: self
                .delivery
                .route
                .iter()
                .map(|r| r.domain.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            reject_null_mx_sender: self.policy.reject_null_mx_sender,
            tls,
            users: Arc::new(users),
            max_connections_per_ip: self.limits.max_connections_per_ip.max(1),
            max_connections_per_minute_per_ip: self.limits.max_connections_per_minute_per_ip,
            max_messages_per_minute_per_ip: self.limits.max_messages_per_minute_per_ip,
            max_recipients_per_minute_per_ip: self.limits.max_recipients_per_minute_per_ip,
            dkim: Arc::new(dkim),
            verify_authentication: self.policy.verify_authentication,
            dmarc_reject: self.policy.dmarc_reject,
        }))
    }

    /// The `[[dkim]]` keys, read from their files.
    fn dkim_signer(&self) -> Result<petrel_mailauth::Signer, String> {
        let mut keys = Vec::new();
        for dkim in &self.dkim {
            let pem = std::fs::read(&dkim.private_key)
                .map_err(|e| format!("dkim.private_key {}: {e}", dkim.private_key.display()))?;
            let key = petrel_mailauth::DkimKey::from_pem(&dkim.domain, &dkim.selector, &pem)
                .map_err(|e| format!("dkim.private_key {}: {e}", dkim.private_key.display()))?;
            keys.push(key);
        }
        Ok(petrel_mailauth::Signer::new(keys))
    }

    /// What delivery needs; `own_addresses` are the bound listeners. Reads the password files
    /// of the relayhost and routes.
    ///
    /// # Errors
    /// A next hop that does not parse, a password file that cannot be read.
    pub fn delivery_settings(
        &self,
        own_addresses: &[SocketAddr],
    ) -> Result<Arc<DeliverySettings>, String> {
        Ok(Arc::new(DeliverySettings {
            hostname: self.hostname.clone(),
            mail_root: self.data_dir.join("mail"),
            local_domains: self.local_domains(),
            recipient_delimiter: self.delimiter(),
            port: self.delivery.port,
            retry: RetryPolicy {
                intervals: self.delivery.retry.clone(),
                max_age: self.delivery.max_age,
            },
            concurrency_per_domain: self.delivery.concurrency_per_domain,
            own_addresses: own_addresses.to_vec(),
            keep_history: self.queue.keep_history,
            routes: self.routes()?,
            helo_name: self
                .delivery
                .helo_name
                .clone()
                .unwrap_or_else(|| self.hostname.clone()),
            source_address: self.delivery.source_address,
            delay_notice_after: self.delivery.delay_notice_after,
            lmtp: self
                .local
                .lmtp
                .as_deref()
                .map(petrel_delivery::lmtp::LmtpAddress::parse),
            tls: self.tls_policies(),
            tls_client: TlsClient::new(self.delivery.ca_file.as_deref()),
            mta_sts: self.delivery.mta_sts,
            tls_reports: self.delivery.tls_reports,
            node_name: self
                .queue
                .node_name
                .clone()
                .unwrap_or_else(|| self.hostname.clone()),
        }))
    }

    /// `delivery.tls` and `[[delivery.tls_policy]]` (levels checked by `validate`).
    fn tls_policies(&self) -> TlsPolicies {
        let level = |word: &str| parse_level(word).unwrap_or((SecurityLevel::May, Dane::Off));
        // DANE only where DNS answers can be told validated (dns.validating).
        let usable = |dane: Dane| if self.dns.validating { dane } else { Dane::Off };
        let (default_level, named_dane) = level(&self.delivery.tls);
        let default_dane = match default_level {
            SecurityLevel::None => Dane::Off,
            _ if self.delivery.dane => usable(named_dane.max(Dane::Opportunistic)),
            _ => usable(named_dane),
        };
        TlsPolicies {
            default_level,
            allows_plaintext_fallback: self.delivery.tls_plaintext_fallback,
            domains: self
                .delivery
                .tls_policy
                .iter()
                .map(|p| {
                    let (level, dane) = level(&p.level);
                    DomainPolicy {
                        domain: p.domain.trim_end_matches('.').to_ascii_lowercase(),
                        level,
                        match_names: p.match_names.clone(),
                        allows_plaintext_fallback: p.plaintext_fallback,
                        dane: usable(dane),
                    }
                })
                .collect(),
            auth_unverified_hosts: self.delivery.auth_unverified_hosts.clone(),
            default_dane,
        }
    }

    /// `delivery.relayhost` and `[[delivery.route]]`, with their credentials.
    fn routes(&self) -> Result<Routes, String> {
        let port = self.delivery.port;
        let relayhost = match &self.delivery.relayhost {
            Some(text) => {
                let mut nexthop =
                    Nexthop::parse(text, port).map_err(|e| format!("delivery.relayhost: {e}"))?;
                nexthop.credentials =
                    credentials(self.delivery.relayhost_auth.as_deref(), "relayhost_auth")?;
                Some(nexthop)
            }
            None if self.delivery.relayhost_auth.is_some() => {
                return Err("delivery.relayhost_auth is set but delivery.relayhost is not".into());
            }
            None => None,
        };
        let mut by_domain = Vec::new();
        for route in &self.delivery.route {
            let mut nexthop = Nexthop::parse(&route.nexthop, port)
                .map_err(|e| format!("delivery.route {}: {e}", route.domain))?;
            nexthop.credentials = credentials(route.auth.as_deref(), "route.auth")?;
            by_domain.push((
                route.domain.trim_end_matches('.').to_ascii_lowercase(),
                nexthop,
            ));
        }
        Ok(Routes {
            relayhost,
            by_domain,
        })
    }

    fn local_domains(&self) -> Vec<String> {
        self.local
            .domains
            .iter()
            .map(|d| d.to_lowercase())
            .collect()
    }

    fn delimiter(&self) -> Option<String> {
        Some(self.local.recipient_delimiter.clone()).filter(|d| !d.is_empty())
    }
}
