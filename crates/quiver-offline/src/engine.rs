//! Feature evaluation of one view over its source, the offline engine's view-level answers:
//! - [`history`]: the view's rows over a time range, in the offline table layout (`quiver build`);
//! - [`features_at`]: the view's features at given entity rows and times (training sets; the
//!   point-in-time rule of the module docs of [`crate::compute::asof`]);
//! - [`evaluate_latest`]: a derived view evaluated at one instant for every entity (what
//!   `materialize` writes online).
//!
//! Plain views read their fields; derived views (aggregations, time series) read their input
//! columns as float64 and evaluate them with the [`crate::compute`] operators. One event order
//! holds everywhere: `(event time, created time, row)`, an absent created time first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{Field as ArrowField, SchemaRef};
use quiver_core::definitions::{SeriesKind, Transform};
use quiver_core::{FeatureView, Field, ScalarType, Source, ValueType};

use crate::compute::{self, EventValues, Events, KeyInterner, WindowSpec};
use crate::error::{OfflineError, Result};
use crate::source::{LatestRows, ReadRequest, TableRead, read_table_counted};
use crate::store::{CREATED_TIMESTAMP, EVENT_TIMESTAMP, layout_schema};

fn arrow_err(e: arrow_schema::ArrowError) -> OfflineError {
    OfflineError::Internal {
        message: format!("arrow: {e}"),
    }
}

/// A duration in nanoseconds, saturating.
pub fn window_ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// How far back before an evaluation time a derived view needs events.
pub fn lookback_ns(view: &FeatureView) -> Option<i64> {
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
pub fn read_events(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<TableRead> {
    let fields = source_fields(view);
    read_table_counted(&ReadRequest {
        path,
        source,
        join_keys: &view.join_keys,
        fields: &fields,
        inputs: &view.inputs,
        start,
        end,
        sql: view.sql.as_deref(),
    })
}

/// The source columns a view reads, typed: its fields, or its transform inputs as float64.
pub fn source_fields(view: &FeatureView) -> Vec<Field> {
    if view.is_derived() {
        view.source_columns()
            .into_iter()
            .map(|name| Field {
                name,
                value_type: ValueType::Scalar(ScalarType::Float64),
                expression: None,
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
                .ok_or_else(|| OfflineError::MissingColumn {
                    origin: "the rows read".to_string(),
                    column: n.clone(),
                    available: column_list(batch),
                })
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
            .ok_or_else(|| not_read(column))?;
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
        let arrays = compute::aggregate_windows(&ev, query_keys, query_times, &spec_list)?;
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
        )?;
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
            }?;
            let taken = compute::take_columns(&[at_events], &matched)?;
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

/// A view's feature rows with event time in `[start, end)`, in the offline table layout
/// `schema`: plain views as read; derived views evaluated at each event's own time. The counts
/// are the source rows dropped for a null event time or join key (what `quiver build` writes).
pub fn history(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    schema: &SchemaRef,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<TableRead> {
    if !view.is_derived() {
        let mut read = read_events(path, source, view, start, end)?;
        read.batch = RecordBatch::try_new(schema.clone(), read.batch.columns().to_vec())
            .map_err(arrow_err)?;
        return Ok(read);
    }
    let read_start = match (start, lookback_ns(view)) {
        (Some(s), Some(back)) => Some(s.saturating_sub(back)),
        _ => None,
    };
    let mut read = read_events(path, source, view, read_start, end)?;
    let events = &read.batch;
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let mut interner = KeyInterner::new();
    let keys = interner.intern(&key_columns(events, &key_names)?)?;
    let event_times = times(events, EVENT_TIMESTAMP);
    let features = evaluate_transforms(view, events, &keys, &keys, &event_times, None)?;
    // `read_events` returns the offline layout: keys, event and created time, then the
    // source columns, which the computed features replace.
    let mut columns = events.columns()[..key_names.len() + 2].to_vec();
    columns.extend(features);
    let full = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err)?;
    // Rows read only as look-back context are not part of the range.
    let keep: arrow_array::BooleanArray = event_times
        .iter()
        .map(|t| Some(start.is_none_or(|s| *t >= s)))
        .collect();
    read.batch = arrow_select::filter::filter_record_batch(&full, &keep).map_err(arrow_err)?;
    Ok(read)
}

/// What [`features_at`] answers for: entity rows with the view's join keys, their times (ns UTC,
/// one per row) and the features wanted, by name.
#[derive(Clone, Copy, Debug)]
pub struct EntityRows<'a> {
    pub rows: &'a RecordBatch,
    pub times: &'a [i64],
    /// What the rows are, for messages (`entity file `labels.csv``).
    pub origin: &'a str,
}

/// The view's features at each entity row's time (the point-in-time rule: a plain view's latest
/// row with event time ≤ t and ≥ t − ttl; a window evaluated exactly at t; a series at the
/// entity's latest event ≤ t), one column per name in `features`, and what reading the source
/// dropped.
pub fn features_at(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    entities: EntityRows<'_>,
    features: &[String],
) -> Result<(Vec<ArrayRef>, TableRead)> {
    at_times(path, source, view, entities, features, false).map(|(pit, read)| (pit.columns, read))
}

/// What a training set sees at each entity row, with the detail a skew check compares:
/// [`point_in_time`].
#[derive(Clone, Debug)]
pub struct PointInTime {
    /// One column per feature, exactly as [`features_at`] returns them (null where no row is
    /// within the TTL).
    pub columns: Vec<ArrayRef>,
    /// Per entity row, for plain views: the event time of the latest source row at or before
    /// the row's time, even when it is older than the TTL (`None`: no such row, or a derived
    /// view, whose values are evaluated at the row's time).
    pub event_times: Vec<Option<i64>>,
    /// Per entity row: the latest source row is older than the view's TTL (the training set
    /// holds nulls; online, such a value is `OUTSIDE_MAX_AGE`).
    pub outside_ttl: Vec<bool>,
}

/// [`features_at`], plus per entity row the event time of the source row found and whether it
/// was older than the TTL. A plain view's source is read from its beginning (to tell an old
/// row from none).
pub fn point_in_time(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    entities: EntityRows<'_>,
    features: &[String],
) -> Result<(PointInTime, TableRead)> {
    at_times(path, source, view, entities, features, true)
}

/// [`features_at`] and [`point_in_time`]: `whole_history` reads a plain view's source from its
/// beginning instead of from the earliest time within the TTL of an entity row.
fn at_times(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    entities: EntityRows<'_>,
    features: &[String],
    whole_history: bool,
) -> Result<(PointInTime, TableRead)> {
    check_entity_keys(entities.rows, view, entities.origin)?;
    let n = entities.times.len();
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let (Some(&min_t), Some(&max_t)) = (entities.times.iter().min(), entities.times.iter().max())
    else {
        // No entity rows: typed, empty feature columns.
        let columns = output_fields(view, features)
            .iter()
            .map(|f| arrow_array::new_empty_array(f.data_type()))
            .collect();
        let pit = PointInTime {
            columns,
            event_times: Vec::new(),
            outside_ttl: Vec::new(),
        };
        return Ok((pit, empty_read(view)));
    };
    let ttl = view.ttl.map(window_ns);
    let read_start = if view.is_derived() {
        lookback_ns(view).map(|b| min_t.saturating_sub(b))
    } else if whole_history {
        None
    } else {
        ttl.map(|t| min_t.saturating_sub(t))
    };
    let read = read_events(
        path,
        source,
        view,
        read_start,
        Some(max_t.saturating_add(1)),
    )?;
    let events = &read.batch;
    let mut interner = KeyInterner::new();
    let event_keys = interner.intern(&key_columns(events, &key_names)?)?;
    let query_keys = interner.intern(&key_columns(entities.rows, &key_names)?)?;
    if view.is_derived() {
        let indices: Vec<usize> = features
            .iter()
            .map(|f| view.field_index(f).unwrap_or(0))
            .collect();
        let columns = evaluate_transforms(
            view,
            events,
            &event_keys,
            &query_keys,
            entities.times,
            Some(&indices),
        )?;
        let pit = PointInTime {
            columns,
            event_times: vec![None; n],
            outside_ttl: vec![false; n],
        };
        return Ok((pit, read));
    }
    let event_times = times(events, EVENT_TIMESTAMP);
    // The latest row at or before each time, whatever its age; the TTL is applied after (the
    // same rows a TTL-bounded join finds: when the latest row is too old, all are).
    let latest = compute::asof_join(
        &query_keys,
        entities.times,
        &event_keys,
        &event_times,
        created_times(events).as_deref(),
        None,
    )?;
    let mut found = Vec::with_capacity(n);
    let mut times_found = Vec::with_capacity(n);
    let mut outside_ttl = Vec::with_capacity(n);
    for (row, m) in latest.iter().enumerate() {
        let at = m.map(|i| event_times[i as usize]);
        let old = match (at, ttl) {
            (Some(at), Some(ttl)) => entities.times[row].saturating_sub(at) > ttl,
            _ => false,
        };
        found.push(if old { None } else { *m });
        times_found.push(at);
        outside_ttl.push(old);
    }
    let columns: Vec<ArrayRef> = features
        .iter()
        .map(|f| events.column_by_name(f).cloned().ok_or_else(|| not_read(f)))
        .collect::<Result<_>>()?;
    Ok((
        PointInTime {
            columns: compute::take_columns(&columns, &found)?,
            event_times: times_found,
            outside_ttl,
        },
        read,
    ))
}

fn not_read(column: &str) -> OfflineError {
    OfflineError::Internal {
        message: format!("column `{column}` was not read"),
    }
}

/// The Arrow fields a view's selected features have in a training set.
fn output_fields(view: &FeatureView, features: &[String]) -> Vec<ArrowField> {
    let layout = layout_schema(&view.join_keys, &view.fields);
    features
        .iter()
        .map(|f| match layout.field_with_name(f) {
            Ok(field) => field.clone(),
            Err(_) => ArrowField::new(f, arrow_schema::DataType::Float64, true),
        })
        .collect()
}

fn empty_read(view: &FeatureView) -> TableRead {
    TableRead {
        batch: RecordBatch::new_empty(layout_schema(&view.join_keys, &view.fields)),
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
            return Err(OfflineError::MissingColumn {
                origin: origin.to_string(),
                column: format!("{}` (a join key of feature view `{}`", key.name, view.name),
                available: column_list(entities),
            });
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
            return Err(OfflineError::IncompatibleType {
                origin: origin.to_string(),
                column: key.name.clone(),
                found: found.to_string(),
                expected: format!(
                    "join key `{}` of feature view `{}` is {} ({expected})",
                    key.name,
                    view.name,
                    key.key_type.name()
                ),
            });
        }
    }
    Ok(())
}

/// The batch's column names, backticked and comma-separated, for messages.
pub fn column_list(batch: &RecordBatch) -> String {
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
pub fn evaluate_latest(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    at: i64,
) -> Result<LatestRows> {
    let read = read_events(path, source, view, None, Some(at))?;
    let events = &read.batch;
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let key_cols = key_columns(events, &key_names)?;
    let mut interner = KeyInterner::new();
    let event_keys = interner.intern(&key_cols)?;
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
        out.push((key, record_at(view, &features, q, at)));
    }
    Ok(LatestRows {
        rows_scanned: read.rows_scanned,
        rows_in_window: events.num_rows() as u64 + read.rows_null_key,
        rows_null_key: read.rows_null_key,
        rows_null_timestamp: read.rows_null_timestamp,
        rows: out,
    })
}

/// A derived view's features at `keys`, evaluated at `at` over `(at − window, at]` (what
/// `historical` gives for an entity row at `at`): one record per key, event time `at`. Only
/// the look-back the windows need is read (series views read everything before `at`). What
/// serving computes on a miss.
pub fn evaluate_at(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    keys: &[quiver_core::EntityKey],
    at: i64,
) -> Result<Vec<quiver_core::Record>> {
    let start = lookback_ns(view).map(|back| at.saturating_sub(back));
    let read = read_events(path, source, view, start, Some(at.saturating_add(1)))?;
    let events = &read.batch;
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let mut interner = KeyInterner::new();
    let event_keys = interner.intern(&key_columns(events, &key_names)?)?;
    let query_keys = interner.intern(&key_arrays(view, keys)?)?;
    let query_times = vec![at; keys.len()];
    let features = evaluate_transforms(view, events, &event_keys, &query_keys, &query_times, None)?;
    Ok((0..keys.len())
        .map(|q| record_at(view, &features, q, at))
        .collect())
}

/// Entity keys as Arrow join-key columns (Int64 or Utf8 per key type).
fn key_arrays(view: &FeatureView, keys: &[quiver_core::EntityKey]) -> Result<Vec<ArrayRef>> {
    view.join_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let part = |key: &quiver_core::EntityKey| key.0.get(i).cloned();
            Ok(match k.key_type {
                ScalarType::String => Arc::new(arrow_array::StringArray::from_iter(
                    keys.iter().map(|key| match part(key) {
                        Some(quiver_core::KeyValue::Str(s)) => Some(s),
                        _ => None,
                    }),
                )) as ArrayRef,
                _ => Arc::new(arrow_array::Int64Array::from_iter(keys.iter().map(
                    |key| match part(key) {
                        Some(quiver_core::KeyValue::Int(v)) => Some(v),
                        _ => None,
                    },
                ))),
            })
        })
        .collect()
}

/// Query `q`'s computed features as a record with event time `at`.
fn record_at(view: &FeatureView, features: &[ArrayRef], q: usize, at: i64) -> quiver_core::Record {
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
    quiver_core::Record {
        event_ts: at,
        created_ts: None,
        values,
    }
}

/// The entity keys of `rows` for `view`: its join-key columns (integers or strings, as the keys'
/// types say), one key per row; rows with a null key part are skipped. Errors name `origin`,
/// the column and both types.
pub fn entity_keys(
    view: &FeatureView,
    rows: &RecordBatch,
    origin: &str,
) -> Result<Vec<quiver_core::EntityKey>> {
    Ok(keyed_rows(view, rows, origin)?
        .into_iter()
        .map(|(_, key)| key)
        .collect())
}

/// [`entity_keys`] with each key's row.
fn keyed_rows(
    view: &FeatureView,
    rows: &RecordBatch,
    origin: &str,
) -> Result<Vec<(usize, quiver_core::EntityKey)>> {
    check_entity_keys(rows, view, origin)?;
    let names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let columns: Vec<ArrayRef> = key_columns(rows, &names)?
        .iter()
        .map(|c| {
            let target = match c.data_type() {
                arrow_schema::DataType::Utf8 | arrow_schema::DataType::LargeUtf8 => {
                    arrow_schema::DataType::Utf8
                }
                _ => arrow_schema::DataType::Int64,
            };
            arrow_cast::cast(c, &target).map_err(arrow_err)
        })
        .collect::<Result<_>>()?;
    (0..rows.num_rows())
        .filter(|&row| columns.iter().all(|c| c.is_valid(row)))
        .map(|row| {
            let key = columns
                .iter()
                .map(|c| key_value(c, row))
                .collect::<Result<_>>()?;
            Ok((row, quiver_core::EntityKey(key)))
        })
        .collect()
}

/// The distinct entity keys of offline-table rows, the most recent event first: what
/// `quiver warm --top N` takes the first N of.
pub fn keys_by_recency(
    view: &FeatureView,
    batches: &[RecordBatch],
) -> Result<Vec<quiver_core::EntityKey>> {
    let mut latest: std::collections::HashMap<quiver_core::EntityKey, i64> =
        std::collections::HashMap::new();
    for batch in batches {
        let times = times(batch, EVENT_TIMESTAMP);
        for (row, key) in keyed_rows(view, batch, "the offline table")? {
            let Some(&t) = times.get(row) else {
                continue;
            };
            let slot = latest.entry(key).or_insert(t);
            *slot = (*slot).max(t);
        }
    }
    let mut keys: Vec<(quiver_core::EntityKey, i64)> = latest.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(keys.into_iter().map(|(k, _)| k).collect())
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
        other => Err(OfflineError::Internal {
            message: format!("join key column of type {other}"),
        }),
    }
}

/// One event of a derived view's inputs, as kept in a push's window state: its times and its
/// values in [`FeatureView::source_columns`] order (`None`: null).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowEvent {
    pub event_ts: i64,
    pub created_ts: Option<i64>,
    pub values: Vec<Option<f64>>,
}

/// Sorts one key's events into the engine's event order — event time, then created time (an
/// absent one first), then arrival (the order given, as a file's rows) — and drops those no
/// later evaluation can need: for windows, events at or before `latest − longest window`
/// (evaluations happen at the key's latest event, which only moves forward); for series, all
/// but the last `periods + 1`. An event needed by either kind is kept.
pub fn retain_window_events(view: &FeatureView, events: &mut Vec<WindowEvent>) {
    events.sort_by_key(|e| (e.event_ts, e.created_ts.is_some(), e.created_ts));
    let Some(latest) = events.last().map(|e| e.event_ts) else {
        return;
    };
    let mut window = None;
    let mut periods = None;
    for t in &view.transforms {
        match t {
            Transform::Window { window: w, .. } => {
                window = Some(window.unwrap_or(0).max(window_ns(*w)));
            }
            Transform::Series { periods: p, .. } => {
                periods = Some(periods.unwrap_or(0).max(*p as usize + 1));
            }
        }
    }
    let n = events.len();
    let mut index = 0;
    events.retain(|e| {
        let i = index;
        index += 1;
        window.is_some_and(|w| e.event_ts > latest.saturating_sub(w))
            || periods.is_some_and(|p| i + p >= n)
    });
}

/// A derived view's features at each key's latest event, computed from that key's events
/// alone (each list in the order [`retain_window_events`] leaves): what `/push` writes online.
/// It equals `history`'s (`quiver build`'s) row for the key's latest event whenever the events
/// hold what build reads in the look-back. One record per key, event time its latest event;
/// a key without events gets `None`.
pub fn evaluate_at_latest_event(
    view: &FeatureView,
    keys: &[Vec<WindowEvent>],
) -> Result<Vec<Option<quiver_core::Record>>> {
    let columns = view.source_columns();
    let mut event_keys: Vec<u32> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    let mut created: Vec<Option<i64>> = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::new(); columns.len()];
    let (mut query_keys, mut query_times) = (Vec::new(), Vec::new());
    for (k, events) in keys.iter().enumerate() {
        let Some(last) = events.last() else { continue };
        for e in events {
            event_keys.push(k as u32);
            times.push(e.event_ts);
            created.push(e.created_ts);
            for (c, v) in values.iter_mut().enumerate() {
                v.push(e.values.get(c).copied().flatten().filter(|x| !x.is_nan()));
            }
        }
        query_keys.push(k as u32);
        query_times.push(last.event_ts);
    }
    let mut fields = vec![
        ArrowField::new(EVENT_TIMESTAMP, crate::store::timestamp_type(), false),
        ArrowField::new(CREATED_TIMESTAMP, crate::store::timestamp_type(), true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(arrow_array::TimestampNanosecondArray::from(times).with_timezone("UTC")),
        Arc::new(arrow_array::TimestampNanosecondArray::from(created).with_timezone("UTC")),
    ];
    for (name, v) in columns.iter().zip(values) {
        fields.push(ArrowField::new(name, arrow_schema::DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(v)));
    }
    let events = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays)
        .map_err(arrow_err)?;
    let features =
        evaluate_transforms(view, &events, &event_keys, &query_keys, &query_times, None)?;
    let mut out = vec![None; keys.len()];
    for (q, (&k, &at)) in query_keys.iter().zip(&query_times).enumerate() {
        out[k as usize] = Some(record_at(view, &features, q, at));
    }
    Ok(out)
}

/// The events of the given keys in the view's source with event time from `start` on (all when
/// `None`), in file order, as [`WindowEvent`]s: what seeds a push's window state for keys
/// that have none yet.
pub fn window_events_of(
    path: &Path,
    source: &Source,
    view: &FeatureView,
    start: Option<i64>,
    keys: &[quiver_core::EntityKey],
) -> Result<Vec<Vec<WindowEvent>>> {
    let read = read_events(path, source, view, start, None)?;
    let events = &read.batch;
    let key_names: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
    let key_cols = key_columns(events, &key_names)?;
    let wanted: std::collections::HashMap<&quiver_core::EntityKey, usize> =
        keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let times = times(events, EVENT_TIMESTAMP);
    let created = created_times(events);
    let columns = view.source_columns();
    let value_cols = columns
        .iter()
        .map(|c| {
            events
                .column_by_name(c)
                .map(|a| a.as_primitive::<arrow_array::types::Float64Type>().clone())
                .ok_or_else(|| not_read(c))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = vec![Vec::new(); keys.len()];
    for row in 0..events.num_rows() {
        let key = quiver_core::EntityKey(
            key_cols
                .iter()
                .map(|c| key_value(c, row))
                .collect::<Result<Vec<_>>>()?,
        );
        let Some(&i) = wanted.get(&key) else { continue };
        out[i].push(WindowEvent {
            event_ts: times[row],
            created_ts: created.as_ref().and_then(|c| c[row]),
            values: value_cols
                .iter()
                .map(|v| v.is_valid(row).then(|| v.value(row)))
                .collect(),
        });
    }
    Ok(out)
}
