//! One SMTP connection driven by `proto`'s client session: the socket (plain, or TLS after
//! STARTTLS), the stage timeouts of C-TIME-1, and the replies counted for `/metrics`. A driver
//! whose transaction went cleanly is kept in the pool for the next message to its domain.
//!
//! The server's bytes are untrusted and go to the session's parser; IO errors and timeouts are
//! returned as a [`Broken`]: the typed cause (lost at a stage, TLS) and words for the history.

use std::time::Duration;

use petrel_proto::EnhancedCode;
use petrel_proto::client::{
    ClientEvent, ClientSession, Outgoing, SessionFailure, Stage, TransactionResult,
};
use petrel_queue::RemoteMta;
use petrel_queue::status::{Cause, ConnectProblem, TlsProblem};
use tokio::time::timeout;

use crate::tls::{Transport, handshake};

/// Why a session broke off without a result.
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    pub(crate) cause: Cause,
    pub(crate) detail: String,
}

impl Broken {
    /// The connection was lost (or timed out) at `stage`.
    pub(crate) fn lost(stage: Option<Stage>, detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Lost(stage.unwrap_or(Stage::Quit)),
            detail: detail.into(),
        }
    }

    /// The connection could not be opened.
    pub(crate) fn connect(problem: ConnectProblem, detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Connect(problem),
            detail: detail.into(),
        }
    }

    fn tls(detail: impl Into<String>) -> Broken {
        Broken {
            cause: Cause::Tls(TlsProblem::Handshake),
            detail: detail.into(),
        }
    }
}

pub(crate) enum Step {
    Sent(TransactionResult),
    Unsendable(EnhancedCode, String),
    Failed(SessionFailure),
}

pub(crate) struct Driver {
    /// The host talked to (name and address), for the history and the outcome.
    pub(crate) remote: RemoteMta,
    /// `None` only while STARTTLS swaps the stream.
    pub(crate) transport: Option<Transport>,
    pub(crate) session: ClientSession,
    pub(crate) buffer: Vec<u8>,
    /// What happened with TLS, for the history.
    pub(crate) tls_note: Option<String>,
    /// Counts the replies read (`/metrics`).
    pub(crate) replies: petrel_metrics::replies::ReplyScanner,
}

impl Driver {
    pub(crate) async fn run(&mut self, message: &Outgoing) -> Result<Step, Broken> {
        let mut is_sent = false;
        loop {
            match self.session.poll() {
                ClientEvent::NeedInput => self.exchange().await?,
                ClientEvent::Ready if !is_sent => {
                    if let Err(refusal) = self.session.check(message) {
                        self.session.quit();
                        let _ = self.flush().await;
                        return Ok(Step::Unsendable(refusal.status, refusal.reason));
                    }
                    self.session.send(message.clone());
                    is_sent = true;
                }
                ClientEvent::Ready | ClientEvent::Closed => {
                    return Err(Broken::lost(self.session.waiting(), "session ended early"));
                }
                // The session stays open and ready: the caller pools it or quits it.
                ClientEvent::Sent(result) => return Ok(Step::Sent(result)),
                ClientEvent::Failed(failure) => {
                    if let Some(transport) = &mut self.transport {
                        transport.shutdown().await;
                    }
                    return Ok(Step::Failed(failure));
                }
                ClientEvent::StartTls => self.start_tls().await?,
            }
        }
    }

    /// Runs the TLS handshake after 220 to STARTTLS; a failure ends this connection (C-TLS-6).
    async fn start_tls(&mut self) -> Result<(), Broken> {
        self.flush().await?;
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Err(Broken::tls("STARTTLS on a connection already in TLS"));
        };
        match timeout(Duration::from_secs(60), handshake(tcp, &self.remote.host)).await {
            Ok(Ok(transport)) => {
                self.tls_note = transport.summary().map(|s| format!("STARTTLS: {s}"));
                petrel_metrics::registry().increment(
                    petrel_metrics::SMTP_TLS_SESSIONS,
                    &[("direction", "outbound")],
                );
                self.transport = Some(transport);
                self.session.tls_started();
                Ok(())
            }
            Ok(Err(error)) => Err(Broken::tls(format!("TLS handshake failed: {error}"))),
            Err(_) => Err(Broken::tls("TLS handshake timed out")),
        }
    }

    /// Writes what is pending and reads the next bytes, within the stage's timeout.
    async fn exchange(&mut self) -> Result<(), Broken> {
        self.flush().await?;
        let stage = self.session.waiting();
        let limit = stage_timeout(stage);
        let Some(transport) = &mut self.transport else {
            return Err(Broken::lost(stage, "no connection"));
        };
        match timeout(limit, transport.read(&mut self.buffer)).await {
            Err(_) => Err(Broken::lost(
                stage,
                format!("no reply within {}s", limit.as_secs()),
            )),
            Ok(Err(error)) => Err(Broken::lost(stage, format!("read error: {error}"))),
            Ok(Ok(0)) => Err(Broken::lost(stage, "connection closed by the server")),
            Ok(Ok(count)) => {
                let registry = petrel_metrics::registry();
                self.replies.scan(&self.buffer[..count], |reply| {
                    registry.increment(
                        petrel_metrics::REMOTE_REPLIES_RECEIVED,
                        &[("code", reply.code), ("enhanced", reply.enhanced)],
                    );
                });
                self.session.receive(&self.buffer[..count]);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Broken> {
        let output = self.session.take_output();
        if output.is_empty() {
            return Ok(());
        }
        let stage = self.session.waiting();
        let Some(transport) = &mut self.transport else {
            return Err(Broken::lost(stage, "no connection"));
        };
        match timeout(Duration::from_secs(180), transport.write_all(&output)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Broken::lost(stage, format!("write error: {error}"))),
            Err(_) => Err(Broken::lost(stage, "write timed out")),
        }
    }
}

/// C-TIME-1: greeting 5 min, MAIL 5, RCPT 5, DATA 2, end of data 10.
pub(crate) fn stage_timeout(waiting: Option<Stage>) -> Duration {
    let minutes = match waiting {
        Some(Stage::Data) => 2,
        Some(Stage::DataEnd) => 10,
        Some(Stage::Quit) => 1,
        _ => 5,
    };
    Duration::from_secs(minutes * 60)
}
