//! Operational routes: `GET /health` (online store reachability and ping latency) and
//! `GET /metrics` (Prometheus text format), `POST /materialize`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// `GET /health`: 200 when the online store answers a ping, 503 otherwise.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let current = state.store.load_full();
    let store = current.online_store();
    let serial = current.registry().map(|r| r.serial).ok();
    let circuit = store.resilience().map(|r| {
        let state = r.breaker.state;
        metrics::gauge!("quiver_online_circuit_open").set(match state {
            quiver::online_store::resilient::BreakerState::Closed => 0.0,
            quiver::online_store::resilient::BreakerState::HalfOpen => 0.5,
            quiver::online_store::resilient::BreakerState::Open => 1.0,
        });
        json!({
            "state": state.as_str(),
            "consecutive_failures": r.breaker.consecutive_failures,
            "retries": r.retries,
            "timeouts": r.timeouts,
        })
    });
    let queues = match current.records().store() {
        Ok(_) => match current.queue_stats().await {
            Ok(stats) => {
                crate::metrics::record_queues(&stats);
                super::records::queues_json(&stats)
            }
            Err(e) => json!({"error": e.to_string()}),
        },
        Err(_) => serde_json::Value::Null,
    };
    let memory = memory(store.as_ref()).await;
    match store.ping().await {
        Ok(latency) => {
            metrics::gauge!("quiver_online_store_up").set(1.0);
            (
                StatusCode::OK,
                axum::Json(json!({
                    "status": "ok",
                    "warming": state.warming.load(std::sync::atomic::Ordering::SeqCst),
                    "project": current.project_name(),
                    "registry_serial": serial,
                    "online_store": {
                        "kind": store.kind(),
                        "ok": true,
                        "ping_ms": latency.as_secs_f64() * 1e3,
                        "circuit": circuit,
                        "memory": memory,
                    },
                    "export_queue": queues,
                })),
            )
                .into_response()
        }
        Err(e) => {
            metrics::gauge!("quiver_online_store_up").set(0.0);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "unavailable",
                    "project": current.project_name(),
                    "registry_serial": serial,
                    "online_store": {
                        "kind": store.kind(),
                        "ok": false,
                        "error": e.to_string(),
                        "circuit": circuit,
                    },
                })),
            )
                .into_response()
        }
    }
}

/// `GET /ready`: 200 once the server is ready for traffic, 503 `warming` while `serve --warm`
/// is loading the online store.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.warming.load(std::sync::atomic::Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "warming"})),
        )
            .into_response();
    }
    (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response()
}

/// Reads the online store's memory into the gauges; the JSON for `/health`.
async fn memory(store: &dyn quiver::online_store::OnlineStore) -> serde_json::Value {
    match store.memory().await {
        Ok(Some(m)) => {
            ::metrics::gauge!("quiver_online_store_memory_bytes").set(m.used_bytes as f64);
            ::metrics::gauge!("quiver_online_store_evicted_keys").set(m.evicted_keys as f64);
            if let Some(max) = m.max_bytes {
                ::metrics::gauge!("quiver_online_store_memory_max_bytes").set(max as f64);
            }
            json!({"used_bytes": m.used_bytes, "max_bytes": m.max_bytes, "evicted_keys": m.evicted_keys})
        }
        Ok(None) => serde_json::Value::Null,
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// `GET /metrics`. The export queue and memory gauges are read from the store on each scrape.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let current = state.store.load_full();
    let _ = tokio::time::timeout(
        state.request_timeout,
        memory(current.online_store().as_ref()),
    )
    .await;
    if let Some(log) = current.records().served_log() {
        ::metrics::counter!("quiver_served_log_records_total").absolute(log.written());
        ::metrics::counter!("quiver_served_log_dropped_total").absolute(log.dropped());
    }
    if current.records().store().is_ok() {
        match tokio::time::timeout(state.request_timeout, current.queue_stats()).await {
            Ok(Ok(stats)) => crate::metrics::record_queues(&stats),
            Ok(Err(e)) => tracing::debug!(error = %e, "export queue stats unavailable"),
            Err(_) => tracing::debug!("export queue stats timed out"),
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `POST /materialize` body: all fields optional.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaterializeBody {
    #[serde(default)]
    views: Vec<String>,
    /// RFC 3339.
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    strict: Option<bool>,
}

fn parse_time(field: &str, text: Option<String>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        quiver_core::value::parse_timestamp(&t).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_argument",
                format!("`{field}`: {e}"),
            )
        })
    })
    .transpose()
}

/// `POST /materialize`: `{"views": [...], "start": T, "end": T, "strict": bool}` (all optional).
pub async fn materialize(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: MaterializeBody = if body.iter().all(u8::is_ascii_whitespace) {
        MaterializeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?
    };
    let options = quiver::MaterializeOptions {
        views: req.views,
        start: parse_time("start", req.start)?,
        end: parse_time("end", req.end)?,
        strict: req.strict,
    };
    let store = state.store.load_full();
    let report = store.materialize(&options, &quiver::NoProgress).await?;
    let views: Vec<serde_json::Value> = report
        .views
        .iter()
        .map(|v| {
            json!({
                "view": v.view, "version": v.version, "rows_scanned": v.rows_scanned,
                "rows_null_timestamp": v.rows_null_timestamp, "rows_null_key": v.rows_null_key,
                "entities": v.entities, "written": v.written, "skipped_older": v.skipped_older,
                "rejected": v.rejected, "rejections": v.rejections, "seconds": v.seconds,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "views": views })).into_response())
}
