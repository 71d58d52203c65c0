//! [`RedisStore`]: the online store traits over a small set of multiplexed Redis connections.
//!
//! A store holds `connections` `ConnectionManager`s (default 4) and hands them out round-robin:
//! each multiplexes the concurrent requests it is given and reconnects after a failure, and
//! several of them let replies be read and parsed on several runtime threads at once (one
//! connection serializes every reply of the process through one reader task). Every call is
//! bounded by the configured command timeout, so a dead server yields `Unavailable` quickly
//! instead of a hang, and a call that fails because the connection just broke is retried once on
//! the same connection (the first command after an idle disconnect fails that way; the retry
//! runs on a fresh connection).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quiver_core::{EntityKey, Record, RecordCodec};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use super::errors::{Target, is_retryable};
use super::script::{EXTEND_IF_OWNER, UNLOCK_IF_OWNER, WRITE_IF_NOT_OLDER, escape_glob};
use crate::config::{RedisConfig, parse_duration};
use crate::error::{OnlineError, Result};
use crate::{OnlineStoreRead, OnlineStoreWrite, ViewTable, WriteSummary};

/// Keys per MGET; larger reads become a pipeline of MGETs (still one round trip).
const READ_CHUNK: usize = 1000;
/// Records per write pipeline.
const WRITE_CHUNK: usize = 1000;
/// Records per script call (the script handles a group of keys per call).
const SCRIPT_KEYS: usize = 100;
/// Bytes of records per write pipeline, so one pipeline of large values stays well within the
/// command timeout.
const WRITE_CHUNK_BYTES: usize = 4 << 20;
/// Batches larger than this are encoded (and compressed) on the blocking pool.
const ENCODE_INLINE_MAX: usize = 64;
/// Every key matching a pattern, a batch at a time: `SCAN cursor MATCH pattern COUNT
/// DELETE_BATCH` on a single server, or the same on every primary of a cluster in turn.
pub(super) struct Scan<'a> {
    shared: &'a Shared,
    pattern: String,
    /// `None`: the single server; `Some`: a slot of a cluster primary.
    nodes: Vec<Option<u16>>,
    node: usize,
    cursor: u64,
}

impl<'a> Scan<'a> {
    pub(super) async fn new(shared: &'a Shared, pattern: String) -> Result<Scan<'a>> {
        let nodes = if shared.cluster {
            shared.primaries().await?.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        Ok(Scan {
            shared,
            pattern,
            nodes,
            node: 0,
            cursor: 0,
        })
    }

    /// The next batch of keys (possibly empty), or `None` when every node is done.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(&node) = self.nodes.get(self.node) else {
            return Ok(None);
        };
        let (cursor, pattern) = (self.cursor, self.pattern.as_str());
        let (next, keys): (u64, Vec<Vec<u8>>) = self
            .shared
            .run("scan", |conn| async move {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(DELETE_BATCH);
                match (conn, node) {
                    (Conn::Cluster(mut c), Some(slot)) => {
                        let v = c.route_command(cmd, to_primary(slot)).await?;
                        Ok(redis::from_redis_value(v)?)
                    }
                    (mut conn, _) => cmd.query_async(&mut conn).await,
                }
            })
            .await?;
        if next == 0 {
            self.node += 1;
            self.cursor = 0;
        } else {
            self.cursor = next;
        }
        Ok(Some(keys))
    }
}

/// Keys sampled per view version with `MEMORY USAGE` to estimate its bytes.
const SIZE_SAMPLE: usize = 16;
/// Keys per SCAN step and UNLINK call in `delete_table`.
const DELETE_BATCH: usize = 1000;

/// A connection to a single server (reconnecting) or to a cluster (routing each command by
/// its keys' slot, following `MOVED`/`ASK` and topology changes).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Lets one background renewal of a connection run at a time, and none sooner than
/// `min_gap` after the previous one ended, so a burst of failing calls starts one renewal.
struct RenewGate {
    min_gap: Duration,
    /// When the last renewal ended, ms since `created` (0: never).
    last_ms: std::sync::atomic::AtomicU64,
    running: std::sync::atomic::AtomicBool,
    created: Instant,
}

impl RenewGate {
    fn new(min_gap: Duration) -> RenewGate {
        RenewGate {
            min_gap,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::atomic::AtomicBool::new(false),
            created: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        (self.created.elapsed().as_millis() as u64).max(1)
    }

    /// Whether a renewal may start now; if so, it holds the gate until [`RenewGate::done`].
    fn try_start(&self) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        let too_soon =
            last != 0 && self.now_ms().saturating_sub(last) < self.min_gap.as_millis() as u64;
        !too_soon && !self.running.swap(true, Ordering::AcqRel)
    }

    fn done(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.running.store(false, Ordering::Release);
    }
}

/// A cluster store's connection, renewed when calls keep timing out. The client's connection
/// follows `MOVED`/`ASK` and failovers itself, but under load during a topology change (a live
/// reshard, a failover) it was seen to stop answering for good: every later call timed out.
/// A fresh connection reads the new topology and answers at once, so a timed-out call renews
/// it in the background, at most once a second.
struct ClusterState {
    client: redis::cluster::ClusterClient,
    conn: arc_swap::ArcSwap<ClusterConnection>,
    gate: RenewGate,
    connect_timeout: Duration,
}

impl ClusterState {
    fn renew(self: &Arc<Self>) {
        if !self.gate.try_start() {
            return;
        }
        let state = Arc::clone(self);
        tokio::spawn(async move {
            match tokio::time::timeout(state.connect_timeout, state.client.get_async_connection())
                .await
            {
                Ok(Ok(conn)) => {
                    state.conn.store(Arc::new(conn));
                    tracing::info!("renewed the Redis Cluster connection after a call timed out");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the Redis Cluster connection failed")
                }
                Err(_) => tracing::warn!("renewing the Redis Cluster connection timed out"),
            }
            state.gate.done();
        });
    }
}

/// `connections` connection managers on `client`: few, short reconnect attempts (a caller
/// waits at most the command timeout anyway, and the next call starts a new attempt).
async fn connect_managers(
    client: redis::Client,
    connections: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> RedisResult<Vec<Conn>> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(command_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(connect_timeout);
    let mut conns = Vec::with_capacity(connections.max(1));
    for _ in 0..connections.max(1) {
        conns.push(Conn::Single(
            ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await?,
        ));
    }
    Ok(conns)
}

/// A Sentinel-managed primary: the Sentinel client, asked again for the primary when calls to
/// the current one fail (it died, or it came back as a replica and refuses writes), at most
/// every 500 ms, off the request path.
struct SentinelState {
    client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    connections: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    gate: RenewGate,
}

impl SentinelState {
    /// Connections to the primary Sentinel names now.
    async fn connect(&self) -> RedisResult<Vec<Conn>> {
        let client = self.client.lock().await.async_get_client().await?;
        connect_managers(
            client,
            self.connections,
            self.connect_timeout,
            self.command_timeout,
        )
        .await
    }

    fn renew(self: &Arc<Self>, conns: &Arc<arc_swap::ArcSwap<Vec<Conn>>>) {
        if !self.gate.try_start() {
            return;
        }
        let (state, conns) = (Arc::clone(self), Arc::clone(conns));
        tokio::spawn(async move {
            match tokio::time::timeout(state.connect_timeout, state.connect()).await {
                Ok(Ok(fresh)) => {
                    conns.store(Arc::new(fresh));
                    tracing::info!("reconnected to the primary Sentinel names");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "asking Sentinel for the primary failed"),
                Err(_) => tracing::warn!("asking Sentinel for the primary timed out"),
            }
            state.gate.done();
        });
    }
}

/// State every handle from [`RedisStore::with_codec`] shares.
pub(super) struct Shared {
    /// Handed out round-robin by [`Shared::conn`]; replaced as a whole when Sentinel names a
    /// new primary.
    conns: Arc<arc_swap::ArcSwap<Vec<Conn>>>,
    /// A Redis Cluster: multi-key work is split by slot, SCAN runs on every primary.
    pub(super) cluster: bool,
    /// Cluster mode: the client and the connection in use (see [`ClusterState`]).
    cluster_state: Option<Arc<ClusterState>>,
    /// Sentinel mode: how to find the current primary again (see [`SentinelState`]).
    sentinel_state: Option<Arc<SentinelState>>,
    /// Cluster mode: per hash slot, a slot its primary serves first (the primary's name for
    /// routing a pipeline to it); `None` until read, or after a reply showed it stale.
    slot_owners: std::sync::RwLock<Option<Arc<Vec<u16>>>>,
    next: AtomicUsize,
    script: redis::Script,
    /// Releases a lock only for its owner (see `lock`).
    pub(super) unlock_script: redis::Script,
    /// Renews a lock's lease only for its owner (see `lock`).
    pub(super) extend_script: redis::Script,
    target: Target,
    pub(super) key_prefix: String,
    command_timeout: Duration,
    /// What this store connected with, so record namespaces isolated in another logical
    /// database can connect there (`records`).
    pub(super) config: RedisConfig,
    /// Stores on other logical databases, by number, opened on first use.
    pub(super) dbs: tokio::sync::Mutex<std::collections::HashMap<u32, RedisStore>>,
}

/// The Redis online store. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) shared: Arc<Shared>,
    codec: RecordCodec,
}

/// Why one attempt failed.
enum Failure {
    /// Our own deadline passed (the client may still be waiting to reconnect).
    Deadline,
    Redis(RedisError),
}

impl RedisStore {
    /// Connects to `config.url` (`redis://` or `rediss://`; user, password and db number go in
    /// the URL), loads the write script, and fails with `Unavailable` if the server does not
    /// answer within the connect timeout.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        Self::connect_db(config, None).await
    }

    /// [`connect`](Self::connect), to logical database `db` instead of the URL's.
    pub async fn connect_db(config: &RedisConfig, db: Option<u32>) -> Result<Self> {
        let connect_timeout =
            parse_duration("online_store.connect_timeout", &config.connect_timeout)?;
        let command_timeout =
            parse_duration("online_store.command_timeout", &config.command_timeout)?;
        if !config.nodes.is_empty() {
            return Self::connect_cluster(config, connect_timeout, command_timeout).await;
        }
        if let Some(sentinel) = &config.sentinel {
            return Self::connect_sentinel(config, sentinel, db, connect_timeout, command_timeout)
                .await;
        }
        let target = Target::new(&config.url);
        if config.url.starts_with("rediss://") {
            install_tls_provider();
        }
        let config_error = |e: RedisError| {
            OnlineError::Config(format!(
                "field `online_store.url`: {}",
                target.message("parse", &e)
            ))
        };
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(config_error)?;
        if let Some(db) = db {
            let settings = info.redis_settings().clone().set_db(i64::from(db));
            info = info.set_redis_settings(settings);
        }
        let client = match &config.tls {
            None => redis::Client::open(info).map_err(config_error)?,
            Some(tls) => {
                if !config.url.starts_with("rediss://") {
                    return Err(OnlineError::Config(
                        "field `online_store.tls` needs a `rediss://` url (TLS); the url says `redis://`"
                            .into(),
                    ));
                }
                redis::Client::build_with_tls(info, tls_certificates(tls)?).map_err(config_error)?
            }
        };
        let connect_all =
            connect_managers(client, config.connections, connect_timeout, command_timeout);
        let conns = match tokio::time::timeout(connect_timeout, connect_all).await {
            Ok(Ok(conns)) => conns,
            Ok(Err(e)) => return Err(target.error("connect", &e)),
            Err(_) => return Err(target.timeout("connect", connect_timeout)),
        };
        Self::with_shared(config, conns, false, target, command_timeout).await
    }

    /// Connects to the primary Sentinel names for `config.sentinel.master`, and finds it
    /// again through Sentinel when calls to it fail (see [`SentinelState`]).
    async fn connect_sentinel(
        config: &RedisConfig,
        sentinel: &crate::config::SentinelConfig,
        db: Option<u32>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let target = Target::new(&format!(
            "sentinel {} at {}",
            sentinel.master,
            sentinel.nodes.join(",")
        ));
        let config_error = |e: RedisError| {
            OnlineError::Config(format!(
                "field `online_store.sentinel`: {}",
                target.message("parse", &e)
            ))
        };
        let node_info = db.map(|db| {
            redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(
                redis::RedisConnectionInfo::default().set_db(i64::from(db)),
            )
        });
        let client = redis::sentinel::SentinelClient::build(
            sentinel.nodes.clone(),
            sentinel.master.clone(),
            node_info,
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(config_error)?;
        let state = Arc::new(SentinelState {
            client: tokio::sync::Mutex::new(client),
            connections: config.connections,
            connect_timeout,
            command_timeout,
            gate: RenewGate::new(Duration::from_millis(500)),
        });
        let conns = match tokio::time::timeout(connect_timeout, state.connect()).await {
            Ok(Ok(conns)) => conns,
            Ok(Err(e)) => return Err(target.error("connect", &e)),
            Err(_) => return Err(target.timeout("connect", connect_timeout)),
        };
        let mut store = Self::with_shared(config, conns, false, target, command_timeout).await?;
        let shared = Arc::get_mut(&mut store.shared).ok_or_else(|| OnlineError::Backend {
            store: "redis",
            message: "a new store is shared already (this is a bug in Quiver)".into(),
        })?;
        shared.sentinel_state = Some(state);
        Ok(store)
    }

    /// Connects to a Redis Cluster through `config.nodes`.
    async fn connect_cluster(
        config: &RedisConfig,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let target = Target::new(&config.nodes.join(","));
        if config.nodes.iter().any(|n| n.starts_with("rediss://")) {
            install_tls_provider();
        }
        let config_error = |e: RedisError| {
            OnlineError::Config(format!(
                "field `online_store.nodes`: {}",
                target.message("parse", &e)
            ))
        };
        let mut builder = redis::cluster::ClusterClientBuilder::new(config.nodes.clone())
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout)
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(500);
        if let Some(tls) = &config.tls {
            builder = builder.certs(tls_certificates(tls)?);
        }
        let client = builder.build().map_err(config_error)?;
        let conn = match tokio::time::timeout(connect_timeout, client.get_async_connection()).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(target.error("connect", &e)),
            Err(_) => return Err(target.timeout("connect", connect_timeout)),
        };
        // One cluster connection multiplexes over a connection per node.
        let mut store = Self::with_shared(
            config,
            vec![Conn::Cluster(conn.clone())],
            true,
            target,
            command_timeout,
        )
        .await?;
        let shared = Arc::get_mut(&mut store.shared).ok_or_else(|| OnlineError::Backend {
            store: "redis",
            message: "a new store is shared already (this is a bug in Quiver)".into(),
        })?;
        shared.cluster_state = Some(Arc::new(ClusterState {
            client,
            conn: arc_swap::ArcSwap::from_pointee(conn),
            gate: RenewGate::new(Duration::from_secs(1)),
            connect_timeout,
        }));
        Ok(store)
    }

    async fn with_shared(
        config: &RedisConfig,
        conns: Vec<Conn>,
        cluster: bool,
        target: Target,
        command_timeout: Duration,
    ) -> Result<Self> {
        let shared = Shared {
            conns: Arc::new(arc_swap::ArcSwap::from_pointee(conns)),
            cluster,
            cluster_state: None,
            sentinel_state: None,
            slot_owners: std::sync::RwLock::new(None),
            next: AtomicUsize::new(0),
            script: redis::Script::new(WRITE_IF_NOT_OLDER),
            unlock_script: redis::Script::new(UNLOCK_IF_OWNER),
            extend_script: redis::Script::new(EXTEND_IF_OWNER),
            target,
            key_prefix: config.key_prefix.clone(),
            command_timeout,
            config: config.clone(),
            dbs: Default::default(),
        };
        // Load the script now so a server that forbids scripting fails at startup, not at the
        // first materialization.
        shared
            .run("script load", |mut conn| {
                let script = &shared.script;
                async move { script.load_async(&mut conn).await }
            })
            .await?;
        Ok(RedisStore {
            shared: Arc::new(shared),
            codec: RecordCodec {
                codec: config.codec,
                compression_threshold: config.compression_threshold,
                ..RecordCodec::default()
            },
        })
    }

    /// A handle on the same connections that writes with another codec.
    pub fn with_codec(&self, codec: RecordCodec) -> Self {
        RedisStore {
            shared: self.shared.clone(),
            codec,
        }
    }

    /// The storage key of one entity (what `redis-cli` shows).
    pub fn key(&self, table: &ViewTable, key: &EntityKey) -> String {
        table.key(&self.shared.key_prefix, key)
    }

    /// The stored bytes under a full key (tests and debugging inspect the header).
    pub async fn raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let shared = &self.shared;
        shared
            .run("get", |mut conn| {
                let key = key.to_string();
                async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
            })
            .await
    }
}

impl Shared {
    /// A cluster's primaries, each as a slot it serves (`CLUSTER NODES`).
    pub(super) async fn primaries(&self) -> Result<Vec<u16>> {
        Ok(self
            .primary_ranges()
            .await?
            .into_iter()
            .map(|(first, _)| first)
            .collect())
    }

    async fn primary_ranges(&self) -> Result<Vec<(u16, Vec<(u16, u16)>)>> {
        let text: String = self
            .run("cluster nodes", |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(parse_primaries(&text))
    }

    /// Per slot, its primary's first slot; read from `CLUSTER NODES` when unknown.
    async fn slot_owners(&self) -> Result<Arc<Vec<u16>>> {
        if let Some(map) = self
            .slot_owners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(map);
        }
        let mut map = vec![u16::MAX; 16384];
        for (first, ranges) in self.primary_ranges().await? {
            for (a, b) in ranges {
                for slot in a..=b.min(16383) {
                    map[usize::from(slot)] = first;
                }
            }
        }
        let map = Arc::new(map);
        *self
            .slot_owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(map.clone());
        Ok(map)
    }

    /// Forgets the slot owners (a reply showed them stale).
    fn forget_slot_owners(&self) {
        *self
            .slot_owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The next connection, round-robin (the current one on a cluster).
    fn conn(&self) -> Conn {
        if let Some(state) = &self.cluster_state {
            return Conn::Cluster(ClusterConnection::clone(&state.conn.load()));
        }
        let conns = self.conns.load();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len().max(1);
        conns[i].clone()
    }

    /// Runs `op` on the next connection under the command timeout, retrying once on the same
    /// connection (which reconnects) if it had just broken.
    pub(super) async fn run<T, F, Fut>(&self, name: &str, mut op: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn();
        match self.attempt(op(conn.clone())).await {
            Ok(v) => Ok(v),
            Err(Failure::Redis(e)) if is_retryable(&e) => {
                tracing::debug!(op = name, error = %e, "redis call failed on a broken connection; retrying once");
                self.attempt(op(conn))
                    .await
                    .map_err(|f| self.failure(name, f))
            }
            Err(f) => Err(self.failure(name, f)),
        }
    }

    async fn attempt<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> std::result::Result<T, Failure> {
        match tokio::time::timeout(self.command_timeout, fut).await {
            Ok(result) => result.map_err(Failure::Redis),
            Err(_) => Err(Failure::Deadline),
        }
    }

    fn failure(&self, name: &str, f: Failure) -> OnlineError {
        if let Some(state) = &self.cluster_state
            && matches!(&f, Failure::Deadline)
        {
            state.renew();
        }
        if let Some(state) = &self.sentinel_state {
            let primary_lost = match &f {
                Failure::Deadline => true,
                Failure::Redis(e) => {
                    e.is_io_error()
                        || e.is_connection_refusal()
                        || e.is_connection_dropped()
                        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
                }
            };
            if primary_lost {
                state.renew(&self.conns);
            }
        }
        match f {
            Failure::Deadline => self.target.timeout(name, self.command_timeout),
            Failure::Redis(e) => self.target.error(name, &e),
        }
    }

    /// Runs one pipeline of script calls; if the server lost the script (restart, `SCRIPT
    /// FLUSH`), loads it and runs the pipeline again. Re-running is safe: a NOSCRIPT reply means
    /// no call in the pipeline ran, and each call is idempotent anyway.
    async fn eval_pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<i64>> {
        self.run("write", |mut conn| {
            let script = self.script.clone();
            async move {
                match pipe.query_async::<Vec<i64>>(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        script.load_async(&mut conn).await?;
                        pipe.query_async(&mut conn).await
                    }
                    other => other,
                }
            }
        })
        .await
    }
}

/// The PEM files of `online_store.tls`, read; errors name the field and the file.
fn tls_certificates(tls: &crate::config::RedisTlsConfig) -> Result<redis::TlsCertificates> {
    let read = |field: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            OnlineError::Config(format!(
                "field `online_store.tls.{field}`: cannot read `{}`: {e}",
                path.display()
            ))
        })
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("cert_file", cert)?,
            client_key: read("key_file", key)?,
        }),
        _ => {
            return Err(OnlineError::Config(
                "fields `online_store.tls.cert_file` and `key_file` go together: give both or neither"
                    .into(),
            ));
        }
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert: match &tls.ca_file {
            Some(ca) => Some(read("ca_file", ca)?),
            None => None,
        },
    })
}

/// Installs rustls's ring provider for `rediss://` (once per process; another component may
/// have installed one already, which is fine).
fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `used_memory`, `maxmemory` and `evicted_keys` of an `INFO memory stats` reply.
fn memory_of(info: &str) -> Option<crate::MemoryUsage> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    field("used_memory").map(|used_bytes| crate::MemoryUsage {
        used_bytes,
        max_bytes: field("maxmemory").filter(|&m| m > 0),
        evicted_keys: field("evicted_keys").unwrap_or(0),
    })
}

/// The primaries of `CLUSTER NODES` output (`id host:port@bus[,hostname] flags master ping
/// pong epoch state slot-ranges...`) that serve slots, with their ranges; failed ones left
/// out. A primary is named by the first slot it serves (commands for the node are routed by
/// that slot, through the client's slot map).
fn parse_primaries(text: &str) -> Vec<(u16, Vec<(u16, u16)>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(flags) = fields.get(2) else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
            continue;
        }
        let ranges: Vec<(u16, u16)> = fields
            .iter()
            .skip(8)
            .filter(|f| !f.starts_with('['))
            .filter_map(|f| match f.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => f.parse().ok().map(|n| (n, n)),
            })
            .collect();
        if let Some(&(first, _)) = ranges.first() {
            out.push((first, ranges));
        }
    }
    out
}

/// Routes a command to the primary serving `slot`.
fn to_primary(slot: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
        redis::cluster_routing::Route::new(slot, redis::cluster_routing::SlotAddr::Master),
    ))
}

/// Encodes rows as (key, record bytes).
fn encode(
    codec: RecordCodec,
    prefix: &str,
    table: &ViewTable,
    rows: &[(EntityKey, Record)],
) -> Result<Vec<(String, Vec<u8>)>> {
    rows.iter()
        .map(|(k, r)| {
            let bytes = codec.encode(r, &table.types).map_err(OnlineError::Encode)?;
            Ok((table.key(prefix, k), bytes))
        })
        .collect()
}

/// The key indices of one slot's MGET and the values it read.
type SlotValues = (Vec<usize>, Vec<Option<Vec<u8>>>);

/// The hash slot of a key: CRC16 (XMODEM) of its hash tag (the part between the first `{` and
/// the next `}`, when not empty) or of the whole key, modulo 16384 — Redis Cluster's rule.
fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

/// A cluster read grouped per node: the keys grouped by slot, the slots by their primary (as
/// `CLUSTER NODES` last said), and per primary one pipeline of one `MGET` per slot, the
/// primaries concurrently: one round trip per node. Slots whose reply is an error (`MOVED`:
/// the owners changed; `ASK`, `TRYAGAIN`: a slot is migrating) are read again one `MGET` per
/// slot through the client's routing, which follows the redirections, and the owners are read
/// again next time.
async fn read_by_node(shared: &Shared, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    let owners = shared.slot_owners().await?;
    let read_from = redis::cluster_routing::SlotAddr::Master;
    let mut by_slot: std::collections::HashMap<u16, Vec<usize>> = Default::default();
    for (i, key) in keys.iter().enumerate() {
        by_slot.entry(key_slot(key.as_bytes())).or_default().push(i);
    }
    let mut by_node: std::collections::HashMap<u16, Vec<Vec<usize>>> = Default::default();
    for (slot, group) in by_slot {
        let owner = owners[usize::from(slot)];
        by_node.entry(owner).or_default().push(group);
    }
    let mut out = vec![None; keys.len()];
    let mut again: Vec<usize> = Vec::new();
    let calls = by_node.into_iter().map(|(owner, groups)| async move {
        let mut pipe = redis::pipe();
        for group in &groups {
            let cmd = pipe.cmd("MGET");
            for &i in group {
                cmd.arg(&keys[i]);
            }
        }
        let count = groups.len();
        let replies: RedisResult<Vec<Value>> = if owner == u16::MAX {
            Err(RedisError::from((
                ErrorKind::Io,
                "no primary known for a slot",
            )))
        } else {
            match shared.conn() {
                Conn::Cluster(mut c) => tokio::time::timeout(
                    shared.command_timeout,
                    c.route_pipeline(
                        pipe,
                        0,
                        count,
                        SingleNodeRoutingInfo::SpecificNode(redis::cluster_routing::Route::new(
                            owner, read_from,
                        )),
                    ),
                )
                .await
                .unwrap_or_else(|_| Err(RedisError::from((ErrorKind::Io, "timed out")))),
                Conn::Single(_) => Err(RedisError::from((ErrorKind::Io, "not a cluster"))),
            }
        };
        (groups, replies)
    });
    for (groups, replies) in futures_util::future::join_all(calls).await {
        match replies {
            Ok(values) if values.len() == groups.len() => {
                for (group, value) in groups.into_iter().zip(values) {
                    match redis::from_redis_value::<Vec<Option<Vec<u8>>>>(value) {
                        Ok(vals) if vals.len() == group.len() => {
                            for (i, v) in group.into_iter().zip(vals) {
                                out[i] = v;
                            }
                        }
                        _ => again.extend(group),
                    }
                }
            }
            _ => again.extend(groups.into_iter().flatten()),
        }
    }
    if !again.is_empty() {
        shared.forget_slot_owners();
        again.sort_unstable();
        let retry_keys: Vec<String> = again.iter().map(|&i| keys[i].clone()).collect();
        let values = read_by_slot(shared, &retry_keys).await?;
        for (i, v) in again.into_iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// A cluster read: one MGET per hash slot (a command the client routes by its key, following
/// `MOVED` and `ASK`), the slots' MGETs concurrent, the values put back in key order.
async fn read_by_slot(shared: &Shared, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    use futures_util::StreamExt as _;
    let mut by_slot: std::collections::HashMap<Slot, Vec<usize>> = Default::default();
    for (i, key) in keys.iter().enumerate() {
        by_slot.entry(Slot::for_key(key)).or_default().push(i);
    }
    let calls = by_slot.into_values().map(|group| async move {
        let values: Vec<Option<Vec<u8>>> = shared
            .run("mget", |mut conn| {
                let mut cmd = redis::cmd("MGET");
                for &i in &group {
                    cmd.arg(&keys[i]);
                }
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        Ok::<_, OnlineError>((group, values))
    });
    let parts: Vec<Result<SlotValues>> = futures_util::stream::iter(calls)
        .buffer_unordered(CLUSTER_WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut out = vec![None; keys.len()];
    for part in parts {
        let (group, values) = part?;
        for (i, v) in group.into_iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// One newer-wins script call over `group` (indices into `encoded`, keys of one slot):
/// `(records, stored)`.
async fn write_group(
    shared: &Shared,
    encoded: &[(String, Vec<u8>)],
    group: Vec<usize>,
    ttl_ms: u64,
) -> Result<(usize, usize)> {
    let stored: i64 = shared
        .run("write", |mut conn| {
            let mut call = shared.script.prepare_invoke();
            for &i in &group {
                call.key(&encoded[i].0);
            }
            call.arg(ttl_ms);
            for &i in &group {
                call.arg(&encoded[i].1);
            }
            async move { call.invoke_async(&mut conn).await }
        })
        .await?;
    Ok((group.len(), usize::try_from(stored).unwrap_or(0)))
}

/// Per-slot commands a cluster read or write keeps in flight at once.
const CLUSTER_WRITE_CONCURRENCY: usize = 64;

impl RedisStore {
    /// A cluster write: the records grouped by hash slot (a script may only touch keys of one
    /// slot), one newer-wins script call per group of up to `SCRIPT_KEYS` keys, the calls
    /// concurrent. If some fail, the others' records are reported as confirmed.
    async fn write_by_slot(
        &self,
        encoded: &[(String, Vec<u8>)],
        ttl_ms: u64,
    ) -> Result<WriteSummary> {
        use futures_util::StreamExt as _;
        let shared = &self.shared;
        let mut by_slot: std::collections::HashMap<Slot, Vec<usize>> = Default::default();
        for (i, (key, _)) in encoded.iter().enumerate() {
            by_slot.entry(Slot::for_key(key)).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_slot
            .into_values()
            .flat_map(|idx| {
                idx.chunks(SCRIPT_KEYS)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let calls = groups
            .into_iter()
            .map(|group| write_group(shared, encoded, group, ttl_ms));
        let results: Vec<Result<(usize, usize)>> = futures_util::stream::iter(calls)
            .buffer_unordered(CLUSTER_WRITE_CONCURRENCY)
            .collect()
            .await;
        let mut summary = WriteSummary::default();
        let mut failed = None;
        for r in results {
            match r {
                Ok((len, stored)) => {
                    summary.written += stored.min(len);
                    summary.skipped_older += len - stored.min(len);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        match failed {
            None => Ok(summary),
            Some(e) if summary.written + summary.skipped_older == 0 => Err(e),
            Some(e) => Err(OnlineError::PartialWrite {
                confirmed: summary.written + summary.skipped_older,
                total: encoded.len(),
                source: Box::new(e),
            }),
        }
    }

    /// Memory of a cluster: `INFO` of every primary, summed.
    async fn cluster_memory(&self) -> Result<Option<crate::MemoryUsage>> {
        let mut total: Option<crate::MemoryUsage> = None;
        let mut unlimited = false;
        for slot in self.shared.primaries().await? {
            let info: String = self
                .shared
                .run("info", |conn| async move {
                    let Conn::Cluster(mut c) = conn else {
                        return Ok(String::new());
                    };
                    let mut cmd = redis::cmd("INFO");
                    cmd.arg("memory").arg("stats");
                    let v = c.route_command(cmd, to_primary(slot)).await?;
                    Ok(redis::from_redis_value(v)?)
                })
                .await?;
            let Some(node) = memory_of(&info) else {
                continue;
            };
            unlimited |= node.max_bytes.is_none();
            let t = total.get_or_insert(crate::MemoryUsage {
                used_bytes: 0,
                max_bytes: Some(0),
                evicted_keys: 0,
            });
            t.used_bytes += node.used_bytes;
            t.evicted_keys += node.evicted_keys;
            t.max_bytes = t.max_bytes.zip(node.max_bytes).map(|(a, b)| a + b);
        }
        if unlimited && let Some(t) = &mut total {
            t.max_bytes = None;
        }
        Ok(total)
    }
}

#[async_trait]
impl OnlineStoreRead for RedisStore {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let shared = &self.shared;
        let full: Vec<String> = keys
            .iter()
            .map(|k| table.key(&shared.key_prefix, k))
            .collect();
        let values: Vec<Option<Vec<u8>>> = if shared.cluster {
            read_by_node(shared, &full).await?
        } else {
            shared
                .run("mget", |mut conn| {
                    let full = &full;
                    async move {
                        if full.len() <= READ_CHUNK {
                            redis::cmd("MGET").arg(full).query_async(&mut conn).await
                        } else {
                            // A pipeline of MGETs: still one round trip, without one giant reply.
                            let mut pipe = redis::pipe();
                            for chunk in full.chunks(READ_CHUNK) {
                                pipe.cmd("MGET").arg(chunk);
                            }
                            let parts: Vec<Vec<Option<Vec<u8>>>> =
                                pipe.query_async(&mut conn).await?;
                            Ok(parts.into_iter().flatten().collect())
                        }
                    }
                })
                .await?
        };
        if values.len() != full.len() {
            return Err(OnlineError::Backend {
                store: "redis",
                message: format!(
                    "MGET of {} keys returned {} values (this is a bug in Quiver)",
                    full.len(),
                    values.len()
                ),
            });
        }
        values
            .into_iter()
            .zip(full)
            .map(|(value, key)| match value {
                None => Ok(None),
                Some(bytes) => RecordCodec::decode(&bytes, &table.types)
                    .map(Some)
                    .map_err(|source| OnlineError::Corrupt { key, source }),
            })
            .collect()
    }

    async fn ping(&self) -> Result<Duration> {
        let shared = &self.shared;
        let start = Instant::now();
        shared
            .run("ping", |mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await?;
        Ok(start.elapsed())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn shared_locks(&self) -> Option<&dyn crate::Locks> {
        Some(self)
    }

    fn records(&self) -> Option<Arc<dyn crate::RecordStore>> {
        Some(Arc::new(self.clone()))
    }

    async fn memory(&self) -> Result<Option<crate::MemoryUsage>> {
        if self.shared.cluster {
            return self.cluster_memory().await;
        }
        let info: String = self
            .shared
            .run("info", |mut conn| async move {
                redis::cmd("INFO")
                    .arg("memory")
                    .arg("stats")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(memory_of(&info))
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<crate::TableSize>> {
        let shared = &self.shared;
        let project_prefix = format!("{}:{project}:", shared.key_prefix);
        let pattern = format!("{}*", escape_glob(&project_prefix));
        let mut sizes: Vec<crate::TableSize> = Vec::new();
        // Per table, a few keys whose `MEMORY USAGE` estimates its bytes.
        let mut samples: Vec<(String, u32, Vec<Vec<u8>>)> = Vec::new();
        let mut scan = Scan::new(shared, pattern).await?;
        while let Some(keys) = scan.next().await? {
            for key in keys {
                let Ok(text) = std::str::from_utf8(&key) else {
                    continue;
                };
                let Some((view, version)) = crate::parse_table_key(text, &project_prefix) else {
                    continue;
                };
                crate::count_key(&mut sizes, view, version, 0);
                match samples
                    .iter_mut()
                    .find(|(v, n, _)| v == view && *n == version)
                {
                    Some((_, _, keys)) if keys.len() < SIZE_SAMPLE => keys.push(key),
                    Some(_) => {}
                    None => samples.push((view.to_string(), version, vec![key])),
                }
            }
        }
        for (view, version, keys) in samples {
            let used: Vec<Option<u64>> = shared
                .run("memory_usage", |mut conn| {
                    let keys = &keys;
                    async move {
                        if let Conn::Cluster(c) = &mut conn {
                            // Each key on its own node (the sample is a few keys).
                            let mut out = Vec::with_capacity(keys.len());
                            for k in keys {
                                let mut cmd = redis::cmd("MEMORY");
                                cmd.arg("USAGE").arg(k);
                                let route =
                                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                                        redis::cluster_routing::Route::with_key(
                                            k,
                                            redis::cluster_routing::SlotAddr::Master,
                                        ),
                                    ));
                                out.push(redis::from_redis_value(
                                    c.route_command(cmd, route).await?,
                                )?);
                            }
                            return Ok(out);
                        }
                        let mut pipe = redis::pipe();
                        for k in keys {
                            pipe.cmd("MEMORY").arg("USAGE").arg(k);
                        }
                        pipe.query_async(&mut conn).await
                    }
                })
                .await?;
            let known: Vec<u64> = used.into_iter().flatten().collect();
            if let Some(size) = sizes
                .iter_mut()
                .find(|s| s.view == view && s.version == version)
                && !known.is_empty()
            {
                let mean = known.iter().sum::<u64>() as f64 / known.len() as f64;
                size.bytes = (mean * size.keys as f64) as u64;
            }
        }
        Ok(sizes)
    }
}

#[async_trait]
impl OnlineStoreWrite for RedisStore {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        let shared = &self.shared;
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let encoded = if rows.len() <= ENCODE_INLINE_MAX {
            encode(self.codec, &shared.key_prefix, table, rows)?
        } else if multi_thread {
            // Encoding a large batch (zstd for big values) would stall the runtime's thread:
            // hand the thread's other work to another one meanwhile (no copy of the rows).
            tokio::task::block_in_place(|| encode(self.codec, &shared.key_prefix, table, rows))?
        } else {
            // Encoding a large batch (zstd for big values) would stall the runtime's threads.
            let (codec, prefix, table, rows) = (
                self.codec,
                shared.key_prefix.clone(),
                table.clone(),
                rows.to_vec(),
            );
            tokio::task::spawn_blocking(move || encode(codec, &prefix, &table, &rows))
                .await
                .map_err(|e| OnlineError::Backend {
                    store: "redis",
                    message: format!("encoding task failed: {e} (this is a bug in Quiver)"),
                })??
        };
        // 0 tells the script "no expiry"; a sub-millisecond TTL rounds up so it still expires.
        let ttl_ms: u64 = table.ttl.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        if shared.cluster {
            return self.write_by_slot(&encoded, ttl_ms).await;
        }
        let hash = shared.script.get_hash();
        let mut summary = WriteSummary::default();
        let mut rest = &encoded[..];
        while !rest.is_empty() {
            let mut take = 0;
            let mut bytes = 0;
            while take < rest.len()
                && take < WRITE_CHUNK
                && (take == 0 || bytes < WRITE_CHUNK_BYTES)
            {
                bytes += rest[take].1.len();
                take += 1;
            }
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            let mut pipe = redis::pipe();
            for group in chunk.chunks(SCRIPT_KEYS) {
                let call = pipe.cmd("EVALSHA").arg(hash).arg(group.len());
                for (key, _) in group {
                    call.arg(key);
                }
                call.arg(ttl_ms);
                for (_, value) in group {
                    call.arg(value);
                }
            }
            let done = summary.written + summary.skipped_older;
            let stored: usize = shared
                .eval_pipeline(&pipe)
                .await
                .map_err(|e| match done {
                    // Nothing confirmed yet: the store's own error says what happened.
                    0 => e,
                    _ => OnlineError::PartialWrite {
                        confirmed: done,
                        total: rows.len(),
                        source: Box::new(e),
                    },
                })?
                .into_iter()
                .map(|n| usize::try_from(n).unwrap_or(0))
                .sum();
            if stored > chunk.len() {
                return Err(OnlineError::Backend {
                    store: "redis",
                    message: format!(
                        "the write script stored {stored} of {} records (this is a bug in Quiver)",
                        chunk.len()
                    ),
                });
            }
            summary.written += stored;
            summary.skipped_older += chunk.len() - stored;
        }
        Ok(summary)
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        let shared = &self.shared;
        let mut deleted = 0u64;
        for chunk in keys.chunks(DELETE_BATCH) {
            let names: Vec<String> = chunk
                .iter()
                .map(|k| table.key(&shared.key_prefix, k))
                .collect();
            let removed: u64 = shared
                .run("unlink", |mut conn| {
                    let names = &names;
                    async move { redis::cmd("UNLINK").arg(names).query_async(&mut conn).await }
                })
                .await?;
            deleted += removed;
        }
        Ok(deleted)
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        let shared = &self.shared;
        let pattern = format!("{}*", escape_glob(&table.key_prefix(&shared.key_prefix)));
        let mut deleted = 0u64;
        let mut scan = Scan::new(shared, pattern).await?;
        while let Some(keys) = scan.next().await? {
            if !keys.is_empty() {
                let removed: u64 = shared
                    .run("unlink", |mut conn| {
                        let keys = &keys;
                        async move { redis::cmd("UNLINK").arg(keys).query_async(&mut conn).await }
                    })
                    .await?;
                deleted += removed;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_renewal_at_a_time_and_none_too_soon() {
        let gate = RenewGate::new(Duration::from_millis(200));
        assert!(gate.try_start());
        assert!(!gate.try_start(), "one is running");
        gate.done();
        assert!(!gate.try_start(), "within the gap");
        std::thread::sleep(Duration::from_millis(250));
        assert!(gate.try_start());
    }

    #[test]
    fn key_slots_follow_redis_cluster() {
        // Values of `CLUSTER KEYSLOT` on a real server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        // A hash tag decides; an empty one does not.
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    }

    #[test]
    fn primaries_and_their_slots_from_cluster_nodes() {
        let text = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922 12000\n\
                    c 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected 10923-11999\n\
                    d 127.0.0.1:7003@17003 slave a 0 0 1 connected\n\
                    e 127.0.0.1:7004@17004 master - 0 0 4 connected\n";
        assert_eq!(
            parse_primaries(text),
            [
                (0, vec![(0, 5460)]),
                (5461, vec![(5461, 10922), (12000, 12000)])
            ]
        );
    }
}
