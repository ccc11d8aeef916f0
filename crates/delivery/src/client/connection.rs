//! One client session on one connection, driven by `proto`'s `ClientSession`: the stage
//! timeouts (C-TIME-1), STARTTLS through the [`TlsClient`], a transaction or a probe, QUIT.
//! Remote delivery, LMTP, `petrel send` and `petrel probe` all run this one loop; an
//! [`Observer`] sees the transcript (when the session records one) and the TLS result, and
//! remote delivery counts the replies for `/metrics`. A connection whose transaction went
//! cleanly can be kept and run again (the pool).
//!
//! The server's bytes are untrusted and go to the session's parser; IO errors and timeouts are
//! returned as a [`Broken`]: the typed cause (lost at a stage, TLS, connect) and words for the
//! history.

use std::time::Duration;

use petrel_proto::client::{
    ClientEvent, ClientSession, Outgoing, SessionFailure, Stage, TransactionResult, TranscriptLine,
    Unsendable,
};
use petrel_queue::RemoteMta;
use petrel_queue::status::{Cause, ConnectProblem, TlsProblem};
use tokio::time::timeout;

use super::stream::Stream;
use super::tls::{TlsClient, TlsReport};

/// Why a session broke off without a result.
#[derive(Debug, Clone)]
pub struct Broken {
    pub cause: Cause,
    pub detail: String,
}

impl Broken {
    /// The connection was lost (or timed out) at `stage`.
    pub fn lost(stage: Option<Stage>, detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Lost(stage.unwrap_or(Stage::Quit)),
            detail: detail.into(),
        }
    }

    /// The connection could not be opened.
    pub fn connect(problem: ConnectProblem, detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Connect(problem),
            detail: detail.into(),
        }
    }

    /// TLS failed, or a policy for it was not met.
    pub fn tls(problem: TlsProblem, detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Tls(problem),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.cause.describe())
    }
}

impl std::error::Error for Broken {}

/// What the session did with the work it was given.
#[derive(Debug)]
pub enum Step {
    /// The transaction (or probe) ran; the session is ready for more.
    Sent(TransactionResult),
    /// The message cannot go to this server (SMTPUTF8, 8BITMIME, SIZE); QUIT was sent.
    Unsendable(Unsendable),
    /// The server refused the session, EHLO or our credentials, or spoke garbage.
    Failed(SessionFailure),
}

/// The work of one `run`.
#[derive(Debug, Clone, Copy)]
pub enum Work<'a> {
    /// Send the message; `is_checked` first checks the server can take it (SMTP), which LMTP
    /// to our own mailbox server skips.
    Send {
        message: &'a Outgoing,
        is_checked: bool,
    },
    /// MAIL and RCPT for the message's envelope, then RSET: what would the server say
    /// (checked first, as a delivery would be).
    Probe(&'a Outgoing),
}

/// Sees a session as it goes (the default does nothing).
pub trait Observer: Send {
    /// Lines of the transcript, when the session records one.
    fn transcript(&mut self, _lines: Vec<TranscriptLine>) {}
    /// TLS is up.
    fn tls(&mut self, _report: &TlsReport) {}
}

/// An observer that looks away.
pub struct Quiet;

impl Observer for Quiet {}

/// How long each step may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Every reply, or `None` for C-TIME-1's per-stage limits.
    pub reply: Option<Duration>,
    pub write: Duration,
    pub handshake: Duration,
}

impl Timeouts {
    /// RFC 5321 §4.5.3.2 (C-TIME-1): greeting 5 min, MAIL 5, RCPT 5, DATA 2, end of data 10;
    /// writes 3 min, the TLS handshake 1.
    pub const SMTP: Timeouts = Timeouts {
        reply: None,
        write: Duration::from_secs(180),
        handshake: Duration::from_secs(60),
    };

    /// One limit for everything (a person waiting at `petrel send` or `petrel probe`).
    pub fn uniform(limit: Duration) -> Timeouts {
        Timeouts {
            reply: Some(limit),
            write: limit,
            handshake: limit,
        }
    }

    fn reply(&self, stage: Option<Stage>) -> Duration {
        self.reply.unwrap_or_else(|| stage_timeout(stage))
    }
}

/// One session with one server.
pub struct Connection {
    /// The server (name and address), for the history and the outcome.
    pub remote: RemoteMta,
    /// `None` only while STARTTLS swaps the stream.
    stream: Option<Stream>,
    pub session: ClientSession,
    buffer: Vec<u8>,
    tls_client: TlsClient,
    tls: Option<TlsReport>,
    /// Refuse to go on in plaintext (`petrel send --starttls`).
    requires_tls: bool,
    timeouts: Timeouts,
    /// Counts the replies read (`/metrics`), for remote delivery.
    replies: Option<petrel_metrics::replies::ReplyScanner>,
}

impl Connection {
    /// A session on `stream` to `remote`; it first waits for the greeting.
    pub fn new(
        stream: Stream,
        remote: RemoteMta,
        session: ClientSession,
        tls_client: TlsClient,
        timeouts: Timeouts,
    ) -> Connection {
        Connection {
            remote,
            stream: Some(stream),
            session,
            buffer: vec![0u8; 8192],
            tls_client,
            tls: None,
            requires_tls: false,
            timeouts,
            replies: None,
        }
    }

    /// A stream that is already TLS (implicit TLS), with what its handshake gave.
    pub fn with_tls(mut self, report: TlsReport) -> Connection {
        self.tls = Some(report);
        self
    }

    /// Ends the session before any transaction unless it runs inside TLS.
    pub fn requiring_tls(mut self) -> Connection {
        self.requires_tls = true;
        self
    }

    /// Counts every reply read for `/metrics` (remote delivery).
    pub fn counting_replies(mut self) -> Connection {
        self.replies = Some(petrel_metrics::replies::ReplyScanner::default());
        self
    }

    /// The cause a refused or garbled session records: the server's reply at the stage that
    /// failed (the greeting, EHLO, AUTH), a garbled reply at its stage, or AUTH impossible.
    pub fn cause_of(&self, failure: &SessionFailure) -> Cause {
        let stage = self.session.last_stage().unwrap_or(Stage::Greeting);
        match failure {
            SessionFailure::Greeting(_) | SessionFailure::Hello(_) | SessionFailure::Auth(_) => {
                Cause::Reply(stage)
            }
            SessionFailure::Protocol(_) => Cause::Malformed(stage),
            SessionFailure::AuthUnavailable(_) => Cause::AuthUnavailable,
        }
    }

    /// What TLS gave, when the session runs inside it.
    pub fn tls(&self) -> Option<&TlsReport> {
        self.tls.as_ref()
    }

    /// Runs `work` to its result.
    ///
    /// # Errors
    /// A `Broken` when the connection is lost, times out, TLS fails, or TLS is required and
    /// the server offers none.
    pub async fn run(
        &mut self,
        work: Work<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Step, Broken> {
        let mut is_started = false;
        loop {
            let event = self.session.poll();
            observer.transcript(self.session.take_transcript());
            match event {
                ClientEvent::NeedInput => self.exchange(observer).await?,
                ClientEvent::Ready if !is_started => {
                    if self.requires_tls && !self.session.is_tls() {
                        self.quit(observer).await;
                        return Err(Broken::tls(
                            TlsProblem::Policy,
                            "the server does not offer STARTTLS",
                        ));
                    }
                    let (message, is_checked) = match work {
                        Work::Send {
                            message,
                            is_checked,
                        } => (message, is_checked),
                        Work::Probe(message) => (message, true),
                    };
                    if is_checked && let Err(refusal) = self.session.check(message) {
                        self.session.quit();
                        let _ = self.flush(observer).await;
                        return Ok(Step::Unsendable(refusal));
                    }
                    match work {
                        Work::Send { .. } => self.session.send(message.clone()),
                        Work::Probe(_) => self.session.probe(message.clone()),
                    }
                    is_started = true;
                }
                ClientEvent::Ready | ClientEvent::Closed => {
                    let stage = self.session.last_stage();
                    return Err(Broken::lost(stage, "session ended early"));
                }
                // The session stays open and ready: the caller keeps it or quits it.
                ClientEvent::Sent(result) => return Ok(Step::Sent(result)),
                ClientEvent::Failed(failure) => {
                    self.abandon().await;
                    return Ok(Step::Failed(failure));
                }
                ClientEvent::StartTls => self.start_tls(observer).await?,
            }
        }
    }

    /// Says QUIT and closes without waiting for the reply (the transaction's outcome is
    /// already known; LMTP to our own mailbox server).
    pub async fn quit_now(&mut self) {
        self.session.quit();
        let _ = self.flush(&mut Quiet).await;
        self.abandon().await;
    }

    /// Says QUIT and waits for the reply, then closes.
    pub async fn quit(&mut self, observer: &mut dyn Observer) {
        self.session.quit();
        loop {
            let event = self.session.poll();
            observer.transcript(self.session.take_transcript());
            match event {
                ClientEvent::NeedInput if self.exchange(observer).await.is_ok() => {}
                _ => break,
            }
        }
        self.abandon().await;
    }

    /// Closes the connection without a word.
    pub async fn abandon(&mut self) {
        if let Some(stream) = &mut self.stream {
            stream.shutdown().await;
        }
    }

    /// Runs the TLS handshake after 220 to STARTTLS; a failure ends this connection (C-TLS-6).
    async fn start_tls(&mut self, observer: &mut dyn Observer) -> Result<(), Broken> {
        self.flush(observer).await?;
        let Some(Stream::Tcp(tcp)) = self.stream.take() else {
            return Err(Broken::tls(
                TlsProblem::Handshake,
                "STARTTLS on a connection that is not plain TCP",
            ));
        };
        let handshake = self.tls_client.handshake(tcp, &self.remote.host);
        let (stream, report) = match timeout(self.timeouts.handshake, handshake).await {
            Ok(done) => done?,
            Err(_) => {
                return Err(Broken::tls(
                    TlsProblem::Handshake,
                    "TLS handshake timed out",
                ));
            }
        };
        observer.tls(&report);
        if self.replies.is_some() {
            petrel_metrics::registry().increment(
                petrel_metrics::SMTP_TLS_SESSIONS,
                &[("direction", "outbound")],
            );
        }
        self.tls = Some(report);
        self.stream = Some(stream);
        self.session.tls_started();
        Ok(())
    }

    /// Writes what is pending and reads the next bytes, within the stage's timeout.
    async fn exchange(&mut self, observer: &mut dyn Observer) -> Result<(), Broken> {
        self.flush(observer).await?;
        let stage = self.session.waiting();
        let limit = self.timeouts.reply(stage);
        let Some(stream) = &mut self.stream else {
            return Err(Broken::lost(stage, "no connection"));
        };
        match timeout(limit, stream.read(&mut self.buffer)).await {
            Err(_) => Err(Broken::lost(
                stage,
                format!("no reply within {}s", limit.as_secs()),
            )),
            Ok(Err(error)) => Err(Broken::lost(stage, format!("read error: {error}"))),
            Ok(Ok(0)) => Err(Broken::lost(stage, "connection closed by the server")),
            Ok(Ok(count)) => {
                if let Some(replies) = &mut self.replies {
                    let registry = petrel_metrics::registry();
                    replies.scan(&self.buffer[..count], |reply| {
                        registry.increment(
                            petrel_metrics::REMOTE_REPLIES_RECEIVED,
                            &[("code", reply.code), ("enhanced", reply.enhanced)],
                        );
                    });
                }
                self.session.receive(&self.buffer[..count]);
                Ok(())
            }
        }
    }

    async fn flush(&mut self, observer: &mut dyn Observer) -> Result<(), Broken> {
        let output = self.session.take_output();
        observer.transcript(self.session.take_transcript());
        if output.is_empty() {
            return Ok(());
        }
        let stage = self.session.waiting();
        let Some(stream) = &mut self.stream else {
            return Err(Broken::lost(stage, "no connection"));
        };
        match timeout(self.timeouts.write, stream.write_all(&output)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Broken::lost(stage, format!("write error: {error}"))),
            Err(_) => Err(Broken::lost(stage, "write timed out")),
        }
    }
}

/// C-TIME-1: greeting 5 min, MAIL 5, RCPT 5, DATA 2, end of data 10.
fn stage_timeout(waiting: Option<Stage>) -> Duration {
    let minutes = match waiting {
        Some(Stage::Data) => 2,
        Some(Stage::DataEnd) => 10,
        Some(Stage::Quit) => 1,
        _ => 5,
    };
    Duration::from_secs(minutes * 60)
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
