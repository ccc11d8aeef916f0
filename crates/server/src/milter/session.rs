//! The milters of one SMTP session (issue 16, item 5): opened with the first MAIL (negotiation,
//! connect and HELO), asked at each MAIL and RCPT and at the end of each message, in the order
//! configured; a milter that accepts is not asked again for that message. What the first
//! refusing milter says is the reply; the changes of every milter are applied in turn.
//!
//! Failure policy: a milter that cannot be reached or breaks off is dropped for the session and
//! its `default_action` decides (tempfail: 451 4.7.1; accept: the mail goes on without it).

use std::net::SocketAddr;

use petrel_proto::{Reply, standard};
use tracing::warn;

use super::apply::{Applied, apply};
use super::client::{ClientFacts, Decision, DefaultAction, MilterClient, MilterSettings};

/// One milter in a session.
struct Active {
    client: MilterClient,
    default_action: DefaultAction,
    /// It accepted the message under way: not asked again until the next one.
    has_accepted: bool,
}

/// The milters of a session.
#[derive(Default)]
pub struct Milters {
    active: Vec<Active>,
    is_opened: bool,
    /// A transaction was begun with the milters and not ended by a message.
    is_in_transaction: bool,
    /// A milter asked to discard the message under way.
    pub discards: bool,
}

/// What the end of a message gave.
pub enum MessageVerdict {
    /// Store it, with the changes applied.
    Take(Applied),
    Refuse(Reply),
    /// Say 250 and drop it.
    Discard,
}

impl Milters {
    /// Whether any milter is asked.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The MAIL step (and, the first time, the negotiation, connect and HELO).
    ///
    /// # Errors
    /// The reply refusing MAIL.
    pub async fn mail(
        &mut self,
        configured: &[MilterSettings],
        client: &ClientFacts,
        sender: &str,
        authenticated_as: Option<&str>,
    ) -> Result<(), Reply> {
        if !self.is_opened {
            self.is_opened = true;
            for settings in configured {
                let opened = match MilterClient::open(settings).await {
                    Ok(mut milter) => match milter.connect(client).await {
                        Ok(decision) => Ok((milter, decision)),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                };
                match opened {
                    Ok((milter, Decision::Continue)) => self.active.push(Active {
                        client: milter,
                        default_action: settings.default_action,
                        has_accepted: false,
                    }),
                    Ok((_, Decision::Accept | Decision::Discard)) => {}
                    Ok((_, Decision::Reject(reply) | Decision::Tempfail(reply))) => {
                        return Err(reply);
                    }
                    Err(error) => unreachable_milter(settings.default_action, &error)?,
                }
            }
        }
        if self.is_in_transaction {
            for milter in &mut self.active {
                milter.client.abort().await;
            }
        }
        self.is_in_transaction = true;
        self.discards = false;
        for milter in &mut self.active {
            milter.has_accepted = false;
        }
        let mut index = 0;
        while let Some(milter) = self.active.get_mut(index) {
            let asked = milter.client.mail(sender, authenticated_as).await;
            if self.decide(index, asked)? {
                index += 1;
            }
        }
        Ok(())
    }

    /// The RCPT step.
    ///
    /// # Errors
    /// The reply refusing the recipient.
    pub async fn rcpt(&mut self, recipient: &str) -> Result<(), Reply> {
        let mut index = 0;
        while let Some(milter) = self.active.get_mut(index) {
            if milter.has_accepted {
                index += 1;
                continue;
            }
            let asked = milter.client.rcpt(recipient).await;
            if self.decide(index, asked)? {
                index += 1;
            }
        }
        Ok(())
    }

    /// Takes a step's answer: `Ok(true)` to go on to the next milter, `Ok(false)` when this one
    /// was dropped (the next is now at `index`), `Err` to refuse.
    fn decide(&mut self, index: usize, asked: Result<Decision, String>) -> Result<bool, Reply> {
        match asked {
            Ok(Decision::Continue) => Ok(true),
            Ok(Decision::Accept) => {
                if let Some(milter) = self.active.get_mut(index) {
                    milter.has_accepted = true;
                }
                Ok(true)
            }
            Ok(Decision::Discard) => {
                self.discards = true;
                Ok(true)
            }
            Ok(Decision::Reject(reply) | Decision::Tempfail(reply)) => Err(reply),
            Err(error) => {
                let milter = self.active.remove(index);
                unreachable_milter(milter.default_action, &error)?;
                Ok(false)
            }
        }
    }

    /// The end of a message: each milter that has not accepted sees it (with the changes of
    /// those before it applied).
    pub async fn message(&mut self, content: &[u8], label: &str) -> MessageVerdict {
        self.is_in_transaction = false;
        let mut applied = Applied {
            content: content.to_vec(),
            ..Applied::default()
        };
        let mut index = 0;
        while let Some(milter) = self.active.get_mut(index) {
            if milter.has_accepted {
                index += 1;
                continue;
            }
            match milter.client.message(&applied.content, label).await {
                Ok((decision, changes)) => {
                    let next = apply(&applied.content, &changes);
                    applied.content = next.content;
                    applied.add_recipients.extend(next.add_recipients);
                    applied.delete_recipients.extend(next.delete_recipients);
                    applied.new_sender = next.new_sender.or(applied.new_sender);
                    applied.quarantine = next.quarantine.or(applied.quarantine);
                    match decision {
                        Decision::Reject(reply) | Decision::Tempfail(reply) => {
                            return MessageVerdict::Refuse(reply);
                        }
                        Decision::Discard => self.discards = true,
                        Decision::Continue | Decision::Accept => {}
                    }
                    index += 1;
                }
                Err(error) => {
                    let milter = self.active.remove(index);
                    if let Err(reply) = unreachable_milter(milter.default_action, &error) {
                        return MessageVerdict::Refuse(reply);
                    }
                }
            }
        }
        if self.discards {
            MessageVerdict::Discard
        } else {
            MessageVerdict::Take(applied)
        }
    }

    /// The session ends.
    pub async fn quit(&mut self) {
        for milter in self.active.drain(..) {
            milter.client.quit().await;
        }
    }
}

/// What a milter that cannot be asked means: 451 4.7.1 (tempfail) or nothing (accept).
fn unreachable_milter(default_action: DefaultAction, error: &str) -> Result<(), Reply> {
    warn!(%error, ?default_action, check = "milter", "a milter could not be asked");
    match default_action {
        DefaultAction::Tempfail => Err(standard::MILTER_TEMPFAIL.reply()),
        DefaultAction::Accept => Ok(()),
    }
}

/// The connect facts of a session.
pub fn facts(peer: SocketAddr, helo: &str, hostname: &str) -> ClientFacts {
    ClientFacts {
        address: peer.ip(),
        port: peer.port(),
        helo: helo.to_owned(),
        hostname: hostname.to_owned(),
    }
}

/// Applies what the milters changed to the message about to be stored: its content, sender and
/// recipients (a recipient or sender that does not parse is left out).
pub fn apply_to(message: &mut petrel_proto::Message, applied: Applied) {
    use petrel_proto::address::{parse_forward_path, parse_reverse_path};
    message.content = applied.content;
    if let Some(sender) = applied.new_sender
        && let Ok(path) = parse_reverse_path(&format!("<{sender}>"))
    {
        message.reverse_path = path;
    }
    message.recipients.retain(|r| {
        let address = r.forward_path.to_string();
        !applied
            .delete_recipients
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&address))
    });
    for added in applied.add_recipients {
        if let Ok(path) = parse_forward_path(&format!("<{added}>")) {
            message.recipients.push(petrel_proto::session::RcptRequest {
                forward_path: path,
                parameters: Default::default(),
            });
        }
    }
}
