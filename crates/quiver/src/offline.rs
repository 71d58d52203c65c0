//! The offline side of the facade: computing a view's feature history from its source
//! (`quiver build`), point-in-time-correct training sets (`quiver historical`), and the
//! evaluation of derived views at one instant (what `materialize` writes online).
//!
//! Training sets are computed from the sources directly, so they never depend on what was built
//! (and never leak the future): a plain view's row at time t is the latest source row with event
//! time <= t and >= t - ttl (ties: the later created time, then the later row); an aggregation
//! window is evaluated exactly at t over `(t - window, t]`; a time-series feature is the value at
//! the entity's latest event <= t.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{Field as ArrowField, Schema};
use quiver_core::definitions::{SeriesKind, Transform};
use quiver_core::{FeatureRef, FeatureView, Field, ScalarType, Source, ValueType};
use quiver_offline::ReadRequest;
use quiver_offline::compute::{self, EventValues, Events, KeyInterner, WindowSpec};
use quiver_offline::source::{TableRead, read_table_counted};
use quiver_offline::store::{
    CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineStore, OfflineTable, ParquetOfflineStore,
    PostgresOfflineStore,
};

use crate::config::OfflineStoreConfig;
use crate::error::{Error, Result};
use crate::online::FeatureSelection;
use crate::store::FeatureStore;

fn compute_err(e: compute::ComputeError) -> Error {
    Error::InvalidRequest(e.to_string())
}

fn arrow_err(e: arrow_schema::ArrowError) -> Error {
    Error::Internal(format!("arrow: {e}"))
}

fn window_ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// How far back before an evaluation time a derived view needs events.
fn lookback_ns(view: &FeatureView) -> Option<i64> {
    let mut max = 0i64;
    for t in &view.transforms {
        match t {
            Transform::Window { window, .. } => max = max.max(window_ns(*window)),
            // Period-based features need the previous N rows, however old: read everything.
            Transform::Series { .. } => return None,
        }
    }
    Some(max)
}

/// Source events of a view: join keys, event/created timestamps and the columns it reads
/// (fields for plain views; transform inputs as float64 for derived ones).
pub(crate) fn read_events(
    path: &std::path::Path,
    source: &Source,
    view: &FeatureView,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<TableRead> {
    let fields = source_fields(view);
    Ok(read_table_counted(&ReadRequest {
        path,
        source,
        join_keys: &view.join_keys,
        fields: &fields,
        start,
        end,
        sql: view.sql.as_deref(),
    })?)
}

/// The source columns a view reads, typed: its fields, or its transform inputs as float64.
pub(crate) fn source_fields(view: &FeatureView) -> Vec<Field> {
    if view.is_derived() {
        view.source_columns()
            .into_iter()
            .map(|name| Field {
                name,
                value_type: ValueType::Scalar(ScalarType::Float64),
                constraints: Default::default(),
                description: None,
            })
            .collect()
    } else {
        view.fields.clone()
    }
}

fn key_columns(batch: &RecordBatch, names: &[String]) -> Result<Vec<ArrayRef>> {
    names
        .iter()
        .map(|n| {
            batch
                .column_by_name(n)
                .cloned()
                .ok_or_else(|| Error::InvalidRequest(format!("missing join key column `{n}`")))
        })
        .collect()
}

fn times(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch
        .column_by_name(name)
        .map(|c| {
            c.as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec()
        })
        .unwrap_or_default()
}

/// The created times of the offline layout's rows, or `None` when no row has one (a source
/// without `created_timestamp_field`): what breaks ties between equal event times.
fn created_times(batch: &RecordBatch) -> Option<Vec<Option<i64>>> {
    let column = batch.column_by_name(CREATED_TIMESTAMP)?;
    if column.null_count() == column.len() {
        return None;
    }
    Some(
        column
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .collect(),
    )
}

/// Evaluates a derived view's transforms for query points `(keys, times)` over `events`.
/// `at_events`: the queries are the events themselves (build), so series features are exact per
/// row; otherwise series features are taken at each query's latest event <= t.
fn evaluate_transforms(
    view: &FeatureView,
    events: &RecordBatch,
    event_keys: &[u32],
    query_keys: &[u32],
    query_times: &[i64],
    only: Option<&[usize]>,
) -> Result<Vec<ArrayRef>> {
    let event_times = times(events, EVENT_TIMESTAMP);
    // Equal event times are ordered by created time, then row, in every function that depends
    // on order (`last`, the series), the same rule as plain views.
    let created = created_times(events);
    let selected: Vec<usize> = match only {
        Some(idx) => idx.to_vec(),
        None => (0..view.transforms.len()).collect(),
    };
    let mut out: BTreeMap<usize, ArrayRef> = BTreeMap::new();
    // Windows: one operator call per source column.
    let mut by_column: BTreeMap<&str, Vec<(usize, WindowSpec)>> = BTreeMap::new();
    let mut series: Vec<(usize, &str, SeriesKind, u32)> = Vec::new();
    for &i in &selected {
        match &view.transforms[i] {
            Transform::Window {
                column,
                function,
                window,
            } => by_column.entry(column).or_default().push((
                i,
                WindowSpec {
                    function: *function,
                    window_ns: window_ns(*window),
                },
            )),
            Transform::Series {
                column,
                series: kind,
                periods,
            } => series.push((i, column, *kind, *periods)),
        }
    }
    let values_of = |column: &str| -> Result<Float64Array> {
        let col = events
            .column_by_name(column)
            .ok_or_else(|| Error::Internal(format!("column `{column}` not read")))?;
        Ok(col
            .as_primitive::<arrow_array::types::Float64Type>()
            .clone())
    };
    for (column, specs) in by_column {
        let values = values_of(column)?;
        let ev = Events {
            keys: event_keys,
            times: &event_times,
            values: EventValues::Arrow(&values),
            created: created.as_deref(),
        };
        let spec_list: Vec<WindowSpec> = specs.iter().map(|(_, s)| *s).collect();
        let arrays = compute::aggregate_windows(&ev, query_keys, query_times, &spec_list)
            .map_err(compute_err)?;
        for ((i, _), a) in specs.iter().zip(arrays) {
            out.insert(*i, a);
        }
    }
    if !series.is_empty() {
        // Series values at every event, then each query takes its latest event <= t.
        let matched = compute::asof_join(
            query_keys,
            query_times,
            event_keys,
            &event_times,
            created.as_deref(),
            None,
        )
        .map_err(compute_err)?;
        for (i, column, kind, periods) in series {
            let values = values_of(column)?;
            let close = EventValues::Arrow(&values);
            let periods = periods as usize;
            let (times, created) = (&event_times, created.as_deref());
            let at_events = match kind {
                SeriesKind::Return => {
                    compute::period_returns(event_keys, times, created, close, periods)
                }
                SeriesKind::Volatility => {
                    compute::rolling_volatility(event_keys, times, created, close, periods)
                }
                SeriesKind::Momentum => {
                    compute::momentum(event_keys, times, created, close, periods)
                }
            }
            .map_err(compute_err)?;
            let taken = compute::take_columns(&[at_events], &matched).map_err(compute_err)?;
            out.insert(
                i,
                taken
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Arc::new(Float64Array::from(Vec::<f64>::new()))),
            );
        }
    }
    Ok(selected.iter().filter_map(|i| out.remove(i)).collect())
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
    /// Opens the configured offline store.
    pub async fn offline_store(&self) -> Result<Arc<dyn OfflineStore>> {
        Ok(match &self.project().config.offline_store {
            OfflineStoreConfig::Parquet(p) => {
                Arc::new(ParquetOfflineStore::new(self.project().resolve(&p.path)))
            }
            OfflineStoreConfig::Postgres(p) => Arc::new(PostgresOfflineStore::connect(p).await?),
        })
    }

    fn source_of(&self, view: &FeatureView) -> Result<(Source, std::path::PathBuf)> {
        let source = self
            .registry()?
            .sources
            .get(&view.source)
            .cloned()
            .ok_or_else(|| {
                Error::Internal(format!("source `{}` missing from registry", view.source))
            })?;
        let source = self.resolve_source(source)?;
        let path = self.project().resolve(&source.path);
        Ok((source, path))
    }

    /// Fills a PostgreSQL source's connection URL: `env:VAR` reads the variable, absent means
    /// the PostgreSQL offline store's URL.
    pub fn resolve_source(&self, mut source: Source) -> Result<Source> {
        if source.format != quiver_core::SourceFormat::Postgres {
            return Ok(source);
        }
        let url = match source.url.as_deref() {
            Some(u) => match u.strip_prefix("env:") {
                Some(var) => std::env::var(var).map_err(|_| {
                    Error::Config(format!(
                        "source `{}`: environment variable `{var}` (its `url`) is not set",
                        source.name
                    ))
                })?,
                None => u.to_string(),
            },
            None => match &self.project().config.offline_store {
                OfflineStoreConfig::Postgres(p) => p.url.clone(),
                _ => {
                    return Err(Error::Config(format!(
                        "source `{}` is a postgres source without `url`, and the offline store is not postgres",
                        source.name
                    )));
                }
            },
        };
        source.url = Some(url);
        Ok(source)
    }

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
        let view = served.definition.clone();
        let (source, path) = self.source_of(&view)?;
        let project = self.project_name().to_string();
        let version = served.table.version;
        tokio::task::spawn_blocking(move || -> Result<TableRead> {
            let table = OfflineTable::for_view(&project, &view, version);
            if !view.is_derived() {
                let mut read = read_events(&path, &source, &view, start, end)?;
                read.batch =
                    RecordBatch::try_new(table.schema.clone(), read.batch.columns().to_vec())
                        .map_err(arrow_err)?;
                return Ok(read);
            }
            let read_start = match (start, lookback_ns(&view)) {
                (Some(s), Some(back)) => Some(s.saturating_sub(back)),
                _ => None,
            };
            let mut read = read_events(&path, &source, &view, read_start, end)?;
            let events = &read.batch;
            let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
            let mut interner = KeyInterner::new();
            let keys = interner
                .intern(&key_columns(events, &key_names)?)
                .map_err(compute_err)?;
            let event_times = times(events, EVENT_TIMESTAMP);
            let features = evaluate_transforms(&view, events, &keys, &keys, &event_times, None)?;
            // `read_events` returns the offline layout: keys, event and created time, then the
            // source columns, which the computed features replace.
            let mut columns = events.columns()[..key_names.len() + 2].to_vec();
            columns.extend(features);
            let full = RecordBatch::try_new(table.schema.clone(), columns).map_err(arrow_err)?;
            // Rows read only as look-back context are not part of the range.
            let keep: arrow_array::BooleanArray = event_times
                .iter()
                .map(|t| Some(start.is_none_or(|s| *t >= s)))
                .collect();
            read.batch =
                arrow_select::filter::filter_record_batch(&full, &keep).map_err(arrow_err)?;
            Ok(read)
        })
        .await
        .map_err(|e| Error::Internal(format!("history task failed: {e}")))?
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
        let ts_col = entities
            .column_by_name(&options.timestamp_column)
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "{origin}: no timestamp column `{}` (columns: {})",
                    options.timestamp_column,
                    column_list(entities)
                ))
            })?;
        let entity_times =
            quiver_offline::source::column_to_nanos(&options.timestamp_column, ts_col)
                .map_err(|e| Error::InvalidRequest(format!("{origin}: {e}")))?;
        if entity_times.null_count() > 0 {
            return Err(Error::InvalidRequest(format!(
                "{origin}: timestamp column `{}` has nulls; every entity row needs a time",
                options.timestamp_column
            )));
        }
        let entity_times: Arc<[i64]> = entity_times.values().to_vec().into();

        // Group requested features by view, keeping request order for the output.
        let mut by_view: Vec<(String, Vec<FeatureRef>)> = Vec::new();
        for r in &refs {
            match by_view.iter_mut().find(|(v, _)| *v == r.view) {
                Some((_, list)) => list.push(r.clone()),
                None => by_view.push((r.view.clone(), vec![r.clone()])),
            }
        }
        let mut out_columns: Vec<(String, ArrayRef)> = Vec::new();
        let mut sources = Vec::new();
        for (view_name, features) in by_view {
            let served = self.view(&view_name)?.clone();
            let view = served.definition.clone();
            let (source, path) = self.source_of(&view)?;
            check_entity_keys(entities, &view, &origin)?;
            let job = HistoricalJob {
                entities: entities.clone(),
                entity_times: entity_times.clone(),
                features: features.clone(),
                view: view.clone(),
                source,
                path,
            };
            let (cols, read) = tokio::task::spawn_blocking(move || job.run())
                .await
                .map_err(|e| Error::Internal(format!("historical task failed: {e}")))??;
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
        let (mut fields, mut columns) = entity_columns(entities, &options.timestamp_column)?;
        for (name, col) in out_columns {
            if fields.iter().any(|f| f.name() == &name) {
                return Err(Error::InvalidRequest(format!(
                    "feature `{name}` collides with an entity column or another feature; use full feature names"
                )));
            }
            fields.push(ArrowField::new(&name, col.data_type().clone(), true));
            columns.push(col);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(entities.num_rows())),
        )
        .map_err(arrow_err)?;
        Ok(TrainingSet { batch, sources })
    }

    /// In strict mode, a view whose source has rows with a null event time is refused.
    fn refuse_dropped_rows(&self, view: &FeatureView, read: &TableRead) -> Result<()> {
        if read.rows_null_timestamp == 0 {
            return Ok(());
        }
        let (source, path) = self.source_of(view)?;
        Err(Error::InvalidRequest(format!(
            "source `{}` ({}): {} rows have a null event time `{}` (strict mode: feature view `{}` refused)",
            source.name,
            path.display(),
            read.rows_null_timestamp,
            source.timestamp_field,
            view.name
        )))
    }
}

/// One view's part of a training set, run on the blocking pool.
struct HistoricalJob {
    entities: RecordBatch,
    entity_times: Arc<[i64]>,
    features: Vec<FeatureRef>,
    view: Arc<FeatureView>,
    source: Source,
    path: std::path::PathBuf,
}

impl HistoricalJob {
    /// The view's feature columns for the entity rows, and what reading its source dropped.
    fn run(self) -> Result<(Vec<ArrayRef>, TableRead)> {
        let view = &self.view;
        let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
        let (Some(&min_t), Some(&max_t)) = (
            self.entity_times.iter().min(),
            self.entity_times.iter().max(),
        ) else {
            // No entity rows: typed, empty feature columns.
            let fields = output_fields(view, &self.features);
            let columns = fields
                .iter()
                .map(|f| arrow_array::new_empty_array(f.data_type()))
                .collect();
            return Ok((columns, empty_read(view)));
        };
        let read_start = if view.is_derived() {
            lookback_ns(view).map(|b| min_t.saturating_sub(b))
        } else {
            view.ttl.map(|t| min_t.saturating_sub(window_ns(t)))
        };
        let read = read_events(
            &self.path,
            &self.source,
            view,
            read_start,
            Some(max_t.saturating_add(1)),
        )?;
        let events = &read.batch;
        let mut interner = KeyInterner::new();
        let event_keys = interner
            .intern(&key_columns(events, &key_names)?)
            .map_err(compute_err)?;
        let query_keys = interner
            .intern(&key_columns(&self.entities, &key_names)?)
            .map_err(compute_err)?;
        let columns = if view.is_derived() {
            let indices: Vec<usize> = self
                .features
                .iter()
                .map(|f| view.field_index(&f.feature).unwrap_or(0))
                .collect();
            evaluate_transforms(
                view,
                events,
                &event_keys,
                &query_keys,
                &self.entity_times,
                Some(&indices),
            )?
        } else {
            let matched = compute::asof_join(
                &query_keys,
                &self.entity_times,
                &event_keys,
                &times(events, EVENT_TIMESTAMP),
                created_times(events).as_deref(),
                view.ttl.map(window_ns),
            )
            .map_err(compute_err)?;
            let columns: Vec<ArrayRef> =
                self.features
                    .iter()
                    .map(|f| {
                        events.column_by_name(&f.feature).cloned().ok_or_else(|| {
                            Error::Internal(format!("column `{}` not read", f.feature))
                        })
                    })
                    .collect::<Result<_>>()?;
            compute::take_columns(&columns, &matched).map_err(compute_err)?
        };
        Ok((columns, read))
    }
}

/// The Arrow fields a view's selected features have in a training set.
fn output_fields(view: &FeatureView, features: &[FeatureRef]) -> Vec<ArrowField> {
    let layout = quiver_offline::store::layout_schema(&view.join_keys, &view.fields);
    features
        .iter()
        .map(|f| match layout.field_with_name(&f.feature) {
            Ok(field) => field.clone(),
            Err(_) => ArrowField::new(&f.feature, arrow_schema::DataType::Float64, true),
        })
        .collect()
}

fn empty_read(view: &FeatureView) -> TableRead {
    TableRead {
        batch: RecordBatch::new_empty(quiver_offline::store::layout_schema(
            &view.join_keys,
            &view.fields,
        )),
        rows_scanned: 0,
        rows_null_timestamp: 0,
        rows_null_key: 0,
    }
}

/// Checks that the entity rows have the view's join keys, each an integer or string column as
/// the key's type says; the error names the rows' origin, the column and both types.
fn check_entity_keys(entities: &RecordBatch, view: &FeatureView, origin: &str) -> Result<()> {
    for key in &view.join_keys {
        let Some(column) = entities.column_by_name(&key.name) else {
            return Err(Error::InvalidRequest(format!(
                "{origin}: no column `{}`, a join key of feature view `{}` (columns: {})",
                key.name,
                view.name,
                column_list(entities)
            )));
        };
        let found = column.data_type();
        let fits = match key.key_type {
            ScalarType::String => matches!(
                found,
                arrow_schema::DataType::Utf8 | arrow_schema::DataType::LargeUtf8
            ),
            _ => found.is_integer(),
        };
        if !fits {
            let expected = match key.key_type {
                ScalarType::String => "a string column",
                _ => "an integer column",
            };
            return Err(Error::InvalidRequest(format!(
                "{origin}: column `{}` is {found} but join key `{}` of feature view `{}` is {} ({expected})",
                key.name,
                key.name,
                view.name,
                key.key_type.name()
            )));
        }
    }
    Ok(())
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

fn column_list(batch: &RecordBatch) -> String {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A derived view evaluated at `at` for every entity in its source (entities without events in a
/// window get that window's empty answer: sum 0, count 0, others null), as online records whose
/// event time is `at`. Every entity is included so an online value from an earlier
/// materialization is always replaced.
pub(crate) fn evaluate_latest(
    path: &std::path::Path,
    source: &Source,
    view: &FeatureView,
    at: i64,
) -> Result<quiver_offline::LatestRows> {
    let read = read_events(path, source, view, None, Some(at))?;
    let events = &read.batch;
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let key_cols = key_columns(events, &key_names)?;
    let mut interner = KeyInterner::new();
    let event_keys = interner.intern(&key_cols).map_err(compute_err)?;
    // One query per distinct key, at its first row.
    let mut first_row: Vec<Option<usize>> = vec![None; interner.len()];
    for (row, &k) in event_keys.iter().enumerate() {
        if let Some(slot) = first_row.get_mut(k as usize)
            && slot.is_none()
        {
            *slot = Some(row);
        }
    }
    let rows: Vec<usize> = first_row.into_iter().flatten().collect();
    let query_keys: Vec<u32> = rows.iter().map(|&r| event_keys[r]).collect();
    let query_times = vec![at; rows.len()];
    let features = evaluate_transforms(view, events, &event_keys, &query_keys, &query_times, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for (q, &row) in rows.iter().enumerate() {
        let key = quiver_core::EntityKey(
            key_cols
                .iter()
                .map(|c| key_value(c, row))
                .collect::<Result<Vec<_>>>()?,
        );
        let values = features
            .iter()
            .zip(&view.fields)
            .map(|(col, f)| {
                if col.is_null(q) {
                    quiver_core::Value::Null
                } else if f.value_type == ValueType::Scalar(ScalarType::Int64) {
                    quiver_core::Value::Int64(
                        col.as_primitive::<arrow_array::types::Int64Type>().value(q),
                    )
                } else {
                    quiver_core::Value::Float64(
                        col.as_primitive::<arrow_array::types::Float64Type>()
                            .value(q),
                    )
                }
            })
            .collect();
        out.push((
            key,
            quiver_core::Record {
                event_ts: at,
                created_ts: None,
                values,
            },
        ));
    }
    Ok(quiver_offline::LatestRows {
        rows_scanned: read.rows_scanned,
        rows_in_window: events.num_rows() as u64 + read.rows_null_key,
        rows_null_key: read.rows_null_key,
        rows_null_timestamp: read.rows_null_timestamp,
        rows: out,
    })
}

fn key_value(col: &ArrayRef, row: usize) -> Result<quiver_core::KeyValue> {
    match col.data_type() {
        arrow_schema::DataType::Int64 => Ok(quiver_core::KeyValue::Int(
            col.as_primitive::<arrow_array::types::Int64Type>()
                .value(row),
        )),
        arrow_schema::DataType::Utf8 => Ok(quiver_core::KeyValue::Str(
            col.as_string::<i32>().value(row).to_string(),
        )),
        other => Err(Error::Internal(format!("join key column of type {other}"))),
    }
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
