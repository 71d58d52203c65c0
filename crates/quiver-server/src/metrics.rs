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
    if let Some(kind) = response.extensions().get::<crate::error::ErrorKindTag>() {
        metrics::counter!("quiver_http_errors_total", "route" => route.clone(), "kind" => kind.0)
            .increment(1);
    }
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

/// Appends the serving statistics (per view and layer, per store operation, per feature),
/// freshness and online key counts to the Prometheus text. Labels are views, layers, features,
/// backends and operations — all bounded by the definitions, never by entities.
pub fn render_stats(
    out: &mut String,
    store: &quiver::FeatureStore,
    sizes: Option<&[quiver::online_admin::OnlineVersion]>,
) {
    use std::fmt::Write as _;
    let snapshot = store.stats().snapshot();
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let cost: std::collections::HashMap<&str, f64> = store
        .views()
        .filter_map(|v| {
            Some((
                v.definition.name.as_str(),
                v.definition.cost_per_computation?,
            ))
        })
        .collect();
    type Field = fn(&quiver::stats::ViewSnapshot) -> u64;
    let counters: [(&str, &str, Field); 5] = [
        (
            "quiver_view_hits_total",
            "Keys found in the online store.",
            |v| v.hits,
        ),
        (
            "quiver_view_misses_total",
            "Keys the online store did not have (before any fallback).",
            |v| v.misses,
        ),
        (
            "quiver_view_read_throughs_total",
            "Keys written back to the online store after an offline-layer answer.",
            |v| v.read_throughs,
        ),
        (
            "quiver_view_lazy_computations_total",
            "Keys of a derived view computed from its source at request time.",
            |v| v.lazy_computations,
        ),
        (
            "quiver_view_writes_total",
            "Rows written to the online store (writes, materialization, read-through).",
            |v| v.writes,
        ),
    ];
    for (name, help, field) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (view, v) in &snapshot.views {
            let _ = writeln!(out, "{name}{{view=\"{}\"}} {}", esc(view), field(v));
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_fallbacks_total Keys sent to the offline layer, by reason (unavailable: the online store failed; miss: it did not have them).\n# TYPE quiver_view_fallbacks_total counter"
    );
    for (view, v) in &snapshot.views {
        for (reason, n) in [
            ("unavailable", v.fallbacks_unavailable),
            ("miss", v.fallbacks_miss),
        ] {
            let _ = writeln!(
                out,
                "quiver_view_fallbacks_total{{view=\"{}\",reason=\"{reason}\"}} {n}",
                esc(view)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_layer_keys_total Keys each layer answered, with a value (found) or without (missing).\n# TYPE quiver_view_layer_keys_total counter"
    );
    for (view, v) in &snapshot.views {
        for (i, layer) in quiver::stats::ViewSnapshot::layers().enumerate() {
            for (result, n) in [("found", v.found.get(i)), ("missing", v.missing.get(i))] {
                let _ = writeln!(
                    out,
                    "quiver_view_layer_keys_total{{view=\"{}\",layer=\"{layer}\",result=\"{result}\"}} {}",
                    esc(view),
                    n.copied().unwrap_or(0)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_errors_total Failed reads of a view, by error kind.\n# TYPE quiver_view_errors_total counter"
    );
    for (view, v) in &snapshot.views {
        for (kind, n) in quiver::stats::ViewSnapshot::error_kinds().zip(&v.errors) {
            let _ = writeln!(
                out,
                "quiver_view_errors_total{{view=\"{}\",kind=\"{kind}\"}} {n}",
                esc(view)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_lazy_computation_cost_total Lazy computations times the view's `cost_per_computation`.\n# TYPE quiver_view_lazy_computation_cost_total counter"
    );
    for (view, v) in &snapshot.views {
        if let Some(c) = cost.get(view.as_str()) {
            let _ = writeln!(
                out,
                "quiver_view_lazy_computation_cost_total{{view=\"{}\"}} {}",
                esc(view),
                c * v.lazy_computations as f64
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_feature_requests_total Requests per feature.\n# TYPE quiver_feature_requests_total counter"
    );
    for (view, v) in &snapshot.views {
        for (feature, n) in &v.features {
            let _ = writeln!(
                out,
                "quiver_feature_requests_total{{view=\"{}\",feature=\"{}\"}} {n}",
                esc(view),
                esc(feature)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_read_duration_seconds Read latency of a view per layer that answered.\n# TYPE quiver_view_read_duration_seconds histogram"
    );
    for (view, v) in &snapshot.views {
        for (layer, h) in quiver::stats::ViewSnapshot::layers().zip(&v.latency) {
            histogram(
                out,
                "quiver_view_read_duration_seconds",
                &format!("view=\"{}\",layer=\"{layer}\"", esc(view)),
                h,
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_store_operation_duration_seconds Store call latency per backend and operation.\n# TYPE quiver_store_operation_duration_seconds histogram"
    );
    for ((backend, op), h) in &snapshot.stores {
        histogram(
            out,
            "quiver_store_operation_duration_seconds",
            &format!("backend=\"{backend}\",operation=\"{op}\""),
            h,
        );
    }

    // Freshness: since the last materialization, the newest event online, the newest value
    // served, and the bound.
    let now = quiver::online_store::now_ns();
    let freshness = store.freshness(now).unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP quiver_view_materialization_age_seconds Seconds since the view was last materialized.\n# TYPE quiver_view_materialization_age_seconds gauge"
    );
    for f in &freshness {
        if let Some(age) = f.materialized_seconds_ago {
            let _ = writeln!(
                out,
                "quiver_view_materialization_age_seconds{{view=\"{}\"}} {age}",
                esc(&f.view),
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_newest_event_age_seconds Age of the newest event in the online store for the view: materialized, or written through this server (now minus its event time).\n# TYPE quiver_view_newest_event_age_seconds gauge"
    );
    for f in &freshness {
        if let Some(age) = f.newest_event_seconds_ago {
            let _ = writeln!(
                out,
                "quiver_view_newest_event_age_seconds{{view=\"{}\"}} {age}",
                esc(&f.view),
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_freshness_max_age_seconds The view's `freshness.max_age`.\n# TYPE quiver_view_freshness_max_age_seconds gauge"
    );
    for served in store.views() {
        if let Some(bound) = served.definition.freshness_max_age {
            let _ = writeln!(
                out,
                "quiver_view_freshness_max_age_seconds{{view=\"{}\"}} {}",
                esc(&served.definition.name),
                bound.as_secs_f64()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quiver_view_served_value_age_seconds Age of the newest value served for the view (now minus its event time).\n# TYPE quiver_view_served_value_age_seconds gauge"
    );
    for served in store.views() {
        let name = &served.definition.name;
        let newest = store
            .stats()
            .view(name)
            .newest_served_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        if newest > 0 {
            let _ = writeln!(
                out,
                "quiver_view_served_value_age_seconds{{view=\"{}\"}} {}",
                esc(name),
                (now - newest) as f64 / 1e9
            );
        }
    }
    if let Some(sizes) = sizes {
        let _ = writeln!(
            out,
            "# HELP quiver_view_online_keys Online records per view version (counted every `server.key_count_interval`).\n# TYPE quiver_view_online_keys gauge"
        );
        for s in sizes {
            let _ = writeln!(
                out,
                "quiver_view_online_keys{{view=\"{}\",version=\"{}\",served=\"{}\"}} {}",
                esc(&s.view),
                s.version,
                s.served,
                s.keys
            );
        }
        let _ = writeln!(
            out,
            "# HELP quiver_view_online_bytes Online bytes per view version (Redis: estimated from a sample).\n# TYPE quiver_view_online_bytes gauge"
        );
        for s in sizes {
            let _ = writeln!(
                out,
                "quiver_view_online_bytes{{view=\"{}\",version=\"{}\",served=\"{}\"}} {}",
                esc(&s.view),
                s.version,
                s.served,
                s.bytes
            );
        }
    }
}

/// One histogram series in Prometheus text: cumulative buckets, `+Inf`, sum and count.
fn histogram(out: &mut String, name: &str, labels: &str, h: &quiver::stats::HistogramSnapshot) {
    use std::fmt::Write as _;
    for (le, n) in h.cumulative_at_prometheus_bounds() {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}
