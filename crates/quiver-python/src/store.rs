//! `FeatureStore`: the library in-process. Every call runs on the store's own Tokio runtime with
//! the GIL released, so Python threads read concurrently and other Python code keeps running.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use quiver::{HistoricalOptions, MaterializeOptions, NoProgress, OnlineRequest};
use quiver_core::{EntityKey, Record};
use serde_json::{Value as J, json};
use tokio::runtime::Runtime;
use tokio::sync::RwLock;

use crate::args::{frame_columns, online_args, selection};
use crate::convert::{json_to_py, parse_time};
use crate::errors::{Failure, exception};
use crate::response::{Answer, OnlineResponse};

pub fn runtime(py: Python<'_>) -> PyResult<Arc<Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("quiver")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| {
            exception(
                py,
                quiver::ErrorKind::Internal,
                format!("starting Quiver's runtime: {e}"),
            )
        })
}

/// A Quiver project opened in this process: the embedded or Redis online store, the offline
/// store, the registry. Same method names and arguments as Feast's `FeatureStore`.
#[pyclass(frozen, subclass, module = "quiver._quiver", name = "FeatureStore")]
pub struct FeatureStore {
    runtime: Arc<Runtime>,
    /// `None` once closed.
    store: RwLock<Option<quiver::FeatureStore>>,
    repo_path: PathBuf,
}

impl FeatureStore {
    /// Runs `work` on the store with the GIL released.
    fn with_store<T: Send>(
        &self,
        py: Python<'_>,
        work: impl AsyncFnOnce(&quiver::FeatureStore) -> Result<T, Failure> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            self.runtime.block_on(async {
                let guard = self.store.read().await;
                let store = guard.as_ref().ok_or_else(|| self.closed())?;
                work(store).await
            })
        })
        .map_err(|f| f.into_py(py))
    }

    /// Like [`with_store`](Self::with_store), for calls that change the store (apply).
    fn with_store_mut<T: Send>(
        &self,
        py: Python<'_>,
        work: impl AsyncFnOnce(&mut quiver::FeatureStore) -> Result<T, Failure> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            self.runtime.block_on(async {
                let mut guard = self.store.write().await;
                let store = guard.as_mut().ok_or_else(|| self.closed())?;
                work(store).await
            })
        })
        .map_err(|f| f.into_py(py))
    }

    fn closed(&self) -> Failure {
        Failure::Kind(
            quiver::ErrorKind::FailedPrecondition,
            format!(
                "the feature store for `{}` is closed",
                self.repo_path.display()
            ),
        )
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<J, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::internal(e.to_string()))
}

#[pymethods]
impl FeatureStore {
    /// Opens the project in `repo_path` (its `quiver.yaml`, registry and stores).
    #[new]
    #[pyo3(signature = (repo_path = PathBuf::from(".")))]
    fn new(py: Python<'_>, repo_path: PathBuf) -> PyResult<Self> {
        let runtime = runtime(py)?;
        let path = repo_path.clone();
        let store = py
            .detach(|| runtime.block_on(quiver::FeatureStore::open(&path)))
            .map_err(|e| Failure::from(e).into_py(py))?;
        Ok(FeatureStore {
            runtime,
            store: RwLock::new(Some(store)),
            repo_path,
        })
    }

    /// The project directory.
    #[getter]
    fn repo_path(&self) -> PathBuf {
        self.repo_path.clone()
    }

    /// The project's name.
    #[getter]
    fn project(&self, py: Python<'_>) -> PyResult<String> {
        self.with_store(py, async |s| Ok(s.project_name().to_string()))
    }

    /// Loads `features/*.yaml`, validates them and records them in the registry; returns what
    /// changed (`changes`, `serial`, `versions`, `warnings`).
    fn apply<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.with_store_mut(py, async |s| {
            let report = s.apply().await?;
            Ok(json!({
                "changes": to_json(&report.changes)?,
                "change_lines": report.changes.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "serial": report.serial,
                "warnings": report.warnings,
                "versions": report.versions.iter()
                    .map(|(v, n)| json!({"view": v, "version": n})).collect::<Vec<_>>(),
            }))
        })?;
        json_to_py(py, &report)
    }

    /// Re-reads the registry (after an `apply` by another process).
    fn refresh_registry(&self, py: Python<'_>) -> PyResult<()> {
        self.with_store_mut(py, async |s| Ok(s.reload_registry().await?))
    }

    /// Names of the applied feature views.
    fn list_feature_views(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_store(py, async |s| {
            Ok(s.views().map(|v| v.definition.name.clone()).collect())
        })
    }

    /// Names of the applied feature services.
    fn list_feature_services(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_store(py, async |s| {
            Ok(s.registry()?.feature_services.keys().cloned().collect())
        })
    }

    /// Materializes views into the online store: rows with event time in
    /// `[start_date, end_date)` (RFC 3339 text; the Python wrapper also takes datetimes),
    /// all views unless `feature_views` names some. Returns one report per view.
    #[pyo3(signature = (start_date = None, end_date = None, feature_views = None))]
    fn materialize<'py>(
        &self,
        py: Python<'py>,
        start_date: Option<String>,
        end_date: Option<String>,
        feature_views: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = MaterializeOptions {
            views: feature_views.unwrap_or_default(),
            start: parse_time(start_date.as_deref(), "start_date")?,
            end: parse_time(end_date.as_deref(), "end_date")?,
            strict: None,
        };
        let report = self.with_store(py, async |s| {
            let report = s.materialize(&options, &NoProgress).await?;
            Ok(view_reports(&report))
        })?;
        json_to_py(py, &report)
    }

    /// Materializes every view from where its last materialization ended up to now.
    fn materialize_incremental<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.with_store_mut(py, async |s| {
            let report = s.materialize_incremental(&NoProgress).await?;
            Ok(view_reports(&report))
        })?;
        json_to_py(py, &report)
    }

    /// Online features for entity rows (a list of dicts, or a dict of columns).
    #[pyo3(signature = (features = None, entity_rows = None, feature_service = None, full_feature_names = false))]
    fn get_online_features(
        &self,
        py: Python<'_>,
        features: Option<&Bound<'_, PyAny>>,
        entity_rows: Option<&Bound<'_, PyAny>>,
        feature_service: Option<String>,
        full_feature_names: bool,
    ) -> PyResult<OnlineResponse> {
        let (selection, columns) = online_args(features, entity_rows, feature_service)?;
        let response = self.with_store(py, async |s| {
            let entities = quiver_server::feast_json::decode_entities(s, columns)?;
            let mut request = OnlineRequest::new(selection, entities);
            request.full_feature_names = full_feature_names;
            Ok(s.get_online_features(&request).await?)
        })?;
        Ok(OnlineResponse {
            answer: Answer::Embedded(response),
        })
    }

    /// Point-in-time-correct features for each row of `entity_df` (a pyarrow Table or
    /// RecordBatch: join keys and a timestamp column); returns a pyarrow RecordBatch, the
    /// entity rows in order with one column per feature.
    #[pyo3(signature = (entity_df, features = None, feature_service = None, full_feature_names = false, timestamp_column = None))]
    fn _historical_features<'py>(
        &self,
        py: Python<'py>,
        entity_df: &Bound<'py, PyAny>,
        features: Option<&Bound<'py, PyAny>>,
        feature_service: Option<String>,
        full_feature_names: bool,
        timestamp_column: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let selection = selection(features, feature_service)?;
        let table = arrow_pyarrow::Table::from_pyarrow_bound(entity_df)?;
        let (batches, schema) = table.into_inner();
        let entities = arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| PyValueError::new_err(format!("entity_df: {e}")))?;
        let mut options = HistoricalOptions {
            full_feature_names,
            entities_origin: Some("entity_df".to_string()),
            ..HistoricalOptions::default()
        };
        if let Some(c) = timestamp_column {
            options.timestamp_column = c;
        }
        let batch: RecordBatch = self.with_store(py, async |s| {
            let set = s
                .get_historical_features(&entities, &selection, &options)
                .await?;
            Ok(set.batch)
        })?;
        batch.to_pyarrow(py)
    }

    /// Drains the record queues (all namespaces, or `namespaces`) into the offline store,
    /// exactly once; the served-feature logs this process buffered are written first. Returns
    /// one report per namespace.
    #[pyo3(signature = (namespaces = None))]
    fn export<'py>(
        &self,
        py: Python<'py>,
        namespaces: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = quiver::ExportOptions {
            namespaces: namespaces.unwrap_or_default(),
        };
        let report = self.with_store(py, async |s| Ok(to_json(&s.export(&options).await?)?))?;
        json_to_py(py, &report)
    }

    /// Online/offline skew of a logged feature service (see `quiver skew`): returns the report
    /// as a dict, its four tables as pyarrow RecordBatches (summary, examples, timeline,
    /// differences) and the HTML page.
    #[pyo3(signature = (service, start = None, end = None, sample = None, seed = 0, tolerance = 0.0, examples = 5))]
    #[allow(clippy::too_many_arguments)]
    fn _skew<'py>(
        &self,
        py: Python<'py>,
        service: String,
        start: Option<String>,
        end: Option<String>,
        sample: Option<usize>,
        seed: u64,
        tolerance: f64,
        examples: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = quiver::SkewOptions {
            start: parse_time(start.as_deref(), "start")?,
            end: parse_time(end.as_deref(), "end")?,
            sample,
            seed,
            tolerance,
            examples,
            ..quiver::SkewOptions::new(service)
        };
        let (report, tables, html) = self.with_store(py, async |s| {
            let report = s.skew(&options).await?;
            let tables = report.to_arrow()?;
            let html = quiver::skew::html::render(&report);
            Ok((to_json(&report)?, tables, html))
        })?;
        let out = pyo3::types::PyDict::new(py);
        out.set_item("report", json_to_py(py, &report)?)?;
        out.set_item("summary", tables.summary.to_pyarrow(py)?)?;
        out.set_item("examples", tables.examples.to_pyarrow(py)?)?;
        out.set_item("timeline", tables.timeline.to_pyarrow(py)?)?;
        out.set_item("differences", tables.differences.to_pyarrow(py)?)?;
        out.set_item("html", html)?;
        Ok(out.into_any())
    }

    /// Writes rows of a view straight to the online store: `df` (pandas, pyarrow or a dict of
    /// columns) holds the join keys, `event_timestamp` and every feature of the view. The whole
    /// batch is checked first; an invalid batch writes nothing. Returns `{"written",
    /// "skipped_older"}`.
    fn write_to_online_store<'py>(
        &self,
        py: Python<'py>,
        feature_view_name: String,
        df: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let columns = frame_columns(df)?;
        let summary = self.with_store(py, async |s| {
            let rows: Vec<(EntityKey, Record)> =
                quiver_server::feast_json::decode_rows(s, &feature_view_name, &columns)?;
            let summary = s.write_to_online_store(&feature_view_name, &rows).await?;
            Ok(json!({"written": summary.written, "skipped_older": summary.skipped_older}))
        })?;
        json_to_py(py, &summary)
    }

    /// Pushes rows of a push source (Feast's `push`): `df` goes to the online store of every
    /// view that reads it (`to="online"`, the default), to its batch source (`"offline"`), or
    /// both (`"online_and_offline"`). Everything is checked before anything is written. Returns
    /// `{"push_source", "views": [{"view", "written", "skipped_older"}], "offline_rows"}`.
    #[pyo3(signature = (push_source_name, df, allow_registry_cache = true, to = None))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        push_source_name: String,
        df: &Bound<'py, PyAny>,
        allow_registry_cache: bool,
        to: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // The embedded store always reads its loaded registry (`refresh_registry()` reloads).
        let _ = allow_registry_cache;
        let mode = crate::args::push_mode(to)?;
        let to = quiver::push::PushTo::parse(&mode).map_err(|e| Failure::from(e).into_py(py))?;
        let columns = frame_columns(df)?;
        let report = self.with_store(py, async |s| {
            let report =
                quiver_server::feast_json::push(s, &push_source_name, &columns, to).await?;
            serde_json::to_value(report).map_err(|e| Failure::internal(e.to_string()))
        })?;
        json_to_py(py, &report)
    }

    /// Accepts a record into a namespace (cached with its TTL, queued for export); returns
    /// `{"id", "queued"}`.
    #[pyo3(signature = (namespace, record, id = None))]
    fn put_record<'py>(
        &self,
        py: Python<'py>,
        namespace: String,
        record: &Bound<'py, PyAny>,
        id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = crate::convert::py_to_json(record, &|| "record".to_string())?;
        let receipt = self.with_store(py, async |s| {
            let mut receipts = s.put_records(&namespace, vec![(id, record)]).await?;
            let r = receipts
                .pop()
                .ok_or_else(|| Failure::internal("no receipt for the record"))?;
            Ok(json!({"id": r.id, "queued": r.position.is_some()}))
        })?;
        json_to_py(py, &receipt)
    }

    /// A cached record by id, or `None` (never stored, or past its TTL).
    fn get_record<'py>(
        &self,
        py: Python<'py>,
        namespace: String,
        id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = self.with_store(py, async |s| {
            Ok(s.get_record(&namespace, &id)
                .await?
                .map(|e| J::Object(e.record)))
        })?;
        json_to_py(py, &record.unwrap_or(J::Null))
    }

    /// Accepts a prediction (the `predictions` namespace); returns `{"id", "queued"}`.
    fn put_prediction<'py>(
        &self,
        py: Python<'py>,
        prediction: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prediction = crate::convert::py_to_json(prediction, &|| "prediction".to_string())?;
        let receipt = self.with_store(py, async |s| {
            let r = s.put_prediction(prediction).await?;
            Ok(json!({"id": r.id, "queued": r.position.is_some()}))
        })?;
        json_to_py(py, &receipt)
    }

    /// Per-view serving statistics of this process (what `GET /stats` reports for a server).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.with_store(py, async |s| to_json(&s.stats().report()))?;
        json_to_py(py, &stats)
    }

    /// Closes the stores (the embedded online store's file lock is released); later calls
    /// raise `FailedPrecondition`.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            self.runtime.block_on(async {
                self.store.write().await.take();
            })
        });
    }

    fn __repr__(&self) -> String {
        format!("FeatureStore({:?})", self.repo_path.display().to_string())
    }
}

fn view_reports(report: &quiver::MaterializeReport) -> J {
    J::Array(
        report
            .views
            .iter()
            .map(|v| {
                json!({
                    "view": v.view,
                    "version": v.version,
                    "rows_scanned": v.rows_scanned,
                    "rows_in_window": v.rows_in_window,
                    "entities": v.entities,
                    "written": v.written,
                    "skipped_older": v.skipped_older,
                    "rejected": v.rejected,
                    "rejections": v.rejections,
                    "seconds": v.seconds,
                })
            })
            .collect(),
    )
}
