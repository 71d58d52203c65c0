//! The offline operations: `build` (a view's history into the offline store), point-in-time
//! training sets (`historical`) and `prune`. The evaluation itself is the offline engine's
//! ([`quiver_offline::engine`]); this module resolves views and sources, runs the engine on the
//! blocking pool and writes or assembles what it returns.
//!
//! Training sets are computed from the sources directly, so they never depend on what was built
//! (and never leak the future): a plain view's row at time t is the latest source row with event
//! time <= t and >= t - ttl (ties: the later created time, then the later row); an aggregation
//! window is evaluated exactly at t over `(t - window, t]`; a time-series feature is the value at
//! the entity's latest event <= t.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field as ArrowField, Schema};
use quiver_core::{FeatureRef, FeatureView};
use quiver_offline::engine::{self, EntityRows, window_ns};
use quiver_offline::source::TableRead;
use quiver_offline::store::{EVENT_TIMESTAMP, OfflineTable};

use crate::error::{Error, Result};
use crate::selection::FeatureSelection;
use crate::store::FeatureStore;

fn arrow_err(e: arrow_schema::ArrowError) -> Error {
    Error::Internal(format!("arrow: {e}"))
}

/// Runs blocking engine work off the async runtime.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("{what} task failed: {e}")))?
}

/// What `build` did for one view.
#[derive(Clone, Debug)]
pub struct BuildViewReport {
    pub view: String,
    pub version: u32,
    pub table: String,
    pub rows: u64,
    /// Source rows skipped because their event time is null.
    pub rows_null_timestamp: u64,
    /// Source rows skipped because a join key is null.
    pub rows_null_key: u64,
    pub seconds: f64,
}

/// Options of `build`.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub views: Vec<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Refuse a view whose source has rows with a null event time instead of skipping and
    /// counting them.
    pub strict: bool,
}

/// Options of `get_historical_features`.
#[derive(Clone, Debug)]
pub struct HistoricalOptions {
    /// The entity file's time column (default `event_timestamp`).
    pub timestamp_column: String,
    pub full_feature_names: bool,
    /// Refuse sources with rows whose event time is null instead of skipping and counting them.
    pub strict: bool,
    /// What the entity rows are, for messages (`entity file `labels.csv``); default
    /// "entity rows".
    pub entities_origin: Option<String>,
}

impl Default for HistoricalOptions {
    fn default() -> Self {
        HistoricalOptions {
            timestamp_column: EVENT_TIMESTAMP.to_string(),
            full_feature_names: false,
            strict: false,
            entities_origin: None,
        }
    }
}

/// A training set and what was left out of it.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    /// The entity rows, in order, with one column per feature.
    pub batch: RecordBatch,
    /// Per view: source rows skipped for a null event time or join key.
    pub sources: Vec<SourceRowsSkipped>,
}

/// Source rows of one view that belong to no point in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRowsSkipped {
    pub view: String,
    pub source: String,
    pub rows_null_timestamp: u64,
    pub rows_null_key: u64,
}

impl FeatureStore {
    /// A view's feature rows with event time in `[start, end)`, in the offline table layout:
    /// plain views as read; derived views evaluated at each event's own time. The counts are
    /// the source rows dropped for a null event time or join key.
    pub async fn compute_history(
        &self,
        view_name: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<TableRead> {
        let served = self.view(view_name)?.clone();
        let resolved = self.source_of(&served.definition)?.clone();
        let table = OfflineTable::for_view(
            self.project_name(),
            &served.definition,
            served.table.version,
        );
        blocking("history", move || {
            Ok(engine::history(
                &resolved.path,
                &resolved.source,
                &served.definition,
                &table.schema,
                start,
                end,
            )?)
        })
        .await
    }

    /// Computes the selected views' features over `[start, end)` into the offline store.
    pub async fn build(&self, options: &BuildOptions) -> Result<Vec<BuildViewReport>> {
        let names: Vec<String> = if options.views.is_empty() {
            self.registry()?.feature_views.keys().cloned().collect()
        } else {
            for v in &options.views {
                self.view(v)?;
            }
            options.views.clone()
        };
        let end = options.end.unwrap_or_else(quiver_online::now_ns);
        let start = options.start.unwrap_or(i64::MIN);
        let store = self.offline_store().await?;
        let mut reports = Vec::new();
        for name in names {
            let started = std::time::Instant::now();
            let served = self.view(&name)?.clone();
            let table = OfflineTable::for_view(
                self.project_name(),
                &served.definition,
                served.table.version,
            );
            let described = store.ensure_table(&table).await?;
            let read = self
                .compute_history(&name, options.start, Some(end))
                .await?;
            if options.strict {
                self.refuse_dropped_rows(&served.definition, &read)?;
            }
            let rows = store.write_range(&table, start, end, &[read.batch]).await?;
            self.record_build(
                &name,
                served.table.version,
                options.start,
                end,
                rows,
                started,
            )
            .await;
            reports.push(BuildViewReport {
                view: name,
                version: served.table.version,
                table: described,
                rows,
                rows_null_timestamp: read.rows_null_timestamp,
                rows_null_key: read.rows_null_key,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        Ok(reports)
    }

    /// Records a build in the registry's runs (lineage). The history is written either way: a
    /// registry that cannot be saved is logged, not an error of the build.
    async fn record_build(
        &self,
        view: &str,
        version: u32,
        start: Option<i64>,
        end: i64,
        rows: u64,
        started: std::time::Instant,
    ) {
        let run = crate::registry::MaterializationRun {
            kind: crate::registry::RunKind::Build,
            version,
            finished_at: quiver_online::now_ns(),
            start,
            end,
            written: rows,
            rejected: 0,
            seconds: started.elapsed().as_secs_f64(),
            newest_event: None,
        };
        let name = view.to_string();
        let saved = self
            .registry_store()
            .update(move |current| current.record_run(&name, run))
            .await;
        if let Err(e) = saved {
            tracing::warn!(view, error = %e, "the build is not recorded in the registry");
        }
    }

    /// Point-in-time-correct features for each entity row (see the module docs). `entities`
    /// holds the join keys and a timestamp column; the result is `entities` in the same order
    /// (a text timestamp column parsed to `Timestamp(µs, "UTC")`) with one column per feature
    /// appended, and per view the source rows that belong to no point in time.
    pub async fn get_historical_features(
        &self,
        entities: &RecordBatch,
        selection: &FeatureSelection,
        options: &HistoricalOptions,
    ) -> Result<TrainingSet> {
        let refs = self.resolve_features(selection)?;
        let origin = options
            .entities_origin
            .clone()
            .unwrap_or_else(|| "entity rows".to_string());
        let entity_times: Arc<[i64]> = entity_times(entities, &options.timestamp_column, &origin)?;
        let mut out_columns: Vec<(String, ArrayRef)> = Vec::new();
        let mut sources = Vec::new();
        for ((view_name, version), indices) in group_by_view(&refs) {
            let features: Vec<&FeatureRef> = indices.iter().map(|&i| &refs[i]).collect();
            let served = self.view_at(&view_name, version)?.clone();
            let view = served.definition.clone();
            let resolved = self.source_of(&view)?.clone();
            let names: Vec<String> = features.iter().map(|f| f.feature.clone()).collect();
            let (rows, times, origin_owned) =
                (entities.clone(), entity_times.clone(), origin.clone());
            let job_view = view.clone();
            let (cols, read) = blocking("historical", move || {
                let rows = EntityRows {
                    rows: &rows,
                    times: &times,
                    origin: &origin_owned,
                };
                Ok(engine::features_at(
                    &resolved.path,
                    &resolved.source,
                    &job_view,
                    rows,
                    &names,
                )?)
            })
            .await?;
            if options.strict {
                self.refuse_dropped_rows(&view, &read)?;
            }
            sources.push(SourceRowsSkipped {
                view: view_name,
                source: view.source.clone(),
                rows_null_timestamp: read.rows_null_timestamp,
                rows_null_key: read.rows_null_key,
            });
            let names = features
                .iter()
                .map(|r| r.output_name(options.full_feature_names));
            out_columns.extend(names.zip(cols));
        }
        let batch = assemble_training_set(entities, &options.timestamp_column, out_columns)?;
        Ok(TrainingSet { batch, sources })
    }

    /// In strict mode, a view whose source has rows with a null event time is refused.
    fn refuse_dropped_rows(&self, view: &FeatureView, read: &TableRead) -> Result<()> {
        if read.rows_null_timestamp == 0 {
            return Ok(());
        }
        let resolved = self.source_of(view)?;
        Err(Error::InvalidRequest(format!(
            "source `{}` ({}): {} rows have a null event time `{}` (strict mode: feature view `{}` refused)",
            resolved.source.name,
            resolved.path.display(),
            read.rows_null_timestamp,
            resolved.source.timestamp_field,
            view.name
        )))
    }
}

/// A view and its pinned version (`None`: the active one).
type ViewAt = (String, Option<u32>);

/// The requested features grouped by view (and pinned version), in request order: each view
/// with the positions of its features among `refs`.
pub(crate) fn group_by_view<'a>(
    refs: impl IntoIterator<Item = &'a FeatureRef>,
) -> Vec<(ViewAt, Vec<usize>)> {
    let mut by_view: Vec<(ViewAt, Vec<usize>)> = Vec::new();
    for (i, r) in refs.into_iter().enumerate() {
        let key = (r.view.clone(), r.version);
        match by_view.iter_mut().find(|(v, _)| *v == key) {
            Some((_, list)) => list.push(i),
            None => by_view.push((key, vec![i])),
        }
    }
    by_view
}

/// The entity rows' times in ns UTC; every row needs one.
fn entity_times(entities: &RecordBatch, column: &str, origin: &str) -> Result<Arc<[i64]>> {
    let ts_col = entities.column_by_name(column).ok_or_else(|| {
        Error::InvalidRequest(format!(
            "{origin}: no timestamp column `{column}` (columns: {})",
            engine::column_list(entities)
        ))
    })?;
    let times = quiver_offline::source::column_to_nanos(column, ts_col)
        .map_err(|e| Error::InvalidRequest(format!("{origin}: {e}")))?;
    if arrow_array::Array::null_count(&times) > 0 {
        return Err(Error::InvalidRequest(format!(
            "{origin}: timestamp column `{column}` has nulls; every entity row needs a time"
        )));
    }
    Ok(times.values().to_vec().into())
}

/// The entity columns (see [`entity_columns`]) followed by the feature columns.
fn assemble_training_set(
    entities: &RecordBatch,
    timestamp_column: &str,
    features: Vec<(String, ArrayRef)>,
) -> Result<RecordBatch> {
    let (mut fields, mut columns) = entity_columns(entities, timestamp_column)?;
    for (name, col) in features {
        if fields.iter().any(|f| f.name() == &name) {
            return Err(Error::InvalidRequest(format!(
                "feature `{name}` collides with an entity column or another feature; use full feature names"
            )));
        }
        fields.push(ArrowField::new(&name, col.data_type().clone(), true));
        columns.push(col);
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(entities.num_rows())),
    )
    .map_err(arrow_err)
}

/// The entity rows' columns as a training set carries them: the timestamp column given as text
/// (CSV, JSON) becomes `Timestamp(µs, "UTC")`; a column with a timestamp type keeps it.
fn entity_columns(
    entities: &RecordBatch,
    timestamp_column: &str,
) -> Result<(Vec<ArrowField>, Vec<ArrayRef>)> {
    let mut fields = Vec::with_capacity(entities.num_columns());
    let mut columns = Vec::with_capacity(entities.num_columns());
    for (field, column) in entities.schema().fields().iter().zip(entities.columns()) {
        let is_text = matches!(
            field.data_type(),
            arrow_schema::DataType::Utf8 | arrow_schema::DataType::LargeUtf8
        );
        if field.name() == timestamp_column && is_text {
            let parsed = quiver_offline::io::timestamp_micros(timestamp_column, column)?;
            fields.push(ArrowField::new(
                field.name(),
                parsed.data_type().clone(),
                field.is_nullable(),
            ));
            columns.push(parsed);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok((fields, columns))
}

impl FeatureStore {
    /// Deletes offline history older than each view's `retention` (views without one are
    /// skipped). Returns (view, rows deleted) for the views pruned.
    pub async fn prune(&self, views: &[String]) -> Result<Vec<(String, u64)>> {
        let store = self.offline_store().await?;
        let now = quiver_online::now_ns();
        let mut out = Vec::new();
        for served in self.views() {
            let view = &served.definition;
            if !views.is_empty() && !views.contains(&view.name) {
                continue;
            }
            let Some(retention) = view.retention else {
                continue;
            };
            let table = OfflineTable::for_view(self.project_name(), view, served.table.version);
            store.ensure_table(&table).await?;
            let deleted = store
                .prune(&table, now.saturating_sub(window_ns(retention)))
                .await?;
            out.push((view.name.clone(), deleted));
        }
        Ok(out)
    }
}
