//! `petrel queue list | show | flush | hold | release | delete | bounce`: the operator's view of
//! the queue and the hands on it. A running daemon is reached through `<data_dir>/control.sock`
//! (so no command races a delivery in progress); without one the spool is opened directly.
//!
//! Output is for people (and `--json` for scripts); queue ids and Message-IDs typed by people
//! are validated before use.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use clap::Subcommand;
use petrel_delivery::control::{Control, ControlError};
use petrel_queue::{Place, QueueId};
use tokio::sync::watch;

use crate::config::{self, Source};
use crate::queue_view;

/// The queue subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// One line per queued message: id, age, size, sender, recipients with state, next attempt.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Envelope, headers and history of a message, by queue id or Message-ID.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Retry now: one message, or all.
    Flush { id: Option<String> },
    /// Set a message aside; it is not delivered until released.
    Hold { id: String },
    /// Deliver a held message again.
    Release { id: String },
    /// Remove a message without delivering it (its history is kept).
    Delete { id: String },
    /// Fail a message now and send the sender a notification.
    Bounce { id: String },
}

impl QueueCommand {
    /// The request line sent to a running daemon.
    fn to_line(&self) -> String {
        let flag = |json: bool| if json { " --json" } else { "" };
        match self {
            QueueCommand::List { json } => format!("list{}", flag(*json)),
            QueueCommand::Show { id, json } => format!("show {id}{}", flag(*json)),
            QueueCommand::Flush { id } => format!("flush {}", id.as_deref().unwrap_or(""))
                .trim_end()
                .to_owned(),
            QueueCommand::Hold { id } => format!("hold {id}"),
            QueueCommand::Release { id } => format!("release {id}"),
            QueueCommand::Delete { id } => format!("delete {id}"),
            QueueCommand::Bounce { id } => format!("bounce {id}"),
        }
    }

    /// Parses a request line from a client of the control socket.
    pub fn parse_line(line: &str) -> Option<QueueCommand> {
        let mut words = line.split_whitespace();
        let verb = words.next()?;
        let rest: Vec<&str> = words.collect();
        let json = rest.contains(&"--json");
        let argument = rest
            .iter()
            .find(|w| **w != "--json")
            .map(|w| (*w).to_owned());
        Some(match verb {
            "list" => QueueCommand::List { json },
            "show" => QueueCommand::Show {
                id: argument?,
                json,
            },
            "flush" => QueueCommand::Flush { id: argument },
            "hold" => QueueCommand::Hold { id: argument? },
            "release" => QueueCommand::Release { id: argument? },
            "delete" => QueueCommand::Delete { id: argument? },
            "bounce" => QueueCommand::Bounce { id: argument? },
            _ => return None,
        })
    }
}

/// Runs a queue command, through the daemon when one runs.
///
/// # Errors
/// A sentence for the operator.
pub fn run(source: &Source, command: &QueueCommand) -> Result<(), String> {
    let config = config::load(source)?;
    let socket = config.data_dir.join("control.sock");
    if let Ok(stream) = UnixStream::connect(&socket) {
        return through_daemon(stream, command);
    }
    let queue = crate::queue_open::open(&config, crate::queue_open::Opener::Command)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (_settings_tx, settings) = watch::channel(config.delivery_settings(&[])?);
    let control = Control::new(
        queue,
        settings,
        Arc::new(Mutex::new(Default::default())),
        None,
    );
    let output = runtime.block_on(execute(&control, command))?;
    out!("{output}");
    Ok(())
}

fn through_daemon(stream: UnixStream, command: &QueueCommand) -> Result<(), String> {
    ask_daemon(stream, &command.to_line())
}

/// Sends one request line to the running daemon's control socket and prints its answer.
///
/// # Errors
/// The daemon's refusal, or why it could not be asked.
pub fn ask_daemon(mut stream: UnixStream, line: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("the running petrel did not answer: {e}");
    writeln!(stream, "{line}").map_err(fail)?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(fail)?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut reader, &mut body).map_err(fail)?;
    match status.trim_end() {
        "ok" => {
            out!("{body}");
            Ok(())
        }
        _ => Err(body.trim_end().to_owned()),
    }
}

/// Executes a command against the queue; the text to print, or the error.
///
/// # Errors
/// A sentence for the operator.
pub async fn execute(control: &Control, command: &QueueCommand) -> Result<String, String> {
    match command {
        QueueCommand::List { json } => queue_view::list(control.queue().as_ref(), *json),
        QueueCommand::Show { id, json } => queue_view::show(control.queue().as_ref(), id, *json),
        action => act(control, action).await.map_err(|error| match error {
            Ok(error) => error.to_string(),
            Err(sentence) => sentence,
        }),
    }
    .map(|text| {
        if text.ends_with('\n') {
            text
        } else {
            format!("{text}\n")
        }
    })
}

/// A queue action (flush, hold, release, delete, bounce) through the control, its error kept
/// typed (`Err(Ok)`) for the HTTP API; `Err(Err)` for a malformed id or a command that is not
/// an action.
///
/// # Errors
/// As said.
pub async fn act(
    control: &Control,
    command: &QueueCommand,
) -> Result<String, Result<ControlError, String>> {
    let id = |text: &str| parse_id(text).map_err(Err);
    match command {
        QueueCommand::Flush { id: Some(text) } => control.flush(Some(&id(text)?)).await,
        QueueCommand::Flush { id: None } => control.flush(None).await,
        QueueCommand::Hold { id: text } => control.hold(&id(text)?).await,
        QueueCommand::Release { id: text } => control.release(&id(text)?).await,
        QueueCommand::Delete { id: text } => control.delete(&id(text)?).await,
        QueueCommand::Bounce { id: text } => control.bounce(&id(text)?).await,
        QueueCommand::List { .. } | QueueCommand::Show { .. } => {
            return Err(Err("not an action".into()));
        }
    }
    .map_err(Ok)
}

fn parse_id(text: &str) -> Result<QueueId, String> {
    QueueId::parse(&text.to_ascii_uppercase()).ok_or_else(|| {
        format!("{text:?} is not a queue id (17 hexadecimal digits, as `petrel queue list` shows)")
    })
}

/// What the daemon's control socket serves: the queue commands and local submission.
#[derive(Clone)]
pub struct ControlService {
    pub control: Control,
    pub hostname: String,
    pub max_message_bytes: u64,
    /// For alias expansion of submitted mail.
    pub settings: tokio::sync::watch::Receiver<Arc<petrel_server::ServerSettings>>,
    /// Hands stored messages to the scheduler.
    pub queued: tokio::sync::mpsc::UnboundedSender<QueueId>,
    /// The TLS reporter (`petrel tls-report`) and delivery's settings.
    pub tls_reports: Arc<petrel_delivery::tlsrpt::Reporter>,
    pub delivery: tokio::sync::watch::Receiver<Arc<petrel_delivery::scheduler::DeliverySettings>>,
}

/// Serves the control socket of a running daemon until the task is dropped. The socket is
/// private to the daemon's user (mode 0600).
pub async fn serve_control(
    listener: tokio::net::UnixListener,
    service: ControlService,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &service).await;
        });
    }
}

/// Binds the control socket (mode 0600), replacing one a previous run left.
///
/// # Errors
/// When the socket cannot be made.
pub fn bind_control(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn answer(stream: tokio::net::UnixStream, service: &ControlService) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (reader, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    let mut line = String::new();
    (&mut reader).take(65_536).read_line(&mut line).await?;
    let result = if let Some(envelope) = line.strip_prefix("submit ") {
        submit(service, envelope, &mut reader).await
    } else if let Some(rest) = line.strip_prefix("tls-report ") {
        match crate::tls_report::TlsReportArgs::parse_line(rest) {
            Some(args) => {
                let settings = service.delivery.borrow().clone();
                crate::tls_report::answer(&service.tls_reports, &settings, &args).await
            }
            None => Err(format!("bad request {:?}", line.trim_end())),
        }
    } else {
        match QueueCommand::parse_line(&line) {
            Some(command) => execute(&service.control, &command).await,
            None => Err(format!("unknown request {:?}", line.trim_end())),
        }
    };
    let response = match result {
        Ok(text) => format!("ok\n{text}"),
        Err(text) => format!("error\n{text}\n"),
    };
    writer.write_all(response.as_bytes()).await?;
    writer.shutdown().await
}

/// `submit <sender> <recipient>...` (xtext), a line with the content's length, the content:
/// stored like a submission, then handed to delivery.
async fn submit(
    service: &ControlService,
    envelope: &str,
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Result<String, String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut words = envelope.split_whitespace().map(|w| {
        petrel_proto::xtext::decode(w)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("{w:?} is not xtext"))
    });
    let sender = words.next().transpose()?.unwrap_or_default();
    let recipients: Vec<String> = words.collect::<Result<_, _>>()?;
    let mut length = String::new();
    (&mut *reader)
        .take(32)
        .read_line(&mut length)
        .await
        .map_err(|e| e.to_string())?;
    let length: u64 = length
        .trim()
        .parse()
        .map_err(|_| "bad content length".to_owned())?;
    if length > service.max_message_bytes {
        return Err(format!(
            "the message ({length} octets) is over limits.max_message_bytes"
        ));
    }
    let mut content = Vec::new();
    (&mut *reader)
        .take(length)
        .read_to_end(&mut content)
        .await
        .map_err(|e| e.to_string())?;
    let message = crate::sendmail::local_message(&sender, &recipients, content)?;
    let client = std::net::IpAddr::from([127, 0, 0, 1]);
    let queue = service.control.queue().clone();
    let settings = service.settings.borrow().clone();
    let context = petrel_server::receive::Receiving {
        client,
        hostname: &service.hostname,
        is_submission: true,
        policy: &settings.policy,
        authentication: petrel_server::receive::Authentication::Sign(&settings.dkim),
    };
    let stored = petrel_server::receive::store_message(queue, message, None, &context).await;
    match stored.queue_id {
        Some(id) => {
            let _ = service.queued.send(id.clone());
            Ok(format!("queued as {id}"))
        }
        None => Err(format!("not queued: {}", stored.reply.to_line())),
    }
}

/// Where a message is, for the views.
pub fn place_name(place: Place) -> &'static str {
    match place {
        Place::Active => "queued",
        Place::Held => "held",
        Place::Done => "finished",
    }
}
