//! The Parquet store's answer to `read_latest`: a per-table in-memory index, built on the first
//! lookup and rebuilt when the table's `_manifest` changes.
//!
//! The index keeps the whole table decoded in memory (its Arrow columns, resolved once for
//! conversion by [`RowDecoder`]) and, per entity key, that key's rows sorted by (event time,
//! created time; a null created time first). A lookup is then one hash probe and one binary
//! search per key: no file is opened and no history is scanned, whatever `as_of` and TTL ask for.
//!
//! Trade-offs, measured with `examples/lookup_latency.rs`:
//! - Memory: about the table's decoded size (Arrow columns; int32 columns twice, widened to
//!   int64 for conversion) plus ~32 bytes per row and one small allocation per key. 1M rows of
//!   50 float32 features is ~250 MB. Tables whose history does not fit in memory belong in the
//!   PostgreSQL store, or want a `retention` so `prune` bounds them.
//! - Freshness: every lookup re-reads `_manifest` (a small text file) and compares it with the
//!   one the index was built from, so a write by this process or another is seen by the next
//!   lookup. The first lookup after a write pays a full rebuild (reading every file).
//! - Why not a "latest snapshot" file written by `write_range`: it answers only "as of now",
//!   while serving asks as of any time and within a TTL, which can land on older rows.
//! - Why not per-request reads with row-group statistics: decoding even a few pages per key for
//!   ~100 keys spread over the table costs tens of milliseconds.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use quiver_core::{EntityKey, KeyValue, Record};
use std::collections::HashMap;

use super::files::store_error;
use super::manifest::Manifest;
use crate::error::Result;
use crate::store::OfflineTable;
use crate::store::lookup::{RowDecoder, string_keys};

/// One row of the table: its ordering key and where it lives.
#[derive(Clone, Copy, Debug)]
struct RowRef {
    event: i64,
    created: Option<i64>,
    batch: u32,
    row: u32,
}

impl RowRef {
    /// `read_latest`'s order: event time, then created time with `None` first (Option's order).
    fn order(&self) -> (i64, Option<i64>) {
        (self.event, self.created)
    }
}

/// A table's rows by entity key, as of one manifest.
pub(super) struct LatestIndex {
    /// The manifest the index was built from; a different current one means it is stale.
    manifest: Manifest,
    decoders: Vec<RowDecoder>,
    /// Per key, its rows in ascending [`RowRef::order`].
    by_key: HashMap<EntityKey, Vec<RowRef>>,
}

impl LatestIndex {
    /// Indexes `batches`, every row of the table as listed by `manifest`.
    pub(super) fn build(
        table: &OfflineTable,
        manifest: Manifest,
        batches: &[RecordBatch],
    ) -> Result<LatestIndex> {
        let kinds = string_keys(table)?;
        let mut decoders = Vec::with_capacity(batches.len());
        let mut by_key: HashMap<EntityKey, Vec<RowRef>> = HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let decoder = RowDecoder::new(table, batch)?;
            let keys = key_columns(table, batch, &kinds)?;
            let batch_no = u32::try_from(b).map_err(|_| {
                store_error(format!(
                    "{}: too many batches to index",
                    table.qualified_name()
                ))
            })?;
            for row in 0..batch.num_rows() {
                let key = EntityKey(keys.iter().map(|k| k.value(row)).collect());
                by_key.entry(key).or_default().push(RowRef {
                    event: decoder.event_ts(row),
                    created: decoder.created_ts(row),
                    batch: batch_no,
                    // Batches are at most a few thousand rows (the reader's batch size).
                    row: u32::try_from(row).unwrap_or(u32::MAX),
                });
            }
            decoders.push(decoder);
        }
        for rows in by_key.values_mut() {
            rows.sort_by_key(RowRef::order);
        }
        Ok(LatestIndex {
            manifest,
            decoders,
            by_key,
        })
    }

    /// Whether the index still describes the table whose manifest is now `current`.
    pub(super) fn is_current(&self, current: &Manifest) -> bool {
        self.manifest == *current
    }

    /// Per key, the latest row with event time in `[lower, as_of]` (see `OfflineStore`).
    pub(super) fn lookup(
        &self,
        keys: &[EntityKey],
        as_of: i64,
        lower: Option<i64>,
    ) -> Result<Vec<Option<Record>>> {
        keys.iter()
            .map(|key| {
                let Some(rows) = self.by_key.get(key) else {
                    return Ok(None);
                };
                // Rows are ascending: the last one at or before `as_of` wins.
                let after = rows.partition_point(|r| r.event <= as_of);
                let Some(winner) = after.checked_sub(1).map(|i| rows[i]) else {
                    return Ok(None);
                };
                if lower.is_some_and(|lower| winner.event < lower) {
                    return Ok(None);
                }
                self.decoders[winner.batch as usize]
                    .record(winner.row as usize)
                    .map(Some)
            })
            .collect()
    }
}

/// Reads one join-key column of a batch.
enum KeyColumn {
    Int(arrow_array::Int64Array),
    Str(arrow_array::StringArray),
}

impl KeyColumn {
    fn value(&self, row: usize) -> KeyValue {
        match self {
            KeyColumn::Int(a) => KeyValue::Int(a.value(row)),
            KeyColumn::Str(a) => KeyValue::Str(a.value(row).to_string()),
        }
    }
}

fn key_columns(
    table: &OfflineTable,
    batch: &RecordBatch,
    kinds: &[bool],
) -> Result<Vec<KeyColumn>> {
    table
        .join_keys
        .iter()
        .zip(kinds)
        .map(|(name, is_string)| {
            let column: &ArrayRef = batch.column_by_name(name).ok_or_else(|| {
                store_error(format!(
                    "{}: batch has no join key `{name}` (this is a bug)",
                    table.qualified_name()
                ))
            })?;
            if column.null_count() > 0 {
                return Err(store_error(format!(
                    "{}: join key `{name}` holds nulls",
                    table.qualified_name()
                )));
            }
            let typed = if *is_string {
                column.as_string_opt::<i32>().cloned().map(KeyColumn::Str)
            } else {
                column
                    .as_primitive_opt::<Int64Type>()
                    .cloned()
                    .map(KeyColumn::Int)
            };
            typed.ok_or_else(|| {
                store_error(format!(
                    "{}: join key `{name}` is {}, not the table's type (this is a bug)",
                    table.qualified_name(),
                    column.data_type()
                ))
            })
        })
        .collect()
}
