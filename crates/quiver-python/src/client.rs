//! `Client`: the same reads and writes against a running `quiver serve`, over HTTP. One
//! connection pool per client (connections are reused), a timeout per request, and retries
//! with exponential backoff when the server answers 503 (or `Retry-After` says how long).

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{Value as J, json};
use tokio::runtime::Runtime;

use crate::args::{frame_columns, online_args};
use crate::convert::{json_to_py, py_to_json};
use crate::errors::{Failure, server_kind};
use crate::response::{Answer, JsonColumns, OnlineResponse};
use crate::store::runtime;

/// A client of a Quiver feature server (Feast's HTTP API plus Quiver's records routes).
#[pyclass(frozen, module = "quiver._quiver", name = "Client")]
pub struct Client {
    runtime: Arc<Runtime>,
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    retries: u32,
    backoff: Duration,
}

enum Outcome {
    Done(J),
    /// 404 on a lookup by id.
    Missing,
}

impl Client {
    /// Sends one request, retrying 503s and connection failures; the JSON body of a 2xx, or
    /// the server's error as its exception.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&J>,
        missing_ok: bool,
    ) -> Result<Outcome, Failure> {
        let url = format!("{}{path}", self.url);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let wait = self.backoff * 2u32.saturating_pow(attempt);
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.retries && (e.is_connect() || e.is_timeout()) => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    return Err(Failure::unavailable(format!(
                        "{method} {url}: {e} (after {} attempts)",
                        attempt + 1
                    )));
                }
            };
            let status = response.status();
            let retryable = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            if retryable && attempt < self.retries {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|s| Duration::from_secs_f64(s.clamp(0.0, 30.0)));
                attempt += 1;
                tokio::time::sleep(retry_after.unwrap_or(wait)).await;
                continue;
            }
            let bytes = response.bytes().await.map_err(|e| {
                Failure::unavailable(format!("{method} {url}: reading the answer: {e}"))
            })?;
            let json: J = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::internal(format!(
                    "{method} {url}: {status}, not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            })?;
            if status.is_success() {
                return Ok(Outcome::Done(json));
            }
            let kind = json["error"]["kind"].as_str().unwrap_or("internal");
            let message = json["error"]["message"]
                .as_str()
                .map_or_else(|| json.to_string(), str::to_string);
            // A lookup by id that found nothing (not an unknown namespace or route).
            if missing_ok
                && status == reqwest::StatusCode::NOT_FOUND
                && message.starts_with("no record")
            {
                return Ok(Outcome::Missing);
            }
            return Err(match status.as_u16() {
                503 | 429 => {
                    Failure::unavailable(format!("{message} (after {} attempts)", attempt + 1))
                }
                _ => Failure::Kind(server_kind(kind), message),
            });
        }
    }

    fn call(
        &self,
        py: Python<'_>,
        method: reqwest::Method,
        path: &str,
        body: Option<J>,
    ) -> PyResult<J> {
        let outcome = py
            .detach(|| {
                self.runtime
                    .block_on(self.send(method, path, body.as_ref(), false))
            })
            .map_err(|f| f.into_py(py))?;
        match outcome {
            Outcome::Done(j) => Ok(j),
            Outcome::Missing => Err(Failure::internal("unexpected 404").into_py(py)),
        }
    }
}

/// Feast's response: `metadata.feature_names` and one `results` entry per column.
fn columns(json: &J) -> Result<JsonColumns, Failure> {
    let bad = |what: &str| Failure::internal(format!("the server's answer has no {what}"));
    let names = json["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| bad("metadata.feature_names"))?
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad("feature name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = json["results"].as_array().ok_or_else(|| bad("results"))?;
    let mut out = JsonColumns {
        names,
        values: Vec::with_capacity(results.len()),
        statuses: Vec::with_capacity(results.len()),
        event_timestamps: Vec::with_capacity(results.len()),
    };
    for r in results {
        out.values
            .push(r["values"].as_array().cloned().unwrap_or_default());
        out.statuses.push(
            r["statuses"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        );
        out.event_timestamps.push(
            r["event_timestamps"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|v| {
                            v.as_str()
                                .and_then(|t| quiver_core::value::parse_timestamp(t).ok())
                                .unwrap_or(0)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    if out.values.len() != out.names.len() {
        return Err(bad("result per feature name"));
    }
    Ok(out)
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[pymethods]
impl Client {
    /// A client of the feature server at `url` (`http://127.0.0.1:6566`). `token` is sent as
    /// `Authorization: Bearer`; `timeout` (seconds) bounds each request; a 503 or a refused
    /// connection is retried `retries` times, waiting `backoff` seconds, doubled each time
    /// (or what `Retry-After` says).
    #[new]
    #[pyo3(signature = (url = "http://127.0.0.1:6566", token = None, timeout = 10.0, retries = 3, backoff = 0.05))]
    fn new(
        py: Python<'_>,
        url: &str,
        token: Option<String>,
        timeout: f64,
        retries: u32,
        backoff: f64,
    ) -> PyResult<Self> {
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "timeout must be positive seconds, got {timeout}"
            )));
        }
        if !(backoff >= 0.0 && backoff.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "backoff must be >= 0 seconds, got {backoff}"
            )));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PyValueError::new_err(format!(
                "url must start with http:// or https://, got `{url}`"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(timeout))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| Failure::internal(format!("building the HTTP client: {e}")).into_py(py))?;
        Ok(Client {
            runtime: runtime(py)?,
            http,
            url: url.trim_end_matches('/').to_string(),
            token,
            retries,
            backoff: Duration::from_secs_f64(backoff),
        })
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Online features for entity rows, as `FeatureStore.get_online_features`.
    #[pyo3(signature = (features = None, entity_rows = None, feature_service = None, full_feature_names = false))]
    fn get_online_features(
        &self,
        py: Python<'_>,
        features: Option<&Bound<'_, PyAny>>,
        entity_rows: Option<&Bound<'_, PyAny>>,
        feature_service: Option<String>,
        full_feature_names: bool,
    ) -> PyResult<OnlineResponse> {
        let (selection, rows) = online_args(features, entity_rows, feature_service)?;
        let entities: serde_json::Map<String, J> =
            rows.into_iter().map(|(k, v)| (k, J::Array(v))).collect();
        let mut body = json!({"entities": entities, "full_feature_names": full_feature_names});
        match selection {
            quiver::FeatureSelection::Features(f) => body["features"] = json!(f),
            quiver::FeatureSelection::Service(s) => body["feature_service"] = json!(s),
        }
        let answer = self.call(
            py,
            reqwest::Method::POST,
            "/get-online-features",
            Some(body),
        )?;
        Ok(OnlineResponse {
            answer: Answer::Remote(columns(&answer).map_err(|f| f.into_py(py))?),
        })
    }

    /// Writes rows of a view (`df`: pandas, pyarrow or a dict of columns), as
    /// `FeatureStore.write_to_online_store`.
    fn write_to_online_store<'py>(
        &self,
        py: Python<'py>,
        feature_view_name: String,
        df: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = json!({"feature_view_name": feature_view_name, "df": frame_columns(df)?});
        let answer = self.call(
            py,
            reqwest::Method::POST,
            "/write-to-online-store",
            Some(body),
        )?;
        json_to_py(py, &answer)
    }

    /// Pushes rows of a push source (`POST /push`), as `FeatureStore.push`.
    #[pyo3(signature = (push_source_name, df, allow_registry_cache = true, to = None))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        push_source_name: String,
        df: &Bound<'py, PyAny>,
        allow_registry_cache: bool,
        to: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let to = crate::args::push_mode(to)?;
        let body = json!({
            "push_source_name": push_source_name,
            "df": frame_columns(df)?,
            "to": to,
            "allow_registry_cache": allow_registry_cache,
        });
        let answer = self.call(py, reqwest::Method::POST, "/push", Some(body))?;
        json_to_py(py, &answer)
    }

    /// Accepts a record into a namespace (`PUT /records/{ns}/{id}` with an id, else
    /// `POST /records/{ns}`).
    #[pyo3(signature = (namespace, record, id = None))]
    fn put_record<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        record: &Bound<'py, PyAny>,
        id: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = py_to_json(record, &|| "record".to_string())?;
        let ns = percent_encode(namespace);
        let answer = match id {
            Some(id) => self.call(
                py,
                reqwest::Method::PUT,
                &format!("/records/{ns}/{}", percent_encode(id)),
                Some(record),
            )?,
            None => self.call(
                py,
                reqwest::Method::POST,
                &format!("/records/{ns}"),
                Some(J::Array(vec![record])),
            )?,
        };
        json_to_py(py, &answer)
    }

    /// A cached record by id, or `None`.
    fn get_record<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let path = format!(
            "/records/{}/{}",
            percent_encode(namespace),
            percent_encode(id)
        );
        let outcome = py
            .detach(|| {
                self.runtime
                    .block_on(self.send(reqwest::Method::GET, &path, None, true))
            })
            .map_err(|f| f.into_py(py))?;
        match outcome {
            // The server's envelope: {namespace, id, accepted_at, time, record}.
            Outcome::Done(j) => json_to_py(py, &j["record"]),
            Outcome::Missing => Ok(py.None().into_bound(py)),
        }
    }

    /// Accepts a prediction (`POST /predictions`).
    fn put_prediction<'py>(
        &self,
        py: Python<'py>,
        prediction: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = py_to_json(prediction, &|| "prediction".to_string())?;
        let answer = self.call(py, reqwest::Method::POST, "/predictions", Some(body))?;
        json_to_py(py, &answer)
    }

    /// The server's `/health` (components and `healthy | degraded | unhealthy`).
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // /health answers 503 when unhealthy, with the same body: no retries, return it.
        let path = "/health";
        let url = format!("{}{path}", self.url);
        let (http, token) = (self.http.clone(), self.token.clone());
        let json = py
            .detach(|| {
                self.runtime.block_on(async move {
                    let mut request = http.get(&url);
                    if let Some(t) = token {
                        request = request.bearer_auth(t);
                    }
                    let response = request
                        .send()
                        .await
                        .map_err(|e| Failure::unavailable(format!("GET {url}: {e}")))?;
                    response
                        .json::<J>()
                        .await
                        .map_err(|e| Failure::internal(format!("GET {url}: {e}")))
                })
            })
            .map_err(|f| f.into_py(py))?;
        json_to_py(py, &json)
    }

    /// The server's per-view serving statistics (`/stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.call(py, reqwest::Method::GET, "/stats", None)?;
        json_to_py(py, &answer)
    }

    fn __repr__(&self) -> String {
        format!("Client({:?})", self.url)
    }
}
