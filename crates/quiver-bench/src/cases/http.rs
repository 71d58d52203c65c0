//! `POST /get-online-features` against an in-process `quiver_server` on 127.0.0.1:0, with one
//! keep-alive HTTP/1.1 connection per task (hyper's low-level client: no pool, no retries, so
//! the figures are the server's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::{feature_refs, load_point, request_ids};
use crate::cli::Args;
use crate::load::Worker;
use crate::machine::self_status_bytes;
use crate::report::{LoadRow, ReadPath, RssRow, SHAPES, Shape};
use crate::setup::ServingSetup;

/// Load points at or above this concurrency record the process RSS around them.
const RSS_CONCURRENCY: usize = 32;

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

/// Every shape at every concurrency; RSS before and after the 32-connection points.
pub async fn run(
    serving: &ServingSetup,
    args: &Args,
) -> anyhow::Result<(Vec<LoadRow>, Vec<RssRow>)> {
    let store = serving.open_store().await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(quiver_server::serve(
        store,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        move |addr| {
            let _ = addr_tx.send(addr);
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let addr = addr_rx.await.context("the feature server did not start")?;

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
            let before = self_status_bytes("VmRSS");
            loads.push(load_point(ReadPath::Http, shape, workers, args).await?);
            let after = self_status_bytes("VmRSS");
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
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(joined) => joined??,
        Err(_) => eprintln!("  (the feature server did not shut down within 10 s; left running)"),
    }
    Ok((loads, rss))
}
