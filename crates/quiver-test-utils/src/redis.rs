//! A throwaway `redis-server` for tests.
//!
//! Each [`RedisServer`] is its own process on its own ephemeral port on 127.0.0.1, with
//! persistence off and its working directory in a temporary directory, so tests never share
//! state and never leave files behind. Fault tests [`kill`](RedisServer::kill) it (SIGKILL, as a
//! crash would) and [`restart`](RedisServer::restart) it on the same port, so a client's
//! reconnection logic is exercised against the address it already knows. Stall tests
//! [`stop`](RedisServer::stop) it (SIGSTOP: the port still accepts connections, nothing answers)
//! and [`resume`](RedisServer::resume) it (SIGCONT).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, kill, read_log, restart_until, signal, start_on_free_port};

/// How long a fresh server may take to answer PING before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Port picks that may collide with another test's server before we give up.
const START_ATTEMPTS: usize = 5;

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// SIGSTOPped and not yet resumed.
    stopped: bool,
    /// `appendonly yes`, `appendfsync always`: a restart replays what was acknowledged.
    durable: bool,
    /// A TLS port beside the plain one (which stays for readiness checks and admin).
    tls: Option<TlsPort>,
    /// Cluster mode: the cluster bus port (picked per start attempt) and the node timeout.
    cluster: Option<ClusterMode>,
    /// More `redis-server` arguments (`--replicaof host port`).
    extra: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct ClusterMode {
    bus_port: u16,
    node_timeout_ms: u64,
}

/// The TLS side of a server: its port and the PEM files it was started with.
#[derive(Clone, Debug)]
struct TlsPort {
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    /// `--tls-auth-clients yes`: clients must present a certificate from `ca`.
    require_client_certs: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers PING.
    ///
    /// Panics if `redis-server` is not installed or does not come up: a fixture failure is a
    /// broken test environment, not a test result.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// [`start`](Self::start) with persistence: every write is appended to an AOF and fsynced
    /// before Redis answers (`appendfsync always`), and [`restart`](Self::restart) replays it,
    /// as a production Redis that must not lose accepted records is configured.
    pub fn start_durable() -> RedisServer {
        Self::start_with(true)
    }

    /// [`start`](Self::start) with a TLS port too (`--tls-port`), serving `cert`/`key` and
    /// trusting client certificates from `ca` (required when `require_client_certs`). The plain
    /// port stays open on loopback for readiness checks and admin; clients under test use
    /// [`tls_url`](Self::tls_url).
    pub fn start_tls(
        cert: &Path,
        key: &Path,
        ca: &Path,
        require_client_certs: bool,
    ) -> RedisServer {
        Self::start_inner(
            false,
            Some(TlsPort {
                port: 0,
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                ca: ca.to_path_buf(),
                require_client_certs,
            }),
            None,
        )
    }

    fn start_with(durable: bool) -> RedisServer {
        Self::start_inner(durable, None, None)
    }

    /// A node for a Redis Cluster (`cluster-enabled yes`, its bus on a port of its own, failure
    /// detection after `node_timeout_ms`), not yet part of a cluster: see
    /// [`crate::RedisCluster`].
    pub fn start_cluster_node(node_timeout_ms: u64) -> RedisServer {
        Self::start_inner(
            false,
            None,
            Some(ClusterMode {
                bus_port: 0,
                node_timeout_ms,
            }),
        )
    }

    /// A replica of the server on `primary_port` (`--replicaof 127.0.0.1 <port>`).
    pub fn start_replica_of(primary_port: u16) -> RedisServer {
        Self::start_full(
            false,
            None,
            None,
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
            ],
        )
    }

    fn start_inner(
        durable: bool,
        tls: Option<TlsPort>,
        cluster: Option<ClusterMode>,
    ) -> RedisServer {
        Self::start_full(durable, tls, cluster, Vec::new())
    }

    fn start_full(
        durable: bool,
        tls: Option<TlsPort>,
        cluster: Option<ClusterMode>,
        extra: Vec<String>,
    ) -> RedisServer {
        let binary = find_on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "`redis-server` is not on PATH; the Redis tests need a real server \
                 (install it with `apt-get install -y redis-server`)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("quiver-redis-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        let mut server = RedisServer {
            child: None,
            port: 0,
            binary,
            dir,
            stopped: false,
            durable,
            tls,
            cluster,
            extra,
        };
        server.port = start_on_free_port("redis-server", START_ATTEMPTS, |port| {
            server.port = port;
            if let Some(tls) = &mut server.tls {
                // Another pick; a collision makes redis-server exit and the attempt retry.
                tls.port = free_port();
            }
            if let Some(cluster) = &mut server.cluster {
                cluster.bus_port = free_port();
            }
            server.spawn()
        });
        server
    }

    /// `rediss://127.0.0.1:<tls port>` (panics for a server started without TLS).
    pub fn tls_url(&self) -> String {
        let tls = self.tls.as_ref().expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{}", tls.port)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (as a crash would) and reaps it.
    pub fn kill(&mut self) {
        // A stopped process dies on SIGKILL too, but resuming first keeps the fixture's state
        // simple and never leaves a stopped process behind if the kill fails.
        self.resume();
        kill(&mut self.child);
    }

    /// Stalls the server with SIGSTOP: connections stay open and new ones are accepted by the
    /// kernel, but nothing is answered until [`resume`](Self::resume) (or drop, which resumes
    /// and kills it).
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP").unwrap_or_else(|e| panic!("cannot stop redis-server: {e}"));
            self.stopped = true;
        }
    }

    /// Resumes a [`stop`](Self::stop)ped server with SIGCONT; does nothing if it is not stopped.
    pub fn resume(&mut self) {
        if !self.stopped {
            return;
        }
        if let Some(pid) = self.pid() {
            // Failure means the process is gone, which `kill` and `restart` handle anyway.
            let _ = signal(pid, "CONT");
        }
        self.stopped = false;
    }

    /// Kills the server if it runs, then starts it again on the same port (empty, unless it was
    /// started [`durable`](Self::start_durable): then with what its AOF holds), and waits until
    /// it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        // The old socket may linger briefly after SIGKILL; retry until the port binds again.
        let port = self.port;
        restart_until(
            "redis-server",
            port,
            START_TIMEOUT,
            Duration::from_millis(50),
            || self.spawn(),
        );
    }

    /// Spawns the server process on `self.port` and waits for PONG; on failure the child is
    /// reaped and the error describes why.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let mut child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if self.durable { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(self.extra_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited with {status}; log: {}",
                    self.port,
                    read_log(&log)
                ));
            }
            if answers_ping(addr) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}; log: {}",
                    self.port,
                    read_log(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl RedisServer {
    fn extra_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = self.extra.iter().map(Into::into).collect();
        if let Some(c) = self.cluster {
            for arg in [
                "--cluster-enabled".to_string(),
                "yes".into(),
                "--cluster-port".into(),
                c.bus_port.to_string(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                c.node_timeout_ms.to_string(),
            ] {
                args.push(arg.into());
            }
        }
        let Some(tls) = &self.tls else {
            return args;
        };
        args.extend::<Vec<std::ffi::OsString>>(vec![
            "--tls-port".into(),
            tls.port.to_string().into(),
        ]);
        for (flag, path) in [
            ("--tls-cert-file", &tls.cert),
            ("--tls-key-file", &tls.key),
            ("--tls-ca-cert-file", &tls.ca),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args.push("--tls-auth-clients".into());
        args.push(
            if tls.require_client_certs {
                "yes"
            } else {
                "no"
            }
            .into(),
        );
        args
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends an inline `PING` and checks for `+PONG`, with short timeouts so a half-started server
/// cannot stall the poll loop.
pub(crate) fn answers_ping(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(200);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
