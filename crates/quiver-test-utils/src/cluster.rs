//! [`RedisCluster`]: a real Redis Cluster of six `redis-server` processes on loopback (three
//! primaries, three replicas), made with `redis-cli --cluster create`, each node its own
//! [`RedisServer`] (killed by pid on drop). Fault tests kill a primary and watch its replica take
//! over, or move slots between primaries with `redis-cli --cluster reshard`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::RedisServer;

/// How long the cluster may take to agree after a create, a failover or a reshard.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running six-node cluster.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// Slot ranges it serves (primaries).
    pub slots: Vec<(u16, u16)>,
}

fn redis_cli(args: &[String]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `redis-cli` (apt-get install -y redis-tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "redis-cli {} failed: {text}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl RedisCluster {
    /// Starts six nodes (failure detection after `node_timeout_ms`), creates the cluster with one
    /// replica per primary and waits until every node reports `cluster_state:ok`.
    pub fn start(node_timeout_ms: u64) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| RedisServer::start_cluster_node(node_timeout_ms))
            .collect();
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
        redis_cli(&args).unwrap_or_else(|e| panic!("creating the cluster: {e}"));
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster.wait_replicas_synced();
        cluster
    }

    /// Waits until every replica has finished its initial sync (`master_link_status:up`): a
    /// replica that never synced cannot take over when its primary dies.
    pub fn wait_replicas_synced(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let replicas: Vec<u16> = self
            .topology()
            .into_iter()
            .filter(|n| !n.primary)
            .map(|n| n.port)
            .collect();
        for port in replicas {
            loop {
                let up = redis_cli(&[
                    "-p".into(),
                    port.to_string(),
                    "INFO".into(),
                    "replication".into(),
                ])
                .is_ok_and(|t| t.contains("master_link_status:up"));
                if up {
                    break;
                }
                if Instant::now() >= deadline {
                    panic!("replica on port {port} did not sync within {SETTLE_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `CLUSTER NODES` as one live node sees it.
    pub fn topology(&self) -> Vec<NodeInfo> {
        for node in &self.nodes {
            if node.pid().is_none() {
                continue;
            }
            let Ok(text) = redis_cli(&[
                "-p".into(),
                node.port().to_string(),
                "CLUSTER".into(),
                "NODES".into(),
            ]) else {
                continue;
            };
            return text
                .lines()
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let port = f
                        .get(1)?
                        .split(['@', ','])
                        .next()?
                        .rsplit_once(':')?
                        .1
                        .parse()
                        .ok()?;
                    let flags = f.get(2)?;
                    Some(NodeInfo {
                        id: f.first()?.to_string(),
                        port,
                        primary: flags.contains("master"),
                        failed: flags.contains("fail"),
                        slots: f
                            .iter()
                            .skip(8)
                            .filter(|s| !s.starts_with('['))
                            .filter_map(|s| match s.split_once('-') {
                                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                                None => s.parse().ok().map(|n| (n, n)),
                            })
                            .collect(),
                    })
                })
                .collect();
        }
        Vec::new()
    }

    /// The node serving `slot` as primary.
    pub fn primary_of(&self, slot: u16) -> Option<NodeInfo> {
        self.primaries()
            .into_iter()
            .find(|n| n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
    }

    /// Waits until a primary other than the one on `old_port` serves `slot` (a replica took
    /// over after the old one failed), then until the cluster is ok; returns the new primary.
    pub fn wait_failover(&self, slot: u16, old_port: u16) -> NodeInfo {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Some(p) = self.primary_of(slot).filter(|p| p.port != old_port) {
                self.wait_ok();
                return p;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no replica took slot {slot} over within {SETTLE_TIMEOUT:?}: {:?}",
                    self.topology()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The fixture node listening on `port`.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node of this cluster")
    }

    /// The live primaries serving slots.
    pub fn primaries(&self) -> Vec<NodeInfo> {
        self.topology()
            .into_iter()
            .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
            .collect()
    }

    /// Waits until every live node says `cluster_state:ok`, all 16384 slots are served by live
    /// primaries, and every live node is either such a primary or a replica (right after a
    /// create, replicas still show as empty primaries until they learn their role).
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let all_ok = self.nodes.iter().filter(|n| n.pid().is_some()).all(|n| {
                redis_cli(&[
                    "-p".into(),
                    n.port().to_string(),
                    "CLUSTER".into(),
                    "INFO".into(),
                ])
                .is_ok_and(|t| t.contains("cluster_state:ok"))
            });
            let topology = self.topology();
            let served: u32 = topology
                .iter()
                .filter(|n| n.primary && !n.failed)
                .flat_map(|n| n.slots.iter().map(|(a, b)| u32::from(b - a) + 1))
                .sum();
            let settled = topology
                .iter()
                .filter(|n| !n.failed)
                .all(|n| !n.primary || !n.slots.is_empty());
            if all_ok && served == 16384 && settled {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the cluster did not settle within {SETTLE_TIMEOUT:?}: {:?}",
                    self.topology()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves `slots` slots from primary `from` to primary `to` (node ids) with `redis-cli
    /// --cluster reshard`, live: keys migrate one by one while clients see `ASK`/`MOVED`.
    pub fn reshard(&self, from: &str, to: &str, slots: u32) -> Result<String, String> {
        let entry = self
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a live node");
        redis_cli(&[
            "--cluster".into(),
            "reshard".into(),
            format!("127.0.0.1:{}", entry.port()),
            "--cluster-from".into(),
            from.into(),
            "--cluster-to".into(),
            to.into(),
            "--cluster-slots".into(),
            slots.to_string(),
            "--cluster-yes".into(),
            "--cluster-pipeline".into(),
            "100".into(),
        ])
    }
}
