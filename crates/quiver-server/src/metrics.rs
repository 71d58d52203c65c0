//! Prometheus metrics: one process-wide recorder (the `metrics` facade is global), request
//! latency histograms per route, hits and misses per feature view, errors by kind.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, in seconds: serving targets are sub-millisecond, so resolution starts at 50 µs.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

/// Installs the recorder on first use (or reuses it) and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding application; then our
            // metrics go to it and /metrics renders only what this handle saw.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Middleware recording `quiver_http_requests_total` and `quiver_http_request_duration_seconds`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("quiver_http_request_duration_seconds", "route" => route.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!("quiver_http_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}

/// Records an export run: rows exported, dead-lettered and failed runs per namespace, and the
/// time of the last successful run.
pub fn record_export(report: &quiver::ExportReport) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    for n in &report.namespaces {
        let ns = n.namespace.clone();
        metrics::counter!("quiver_export_records_total", "namespace" => ns.clone())
            .increment(n.exported);
        metrics::counter!("quiver_export_dead_letters_total", "namespace" => ns.clone())
            .increment(n.dead_lettered);
        metrics::counter!("quiver_export_retries_total", "namespace" => ns.clone())
            .increment(n.retries);
        let outcome = if n.error.is_some() { "failed" } else { "ok" };
        metrics::counter!("quiver_export_runs_total", "namespace" => ns.clone(), "outcome" => outcome)
            .increment(1);
        if n.error.is_none() {
            metrics::gauge!("quiver_export_last_success_timestamp_seconds", "namespace" => ns)
                .set(now);
        }
    }
}

/// Sets the queue gauges: unexported entries, oldest entry's age, dead letters.
pub fn record_queues(stats: &[(String, quiver::online_store::records::QueueStats)]) {
    for (ns, s) in stats {
        metrics::gauge!("quiver_export_queue_length", "namespace" => ns.clone())
            .set(s.length as f64);
        metrics::gauge!("quiver_export_queue_oldest_age_seconds", "namespace" => ns.clone())
            .set(s.oldest_age_seconds().unwrap_or(0.0));
        metrics::gauge!("quiver_export_dead_letters", "namespace" => ns.clone())
            .set(s.dead_letters as f64);
    }
}
