//! petrel, a mail transfer agent: the command line (shared/INTERFACE.md).
//!
//! A thin crate over the libraries: it reads the configuration, wires receiving and delivery
//! to the queue, and handles signals. Errors reach the user as one clear line and a non-zero
//! exit status.

/// `print!` for the command line's output: a reader that went away (`petrel ... | head`) ends
/// the command quietly with status 0 instead of a panic; another write error ends it with 74
/// (EX_IOERR) and a sentence on stderr.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*), false)
    };
}

/// `println!` for the command line's output, as `out!`.
macro_rules! outln {
    () => {
        $crate::write_out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*), true)
    };
}

mod bounce;
mod config;
mod directory;
mod dkim;
mod explain;
mod logging;
mod privileges;
mod probe;
mod queue_cli;
mod queue_open;
mod queue_view;
mod send;
mod sendmail;
mod sendmail_bs;
mod serve;
mod settings;
mod tls;
mod tls_report;
mod transcript;
mod users;
mod web;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "petrel",
    version,
    about = "A mail transfer agent that explains every reply",
    after_help = "Also: petrel sendmail [-t] [-i] [-f SENDER] [RECIPIENT...] and petrel mailq, the\ntraditional interfaces (also when the binary is invoked as sendmail or mailq)."
)]
struct Cli {
    /// Configuration file (else $PETREL_CONFIG, ./petrel.toml, /etc/petrel/petrel.toml, or the embedded defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: human-readable, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Auto)]
    log_format: logging::Format,
    /// Least severe level logged.
    #[arg(long, global = true, value_enum, default_value_t = Level::Info)]
    log_level: Level,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MTA.
    Serve,
    /// Check the configuration and print what it says.
    CheckConfig,
    /// Explain a reply code, an enhanced status code or a whole reply line; two codes are compared.
    Explain(explain::ExplainArgs),
    /// Look at and act on the queue (works with or without a running daemon).
    #[command(subcommand)]
    Queue(queue_cli::QueueCommand),
    /// Manage the users who may AUTH and log in to the console (auth.users_file, or the
    /// directory of local.store = "postgres"); the password is read from stdin.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage the local domains (local.domains, or the directory).
    #[command(subcommand)]
    Domain(directory::DomainCommand),
    /// Manage the mailboxes that exist (local.mailboxes, or the directory).
    #[command(subcommand)]
    Mailbox(directory::MailboxCommand),
    /// Manage the aliases (local.aliases, or the directory).
    #[command(subcommand)]
    Alias(directory::AliasCommand),
    /// DKIM keys: `petrel dkim keygen DOMAIN` writes a key and prints the DNS record to publish.
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// Send one message to a server and print the transcript.
    Send(send::SendArgs),
    /// Show what would happen if petrel sent to ADDRESS now (MX, hosts, greeting, MAIL, RCPT; never DATA).
    Probe(probe::ProbeArgs),
    /// Today's TLS report (RFC 8460) for a policy domain, as it would be sent (--send: now).
    TlsReport(tls_report::TlsReportArgs),
}

/// mimalloc in place of glibc's malloc (A/B in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("petrel")
        .to_owned();
    let traditional = match (invoked_as.as_str(), args.get(1).map(String::as_str)) {
        ("sendmail", _) => Some(("sendmail", &args[1..])),
        ("mailq", _) => Some(("mailq", &args[1..])),
        (_, Some("sendmail")) => Some(("sendmail", &args[2..])),
        (_, Some("mailq")) => Some(("mailq", &args[2..])),
        _ => None,
    };
    if let Some((command, rest)) = traditional {
        let result = if command == "sendmail" {
            sendmail::sendmail(rest)
        } else {
            let config = rest
                .iter()
                .position(|a| a == "--config")
                .and_then(|i| rest.get(i + 1))
                .map(std::path::PathBuf::from);
            queue_cli::run(
                &config::locate(config.as_deref()),
                &queue_cli::QueueCommand::List { json: false },
            )
        };
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{invoked_as}: {message}");
                // sysexits EX_TEMPFAIL: callers such as cron retry or report.
                ExitCode::from(75)
            }
        };
    }
    let cli = Cli::parse();
    let level = match cli.log_level {
        Level::Error => tracing::Level::ERROR,
        Level::Warn => tracing::Level::WARN,
        Level::Info => tracing::Level::INFO,
        Level::Debug => tracing::Level::DEBUG,
    };
    if let Command::Explain(args) = &cli.command {
        return explain::run(args);
    }
    let source = config::locate(cli.config.as_deref());
    let result = match cli.command {
        Command::Serve => {
            logging::init(cli.log_format, level);
            serve::run(source)
        }
        Command::CheckConfig => check_config(&source),
        Command::Explain(_) => Ok(()),
        Command::Queue(command) => queue_cli::run(&source, &command),
        Command::User(command) => users::run(&source, &command),
        Command::Domain(command) => directory::run_domain(&source, &command),
        Command::Mailbox(command) => directory::run_mailbox(&source, &command),
        Command::Alias(command) => directory::run_alias(&source, &command),
        Command::Dkim(command) => dkim::run(&source, &command),
        Command::Send(args) => send::run(&args),
        Command::Probe(args) => probe::run(&source, &args),
        Command::TlsReport(args) => tls_report::run(&source, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("petrel: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(source: &config::Source) -> Result<(), String> {
    let config = config::load(source)?;
    outln!("configuration OK: {source}");
    outln!("hostname = {}", config.hostname);
    outln!("data_dir = {}", config.data_dir.display());
    for listener in &config.listener {
        outln!(
            "listener = {} ({})",
            listener.address,
            listener.protocol.as_str()
        );
    }
    outln!("local.domains = {}", config.local.domains.join(", "));
    let networks: Vec<String> = config
        .relay
        .networks
        .iter()
        .map(ToString::to_string)
        .collect();
    outln!("relay.networks = {}", networks.join(", "));
    for dkim in &config.dkim {
        outln!(
            "dkim = {} (selector {}, key {})",
            dkim.domain,
            dkim.selector,
            dkim.private_key.display()
        );
    }
    // The files the configuration names: certificate and key, users, aliases, DKIM keys.
    config.server_settings()?;
    if serve::read_api_token(&config)?.is_some() {
        outln!("http api = on (/api/v1/)");
    }
    if let Some(tls) = &config.tls {
        for line in tls::check(&tls.certificates()?, &config.hostname)? {
            outln!("{line}");
        }
    }
    config.delivery_settings(&[])?;
    if let Some(settings) = config.postgres_settings() {
        let found = petrel_pgqueue::PgQueue::check(&settings.url)
            .map_err(|e| format!("queue.postgres_url: cannot use the database: {e}"))?;
        outln!("queue = postgres, node {} ({found})", settings.node_name);
    } else {
        outln!(
            "queue = spool ({})",
            config.data_dir.join("queue").display()
        );
    }
    if let Some(store) = directory::open(&config)? {
        let found = store
            .load()
            .map_err(|e| format!("local.store = \"postgres\": {e}"))?;
        outln!(
            "local.store = postgres: {} domains, {} mailboxes, {} aliases, {} users (version {})",
            found.domains.len(),
            found.mailboxes.len(),
            found.aliases.len(),
            found.users.len(),
            found.version
        );
    }
    Ok(())
}

/// Writes to stdout for `out!` and `outln!`.
fn write_out(text: std::fmt::Arguments<'_>, newline: bool) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(text)
        .and_then(|()| {
            if newline {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("petrel: cannot write the output: {error}");
            std::process::exit(74);
        }
    }
}
