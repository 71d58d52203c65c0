//! Operational routes: `GET /health` (online store reachability and ping latency) and
//! `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// `GET /health`: 200 when the online store answers a ping, 503 otherwise.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.online_store();
    let serial = state.store.registry().map(|r| r.serial).ok();
    match store.ping().await {
        Ok(latency) => {
            metrics::gauge!("quiver_online_store_up").set(1.0);
            (
                StatusCode::OK,
                axum::Json(json!({
                    "status": "ok",
                    "project": state.store.project_name(),
                    "registry_serial": serial,
                    "online_store": {
                        "kind": store.kind(),
                        "ok": true,
                        "ping_ms": latency.as_secs_f64() * 1e3,
                    },
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
                    "project": state.store.project_name(),
                    "registry_serial": serial,
                    "online_store": {"kind": store.kind(), "ok": false, "error": e.to_string()},
                })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
