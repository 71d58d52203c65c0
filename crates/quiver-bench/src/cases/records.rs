//! Records: how fast they are accepted over HTTP and exported into each offline store, and what
//! served-feature logging costs the serving path.
//!
//! Its own `redis-server` with `appendonly yes` + `appendfsync always` (the configuration under
//! which an accepted record survives a Redis crash) and its own PostgreSQL. One project serves
//! `f50` (10,000 entities × 50 float32, materialized) through two feature services, `plain` and
//! `logged` (`logging: {sample_rate: 1.0}`), and declares the namespace `events`; a feature
//! server process runs it.
//! - Accept: `POST /records/events` with 100 records per request, and `PUT /records/events/{id}`
//!   one record per request, at concurrency 8; records/s.
//! - Export: `FeatureStore::export` of everything accepted, into Parquet; then the same number of
//!   records accepted by the library into a second project and exported into PostgreSQL.
//! - Logging: `POST /get-online-features` 1 × 50 through `plain`, then `logged`, twice each,
//!   alternating, at concurrency 8; the logged throughput as a share of the plain one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use quiver::{ExportOptions, FeatureStore};
use quiver_test_utils::{PostgresServer, RedisServer};
use serde_json::json;

use super::request_ids;
use crate::cli::Args;
use crate::load::{self, Worker};
use crate::report::{Latency, RecordsRow, SHAPES};
use crate::server::ServerProcess;
use crate::setup::{self, SERVE_ENTITIES};

/// Concurrency of every load point.
const CONCURRENCY: usize = 8;
/// Records per batch request.
const BATCH: usize = 100;

/// What one HTTP worker sends.
#[derive(Clone, Copy)]
enum Call {
    /// `POST /records/events` with [`BATCH`] records.
    Batch,
    /// `PUT /records/events/{id}`.
    Single,
    /// `POST /get-online-features` through a feature service.
    Serve(&'static str),
}

struct HttpWorker {
    sender: SendRequest<Full<Bytes>>,
    call: Call,
    worker: usize,
    next: u64,
    serve_bodies: Arc<[Bytes]>,
    accepted: Arc<AtomicU64>,
}

impl HttpWorker {
    async fn connect(
        addr: SocketAddr,
        call: Call,
        worker: usize,
        serve_bodies: Arc<[Bytes]>,
        accepted: Arc<AtomicU64>,
    ) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(connection);
        Ok(HttpWorker {
            sender,
            call,
            worker,
            next: 0,
            serve_bodies,
            accepted,
        })
    }
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> anyhow::Result<()> {
        self.next += 1;
        let id = |k: u64| format!("w{}-{}", self.worker, k);
        let (method, path, body, records) = match self.call {
            Call::Batch => {
                let first = self.next * BATCH as u64;
                let records: Vec<_> = (first..first + BATCH as u64)
                    .map(|k| json!({"id": id(k), "user_id": k % 10_000, "amount": k as f64 * 0.5}))
                    .collect();
                (
                    Method::POST,
                    "/records/events".to_string(),
                    Bytes::from(serde_json::to_vec(&records)?),
                    BATCH as u64,
                )
            }
            Call::Single => {
                let k = self.next;
                (
                    Method::PUT,
                    format!("/records/events/{}", id(k)),
                    Bytes::from(serde_json::to_vec(
                        &json!({"user_id": k % 10_000, "amount": k as f64 * 0.5}),
                    )?),
                    1,
                )
            }
            Call::Serve(service) => {
                let body = self.serve_bodies[self.next as usize % self.serve_bodies.len()].clone();
                let _ = service;
                (Method::POST, "/get-online-features".to_string(), body, 0)
            }
        };
        self.sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "127.0.0.1")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status == StatusCode::OK,
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        self.accepted.fetch_add(records, Ordering::Relaxed);
        Ok(())
    }
}

fn config(project: &str, redis: &RedisServer, offline: &str) -> String {
    format!(
        "project: {project}\n\
         online_store: {{type: redis, url: \"{}\"}}\n\
         offline_store: {offline}\n\
         records:\n  namespaces:\n    - name: events\n      \
         fields: {{user_id: int64, amount: float64}}\n  export: {{batch_size: 10000}}\n",
        redis.url()
    )
}

async fn http_point(
    addr: SocketAddr,
    call: Call,
    what: &str,
    serve_bodies: &Arc<[Bytes]>,
    args: &Args,
) -> anyhow::Result<RecordsRow> {
    let accepted = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(CONCURRENCY);
    for w in 0..CONCURRENCY {
        workers.push(
            HttpWorker::connect(addr, call, w, serve_bodies.clone(), accepted.clone()).await?,
        );
    }
    let result = load::run(workers, args.warmup(), args.duration()).await?;
    let per_request = match call {
        Call::Batch => BATCH as f64,
        Call::Single => 1.0,
        Call::Serve(_) => 0.0,
    };
    let row = RecordsRow {
        what: what.to_string(),
        concurrency: CONCURRENCY,
        requests_per_second: result.per_second(),
        records_per_second: result.per_second() * per_request,
        records: 0,
        seconds: result.seconds,
        latency: Some(Latency::of(&result.histogram)),
        errors: result.errors,
    };
    eprintln!(
        "  {what}: {} req/s, {} records/s, p99 {} ms, {} errors",
        crate::report::fmt_count(row.requests_per_second),
        crate::report::fmt_count(row.records_per_second),
        row.latency
            .as_ref()
            .map(|l| crate::report::fmt_ms(l.p99))
            .unwrap_or_default(),
        row.errors
    );
    Ok(row)
}

async fn export_row(store: &FeatureStore, what: &str) -> anyhow::Result<RecordsRow> {
    let started = Instant::now();
    let report = store
        .export(&ExportOptions {
            namespaces: vec!["events".into()],
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(!report.failed(), "the export failed: {report:?}");
    let records = report.exported();
    eprintln!(
        "  {what}: {records} records in {seconds:.2} s = {} records/s",
        crate::report::fmt_count(records as f64 / seconds)
    );
    Ok(RecordsRow {
        what: what.to_string(),
        concurrency: 1,
        requests_per_second: 0.0,
        records_per_second: records as f64 / seconds,
        records,
        seconds,
        latency: None,
        errors: 0,
    })
}

pub async fn run(args: &Args) -> anyhow::Result<Vec<RecordsRow>> {
    let redis = tokio::task::spawn_blocking(RedisServer::start_durable).await?;
    let postgres = tokio::task::spawn_blocking(PostgresServer::start).await?;
    let mut rows = Vec::new();

    // The served project: f50 with two services, and the namespace.
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-records-")
        .tempdir()?;
    let cfg = config(
        "quiver_bench_records",
        &redis,
        "{type: parquet, path: .quiver/offline}",
    );
    setup::write_project_with_config(dir.path(), &cfg, &[("f50", "s50", 50)])?;
    let refs: Vec<String> = (0..50).map(|i| format!("\"f50:f{i}\"")).collect();
    let mut defs = std::fs::read_to_string(dir.path().join("features/bench.yaml"))?;
    defs.push_str(&format!(
        "feature_services:\n  - name: plain\n    features: [{0}]\n  - name: logged\n    features: [{0}]\n    logging: {{sample_rate: 1.0}}\n",
        refs.join(", ")
    ));
    std::fs::write(dir.path().join("features/bench.yaml"), defs)?;
    setup::write_source(
        &dir.path().join("data/s50.parquet"),
        SERVE_ENTITIES,
        50,
        1,
        setup::now_us(),
    )?;
    {
        let mut store = FeatureStore::open(dir.path()).await?;
        store.apply().await?;
        setup::materialize(&store, "f50").await?;
    }
    let server = ServerProcess::spawn(dir.path())?;
    let no_bodies: Arc<[Bytes]> = Arc::from(Vec::new());
    rows.push(
        http_point(
            server.addr,
            Call::Batch,
            "accept over HTTP, POST /records/events, 100 per request",
            &no_bodies,
            args,
        )
        .await?,
    );
    rows.push(
        http_point(
            server.addr,
            Call::Single,
            "accept over HTTP, PUT /records/events/{id}, 1 per request",
            &no_bodies,
            args,
        )
        .await?,
    );

    // Logging overhead on 1 × 50, alternating so drift hits both alike.
    let shape = SHAPES[0];
    let bodies = |service: &str| -> Arc<[Bytes]> {
        request_ids(shape)
            .into_iter()
            .map(|ids| {
                Bytes::from(
                    serde_json::to_vec(
                        &json!({"feature_service": service, "entities": {"id": ids}}),
                    )
                    .unwrap_or_default(),
                )
            })
            .collect()
    };
    let (plain, logged) = (bodies("plain"), bodies("logged"));
    for round in 1..=2 {
        rows.push(
            http_point(
                server.addr,
                Call::Serve("plain"),
                &format!("serve 1 × 50 through `plain` (round {round})"),
                &plain,
                args,
            )
            .await?,
        );
        rows.push(
            http_point(
                server.addr,
                Call::Serve("logged"),
                &format!("serve 1 × 50 through `logged`, sample_rate 1.0 (round {round})"),
                &logged,
                args,
            )
            .await?,
        );
    }
    server.stop()?;

    // Export what was accepted into Parquet.
    let store = FeatureStore::open(dir.path()).await?;
    let accepted = store
        .queue_stats()
        .await?
        .into_iter()
        .find(|(n, _)| n == "events")
        .map_or(0, |(_, s)| s.length);
    rows.push(export_row(&store, "export into Parquet (batches of 10,000)").await?);

    // The same number into PostgreSQL: accepted by the library, then exported.
    let pg_dir = tempfile::Builder::new()
        .prefix("quiver-bench-records-pg-")
        .tempdir()?;
    let pg_cfg = config(
        "quiver_bench_records_pg",
        &redis,
        &format!("{{type: postgres, url: \"{}\"}}", postgres.url()),
    );
    std::fs::create_dir_all(pg_dir.path().join("features"))?;
    std::fs::write(pg_dir.path().join("quiver.yaml"), pg_cfg)?;
    let pg_store = FeatureStore::open(pg_dir.path()).await?;
    let n = accepted.clamp(10_000, 500_000);
    let started = Instant::now();
    for first in (0..n).step_by(1000) {
        let batch = (first..(first + 1000).min(n))
            .map(|k| {
                (
                    None,
                    json!({"id": format!("pg-{k}"), "user_id": k % 10_000, "amount": k as f64 * 0.5}),
                )
            })
            .collect();
        pg_store.put_records("events", batch).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    rows.push(RecordsRow {
        what: "accept through the library, 1,000 per call".into(),
        concurrency: 1,
        requests_per_second: 0.0,
        records_per_second: n as f64 / seconds,
        records: n,
        seconds,
        latency: None,
        errors: 0,
    });
    rows.push(export_row(&pg_store, "export into PostgreSQL (batches of 10,000)").await?);
    drop(pg_store);
    tokio::task::spawn_blocking(move || drop(postgres)).await?;
    Ok(rows)
}
