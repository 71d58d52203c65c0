//! [`RedisSentinel`]: a primary, its replica and three Sentinels (`redis-server --sentinel`)
//! monitoring it as `mymaster`, all on loopback, killed by pid on drop. Fault tests kill the
//! primary and wait for the Sentinels to promote the replica.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisServer;
use crate::process::{free_port, kill, read_log};
use crate::redis::answers_ping;

/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "mymaster";

const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One `redis-server --sentinel` process.
struct SentinelProcess {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A Sentinel-managed primary and replica.
pub struct RedisSentinel {
    pub primary: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<SentinelProcess>,
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn start_sentinel(primary_port: u16, down_after_ms: u64) -> SentinelProcess {
    let binary = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        })
        .expect("`redis-server` on PATH (apt-get install -y redis-server)");
    let mut last = String::new();
    for _ in 0..5 {
        let dir = tempfile::Builder::new()
            .prefix("quiver-sentinel-")
            .tempdir()
            .expect("sentinel dir");
        let port = free_port();
        let conf: PathBuf = dir.path().join("sentinel.conf");
        let log = dir.path().join("sentinel.log");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} {down_after_ms}\n\
                 sentinel failover-timeout {MASTER} 10000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir.path().display(),
                log.display()
            ),
        )
        .expect("write sentinel.conf");
        let mut child = Command::new(&binary)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server --sentinel");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last = format!("sentinel exited with {status}: {}", read_log(&log));
                break;
            }
            if answers_ping(SocketAddr::from(([127, 0, 0, 1], port))) {
                return SentinelProcess {
                    child: Some(child),
                    port,
                    _dir: dir,
                };
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                last = format!("sentinel on {port} did not answer: {}", read_log(&log));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("cannot start a Sentinel: {last}");
}

impl RedisSentinel {
    /// Starts the primary, a replica and three Sentinels (quorum 2, the primary judged down
    /// after `down_after_ms`), and waits until the replica has synced and every Sentinel knows
    /// it.
    pub fn start(down_after_ms: u64) -> RedisSentinel {
        let primary = RedisServer::start();
        let replica = RedisServer::start_replica_of(primary.port());
        let sentinels = (0..3)
            .map(|_| start_sentinel(primary.port(), down_after_ms))
            .collect();
        let setup = RedisSentinel {
            primary,
            replica,
            sentinels,
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let synced = cli(setup.replica.port(), &["INFO", "replication"])
                .contains("master_link_status:up");
            let known = setup.sentinels.iter().all(|s| {
                cli(s.port, &["SENTINEL", "REPLICAS", MASTER])
                    .contains(&setup.replica.port().to_string())
            });
            if synced && known {
                return setup;
            }
            if Instant::now() >= deadline {
                panic!("the Sentinel setup did not settle within {SETTLE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://127.0.0.1:<port>` of every Sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The port of the primary the Sentinels name now.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            cli(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                .lines()
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
        })
    }

    /// Waits until the Sentinels name a primary other than the one on `old_port`.
    pub fn wait_promotion(&self, old_port: u16) -> u16 {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Some(port) = self.primary_port().filter(|p| *p != old_port) {
                return port;
            }
            if Instant::now() >= deadline {
                panic!("the Sentinels promoted no replica within {SETTLE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
