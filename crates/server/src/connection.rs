//! The connection driver: runs one `proto` server session over a TCP or TLS stream.
//!
//! Reads with the idle timeout (S-SESS-13), writes pending replies whenever the session has
//! drained its input (S-PIPE-2), runs the STARTTLS handshake when the session asks (S-TLS-1..3),
//! checks AUTH credentials on a blocking thread (argon2), answers MAIL/RCPT from the policy and
//! stores messages through `receive`, signed (our users) or checked (the Internet). Watches the
//! server's lifecycle for shutdown (S-SESS-9).
//! Handles an untrusted peer: IO errors end this session only; a dropped connection abandons
//! its open transaction (S-SESS-14).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use petrel_proto::address::{ForwardPath, ReversePath};
use petrel_proto::sasl::Credentials;
use petrel_proto::{Event, Reply, ServerSession, standard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::data_memory::DataShare;
use crate::deadline::Deadline;
use crate::nullmx::{check_recipient, check_sender};
use crate::rate::RateKind;
use crate::receive::{Authentication, Receiving, store_message};
use crate::spill::{Rest, SPILL_AT, Spill};
use crate::stream::Stream;
use crate::users::owns_sender;
use crate::{Lifecycle, Protocol, Server, ServerSettings};

/// Octets read from the socket at once.
const READ_BUFFER_BYTES: usize = 8192;

/// One client's connection.
struct Connection {
    server: Arc<Server>,
    stream: Stream,
    peer: SocketAddr,
    session_id: u64,
    protocol: Protocol,
    session: ServerSession,
    /// The reverse path of the transaction under way (for greylisting).
    sender: String,
    /// A DNS allowlist names the client (no greylisting).
    is_allowlisted: bool,
    /// The client address's score in the DNS lists (for the domain lists at MAIL).
    ip_score: i32,
    /// The milters of this session.
    milters: crate::milter::session::Milters,
    /// The `[[milter]]`s this session's listener asks, by name; `None`: all of them.
    milter_names: Option<Arc<[String]>>,
    /// The domains the domain lists were last asked about in this session, and their score.
    domain_scores: Option<(Vec<String>, crate::screen::Score)>,
    /// The sender SPF was last checked for, and whether it passed (greylisting).
    spf_of_sender: Option<(String, bool)>,
    /// This session's part of the bound on message data in flight.
    data_share: DataShare,
    /// The content of the message being read that went to disk as it arrived.
    spill: Spill,
    /// Where a TLS session reads (a plain one reads into the stack).
    tls_read_buffer: Vec<u8>,
}

/// What the listener a session arrived on asks of it.
#[derive(Debug, Clone)]
pub struct Listening {
    pub protocol: Protocol,
    /// The `[[milter]]`s asked, by name; `None`: all of them.
    pub milters: Option<Arc<[String]>>,
    /// A PROXY protocol header comes first, from a proxy in these networks (`None`: no PROXY
    /// protocol on this listener).
    pub proxy_networks: Option<Arc<[crate::network::IpNetwork]>>,
}

/// Reads what the client sent and hands it to the session: the number of octets (0: the
/// client closed). A plain connection waits for readiness and reads into a buffer on the
/// stack, so an idle session holds no read buffer (issue 20: memory per idle session); TLS
/// reads through tokio-rustls into `tls_buffer`, made on the first TLS read and kept.
async fn read_into(
    stream: &mut Stream,
    session: &mut ServerSession,
    tls_buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    if let Stream::Plain(tcp) = stream {
        loop {
            tcp.readable().await?;
            let mut chunk = [0u8; READ_BUFFER_BYTES];
            match tcp.try_read(&mut chunk) {
                Ok(count) => {
                    session.receive(&chunk[..count]);
                    return Ok(count);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
    tls_buffer.resize(READ_BUFFER_BYTES, 0);
    let count = stream.read(tls_buffer).await?;
    session.receive(&tls_buffer[..count]);
    Ok(count)
}

/// Serves one client until QUIT, 421, timeout or disconnect.
pub async fn serve_connection(
    server: Arc<Server>,
    stream: Stream,
    peer: SocketAddr,
    session_id: u64,
    listening: Listening,
    door: crate::screen::Door,
) {
    let Listening {
        protocol, milters, ..
    } = listening;
    let settings = server.settings.borrow().clone();
    let mut config = settings.session_for(peer.ip(), protocol);
    config.refusal = door.refusal;
    let (is_allowlisted, ip_score) = (door.is_allowlisted, door.ip_score);
    // After a pre-greet wait the "220-" line is already out: this greeting ends that reply.
    let mut session = ServerSession::new(config);
    if !door.early_input.is_empty() {
        session.receive(&door.early_input);
    }
    let data_share = DataShare::new(server.data_memory.clone());
    let mut connection = Connection {
        server,
        stream,
        peer,
        session_id,
        protocol,
        session,
        sender: String::new(),
        is_allowlisted,
        ip_score,
        milters: crate::milter::session::Milters::default(),
        milter_names: milters,
        spf_of_sender: None,
        domain_scores: None,
        data_share,
        spill: Spill::default(),
        tls_read_buffer: Vec::new(),
    };
    debug!(session = session_id, %peer, protocol = protocol.as_str(), "connected");
    connection.run().await;
    // The milters hear the session is over (SMFIC_QUIT), as Postfix tells them.
    connection.milters.quit().await;
}

impl Connection {
    /// The session's loop. The handlers of its events (checks with DNS lookups, the store,
    /// STARTTLS, AUTH) run as boxed futures: their state exists only while they run, so the
    /// task of an idle session stays small (issue 20: memory per idle session).
    async fn run(&mut self) {
        let mut lifecycle = self.server.lifecycle.clone();
        let (session_id, peer) = (self.session_id, self.peer);
        let idle = self.server.settings.borrow().idle_timeout;
        let mut deadline = Deadline::new(std::time::Instant::now(), idle);
        loop {
            match self.session.poll() {
                Event::NeedInput => {
                    if self.spill.is_active() || self.session.content_bytes() >= SPILL_AT {
                        Box::pin(self.stream_content()).await;
                    }
                    self.account_data();
                    let Ok(has_replied) = self.write_output().await else {
                        return;
                    };
                    let (idle, min_rate) = {
                        let settings = self.server.settings.borrow();
                        (settings.idle_timeout, settings.min_data_rate)
                    };
                    deadline.before_read(
                        self.session.awaiting(),
                        has_replied,
                        std::time::Instant::now(),
                        idle,
                    );
                    let until = tokio::time::Instant::from_std(deadline.at);
                    tokio::select! {
                        read = tokio::time::timeout_at(until, read_into(&mut self.stream, &mut self.session, &mut self.tls_read_buffer)) => match read {
                            Err(_) => {
                                info!(session = session_id, %peer, "{}", deadline.what());
                                self.session.idle_timeout();
                            }
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                debug!(session = session_id, %peer, "disconnected");
                                return;
                            }
                            Ok(Ok(count)) => {
                                deadline.after_read(count, std::time::Instant::now(), idle, min_rate);
                                let limit = self.server.settings.borrow().max_data_memory;
                                self.session
                                    .set_short_of_storage(self.server.data_memory.is_full(limit));
                            }
                        },
                        changed = lifecycle.changed() => {
                            let phase = if changed.is_ok() { *lifecycle.borrow() } else { Lifecycle::Stopping };
                            apply_lifecycle(&mut self.session, phase);
                        }
                    }
                }
                Event::Mail(request) => Box::pin(self.mail(&request.reverse_path)).await,
                Event::Rcpt(request) => Box::pin(self.rcpt(&request.forward_path)).await,
                Event::Message(message) => {
                    Box::pin(self.message(message)).await;
                    self.data_share.release();
                    if *lifecycle.borrow() != Lifecycle::Running {
                        apply_lifecycle(&mut self.session, *lifecycle.borrow());
                    }
                }
                Event::StartTls => {
                    if !Box::pin(self.start_tls()).await {
                        return;
                    }
                }
                Event::Auth(credentials) => Box::pin(self.auth(credentials)).await,
                Event::Close => {
                    let _ = self.write_output().await;
                    let _ = self.stream.shutdown().await;
                    debug!(session = session_id, %peer, "closed");
                    return;
                }
            }
        }
    }

    /// Counts what the message being read holds against `limits.max_data_memory`: past it,
    /// the message is refused (452 4.3.1 once its data ends). (While the bound is reached,
    /// new messages are refused too: the session is told on each read.)
    fn account_data(&mut self) {
        let limit = self.server.settings.borrow().max_data_memory;
        let holds = (self.session.content_bytes() + self.spill.memory_bytes()) as u64;
        if !self.data_share.hold(holds, limit) {
            self.session.refuse_content();
            self.spill.discard();
            let _ = self
                .data_share
                .hold(self.session.content_bytes() as u64, limit);
            petrel_metrics::registry().increment(petrel_metrics::DATA_MEMORY_REFUSALS, &[]);
            warn!(session = self.session_id, peer = %self.peer, max_data_memory = limit, "message refused (452 4.3.1 at its end): the message data in flight reached limits.max_data_memory");
        }
    }

    /// Streaming DATA (issue 18): once the message being read holds `SPILL_AT` octets they go
    /// to the queue's spill directory; a spill of a message that ended without being handed
    /// over (refused at its end, the transaction reset) is dropped. A write that fails has the
    /// message refused with 452 4.3.1 at its end.
    async fn stream_content(&mut self) {
        let transaction = self.session.transaction_number();
        if self.spill.is_active()
            && (!self.session.has_transaction() || self.spill.transaction != transaction)
        {
            self.spill.discard();
        }
        if self.session.content_bytes() < SPILL_AT {
            return;
        }
        let Some(dir) = self.server.queue.spill_dir() else {
            // The queue takes content from memory only: the bound on data in flight holds.
            return;
        };
        let part = self.session.take_content();
        let name = self.session_id.to_string();
        if let Err(error) = self.spill.push(transaction, &dir, &name, part).await {
            warn!(session = self.session_id, peer = %self.peer, %error, "message refused (452 4.3.1 at its end): its content cannot be written to the spill directory");
            self.spill.discard();
            self.session.refuse_content();
        }
    }

    /// The message's content put together again after streaming: the head in memory and the
    /// rest in its spill file, or read whole when `is_whole_needed` (milters, DKIM, SPF/DMARC
    /// read the message at once), under the bound on data in flight. Err: the reply refusing it.
    async fn unspill(
        &mut self,
        message: &mut petrel_proto::Message,
        is_whole_needed: bool,
    ) -> Result<Option<Rest>, Reply> {
        let transaction = self.session.transaction_number();
        if !self.spill.is_active() {
            return Ok(None);
        }
        if self.spill.transaction != transaction {
            self.spill.discard();
            return Ok(None);
        }
        let spill = std::mem::take(&mut self.spill);
        let tail = std::mem::take(&mut message.content);
        let (head, rest) = spill.finish(tail).await.map_err(|error| {
            warn!(session = self.session_id, peer = %self.peer, %error, "message refused: the end of its content cannot be written to the spill directory");
            standard::INSUFFICIENT_STORAGE.reply()
        })?;
        let rest = match rest {
            Some(rest) if is_whole_needed => rest,
            rest => {
                message.content = head;
                return Ok(rest);
            }
        };
        let whole = (head.len() as u64).saturating_add(rest.bytes);
        if !self.wait_for_data_room(whole).await {
            warn!(session = self.session_id, peer = %self.peer, bytes = whole, "message refused (452 4.3.1): no room under limits.max_data_memory to read it whole");
            return Err(standard::INSUFFICIENT_STORAGE.reply());
        }
        message.content = crate::spill::read_whole(head, &rest).await.map_err(|error| {
            warn!(session = self.session_id, peer = %self.peer, %error, "message refused: its spill file cannot be read");
            standard::LOCAL_ERROR.reply()
        })?;
        Ok(None)
    }

    /// Takes `bytes` of the bound on data in flight for this session, waiting up to the idle
    /// timeout for others to give room back; false when it never came (or cannot: the message
    /// alone is over the bound).
    async fn wait_for_data_room(&mut self, bytes: u64) -> bool {
        let (limit, patience) = {
            let settings = self.server.settings.borrow();
            (settings.max_data_memory, settings.idle_timeout)
        };
        if limit > 0 && bytes > limit {
            return false;
        }
        let until = tokio::time::Instant::now() + patience;
        let memory = self.server.data_memory.clone();
        loop {
            // Listening before the try: room given back in between is not missed.
            let freed = memory.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.data_share.hold(bytes, limit) {
                return true;
            }
            if tokio::time::timeout_at(until, freed).await.is_err() {
                return false;
            }
        }
    }

    async fn mail(&mut self, path: &ReversePath) {
        let settings = self.server.settings.borrow().clone();
        let is_within_rate = self
            .server
            .within_rate(&settings, self.peer.ip(), RateKind::Message);
        let is_short_of_space = settings.min_free_bytes > 0
            && self
                .server
                .queue
                .free_bytes()
                .is_some_and(|free| free < settings.min_free_bytes);
        if is_short_of_space {
            warn!(session = self.session_id, peer = %self.peer, min_free_bytes = settings.min_free_bytes, "MAIL refused: the queue's filesystem is below its free-space reserve (queue.min_free_bytes)");
        }
        let decision = match (
            self.protocol.is_submission(),
            self.session.authenticated_as(),
        ) {
            _ if is_short_of_space => Err(standard::INSUFFICIENT_STORAGE.reply()),
            _ if !is_within_rate => Err(standard::MESSAGE_RATE_EXCEEDED.reply()),
            (true, Some(user))
                if !owns_sender(
                    user,
                    &path.to_string(),
                    &settings.policy.local_domains,
                    settings.policy.recipient_delimiter.as_deref(),
                ) =>
            {
                Err(standard::SENDER_NOT_OWNED.reply())
            }
            (_, user) => {
                let is_screened = self.protocol == Protocol::Smtp
                    && user.is_none()
                    && !settings.policy.is_relay_client(self.peer.ip());
                match check_sender(&self.server.resolver, &settings, path, is_screened).await {
                    Ok(()) if is_screened => self.domain_lists(&settings, path).await,
                    other => other,
                }
            }
        };
        let milters: Vec<_> = settings
            .milters
            .iter()
            .filter(|m| {
                self.milter_names
                    .as_ref()
                    .is_none_or(|names| names.contains(&m.name))
            })
            .cloned()
            .collect();
        let decision = match decision {
            Ok(()) if !milters.is_empty() => {
                let facts = crate::milter::session::facts(
                    self.peer,
                    self.session.helo_name().unwrap_or(""),
                    &settings.session.hostname,
                );
                let user = self.session.authenticated_as().map(str::to_owned);
                let decision = self
                    .milters
                    .mail(&milters, &facts, &path.to_string(), user.as_deref())
                    .await;
                counted(decision, "milter")
            }
            other => other,
        };
        match decision {
            Ok(()) => {
                self.sender = path.to_string();
                self.session.accept();
            }
            Err(reply) => {
                if reply == standard::UNKNOWN_SENDER_DOMAIN.reply() {
                    count_refusal("unknown_sender_domain");
                }
                info!(session = self.session_id, peer = %self.peer, sender = %path, reply = %reply, meaning = %title(&reply), "sender refused");
                self.session.refuse(reply);
            }
        }
    }

    async fn rcpt(&mut self, path: &ForwardPath) {
        let settings = self.server.settings.borrow().clone();
        let is_authenticated = self.session.authenticated_as().is_some();
        let decision = if self
            .server
            .within_rate(&settings, self.peer.ip(), RateKind::Recipient)
        {
            decide_recipient(
                &self.server,
                &settings,
                self.peer.ip(),
                is_authenticated,
                path,
            )
            .await
        } else {
            Err(standard::RECIPIENT_RATE_EXCEEDED.reply())
        };
        let decision = match decision {
            Ok(()) if self.is_greylisted(&settings, is_authenticated, path).await => {
                Err(standard::GREYLISTED.reply())
            }
            Ok(()) if !self.milters.is_empty() => {
                counted(self.milters.rcpt(&path.to_string()).await, "milter")
            }
            other => other,
        };
        match decision {
            Ok(()) => self.session.accept(),
            Err(reply) => {
                if reply == standard::UNKNOWN_RECIPIENT_DOMAIN.reply() {
                    count_refusal("unknown_recipient_domain");
                }
                info!(session = self.session_id, peer = %self.peer, recipient = %path, reply = %reply, meaning = %title(&reply), "recipient refused");
                self.session.refuse(reply);
            }
        }
    }

    async fn message(&mut self, mut message: petrel_proto::Message) {
        let settings = self.server.settings.borrow().clone();
        let is_whole_needed = !self.milters.is_empty()
            || match self.authentication_step(&settings) {
                Authentication::None => false,
                Authentication::Sign(keys) => !keys.is_empty(),
                Authentication::Verify { .. } => true,
            };
        let rest = match self.unspill(&mut message, is_whole_needed).await {
            Ok(rest) => rest,
            Err(reply) => {
                self.session.finish_message(reply);
                return;
            }
        };
        let mut quarantine = None;
        if !self.milters.is_empty() {
            let label = format!("session-{}", self.session_id);
            match self.milters.message(&message.content, &label).await {
                crate::milter::session::MessageVerdict::Take(applied) => {
                    quarantine = applied.quarantine.clone();
                    crate::milter::session::apply_to(&mut message, applied);
                }
                crate::milter::session::MessageVerdict::Refuse(reply) => {
                    count_refusal("milter");
                    info!(session = self.session_id, peer = %self.peer, reply = %reply, check = "milter", "message refused by a milter");
                    self.session.finish_message(reply);
                    return;
                }
                crate::milter::session::MessageVerdict::Discard => {
                    info!(session = self.session_id, peer = %self.peer, check = "milter", "message discarded by a milter");
                    self.session
                        .finish_message(standard::MILTER_DISCARDED.reply());
                    return;
                }
            }
        }
        let hostname = settings.session.hostname.clone();
        let (sender, count, size) = (
            message.reverse_path.to_string(),
            message.recipients.len(),
            message.content.len() as u64 + rest.as_ref().map_or(0, |r| r.bytes),
        );
        let is_submission = self.protocol.is_submission();
        let authentication = self.authentication_step(&settings);
        let context = Receiving {
            client: self.peer.ip(),
            hostname: &hostname,
            is_submission,
            policy: &settings.policy,
            authentication,
        };
        let rest_path = rest.as_ref().map(|r| r.path.clone());
        let stored = store_message(self.server.queue.clone(), message, rest_path, &context).await;
        // The queue has its own copy now (or refused the message): the spill file goes.
        drop(rest);
        let checks = stored.authentication.as_deref().unwrap_or("");
        match (&stored.queue_id, &stored.error) {
            (Some(id), _) => {
                // Delivery gets the message (unless a milter quarantined it), then the client
                // its 250 (a write that fails ends the session at its next step, as any other;
                // one the client does not read delays nothing but its own session), then the
                // log line is written.
                if let Some(reason) = quarantine {
                    let queue = self.server.queue.clone();
                    let held = id.clone();
                    let _ = tokio::task::spawn_blocking(move || queue.hold(&held)).await;
                    info!(session = self.session_id, queue_id = %id, %reason, check = "milter", "quarantined (held) by a milter");
                } else {
                    (self.server.on_queued)(id.clone());
                }
                self.session.finish_message(stored.reply);
                let _ = self.write_output().await;
                info!(session = self.session_id, queue_id = %id, peer = %self.peer, sender = %sender, recipients = count, size, tls = ?self.stream.tls_summary(), user = ?self.session.authenticated_as(), authentication = checks, "queued");
                petrel_metrics::registry().increment(
                    petrel_metrics::MESSAGES_RECEIVED,
                    &[("source", self.protocol.as_str())],
                );
            }
            (None, error) => {
                warn!(session = self.session_id, peer = %self.peer, sender = %sender, error = ?error, authentication = checks, reply = %stored.reply, meaning = %title(&stored.reply), "message not queued");
                self.session.finish_message(stored.reply);
            }
        }
    }

    /// Our own users' mail is signed; mail from the Internet on port 25 is checked.
    fn authentication_step<'a>(&'a self, settings: &'a ServerSettings) -> Authentication<'a> {
        let is_ours = self.session.authenticated_as().is_some()
            || settings.policy.is_relay_client(self.peer.ip());
        if is_ours {
            Authentication::Sign(&settings.dkim)
        } else if self.protocol == Protocol::Smtp && settings.verify_authentication {
            Authentication::Verify {
                verifier: &self.server.verifier,
                dmarc_reject: settings.dmarc_reject,
            }
        } else {
            Authentication::None
        }
    }

    /// Sends the 220, runs the handshake, swaps the stream; false when the session must end.
    async fn start_tls(&mut self) -> bool {
        if self.write_output().await.is_err() {
            return false;
        }
        let Some(config) = self.server.settings.borrow().tls.clone() else {
            return false;
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return false;
        };
        match crate::handshake::accept(&self.server, config, tcp).await {
            Ok(tls) => {
                self.stream = Stream::Tls(Box::new(tls));
                petrel_metrics::registry().increment(
                    petrel_metrics::SMTP_TLS_SESSIONS,
                    &[("direction", "inbound")],
                );
                info!(session = self.session_id, peer = %self.peer, tls = ?self.stream.tls_summary(), "STARTTLS");
                self.session.tls_started();
                true
            }
            Err(error) => {
                info!(session = self.session_id, peer = %self.peer, %error, "TLS handshake failed");
                false
            }
        }
    }

    async fn auth(&mut self, credentials: Credentials) {
        let users = self.server.settings.borrow().users.clone();
        let Credentials {
            username, password, ..
        } = credentials;
        let user = username.clone();
        let verified = tokio::task::spawn_blocking(move || users.verify(&user, &password)).await;
        match verified {
            Ok(true) => {
                info!(session = self.session_id, peer = %self.peer, user = %username, "authenticated");
                self.session.accept_auth(&username);
            }
            Ok(false) => {
                info!(session = self.session_id, peer = %self.peer, user = %username, "authentication failed");
                self.session.refuse_auth(false);
            }
            Err(_) => self.session.refuse_auth(true),
        }
    }

    /// The domain lists (`[[screen.dbl]]`) on the sender's domain and the EHLO name, scored with
    /// the client's address: 554 5.7.1 at or over the threshold.
    async fn domain_lists(
        &mut self,
        settings: &ServerSettings,
        path: &ReversePath,
    ) -> Result<(), Reply> {
        let screen = &settings.screen;
        if screen.domain_lists.is_empty() || screen.is_allowed(self.peer.ip()) {
            return Ok(());
        }
        let mut domains = Vec::new();
        if let ReversePath::Mailbox(mailbox) = path {
            domains.push(mailbox.domain.to_string().to_ascii_lowercase());
        }
        let helo = self
            .session
            .helo_name()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if helo.contains('.') && !helo.starts_with('[') && !domains.contains(&helo) {
            domains.push(helo);
        }
        if domains.is_empty() {
            return Ok(());
        }
        // The same domains as the last MAIL of this session: the lists said it already.
        let score = match self.domain_scores.take() {
            Some((asked, score)) if asked == domains => score,
            _ => {
                let deadline = std::time::Duration::from_secs(5);
                crate::screen::domain_score(
                    &self.server.resolver,
                    &screen.domain_lists,
                    &domains,
                    deadline,
                )
                .await
            }
        };
        self.domain_scores = Some((domains, score.clone()));
        if score.total <= 0 || self.ip_score + score.total < screen.threshold {
            return Ok(());
        }
        let lists = score.listed_by.join(", ");
        let named = score.domains.join(" and ");
        warn!(session = self.session_id, peer = %self.peer, domains = %named, %lists, check = "dbl", "refused at MAIL: domain listed");
        count_refusal("dbl");
        Err(standard::DBL_LISTED.with_text(format!(
            "Service unavailable; {named} blocked using {lists}"
        )))
    }

    /// Whether `[greylist]` holds this RCPT back (port 25 only; relay networks, authenticated
    /// clients and `screen.allow_networks` exempt).
    async fn is_greylisted(
        &mut self,
        settings: &ServerSettings,
        is_authenticated: bool,
        path: &ForwardPath,
    ) -> bool {
        let client = self.peer.ip();
        if !settings.greylist.enabled
            || self.protocol != Protocol::Smtp
            || is_authenticated
            || settings.policy.is_relay_client(client)
            || settings.screen.is_allowed(client)
            || self.is_allowlisted
        {
            return false;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.server.greylist.allows(client, now) {
            return false;
        }
        if settings.greylist.is_spf_exempt_domain(&self.sender) && self.spf_passes(settings).await {
            return false;
        }
        let queue = self.server.queue.clone();
        let greylist = settings.greylist.clone();
        let (sender, recipient) = (self.sender.clone(), path.to_string());
        let memory = self.server.greylist.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            crate::greylist::check_remembering(
                &queue, &memory, &greylist, client, &sender, &recipient, now,
            )
        })
        .await;
        let is_waiting = matches!(verdict, Ok(crate::greylist::Verdict::Wait));
        if is_waiting {
            count_refusal("greylist");
            info!(session = self.session_id, peer = %self.peer, sender = %self.sender, recipient = %path, check = "greylist", "greylisted: 451 4.7.1");
        }
        is_waiting
    }

    /// True when SPF passes for the transaction's sender from this client (asked once per
    /// sender; the greylisting exemption of listed domains).
    async fn spf_passes(&mut self, settings: &ServerSettings) -> bool {
        if let Some((sender, passes)) = &self.spf_of_sender
            && *sender == self.sender
        {
            return *passes;
        }
        let mail_from = self.sender.trim_start_matches('<').trim_end_matches('>');
        let spf = self
            .server
            .verifier
            .spf_of_mail_from(
                self.peer.ip(),
                self.session.helo_name().unwrap_or(""),
                mail_from,
                &settings.session.hostname,
            )
            .await;
        let passes = spf == "pass";
        if passes {
            info!(session = self.session_id, peer = %self.peer, sender = %self.sender, check = "greylist", "not greylisted: SPF passes for a listed domain");
        }
        self.spf_of_sender = Some((self.sender.clone(), passes));
        passes
    }

    /// Writes the replies waiting; whether there were any.
    async fn write_output(&mut self) -> std::io::Result<bool> {
        for check in self.session.take_door_refusals() {
            // The door is port 25's, for clients outside the relay networks and the allow
            // list: a bare newline or an HTTP request on another port, or from one of ours, is
            // refused by the session as ever but neither counted here nor remembered.
            let client = self.peer.ip();
            let (is_screened, is_remembering) = {
                let settings = self.server.settings.borrow();
                let is_screened = self.protocol == Protocol::Smtp
                    && !settings.policy.is_relay_client(client)
                    && !settings.screen.is_allowed(client);
                (is_screened, !settings.screen.pregreet.is_zero())
            };
            if !is_screened {
                continue;
            }
            count_refusal(check);
            info!(session = self.session_id, peer = %self.peer, check, "refused at the door");
            // Postscreen's pipelining, non-SMTP and bare newline tests: such a client is a bot
            // as much as one that spoke before the greeting, and is remembered the same way.
            if is_remembering && matches!(check, "pipelining" | "non_smtp" | "bare_newline") {
                let settings = self.server.settings.borrow();
                self.server.door.remember(
                    client,
                    crate::screen::Remembered::SpokeFirst,
                    &settings.screen,
                );
            }
        }
        let output = self.session.take_output();
        if output.is_empty() {
            return Ok(false);
        }
        count_replies_sent(&output);
        // A client that sends and never reads fills the socket buffers; it gets
        // limits.idle_timeout to take its replies, then the session ends.
        let idle = self.server.settings.borrow().idle_timeout;
        let written = tokio::time::timeout(idle, async {
            self.stream.write_all(&output).await?;
            self.stream.flush().await
        })
        .await;
        match written {
            Ok(result) => result.map(|()| true),
            Err(_) => {
                info!(session = self.session_id, peer = %self.peer, "timeout: the client did not read its replies within limits.idle_timeout");
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client does not read",
                ))
            }
        }
    }
}

/// Local and relay policy first, then the null-MX check of a relayed domain.
async fn decide_recipient(
    server: &Server,
    settings: &ServerSettings,
    client: IpAddr,
    is_authenticated: bool,
    path: &ForwardPath,
) -> Result<(), Reply> {
    settings
        .policy
        .check_recipient(client, is_authenticated, path)?;
    check_recipient(&server.resolver, settings, path).await
}

/// Counts one refusal by the door's check `check` (`petrel_screen_refusals_total{check}`).
pub fn count_refusal(check: &'static str) {
    petrel_metrics::registry().increment(petrel_metrics::SCREEN_REFUSALS, &[("check", check)]);
}

/// `decision`, counted as a refusal by `check` when it is one.
fn counted(decision: Result<(), Reply>, check: &'static str) -> Result<(), Reply> {
    if decision.is_err() {
        count_refusal(check);
    }
    decision
}

/// Counts the replies in bytes about to be written (`/metrics`): by code, and the bare-newline
/// refusals (S-SMUG-2, S-SMUG-3) apart.
pub fn count_replies_sent(output: &[u8]) {
    let registry = petrel_metrics::registry();
    petrel_metrics::replies::ReplyScanner::default().scan(output, |reply| {
        registry.increment(
            petrel_metrics::SMTP_REPLIES_SENT,
            &[("code", reply.code), ("enhanced", reply.enhanced)],
        );
        let is_bare_newline = [
            standard::BARE_NEWLINE_IN_DATA,
            standard::BARE_NEWLINE_IN_COMMAND,
        ]
        .iter()
        .any(|t| reply.text == t.text);
        if is_bare_newline {
            registry.increment(petrel_metrics::BARE_NEWLINE_REFUSALS, &[]);
        }
    });
}

/// The reference's short title of a reply, for log lines.
fn title(reply: &Reply) -> String {
    let enhanced = reply.enhanced.map(|e| e.to_string());
    petrel_catalogue::short_title(reply.code, enhanced.as_deref()).unwrap_or_default()
}

fn apply_lifecycle(session: &mut ServerSession, phase: Lifecycle) {
    match phase {
        Lifecycle::Running => {}
        Lifecycle::Draining => {
            session.begin_shutdown();
        }
        Lifecycle::Stopping => session.end_shutdown(),
    }
}
