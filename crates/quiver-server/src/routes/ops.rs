//! Operational routes: health (`/livez`, `/readyz`, `/health`), `GET /stats`, `GET /metrics`
//! (Prometheus text format), `POST /materialize`, `POST /invalidate`, `POST /prune-online`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quiver::core::definitions::FallbackOn;
use quiver::online_store::resilient::BreakerState;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything answers within its thresholds.
    Healthy,
    /// Serving, with something to look at: the fallback layer answering for the online store,
    /// a slow ping, memory near its limit, an old export queue, a stale view.
    Degraded,
    /// Cannot serve: no registry, or neither the online store nor a fallback layer answers.
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            Status::Healthy => 0.0,
            Status::Degraded => 1.0,
            Status::Unhealthy => 2.0,
        }
    }
}

/// What `/health`, `/readyz` and the health gauges are computed from.
pub struct Assessment {
    pub status: Status,
    pub ready: bool,
    pub online_up: bool,
    /// `serve --warm` was still loading the online store.
    pub warming: bool,
    /// Why the status is not `healthy` (or why not ready).
    pub reasons: Vec<String>,
    pub body: Value,
}

/// Checks every component (each bounded by `server.request_timeout`) and sets the health
/// gauges.
pub async fn assess(state: &AppState) -> Assessment {
    let current = state.store.load_full();
    let limits = &current.project().config.server.health;
    let timeout = state.request_timeout;
    let mut reasons: Vec<String> = Vec::new();
    let mut unhealthy = false;
    let warming = state.warming.load(std::sync::atomic::Ordering::SeqCst);

    let registry = current.registry();
    let registry_json = match &registry {
        Ok(r) => json!({"ok": true, "serial": r.serial}),
        Err(e) => {
            unhealthy = true;
            reasons.push(format!("registry: {e}"));
            json!({"ok": false, "error": e.to_string()})
        }
    };

    let store = current.online_store();
    let circuit = store.resilience().map(|r| {
        let state = r.breaker.state;
        ::metrics::gauge!("quiver_online_circuit_open").set(match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 0.5,
            BreakerState::Open => 1.0,
        });
        if state != BreakerState::Closed {
            reasons.push(format!("online store circuit {}", state.as_str()));
        }
        json!({
            "state": state.as_str(),
            "consecutive_failures": r.breaker.consecutive_failures,
            "retries": r.retries,
            "timeouts": r.timeouts,
        })
    });
    let ping = tokio::time::timeout(timeout, store.ping()).await;
    let online_ok = matches!(ping, Ok(Ok(_)));
    let mut online = json!({"kind": store.kind(), "ok": online_ok, "circuit": circuit});
    match ping {
        Ok(Ok(latency)) => {
            online["ping_ms"] = json!(latency.as_secs_f64() * 1e3);
            if latency > limits.max_ping {
                reasons.push(format!(
                    "online store ping {:.1} ms is over `server.health.max_ping` ({:?})",
                    latency.as_secs_f64() * 1e3,
                    limits.max_ping
                ));
            }
            if let Ok(memory) = tokio::time::timeout(timeout, memory(store.as_ref())).await {
                if let (Some(used), Some(max)) = (
                    memory["used_bytes"].as_f64(),
                    memory["max_bytes"].as_f64().filter(|m| *m > 0.0),
                ) && used / max > limits.max_memory_ratio
                {
                    reasons.push(format!(
                        "online store memory {:.0}% of its limit is over `server.health.max_memory_ratio` ({:.0}%)",
                        used / max * 100.0,
                        limits.max_memory_ratio * 100.0
                    ));
                }
                online["memory"] = memory;
            }
        }
        Ok(Err(e)) => online["error"] = json!(e.to_string()),
        Err(_) => online["error"] = json!(format!("no answer to a ping within {timeout:?}")),
    }

    // The offline layer: opened (PostgreSQL: connected) within the timeout.
    let offline_kind = match &current.project().config.offline_store {
        quiver::config::OfflineStoreConfig::Parquet(_) => "parquet",
        quiver::config::OfflineStoreConfig::Postgres(_) => "postgres",
    };
    let offline = tokio::time::timeout(timeout, current.offline_store()).await;
    let offline_ok = matches!(offline, Ok(Ok(_)));
    let mut offline_json = json!({"kind": offline_kind, "ok": offline_ok});
    match offline {
        Ok(Err(e)) => offline_json["error"] = json!(e.to_string()),
        Err(_) => offline_json["error"] = json!(format!("not reachable within {timeout:?}")),
        Ok(Ok(_)) => {}
    }
    // Does a fallback answer for the online store (the default policy or a view's own)?
    let fallback = current
        .project()
        .config
        .serving
        .fallback
        .on(FallbackOn::Unavailable)
        || current.views().any(|v| {
            v.definition
                .fallback
                .as_ref()
                .is_some_and(|f| f.on(FallbackOn::Unavailable))
        });
    offline_json["fallback"] = json!(fallback);
    if !online_ok {
        if fallback && offline_ok {
            reasons.push("online store unavailable; the offline layer answers".to_string());
        } else {
            unhealthy = true;
            reasons.push("online store unavailable and no fallback layer answers".to_string());
        }
    }

    let queues = match current.records().store() {
        Ok(_) => match tokio::time::timeout(timeout, current.queue_stats()).await {
            Ok(Ok(stats)) => {
                crate::metrics::record_queues(&stats);
                for (ns, s) in &stats {
                    if s.oldest_age_seconds()
                        .is_some_and(|age| age > limits.max_export_queue_age.as_secs_f64())
                    {
                        reasons.push(format!(
                            "export queue `{ns}` holds records older than `server.health.max_export_queue_age` ({:?})",
                            limits.max_export_queue_age
                        ));
                    }
                }
                super::records::queues_json(&stats)
            }
            Ok(Err(e)) => json!({"error": e.to_string()}),
            Err(_) => json!({"error": format!("no answer within {timeout:?}")}),
        },
        Err(_) => Value::Null,
    };

    let mut views = serde_json::Map::new();
    if let Ok(freshness) = current.freshness(quiver_online_now()) {
        for f in freshness {
            reasons.extend(f.stale_reason());
            views.insert(
                f.view.clone(),
                json!({
                    "version": f.version,
                    "materialized_seconds_ago": f.materialized_seconds_ago,
                    "newest_event": f.newest_event.map(quiver_core::value::format_timestamp),
                    "newest_event_seconds_ago": f.newest_event_seconds_ago,
                    "freshness_max_age_seconds": f.max_age.map(|b| b.as_secs_f64()),
                    "stale": f.stale,
                }),
            );
        }
    }

    let status = if unhealthy {
        Status::Unhealthy
    } else if reasons.is_empty() {
        Status::Healthy
    } else {
        Status::Degraded
    };
    let ready = registry.is_ok() && !warming && (online_ok || (fallback && offline_ok));
    let body = json!({
        "status": status.as_str(),
        "ready": ready,
        "reasons": reasons,
        "project": current.project_name(),
        "uptime_seconds": current.stats().uptime().as_secs_f64(),
        "warming": warming,
        "registry": registry_json,
        "online_store": online,
        "offline_layer": offline_json,
        "export_queue": queues,
        "views": views,
    });
    Assessment {
        status,
        ready,
        online_up: online_ok,
        warming,
        reasons,
        body,
    }
}

impl Assessment {
    /// `quiver_online_store_up`, `quiver_ready` and `quiver_health_status` in Prometheus text
    /// (rendered per scrape from this assessment, not kept in the process-wide recorder).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let flag = |b: bool| if b { 1 } else { 0 };
        let _ = writeln!(
            out,
            "# HELP quiver_online_store_up Whether the online store answered a ping.\n# TYPE quiver_online_store_up gauge\nquiver_online_store_up {}",
            flag(self.online_up)
        );
        let _ = writeln!(
            out,
            "# HELP quiver_ready Whether the server is ready to serve (`/readyz`).\n# TYPE quiver_ready gauge\nquiver_ready {}",
            flag(self.ready)
        );
        let _ = writeln!(
            out,
            "# HELP quiver_health_status 0 healthy, 1 degraded, 2 unhealthy (`/health`).\n# TYPE quiver_health_status gauge\nquiver_health_status {}",
            self.status.gauge()
        );
    }
}

fn quiver_online_now() -> i64 {
    quiver::online_store::now_ns()
}

/// `GET /health`: every component and an overall `healthy | degraded | unhealthy`; 200 unless
/// unhealthy (503).
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let a = assess(&state).await;
    let code = match a.status {
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (code, axum::Json(a.body)).into_response()
}

/// `GET /livez`: the process answers (nothing else is checked).
pub async fn livez() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "alive"}))).into_response()
}

/// `GET /readyz` (and `/ready`): 200 when the server can serve — registry loaded, warm-up
/// done, the online store or a fallback layer answering; 503 with the reasons otherwise.
/// Degraded is ready.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let a = assess(&state).await;
    if a.ready {
        return (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "health": a.status.as_str()})),
        )
            .into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "status": if a.warming { "warming" } else { "not_ready" },
            "reasons": a.reasons,
        })),
    )
        .into_response()
}

/// `GET /stats`: per view and layer, since start and over the last minute.
pub async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let current = state.store.load_full();
    let report = current.stats().report();
    let mut body = serde_json::to_value(&report).unwrap_or(Value::Null);
    body["uptime_seconds"] = json!(current.stats().uptime().as_secs_f64());
    axum::Json(body).into_response()
}

/// Reads the online store's memory into the gauges; the JSON for `/health`.
async fn memory(store: &dyn quiver::online_store::OnlineStore) -> Value {
    match store.memory().await {
        Ok(Some(m)) => {
            ::metrics::gauge!("quiver_online_store_memory_bytes").set(m.used_bytes as f64);
            ::metrics::gauge!("quiver_online_store_evicted_keys").set(m.evicted_keys as f64);
            ::metrics::gauge!("quiver_online_store_memory_max_bytes")
                .set(m.max_bytes.unwrap_or(0) as f64);
            json!({"used_bytes": m.used_bytes, "max_bytes": m.max_bytes, "evicted_keys": m.evicted_keys})
        }
        Ok(None) => Value::Null,
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// `GET /metrics`. Health, memory and the export queues are read from the stores on each
/// scrape; the serving statistics are rendered from their counters.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let current = state.store.load_full();
    let assessment = tokio::time::timeout(state.request_timeout * 2, assess(&state))
        .await
        .ok();
    if let Some(log) = current.records().served_log() {
        ::metrics::counter!("quiver_served_log_records_total").absolute(log.written());
        ::metrics::counter!("quiver_served_log_dropped_total").absolute(log.dropped());
    }
    let mut text = state.metrics.render();
    let sizes = state
        .online_sizes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    crate::metrics::render_stats(&mut text, &current, sizes.as_deref());
    if let Some(a) = assessment {
        a.render(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `POST /invalidate`: `{"view": V, "version": N?, "entities": {"user_id": [42, 7]}?}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateBody {
    view: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    entities: Option<serde_json::Map<String, Value>>,
}

pub async fn invalidate(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: InvalidateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?;
    let store = state.store.load_full();
    let entities = match req.entities {
        Some(map) if !map.is_empty() => {
            let columns = map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Array(values) => Ok((k, values)),
                    other => Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_argument",
                        format!("`entities.{k}`: expected an array of values, got `{other}`"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            crate::feast_json::decode_entities(&store, columns)?
        }
        _ => Vec::new(),
    };
    let report = store.invalidate(&req.view, req.version, &entities).await?;
    Ok(axum::Json(report).into_response())
}

/// `POST /prune-online`: `{"keep_versions": 0, "dry_run": false, "offline": false}` (all
/// optional; without `keep_versions`, each view's `max_versions` decides; `offline` also drops
/// the pruned versions' offline tables).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    #[serde(default)]
    keep_versions: Option<usize>,
    #[serde(default)]
    dry_run: bool,
    /// Also drop the pruned versions' offline tables.
    #[serde(default)]
    offline: bool,
}

pub async fn prune_online(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: PruneBody = if body.iter().all(u8::is_ascii_whitespace) {
        PruneBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?
    };
    let store = state.store.load_full();
    let report = match req.offline {
        true => {
            store
                .prune_online_and_offline(req.keep_versions, req.dry_run)
                .await?
        }
        false => store.prune_online(req.keep_versions, req.dry_run).await?,
    };
    Ok(axum::Json(report).into_response())
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

/// `GET /lineage?feature=view:feature`: where the feature comes from (source, transformation,
/// version, services, recent materializations and builds).
pub async fn lineage(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let feature = query.get("feature").ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_argument",
            "missing query parameter `feature` (e.g. `/lineage?feature=user_profile:age`)"
                .to_string(),
        )
    })?;
    let store = state.store.load_full();
    let lineage = store.lineage(feature).await?;
    Ok(axum::Json(lineage).into_response())
}
