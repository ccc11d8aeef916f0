//! `petrel send`: sends one message to one server over SMTP and prints the transcript, each
//! reply optionally explained from the reply-code reference.
//!
//! Drives `proto`'s sans-IO `ClientSession` over a plain TCP connection on a current-thread
//! Tokio runtime. Also home of the small pieces `probe` shares: `Connection` (one whole reply at
//! a time, with timeouts) and `explanation` (a reply's title and meaning from the catalogue).
//! The server is untrusted: its replies are parsed by `proto`; IO errors and timeouts are
//! errors for the user, never panics.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use petrel_catalogue::{Catalogue, Lang};
use petrel_proto::address::parse_mailbox;
use petrel_proto::client::{
    ClientEvent, ClientSession, Outgoing, SessionFailure, Stage, TransactionResult,
};
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_proto::reply::Reply;
use petrel_proto::reply::parse::{ReplyError, parse_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::timeout;

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for each reply (the end of data may take a while: C-TIME-1 allows 10 min).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Arguments of `petrel send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The server to send to, as HOST:PORT (port 25 when omitted).
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// The envelope sender (MAIL FROM); "" or "<>" for the null sender.
    #[arg(long, value_name = "ADDR")]
    from: String,
    /// An envelope recipient (RCPT TO); repeat for more.
    #[arg(long, value_name = "ADDR", required = true)]
    to: Vec<String>,
    /// The message (headers and body); read from stdin when omitted. Sent as is.
    #[arg(long, value_name = "MESSAGE")]
    file: Option<PathBuf>,
    /// After each reply, print its title and meaning from the reply-code reference.
    #[arg(long)]
    explain: bool,
    /// The name to greet with in EHLO (default: this system's host name).
    #[arg(long, value_name = "NAME")]
    helo: Option<String>,
    /// Upgrade the connection with STARTTLS (not supported yet).
    #[arg(long)]
    starttls: bool,
    /// Connect with implicit TLS (not supported yet).
    #[arg(long)]
    tls: bool,
    /// Authenticate as USER (not supported yet).
    #[arg(long, value_name = "USER")]
    auth: Option<String>,
}

/// Runs the command.
///
/// # Errors
/// What went wrong, for the user: a refused recipient, a refused message, or a connection
/// problem.
pub fn run(args: &SendArgs) -> Result<(), String> {
    if args.starttls || args.tls || args.auth.is_some() {
        return Err("not supported yet: TLS and AUTH arrive with issue 5 (leave out --starttls, --tls and --auth)".into());
    }
    let message = outgoing(args)?;
    let server = if args.server.contains(':') {
        args.server.clone()
    } else {
        format!("{}:25", args.server)
    };
    let helo = args
        .helo
        .clone()
        .unwrap_or_else(crate::config::system_hostname);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let mut connection = Connection::open(server.as_str(), REPLY_TIMEOUT)
            .await
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        let peer = connection.peer();
        if peer == server {
            println!("* connected to {server}");
        } else {
            println!("* connected to {server} ({peer})");
        }
        transact(
            &mut connection,
            ClientSession::new(&helo),
            &message,
            args.explain,
        )
        .await
    })?;
    verdict(&message, &result)
}

/// The envelope and content from the arguments, the file or stdin.
fn outgoing(args: &SendArgs) -> Result<Outgoing, String> {
    let reverse_path = envelope_address(&args.from, "--from", true)?;
    let recipients = args
        .to
        .iter()
        .map(|to| {
            Ok((
                envelope_address(to, "--to", false)?,
                RcptParameters::default(),
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let content = match &args.file {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read the message {}: {e}", path.display()))?,
        None => {
            let mut content = Vec::new();
            std::io::stdin()
                .read_to_end(&mut content)
                .map_err(|e| format!("cannot read the message from stdin: {e}"))?;
            content
        }
    };
    Ok(Outgoing {
        reverse_path,
        parameters: MailParameters::default(),
        recipients,
        content,
    })
}

/// An address without its angle brackets, checked; empty only where the null path is allowed.
fn envelope_address(text: &str, option: &str, null_allowed: bool) -> Result<String, String> {
    let bare = text.trim();
    let bare = bare
        .strip_prefix('<')
        .and_then(|b| b.strip_suffix('>'))
        .unwrap_or(bare);
    if bare.is_empty() && null_allowed {
        return Ok(String::new());
    }
    parse_mailbox(bare)
        .map(|_| bare.to_owned())
        .map_err(|_| format!("{option} {text:?} is not an address like user@example.org"))
}

/// Runs the session to the end (QUIT), printing what goes each way.
async fn transact(
    connection: &mut Connection,
    mut session: ClientSession,
    message: &Outgoing,
    explain: bool,
) -> Result<TransactionResult, String> {
    let mut outcome = None;
    loop {
        match session.poll() {
            ClientEvent::NeedInput => {
                let output = session.take_output();
                print_output(&output, session.waiting());
                connection.write(&output).await?;
                let received = connection.reply().await?;
                print_reply(&received, explain);
                session.receive(&received.bytes);
            }
            ClientEvent::Ready if outcome.is_none() => {
                if let Err(refusal) = session.check(message) {
                    return Err(format!(
                        "the server cannot take this message: {} {}",
                        refusal.status, refusal.reason
                    ));
                }
                session.send(message.clone());
            }
            ClientEvent::Sent(result) => {
                outcome = Some(result);
                session.quit();
            }
            ClientEvent::Ready | ClientEvent::Closed => {
                return outcome.ok_or_else(|| "the session ended early".to_owned());
            }
            ClientEvent::Failed(failure) => return Err(failed(&failure)),
            ClientEvent::StartTls => return Err("STARTTLS is not supported yet".into()),
        }
    }
}

fn failed(failure: &SessionFailure) -> String {
    match failure {
        SessionFailure::Greeting(reply) => {
            format!("the server refused the session: {}", reply.to_line())
        }
        SessionFailure::Hello(reply) => {
            format!("the server refused EHLO and HELO: {}", reply.to_line())
        }
        SessionFailure::Protocol(reason) => format!("protocol error: {reason}"),
        SessionFailure::Auth(reply) => {
            format!("the server refused the credentials: {}", reply.to_line())
        }
        SessionFailure::AuthUnavailable(reason) => reason.clone(),
    }
}

/// Prints the commands, or one line for the message content.
fn print_output(output: &[u8], waiting: Option<Stage>) {
    if output.is_empty() {
        return;
    }
    if waiting == Some(Stage::DataEnd) {
        let octets = output.len().saturating_sub(3);
        if octets > 0 {
            println!("C: <{octets} octets of message content>");
        }
        println!("C: .");
        return;
    }
    let text = String::from_utf8_lossy(output);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        println!("C: {line}");
    }
}

fn print_reply(received: &Received, explain: bool) {
    for line in received.lines() {
        println!("S: {line}");
    }
    if explain && let Some(explanation) = explanation(&received.reply) {
        println!("    {explanation}");
    }
}

/// Ok when every recipient was accepted and the message queued; else the summary.
fn verdict(message: &Outgoing, result: &TransactionResult) -> Result<(), String> {
    if result.mail.code != 250 {
        return Err(format!(
            "not sent: the sender was refused: {}",
            result.mail.to_line()
        ));
    }
    let refused: Vec<String> = message
        .recipients
        .iter()
        .zip(&result.recipients)
        .filter(|(_, decided)| decided.reply.code >= 300)
        .map(|((address, _), decided)| format!("<{address}>: {}", decided.reply.to_line()))
        .collect();
    if refused.is_empty() {
        println!("* sent: {} recipient(s) accepted", message.recipients.len());
        return Ok(());
    }
    Err(format!(
        "not sent to {} of {} recipient(s): {}",
        refused.len(),
        message.recipients.len(),
        refused.join("; ")
    ))
}

/// A reply's code, title and meaning from the reference.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Explanation {
    pub code: String,
    pub title: String,
    pub meaning: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.title, self.meaning)
    }
}

/// The explanation of a reply: its enhanced code's when the reference has it, else its basic
/// code's; `None` when the reference has neither (or does not load).
pub(crate) fn explanation(reply: &Reply) -> Option<Explanation> {
    let enhanced = reply.enhanced.map(|e| e.to_string());
    enhanced
        .and_then(|code| explain_code(&code))
        .or_else(|| explain_code(&reply.code.to_string()))
}

/// The explanation of one code (`556`, `5.1.10`), when the reference has it.
pub(crate) fn explain_code(code: &str) -> Option<Explanation> {
    let text = Catalogue::get().ok()?.entry(code)?.text(Lang::En);
    Some(Explanation {
        code: code.to_owned(),
        title: text.title.clone(),
        meaning: text
            .meaning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// One reply as it came.
pub(crate) struct Received {
    pub reply: Reply,
    /// The octets it took on the wire.
    pub bytes: Vec<u8>,
}

impl Received {
    /// Its lines as sent, without line ends.
    pub(crate) fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes)
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A TCP connection to an SMTP server that hands back one whole reply at a time.
pub(crate) struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
    reply_timeout: Duration,
}

impl Connection {
    /// Connects within 30 s.
    ///
    /// # Errors
    /// The connect error or the timeout.
    pub(crate) async fn open(
        target: impl ToSocketAddrs,
        reply_timeout: Duration,
    ) -> Result<Connection, String> {
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err(format!("timed out after {}s", CONNECT_TIMEOUT.as_secs())),
        };
        Ok(Connection {
            stream,
            pending: Vec::new(),
            reply_timeout,
        })
    }

    /// The server's address.
    pub(crate) fn peer(&self) -> String {
        self.stream
            .peer_addr()
            .map_or_else(|_| "unknown address".to_owned(), |a| a.to_string())
    }

    /// Writes all of `bytes`.
    ///
    /// # Errors
    /// The write error or the timeout.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        match timeout(self.reply_timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("write error: {error}")),
            Err(_) => Err("write timed out".into()),
        }
    }

    /// Reads until one whole reply is in and takes it.
    ///
    /// # Errors
    /// A malformed reply, the connection closed, a read error or the timeout.
    pub(crate) async fn reply(&mut self) -> Result<Received, String> {
        loop {
            match parse_reply(&self.pending) {
                Ok(Some((reply, used))) => {
                    let bytes = self.pending.drain(..used).collect();
                    return Ok(Received { reply, bytes });
                }
                Ok(None) => self.fill().await?,
                Err(ReplyError::TooLong) => return Err("the server's reply is too long".into()),
                Err(ReplyError::Malformed(line)) => {
                    return Err(format!("the server sent something not a reply: {line:?}"));
                }
            }
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut buffer = [0u8; 8192];
        match timeout(self.reply_timeout, self.stream.read(&mut buffer)).await {
            Err(_) => Err(format!("no reply within {}s", self.reply_timeout.as_secs())),
            Ok(Err(error)) => Err(format!("read error: {error}")),
            Ok(Ok(0)) => Err("the server closed the connection".into()),
            Ok(Ok(count)) => {
                self.pending.extend_from_slice(&buffer[..count]);
                Ok(())
            }
        }
    }
}
