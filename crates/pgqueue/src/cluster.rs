//! A private PostgreSQL cluster on loopback, for the tests and the benchmark: `initdb` into a
//! scratch directory, the server on a free 127.0.0.1 port with its socket in that directory,
//! trust authentication for the `postgres` role over loopback only.
//!
//! Run as root, every PostgreSQL program runs as the `postgres` user (`runuser`), because the
//! server refuses to run as root. The server runs under a small shell that ends it (fast
//! shutdown) when its stdin closes, so a cluster never outlives the process that started it,
//! even one kept in a static and never dropped. `stop`/`start` (and `restart`) let a test take
//! the database away under load.
//!
//! Failure policy: every step returns an `io::Error` that says which program failed and shows
//! the end of the server log; nothing panics. Only 127.0.0.1 is ever listened on.

use std::io::{self, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Present while the server runs: the shell removes the directory when it ends with it.
const REMOVE_MARKER: &str = "petrel-remove-on-exit";

/// How a running server is stopped (PostgreSQL's shutdown modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGINT: roll back open transactions, checkpoint, exit.
    Fast,
    /// SIGQUIT: exit at once; the next start recovers from the WAL (as after a crash).
    Immediate,
}

/// A private cluster; dropped, it stops the server and removes its directory.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    server: Option<(Child, ChildStdin)>,
}

impl Cluster {
    /// Whether PostgreSQL's server programs are installed (Debian: package `postgresql`).
    pub fn available() -> bool {
        find_bin().is_some()
    }

    /// Makes and starts a new cluster.
    ///
    /// # Errors
    /// When PostgreSQL is not installed or a program fails.
    pub fn start() -> io::Result<Cluster> {
        let bin = find_bin().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)",
            )
        })?;
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "petrel-pg-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let port = free_port()?;
        let mut cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
            server: None,
        };
        let dir_text = cluster.dir.display().to_string();
        cluster.run_tool(
            "initdb",
            &[
                "-D",
                &dir_text,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` for `queue.postgres_url`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database.
    ///
    /// # Errors
    /// When `createdb` fails.
    pub fn create_database(&self, name: &str) -> io::Result<()> {
        let port = self.port.to_string();
        self.run_tool(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        )
        .map(drop)
    }

    /// Runs `sql` in `database` with psql; returns its unaligned, tuples-only output.
    ///
    /// # Errors
    /// When psql fails (its stderr is in the error).
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let mut args = self.psql_connection(database);
        args.extend(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_tool("psql", &args)
    }

    /// psql's arguments to connect to `database` of this cluster as postgres over loopback.
    pub fn psql_connection(&self, database: &str) -> Vec<String> {
        let port = self.port.to_string();
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            database,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Stops the server (the data stays).
    ///
    /// # Errors
    /// When the server's pid cannot be read or signalled.
    pub fn stop(&mut self, mode: Shutdown) -> io::Result<()> {
        let Some((mut child, stdin)) = self.server.take() else {
            return Ok(());
        };
        let signal = match mode {
            Shutdown::Fast => "-INT",
            Shutdown::Immediate => "-QUIT",
        };
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
        // The shell must not take the directory with it: this is a stop, not the end.
        let _ = std::fs::remove_file(self.dir.join(REMOVE_MARKER));
        drop(stdin);
        child.wait()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.dir.join("postmaster.pid").exists() && Instant::now() < deadline {
            if mode == Shutdown::Immediate {
                // An immediate shutdown leaves the pid file for the next start to check.
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the server again after `stop`.
    ///
    /// # Errors
    /// When it does not come up.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        self.start_server()
    }

    fn postmaster_pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().to_owned();
        pid.bytes().all(|b| b.is_ascii_digit()).then_some(pid)
    }

    fn start_server(&mut self) -> io::Result<()> {
        let script = r#"
            "$1/postgres" -D "$2" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
                -c max_connections=300 -c fsync=on -c synchronous_commit=on \
                >>"$2/server.log" 2>&1 &
            pid=$!
            read -r line || true
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
            if [ -f "$2/petrel-remove-on-exit" ]; then rm -rf "$2"; fi
        "#;
        let bin = self.bin.display().to_string();
        let dir = self.dir.display().to_string();
        let port = self.port.to_string();
        let mut command = self.command("sh");
        command
            .args(["-c", script, "sh", &bin, &dir, &port])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Removed by the shell when it ends with its stdin (a cluster in a static at exit).
        std::fs::write(self.dir.join(REMOVE_MARKER), b"")?;
        let mut child = command.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin for the server's shell"))?;
        self.server = Some((child, stdin));
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = self.port.to_string();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if let Some((child, _)) = &mut self.server
                && child.try_wait()?.is_some()
            {
                self.server = None;
                return Err(io::Error::other(format!(
                    "the PostgreSQL server ended at start:\n{}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the PostgreSQL server did not get ready in 60 s:\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn command(&self, program: &str) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        }
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> io::Result<String> {
        let path = self.bin.join(tool);
        let program = path.display().to_string();
        let output = self
            .command(&program)
            .args(args)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "{tool} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop(Shutdown::Fast);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = io::stderr().flush();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with initdb, or `$PETREL_PG_BIN`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PETREL_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
