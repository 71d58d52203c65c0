//! A throwaway PostgreSQL server for tests.
//!
//! Each [`PostgresServer`] is its own cluster: `initdb` into a temporary directory (user
//! `postgres`, trust authentication, no fsync), then `postgres` on an ephemeral port on
//! 127.0.0.1 with its Unix socket in that same directory, so tests never share state and never
//! leave files behind. Fault tests [`kill`](PostgresServer::kill) it (SIGKILL, as a crash
//! would) and [`restart`](PostgresServer::restart) it on the same port and data directory,
//! which exercises crash recovery as well as a client's reconnection.
//!
//! [`start_timescaledb`](PostgresServer::start_timescaledb) starts a server with the TimescaleDB
//! extension preloaded and created in the `postgres` database (install it first with
//! `../shared/vendor/install-timescaledb.sh`); its telemetry is off, so it never calls out.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (containers, CI), the fixture
//! hands the temporary directory to the `postgres` system user and runs `initdb` and `postgres`
//! through `setpriv`, which switches user and then execs, so the pid we hold is the server's own.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{kill, read_log, restart_until, start_on_free_port};

/// How long a fresh server may take to accept connections before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful (immediate-mode) shutdown may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Port picks that may collide with another test's server before we give up.
const START_ATTEMPTS: usize = 5;
/// The system user PostgreSQL runs as when the tests run as root.
const SERVICE_USER: &str = "postgres";

/// A running PostgreSQL server, stopped and deleted when dropped.
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    bin_dir: PathBuf,
    /// `Some((uid, gid))` of the user the server runs as when we are root.
    run_as: Option<(u32, u32)>,
    /// Extra `-c name=value` settings, kept for restarts.
    settings: Vec<String>,
    dir: tempfile::TempDir,
}

/// What a TimescaleDB server needs: the library preloaded, and no telemetry (tests only ever
/// talk to 127.0.0.1).
const TIMESCALEDB_SETTINGS: [&str; 2] = [
    "shared_preload_libraries=timescaledb",
    "timescaledb.telemetry_level=off",
];

impl PostgresServer {
    /// Creates a cluster with `initdb`, starts `postgres` on a free loopback port and waits
    /// until it accepts connections.
    ///
    /// Panics if PostgreSQL is not installed or does not come up: a fixture failure is a broken
    /// test environment, not a test result.
    pub fn start() -> PostgresServer {
        PostgresServer::start_with(&[])
    }

    /// Like [`start`](Self::start), with TimescaleDB preloaded and `CREATE EXTENSION
    /// timescaledb` run in the `postgres` database, so stores see a TimescaleDB server.
    ///
    /// Panics (naming the install script) if the extension is not installed: a test that asks
    /// for TimescaleDB must not silently run against plain PostgreSQL.
    pub fn start_timescaledb() -> PostgresServer {
        let server = PostgresServer::start_with(&TIMESCALEDB_SETTINGS);
        if let Err(e) = server.psql("CREATE EXTENSION IF NOT EXISTS timescaledb") {
            panic!(
                "cannot create the TimescaleDB extension ({e}); install it with \
                 `bash ../shared/vendor/install-timescaledb.sh` (as root) from the project root"
            );
        }
        server
    }

    /// Starts a server with extra `-c` settings (`name=value`).
    fn start_with(settings: &[&str]) -> PostgresServer {
        let bin_dir = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "`initdb` is neither on PATH nor under /usr/lib/postgresql/*/bin; the PostgreSQL \
                 tests need a real server (install it with `apt-get install -y postgresql`)"
            )
        });
        let run_as = if is_root() {
            Some(user_ids(SERVICE_USER).unwrap_or_else(|e| {
                panic!(
                    "running as root, and PostgreSQL refuses to: need the `{SERVICE_USER}` \
                     system user to run it as ({e})"
                )
            }))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("quiver-pg-")
            .tempdir()
            .expect("create a temporary directory for PostgreSQL");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the temporary directory to the postgres user");
        }
        let mut server = PostgresServer {
            child: None,
            port: 0,
            bin_dir,
            run_as,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        server.init_cluster();
        server.port = start_on_free_port("postgres", START_ATTEMPTS, |port| {
            server.port = port;
            server.spawn()
        });
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication: no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the postmaster with SIGKILL (as a crash would) and reaps it. Its backends notice
    /// the postmaster is gone and exit on their own.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Kills the server if it runs, then starts it again on the same port and data directory
    /// (running crash recovery), and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        // Orphaned backends of a killed postmaster hold its shared memory and the port for a
        // moment; the new postmaster refuses to start until they are gone, so retry.
        let port = self.port;
        restart_until(
            "postgres",
            port,
            START_TIMEOUT,
            Duration::from_millis(100),
            || self.spawn(),
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for a PostgreSQL binary, run as the service user when we are root.
    fn command(&self, program: &str) -> Command {
        let binary = self.bin_dir.join(program);
        match self.run_as {
            Some((uid, gid)) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(binary);
                cmd
            }
            None => Command::new(binary),
        }
    }

    fn init_cluster(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ])
            .args(["--encoding=UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        if !output.status.success() {
            panic!("initdb failed with {}: {}", output.status, both(&output));
        }
    }

    /// Spawns the postmaster on `self.port` and waits until it accepts connections; on failure
    /// the child is reaped and the error describes why.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.log_path();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Speed without losing committed rows on `kill`: fsync only matters when the OS
            // crashes. (`synchronous_commit=off` would lose recent commits on a SIGKILL.)
            .args(["-c", "fsync=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "postgres on port {} exited with {status}; log: {}",
                    self.port,
                    read_log(&log)
                ));
            }
            if self.is_ready(addr) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "postgres on port {} did not accept connections within {START_TIMEOUT:?}; \
                     log: {}",
                    self.port,
                    read_log(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one SQL statement in the `postgres` database with `psql`.
    fn psql(&self, sql: &str) -> Result<(), String> {
        let output = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-q",
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "psql exited with {}: {}",
                output.status,
                both(&output)
            ))
        }
    }

    /// The port accepts TCP and, when `pg_isready` is installed, the server says it accepts
    /// sessions (a listening server may still be in recovery and refuse them).
    fn is_ready(&self, addr: SocketAddr) -> bool {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return false;
        }
        let pg_isready = self.bin_dir.join("pg_isready");
        if !pg_isready.is_file() {
            return true;
        }
        Command::new(pg_isready)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-t", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Immediate shutdown (SIGQUIT: the postmaster stops its backends at once), then SIGKILL
    /// if it lingers. Unlike a bare SIGKILL, this leaves no orphaned backends behind.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let quit = Command::new("kill")
            .args(["-s", "QUIT", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if quit.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `initdb`, `postgres` and `pg_isready` live: the directory of `initdb` on PATH (Debian
/// keeps the real binaries under /usr/lib/postgresql/<version>/bin, so symlinks are resolved),
/// else the newest version under /usr/lib/postgresql.
fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if !initdb.is_file() {
                continue;
            }
            let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(parent) = resolved.parent().filter(|d| has_server(d)) {
                return Some(parent.to_path_buf());
            }
            if has_server(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    run_id(&["-u"]).is_ok_and(|uid| uid == 0)
}

/// `(uid, gid)` of a user, from `id` (std has no user database lookup).
fn user_ids(user: &str) -> Result<(u32, u32), String> {
    Ok((run_id(&["-u", user])?, run_id(&["-g", user])?))
}

fn run_id(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `id`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`id {}` failed: {}", args.join(" "), both(&output)));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("`id {}` printed no number: {e}", args.join(" ")))
}

fn both(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
