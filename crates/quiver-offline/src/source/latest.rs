//! The latest-row-per-entity fold.
//!
//! One pass over the batches. Per row, only the join keys and timestamps are decoded; a row that
//! beats its entity's current best is remembered by index, and field values are converted once
//! per batch for the rows still winning at the batch's end. So a file of many snapshots per
//! entity converts roughly one row per entity per batch, not every row.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use quiver_core::{EntityKey, KeyValue, Record, Value};

use super::convert::Prepared;
use super::{LatestRows, Planned};
use crate::error::{OfflineError, Result};

/// Where the key, timestamp and field columns sit in the planned columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub keys: usize,
    pub created: bool,
}

impl Layout {
    fn event(self) -> usize {
        self.keys
    }

    fn first_field(self) -> usize {
        self.keys + 1 + usize::from(self.created)
    }
}

/// One entity's current best row. `pending` is a row of the current batch whose values are not
/// converted yet; `record.values` then still holds an older winner's values (or nothing).
struct Slot {
    key: EntityKey,
    record: Record,
    pending: Option<usize>,
}

pub(crate) fn fold(
    origin: &str,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    planned: &[Planned],
    layout: Layout,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<LatestRows> {
    let mut out = LatestRows::default();
    let mut index: HashMap<EntityKey, usize> = HashMap::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    let bad = |column: &str, message: String| OfflineError::BadValue {
        origin: origin.to_string(),
        column: column.to_string(),
        message,
    };

    for batch in batches {
        let batch = batch.map_err(|e| OfflineError::ReadData {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let columns = planned
            .iter()
            .map(|p| {
                let array = batch.column_by_name(&p.column).ok_or_else(|| {
                    bad(
                        &p.column,
                        "column missing from a record batch (this is a bug in Quiver)".into(),
                    )
                })?;
                p.plan.prepare(array).map_err(|m| bad(&p.column, m))
            })
            .collect::<Result<Vec<Prepared>>>()?;
        let timestamp = |i: usize, row: usize| {
            columns[i]
                .timestamp(row)
                .map_err(|m| bad(&planned[i].column, m))
        };

        'rows: for row in 0..batch.num_rows() {
            out.rows_scanned += 1;
            let Some(event_ts) = timestamp(layout.event(), row)? else {
                out.rows_null_timestamp += 1;
                continue;
            };
            if start.is_some_and(|s| event_ts < s) || end.is_some_and(|e| event_ts >= e) {
                continue;
            }
            out.rows_in_window += 1;
            let mut key = Vec::with_capacity(layout.keys);
            for (i, column) in columns[..layout.keys].iter().enumerate() {
                match column.value(row).map_err(|m| bad(&planned[i].column, m))? {
                    Value::Int64(v) => key.push(KeyValue::Int(v)),
                    Value::String(s) => key.push(KeyValue::Str(s)),
                    Value::Null => {
                        out.rows_null_key += 1;
                        continue 'rows;
                    }
                    other => {
                        return Err(bad(
                            &planned[i].column,
                            format!("join key read as {other:?} (this is a bug in Quiver)"),
                        ));
                    }
                }
            }
            let created_ts = if layout.created {
                timestamp(layout.event() + 1, row)?
            } else {
                None
            };
            let candidate = Record {
                event_ts,
                created_ts,
                values: Vec::new(),
            };
            let key = EntityKey(key);
            match index.get(&key) {
                // `>=`: on a full tie the later row in the file wins.
                Some(&i) if candidate.order_key() >= slots[i].record.order_key() => {
                    let slot = &mut slots[i];
                    slot.record.event_ts = event_ts;
                    slot.record.created_ts = created_ts;
                    if slot.pending.replace(row).is_none() {
                        touched.push(i);
                    }
                }
                Some(_) => {}
                None => {
                    index.insert(key.clone(), slots.len());
                    touched.push(slots.len());
                    slots.push(Slot {
                        key,
                        record: candidate,
                        pending: Some(row),
                    });
                }
            }
        }

        for i in touched.drain(..) {
            let slot = &mut slots[i];
            let Some(row) = slot.pending.take() else {
                continue;
            };
            slot.record.values = columns[layout.first_field()..]
                .iter()
                .zip(&planned[layout.first_field()..])
                .map(|(column, p)| column.value(row).map_err(|m| bad(&p.column, m)))
                .collect::<Result<Vec<Value>>>()?;
        }
    }

    out.rows = slots.into_iter().map(|s| (s.key, s.record)).collect();
    Ok(out)
}
