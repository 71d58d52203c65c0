//! Feast-compatible routes: `POST /get-online-features` and `POST /write-to-online-store`, in
//! Feast's JSON shapes, so Feast clients work unchanged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver::{FeatureSelection, OnlineRequest, OnlineResponse};
use quiver_core::FeatureStatus;
use quiver_core::value::format_timestamp;
use serde::Deserialize;
use serde_json::{Value as J, json};

use crate::AppState;
use crate::error::ApiError;

/// Feast's `GetOnlineFeaturesRequest`. Other optional Feast fields (such as
/// `include_feature_view_version_metadata`) are accepted and ignored.
#[derive(Deserialize)]
struct GetOnlineFeatures {
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    feature_service: Option<String>,
    entities: serde_json::Map<String, J>,
    #[serde(default)]
    full_feature_names: bool,
}

/// Feast's `WriteToFeatureStoreRequest`.
#[derive(Deserialize)]
struct WriteToOnlineStore {
    feature_view_name: String,
    df: serde_json::Map<String, J>,
}

fn body_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    max: usize,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request body is larger than the {max}-byte limit (`server.max_body_bytes`)"
                ),
            )
        } else {
            ApiError::malformed(format!("cannot read request body: {e}"))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Renders a response in Feast's JSON shape (also used by `quiver get --json`).
pub fn render(response: &OnlineResponse) -> J {
    let results: Vec<J> = response
        .columns
        .iter()
        .map(|col| {
            let values: Vec<J> = col.values.iter().map(|v| v.to_json()).collect();
            let statuses: Vec<J> = col
                .statuses
                .iter()
                .map(|s| J::String(s.as_str().to_string()))
                .collect();
            let timestamps: Vec<J> = col
                .event_timestamps
                .iter()
                .map(|ts| {
                    J::String(if *ts == 0 {
                        EPOCH.to_string()
                    } else {
                        format_timestamp(*ts)
                    })
                })
                .collect();
            json!({"values": values, "statuses": statuses, "event_timestamps": timestamps})
        })
        .collect();
    json!({"metadata": {"feature_names": response.feature_names}, "results": results})
}

/// `POST /get-online-features`.
pub async fn get_online_features(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: GetOnlineFeatures = body_json(body, state.max_body_bytes)?;
    let features = match (req.features, req.feature_service) {
        (Some(f), None) => FeatureSelection::Features(f),
        (None, Some(s)) => FeatureSelection::Service(s),
        (Some(_), Some(_)) => {
            return Err(ApiError::malformed(
                "give either `features` or `feature_service`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::malformed(
                "missing `features` (a list of `view:feature`) or `feature_service`",
            ));
        }
    };
    let mut entities = Vec::with_capacity(req.entities.len());
    for (name, values) in req.entities {
        let J::Array(values) = values else {
            return Err(ApiError::malformed(format!(
                "entity key `{name}` must be a list of values"
            )));
        };
        if values.len() > state.max_entities {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_entities",
                format!(
                    "request has {} entity rows; the limit is {} (`server.max_entities`)",
                    values.len(),
                    state.max_entities
                ),
            ));
        }
        entities.push((name, values));
    }
    if entities.is_empty() {
        return Err(ApiError::malformed(
            "`entities` is empty; give at least one join key",
        ));
    }
    let request = OnlineRequest {
        features,
        entities,
        full_feature_names: req.full_feature_names,
    };
    let store = state.store.load_full();
    let response = store.get_online_features(&request).await?;
    record_hits(&request, &response);
    Ok(axum::Json(render(&response)).into_response())
}

fn record_hits(request: &OnlineRequest, response: &OnlineResponse) {
    let skip = request.entities.len();
    for (name, col) in response
        .feature_names
        .iter()
        .zip(&response.columns)
        .skip(skip)
    {
        let _ = name;
        let (mut hit, mut miss, mut stale) = (0u64, 0u64, 0u64);
        for s in &col.statuses {
            match s {
                FeatureStatus::Present | FeatureStatus::NullValue => hit += 1,
                FeatureStatus::NotFound => miss += 1,
                FeatureStatus::OutsideMaxAge => stale += 1,
            }
        }
        metrics::counter!("quiver_online_values_total", "result" => "hit").increment(hit);
        metrics::counter!("quiver_online_values_total", "result" => "miss").increment(miss);
        metrics::counter!("quiver_online_values_total", "result" => "outside_max_age")
            .increment(stale);
    }
}

/// `POST /write-to-online-store`.
pub async fn write_to_online_store(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: WriteToOnlineStore = body_json(body, state.max_body_bytes)?;
    let summary = state
        .store
        .load_full()
        .write_to_online_store(&req.feature_view_name, &req.df)
        .await?;
    metrics::counter!("quiver_online_rows_written_total", "view" => req.feature_view_name.clone())
        .increment(summary.written as u64);
    Ok(axum::Json(json!({
        "written": summary.written,
        "skipped_older": summary.skipped_older,
    }))
    .into_response())
}
