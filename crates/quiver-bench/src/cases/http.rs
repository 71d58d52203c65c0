//! `POST /get-online-features` against a `quiver_server` in its own process on 127.0.0.1:0
//! (see [`crate::server`]), with one keep-alive HTTP/1.1 connection per task (hyper's low-level
//! client: no pool, no retries, so the figures are the server's). The server's RSS is read from
//! `/proc/PID/status` around the 32-connection points, and by the optional soak.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::{REQUEST_RING, feature_refs, load_point, request_ids};
use crate::cli::Args;
use crate::load::{self, Worker};
use crate::report::{Latency, LoadRow, ReadPath, RssRow, SHAPES, Shape, SoakRow};
use crate::server::ServerProcess;
use crate::setup::ServingSetup;

/// Load points at or above this concurrency record the server's RSS around them.
const RSS_CONCURRENCY: usize = 32;
/// Connections of the soak.
const SOAK_CONCURRENCY: usize = 32;

struct HttpWorker {
    sender: SendRequest<Full<Bytes>>,
    bodies: Arc<[Bytes]>,
    next: usize,
}

impl HttpWorker {
    async fn connect(addr: SocketAddr, bodies: Arc<[Bytes]>, next: usize) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // Ends when the sender is dropped at the end of the load point.
        tokio::spawn(connection);
        Ok(HttpWorker {
            sender,
            bodies,
            next,
        })
    }

    /// Sends one request; returns status and body.
    async fn post(&mut self) -> anyhow::Result<(StatusCode, Bytes)> {
        let body = self.bodies[self.next % self.bodies.len()].clone();
        self.next += 1;
        self.sender.ready().await?;
        let request = Request::post("/get-online-features")
            .header(HOST, "127.0.0.1")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> anyhow::Result<()> {
        let (status, body) = self.post().await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        Ok(())
    }
}

/// Request bodies in Feast's shape, cycling over entity ids.
fn bodies(shape: Shape) -> Arc<[Bytes]> {
    let features = feature_refs(shape);
    request_ids(shape)
        .into_iter()
        .map(|ids| {
            Bytes::from(
                serde_json::to_vec(&json!({"features": features, "entities": {"id": ids}}))
                    .expect("a JSON value serializes"),
            )
        })
        .collect()
}

/// Checks that a response has every feature PRESENT for every entity row, so the load measures
/// real reads, not fast misses.
async fn check_response(addr: SocketAddr, shape: Shape) -> anyhow::Result<()> {
    let mut worker = HttpWorker::connect(addr, bodies(shape), 0).await?;
    let (status, body) = worker.post().await?;
    anyhow::ensure!(status == StatusCode::OK, "HTTP {status} for {shape}");
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let results = v["results"].as_array().context("no `results` array")?;
    anyhow::ensure!(
        results.len() == shape.features + 1,
        "{shape}: {} result columns, expected {}",
        results.len(),
        shape.features + 1
    );
    for column in &results[1..] {
        let statuses = column["statuses"].as_array().context("no `statuses`")?;
        anyhow::ensure!(
            statuses.len() == shape.entities && statuses.iter().all(|s| s == "PRESENT"),
            "{shape}: not every value is PRESENT: {statuses:?}"
        );
    }
    Ok(())
}

/// What the HTTP case measured.
pub struct HttpResult {
    pub loads: Vec<LoadRow>,
    pub rss: Vec<RssRow>,
    /// The server process's `VmHWM` when the case ended.
    pub server_peak_rss: Option<u64>,
}

/// Every shape at every concurrency; the server's RSS before and after the 32-connection points.
pub async fn run(serving: &ServingSetup, args: &Args) -> anyhow::Result<HttpResult> {
    let server = ServerProcess::spawn(serving.dir.path())?;
    let addr = server.addr;
    let mut loads = Vec::new();
    let mut rss = Vec::new();
    for shape in SHAPES {
        check_response(addr, shape).await?;
        let bodies = bodies(shape);
        for &concurrency in &args.concurrency {
            let mut workers = Vec::with_capacity(concurrency);
            for i in 0..concurrency {
                workers.push(HttpWorker::connect(addr, bodies.clone(), i * 37).await?);
            }
            let before = server.status_bytes("VmRSS");
            loads.push(load_point(ReadPath::Http, shape, workers, args).await?);
            let after = server.status_bytes("VmRSS");
            if concurrency >= RSS_CONCURRENCY
                && let (Some(before), Some(after)) = (before, after)
            {
                rss.push(RssRow {
                    shape,
                    concurrency,
                    before,
                    after,
                });
            }
        }
    }
    let server_peak_rss = server.status_bytes("VmHWM");
    tokio::task::spawn_blocking(move || server.stop()).await??;
    Ok(HttpResult {
        loads,
        rss,
        server_peak_rss,
    })
}

/// [`SOAK_CONCURRENCY`] connections for `seconds`, each cycling through requests of all three
/// shapes, while the server's `VmRSS` is sampled every `args.soak_sample_secs`.
pub async fn soak(serving: &ServingSetup, args: &Args, seconds: f64) -> anyhow::Result<SoakRow> {
    let server = ServerProcess::spawn(serving.dir.path())?;
    let addr = server.addr;
    for shape in SHAPES {
        check_response(addr, shape).await?;
    }
    let per_shape: Vec<Arc<[Bytes]>> = SHAPES.iter().map(|s| bodies(*s)).collect();
    let mixed: Arc<[Bytes]> = (0..REQUEST_RING)
        .flat_map(|i| per_shape.iter().map(move |b| b[i % b.len()].clone()))
        .collect();
    let mut workers = Vec::with_capacity(SOAK_CONCURRENCY);
    for i in 0..SOAK_CONCURRENCY {
        // Offsets spread the workers over the shapes as well as the entity ids.
        workers.push(HttpWorker::connect(addr, mixed.clone(), i * 37).await?);
    }

    let status = format!("/proc/{}/status", server.pid());
    let interval = Duration::from_secs_f64(args.soak_sample_secs.max(0.1));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let start = Instant::now();
        let mut samples = Vec::new();
        loop {
            if let Some(rss) = crate::machine::status_bytes(&status, "VmRSS") {
                samples.push((start.elapsed().as_secs_f64(), rss));
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut stop_rx => break,
            }
        }
        samples
    });
    eprintln!(
        "  soak: {SOAK_CONCURRENCY} connections, {seconds} s (+ {} s warm-up), all shapes interleaved",
        args.warmup().as_secs_f64()
    );
    let result = load::run(workers, args.warmup(), Duration::from_secs_f64(seconds)).await?;
    let _ = stop_tx.send(());
    let samples = sampler.await?;
    let peak = server.status_bytes("VmHWM");
    tokio::task::spawn_blocking(move || server.stop()).await??;
    let row = SoakRow {
        seconds,
        warmup_seconds: args.warmup().as_secs_f64(),
        concurrency: SOAK_CONCURRENCY,
        per_second: result.per_second(),
        latency: Latency::of(&result.histogram),
        errors: result.errors,
        first_error: result.first_error,
        samples,
        peak,
    };
    eprintln!(
        "  soak: {} req/s, p99 {} ms, {} errors; server RSS start / max / end {}",
        crate::report::fmt_count(row.per_second),
        crate::report::fmt_ms(row.latency.p99),
        row.errors,
        row.rss_summary()
    );
    Ok(row)
}
