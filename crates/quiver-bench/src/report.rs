//! The run's results, the targets of issue 3, and their markdown.
//!
//! [`Report::render`] is the section written between the `bench:begin`/`bench:end` markers of
//! `docs/benchmarks.md`; [`replace_section`] swaps it in and leaves everything else alone.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::machine::Machine;

pub const BEGIN: &str = "<!-- bench:begin -->";
pub const END: &str = "<!-- bench:end -->";

/// Entity rows × features of one online read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shape {
    pub entities: usize,
    pub features: usize,
}

/// The read shapes of issue 3.
pub const SHAPES: [Shape; 3] = [
    Shape {
        entities: 1,
        features: 50,
    },
    Shape {
        entities: 100,
        features: 50,
    },
    Shape {
        entities: 100,
        features: 250,
    },
];

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} × {}", self.entities, self.features)
    }
}

/// Which path a load row measured; the order is the row order within a load point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadPath {
    /// `GET`/`MGET` of the same values with a raw client: the limit.
    Raw,
    Http,
    Library,
    /// The library against a three-primary Redis Cluster.
    ClusterLibrary,
}

impl ReadPath {
    fn label(self, shape: Shape) -> String {
        match self {
            ReadPath::Raw if shape.entities == 1 => "raw Redis GET".into(),
            ReadPath::Raw => format!("raw Redis MGET {}", shape.entities),
            ReadPath::Http => "HTTP".into(),
            ReadPath::Library => "library".into(),
            ReadPath::ClusterLibrary => "library, Redis Cluster (3 primaries)".into(),
        }
    }
}

/// p50/p99/p99.9/max of a latency histogram in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            p50: histogram.value_at_quantile(0.50),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// One load point: a path, a shape, a concurrency.
#[derive(Clone, Debug)]
pub struct LoadRow {
    pub path: ReadPath,
    pub shape: Shape,
    pub concurrency: usize,
    pub per_second: f64,
    pub latency: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MaterializeRow {
    pub rows: u64,
    pub features: usize,
    /// Generating the Parquet source (not part of the rate).
    pub generate_seconds: f64,
    pub seconds: f64,
    pub used_memory_delta: i64,
    /// The bench process's RSS before materializing, and its peak while materializing.
    pub rss_before: Option<u64>,
    pub peak_rss: Option<u64>,
}

/// `FeatureStore::skew` over exported served-feature logs.
#[derive(Clone, Debug)]
pub struct SkewRow {
    pub rows: u64,
    pub features: usize,
    pub requests: u64,
    /// The whole `skew` call, and its parts: reading and decoding the logs, the join.
    pub seconds: f64,
    pub read_seconds: f64,
    pub join_seconds: f64,
    pub disagreements: u64,
    /// Making the logs (not part of the figure): serving them, exporting them.
    pub serve_seconds: f64,
    pub export_seconds: f64,
    /// The bench process's RSS before `skew`, and its peak while `skew` ran.
    pub rss_before: Option<u64>,
    pub peak_rss: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CodecRow {
    pub payload: &'static str,
    pub codec: &'static str,
    pub bytes: usize,
    pub encode_ns: f64,
    pub decode_ns: f64,
}

/// Redis memory of the 50-float32 view.
#[derive(Clone, Debug, Default)]
pub struct MemoryRow {
    pub raw_float_bytes: usize,
    pub value_bytes: f64,
    pub key_bytes: f64,
    pub memory_usage: f64,
    pub used_memory_per_entity: f64,
    pub entities: usize,
}

/// The feature server process's RSS around one 32-connection HTTP load point.
#[derive(Clone, Debug)]
pub struct RssRow {
    pub shape: Shape,
    pub concurrency: usize,
    pub before: u64,
    pub after: u64,
}

/// The offline store answering the fallback case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OfflineBackend {
    Parquet,
    Postgres,
}

impl OfflineBackend {
    pub fn label(self) -> &'static str {
        match self {
            OfflineBackend::Parquet => "Parquet",
            OfflineBackend::Postgres => "PostgreSQL",
        }
    }

    /// The p99 target for 100 × 50 at concurrency 1 with every read falling back, ms.
    pub fn p99_target_ms(self) -> f64 {
        match self {
            OfflineBackend::Parquet => 20.0,
            OfflineBackend::Postgres => 10.0,
        }
    }
}

/// One load point of the fallback case: library reads with Redis up (answered online) or
/// killed (every read answered by the offline store).
#[derive(Clone, Debug)]
pub struct FallbackRow {
    pub backend: OfflineBackend,
    pub redis_up: bool,
    pub load: LoadRow,
}

/// How the fallback case's offline history was built.
#[derive(Clone, Debug)]
pub struct FallbackSetup {
    pub backend: OfflineBackend,
    /// Rows `FeatureStore::build` wrote into the offline table.
    pub rows: u64,
    pub build_seconds: f64,
    /// What the offline store says the table is.
    pub table: String,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub redis: String,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub loads: Vec<LoadRow>,
    pub materialize: Option<MaterializeRow>,
    pub skew: Option<SkewRow>,
    pub codecs: Vec<CodecRow>,
    pub memory: Option<MemoryRow>,
    pub rss: Vec<RssRow>,
    /// The feature server process's `VmHWM` at the end of the HTTP case.
    pub server_peak_rss: Option<u64>,
    /// The bench process's own `VmHWM` at the end of the run.
    pub peak_rss: Option<u64>,
    pub soak: Option<SoakRow>,
    pub fallback: Vec<FallbackRow>,
    pub fallback_setups: Vec<FallbackSetup>,
    pub records: Vec<RecordsRow>,
}

/// One figure of the records case: a load point (requests and records per second) or a timed
/// run (records in seconds).
#[derive(Clone, Debug, Default)]
pub struct RecordsRow {
    pub what: String,
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub records_per_second: f64,
    /// Records of a timed run (0 for load points).
    pub records: u64,
    pub seconds: f64,
    pub latency: Option<Latency>,
    pub errors: u64,
}

/// The soak: HTTP at a fixed concurrency for minutes, the server's RSS sampled.
#[derive(Clone, Debug, Default)]
pub struct SoakRow {
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub concurrency: usize,
    pub per_second: f64,
    pub latency: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
    /// (seconds since the load started, `VmRSS` bytes).
    pub samples: Vec<(f64, u64)>,
    /// The server's `VmHWM` at the end.
    pub peak: Option<u64>,
}

impl SoakRow {
    /// `VmRSS` at the first sample after the warm-up, the largest sample, and the last.
    pub fn rss_points(&self) -> Option<(u64, u64, u64)> {
        let start = self
            .samples
            .iter()
            .find(|(t, _)| *t >= self.warmup_seconds)
            .or(self.samples.first())?
            .1;
        let max = self.samples.iter().map(|(_, r)| *r).max()?;
        let end = self.samples.last()?.1;
        Some((start, max, end))
    }

    pub fn rss_summary(&self) -> String {
        match self.rss_points() {
            Some((start, max, end)) => {
                format!("{} / {} / {}", fmt_mib(start), fmt_mib(max), fmt_mib(end))
            }
            None => "not sampled".into(),
        }
    }

    /// Growth from the first measured sample to the last, as a share of the first.
    pub fn growth(&self) -> Option<f64> {
        let (start, _, end) = self.rss_points()?;
        (start > 0).then(|| (end as f64 - start as f64) / start as f64)
    }
}

/// One target of issue 3 and whether this run met it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

impl Report {
    fn load(&self, path: ReadPath, shape: Shape, concurrency: usize) -> Option<&LoadRow> {
        self.loads
            .iter()
            .find(|r| r.path == path && r.shape == shape && r.concurrency == concurrency)
    }

    /// `row`'s throughput as a share of raw Redis at the same shape and concurrency.
    fn vs_raw(&self, row: &LoadRow) -> Option<f64> {
        if row.path == ReadPath::Raw {
            return None;
        }
        let raw = self.load(ReadPath::Raw, row.shape, row.concurrency)?;
        (raw.per_second > 0.0).then(|| row.per_second / raw.per_second)
    }

    /// The targets of issue 3, each with this run's figure.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let mut http = |shape: Shape, p99_ms: f64, min_rps: Option<f64>| {
            let rows: Vec<&LoadRow> = self
                .loads
                .iter()
                .filter(|r| r.path == ReadPath::Http && r.shape == shape)
                .collect();
            for r in rows {
                let p99 = r.latency.p99 as f64 / 1e6;
                let mut target = format!("HTTP {shape} c={}: p99 ≤ {p99_ms} ms", r.concurrency);
                let mut met = p99 <= p99_ms && r.errors == 0;
                if let Some(min) = min_rps {
                    target.push_str(&format!(" at ≥ {} req/s", min));
                    met &= r.per_second >= min;
                }
                out.push(Target {
                    target,
                    measured: format!(
                        "p99 {} ms at {} req/s",
                        fmt_ms(r.latency.p99),
                        fmt_count(r.per_second)
                    ),
                    met: Some(met),
                });
            }
        };
        http(SHAPES[0], 0.5, None);
        http(SHAPES[1], 2.0, None);
        http(SHAPES[2], 8.0, Some(300.0));
        for r in self
            .loads
            .iter()
            .filter(|r| r.path == ReadPath::Http && r.shape == SHAPES[0])
        {
            if let Some(ratio) = self.vs_raw(r) {
                out.push(Target {
                    target: format!(
                        "HTTP {} c={}: ≥ 50% of raw Redis GET req/s",
                        r.shape, r.concurrency
                    ),
                    measured: fmt_pct(ratio),
                    met: Some(ratio >= 0.5),
                });
            }
        }
        if let Some(m) = &self.materialize {
            let rate = m.rows as f64 / m.seconds;
            out.push(Target {
                target: "materialize ≥ 100,000 rows/s".into(),
                measured: format!(
                    "{} rows/s ({} rows)",
                    fmt_count(rate),
                    fmt_count(m.rows as f64)
                ),
                met: Some(rate >= 100_000.0),
            });
        }
        if let Some(k) = &self.skew {
            out.push(Target {
                target: "skew over 1M logged rows × 20 features ≤ 30 s".into(),
                measured: format!(
                    "{:.1} s ({} rows × {})",
                    k.seconds,
                    fmt_count(k.rows as f64),
                    k.features
                ),
                // The target is stated for a million rows; a smaller run proves nothing.
                met: (k.rows >= 1_000_000 && k.features >= 20).then_some(k.seconds <= 30.0),
            });
        }
        for c in self
            .codecs
            .iter()
            .filter(|c| c.payload == VECTOR_PAYLOAD && c.codec == "msgpack")
        {
            let worst = c.encode_ns.max(c.decode_ns);
            out.push(Target {
                target: "codec ≤ 2 µs each way, 384-dim vector (MessagePack, the default)".into(),
                measured: format!(
                    "encode {} ns, decode {} ns",
                    fmt_count(c.encode_ns),
                    fmt_count(c.decode_ns)
                ),
                met: Some(worst <= 2_000.0),
            });
        }
        if let Some(m) = &self.memory {
            out.push(Target {
                target: "Redis bytes per entity as low as the record format allows".into(),
                measured: format!(
                    "{:.0} B per entity (`MEMORY USAGE`) for {} B of floats; value {:.0} B",
                    m.memory_usage, m.raw_float_bytes, m.value_bytes
                ),
                met: None,
            });
        }
        if !self.rss.is_empty() {
            let worst = self
                .rss
                .iter()
                .map(|r| r.after.max(r.before))
                .max()
                .unwrap_or(0);
            out.push(Target {
                target: "server RSS ≤ 64 MB (MiB) under the 32-connection load".into(),
                measured: format!(
                    "{} (server process, max before/after a 32-connection point)",
                    fmt_mib(worst)
                ),
                met: Some(worst <= 64 * 1024 * 1024),
            });
        }
        match &self.soak {
            Some(soak) => {
                let (start, max, end) = soak.rss_points().unwrap_or_default();
                let growth = soak.growth().unwrap_or(0.0);
                out.push(Target {
                    target: format!(
                        "server RSS flat over a {} run (and ≤ 64 MB)",
                        if soak.seconds >= 60.0 && soak.seconds % 60.0 == 0.0 {
                            format!("{}-minute", soak.seconds / 60.0)
                        } else {
                            format!("{} s", soak.seconds)
                        }
                    ),
                    measured: format!(
                        "start {} / max {} / end {} ({:+.1}% start to end), {} req/s, {} errors",
                        fmt_mib(start),
                        fmt_mib(max),
                        fmt_mib(end),
                        growth * 100.0,
                        fmt_count(soak.per_second),
                        soak.errors
                    ),
                    // "Flat": within 10% from the first measured sample to the last.
                    met: Some(
                        soak.seconds >= 600.0
                            && growth.abs() <= 0.10
                            && max <= 64 * 1024 * 1024
                            && soak.errors == 0,
                    ),
                });
            }
            None if !self.rss.is_empty() => out.push(Target {
                target: "server RSS flat over a 10-minute run".into(),
                measured: "not measured in this run (`--soak-seconds 600`)".into(),
                met: None,
            }),
            None => {}
        }
        out
    }

    fn fallback_row(
        &self,
        backend: OfflineBackend,
        redis_up: bool,
        shape: Shape,
        concurrency: usize,
    ) -> Option<&FallbackRow> {
        self.fallback.iter().find(|r| {
            r.backend == backend
                && r.redis_up == redis_up
                && r.load.shape == shape
                && r.load.concurrency == concurrency
        })
    }

    /// A Redis-killed row's throughput as a share of the Redis-up row of the same backend,
    /// shape and concurrency.
    fn vs_redis_up(&self, row: &FallbackRow) -> Option<f64> {
        if row.redis_up {
            return None;
        }
        let up = self.fallback_row(row.backend, true, row.load.shape, row.load.concurrency)?;
        (up.load.per_second > 0.0).then(|| row.load.per_second / up.load.per_second)
    }

    /// The fallback targets, each with this run's figure: the p99 of 100 × 50 at concurrency 1
    /// with every read falling back (per offline store), and the fallback's throughput next to
    /// the normal path's (no target: reported).
    pub fn fallback_targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for backend in [OfflineBackend::Postgres, OfflineBackend::Parquet] {
            let target_ms = backend.p99_target_ms();
            let Some(r) = self.fallback_row(backend, false, SHAPES[1], 1) else {
                continue;
            };
            let p99 = r.load.latency.p99 as f64 / 1e6;
            out.push(Target {
                target: format!(
                    "fallback from {} (Redis killed), {} c=1: p99 ≤ {target_ms} ms",
                    backend.label(),
                    SHAPES[1]
                ),
                measured: format!(
                    "p99 {} ms (p50 {}, p99.9 {}), {} errors",
                    fmt_ms(r.load.latency.p99),
                    fmt_ms(r.load.latency.p50),
                    fmt_ms(r.load.latency.p999),
                    r.load.errors
                ),
                met: Some(p99 <= target_ms && r.load.errors == 0),
            });
        }
        let mut down: Vec<&FallbackRow> = self
            .fallback
            .iter()
            .filter(|r| !r.redis_up && r.load.concurrency > 1)
            .collect();
        down.sort_by_key(|r| (r.backend, r.load.shape, r.load.concurrency));
        for r in down {
            let Some(ratio) = self.vs_redis_up(r) else {
                continue;
            };
            let up = self
                .fallback_row(r.backend, true, r.load.shape, r.load.concurrency)
                .map_or(0.0, |u| u.load.per_second);
            out.push(Target {
                target: format!(
                    "fallback throughput from {}, {} c={}: share of the normal path (Redis up)",
                    r.backend.label(),
                    r.load.shape,
                    r.load.concurrency
                ),
                measured: format!(
                    "{} ({} vs {} req/s)",
                    fmt_pct(ratio),
                    fmt_count(r.load.per_second),
                    fmt_count(up)
                ),
                met: None,
            });
        }
        out
    }

    /// The markdown section for `docs/benchmarks.md` (and stdout).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "Command: `{}`  ", self.command);
        let _ = writeln!(s, "Date: {}  ", self.date);
        let _ = writeln!(s, "Machine: `{}`  ", m.uname);
        let _ = writeln!(
            s,
            "CPU: {} × {}, memory {}; Redis {} ({})  ",
            m.nproc, m.cpu_model, m.memory, m.redis_version, self.redis
        );
        let _ = writeln!(
            s,
            "Load average (1/5/15 min) at start: {}, at end: {}  ",
            m.loadavg_start, m.loadavg_end
        );
        let _ = writeln!(
            s,
            "Each load point: {} s warm-up, then {} s measured; closed loop, one keep-alive \
             connection per task; latencies in ms.\n",
            self.warmup_seconds, self.duration_seconds
        );

        if !self.loads.is_empty() {
            let mut loads: Vec<&LoadRow> = self.loads.iter().collect();
            loads.sort_by_key(|r| (r.shape, r.concurrency, r.path));
            let rows: Vec<Vec<String>> = loads
                .iter()
                .map(|r| {
                    vec![
                        r.shape.to_string(),
                        r.path.label(r.shape),
                        r.concurrency.to_string(),
                        fmt_count(r.per_second),
                        fmt_ms(r.latency.p50),
                        fmt_ms(r.latency.p99),
                        fmt_ms(r.latency.p999),
                        fmt_ms(r.latency.max),
                        self.vs_raw(r).map(fmt_pct).unwrap_or_default(),
                        r.errors.to_string(),
                    ]
                })
                .collect();
            s.push_str("#### Online reads\n\n");
            s.push_str(&markdown_table(
                &[
                    "entities × features",
                    "path",
                    "conc.",
                    "req/s",
                    "p50",
                    "p99",
                    "p99.9",
                    "max",
                    "vs raw",
                    "errors",
                ],
                2,
                &rows,
            ));
            for r in self.loads.iter().filter(|r| r.first_error.is_some()) {
                let _ = writeln!(
                    s,
                    "\nFirst error of {} {} c={}: {}",
                    r.path.label(r.shape),
                    r.shape,
                    r.concurrency,
                    r.first_error.as_deref().unwrap_or_default()
                );
            }
            s.push('\n');
        }

        if let Some(mr) = &self.materialize {
            s.push_str("#### Materialization into Redis\n\n");
            s.push_str(&markdown_table(
                &[
                    "rows × float32",
                    "seconds",
                    "rows/s",
                    "used_memory / entity",
                    "bench process RSS before / peak while materializing",
                    "(generating the Parquet source)",
                ],
                1,
                &[vec![
                    format!("{} × {}", fmt_count(mr.rows as f64), mr.features),
                    format!("{:.2}", mr.seconds),
                    fmt_count(mr.rows as f64 / mr.seconds),
                    format!("{:.0} B", mr.used_memory_delta as f64 / mr.rows as f64),
                    format!(
                        "{} / {}",
                        mr.rss_before.map(fmt_mib).unwrap_or_else(|| "?".into()),
                        mr.peak_rss.map(fmt_mib).unwrap_or_else(|| "?".into())
                    ),
                    format!("{:.2} s", mr.generate_seconds),
                ]],
            ));
            s.push('\n');
        }

        if let Some(k) = &self.skew {
            s.push_str("#### Online/offline skew (`FeatureStore::skew`)\n\n");
            s.push_str(&markdown_table(
                &[
                    "logged rows × float32",
                    "requests",
                    "seconds",
                    "rows/s",
                    "reading the logs / point-in-time join",
                    "disagreements",
                    "(serving and logging / exporting the logs)",
                    "bench process RSS before / peak while comparing",
                ],
                1,
                &[vec![
                    format!("{} × {}", fmt_count(k.rows as f64), k.features),
                    fmt_count(k.requests as f64),
                    format!("{:.2}", k.seconds),
                    fmt_count(k.rows as f64 / k.seconds),
                    format!("{:.2} s / {:.2} s", k.read_seconds, k.join_seconds),
                    k.disagreements.to_string(),
                    format!("{:.1} s / {:.1} s", k.serve_seconds, k.export_seconds),
                    format!(
                        "{} / {}",
                        k.rss_before.map(fmt_mib).unwrap_or_else(|| "?".into()),
                        k.peak_rss.map(fmt_mib).unwrap_or_else(|| "?".into())
                    ),
                ]],
            ));
            s.push('\n');
        }

        if !self.codecs.is_empty() {
            s.push_str("#### Record codec (compression off)\n\n");
            let rows: Vec<Vec<String>> = self
                .codecs
                .iter()
                .map(|c| {
                    vec![
                        c.payload.to_string(),
                        c.codec.to_string(),
                        c.bytes.to_string(),
                        fmt_count(c.encode_ns),
                        fmt_count(c.decode_ns),
                    ]
                })
                .collect();
            s.push_str(&markdown_table(
                &["payload", "codec", "bytes", "encode ns", "decode ns"],
                2,
                &rows,
            ));
            s.push('\n');
        }

        if let Some(soak) = &self.soak {
            s.push_str("#### Soak (feature server RSS under load)\n\n");
            let _ = writeln!(
                s,
                "{} connections, {} s measured after {} s warm-up, requests of the three shapes \
                 interleaved; {} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, {} errors{}. \
                 Server `VmRSS` sampled every ~{} s; `VmHWM` at the end: {}.\n",
                soak.concurrency,
                soak.seconds,
                soak.warmup_seconds,
                fmt_count(soak.per_second),
                fmt_ms(soak.latency.p50),
                fmt_ms(soak.latency.p99),
                fmt_ms(soak.latency.p999),
                soak.errors,
                soak.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                soak.samples
                    .windows(2)
                    .next()
                    .map_or(0.0, |w| (w[1].0 - w[0].0).round()),
                soak.peak.map(fmt_mib).unwrap_or_else(|| "unknown".into()),
            );
            // At most ~13 rows: every n-th sample and the last.
            let step = soak.samples.len().div_ceil(12).max(1);
            let mut rows: Vec<Vec<String>> = soak
                .samples
                .iter()
                .step_by(step)
                .map(|(t, rss)| vec![format!("{t:.0}"), fmt_mib(*rss)])
                .collect();
            if let Some((t, rss)) = soak.samples.last()
                && (soak.samples.len() - 1) % step != 0
            {
                rows.push(vec![format!("{t:.0}"), fmt_mib(*rss)]);
            }
            s.push_str(&markdown_table(&["seconds", "server VmRSS"], 1, &rows));
            s.push('\n');
        }

        if !self.records.is_empty() {
            s.push_str("#### Records\n\n");
            s.push_str(
                "Its own `redis-server` with `appendonly yes` and `appendfsync always` (an \
                 accepted record survives a Redis crash), a feature server process, the namespace \
                 `events` (`user_id` int64, `amount` float64); the PostgreSQL export from a second \
                 project on the same Redis. Serving rows: `POST /get-online-features` 1 × 50 \
                 through a feature service without and with `logging: {sample_rate: 1.0}`.\n\n",
            );
            let rows: Vec<Vec<String>> = self
                .records
                .iter()
                .map(|r| {
                    vec![
                        r.what.clone(),
                        r.concurrency.to_string(),
                        if r.requests_per_second > 0.0 {
                            fmt_count(r.requests_per_second)
                        } else {
                            String::new()
                        },
                        if r.records_per_second > 0.0 {
                            fmt_count(r.records_per_second)
                        } else {
                            String::new()
                        },
                        if r.records > 0 {
                            format!("{} in {:.2} s", fmt_count(r.records as f64), r.seconds)
                        } else {
                            String::new()
                        },
                        r.latency
                            .as_ref()
                            .map(|l| fmt_ms(l.p99))
                            .unwrap_or_default(),
                        r.errors.to_string(),
                    ]
                })
                .collect();
            s.push_str(&markdown_table(
                &[
                    "what",
                    "concurrency",
                    "requests/s",
                    "records/s",
                    "timed run",
                    "p99 ms",
                    "errors",
                ],
                1,
                &rows,
            ));
            let rate = |needle: &str| -> Vec<f64> {
                self.records
                    .iter()
                    .filter(|r| r.what.contains(needle))
                    .map(|r| r.requests_per_second)
                    .collect()
            };
            let (plain, logged) = (rate("through `plain`"), rate("through `logged`"));
            if !plain.is_empty() && plain.len() == logged.len() {
                let p: f64 = plain.iter().sum::<f64>() / plain.len() as f64;
                let l: f64 = logged.iter().sum::<f64>() / logged.len() as f64;
                if p > 0.0 {
                    let _ = writeln!(
                        s,
                        "\nLogging at sample_rate 1.0: {} of the unlogged throughput (mean of the rounds; overhead {}).",
                        fmt_pct(l / p),
                        fmt_pct(1.0 - l / p)
                    );
                }
            }
            s.push('\n');
        }

        if !self.fallback.is_empty() {
            s.push_str("#### Fallback (second layer)\n\n");
            s.push_str(
                "Library reads (`FeatureStore::get_online_features`) of a project with \
                 `serving: {fallback: {layer: offline, on: [unavailable, miss]}}` and \
                 `resilience: {timeout: 150ms, retries: 1, breaker_failures: 3, \
                 breaker_cooldown: 1s}`, its own `redis-server` and the same 10,000 entities × 50 \
                 float32 in Redis (materialized) and in the offline store (`FeatureStore::build`). \
                 *Redis up*: answered online; *killed*: `redis-server` SIGKILLed, every response \
                 checked to be answered by the offline layer (`layer_summary() == \"offline\"`) \
                 with every value PRESENT.\n\n",
            );
            if !self.fallback_setups.is_empty() {
                let rows: Vec<Vec<String>> = self
                    .fallback_setups
                    .iter()
                    .map(|f| {
                        vec![
                            f.backend.label().to_string(),
                            f.table.clone(),
                            fmt_count(f.rows as f64),
                            format!("{:.2}", f.build_seconds),
                        ]
                    })
                    .collect();
                s.push_str(&markdown_table(
                    &["offline store", "table", "rows built", "build seconds"],
                    2,
                    &rows,
                ));
                s.push('\n');
            }
            let mut rows: Vec<&FallbackRow> = self.fallback.iter().collect();
            rows.sort_by_key(|r| {
                (
                    r.backend,
                    r.load.shape,
                    r.load.concurrency,
                    std::cmp::Reverse(r.redis_up),
                )
            });
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.backend.label().to_string(),
                        r.load.shape.to_string(),
                        if r.redis_up {
                            "up (online)".into()
                        } else {
                            "killed (offline)".into()
                        },
                        r.load.concurrency.to_string(),
                        fmt_count(r.load.per_second),
                        fmt_ms(r.load.latency.p50),
                        fmt_ms(r.load.latency.p99),
                        fmt_ms(r.load.latency.p999),
                        fmt_ms(r.load.latency.max),
                        self.vs_redis_up(r).map(fmt_pct).unwrap_or_default(),
                        r.load.errors.to_string(),
                    ]
                })
                .collect();
            s.push_str(&markdown_table(
                &[
                    "offline store",
                    "entities × features",
                    "Redis",
                    "conc.",
                    "req/s",
                    "p50",
                    "p99",
                    "p99.9",
                    "max",
                    "vs Redis up",
                    "errors",
                ],
                3,
                &table,
            ));
            for r in rows.iter().filter(|r| r.load.first_error.is_some()) {
                let _ = writeln!(
                    s,
                    "\nFirst error of {} {} c={} (Redis {}): {}",
                    r.backend.label(),
                    r.load.shape,
                    r.load.concurrency,
                    if r.redis_up { "up" } else { "killed" },
                    r.load.first_error.as_deref().unwrap_or_default()
                );
            }
            s.push('\n');
            let targets = self.fallback_targets();
            if !targets.is_empty() {
                s.push_str("#### Fallback targets\n\n");
                s.push_str(&markdown_table(
                    &["target", "measured", "met"],
                    3,
                    &target_rows(targets),
                ));
                s.push('\n');
            }
        }

        if self.memory.is_some() || !self.rss.is_empty() {
            s.push_str("#### Memory\n\n");
            let mut rows = Vec::new();
            if let Some(mem) = &self.memory {
                rows.push(vec![
                    "raw float data per entity (50 × 4 B)".into(),
                    format!("{} B", mem.raw_float_bytes),
                ]);
                rows.push(vec![
                    "Redis value (record) per entity, `STRLEN`".into(),
                    format!("{:.0} B", mem.value_bytes),
                ]);
                rows.push(vec![
                    "Redis key per entity".into(),
                    format!("{:.0} B", mem.key_bytes),
                ]);
                rows.push(vec![
                    "`MEMORY USAGE` per key (mean of samples)".into(),
                    format!("{:.0} B", mem.memory_usage),
                ]);
                rows.push(vec![
                    format!(
                        "`INFO memory` used_memory growth / entity ({} entities)",
                        fmt_count(mem.entities as f64)
                    ),
                    format!("{:.0} B", mem.used_memory_per_entity),
                ]);
            }
            for r in &self.rss {
                rows.push(vec![
                    format!(
                        "feature server process RSS before / after HTTP {} c={}",
                        r.shape, r.concurrency
                    ),
                    format!("{} / {}", fmt_mib(r.before), fmt_mib(r.after)),
                ]);
            }
            if let Some(peak) = self.server_peak_rss {
                rows.push(vec![
                    "feature server process peak RSS (VmHWM) after the HTTP case".into(),
                    fmt_mib(peak),
                ]);
            }
            if let Some(peak) = self.peak_rss {
                rows.push(vec![
                    "bench process peak RSS (VmHWM) at the end of the run (load generator, \
                     library case, materialization)"
                        .into(),
                    fmt_mib(peak),
                ]);
            }
            s.push_str(&markdown_table(&["what", "size"], 1, &rows));
            s.push('\n');
        }

        let targets = self.targets();
        if !targets.is_empty() {
            s.push_str("#### Targets (issue 3)\n\n");
            s.push_str(&markdown_table(
                &["target", "measured", "met"],
                3,
                &target_rows(targets),
            ));
        }
        s
    }
}

/// Targets as table rows: target, measured, met / **not met** / —.
fn target_rows(targets: Vec<Target>) -> Vec<Vec<String>> {
    targets
        .into_iter()
        .map(|t| {
            vec![
                t.target,
                t.measured,
                match t.met {
                    Some(true) => "met".into(),
                    Some(false) => "**not met**".into(),
                    None => "—".into(),
                },
            ]
        })
        .collect()
}

/// The payload name of the vector codec case.
pub const VECTOR_PAYLOAD: &str = "384-dim float32 vector";

/// A markdown table; the first `left` columns are left-aligned, the rest right-aligned.
pub fn markdown_table(headers: &[&str], left: usize, rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    s.push('|');
    for h in headers {
        let _ = write!(s, " {h} |");
    }
    s.push_str("\n|");
    for i in 0..headers.len() {
        s.push_str(if i < left { "---|" } else { "---:|" });
    }
    s.push('\n');
    for row in rows {
        s.push('|');
        for cell in row {
            let _ = write!(s, " {} |", cell.replace('|', "\\|"));
        }
        s.push('\n');
    }
    s
}

/// Nanoseconds as milliseconds with three decimals (µs resolution).
pub fn fmt_ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// A count rounded to an integer, with thousands separators.
pub fn fmt_count(value: f64) -> String {
    let n = value.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_pct(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

/// Bytes as MiB with one decimal.
pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `body`; without the markers,
/// the section is appended.
pub fn replace_section(doc: &str, body: &str) -> String {
    let section = format!("{BEGIN}\n{}\n{END}", body.trim_end());
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &doc[..b], &doc[e + END.len()..])
        }
        _ => {
            let mut out = doc.trim_end().to_string();
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&section);
            out.push('\n');
            out
        }
    }
}

/// Writes `body` into the marked section of the markdown file at `path` (created if missing).
pub fn write_section(path: &Path, body: &str) -> anyhow::Result<()> {
    let doc = match std::fs::read_to_string(path) {
        Ok(doc) => doc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e.into()),
    };
    std::fs::write(path, replace_section(&doc, body))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_histogram() {
        let mut h = crate::load::new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::of(&h);
        // 3 significant digits: within 0.1% of the exact rank.
        assert!((l.p50 as f64 - 500_000.0).abs() <= 500.0, "{l:?}");
        assert!((l.p99 as f64 - 990_000.0).abs() <= 1_000.0, "{l:?}");
        assert!((l.p999 as f64 - 999_000.0).abs() <= 1_000.0, "{l:?}");
        assert_eq!(fmt_ms(l.p50).len(), "0.500".len());
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ms(123_456), "0.123");
        assert_eq!(fmt_ms(2_500_000), "2.500");
        assert_eq!(fmt_count(0.4), "0");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_count(1_234_567.6), "1,234,568");
        assert_eq!(fmt_pct(0.456), "46%");
        assert_eq!(fmt_mib(64 * 1024 * 1024), "64.0 MiB");
    }

    #[test]
    fn table_aligns_and_escapes() {
        let t = markdown_table(&["a", "b"], 1, &[vec!["x|y".into(), "1".into()]]);
        assert_eq!(t, "| a | b |\n|---|---:|\n| x\\|y | 1 |\n");
    }

    #[test]
    fn section_is_replaced_and_notes_survive() {
        let doc = format!("# B\n\nintro\n\n{BEGIN}\nold\n{END}\n\n## Observations\nkeep\n");
        let out = replace_section(&doc, "new table\n");
        assert_eq!(
            out,
            format!("# B\n\nintro\n\n{BEGIN}\nnew table\n{END}\n\n## Observations\nkeep\n")
        );
        assert_eq!(replace_section(&out, "new table"), out);
        let appended = replace_section("# B\n", "t");
        assert_eq!(appended, format!("# B\n\n{BEGIN}\nt\n{END}\n"));
    }

    #[test]
    fn soak_reports_start_max_end_and_growth() {
        let mib = 1024 * 1024;
        let soak = SoakRow {
            seconds: 600.0,
            warmup_seconds: 2.0,
            concurrency: 32,
            per_second: 1000.0,
            samples: vec![
                (0.0, 10 * mib),
                (10.0, 40 * mib),
                (20.0, 50 * mib),
                (600.0, 44 * mib),
            ],
            ..SoakRow::default()
        };
        assert_eq!(soak.rss_points(), Some((40 * mib, 50 * mib, 44 * mib)));
        assert!((soak.growth().unwrap() - 0.1).abs() < 1e-9);
        let report = Report {
            soak: Some(soak.clone()),
            ..Report::default()
        };
        let target = report.targets().pop().unwrap();
        assert_eq!(target.met, Some(true), "{target:?}");
        let grown = Report {
            soak: Some(SoakRow {
                samples: vec![(2.0, 40 * mib), (600.0, 60 * mib)],
                ..soak
            }),
            ..Report::default()
        };
        assert_eq!(grown.targets().pop().unwrap().met, Some(false));
        assert!(
            grown.render().contains("| 600 | 60.0 MiB |"),
            "{}",
            grown.render()
        );
    }

    #[test]
    fn fallback_targets_and_share_of_the_normal_path() {
        let row = |backend, redis_up, shape, concurrency, rps, p99_ms: f64| FallbackRow {
            backend,
            redis_up,
            load: LoadRow {
                path: ReadPath::Library,
                shape,
                concurrency,
                per_second: rps,
                latency: Latency {
                    p50: (p99_ms * 5e5) as u64,
                    p99: (p99_ms * 1e6) as u64,
                    p999: (p99_ms * 1e6) as u64,
                    max: (p99_ms * 1e6) as u64,
                },
                errors: 0,
                first_error: None,
            },
        };
        let (pg, pq) = (OfflineBackend::Postgres, OfflineBackend::Parquet);
        let report = Report {
            fallback: vec![
                row(pg, false, SHAPES[1], 1, 200.0, 12.0),
                row(pq, false, SHAPES[1], 1, 300.0, 19.0),
                row(pq, true, SHAPES[1], 8, 8_000.0, 2.0),
                row(pq, false, SHAPES[1], 8, 2_000.0, 9.0),
            ],
            ..Report::default()
        };
        let targets = report.fallback_targets();
        assert_eq!(targets.len(), 3, "{targets:?}");
        assert!(targets[0].target.contains("PostgreSQL"), "{targets:?}");
        assert_eq!(targets[0].met, Some(false));
        assert_eq!(targets[1].met, Some(true));
        assert_eq!(targets[2].measured, "25% (2,000 vs 8,000 req/s)");
        assert_eq!(targets[2].met, None);
        let rendered = report.render();
        assert!(
            rendered.contains(
                "| Parquet | 100 × 50 | killed (offline) | 8 | 2,000 | 4.500 | 9.000 | 9.000 | \
                 9.000 | 25% | 0 |"
            ),
            "{rendered}"
        );
        assert!(rendered.contains("#### Fallback targets"), "{rendered}");
        assert!(!rendered.contains("#### Targets (issue 3)"), "{rendered}");
    }

    #[test]
    fn targets_and_ratios() {
        let row = |path, rps, p99| LoadRow {
            path,
            shape: SHAPES[0],
            concurrency: 8,
            per_second: rps,
            latency: Latency {
                p50: p99 / 2,
                p99,
                p999: p99,
                max: p99,
            },
            errors: 0,
            first_error: None,
        };
        let report = Report {
            loads: vec![
                row(ReadPath::Raw, 40_000.0, 300_000),
                row(ReadPath::Http, 10_000.0, 400_000),
            ],
            ..Report::default()
        };
        let targets = report.targets();
        assert_eq!(targets[0].met, Some(true), "{targets:?}");
        assert_eq!(targets[1].measured, "25%");
        assert_eq!(targets[1].met, Some(false));
        let rendered = report.render();
        assert!(
            rendered.contains(
                "| 1 × 50 | HTTP | 8 | 10,000 | 0.200 | 0.400 | 0.400 | 0.400 | 25% | 0 |"
            ),
            "{rendered}"
        );
        assert!(rendered.contains("**not met**"));
    }
}
