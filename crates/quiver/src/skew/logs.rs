//! Reading exported served-feature logs back as rows: one row per entity row of a logged
//! answer, with its request time, entity key, layers, and per feature of the service the value,
//! status and event time served. Decoded in parallel (the JSON payload is most of the work).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field as ArrowField, Schema};
use quiver_core::{FeatureStatus, FeatureView, KeyValue, ScalarType, Value, ValueType};
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// Which logs and what in them.
pub(crate) struct Spec {
    pub service: String,
    /// Per feature of the service: the names it may be logged under (full, short) and type.
    pub features: Vec<([String; 2], ValueType)>,
    /// The join keys the service's views need, with their types.
    pub key_types: BTreeMap<String, ScalarType>,
}

/// What was served for one feature, per row.
#[derive(Clone, Debug, Default)]
pub struct OnlineColumn {
    pub values: Vec<Value>,
    /// `None`: the row's log does not hold this feature (the service changed since).
    pub statuses: Vec<Option<FeatureStatus>>,
    /// The served record's event time (0: none).
    pub event_times: Vec<i64>,
}

/// Logged rows, column by column.
#[derive(Clone, Debug, Default)]
pub struct LoggedRows {
    /// Log records (requests) read.
    pub requests: u64,
    /// Per row: the request time, ns UTC.
    pub times: Vec<i64>,
    /// Per row: the index of its request in `request_ids`.
    pub request_of: Vec<u32>,
    pub request_ids: Vec<Arc<str>>,
    /// Per row: the layers that answered, `+`-joined.
    pub layers: Vec<Arc<str>>,
    /// Per join key: its value in each row.
    pub keys: BTreeMap<String, Vec<KeyValue>>,
    /// Per feature of the service, in its order.
    pub features: Vec<OnlineColumn>,
    /// Rows left out, and why (the first few reasons).
    pub skipped: u64,
    pub skipped_reasons: Vec<String>,
}

const REASONS_KEPT: usize = 10;

impl LoggedRows {
    /// No rows yet, with a column per feature and join key of `spec`.
    fn empty(spec: &Spec) -> LoggedRows {
        LoggedRows {
            features: vec![OnlineColumn::default(); spec.features.len()],
            keys: spec
                .key_types
                .keys()
                .map(|k| (k.clone(), Vec::new()))
                .collect(),
            ..LoggedRows::default()
        }
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    pub fn request_id(&self, row: usize) -> &str {
        &self.request_ids[self.request_of[row] as usize]
    }

    /// `key=value` pairs of the row's entity.
    pub fn entity_label(&self, row: usize) -> String {
        self.keys
            .iter()
            .map(|(k, vs)| format!("{k}={}", vs[row]))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn skip(&mut self, rows: u64, reason: String) {
        self.skipped += rows;
        if self.skipped_reasons.len() < REASONS_KEPT {
            self.skipped_reasons.push(reason);
        }
    }

    /// A uniform random sample of `n` rows (by `seed`), in their original order.
    pub fn sample(&self, n: usize, seed: u64) -> LoggedRows {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut picked = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        picked.sort_unstable();
        fn take<T: Copy>(picked: &[usize], v: &[T]) -> Vec<T> {
            picked.iter().map(|&i| v[i]).collect()
        }
        LoggedRows {
            requests: self.requests,
            times: take(&picked, &self.times),
            request_of: take(&picked, &self.request_of),
            request_ids: self.request_ids.clone(),
            layers: picked.iter().map(|&i| self.layers[i].clone()).collect(),
            keys: self
                .keys
                .iter()
                .map(|(k, vs)| (k.clone(), picked.iter().map(|&i| vs[i].clone()).collect()))
                .collect(),
            features: self
                .features
                .iter()
                .map(|c| OnlineColumn {
                    values: picked.iter().map(|&i| c.values[i].clone()).collect(),
                    statuses: take(&picked, &c.statuses),
                    event_times: take(&picked, &c.event_times),
                })
                .collect(),
            skipped: self.skipped,
            skipped_reasons: self.skipped_reasons.clone(),
        }
    }

    /// The rows as entity rows of `view`: one column per join key (Int64 or Utf8).
    pub fn entity_batch(&self, view: &FeatureView) -> Result<RecordBatch> {
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for key in &view.join_keys {
            let values = self.keys.get(&key.name).ok_or_else(|| {
                Error::Internal(format!("join key `{}` was not decoded", key.name))
            })?;
            let column: ArrayRef = match key.key_type {
                ScalarType::String => Arc::new(
                    values
                        .iter()
                        .map(|v| match v {
                            KeyValue::Str(s) => Some(s.clone()),
                            KeyValue::Int(i) => Some(i.to_string()),
                        })
                        .collect::<StringArray>(),
                ),
                _ => Arc::new(
                    values
                        .iter()
                        .map(|v| match v {
                            KeyValue::Int(i) => Some(*i),
                            KeyValue::Str(s) => s.parse().ok(),
                        })
                        .collect::<Int64Array>(),
                ),
            };
            fields.push(ArrowField::new(&key.name, column.data_type().clone(), true));
            columns.push(column);
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(self.len())),
        )
        .map_err(|e| Error::Internal(format!("entity rows of the logs: {e}")))
    }

    fn append(&mut self, mut other: LoggedRows) {
        let offset = self.request_ids.len() as u32;
        self.requests += other.requests;
        self.times.append(&mut other.times);
        self.request_of
            .extend(other.request_of.iter().map(|r| r + offset));
        self.request_ids.append(&mut other.request_ids);
        self.layers.append(&mut other.layers);
        for (k, mut vs) in other.keys {
            self.keys.entry(k).or_default().append(&mut vs);
        }
        for (mine, theirs) in self.features.iter_mut().zip(other.features) {
            mine.values.extend(theirs.values);
            mine.statuses.extend(theirs.statuses);
            mine.event_times.extend(theirs.event_times);
        }
        self.skipped += other.skipped;
        for r in other.skipped_reasons {
            self.skip(0, r);
        }
    }
}

/// One exported log record's payload (see `records::served_record`).
#[derive(Deserialize)]
struct Logged {
    features: Vec<String>,
    entities: BTreeMap<String, Vec<Json>>,
    values: Vec<Vec<Json>>,
    statuses: Vec<Vec<FeatureStatus>>,
    event_timestamps: Vec<Vec<i64>>,
    layers: Vec<Vec<String>>,
}

/// One log record selected for decoding.
struct Selected<'a> {
    time: i64,
    id: &'a str,
    payload: &'a str,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        Error::Internal(format!(
            "the served-feature log table has no column `{name}`"
        ))
    })
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    let c = column(batch, name)?;
    c.as_string_opt::<i32>().ok_or_else(|| {
        Error::Internal(format!(
            "column `{name}` of the served-feature log table is {}, not text",
            c.data_type()
        ))
    })
}

/// Decodes the rows of `spec.service` in `batches` (the window's, as the sink read them), in
/// log order.
pub(crate) fn decode(batches: &[RecordBatch], spec: &Spec) -> Result<LoggedRows> {
    let mut selected = Vec::new();
    for batch in batches {
        let ids = text(batch, "request_id")?;
        let times = column(batch, quiver_offline::store::EVENT_TIMESTAMP)?
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| Error::Internal("log times are not timestamps".into()))?;
        let services = text(batch, "service")?;
        let payloads = text(batch, "payload")?;
        for row in 0..batch.num_rows() {
            if services.is_null(row) || services.value(row) != spec.service {
                continue;
            }
            selected.push(Selected {
                time: times.value(row),
                id: ids.value(row),
                payload: payloads.value(row),
            });
        }
    }
    // Parallel decoding, in contiguous chunks so the order is kept.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = selected.len().div_ceil(workers).max(1);
    let parts: Vec<Result<LoggedRows>> = std::thread::scope(|s| {
        let handles: Vec<_> = selected
            .chunks(chunk)
            .map(|part| s.spawn(move || decode_part(part, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("log decoding panicked".into())))
            })
            .collect()
    });
    let mut out = LoggedRows::empty(spec);
    for part in parts {
        out.append(part?);
    }
    Ok(out)
}

fn decode_part(part: &[Selected<'_>], spec: &Spec) -> Result<LoggedRows> {
    let mut out = LoggedRows::empty(spec);
    for sel in part {
        out.requests += 1;
        let logged: Logged = match serde_json::from_str(sel.payload) {
            Ok(l) => l,
            Err(e) => {
                out.skip(
                    0,
                    format!("request `{}`: the log record does not decode: {e}", sel.id),
                );
                continue;
            }
        };
        let rows = logged.layers.len();
        if let Err(reason) = check_shape(&logged, rows) {
            out.skip(rows as u64, format!("request `{}`: {reason}", sel.id));
            continue;
        }
        // The row's entity keys, typed.
        let mut keys: Vec<(&String, Vec<KeyValue>)> = Vec::with_capacity(spec.key_types.len());
        let mut bad_key = None;
        for (name, ty) in &spec.key_types {
            match logged.entities.get(name) {
                None => {
                    bad_key = Some(format!("it has no join key `{name}`"));
                    break;
                }
                Some(values) => {
                    match values.iter().map(|v| KeyValue::from_json(v, *ty)).collect() {
                        Ok(vs) => keys.push((name, vs)),
                        Err(e) => {
                            bad_key = Some(format!("join key `{name}`: {e}"));
                            break;
                        }
                    }
                }
            }
        }
        if let Some(reason) = bad_key {
            out.skip(rows as u64, format!("request `{}`: {reason}", sel.id));
            continue;
        }
        for (name, vs) in keys {
            if let Some(column) = out.keys.get_mut(name) {
                column.extend(vs);
            }
        }
        let request = out.request_ids.len() as u32;
        out.request_ids.push(Arc::from(sel.id));
        out.times.extend(std::iter::repeat_n(sel.time, rows));
        out.request_of.extend(std::iter::repeat_n(request, rows));
        out.layers.extend(
            logged
                .layers
                .iter()
                .map(|ls| Arc::<str>::from(ls.join("+"))),
        );
        for (f, (names, ty)) in spec.features.iter().enumerate() {
            let column = &mut out.features[f];
            let at = logged
                .features
                .iter()
                .position(|n| *n == names[0])
                .or_else(|| logged.features.iter().position(|n| *n == names[1]));
            let Some(at) = at else {
                column.values.extend(std::iter::repeat_n(Value::Null, rows));
                column.statuses.extend(std::iter::repeat_n(None, rows));
                column.event_times.extend(std::iter::repeat_n(0, rows));
                continue;
            };
            for row in 0..rows {
                let status = logged.statuses[at][row];
                match Value::from_json(&logged.values[at][row], *ty) {
                    Ok(v) => {
                        column.values.push(v);
                        column.statuses.push(Some(status));
                    }
                    Err(e) => {
                        // The type changed since it was served: not comparable (the row stays,
                        // this feature of it is not compared).
                        if out.skipped_reasons.len() < REASONS_KEPT {
                            out.skipped_reasons
                                .push(format!("request `{}`, feature `{}`: {e}", sel.id, names[1]));
                        }
                        column.values.push(Value::Null);
                        column.statuses.push(None);
                    }
                }
                column.event_times.push(logged.event_timestamps[at][row]);
            }
        }
    }
    Ok(out)
}

/// Every per-feature list has one entry per row, and every feature a list.
fn check_shape(logged: &Logged, rows: usize) -> std::result::Result<(), String> {
    let n = logged.features.len();
    if logged.values.len() != n || logged.statuses.len() != n || logged.event_timestamps.len() != n
    {
        return Err(format!(
            "{n} features but {} value, {} status and {} event time lists",
            logged.values.len(),
            logged.statuses.len(),
            logged.event_timestamps.len()
        ));
    }
    let lists = logged
        .values
        .iter()
        .map(Vec::len)
        .chain(logged.statuses.iter().map(Vec::len))
        .chain(logged.event_timestamps.iter().map(Vec::len))
        .chain(logged.entities.values().map(Vec::len));
    for len in lists {
        if len != rows {
            return Err(format!("a list of {len} entries in a log of {rows} rows"));
        }
    }
    Ok(())
}
