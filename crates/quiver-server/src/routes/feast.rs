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
    entities: UniqueMap,
    #[serde(default)]
    full_feature_names: bool,
    /// Quiver's extension (Feast clients never send it): answer as of this RFC 3339 time from
    /// the offline layer.
    #[serde(default)]
    as_of: Option<String>,
}

/// Feast's `PushFeaturesRequest`.
#[derive(Deserialize)]
struct Push {
    push_source_name: String,
    df: UniqueMap,
    /// `online` (default), `offline` or `online_and_offline`.
    #[serde(default)]
    to: Option<String>,
    /// Feast's flag; the server always reads the registry it has loaded (reloaded on change).
    #[serde(default)]
    #[allow(dead_code)]
    allow_registry_cache: Option<bool>,
}

/// Feast's `WriteToFeatureStoreRequest`.
#[derive(Deserialize)]
struct WriteToOnlineStore {
    feature_view_name: String,
    df: UniqueMap,
}

/// A JSON object whose keys must be distinct: a repeated entity key or `df` column is an error
/// naming the key, not "the last one wins".
struct UniqueMap(serde_json::Map<String, J>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of columns")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueMap, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "key `{key}` appears twice"
                        )));
                    }
                    let value = access.next_value::<J>()?;
                    map.insert(key, value);
                }
                Ok(UniqueMap(map))
            }
        }
        d.deserialize_map(Visitor)
    }
}

pub(crate) fn body_json<T: serde::de::DeserializeOwned>(
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

/// Writes one value's JSON (same output as [`quiver_core::Value::to_json`]) without building a
/// `serde_json::Value`: numbers are formatted in place; other types fall back to the tree.
fn write_value(out: &mut Vec<u8>, v: &quiver_core::Value) {
    use quiver_core::Value as V;
    use std::io::Write as _;
    // Writes into a Vec cannot fail.
    let _ = match v {
        V::Null => out.write_all(b"null"),
        V::Int32(x) => write!(out, "{x}"),
        V::Int64(x) => write!(out, "{x}"),
        V::Bool(x) => write!(out, "{x}"),
        // serde_json formats floats with ryu: shortest round-trip text, exponent when short.
        V::Float32(x) if x.is_finite() => {
            serde_json::to_writer(&mut *out, x).map_err(std::io::Error::other)
        }
        V::Float64(x) if x.is_finite() => {
            serde_json::to_writer(&mut *out, x).map_err(std::io::Error::other)
        }
        V::String(s) => serde_json::to_writer(&mut *out, s).map_err(std::io::Error::other),
        V::Float32List(xs) if xs.iter().all(|x| x.is_finite()) => {
            out.push(b'[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, x);
            }
            out.write_all(b"]")
        }
        other => serde_json::to_writer(&mut *out, &other.to_json()).map_err(std::io::Error::other),
    };
}

/// [`render`] straight into bytes: the serving path, where building a `serde_json::Value` tree
/// (a `String` per status and timestamp) was a quarter of the CPU profile.
///
/// Columns of one view carry the same event times (and usually the same statuses), so a
/// column whose `statuses` or `event_timestamps` equal the previous column's copies the bytes
/// rendered for it instead of formatting 100 timestamps again.
pub fn render_bytes(response: &OnlineResponse) -> Vec<u8> {
    let rows = response.rows();
    let mut out: Vec<u8> = Vec::with_capacity(64 + response.columns.len() * rows * 24);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":");
    let _ = serde_json::to_writer(&mut out, &response.feature_names);
    out.extend_from_slice(b"},\"results\":[");
    // Distinct event times are formatted once per response.
    let mut formatted: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    let mut previous: Option<&quiver::FeatureColumn> = None;
    let mut statuses_at = 0..0;
    let mut timestamps_at = 0..0;
    for (c, col) in response.columns.iter().enumerate() {
        if c > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":[");
        for (i, v) in col.values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(&mut out, v);
        }
        out.extend_from_slice(b"],\"statuses\":");
        let same = previous.is_some_and(|p| p.statuses == col.statuses);
        reuse_or_render(&mut out, same, &mut statuses_at, |out| {
            for (i, s) in col.statuses.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(s.as_str().as_bytes());
                out.push(b'"');
            }
        });
        out.extend_from_slice(b",\"event_timestamps\":");
        let same = previous.is_some_and(|p| p.event_timestamps == col.event_timestamps);
        reuse_or_render(&mut out, same, &mut timestamps_at, |out| {
            for (i, ts) in col.event_timestamps.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                if *ts == 0 {
                    out.extend_from_slice(EPOCH.as_bytes());
                } else {
                    let text = formatted
                        .entry(*ts)
                        .or_insert_with(|| format_timestamp(*ts));
                    out.extend_from_slice(text.as_bytes());
                }
                out.push(b'"');
            }
        });
        out.push(b'}');
        previous = Some(col);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Appends a JSON array: a copy of the bytes at `*at` when `same` (the previous column's array
/// was equal), else `[`, what `items` writes, `]`. `*at` then spans the array just written.
fn reuse_or_render(
    out: &mut Vec<u8>,
    same: bool,
    at: &mut std::ops::Range<usize>,
    items: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    if same {
        out.extend_from_within(at.clone());
    } else {
        out.push(b'[');
        items(out);
        out.push(b']');
    }
    *at = start..out.len();
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
    let mut entities = Vec::with_capacity(req.entities.0.len());
    for (name, values) in req.entities.0 {
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
    let store = state.store.load_full();
    let as_of = req
        .as_of
        .as_deref()
        .map(quiver_core::value::parse_timestamp)
        .transpose()
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_argument",
                format!("`as_of`: {e}"),
            )
        })?;
    let request = OnlineRequest {
        features,
        entities: crate::feast_json::decode_entities(&store, entities)?,
        full_feature_names: req.full_feature_names,
        as_of,
    };
    // Online reads give up at the request's deadline, leaving time for the fallback layer;
    // the whole request is bounded by the router's timeout.
    let deadline = tokio::time::Instant::now() + state.request_timeout * 3 / 4;
    let response = store
        .get_online_features_by(&request, Some(deadline))
        .await?;
    record_hits(&request, &response);
    let layer = response.layer_summary();
    metrics::counter!("quiver_served_rows_total", "layer" => layer)
        .increment(response.rows() as u64);
    let mut out = (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::HeaderName::from_static("x-quiver-layer"), layer),
        ],
        render_bytes(&response),
    )
        .into_response();
    // The served-feature log record of this answer, when its service logs.
    if let Some(id) = response
        .logged_as
        .as_deref()
        .and_then(|id| axum::http::HeaderValue::from_str(id).ok())
    {
        out.headers_mut()
            .insert(axum::http::HeaderName::from_static("x-quiver-log-id"), id);
    }
    Ok(out)
}

/// Counts served values by outcome: three counter updates per request, not per column.
fn record_hits(request: &OnlineRequest, response: &OnlineResponse) {
    let skip = request.entities.len();
    let (mut hit, mut miss, mut stale) = (0u64, 0u64, 0u64);
    for col in response.columns.iter().skip(skip) {
        for s in &col.statuses {
            match s {
                FeatureStatus::Present | FeatureStatus::NullValue => hit += 1,
                FeatureStatus::NotFound => miss += 1,
                FeatureStatus::OutsideMaxAge => stale += 1,
            }
        }
    }
    metrics::counter!("quiver_online_values_total", "result" => "hit").increment(hit);
    metrics::counter!("quiver_online_values_total", "result" => "miss").increment(miss);
    metrics::counter!("quiver_online_values_total", "result" => "outside_max_age").increment(stale);
}

/// `POST /push`: see [`crate::feast_json::push`].
pub async fn push(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: Push = body_json(body, state.max_body_bytes)?;
    let to = quiver::push::PushTo::parse(req.to.as_deref().unwrap_or("online"))?;
    let store = state.store.load_full();
    let report = crate::feast_json::push(&store, &req.push_source_name, &req.df.0, to).await?;
    for v in &report.views {
        metrics::counter!("quiver_online_rows_written_total", "view" => v.view.clone())
            .increment(v.written as u64);
    }
    // The source name is a registered push source (an unknown one failed above): bounded.
    if report.offline_rows > 0 {
        metrics::counter!("quiver_push_offline_rows_total", "source" => report.push_source.clone())
            .increment(report.offline_rows);
    }
    Ok(axum::Json(report).into_response())
}

/// `POST /write-to-online-store`.
pub async fn write_to_online_store(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: WriteToOnlineStore = body_json(body, state.max_body_bytes)?;
    let store = state.store.load_full();
    let rows = crate::feast_json::decode_rows(&store, &req.feature_view_name, &req.df.0)?;
    let summary = store
        .write_to_online_store(&req.feature_view_name, &rows)
        .await?;
    metrics::counter!("quiver_online_rows_written_total", "view" => req.feature_view_name.clone())
        .increment(summary.written as u64);
    Ok(axum::Json(json!({
        "written": summary.written,
        "skipped_older": summary.skipped_older,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver::FeatureColumn;
    use quiver_core::Value;

    #[test]
    fn byte_renderer_matches_the_json_tree() {
        let values = vec![
            Value::Null,
            Value::Int32(-3),
            Value::Int64(i64::MAX),
            Value::Float32(0.1),
            Value::Float32(f32::NAN),
            Value::Float64(-2.5e-300),
            Value::Float64(f64::INFINITY),
            Value::Bool(true),
            Value::String("a \"quoted\" \\ line\n".into()),
            Value::Bytes(vec![0, 255]),
            Value::Timestamp(1_700_000_000_123_456_789),
            Value::Decimal("1.50".parse().unwrap()),
            Value::Float32List(vec![1.5, -0.0, 3.25e-7]),
            Value::Float32List(vec![f32::NAN]),
            Value::StringList(vec!["x".into()]),
        ];
        let n = values.len();
        let response = OnlineResponse {
            layers: vec![vec![quiver::Layer::Online]; n],
            logged_as: None,
            feature_names: ["id", "f", "g", "h", "k"].map(String::from).to_vec(),
            columns: vec![
                FeatureColumn {
                    values: (0..n as i64).map(Value::Int64).collect(),
                    statuses: vec![FeatureStatus::Present; n],
                    event_timestamps: vec![0; n],
                },
                FeatureColumn {
                    values: values.clone(),
                    statuses: vec![FeatureStatus::OutsideMaxAge; n],
                    event_timestamps: (0..n as i64).map(|i| i * 1_000_000_007).collect(),
                },
                // Same statuses and times as the previous column: their bytes are copied.
                FeatureColumn {
                    values: values.iter().rev().cloned().collect(),
                    statuses: vec![FeatureStatus::OutsideMaxAge; n],
                    event_timestamps: (0..n as i64).map(|i| i * 1_000_000_007).collect(),
                },
                // Same times, other statuses; then other times, same statuses.
                FeatureColumn {
                    values: values.clone(),
                    statuses: (0..n)
                        .map(|i| [FeatureStatus::Present, FeatureStatus::NotFound][i % 2])
                        .collect(),
                    event_timestamps: (0..n as i64).map(|i| i * 1_000_000_007).collect(),
                },
                FeatureColumn {
                    values,
                    statuses: (0..n)
                        .map(|i| [FeatureStatus::Present, FeatureStatus::NotFound][i % 2])
                        .collect(),
                    event_timestamps: (0..n as i64).map(|i| 5 + i).collect(),
                },
            ],
        };
        let bytes = render_bytes(&response);
        let parsed: J = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, render(&response));
    }
}
