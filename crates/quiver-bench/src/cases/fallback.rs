//! The second layer under load: library reads (`FeatureStore::get_online_features`) of a project
//! whose online store is a `redis-server` of this case's own (it is killed) and whose offline
//! store holds the same data, Parquet and then PostgreSQL (a fresh `initdb` cluster).
//!
//! Per offline store: one view of 50 float32 features over the serving cases' source (10,000
//! entities, the same generated values), materialized into Redis *and* built into the offline
//! store with `FeatureStore::build`. Then, for 1 × 50 and 100 × 50:
//! - Redis up, at concurrency 1 and 8: the normal path (every response answered online);
//! - Redis SIGKILLed, the same points: every read falls back (every response answered by the
//!   offline layer, every value PRESENT), so the c=8 pair gives the fallback's throughput as a
//!   share of the normal path's, in the same run.
//!
//! The breaker opens after the first failed reads (before the measured window: the checked
//! first call and the warm-up absorb them); while Redis stays down it lets one probe through per
//! cooldown (1 s), and the request carrying that probe waits for it to fail before falling back,
//! so each killed point's max (and its p99.9 when it has few requests per second) includes that
//! wait; every other request fails online at once and is answered by the offline layer.

use std::sync::Arc;
use std::time::Instant;

use quiver::core::FeatureStatus;
use quiver::{BuildOptions, FeatureStore, OnlineRequest};
use quiver_test_utils::{PostgresServer, RedisServer};

use super::library::requests;
use super::load_point;
use crate::cli::Args;
use crate::load::Worker;
use crate::report::{FallbackRow, FallbackSetup, OfflineBackend, ReadPath, SHAPES, Shape};
use crate::setup::{self, SERVE_ENTITIES};

/// The shapes measured: one entity and 100 entities, 50 features.
const FALLBACK_SHAPES: [Shape; 2] = [SHAPES[0], SHAPES[1]];
/// Concurrency of the latency points, and of the throughput points.
const CONCURRENCY: [usize; 2] = [1, 8];
/// The serving setup's seed for `f50`'s source, so the values are the same.
const F50_SEED: u64 = 1;

/// What the case measured.
pub struct FallbackResult {
    pub rows: Vec<FallbackRow>,
    pub setups: Vec<FallbackSetup>,
    pub redis_version: String,
}

/// One library client checking every answer: the expected layer, every row there, every value
/// PRESENT.
struct FallbackWorker {
    store: Arc<FeatureStore>,
    requests: Arc<[OnlineRequest]>,
    next: usize,
    layer: &'static str,
}

impl Worker for FallbackWorker {
    async fn call(&mut self) -> anyhow::Result<()> {
        let request = &self.requests[self.next % self.requests.len()];
        self.next += 1;
        let response = self.store.get_online_features(request).await?;
        check(&response, request, self.layer)
    }
}

fn check(
    response: &quiver::OnlineResponse,
    request: &OnlineRequest,
    layer: &str,
) -> anyhow::Result<()> {
    let rows = request.entities[0].1.len();
    anyhow::ensure!(
        response.rows() == rows,
        "{} rows in the response, {rows} asked",
        response.rows()
    );
    anyhow::ensure!(
        response.layer_summary() == layer,
        "answered by `{}`, expected `{layer}`",
        response.layer_summary()
    );
    anyhow::ensure!(
        response.columns.len() > 1
            && response
                .columns
                .iter()
                .skip(1)
                .all(|c| c.statuses.iter().all(|s| *s == FeatureStatus::Present)),
        "not every value is PRESENT (answered by `{layer}`)"
    );
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<FallbackResult> {
    let mut result = FallbackResult {
        rows: Vec::new(),
        setups: Vec::new(),
        redis_version: String::new(),
    };
    for backend in [OfflineBackend::Parquet, OfflineBackend::Postgres] {
        eprintln!("  -- offline store: {}", backend.label());
        let postgres = match backend {
            OfflineBackend::Parquet => None,
            OfflineBackend::Postgres => {
                Some(tokio::task::spawn_blocking(PostgresServer::start).await?)
            }
        };
        let mut redis = RedisServer::start();
        if result.redis_version.is_empty() {
            let client = redis::Client::open(redis.url())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            result.redis_version = setup::redis_version(&mut conn).await?;
        }
        let (_dir, store, built) = prepare(backend, &redis, postgres.as_ref()).await?;
        result.setups.push(built);
        let store = Arc::new(store);

        for redis_up in [true, false] {
            if !redis_up {
                eprintln!("  killing redis-server (SIGKILL)");
                redis.kill();
            }
            let layer = if redis_up { "online" } else { "offline" };
            for shape in FALLBACK_SHAPES {
                let requests = requests(shape);
                // Before measuring, one answer from the expected layer (with Redis just killed
                // this one pays the timeout and the retry that open the breaker).
                let started = Instant::now();
                let first = store.get_online_features(&requests[0]).await?;
                check(&first, &requests[0], layer)?;
                eprintln!(
                    "  {} {shape}, Redis {}: first answer in {:.1} ms",
                    backend.label(),
                    if redis_up { "up" } else { "killed" },
                    started.elapsed().as_secs_f64() * 1e3
                );
                for concurrency in CONCURRENCY {
                    let workers = (0..concurrency)
                        .map(|i| FallbackWorker {
                            store: store.clone(),
                            requests: requests.clone(),
                            next: i * 37,
                            layer,
                        })
                        .collect();
                    let load = load_point(ReadPath::Library, shape, workers, args).await?;
                    result.rows.push(FallbackRow {
                        backend,
                        redis_up,
                        load,
                    });
                }
            }
        }
        let (calls, keys) = store.reader().offline_lookups();
        eprintln!("  offline-layer lookups: {calls} calls, {keys} keys");
        drop(store);
        if let Some(pg) = postgres {
            tokio::task::spawn_blocking(move || drop(pg)).await?;
        }
    }
    Ok(result)
}

/// The project of `backend`: `f50` over the serving source, applied, built into the offline
/// store and materialized into `redis`.
async fn prepare(
    backend: OfflineBackend,
    redis: &RedisServer,
    postgres: Option<&PostgresServer>,
) -> anyhow::Result<(tempfile::TempDir, FeatureStore, FallbackSetup)> {
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-fallback-")
        .tempdir()?;
    let (project, offline) = match (backend, postgres) {
        (OfflineBackend::Parquet, _) => (
            "quiver_bench_fb_parquet",
            "offline_store: {type: parquet, path: .quiver/offline}\n".to_string(),
        ),
        (OfflineBackend::Postgres, Some(pg)) => (
            "quiver_bench_fb_postgres",
            format!(
                "offline_store: {{type: postgres, url: \"{}\", schema: quiver}}\n",
                pg.url()
            ),
        ),
        (OfflineBackend::Postgres, None) => {
            anyhow::bail!("the PostgreSQL fallback needs a server (this is a bug in quiver-bench)")
        }
    };
    let config = format!(
        "project: {project}\n\
         online_store:\n  type: redis\n  url: \"{}\"\n  \
         resilience: {{timeout: 150ms, retries: 1, breaker_failures: 3, breaker_cooldown: 1s}}\n\
         {offline}\
         serving:\n  fallback: {{layer: offline, on: [unavailable, miss]}}\n",
        redis.url()
    );
    setup::write_project_with_config(dir.path(), &config, &[("f50", "s50", 50)])?;
    let now_us = setup::now_us();
    let path = dir.path().join("data/s50.parquet");
    setup::write_source(&path, SERVE_ENTITIES, 50, F50_SEED, now_us)?;
    let mut store = FeatureStore::open(dir.path()).await?;
    store.apply().await?;
    eprintln!(
        "  building {SERVE_ENTITIES} entities × 50 float32 into the {} offline store",
        backend.label()
    );
    let started = Instant::now();
    let reports = store
        .build(&BuildOptions {
            views: vec!["f50".into()],
            ..BuildOptions::default()
        })
        .await?;
    let build_seconds = started.elapsed().as_secs_f64();
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    anyhow::ensure!(
        rows == SERVE_ENTITIES as u64,
        "the build wrote {rows} rows, expected {SERVE_ENTITIES}"
    );
    setup::materialize(&store, "f50").await?;
    let built = FallbackSetup {
        backend,
        rows,
        build_seconds,
        // Without the temporary directory's path (`parquet directory /tmp/...`).
        table: reports
            .first()
            .map(|r| r.table.split(" /").next().unwrap_or_default().to_string())
            .unwrap_or_default(),
    };
    Ok((dir, store, built))
}
