//! The read step of serving, behind one interface a layer can wrap.
//!
//! [`FeatureReader`] reads the records of one view for a list of entity keys and says which
//! layer answered each. [`OnlineReader`] is the online store alone. [`LayeredReader`] wraps it
//! with the second layer (the shape of Neon's `GenericRemoteStorage` decorators):
//! - **fallback**: when the online store is unavailable (an error, a timeout, an open circuit)
//!   or misses a key, per the view's `fallback` policy (or the store-wide default), the offline
//!   layer answers: the offline store's latest row as of the request time for plain views, the
//!   features computed from the source at the request time for derived views (bounded by
//!   `serving.compute_budget`; keys beyond it stay missing, not slow);
//! - **read-through**: what the offline layer found is written back to the online store, off
//!   the request's path, newer-wins (it never replaces a fresher value);
//! - **point in time**: a request `as_of` t is answered by the offline layer alone, with the
//!   training-set rule (nothing after t; plain views within their TTL);
//! - **no stampede**: concurrent misses of one (view, version, entity) look it up once per
//!   process ([`SingleFlight`]) and once across processes sharing a Redis: the process that
//!   takes the key's lock (`SET NX PX`, released by its owner after the write-back) looks it
//!   up; the others re-read the online store until the value lands, and look up themselves
//!   only if it does not within a second (the holder went away).
//!
//! Fault injection for tests wraps the online store itself (`quiver_online::faulty::Faulty`),
//! below this reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use quiver_core::definitions::{Fallback, FallbackOn};
use quiver_core::{EntityKey, Record};
use quiver_online::{LockToken, OnlineStore};

use super::flight::SingleFlight;
use crate::catalog::{Catalog, ServedView};
use crate::config::ServingConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::stats::ServingStats;
use crate::store::OfflineHandle;

/// Which layer answered a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The online store.
    Online,
    /// The offline store's history (latest row as of the request time).
    Offline,
    /// Computed from the source at the request time (derived views).
    Computed,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Online => "online",
            Layer::Offline => "offline",
            Layer::Computed => "computed",
        }
    }
}

/// One key's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub record: Option<Record>,
    pub layer: Layer,
}

/// What a read is for.
#[derive(Clone, Copy)]
pub struct ReadContext<'a> {
    pub catalog: &'a Catalog,
    /// The request time, ns UTC.
    pub now: i64,
    /// Answer as of this time (point in time, offline layer only).
    pub as_of: Option<i64>,
    /// Give up online reads (and their retries) at this instant.
    pub deadline: Option<tokio::time::Instant>,
}

/// Reads the records of one view for a list of keys.
#[async_trait]
pub trait FeatureReader: Send + Sync {
    /// One answer per key, in order.
    async fn read(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Lookup>>;
}

/// The online store alone.
pub struct OnlineReader {
    store: Arc<dyn OnlineStore>,
}

impl OnlineReader {
    pub fn new(store: Arc<dyn OnlineStore>) -> Self {
        OnlineReader { store }
    }
}

#[async_trait]
impl FeatureReader for OnlineReader {
    async fn read(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Lookup>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let records = match ctx.deadline {
            Some(deadline) => self.store.read_by(&view.table, keys, deadline).await?,
            None => self.store.read(&view.table, keys).await?,
        };
        Ok(records
            .into_iter()
            .map(|record| Lookup {
                record,
                layer: Layer::Online,
            })
            .collect())
    }
}

/// Single-flight key: view, version, entity, and the point in time (`None`: now).
type FlightKey = (String, u32, EntityKey, Option<i64>);

/// The online reader with the offline layer behind it (see the module docs).
pub struct LayeredReader {
    online: OnlineReader,
    write_back: Arc<dyn OnlineStore>,
    offline: Arc<OfflineHandle>,
    config: ServingConfig,
    flight: SingleFlight<FlightKey, Option<Record>>,
    /// Offline-layer lookups made (calls, keys): how often the second layer was asked.
    lookups: AtomicU64,
    keys_looked_up: AtomicU64,
    /// Hits, misses, fallbacks, latencies per view and layer.
    stats: Arc<ServingStats>,
}

impl LayeredReader {
    pub fn new(
        online: Arc<dyn OnlineStore>,
        offline: Arc<OfflineHandle>,
        config: ServingConfig,
    ) -> Self {
        LayeredReader {
            online: OnlineReader::new(online.clone()),
            write_back: online,
            offline,
            config,
            flight: SingleFlight::new(),
            lookups: AtomicU64::new(0),
            keys_looked_up: AtomicU64::new(0),
            stats: Arc::new(ServingStats::default()),
        }
    }

    /// What this reader counted (shared by every store reloaded from the same one).
    pub fn stats(&self) -> &Arc<ServingStats> {
        &self.stats
    }

    /// (offline-layer calls, keys looked up in them) since the store was opened.
    pub fn offline_lookups(&self) -> (u64, u64) {
        (
            self.lookups.load(Ordering::Relaxed),
            self.keys_looked_up.load(Ordering::Relaxed),
        )
    }

    /// The offline layer's answers for `keys` at `at`, as a fallback would give them (what
    /// `quiver warm` loads): the offline store's latest rows, or computed derived features.
    pub async fn offline_answers(
        &self,
        catalog: &Catalog,
        view: &ServedView,
        keys: &[EntityKey],
        at: i64,
    ) -> Result<Vec<Option<Record>>> {
        let ctx = ReadContext {
            catalog,
            now: at,
            as_of: None,
            deadline: None,
        };
        self.lookup(view, keys, at, false, &ctx, None).await
    }

    fn policy<'v>(&'v self, view: &'v ServedView) -> &'v Fallback {
        view.definition
            .fallback
            .as_ref()
            .unwrap_or(&self.config.fallback)
    }

    /// The offline layer's answers for `keys` at `at` (single-flight per key).
    async fn offline_read(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        at: i64,
        point_in_time: bool,
        miss: bool,
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Lookup>> {
        let layer = match view.definition.is_derived() {
            true => Layer::Computed,
            false => Layer::Offline,
        };
        let started = std::time::Instant::now();
        let flight_keys: Vec<FlightKey> = keys
            .iter()
            .map(|k| {
                let when = point_in_time.then_some(at);
                (
                    view.definition.name.clone(),
                    view.table.version,
                    k.clone(),
                    when,
                )
            })
            .collect();
        let records = self
            .flight
            .run(&flight_keys, |led| async move {
                let keys: Vec<EntityKey> = led.into_iter().map(|(_, _, k, _)| k).collect();
                match miss {
                    true => self.lookup_coordinated(view, &keys, at, ctx).await,
                    false => {
                        let budget = Some(self.config.compute_budget);
                        self.lookup(view, &keys, at, point_in_time, ctx, budget)
                            .await
                    }
                }
            })
            .await;
        let stats = self.stats.view(&view.definition.name);
        stats.latency(layer, started.elapsed());
        let records = records.inspect_err(|e| stats.error(e.kind()))?;
        let found = records.iter().filter(|r| r.is_some()).count() as u64;
        stats.answered(layer, found, records.len() as u64 - found);
        Ok(records
            .into_iter()
            .map(|record| Lookup { record, layer })
            .collect())
    }

    /// One offline-layer call: the offline store's latest rows (plain views) or the features
    /// computed from the source within the budget (derived views).
    async fn lookup(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        at: i64,
        point_in_time: bool,
        ctx: &ReadContext<'_>,
        budget: Option<std::time::Duration>,
    ) -> Result<Vec<Option<Record>>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.keys_looked_up
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        if !view.definition.is_derived() {
            // Point in time follows the training-set rule (nothing older than the TTL); a
            // fallback for "now" keeps old rows so their status says OUTSIDE_MAX_AGE, as online.
            let ttl = point_in_time
                .then(|| view.table.ttl.map(quiver_offline::engine::window_ns))
                .flatten();
            let store = self.offline.get().await?;
            let started = std::time::Instant::now();
            let found = store.read_latest(&view.offline, keys, at, ttl).await;
            self.stats
                .store_operation(store.kind(), "read_latest", started.elapsed());
            return Ok(found?);
        }
        self.stats
            .view(&view.definition.name)
            .lazy_computations
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let resolved = ctx.catalog.source_of(&view.definition)?.clone();
        let definition = view.definition.clone();
        let owned = keys.to_vec();
        let work = tokio::task::spawn_blocking(move || {
            quiver_offline::engine::evaluate_at(
                &resolved.path,
                &resolved.source,
                &definition,
                &owned,
                at,
            )
        });
        let limit = budget.unwrap_or(std::time::Duration::MAX);
        let outcome = tokio::time::timeout(limit, work).await;
        self.stats
            .store_operation("source", "compute", started.elapsed());
        match outcome {
            Ok(joined) => {
                let records = joined
                    .map_err(|e| Error::Internal(format!("feature computation failed: {e}")))??;
                Ok(records.into_iter().map(Some).collect())
            }
            // Over budget: these rows are NOT_FOUND rather than slow. (The computation runs
            // on in the blocking pool; its result is dropped.)
            Err(_) => {
                tracing::warn!(
                    view = %view.definition.name,
                    keys = keys.len(),
                    budget = ?self.config.compute_budget,
                    "feature computation over budget"
                );
                Ok(vec![None; keys.len()])
            }
        }
    }

    /// Writes what the offline layer found back to the online store, off the request's path,
    /// then releases the cross-process locks taken for those keys (so another process waiting
    /// on them finds the value online).
    fn read_through(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        found: &[Option<Record>],
        release: Vec<(String, LockToken)>,
    ) {
        let rows: Vec<(EntityKey, Record)> = match self.config.read_through {
            true => keys
                .iter()
                .zip(found)
                .filter_map(|(k, r)| r.clone().map(|r| (k.clone(), r)))
                .collect(),
            false => Vec::new(),
        };
        if rows.is_empty() && release.is_empty() {
            return;
        }
        let (store, table) = (self.write_back.clone(), view.table.clone());
        let stats = self.stats.clone();
        tokio::spawn(async move {
            if !rows.is_empty() {
                let started = std::time::Instant::now();
                match store.write(&table, &rows).await {
                    Ok(summary) => {
                        stats.store_operation(store.kind(), "write", started.elapsed());
                        let view = stats.view(&table.view);
                        view.read_throughs
                            .fetch_add(rows.len() as u64, Ordering::Relaxed);
                        view.writes
                            .fetch_add(summary.written as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, view = %table.view, "read-through write failed")
                    }
                }
            }
            if let Some(locks) = store.shared_locks() {
                for (name, token) in release {
                    let _ = locks.unlock(&name, &token).await;
                }
            }
        });
    }

    /// A miss lookup coordinated across processes sharing the online store (Redis): per key,
    /// the process that takes the key's lock looks it up and writes it back; the others re-read
    /// the online store until that value lands, and look up themselves only if it does not
    /// within [`LOCK_WAIT`] (the holder went away). Stores without shared locks: a plain
    /// lookup and write-back.
    async fn lookup_coordinated(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        at: i64,
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Option<Record>>> {
        let budget = Some(self.config.compute_budget);
        let locks = match self.config.read_through {
            true => self.write_back.shared_locks(),
            false => None,
        };
        let Some(locks) = locks else {
            let found = self.lookup(view, keys, at, false, ctx, budget).await?;
            self.read_through(view, keys, &found, Vec::new());
            return Ok(found);
        };
        let mut mine: Vec<usize> = Vec::new();
        let mut held: Vec<(String, LockToken)> = Vec::new();
        let mut theirs: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let name = format!(
                "{}:v{}:{}",
                view.definition.name,
                view.table.version,
                key.storage_suffix()
            );
            match locks.try_lock(&name, LOCK_TTL).await {
                Ok(Some(token)) => {
                    mine.push(i);
                    held.push((name, token));
                }
                Ok(None) => theirs.push(i),
                // No coordination possible: look it up here.
                Err(_) => mine.push(i),
            }
        }
        let mut out: Vec<Option<Record>> = vec![None; keys.len()];
        if !mine.is_empty() {
            let led: Vec<EntityKey> = mine.iter().map(|&i| keys[i].clone()).collect();
            let found = match self.lookup(view, &led, at, false, ctx, budget).await {
                Ok(found) => found,
                Err(e) => {
                    self.read_through(view, &[], &[], held);
                    return Err(e);
                }
            };
            self.read_through(view, &led, &found, held);
            for (&i, r) in mine.iter().zip(found) {
                out[i] = r;
            }
        }
        if !theirs.is_empty() {
            let rest = self
                .await_other_process(view, keys, &theirs, &mut out, ctx)
                .await;
            if !rest.is_empty() {
                let led: Vec<EntityKey> = rest.iter().map(|&i| keys[i].clone()).collect();
                let found = self.lookup(view, &led, at, false, ctx, budget).await?;
                self.read_through(view, &led, &found, Vec::new());
                for (&i, r) in rest.iter().zip(found) {
                    out[i] = r;
                }
            }
        }
        Ok(out)
    }

    /// Re-reads the online store for the keys at `positions` (another process holds their
    /// locks) until their values land or [`LOCK_WAIT`] (or the request's deadline) passes;
    /// fills `out` and returns the positions still missing.
    async fn await_other_process(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        positions: &[usize],
        out: &mut [Option<Record>],
        ctx: &ReadContext<'_>,
    ) -> Vec<usize> {
        let mut until = tokio::time::Instant::now() + LOCK_WAIT;
        if let Some(deadline) = ctx.deadline {
            until = until.min(deadline);
        }
        let mut pending: Vec<usize> = positions.to_vec();
        while !pending.is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(LOCK_POLL).await;
            let ks: Vec<EntityKey> = pending.iter().map(|&i| keys[i].clone()).collect();
            let Ok(read) = self.write_back.read(&view.table, &ks).await else {
                break;
            };
            let mut still = Vec::new();
            for (&i, record) in pending.iter().zip(read) {
                match record {
                    Some(r) => out[i] = Some(r),
                    None => still.push(i),
                }
            }
            pending = still;
        }
        pending
    }
}

/// How long a miss lookup's cross-process lock is leased (it is released as soon as the value
/// is written back; the lease only matters if the holder dies).
const LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a process waits for another one's lookup before doing its own.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the waiting process re-reads the online store.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

#[async_trait]
impl FeatureReader for LayeredReader {
    async fn read(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Lookup>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let answers = self.read_layers(view, keys, ctx).await?;
        let newest = answers
            .iter()
            .filter_map(|a| a.record.as_ref().map(|r| r.event_ts))
            .max();
        if let Some(newest) = newest {
            self.stats.view(&view.definition.name).served(newest);
        }
        Ok(answers)
    }
}

impl LayeredReader {
    /// The online store, then the offline layer where the policy says.
    async fn read_layers(
        &self,
        view: &ServedView,
        keys: &[EntityKey],
        ctx: &ReadContext<'_>,
    ) -> Result<Vec<Lookup>> {
        if let Some(at) = ctx.as_of {
            return self.offline_read(view, keys, at, true, false, ctx).await;
        }
        let stats = self.stats.view(&view.definition.name);
        let policy = self.policy(view);
        let started = std::time::Instant::now();
        let online = self.online.read(view, keys, ctx).await;
        let took = started.elapsed();
        stats.latency(Layer::Online, took);
        self.stats
            .store_operation(self.write_back.kind(), "read", took);
        let mut answers = match online {
            Ok(answers) => answers,
            Err(e) if e.kind() == ErrorKind::Unavailable && policy.on(FallbackOn::Unavailable) => {
                tracing::debug!(error = %e, view = %view.definition.name, "online store unavailable; answering from the offline layer");
                stats.error(e.kind());
                stats
                    .fallbacks_unavailable
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
                // Nothing is written back: the online store is down.
                return self
                    .offline_read(view, keys, ctx.now, false, false, ctx)
                    .await;
            }
            Err(e) => {
                stats.error(e.kind());
                return Err(e);
            }
        };
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&i| answers[i].record.is_none())
            .collect();
        stats
            .hits
            .fetch_add((keys.len() - missing.len()) as u64, Ordering::Relaxed);
        stats
            .misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        if !policy.on(FallbackOn::Miss) || missing.is_empty() {
            return Ok(answers);
        }
        stats
            .fallbacks_miss
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        let missing_keys: Vec<EntityKey> = missing.iter().map(|&i| keys[i].clone()).collect();
        let found = self
            .offline_read(view, &missing_keys, ctx.now, false, true, ctx)
            .await?;
        // The last layer asked gives the answer, a miss included.
        for (&i, lookup) in missing.iter().zip(found) {
            answers[i] = lookup;
        }
        Ok(answers)
    }
}
