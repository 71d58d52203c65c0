//! Everything the cases need before they measure: the Redis target, generated Parquet sources,
//! and Quiver projects applied and materialized into Redis.
//!
//! Two projects, so each case sees only its own keys:
//! - `quiver_bench` (serving): entity `item` (`id` int64), views `f50` (50 float32 fields
//!   `f0..f49`) and `f250` (250 float32 fields `f0..f249`), each over its own Parquet source of
//!   [`SERVE_ENTITIES`] rows, both materialized. A request for 50 features reads `f50`, so its
//!   Redis value holds exactly those 50 floats.
//! - `quiver_bench_mat` (materialization): view `m50` (50 float32 fields) over a source of N rows.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use quiver::core::{EntityKey, KeyValue};
use quiver::{FeatureStore, MaterializeOptions, MaterializeReport, NoProgress};
use quiver_test_utils::RedisServer;
use redis::aio::MultiplexedConnection;

/// Entities materialized for the serving cases.
pub const SERVE_ENTITIES: usize = 10_000;
/// Online key prefix (the store's default).
pub const KEY_PREFIX: &str = "quiver";
pub const SERVE_PROJECT: &str = "quiver_bench";
pub const MATERIALIZE_PROJECT: &str = "quiver_bench_mat";

/// The Redis the run uses: one we started (stopped on drop) or the user's.
pub struct RedisTarget {
    pub url: String,
    /// Keeps our server alive for the run.
    server: Option<RedisServer>,
}

impl RedisTarget {
    pub fn start(url: Option<&str>) -> anyhow::Result<RedisTarget> {
        match url {
            Some(url) => {
                crate::cli::check_loopback(url)?;
                Ok(RedisTarget {
                    url: url.to_string(),
                    server: None,
                })
            }
            None => {
                let server = RedisServer::start();
                Ok(RedisTarget {
                    url: server.url(),
                    server: Some(server),
                })
            }
        }
    }

    /// True when the bench started the server (and so owns all of its memory).
    pub fn is_ours(&self) -> bool {
        self.server.is_some()
    }

    pub async fn connect(&self) -> anyhow::Result<MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }
}

/// `used_memory` from `INFO memory`, bytes.
pub async fn used_memory(conn: &mut MultiplexedConnection) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("`INFO memory` has no `used_memory` line")
}

/// `redis_version` from `INFO server`.
pub async fn redis_version(conn: &mut MultiplexedConnection) -> anyhow::Result<String> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_string())
}

/// The serving project, applied and materialized.
pub struct ServingSetup {
    /// Holds the project directory for the run.
    pub dir: tempfile::TempDir,
    /// `used_memory` growth while `f50`'s entities were written, bytes.
    pub f50_used_memory_delta: i64,
    /// Redis keys of `f50` and `f250`, entity `i` at index `i`.
    pub f50_keys: Arc<[String]>,
    pub f250_keys: Arc<[String]>,
}

impl ServingSetup {
    pub async fn create(redis: &RedisTarget) -> anyhow::Result<ServingSetup> {
        let dir = tempfile::Builder::new().prefix("quiver-bench-").tempdir()?;
        let views = [("f50", "s50", 50), ("f250", "s250", 250)];
        write_project(dir.path(), SERVE_PROJECT, &redis.url, &views)?;
        let now_us = now_us();
        for (seed, (_, source, fields)) in views.iter().enumerate() {
            let path = dir.path().join(format!("data/{source}.parquet"));
            write_source(&path, SERVE_ENTITIES, *fields, seed as u64 + 1, now_us)?;
        }
        let mut store = FeatureStore::open(dir.path()).await?;
        store.apply().await?;
        delete_views(&store).await?;
        let mut conn = redis.connect().await?;
        let before = used_memory(&mut conn).await?;
        materialize(&store, "f50").await?;
        let after = used_memory(&mut conn).await?;
        materialize(&store, "f250").await?;
        let keys = |view: &str| -> anyhow::Result<Arc<[String]>> {
            let table = &store.view(view)?.table;
            Ok((0..SERVE_ENTITIES as i64)
                .map(|i| table.key(KEY_PREFIX, &EntityKey(vec![KeyValue::Int(i)])))
                .collect())
        };
        Ok(ServingSetup {
            f50_used_memory_delta: after - before,
            f50_keys: keys("f50")?,
            f250_keys: keys("f250")?,
            dir,
        })
    }

    pub async fn open_store(&self) -> anyhow::Result<FeatureStore> {
        Ok(FeatureStore::open(self.dir.path()).await?)
    }
}

/// Materializes one view; fails unless every entity was written.
pub async fn materialize(store: &FeatureStore, view: &str) -> anyhow::Result<MaterializeReport> {
    let options = MaterializeOptions {
        views: vec![view.to_string()],
        strict: Some(true),
        ..MaterializeOptions::default()
    };
    let report = store.materialize(&options, &NoProgress).await?;
    let written: u64 = report.views.iter().map(|v| v.written).sum();
    let entities: u64 = report.views.iter().map(|v| v.entities).sum();
    anyhow::ensure!(
        written == entities && written > 0,
        "materializing `{view}` wrote {written} of {entities} entities"
    );
    Ok(report)
}

/// Deletes every view's records (a previous run's keys in a user-given Redis would skew the
/// memory figures and turn writes into "not older" rewrites).
pub async fn delete_views(store: &FeatureStore) -> anyhow::Result<()> {
    for view in store.views() {
        store.online_store().delete_table(&view.table).await?;
    }
    Ok(())
}

/// Writes `quiver.yaml` and `features/bench.yaml`: entity `item` keyed by `id`, and per
/// `(view, source, fields)` a Parquet source and a view of `fields` float32 features.
pub fn write_project(
    dir: &Path,
    project: &str,
    redis_url: &str,
    views: &[(&str, &str, usize)],
) -> anyhow::Result<()> {
    write_project_with_config(
        dir,
        &format!("project: {project}\nonline_store:\n  type: redis\n  url: \"{redis_url}\"\n"),
        views,
    )
}

/// [`write_project`] with `config` as the whole `quiver.yaml` (the fallback case adds the
/// offline store, resilience and serving blocks).
pub fn write_project_with_config(
    dir: &Path,
    config: &str,
    views: &[(&str, &str, usize)],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("features"))?;
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("quiver.yaml"), config)?;
    let mut defs = String::from("entities:\n  - {name: item, join_keys: [id]}\nsources:\n");
    for (_, source, _) in views {
        defs.push_str(&format!(
            "  - {{name: {source}, path: data/{source}.parquet, timestamp_field: ts}}\n"
        ));
    }
    defs.push_str("feature_views:\n");
    for (view, source, fields) in views {
        defs.push_str(&format!(
            "  - name: {view}\n    entities: [item]\n    source: {source}\n    fields:\n"
        ));
        for i in 0..*fields {
            defs.push_str(&format!("      - {{name: f{i}, type: float32}}\n"));
        }
    }
    std::fs::write(dir.join("features/bench.yaml"), defs)?;
    Ok(())
}

/// Writes a Parquet source: `id` 0..rows (int64), `ts` (µs, UTC) within the day before
/// `now_us`, and float32 columns `f0..f{fields-1}` of uniform values in [-1, 1).
pub fn write_source(
    path: &Path,
    rows: usize,
    fields: usize,
    seed: u64,
    now_us: i64,
) -> anyhow::Result<()> {
    let mut columns: Vec<(String, ArrayRef)> = vec![
        (
            "id".into(),
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        ),
        (
            "ts".into(),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..rows as i64).map(|i| now_us - 1_000_000 - (i % 86_400) * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
        ),
    ];
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    for f in 0..fields {
        let values = (0..rows).map(|_| {
            // xorshift64: cheap, and 24 random mantissa bits per value like real features.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        });
        columns.push((
            format!("f{f}"),
            Arc::new(Float32Array::from_iter_values(values)),
        ));
    }
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, array)| {
                let nullable = false;
                match array.data_type() {
                    DataType::Timestamp(_, _) => Field::new(
                        name,
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        nullable,
                    ),
                    other => Field::new(name, other.clone(), nullable),
                }
            })
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    quiver::offline_io::write_parquet(path, &batch)?;
    Ok(())
}

pub fn now_us() -> i64 {
    quiver::online_store::now_ns() / 1_000
}
