//! Local recipients: which addresses are ours, and their delivery into Maildir.
//!
//! A recipient is local when its domain is one of `local.domains` (or it is the bare
//! `Postmaster`). Maildir errors leave the recipient pending with a retry in a minute; the
//! caller records the state.

use petrel_proto::address::{Domain, mailbox_folder, parse_mailbox};
use petrel_proto::status;
use petrel_queue::status::Cause;
use petrel_queue::{DeliveryStatus, Envelope, QueueId, RecipientState, Verdict};
use tracing::{info, warn};

use crate::dsn::Action;
use crate::maildir::{MaildirCopy, deliver};
use crate::scheduler::DeliverySettings;

/// Wait before retrying a recipient whose local delivery failed.
const LOCAL_RETRY_SECONDS: u64 = 60;

/// Delivers every due local recipient of `envelope` and records each result in it; returns
/// the success notices owed (NOTIFY=SUCCESS recipients, Action: delivered).
pub fn deliver_local_recipients(
    settings: &DeliverySettings,
    id: &QueueId,
    envelope: &mut Envelope,
    message: &[u8],
    now: u64,
) -> Vec<(usize, Action)> {
    let mut successes = Vec::new();
    let reverse_path = envelope.reverse_path.clone();
    let date = petrel_proto::trace::rfc5322_date(i64::try_from(now).unwrap_or(i64::MAX));
    let mut history = Vec::new();
    for (index, recipient) in envelope.recipients.iter_mut().enumerate() {
        if recipient.state != RecipientState::Pending || recipient.next_attempt_unix_seconds > now {
            continue;
        }
        let Some((domain, folder)) = local_target(settings, &recipient.address) else {
            continue;
        };
        recipient.attempts = recipient.attempts.saturating_add(1);
        let copy = MaildirCopy {
            mail_root: &settings.mail_root,
            domain: &domain,
            folder: &folder,
            reverse_path: &reverse_path,
            delivered_to: &recipient.address,
            hostname: &settings.hostname,
            message,
        };
        match deliver(&copy) {
            Ok(path) => {
                info!(queue_id = %id, recipient = %recipient.address, path = %path.display(), "delivered to Maildir");
                recipient.state = RecipientState::Delivered;
                if crate::outcome::wants_success_notice(recipient) {
                    successes.push((index, Action::Delivered));
                }
                let last = DeliveryStatus::decided(
                    Verdict::Delivered,
                    status::DELIVERED,
                    Cause::Mailbox,
                    format!("delivered to Maildir {}", path.display()),
                );
                crate::outcome::count("maildir", &last);
                recipient.last = Some(last);
                history.push(format!(
                    "{date} {}: delivered to Maildir {}",
                    recipient.address,
                    path.display()
                ));
            }
            Err(error) => {
                warn!(queue_id = %id, recipient = %recipient.address, %error, "Maildir delivery failed; will retry");
                recipient.next_attempt_unix_seconds = now + LOCAL_RETRY_SECONDS;
                let last = DeliveryStatus::decided(
                    Verdict::Deferred,
                    status::MAIL_SYSTEM_TRANSIENT,
                    Cause::Mailbox,
                    format!("Maildir write failed: {error}"),
                );
                crate::outcome::count("maildir", &last);
                recipient.last = Some(last);
                history.push(format!(
                    "{date} {}: Maildir write failed ({error}); retry in {LOCAL_RETRY_SECONDS}s",
                    recipient.address
                ));
            }
        }
    }
    envelope.history.extend(history);
    successes
}

/// The (domain, folder) of a local recipient, or `None` for a remote or unusable address.
pub fn local_target(settings: &DeliverySettings, address: &str) -> Option<(String, String)> {
    if address.eq_ignore_ascii_case("Postmaster") {
        let domain = settings
            .local_domains
            .first()
            .cloned()
            .unwrap_or_else(|| settings.hostname.to_lowercase());
        return Some((domain, "postmaster".to_owned()));
    }
    let mailbox = parse_mailbox(address).ok()?;
    let Domain::Name(name) = &mailbox.domain else {
        return None;
    };
    let domain = name.to_lowercase();
    if !settings.local_domains.contains(&domain) {
        return None;
    }
    let folder = mailbox_folder(
        &mailbox.local_part_content(),
        settings.recipient_delimiter.as_deref(),
    )?;
    Some((domain, folder))
}
