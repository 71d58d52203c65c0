//! Records, predictions and export:
//! - `PUT /records/{ns}/{id}` (a JSON object), `GET` and `DELETE` the same path;
//! - `POST /records/{ns}`: many records in one call, `{"records": [...]}` or a JSON array,
//!   accepted all or none;
//! - `POST /predictions`, `GET /predictions/{model}?user_id=42` (the latest for that entity);
//! - `POST /export` (`{"namespaces": [...]}`, optional): drain the queues into the offline store
//!   now; `GET /export/queue`: each namespace's queue;
//!   `GET /export/dead-letters/{ns}`, `POST /export/dead-letters/{ns}/replay`.
//!
//! A record answered 2xx is cached and queued durably; an error (422 naming the field, 503
//! when the store is down) means it was not accepted.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver::records::Envelope;
use serde_json::{Map, Value, json};

use super::feast::body_json;
use crate::AppState;
use crate::error::ApiError;

fn rfc3339(ns: i64) -> String {
    quiver_core::value::format_timestamp(ns)
}

fn envelope_json(namespace: &str, e: &Envelope) -> Value {
    json!({
        "namespace": namespace,
        "id": e.id,
        "accepted_at": rfc3339(e.accepted_at),
        "time": rfc3339(e.time),
        "record": e.record,
    })
}

/// 200 with the queue position, or 202 `"spilled": true` when the record went to the local
/// spill file (the store was unavailable; it is queued when the file is replayed).
fn receipt_response(mut body: Value, position: Option<quiver_core::QueuePosition>) -> Response {
    match position {
        Some(p) => {
            body["position"] = Value::String(p.to_string());
            Json(body).into_response()
        }
        None => {
            body["spilled"] = Value::Bool(true);
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    }
}

fn count(namespace: &str, outcome: &'static str, n: usize) {
    metrics::counter!("quiver_records_total", "namespace" => namespace.to_string(), "outcome" => outcome)
        .increment(n as u64);
}

/// Counts refused records by namespace (only declared ones: label values stay bounded).
fn refused(state: &AppState, namespace: &str, n: usize, e: &quiver::Error) {
    let store = state.store.load();
    if store.records().namespace(namespace).is_ok() {
        let outcome = match e.kind() {
            quiver::ErrorKind::InvalidArgument => "invalid",
            quiver::ErrorKind::Unavailable => "unavailable",
            _ => "error",
        };
        count(namespace, outcome, n);
    }
}

/// `PUT /records/{ns}/{id}`.
pub async fn put_record(
    State(state): State<Arc<AppState>>,
    Path((namespace, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let record: Value = body_json(body, state.max_body_bytes)?;
    let store = state.store.load_full();
    match store.put_record(&namespace, &id, record).await {
        Ok(r) => {
            count(&namespace, "accepted", 1);
            Ok(receipt_response(
                json!({"namespace": namespace, "id": r.id}),
                r.position,
            ))
        }
        Err(e) => {
            refused(&state, &namespace, 1, &e);
            Err(e.into())
        }
    }
}

/// `POST /records/{ns}`.
pub async fn put_records(
    State(state): State<Arc<AppState>>,
    Path(namespace): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: Value = body_json(body, state.max_body_bytes)?;
    let records = match body {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("records") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::malformed(
                    "expected a JSON array of records or {\"records\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::malformed(
                "expected a JSON array of records or {\"records\": [...]}",
            ));
        }
    };
    let n = records.len();
    let store = state.store.load_full();
    match store
        .put_records(&namespace, records.into_iter().map(|r| (None, r)).collect())
        .await
    {
        Ok(receipts) => {
            count(&namespace, "accepted", n);
            let ids: Vec<&str> = receipts.iter().map(|r| r.id.as_str()).collect();
            let spilled = receipts.iter().any(|r| r.position.is_none());
            let status = if spilled {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok((
                status,
                Json(json!({"namespace": namespace, "accepted": receipts.len(), "ids": ids, "spilled": spilled})),
            )
                .into_response())
        }
        Err(e) => {
            refused(&state, &namespace, n, &e);
            Err(e.into())
        }
    }
}

/// `GET /records/{ns}/{id}`.
pub async fn get_record(
    State(state): State<Arc<AppState>>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = state.store.load_full();
    match store.get_record(&namespace, &id).await? {
        Some(e) => Ok(Json(envelope_json(&namespace, &e)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no record `{id}` in namespace `{namespace}` (never written, expired or deleted)"
            ),
        )),
    }
}

/// `DELETE /records/{ns}/{id}`.
pub async fn delete_record(
    State(state): State<Arc<AppState>>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = state.store.load_full();
    let deleted = store.delete_record(&namespace, &id).await?;
    Ok(Json(json!({"namespace": namespace, "id": id, "deleted": deleted})).into_response())
}

/// `POST /predictions`.
pub async fn put_prediction(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let prediction: Value = body_json(body, state.max_body_bytes)?;
    let store = state.store.load_full();
    match store.put_prediction(prediction).await {
        Ok(r) => {
            count(quiver::records::PREDICTIONS, "accepted", 1);
            Ok(receipt_response(json!({"request_id": r.id}), r.position))
        }
        Err(e) => {
            refused(&state, quiver::records::PREDICTIONS, 1, &e);
            Err(e.into())
        }
    }
}

/// `GET /predictions/{model}?user_id=42`.
pub async fn latest_prediction(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    Query(entity): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let entity: Map<String, Value> = entity
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let store = state.store.load_full();
    match store.latest_prediction(&model, &entity).await? {
        Some(e) => Ok(Json(envelope_json(quiver::records::PREDICTIONS, &e)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no prediction of model `{model}` for {} (never made, or older than the namespace's TTL)",
                Value::Object(entity)
            ),
        )),
    }
}

/// `POST /export`.
pub async fn export(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::malformed(format!("cannot read request body: {e}")))?;
    let mut options = quiver::ExportOptions::default();
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?;
        if let Some(list) = v.get("namespaces").and_then(Value::as_array) {
            for n in list {
                let n = n.as_str().ok_or_else(|| {
                    ApiError::malformed("field `namespaces` must be a list of names")
                })?;
                options.namespaces.push(n.to_string());
            }
        }
    }
    let store = state.store.load_full();
    let report = store.export(&options).await?;
    crate::metrics::record_export(&report);
    Ok(Json(report).into_response())
}

/// `GET /export/queue`.
pub async fn queue(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.load_full();
    let stats = store.queue_stats().await?;
    Ok(Json(json!({"namespaces": queues_json(&stats)})).into_response())
}

/// Each namespace's queue as `/export/queue` and `/health` show it.
pub fn queues_json(stats: &[(String, quiver::online_store::records::QueueStats)]) -> Value {
    stats
        .iter()
        .map(|(ns, s)| {
            json!({
                "namespace": ns,
                "length": s.length,
                "pending": s.pending,
                "oldest_age_seconds": s.oldest_age_seconds(),
                "dead_letters": s.dead_letters,
            })
        })
        .collect()
}

/// `GET /export/dead-letters/{ns}?limit=100`.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    Path(namespace): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::malformed(format!("query `limit`: `{l}` is not a number")))?,
        None => 100,
    };
    let store = state.store.load_full();
    let letters = store.dead_letters(&namespace, limit).await?;
    let out: Vec<Value> = letters
        .iter()
        .map(|d| {
            json!({
                "position": d.position.to_string(),
                "reason": d.reason,
                "at": rfc3339(d.at_ms as i64 * 1_000_000),
                "record": serde_json::from_slice::<Value>(&d.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({"namespace": namespace, "dead_letters": out})).into_response())
}

/// `POST /export/dead-letters/{ns}/replay`.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.store.load_full();
    let n = store.replay_dead_letters(&namespace).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"namespace": namespace, "replayed": n})),
    )
        .into_response())
}
