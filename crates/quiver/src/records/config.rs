//! The `records:` block of `quiver.yaml`:
//!
//! ```yaml
//! records:
//!   namespaces:
//!     - name: transactions
//!       id_field: transaction_id   # default `id`
//!       ttl: 7d                    # default 7d; `never` keeps cached copies until deleted
//!       time_field: ts             # the record's time (exported as event_timestamp); default: when accepted
//!       fields: {amount: float64, user_id: int64, ts: timestamp}   # typed, checked on write
//!       required: [amount, user_id]
//!       isolation: {db: 2}         # or {prefix: "tx"}; default: keys under `{prefix}:{project}:records:{name}`
//!   predictions: {ttl: 7d}         # the built-in `predictions` namespace
//!   served_features: {ttl: 1d}     # the built-in namespace of served-feature logs
//!   export:
//!     batch_size: 10000            # entries per sink commit
//!     attempts: 3                  # per batch, with exponential backoff from `backoff`
//!     backoff: 1s
//!     every: 24h                   # `quiver serve` exports on this schedule ...
//!     at: "02:00"                  # ... starting at this UTC time of day
//!     lock_lease: 30s              # one exporter per namespace; a dead one's lock frees itself
//!   spill: {path: .quiver/records.spill}   # accept into a local file while the store is down
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

fn default_id_field() -> String {
    "id".to_string()
}

fn default_ttl() -> Option<Duration> {
    Some(Duration::from_secs(7 * 24 * 3600))
}

/// `7d`, or `never`.
fn ttl_or_never<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "never" {
        return Ok(None);
    }
    quiver_core::duration::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// One user-declared namespace.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub name: String,
    #[serde(default = "default_id_field")]
    pub id_field: String,
    #[serde(default = "default_ttl", deserialize_with = "ttl_or_never")]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub time_field: Option<String>,
    /// Declared fields and their types (`int64`, `float32`, `string`, `timestamp`, `list<int64>`,
    /// ...). Undeclared fields are kept in the record and its exported `payload`, unchecked.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Keep a cached copy readable by id (default true); `false`: only queue for export.
    #[serde(default = "default_true")]
    pub cache: bool,
}

fn default_true() -> bool {
    true
}

/// Where a namespace's online keys live.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Isolation {
    /// A Redis logical database of its own (the embedded store: tables of its own always).
    Db { db: u32 },
    /// Keys under `{prefix}:` instead of the default.
    Prefix { prefix: String },
}

/// A built-in namespace's settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinConfig {
    #[serde(default = "default_ttl", deserialize_with = "ttl_or_never")]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Keep cached copies readable by id: predictions yes (the latest per entity is read back),
    /// served-feature logs no (unless set: they are read in the offline store).
    #[serde(default)]
    pub cache: Option<bool>,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        BuiltinConfig {
            ttl: default_ttl(),
            isolation: None,
            cache: None,
        }
    }
}

fn default_batch_size() -> usize {
    10_000
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

/// How the queue drains into the offline store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_backoff", with = "quiver_core::duration::serde_req")]
    pub backoff: Duration,
    /// `quiver serve` exports every so often (absent: only `quiver export` does).
    #[serde(default, with = "quiver_core::duration::serde_opt")]
    pub every: Option<Duration>,
    /// The UTC time of day (`HH:MM`) the schedule starts from (default: when the server starts).
    #[serde(default)]
    pub at: Option<String>,
    /// The export lock's lease (Redis): renewed every third of it while an export runs, so an
    /// exporter that died frees its namespaces within one lease.
    #[serde(default = "default_lease", with = "quiver_core::duration::serde_req")]
    pub lock_lease: Duration,
}

fn default_lease() -> Duration {
    Duration::from_secs(30)
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            batch_size: default_batch_size(),
            attempts: default_attempts(),
            backoff: default_backoff(),
            every: None,
            at: None,
            lock_lease: default_lease(),
        }
    }
}

impl ExportConfig {
    /// `at` as minutes after midnight UTC.
    pub fn at_minutes(&self) -> Result<Option<u32>, String> {
        let Some(at) = &self.at else {
            return Ok(None);
        };
        let bad = || format!("field `records.export.at`: `{at}` is not a UTC time of day `HH:MM`");
        let (h, m) = at.split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Some(h * 60 + m))
    }
}

/// The whole `records:` block.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    #[serde(default)]
    pub namespaces: Vec<NamespaceConfig>,
    #[serde(default)]
    pub predictions: BuiltinConfig,
    #[serde(default)]
    pub served_features: BuiltinConfig,
    #[serde(default)]
    pub export: ExportConfig,
    /// Accept records into a local file while the record store is unavailable, and replay them
    /// in order when it is back (absent: such calls fail with 503).
    #[serde(default)]
    pub spill: Option<SpillConfig>,
}

/// `records.spill`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpillConfig {
    /// The file, relative to the project; one per process.
    pub path: String,
}
