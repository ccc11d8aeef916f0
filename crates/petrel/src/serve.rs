//! `petrel serve`: opens the spool, binds the listeners, runs receiving and delivery, and
//! handles SIGTERM/SIGINT (drain, 421 4.3.2, exit 0) and SIGHUP (reload without dropping
//! sessions).
//!
//! Failures at start (unreadable configuration, a port in use, an unusable data_dir) end the
//! process with a clear message; nothing after start may stop it but a signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use petrel_delivery::Scheduler;
use petrel_queue::Queue;
use petrel_server::listener::run_listener;
use petrel_server::{Lifecycle, Server};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{self, Config, Source};

/// Runs until a stop signal; returns after a clean shutdown.
///
/// # Errors
/// What kept petrel from starting.
pub fn run(source: Source) -> Result<(), String> {
    let config = config::load(&source)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(source, config))
}

async fn serve(source: Source, mut config: Config) -> Result<(), String> {
    info!(config = %source, hostname = %config.hostname, data_dir = %config.data_dir.display(), "starting");
    // The directory (local.store = "postgres") joins what the files say before any settings
    // are built from them.
    let directory = match crate::directory::open(&config)? {
        Some(store) => {
            let read = store.load().map_err(|e| format!("the directory: {e}"))?;
            crate::directory::apply(&read, &mut config);
            info!(version = read.version, domains = ?config.local.domains, "directory read from PostgreSQL");
            Some((Arc::new(store), read))
        }
        None => None,
    };
    let applied = Arc::new(AtomicI64::new(
        directory.as_ref().map_or(0, |(_, read)| read.version),
    ));
    let identity = match &config.privileges.user {
        Some(user) => crate::privileges::resolve(user, config.privileges.group.as_deref())?,
        None => None,
    };
    let mut listeners = Vec::new();
    let mut own_addresses = Vec::new();
    // "listening on" is logged once everything is ready (scripts and tests wait for it).
    let mut ready_lines = Vec::new();
    for listener in &config.listener {
        let bound = TcpListener::bind(listener.address)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", listener.address))?;
        let address = bound
            .local_addr()
            .map_err(|e| format!("cannot read the address of {}: {e}", listener.address))?;
        ready_lines.push(format!(
            "listening on {address} ({}{})",
            listener.protocol.as_str(),
            if listener.proxy_protocol {
                ", proxy protocol"
            } else {
                ""
            }
        ));
        let listening = petrel_server::connection::Listening {
            protocol: listener.protocol.server_protocol(),
            milters: listener.milters.clone().map(Arc::from),
            proxy_networks: listener
                .proxy_protocol
                .then(|| Arc::from(listener.proxy_networks.clone())),
        };
        listeners.push((bound, listening));
        own_addresses.push(address);
    }

    let http_listener = match &config.http {
        Some(http) => {
            let bound = TcpListener::bind(http.address)
                .await
                .map_err(|e| format!("cannot listen on {} (http.address): {e}", http.address))?;
            let address = bound
                .local_addr()
                .map_err(|e| format!("cannot read the http address: {e}"))?;
            let scheme = if http.tls { "https" } else { "http" };
            ready_lines.push(format!("listening on {address} ({scheme})"));
            Some(bound)
        }
        None => None,
    };
    // Certificates, keys and password files are read before privileges are dropped.
    let api_token = read_api_token(&config)?;
    let (server_settings, server_settings_rx) = watch::channel(config.server_settings()?);
    let (delivery_settings, delivery_settings_rx) =
        watch::channel(config.delivery_settings(&own_addresses)?);
    if let Some(identity) = &identity {
        crate::privileges::give_data_dir(identity, &config.data_dir)?;
        crate::privileges::drop_to(identity)?;
        info!(user = %identity.user, "privileges dropped; running as {}", identity.user);
    }
    let queue = open_queue(&config).await?;
    let resolver = config.dns.resolver()?;
    let mta_sts = config
        .http
        .as_ref()
        .and_then(|h| h.mta_sts.as_ref())
        .map(|policy| Arc::new(policy.render()));
    let (lifecycle, lifecycle_rx) = watch::channel(Lifecycle::Running);
    let (stop_delivery, stop_delivery_rx) = watch::channel(false);
    let (queued_tx, queued_rx) = mpsc::unbounded_channel();

    let scheduler = Scheduler::new(
        queue.clone(),
        resolver.clone(),
        delivery_settings_rx.clone(),
        queued_tx.clone(),
    );
    let control_path = config.data_dir.join("control.sock");
    let control_listener = crate::queue_cli::bind_control(&control_path).map_err(|e| {
        format!(
            "cannot make the control socket {}: {e}",
            control_path.display()
        )
    })?;
    let control = tokio::spawn(crate::queue_cli::serve_control(
        control_listener,
        crate::queue_cli::ControlService {
            control: scheduler.control(),
            hostname: config.hostname.clone(),
            max_message_bytes: config.limits.max_message_bytes,
            queued: queued_tx.clone(),
            settings: server_settings_rx.clone(),
            tls_reports: scheduler.tls_reporter(),
            delivery: delivery_settings_rx,
        },
    ));
    let api = api_token.map(|token| {
        Arc::new(crate::web::api::Api {
            token,
            control: scheduler.control(),
        })
    });
    let console = config
        .http
        .as_ref()
        .filter(|http| http.console)
        .map(|http| {
            Arc::new(crate::web::console::Console::new(
                scheduler.control(),
                server_settings_rx.clone(),
                http.console_networks.clone(),
            ))
        });
    let http = http_listener.map(|bound| {
        tokio::spawn(crate::web::serve(
            bound,
            queue.clone(),
            crate::web::Extras {
                mta_sts: mta_sts.clone(),
                api,
                console,
                tls: config
                    .http
                    .as_ref()
                    .is_some_and(|http| http.tls)
                    .then(|| server_settings_rx.clone()),
            },
        ))
    });
    let delivery = tokio::spawn(scheduler.run(queued_rx, stop_delivery_rx));

    let max_connections = within_descriptors(config.limits.max_connections);
    let connections = Arc::new(Semaphore::new(max_connections));
    let server = Arc::new(Server {
        settings: server_settings_rx,
        resolver: resolver.clone(),
        verifier: petrel_mailauth::Verifier::new(&resolver),
        queue,
        on_queued: Arc::new(move |id| {
            let _ = queued_tx.send(id);
        }),
        lifecycle: lifecycle_rx,
        per_ip: Arc::default(),
        rates: petrel_server::rate::RateLimiter::default(),
        door: petrel_server::screen::DoorMemory::default(),
        greylist: Default::default(),
        data_memory: Arc::default(),
        tls_handshakes: Semaphore::new(config.limits.max_tls_handshakes.max(1)),
    });
    for (listener, listening) in listeners {
        tokio::spawn(run_listener(
            listener,
            listening,
            server.clone(),
            connections.clone(),
        ));
    }
    // The handlers are in place before "listening on": a SIGHUP sent as soon as a script
    // sees that line must reload, not end the process (the default action).
    let signals = Signals::install()?;
    for line in &ready_lines {
        info!("{line}");
    }

    let (changed_tx, changed_rx) = mpsc::channel(1);
    let watcher = directory.as_ref().map(|(store, _)| {
        tokio::spawn(watch_directory(store.clone(), applied.clone(), changed_tx))
    });
    let grace = wait_for_stop(
        signals,
        Reload {
            source: &source,
            own_addresses: &own_addresses,
            directory: directory.as_ref().map(|(store, _)| store.as_ref()),
            last: std::sync::Mutex::new(directory.as_ref().map(|(_, read)| read.clone())),
            applied,
        },
        changed_rx,
        config.limits.shutdown_grace,
        &server_settings,
        &delivery_settings,
    )
    .await?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    info!(grace = ?grace, "stopping: no new connections; transactions in flight may finish");
    let _ = lifecycle.send(Lifecycle::Draining);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        warn!("grace period over; closing the remaining sessions with 421 4.3.2");
        let _ = lifecycle.send(Lifecycle::Stopping);
        let _ = tokio::time::timeout(Duration::from_secs(5), connections.acquire_many(all)).await;
    }
    let _ = stop_delivery.send(true);
    if tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .is_err()
    {
        warn!("deliveries still running at exit; they resume at the next start");
    }
    control.abort();
    if let Some(http) = http {
        http.abort();
    }
    let _ = std::fs::remove_file(&control_path);
    info!("stopped");
    Ok(())
}

/// The JSON API's token from `[http] api_token_file` (its first line), when one is named.
///
/// # Errors
/// The file cannot be read or holds no token.
pub fn read_api_token(config: &Config) -> Result<Option<String>, String> {
    let Some(path) = config.http.as_ref().and_then(|h| h.api_token_file.as_ref()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("http.api_token_file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        return Err(format!(
            "http.api_token_file {}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(Some(token.to_owned()))
}

async fn open_queue(config: &Config) -> Result<Arc<dyn Queue>, String> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        crate::queue_open::open(&config, crate::queue_open::Opener::Daemon)
    })
    .await
    .map_err(|e| format!("cannot open the queue: {e}"))?
}

/// The signals petrel answers.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let signal_error = |e: std::io::Error| format!("cannot install signal handlers: {e}");
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).map_err(signal_error)?,
            interrupt: signal(SignalKind::interrupt()).map_err(signal_error)?,
            hangup: signal(SignalKind::hangup()).map_err(signal_error)?,
        })
    }
}

/// What a reload reads: the configuration file, and the directory when there is one.
struct Reload<'a> {
    source: &'a Source,
    own_addresses: &'a [std::net::SocketAddr],
    directory: Option<&'a petrel_pgqueue::directory::DirectoryStore>,
    /// The directory the running settings were built with: used again when the database
    /// cannot be read at a reload (a SIGHUP for a new certificate must not wait for it).
    last: std::sync::Mutex<Option<petrel_pgqueue::directory::Directory>>,
    /// The version of `last`, which the watcher compares the database's with.
    applied: Arc<AtomicI64>,
}

type Settings = (
    Config,
    Arc<petrel_server::ServerSettings>,
    Arc<petrel_delivery::DeliverySettings>,
);

impl Reload<'_> {
    fn read(&self) -> Result<Settings, String> {
        let mut config = config::load(self.source)?;
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The directory read now, to keep once the settings built from it are good.
        let mut loaded = None;
        if let Some(store) = self.directory {
            match (store.load(), last.as_ref()) {
                (Ok(read), _) => {
                    crate::directory::apply(&read, &mut config);
                    loaded = Some(read);
                }
                (Err(error), Some(earlier)) => {
                    warn!(%error, version = earlier.version, "cannot read the directory; the version read last is used");
                    crate::directory::apply(earlier, &mut config);
                }
                (Err(error), None) => return Err(format!("the directory: {error}")),
            }
        }
        let server = config.server_settings()?;
        let delivery = config.delivery_settings(self.own_addresses)?;
        if let Some(read) = loaded {
            self.applied.store(read.version, Ordering::Relaxed);
            *last = Some(read);
        }
        Ok((config, server, delivery))
    }
}

/// Waits for SIGTERM or SIGINT, reloading on SIGHUP and when the directory changed; returns
/// the shutdown grace period.
async fn wait_for_stop(
    signals: Signals,
    reload: Reload<'_>,
    mut directory_changed: mpsc::Receiver<i64>,
    mut grace: Duration,
    server_settings: &watch::Sender<Arc<petrel_server::ServerSettings>>,
    delivery_settings: &watch::Sender<Arc<petrel_delivery::DeliverySettings>>,
) -> Result<Duration, String> {
    let Signals {
        mut terminate,
        mut interrupt,
        mut hangup,
    } = signals;
    loop {
        let why = tokio::select! {
            _ = terminate.recv() => return Ok(grace),
            _ = interrupt.recv() => return Ok(grace),
            _ = hangup.recv() => "SIGHUP".to_owned(),
            Some(version) = directory_changed.recv() => format!("the directory changed (version {version})"),
        };
        match tokio::task::block_in_place(|| reload.read()) {
            Ok((config, settings, delivery)) => {
                server_settings.send_replace(settings);
                delivery_settings.send_replace(delivery);
                grace = config.limits.shutdown_grace;
                info!(config = %reload.source, "configuration reloaded after {why} (listeners and data_dir change only at restart)");
            }
            Err(message) => {
                error!(%message, "reload after {why} refused; the running configuration stays")
            }
        }
    }
}

/// Asks the directory's version every `directory::POLL` and says when it is not the one the
/// running settings were built with (`applied`); again every `REASK` while a reload fails.
async fn watch_directory(
    store: Arc<petrel_pgqueue::directory::DirectoryStore>,
    applied: Arc<AtomicI64>,
    changed: mpsc::Sender<i64>,
) {
    const REASK: Duration = Duration::from_secs(30);
    let mut said: Option<(i64, tokio::time::Instant)> = None;
    loop {
        tokio::time::sleep(crate::directory::POLL).await;
        let asked = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.version()).await
        };
        match asked {
            Ok(Ok(version)) if version != applied.load(Ordering::Relaxed) => {
                let is_new = said.is_none_or(|(v, at)| v != version || at.elapsed() >= REASK);
                if is_new {
                    said = Some((version, tokio::time::Instant::now()));
                    if changed.send(version).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                warn!(%error, "cannot ask the directory whether it changed; asking again")
            }
            Err(_) => return,
        }
    }
}

/// Descriptors kept for everything that is not a session: the journal and spool files, the
/// listeners, delivery's connections, the database pool, the web server, the control socket.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `limits.max_connections`, lowered when the process's descriptor limit could not hold that
/// many sessions (two descriptors each: the client and a milter or a file) beside the
/// reserved ones, so a flood meets `421 4.7.0` from the connection limit instead of failing
/// accepts and stores. The soft limit is raised to the hard one first.
fn within_descriptors(max_connections: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return max_connections;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let fits = usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS) / 2).unwrap_or(usize::MAX);
    if fits < max_connections {
        tracing::warn!(
            max_connections,
            lowered_to = fits.max(1),
            descriptor_limit = soft,
            "limits.max_connections lowered to what the descriptor limit holds (raise it, e.g. LimitNOFILE= in the systemd unit)"
        );
        return fits.max(1);
    }
    max_connections
}
