//! Serving statistics: per feature view and per layer, the counts a team asks of a cache (hits,
//! misses, fallbacks, read-throughs, lazy computations, writes, errors by kind) and latency
//! distributions, since start and over the last minute.
//!
//! Counting costs a few relaxed atomic adds per view per request: the hot path never takes a
//! lock once a view's entry exists. Latencies go into fixed-bucket histograms whose bounds
//! (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8 × 10^k µs) include Prometheus's usual ones, so the same
//! buckets render `/metrics` exactly and give quantiles within a bucket's width (≤ 50%, mostly
//! 20–25%). The last minute is the difference between now and a snapshot taken about a minute
//! ago: [`ServingStats::tick`] (the server calls it every few seconds) keeps a minute of them.
//! The stats outlive registry reloads: the store hands the same [`ServingStats`] on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::ErrorKind;
use crate::serving::Layer;

/// Upper bounds of the latency buckets, in ns; the last bucket is everything above.
const BOUNDS_NS: [u64; 80] = {
    const STEPS: [u64; 10] = [10, 15, 20, 25, 30, 40, 50, 60, 70, 80];
    let mut out = [0u64; 80];
    let mut k = 0;
    // Tenths of a µs, in ns: 10 → 1 µs.
    let mut scale = 100u64;
    while k < 8 {
        let mut i = 0;
        while i < 10 {
            out[k * 10 + i] = STEPS[i] * scale;
            i += 1;
        }
        scale *= 10;
        k += 1;
    }
    out
};
const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// The bucket bounds, in seconds, rendered as `le` on `/metrics`.
pub const PROMETHEUS_LE: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

/// A latency histogram with atomic buckets.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let ns = elapsed.as_nanos() as u64;
        // A value on a bound belongs to that bound's bucket (`le`).
        let i = BOUNDS_NS.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn minus(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| b.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }

    /// The `q` quantile, in seconds: the upper bound of the bucket it falls in (the largest
    /// finite bound for the overflow bucket). `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                let bound = BOUNDS_NS
                    .get(i)
                    .copied()
                    .unwrap_or(BOUNDS_NS[BOUNDS_NS.len() - 1]);
                return Some(bound as f64 / 1e9);
            }
        }
        None
    }

    /// Cumulative counts at the [`PROMETHEUS_LE`] bounds (each is one of the bucket bounds).
    pub fn cumulative_at_prometheus_bounds(&self) -> Vec<(f64, u64)> {
        PROMETHEUS_LE
            .iter()
            .map(|&le| {
                let ns = (le * 1e9).round() as u64;
                let upto = BOUNDS_NS.partition_point(|&b| b <= ns);
                (le, self.buckets[..upto].iter().sum())
            })
            .collect()
    }

    fn summary(&self) -> Option<LatencySummary> {
        let count = self.count();
        (count > 0).then(|| LatencySummary {
            count,
            mean_ms: self.sum_ns as f64 / count as f64 / 1e6,
            p50_ms: self.quantile(0.5).unwrap_or(0.0) * 1e3,
            p99_ms: self.quantile(0.99).unwrap_or(0.0) * 1e3,
        })
    }
}

/// Counters of one feature view.
#[derive(Default)]
pub struct ViewStats {
    /// Keys the online store had.
    pub hits: AtomicU64,
    /// Keys the online store did not have (before any fallback).
    pub misses: AtomicU64,
    /// Keys answered by the offline layer because the online store was unavailable.
    pub fallbacks_unavailable: AtomicU64,
    /// Keys looked up in the offline layer because the online store missed them.
    pub fallbacks_miss: AtomicU64,
    /// Keys written back to the online store after an offline-layer answer.
    pub read_throughs: AtomicU64,
    /// Keys of a derived view computed from its source at request time.
    pub lazy_computations: AtomicU64,
    /// Rows written to the online store (writes, materialization, read-through).
    pub writes: AtomicU64,
    /// Failed reads, by error kind (index: [`kind_index`]).
    errors: [AtomicU64; KINDS.len()],
    /// Read latency per layer (index: [`layer_index`]).
    latency: [Histogram; 3],
    /// Keys the offline and computed layers answered with a value, and without one (index:
    /// [`layer_index`]; the online layer's are `hits` and `misses`).
    found: [AtomicU64; 3],
    missing: [AtomicU64; 3],
    /// Newest event time among the values served, ns UTC (0: none yet).
    pub newest_served_ns: AtomicI64,
    /// Newest event time among rows written to the online store through this process
    /// (`/push`, `/write-to-online-store`), ns UTC (0: none yet): freshness counts it beside
    /// materializations.
    pub newest_written_ns: AtomicI64,
    /// Requests per feature (names fixed by the definitions; bounded).
    features: RwLock<HashMap<String, Arc<AtomicU64>>>,
}

const KINDS: [ErrorKind; 8] = [
    ErrorKind::InvalidArgument,
    ErrorKind::NotFound,
    ErrorKind::FailedPrecondition,
    ErrorKind::Unavailable,
    ErrorKind::Conflict,
    ErrorKind::PermissionDenied,
    ErrorKind::Config,
    ErrorKind::Internal,
];

fn kind_index(kind: ErrorKind) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

fn layer_index(layer: Layer) -> usize {
    match layer {
        Layer::Online => 0,
        Layer::Offline => 1,
        Layer::Computed => 2,
    }
}

const LAYERS: [Layer; 3] = [Layer::Online, Layer::Offline, Layer::Computed];

impl ViewStats {
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn latency(&self, layer: Layer, elapsed: Duration) {
        self.latency[layer_index(layer)].record(elapsed);
    }

    /// Counts what a second-layer lookup answered: keys with a value, keys without.
    pub fn answered(&self, layer: Layer, found: u64, missing: u64) {
        let i = layer_index(layer);
        self.found[i].fetch_add(found, Ordering::Relaxed);
        self.missing[i].fetch_add(missing, Ordering::Relaxed);
    }

    pub fn served(&self, newest_event_ns: i64) {
        self.newest_served_ns
            .fetch_max(newest_event_ns, Ordering::Relaxed);
    }

    /// Counts one request for each of `features` (one lock acquisition for all of them).
    pub fn requested<'f>(&self, features: impl IntoIterator<Item = &'f str>) {
        let mut new = Vec::new();
        {
            let known = self.features.read().unwrap_or_else(|p| p.into_inner());
            for f in features {
                match known.get(f) {
                    Some(c) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    None => new.push(f),
                }
            }
        }
        if !new.is_empty() {
            let mut known = self.features.write().unwrap_or_else(|p| p.into_inner());
            for f in new {
                known
                    .entry(f.to_string())
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> ViewSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ViewSnapshot {
            hits: load(&self.hits),
            misses: load(&self.misses),
            fallbacks_unavailable: load(&self.fallbacks_unavailable),
            fallbacks_miss: load(&self.fallbacks_miss),
            read_throughs: load(&self.read_throughs),
            lazy_computations: load(&self.lazy_computations),
            writes: load(&self.writes),
            errors: self.errors.iter().map(load).collect(),
            latency: self.latency.iter().map(Histogram::snapshot).collect(),
            found: {
                let mut f: Vec<u64> = self.found.iter().map(load).collect();
                f[0] = load(&self.hits);
                f
            },
            missing: {
                let mut m: Vec<u64> = self.missing.iter().map(load).collect();
                m[0] = load(&self.misses);
                m
            },
            features: self
                .features
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(f, c)| (f.clone(), c.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

/// One view's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub fallbacks_unavailable: u64,
    pub fallbacks_miss: u64,
    pub read_throughs: u64,
    pub lazy_computations: u64,
    pub writes: u64,
    /// Per [`ViewSnapshot::error_kinds`].
    pub errors: Vec<u64>,
    /// Online, offline, computed.
    pub latency: Vec<HistogramSnapshot>,
    /// Keys each layer answered with a value (online: the hits), in the order of `latency`.
    pub found: Vec<u64>,
    /// Keys each layer answered without a value (online: the misses).
    pub missing: Vec<u64>,
    pub features: BTreeMap<String, u64>,
}

impl ViewSnapshot {
    /// The error kinds, in the order of `errors`.
    pub fn error_kinds() -> impl Iterator<Item = &'static str> {
        KINDS.iter().map(|k| k.as_str())
    }

    /// The layers, in the order of `latency`.
    pub fn layers() -> impl Iterator<Item = &'static str> {
        LAYERS.iter().map(|l| l.as_str())
    }

    fn minus(&self, earlier: &ViewSnapshot) -> ViewSnapshot {
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        ViewSnapshot {
            hits: sub(self.hits, earlier.hits),
            misses: sub(self.misses, earlier.misses),
            fallbacks_unavailable: sub(self.fallbacks_unavailable, earlier.fallbacks_unavailable),
            fallbacks_miss: sub(self.fallbacks_miss, earlier.fallbacks_miss),
            read_throughs: sub(self.read_throughs, earlier.read_throughs),
            lazy_computations: sub(self.lazy_computations, earlier.lazy_computations),
            writes: sub(self.writes, earlier.writes),
            errors: self
                .errors
                .iter()
                .enumerate()
                .map(|(i, e)| sub(*e, earlier.errors.get(i).copied().unwrap_or(0)))
                .collect(),
            latency: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, h)| match earlier.latency.get(i) {
                    Some(e) => h.minus(e),
                    None => h.clone(),
                })
                .collect(),
            found: self
                .found
                .iter()
                .enumerate()
                .map(|(i, n)| sub(*n, earlier.found.get(i).copied().unwrap_or(0)))
                .collect(),
            missing: self
                .missing
                .iter()
                .enumerate()
                .map(|(i, n)| sub(*n, earlier.missing.get(i).copied().unwrap_or(0)))
                .collect(),
            features: self
                .features
                .iter()
                .map(|(f, c)| {
                    (
                        f.clone(),
                        sub(*c, earlier.features.get(f).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        }
    }

    fn report(&self) -> ViewReport {
        let looked_up = self.hits + self.misses;
        ViewReport {
            hits: self.hits,
            misses: self.misses,
            hit_rate: (looked_up > 0).then(|| self.hits as f64 / looked_up as f64),
            fallbacks: Fallbacks {
                unavailable: self.fallbacks_unavailable,
                miss: self.fallbacks_miss,
            },
            read_throughs: self.read_throughs,
            lazy_computations: self.lazy_computations,
            writes: self.writes,
            errors: Self::error_kinds()
                .zip(&self.errors)
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            layers: Self::layers()
                .enumerate()
                .filter_map(|(i, l)| {
                    let latency = self.latency.get(i)?.summary()?;
                    let hits = self.found.get(i).copied().unwrap_or(0);
                    let misses = self.missing.get(i).copied().unwrap_or(0);
                    Some((
                        l.to_string(),
                        LayerReport {
                            hits,
                            misses,
                            hit_rate: (hits + misses > 0)
                                .then(|| hits as f64 / (hits + misses) as f64),
                            calls: latency.count,
                            mean_ms: latency.mean_ms,
                            p50_ms: latency.p50_ms,
                            p99_ms: latency.p99_ms,
                        },
                    ))
                })
                .collect(),
        }
    }
}

/// Everything counted, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub views: BTreeMap<String, ViewSnapshot>,
    /// Store operation latencies by (backend, operation).
    pub stores: BTreeMap<(String, String), HistogramSnapshot>,
}

impl Snapshot {
    fn minus(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            views: self
                .views
                .iter()
                .map(|(v, s)| {
                    let d = match earlier.views.get(v) {
                        Some(e) => s.minus(e),
                        None => s.clone(),
                    };
                    (v.clone(), d)
                })
                .collect(),
            stores: self
                .stores
                .iter()
                .map(|(k, h)| {
                    let d = match earlier.stores.get(k) {
                        Some(e) => h.minus(e),
                        None => h.clone(),
                    };
                    (k.clone(), d)
                })
                .collect(),
        }
    }

    fn report(&self, seconds: f64) -> PeriodReport {
        let mut stores: BTreeMap<String, BTreeMap<String, LatencySummary>> = BTreeMap::new();
        for ((backend, op), h) in &self.stores {
            if let Some(s) = h.summary() {
                stores
                    .entry(backend.clone())
                    .or_default()
                    .insert(op.clone(), s);
            }
        }
        PeriodReport {
            seconds,
            views: self
                .views
                .iter()
                .map(|(v, s)| (v.clone(), s.report()))
                .collect(),
            stores,
        }
    }
}

/// Mean and quantiles of one latency distribution.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One layer of one view over one period.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerReport {
    /// Keys answered with a value.
    pub hits: u64,
    /// Keys answered without one.
    pub misses: u64,
    pub hit_rate: Option<f64>,
    /// Calls to the layer (one per view per request).
    pub calls: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Fallbacks {
    pub unavailable: u64,
    pub miss: u64,
}

/// One view over one period: what `/stats` and `quiver stats` show.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ViewReport {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses) in the online store; `None` without lookups.
    pub hit_rate: Option<f64>,
    pub fallbacks: Fallbacks,
    pub read_throughs: u64,
    pub lazy_computations: u64,
    pub writes: u64,
    /// Failed reads by error kind (kinds that occurred).
    pub errors: BTreeMap<String, u64>,
    /// Per layer asked (`online`, `offline`, `computed`): keys answered with and without a
    /// value, and the latency of its calls.
    pub layers: BTreeMap<String, LayerReport>,
}

/// All views over one period.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PeriodReport {
    /// The period's length.
    pub seconds: f64,
    pub views: BTreeMap<String, ViewReport>,
    /// Store operation latency by backend and operation.
    pub stores: BTreeMap<String, BTreeMap<String, LatencySummary>>,
}

/// Since start and over the last minute.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatsReport {
    pub since_start: PeriodReport,
    pub last_minute: PeriodReport,
}

/// How long a window [`ServingStats::report`] calls "the last minute".
const WINDOW: Duration = Duration::from_secs(60);

/// The process's serving statistics (see the module docs).
pub struct ServingStats {
    started: Instant,
    views: RwLock<HashMap<String, Arc<ViewStats>>>,
    stores: RwLock<HashMap<(&'static str, &'static str), Arc<Histogram>>>,
    /// Snapshots of the last minute, oldest first.
    history: Mutex<VecDeque<(Instant, Snapshot)>>,
}

impl Default for ServingStats {
    fn default() -> Self {
        ServingStats {
            started: Instant::now(),
            views: RwLock::default(),
            stores: RwLock::default(),
            history: Mutex::default(),
        }
    }
}

impl ServingStats {
    /// The counters of `view`, created on first use.
    pub fn view(&self, view: &str) -> Arc<ViewStats> {
        if let Some(s) = self
            .views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(view)
        {
            return s.clone();
        }
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(view.to_string())
            .or_default()
            .clone()
    }

    /// Records one store operation's latency (`backend`: `redis`, `embedded`, `parquet`, ...).
    pub fn store_operation(&self, backend: &'static str, operation: &'static str, took: Duration) {
        let key = (backend, operation);
        if let Some(h) = self
            .stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            h.record(took);
            return;
        }
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .record(took);
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            views: self
                .views
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(v, s)| (v.clone(), s.snapshot()))
                .collect(),
            stores: self
                .stores
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|((b, o), h)| ((b.to_string(), o.to_string()), h.snapshot()))
                .collect(),
        }
    }

    /// Keeps a snapshot for the last-minute window; call every few seconds.
    pub fn tick(&self) {
        let now = Instant::now();
        let snapshot = self.snapshot();
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.push_back((now, snapshot));
        // Keep the newest snapshot at least a minute old, and nothing older.
        while history.len() > 1 && now.duration_since(history[1].0) >= WINDOW {
            history.pop_front();
        }
    }

    /// Since start, and since the snapshot about a minute ago: the whole life while it is
    /// shorter than a minute (or no snapshot was kept).
    pub fn report(&self) -> StatsReport {
        let now = Instant::now();
        let current = self.snapshot();
        let uptime = now.duration_since(self.started).as_secs_f64();
        let young = now.duration_since(self.started) <= WINDOW;
        let (window_start, base) = if young {
            (None, None)
        } else {
            let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            // The newest snapshot at least a minute old, else the oldest one.
            let pick = history
                .iter()
                .rev()
                .find(|(t, _)| now.duration_since(*t) >= WINDOW)
                .or(history.front());
            match pick {
                Some((t, s)) => (Some(*t), Some(s.clone())),
                None => (None, None),
            }
        };
        let last_minute = match (window_start, base) {
            (Some(t), Some(base)) => current
                .minus(&base)
                .report(now.duration_since(t).as_secs_f64()),
            _ => current.report(uptime),
        };
        StatsReport {
            since_start: current.report(uptime),
            last_minute,
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_include_the_prometheus_buckets() {
        for le in PROMETHEUS_LE {
            let ns = (le * 1e9).round() as u64;
            assert!(BOUNDS_NS.contains(&ns), "{le}");
        }
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((BOUNDS_NS[0], BOUNDS_NS[79]), (1_000, 80_000_000_000));
    }

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        let h = Histogram::default();
        // 98 fast values (100 µs), 2 slow ones (40 ms).
        for _ in 0..98 {
            h.record(Duration::from_micros(100));
        }
        for _ in 0..2 {
            h.record(Duration::from_millis(40));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.quantile(0.5), Some(0.0001));
        assert_eq!(s.quantile(0.98), Some(0.0001));
        assert_eq!(s.quantile(0.99), Some(0.04));
        // Cumulative at the Prometheus bounds: 98 by 100 µs, all 100 by 50 ms.
        let cum = s.cumulative_at_prometheus_bounds();
        assert_eq!(cum[0], (0.00005, 0));
        assert_eq!(cum[1], (0.0001, 98));
        assert_eq!(cum[9], (0.05, 100));
        let summary = s.summary().unwrap();
        assert!((summary.mean_ms - (98.0 * 0.1 + 2.0 * 40.0) / 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_last_minute_is_the_difference_from_a_minute_ago() {
        let stats = ServingStats {
            started: Instant::now() - Duration::from_secs(120),
            ..ServingStats::default()
        };
        let v = stats.view("user_profile");
        v.hits.fetch_add(10, Ordering::Relaxed);
        v.misses.fetch_add(10, Ordering::Relaxed);
        // A snapshot "70 s ago".
        stats
            .history
            .lock()
            .unwrap()
            .push_back((Instant::now() - Duration::from_secs(70), stats.snapshot()));
        v.hits.fetch_add(9, Ordering::Relaxed);
        v.misses.fetch_add(1, Ordering::Relaxed);
        v.error(ErrorKind::Unavailable);
        v.requested(["age"]);
        let report = stats.report();
        let all = &report.since_start.views["user_profile"];
        assert_eq!((all.hits, all.misses), (19, 11));
        let minute = &report.last_minute.views["user_profile"];
        assert_eq!((minute.hits, minute.misses), (9, 1));
        assert_eq!(minute.hit_rate, Some(0.9));
        assert_eq!(minute.errors["unavailable"], 1);
        assert!(report.last_minute.seconds >= 70.0);
    }

    #[test]
    fn a_process_younger_than_a_minute_reports_its_whole_life() {
        let stats = ServingStats::default();
        stats.view("v").hits.fetch_add(3, Ordering::Relaxed);
        // A snapshot taken after the hits does not hide them from the last minute.
        stats.tick();
        let report = stats.report();
        assert_eq!(report.last_minute.views["v"].hits, 3);
    }

    #[test]
    fn tick_keeps_one_snapshot_older_than_the_window() {
        let stats = ServingStats::default();
        {
            let mut h = stats.history.lock().unwrap();
            for age in [200, 130, 65, 30] {
                h.push_back((
                    Instant::now() - Duration::from_secs(age),
                    Snapshot::default(),
                ));
            }
        }
        stats.tick();
        let h = stats.history.lock().unwrap();
        // 200 and 130 went; 65 s (the newest one past a minute) stays, then 30 s and now.
        assert_eq!(h.len(), 3);
    }
}
