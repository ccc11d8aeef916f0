//! `petrel send`: sends one message to one server and prints the transcript, each reply
//! optionally explained from the reply-code reference. STARTTLS (`--starttls`, required) or
//! implicit TLS (`--tls`), with the certificate checked against the system's trust anchors
//! (and `--ca-file`) and the verdict printed; AUTH (`--auth USER`, the password from
//! `--password-file` or `PETREL_AUTH_PASSWORD`, never from the command line) for submission
//! to a smarthost.
//!
//! Runs delivery's own client driver (`petrel_delivery::client`) on a current-thread Tokio
//! runtime, so what it shows is what delivery does. The server is untrusted: its replies are
//! parsed by `proto`; IO errors and timeouts are errors for the user, never panics.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use petrel_delivery::client::stream::connect_any;
use petrel_delivery::client::{
    Connection, Observer, Step, Stream, Timeouts, TlsClient, TlsReport, Work,
};
use petrel_proto::address::parse_mailbox;
use petrel_proto::client::{
    ClientCredentials, ClientSession, Outgoing, TransactionResult, TranscriptLine,
};
use petrel_proto::params::{MailParameters, RcptParameters};
use petrel_queue::RemoteMta;

use crate::transcript::{explanation, printed, refusal};

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for each reply (the end of data may take a while: C-TIME-1 allows 10 min).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Where the AUTH password may come from besides `--password-file`.
const PASSWORD_VARIABLE: &str = "PETREL_AUTH_PASSWORD";

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
    /// Upgrade the connection with STARTTLS, and stop if the server does not offer it.
    #[arg(long, conflicts_with = "tls")]
    starttls: bool,
    /// Connect with implicit TLS (port 465, RFC 8314).
    #[arg(long)]
    tls: bool,
    /// Trust this CA (PEM) besides the system's trust anchors, to verify the certificate.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Authenticate as USER (only inside TLS); the password comes from --password-file or
    /// PETREL_AUTH_PASSWORD.
    #[arg(long, value_name = "USER")]
    auth: Option<String>,
    /// The file holding the AUTH password (its first line).
    #[arg(long, value_name = "FILE", requires = "auth")]
    password_file: Option<PathBuf>,
}

/// Runs the command.
///
/// # Errors
/// What went wrong, for the user: a refused recipient, a refused message, or a connection
/// problem.
pub fn run(args: &SendArgs) -> Result<(), String> {
    let message = outgoing(args)?;
    let credentials = credentials(args)?;
    let server = if args.server.contains(':') {
        args.server.clone()
    } else {
        format!("{}:25", args.server)
    };
    let host = server
        .rsplit_once(':')
        .map_or(server.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let helo = args
        .helo
        .clone()
        .unwrap_or_else(crate::config::system_hostname);
    let mut session = match &credentials {
        Some(credentials) => ClientSession::new(&helo).with_auth(credentials.clone()),
        None if args.starttls => ClientSession::with_starttls(&helo),
        None => ClientSession::new(&helo),
    }
    .with_transcript();
    if args.tls {
        session = session.over_tls();
    }
    if let Some(path) = &args.ca_file {
        std::fs::metadata(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    }
    let tls_client = TlsClient::new(args.ca_file.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let (tcp, target) = connect_any(&server, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("cannot connect to {server}: {}", e.detail))?;
        if server == target.to_string() {
            outln!("* connected to {server}");
        } else {
            outln!("* connected to {server} ({target})");
        }
        let mut printer = Printer {
            is_explained: args.explain,
        };
        let remote = RemoteMta {
            host: host.clone(),
            address: Some(target.ip()),
        };
        let timeouts = Timeouts::uniform(REPLY_TIMEOUT);
        let mut connection = if args.tls {
            let handshake = tls_client.handshake(tcp, &host);
            let (stream, report) = tokio::time::timeout(REPLY_TIMEOUT, handshake)
                .await
                .map_err(|_| format!("cannot start TLS with {server}: no handshake in time"))?
                .map_err(|e| format!("cannot start TLS with {server}: {}", e.detail))?;
            printer.tls(&report);
            Connection::new(stream, remote, session, tls_client, timeouts).with_tls(report)
        } else {
            Connection::new(Stream::Tcp(tcp), remote, session, tls_client, timeouts)
        };
        if args.starttls {
            connection = connection.requiring_tls();
        }
        transact(&mut connection, &message, &mut printer).await
    })?;
    verdict(&message, &result)
}

/// Prints the transcript, the TLS result and, when asked, what each reply means.
struct Printer {
    is_explained: bool,
}

impl Observer for Printer {
    fn transcript(&mut self, lines: Vec<TranscriptLine>) {
        for line in &lines {
            for text in printed(line) {
                outln!("{text}");
            }
            if let TranscriptLine::Reply { reply, .. } = line
                && self.is_explained
                && let Some(explanation) = explanation(reply)
            {
                outln!("    {explanation}");
            }
        }
    }

    fn tls(&mut self, report: &TlsReport) {
        outln!("* TLS: {}", report.summary());
    }
}

/// The credentials of `--auth`, the password from `--password-file` or the environment.
fn credentials(args: &SendArgs) -> Result<Option<ClientCredentials>, String> {
    let Some(username) = &args.auth else {
        return Ok(None);
    };
    let password = match &args.password_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        None => std::env::var(PASSWORD_VARIABLE).map_err(|_| {
            format!("--auth needs the password in --password-file or {PASSWORD_VARIABLE}")
        })?,
    };
    Ok(Some(ClientCredentials {
        username: username.clone(),
        password,
    }))
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

/// Runs the transaction, then QUIT, printing what goes each way.
async fn transact(
    connection: &mut Connection,
    message: &Outgoing,
    printer: &mut Printer,
) -> Result<TransactionResult, String> {
    let work = Work::Send {
        message,
        is_checked: true,
    };
    let step = connection.run(work, printer).await;
    match step.map_err(|broken| broken.to_string())? {
        Step::Sent(result) => {
            connection.quit(printer).await;
            Ok(result)
        }
        Step::Unsendable(refusal) => Err(format!(
            "the server cannot take this message: {} {}",
            refusal.status, refusal.reason
        )),
        Step::Failed(failure) => Err(refusal(&failure)),
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
        outln!("* sent: {} recipient(s) accepted", message.recipients.len());
        return Ok(());
    }
    Err(format!(
        "not sent to {} of {} recipient(s): {}",
        refused.len(),
        message.recipients.len(),
        refused.join("; ")
    ))
}
