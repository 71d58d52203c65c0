//! The latest-row-per-entity fold.
//!
//! One pass over the batches. Per row, only the join keys and timestamps are decoded; a row that
//! beats its entity's current best is remembered by (batch, row) index. A batch's field columns
//! are kept only while some entity's winning row is in it, so memory holds the Arrow columns of
//! the winning rows (4 bytes per float32) plus a few dozen bytes per entity, never a converted
//! `Value` per field. Values are converted at the end, all at once ([`read_latest`]) or a chunk
//! at a time ([`LatestIndex::next_chunk`], what `materialize` streams into the online store).
//!
//! [`read_latest`]: super::read_latest

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use quiver_core::{EntityKey, KeyValue, Record, Value};

use super::convert::Prepared;
use super::{LatestRows, Planned, ReadRequest};
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

/// A winning row with a value its field's type cannot hold (an int64 beyond int32, a float64
/// beyond float32): the row is reported, not converted into something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The source column (the field) holding the value.
    pub column: String,
    /// What is wrong with the value, naming it.
    pub message: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field `{}`: {}", self.column, self.message)
    }
}

/// One entity's latest row, converted, or why it cannot be.
pub type LatestRow = (EntityKey, std::result::Result<Record, BadRow>);

/// One entity's current best row.
#[derive(Clone, Copy, Debug)]
struct Winner {
    event_ts: i64,
    created_ts: Option<i64>,
    batch: u32,
    row: u32,
}

impl Winner {
    fn order_key(&self) -> (i64, i64) {
        (self.event_ts, self.created_ts.unwrap_or(i64::MIN))
    }
}

/// The latest row per entity key inside the window, held compactly: the winners' positions and
/// the field columns of the batches they sit in. Rows come out in the order each key first
/// appeared in the file, converted to Quiver values a chunk at a time.
pub struct LatestIndex {
    /// Every row of the file.
    pub rows_scanned: u64,
    /// Rows whose event time is inside the window (including those with a null join key).
    pub rows_in_window: u64,
    /// Rows inside the window skipped because a join key is null.
    pub rows_null_key: u64,
    /// Rows skipped because their event time is null (they belong to no window).
    pub rows_null_timestamp: u64,
    origin: String,
    field_columns: Vec<String>,
    keys: Vec<EntityKey>,
    winners: Vec<Winner>,
    /// Per batch: its field columns while a not yet emitted winner sits in it.
    batches: Vec<Option<Vec<Prepared>>>,
    /// Per batch: winners not yet emitted by `next_chunk`.
    live: Vec<u32>,
    /// Winners before this one were emitted by `next_chunk`.
    cursor: usize,
}

impl std::fmt::Debug for LatestIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestIndex")
            .field("origin", &self.origin)
            .field("entities", &self.winners.len())
            .field("rows_scanned", &self.rows_scanned)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl LatestIndex {
    /// Number of entities (one row each).
    pub fn len(&self) -> usize {
        self.winners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.winners.is_empty()
    }

    /// Entities not yet returned by [`next_chunk`](Self::next_chunk).
    pub fn remaining(&self) -> usize {
        self.winners.len() - self.cursor
    }

    /// Rows `range` (in first-appearance order), converted; the index is left as it was.
    /// A row with a value that does not fit its field's type comes out as a [`BadRow`].
    pub fn rows(&self, range: std::ops::Range<usize>) -> Result<Vec<LatestRow>> {
        self.winners[range.clone()]
            .iter()
            .zip(&self.keys[range])
            .map(|(w, key)| Ok((key.clone(), self.record(w)?)))
            .collect()
    }

    /// The next (at most) `max` rows, converted (as in [`rows`](Self::rows)), or `None` when
    /// every row was returned. The field columns of a batch are freed once its last winner was
    /// returned.
    pub fn next_chunk(&mut self, max: usize) -> Option<Result<Vec<LatestRow>>> {
        if self.cursor >= self.winners.len() {
            return None;
        }
        let end = (self.cursor + max.max(1)).min(self.winners.len());
        let mut out = Vec::with_capacity(end - self.cursor);
        for i in self.cursor..end {
            let w = self.winners[i];
            match self.record(&w) {
                Ok(record) => {
                    let key = std::mem::replace(&mut self.keys[i], EntityKey(Vec::new()));
                    out.push((key, record));
                }
                Err(e) => return Some(Err(e)),
            }
            let b = w.batch as usize;
            self.live[b] -= 1;
            if self.live[b] == 0 {
                self.batches[b] = None;
            }
        }
        self.cursor = end;
        Some(Ok(out))
    }

    /// The winner's record; the outer error is a bug, the inner one a value that does not fit.
    fn record(&self, w: &Winner) -> Result<std::result::Result<Record, BadRow>> {
        let columns =
            self.batches[w.batch as usize]
                .as_ref()
                .ok_or_else(|| OfflineError::BadValue {
                    origin: self.origin.clone(),
                    column: String::new(),
                    message: "a winning row's batch was released (this is a bug in Quiver)".into(),
                })?;
        // A plain loop into a pre-sized Vec (collecting `Result`s cost more than converting).
        let mut values = Vec::with_capacity(columns.len());
        for (column, name) in columns.iter().zip(&self.field_columns) {
            match column.value(w.row as usize) {
                Ok(v) => values.push(v),
                Err(message) => {
                    return Ok(Err(BadRow {
                        column: name.clone(),
                        message,
                    }));
                }
            }
        }
        Ok(Ok(Record {
            event_ts: w.event_ts,
            created_ts: w.created_ts,
            values,
        }))
    }
}

/// [`read_latest`](super::read_latest), keeping the result as a [`LatestIndex`]: the same rows,
/// converted on demand, in a fraction of the memory (what `materialize` uses).
pub fn read_latest_index(req: &ReadRequest<'_>) -> Result<LatestIndex> {
    let origin = super::origin(req);
    let needs = super::needs(req);
    let opened = super::open(req, &origin, &needs, super::DEFAULT_BATCH_SIZE)?;
    let planned = super::plan_all(&origin, &opened.schema, &needs, opened.options)?;
    index(
        &origin,
        opened.batches,
        &planned,
        Layout {
            keys: req.join_keys.len(),
            created: req.source.created_timestamp_field.is_some(),
        },
        req.start,
        req.end,
    )
}

/// The fold behind [`read_latest`](super::read_latest): every row converted at once.
pub(crate) fn fold(
    origin: &str,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    planned: &[Planned],
    layout: Layout,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<LatestRows> {
    let mut index = index(origin, batches, planned, layout, start, end)?;
    let rows = match index.next_chunk(usize::MAX) {
        None => Vec::new(),
        Some(rows) => rows?,
    };
    // Every row is read out here, so a value that does not fit fails the read.
    let rows = rows
        .into_iter()
        .map(|(key, record)| {
            record
                .map(|r| (key, r))
                .map_err(|bad| OfflineError::BadValue {
                    origin: origin.to_string(),
                    column: bad.column,
                    message: bad.message,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LatestRows {
        rows,
        rows_scanned: index.rows_scanned,
        rows_in_window: index.rows_in_window,
        rows_null_key: index.rows_null_key,
        rows_null_timestamp: index.rows_null_timestamp,
    })
}

fn index(
    origin: &str,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    planned: &[Planned],
    layout: Layout,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<LatestIndex> {
    let mut out = LatestIndex {
        rows_scanned: 0,
        rows_in_window: 0,
        rows_null_key: 0,
        rows_null_timestamp: 0,
        origin: origin.to_string(),
        field_columns: planned[layout.first_field()..]
            .iter()
            .map(|p| p.column.clone())
            .collect(),
        keys: Vec::new(),
        winners: Vec::new(),
        batches: Vec::new(),
        live: Vec::new(),
        cursor: 0,
    };
    let mut index: HashMap<EntityKey, u32> = HashMap::new();
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
        let b = u32::try_from(out.batches.len()).map_err(|_| {
            bad(
                &planned[0].column,
                "more than 2^32 record batches in one source".into(),
            )
        })?;
        if u32::try_from(batch.num_rows()).is_err() {
            return Err(bad(
                &planned[0].column,
                "a record batch of more than 2^32 rows".into(),
            ));
        }
        let mut columns = planned
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
        out.live.push(0);
        out.batches.push(None);
        let timestamp = |columns: &[Prepared], i: usize, row: usize| {
            columns[i]
                .timestamp(row)
                .map_err(|m| bad(&planned[i].column, m))
        };

        'rows: for row in 0..batch.num_rows() {
            out.rows_scanned += 1;
            let Some(event_ts) = timestamp(&columns, layout.event(), row)? else {
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
                timestamp(&columns, layout.event() + 1, row)?
            } else {
                None
            };
            let candidate = Winner {
                event_ts,
                created_ts,
                batch: b,
                row: row as u32,
            };
            let key = EntityKey(key);
            match index.get(&key) {
                // `>=`: on a full tie the later row in the file wins.
                Some(&i) if candidate.order_key() >= out.winners[i as usize].order_key() => {
                    let old = std::mem::replace(&mut out.winners[i as usize], candidate).batch;
                    if old != b {
                        let old = old as usize;
                        out.live[old] -= 1;
                        if out.live[old] == 0 {
                            out.batches[old] = None;
                        }
                        out.live[b as usize] += 1;
                    }
                }
                Some(_) => {}
                None => {
                    let i = u32::try_from(out.winners.len()).map_err(|_| {
                        bad(
                            &planned[0].column,
                            "more than 2^32 entities in one source".into(),
                        )
                    })?;
                    index.insert(key, i);
                    out.winners.push(candidate);
                    out.live[b as usize] += 1;
                }
            }
        }

        if out.live[b as usize] > 0 {
            out.batches[b as usize] = Some(columns.split_off(layout.first_field()));
        }
    }

    // The keys, in first-appearance order, moved out of the map.
    let mut keys: Vec<EntityKey> = vec![EntityKey(Vec::new()); out.winners.len()];
    for (key, i) in index {
        keys[i as usize] = key;
    }
    out.keys = keys;
    Ok(out)
}
