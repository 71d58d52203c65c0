//! Online stores: where the latest feature values live for low-latency serving.
//!
//! Layout:
//! - [`OnlineStoreRead`] / [`OnlineStoreWrite`]: the two traits (the server needs only reads).
//! - [`ViewTable`]: which records a call addresses (project, view, version, schema, TTL).
//! - [`memory`]: the reference implementation and test double.
//! - [`embedded`]: the default, a single redb file; no server.
//! - [`redis`]: Redis, a few multiplexed connections per store (`connections`, round-robin).
//! - [`config`]: the `online_store:` block of `quiver.yaml` and [`open`], which builds a store from it.
//! - [`resilient`]: [`Resilient`], a decorator over any store: timeouts, read retries within a
//!   deadline, and a circuit breaker, so serving fails fast when the backend is down or stalled.
//! - [`faulty`]: [`Faulty`], a decorator that injects failures and delays on demand (tests).
//! - [`records`]: [`RecordStore`], record namespaces: records cached with a TTL and a durable
//!   export queue per namespace (Redis Streams; embedded tables).
//! - [`lock`]: [`Locks`], short-lived named locks (stampede protection); Redis implements them
//!   with `SET NX PX`, the in-process stores with [`LocalLocks`].
//!
//! Every backend stores the same bytes: [`quiver_core::record`]'s format under the key
//! [`ViewTable::key`]. Semantics every backend guarantees (checked by the conformance suite in
//! `tests/conformance.rs`):
//! - `read` returns one entry per requested key, in request order; `None` is a miss (never written,
//!   or expired).
//! - A write replaces a stored record only if its (event time, created time) is not older.
//! - A record expires `ttl` after it was written (Redis `SET ... PX`); serving reports a record whose
//!   *event time* is older than `ttl` as OUTSIDE_MAX_AGE (that check is the caller's, via
//!   [`quiver_core::status`]).
//! - Records decode whatever codec wrote them; the store's codec only decides how it writes.

pub mod config;
pub mod embedded;
pub mod error;
pub mod faulty;
pub mod lock;
pub mod memory;
pub mod records;
pub mod redis;
pub mod resilient;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quiver_core::{EntityKey, Record, ValueType};

pub use config::{OnlineStoreConfig, open};
pub use error::{OnlineError, Result};
pub use faulty::Faulty;
pub use lock::{LocalLocks, LockToken, Locks};
pub use records::RecordStore;
pub use resilient::{ResilienceConfig, Resilient};

/// The records of one feature view version.
#[derive(Clone, Debug)]
pub struct ViewTable {
    pub project: String,
    pub view: String,
    pub version: u32,
    /// Field types in schema order: how to decode a record's values.
    pub types: Arc<[ValueType]>,
    /// Effective TTL: the view's, else the store default. `None`: never expires.
    pub ttl: Option<Duration>,
}

impl ViewTable {
    /// `{prefix}:{project}:{view}:v{version}:`, e.g. `quiver:shop:user_profile:v1:`.
    pub fn key_prefix(&self, prefix: &str) -> String {
        format!("{prefix}:{}:{}:v{}:", self.project, self.view, self.version)
    }

    /// The full storage key of one entity.
    pub fn key(&self, prefix: &str, key: &EntityKey) -> String {
        let mut k = self.key_prefix(prefix);
        k.push_str(&key.storage_suffix());
        k
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records stored.
    pub written: usize,
    /// Records not stored because the stored one is newer.
    pub skipped_older: usize,
}

impl std::ops::AddAssign for WriteSummary {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.skipped_older += other.skipped_older;
    }
}

/// Reading side of an online store.
#[async_trait]
pub trait OnlineStoreRead: Send + Sync {
    /// Reads the records of `keys` in one round trip where the backend allows. The result has one
    /// entry per key, in order; `None` is a miss.
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>>;

    /// [`read`](Self::read) that gives up at `deadline` (the caller's request deadline) with
    /// `Unavailable`. Decorators that retry ([`Resilient`]) override it to never start an attempt
    /// or a backoff that cannot finish in time; the default only bounds the one call.
    async fn read_by(
        &self,
        table: &ViewTable,
        keys: &[EntityKey],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Option<Record>>> {
        tokio::time::timeout_at(deadline, self.read(table, keys))
            .await
            .unwrap_or_else(|_| Err(deadline_passed(self.kind(), "read")))
    }

    /// Round-trip latency to the backend, for `/health`.
    async fn ping(&self) -> Result<Duration>;

    /// Short backend name (`memory`, `embedded`, `redis`) for logs and `/health`.
    fn kind(&self) -> &'static str;

    /// Locks every process using this store shares (Redis), for stampede protection across
    /// processes; `None` for stores only one process uses (in-process single-flight suffices).
    fn shared_locks(&self) -> Option<&dyn Locks> {
        None
    }

    /// The circuit breaker and retry counters when the store is wrapped in [`Resilient`], for
    /// `/health` and metrics.
    fn resilience(&self) -> Option<resilient::ResilienceState> {
        None
    }

    /// The store's record namespaces and export queues (`None`: this backend has none).
    fn records(&self) -> Option<Arc<dyn RecordStore>> {
        None
    }

    /// Memory the backend uses and its limit, for `/health` and metrics (`None`: not known).
    async fn memory(&self) -> Result<Option<MemoryUsage>> {
        Ok(None)
    }

    /// How many records each view version of `project` holds, and about how many bytes: one
    /// pass over the project's keys (Redis: incremental `SCAN`, never `KEYS`), for `quiver
    /// prune-online`, `apply`'s report and the key-count gauges. Optional.
    async fn table_sizes(&self, project: &str) -> Result<Vec<TableSize>> {
        let _ = project;
        Err(OnlineError::Unsupported("table_sizes"))
    }
}

/// The records one view version holds in the online store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSize {
    pub view: String,
    pub version: u32,
    pub keys: u64,
    /// Keys and values, in bytes (Redis: estimated from a sample of `MEMORY USAGE`).
    pub bytes: u64,
}

/// Splits a storage key `{prefix}:{project}:{view}:v{version}:{entity}` into view and version
/// (`None` for keys that are not view records, such as record namespaces).
pub fn parse_table_key<'k>(key: &'k str, project_prefix: &str) -> Option<(&'k str, u32)> {
    let rest = key.strip_prefix(project_prefix)?;
    let (view, rest) = rest.split_once(':')?;
    let (version, _) = rest.split_once(':')?;
    let version = version.strip_prefix('v')?.parse().ok()?;
    Some((view, version))
}

/// Adds one key to per-table sizes kept sorted by (view, version).
pub(crate) fn count_key(sizes: &mut Vec<TableSize>, view: &str, version: u32, bytes: u64) {
    match sizes.binary_search_by(|s| (s.view.as_str(), s.version).cmp(&(view, version))) {
        Ok(i) => {
            sizes[i].keys += 1;
            sizes[i].bytes += bytes;
        }
        Err(i) => sizes.insert(
            i,
            TableSize {
                view: view.to_string(),
                version,
                keys: 1,
                bytes,
            },
        ),
    }
}

/// A backend's memory: used bytes and the configured limit (`None`: unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    pub used_bytes: u64,
    pub max_bytes: Option<u64>,
    /// Keys evicted for memory since the server started.
    pub evicted_keys: u64,
}

/// Writing side of an online store.
#[async_trait]
pub trait OnlineStoreWrite: Send + Sync {
    /// Writes records; each replaces the stored one only if it is not older ("newer wins"),
    /// and expires `table.ttl` after this write. Either every record is durable (or skipped as
    /// older) when this returns `Ok`, or an error is returned.
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary>;

    /// Deletes every record of a view version. Optional.
    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        let _ = table;
        Err(OnlineError::Unsupported("delete_table"))
    }

    /// Deletes the records of `keys` (invalidation); returns how many existed. Optional.
    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        let _ = (table, keys);
        Err(OnlineError::Unsupported("delete"))
    }
}

/// A decorator or the facade may hold a store as `Arc<dyn OnlineStore>` (what [`open`] returns)
/// and still wrap it: the traits forward through `Arc`.
#[async_trait]
impl<T: OnlineStoreRead + ?Sized> OnlineStoreRead for Arc<T> {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        (**self).read(table, keys).await
    }

    async fn read_by(
        &self,
        table: &ViewTable,
        keys: &[EntityKey],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Option<Record>>> {
        (**self).read_by(table, keys, deadline).await
    }

    async fn ping(&self) -> Result<Duration> {
        (**self).ping().await
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn shared_locks(&self) -> Option<&dyn Locks> {
        (**self).shared_locks()
    }

    fn resilience(&self) -> Option<resilient::ResilienceState> {
        (**self).resilience()
    }

    fn records(&self) -> Option<Arc<dyn RecordStore>> {
        (**self).records()
    }

    async fn memory(&self) -> Result<Option<MemoryUsage>> {
        (**self).memory().await
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<TableSize>> {
        (**self).table_sizes(project).await
    }
}

#[async_trait]
impl<T: OnlineStoreWrite + ?Sized> OnlineStoreWrite for Arc<T> {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        (**self).write(table, rows).await
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        (**self).delete_table(table).await
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        (**self).delete(table, keys).await
    }
}

/// The error of a call cut short by the caller's deadline.
pub(crate) fn deadline_passed(store: &'static str, op: &str) -> OnlineError {
    OnlineError::Unavailable {
        store,
        message: format!("`{op}` did not finish before the caller's deadline"),
    }
}

/// A store that can both read and write.
pub trait OnlineStore: OnlineStoreRead + OnlineStoreWrite {}
impl<T: OnlineStoreRead + OnlineStoreWrite> OnlineStore for T {}

/// Now, in ns since the epoch (the clock TTL checks use).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
