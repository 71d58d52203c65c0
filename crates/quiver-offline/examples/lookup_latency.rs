//! Latency of `OfflineStore::read_latest`, the serving fallback behind the online store.
//!
//! Fills one table (default 100k entities × 10 events, one a day, 50 float32 features) in the
//! Parquet store and in PostgreSQL (a throwaway server from `quiver-test-utils`, on 127.0.0.1),
//! then times lookups of 1 and of 100 random keys at random `as_of` times inside the history
//! (half of them with a 3-day TTL), and prints p50/p99/max per backend.
//!
//! ```text
//! CARGO_BUILD_JOBS=1 cargo run --release -p quiver-offline --example lookup_latency
//! ```
//!
//! Sizes: `LOOKUP_ENTITIES`, `LOOKUP_EVENTS`, `LOOKUP_FEATURES`, `LOOKUP_CALLS` (per case).
//!
//! Measured on a shared 2-core machine (release, defaults, 500 calls per case):
//! Parquet 1 key p50 0.025 ms / p99 0.059 ms, 100 keys p50 0.47 ms / p99 0.68 ms (index build
//! on first lookup 0.8 s, +160 MB resident); PostgreSQL 15 (fixture server, fsync off) 1 key
//! p50 0.25 ms / p99 0.37 ms, 100 keys p50 1.4 ms / p99 6.4 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema};
use quiver_core::{EntityKey, KeyValue};
use quiver_offline::store::{
    CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineStore, OfflineTable, ParquetOfflineStore,
    PostgresConfig, PostgresOfflineStore, timestamp_type,
};
use quiver_test_utils::PostgresServer;

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2026-11-03T00:00:00Z.
const D0: i64 = 20_760 * DAY;

struct Sizes {
    entities: i64,
    events: i64,
    features: usize,
    calls: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn table(features: usize) -> OfflineTable {
    let mut fields = vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
        Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
    ];
    fields.extend((0..features).map(|i| Field::new(format!("f{i}"), DataType::Float32, true)));
    OfflineTable {
        project: "bench".into(),
        view: "lookup".into(),
        version: 1,
        schema: Arc::new(Schema::new(fields)),
        join_keys: vec!["user_id".into()],
    }
}

/// Day `day`'s event for every entity, at a per-entity second of that day.
fn day_batch(table: &OfflineTable, sizes: &Sizes, day: i64) -> RecordBatch {
    let n = sizes.entities as usize;
    let ids: Vec<i64> = (0..sizes.entities).collect();
    let times: Vec<i64> = ids
        .iter()
        .map(|id| D0 + day * DAY + (id % 86_400) * 1_000_000_000)
        .collect();
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        ts(times.clone()),
        ts(times),
    ];
    for f in 0..sizes.features {
        let values = (0..n).map(|i| (i * 31 + f) as f32 * 0.5 + day as f32);
        columns.push(Arc::new(Float32Array::from_iter_values(values)));
    }
    RecordBatch::try_new(table.schema.clone(), columns).expect("valid batch")
}

async fn fill(store: &dyn OfflineStore, table: &OfflineTable, sizes: &Sizes) -> Duration {
    let started = Instant::now();
    store.ensure_table(table).await.expect("ensure_table");
    for day in 0..sizes.events {
        let batch = day_batch(table, sizes, day);
        let start = D0 + day * DAY;
        store
            .write_range(table, start, start + DAY, &[batch])
            .await
            .expect("write_range");
    }
    started.elapsed()
}

/// xorshift64*: deterministic keys and times without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn time_lookups(
    name: &str,
    store: &dyn OfflineStore,
    table: &OfflineTable,
    sizes: &Sizes,
    per_call: usize,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ per_call as u64);
    let history = (sizes.events * DAY) as u64;
    let mut times = Vec::with_capacity(sizes.calls);
    let mut found = 0usize;
    for call in 0..sizes.calls {
        let keys: Vec<EntityKey> = (0..per_call)
            .map(|_| EntityKey(vec![KeyValue::Int(rng.below(sizes.entities as u64) as i64)]))
            .collect();
        let as_of = D0 + rng.below(history) as i64;
        let ttl = (call % 2 == 0).then_some(3 * DAY);
        let started = Instant::now();
        let rows = store
            .read_latest(table, &keys, as_of, ttl)
            .await
            .expect("read_latest");
        times.push(started.elapsed());
        found += rows.iter().flatten().count();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<10} {per_call:>3} keys: p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  \
         ({} calls, {:.0}% of keys found)",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        sizes.calls,
        100.0 * found as f64 / (sizes.calls * per_call) as f64
    );
}

/// Resident memory of this process, from /proc (Linux only; `?` elsewhere).
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l["VmRSS:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

async fn bench(name: &str, store: &dyn OfflineStore, table: &OfflineTable, sizes: &Sizes) {
    let filled = fill(store, table, sizes).await;
    println!(
        "{name:<10} filled in {:.1} s (rss {})",
        filled.as_secs_f64(),
        rss()
    );
    // The first lookup pays one-off costs (Parquet: building the index; PostgreSQL: preparing
    // the statement on a connection); serving pays them once per table version.
    let started = Instant::now();
    let key = [EntityKey(vec![KeyValue::Int(0)])];
    store
        .read_latest(table, &key, D0 + sizes.events * DAY, None)
        .await
        .expect("first lookup");
    println!(
        "{name:<10} first lookup {:.1} ms (rss {})",
        started.elapsed().as_secs_f64() * 1000.0,
        rss()
    );
    for per_call in [1, 100] {
        time_lookups(name, store, table, sizes, per_call).await;
    }
}

#[tokio::main]
async fn main() {
    let sizes = Sizes {
        entities: env_or("LOOKUP_ENTITIES", 100_000) as i64,
        events: env_or("LOOKUP_EVENTS", 10) as i64,
        features: env_or("LOOKUP_FEATURES", 50),
        calls: env_or("LOOKUP_CALLS", 500),
    };
    println!(
        "{} entities x {} events, {} float32 features; {} calls per case",
        sizes.entities, sizes.events, sizes.features, sizes.calls
    );
    let table = table(sizes.features);

    let dir = tempfile::tempdir().expect("tempdir");
    let parquet = ParquetOfflineStore::new(dir.path().join("offline"));
    bench("parquet", &parquet, &table, &sizes).await;
    drop(parquet);

    let server = PostgresServer::start();
    let postgres = PostgresOfflineStore::connect(&PostgresConfig::new(server.url()))
        .await
        .expect("connect");
    bench("postgres", &postgres, &table, &sizes).await;
}
