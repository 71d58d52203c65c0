//! Day partitions, file names, and reading or writing one Parquet file of a table.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray, new_null_array};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use chrono::DateTime;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{OfflineError, Result};
use crate::store::EVENT_TIMESTAMP;

/// Nanoseconds in a UTC day (no leap seconds in Unix time).
pub(super) const DAY_NANOS: i64 = 86_400_000_000_000;
/// Rows per decoded batch when reading.
const READ_BATCH_ROWS: usize = 8192;

pub(super) fn store_error(message: String) -> OfflineError {
    OfflineError::Store {
        store: "parquet",
        message,
    }
}

/// The day (days since 1970-01-01, UTC) holding a nanosecond timestamp.
pub(super) fn day_of(ns: i64) -> i64 {
    ns.div_euclid(DAY_NANOS)
}

/// `[start, end)` of a day in nanoseconds, as i128 so the last representable day cannot overflow.
pub(super) fn day_bounds(day: i64) -> (i128, i128) {
    let start = i128::from(day) * i128::from(DAY_NANOS);
    (start, start + i128::from(DAY_NANOS))
}

/// The partition directory name of a day: `day=YYYY-MM-DD`.
pub(super) fn day_dir(day: i64) -> String {
    let date = DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.date_naive().format("%Y-%m-%d").to_string())
        // Unreachable for days derived from i64 nanoseconds; keep a parseable name regardless.
        .unwrap_or_else(|| format!("{day}"));
    format!("day={date}")
}

/// The day of a partition directory name written by [`day_dir`].
pub(super) fn parse_day_dir(name: &str) -> Option<i64> {
    let date = name.strip_prefix("day=")?;
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(midnight.div_euclid(86_400))
}

/// A file name no other write (in this or another process) will pick: time, pid and a counter.
pub(super) fn unique_name(prefix: &str, suffix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{nanos:x}-{:x}-{n}{suffix}", std::process::id())
}

/// The event times of a batch of the table schema.
fn event_times(batch: &RecordBatch) -> Result<&TimestampNanosecondArray> {
    batch
        .column_by_name(EVENT_TIMESTAMP)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| {
            store_error(format!(
                "batch has no nanosecond `{EVENT_TIMESTAMP}` column (this is a bug)"
            ))
        })
}

/// The rows of `batch` whose event time satisfies `keep`.
pub(super) fn filter_by_time(
    batch: &RecordBatch,
    keep: impl Fn(i128) -> bool,
) -> Result<RecordBatch> {
    let times = event_times(batch)?;
    let mask: BooleanArray = times
        .iter()
        .map(|t| Some(t.is_some_and(|t| keep(i128::from(t)))))
        .collect();
    if mask.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    filter_record_batch(batch, &mask).map_err(|e| store_error(format!("filtering rows: {e}")))
}

/// Splits rows by the UTC day of their event time.
pub(super) fn split_by_day(batches: &[RecordBatch]) -> Result<BTreeMap<i64, Vec<RecordBatch>>> {
    let mut days: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        let times = event_times(batch)?;
        let mut present: Vec<i64> = times.values().iter().map(|t| day_of(*t)).collect();
        present.sort_unstable();
        present.dedup();
        if let [only] = present[..] {
            // The common case (a daily build): no copy.
            days.entry(only).or_default().push(batch.clone());
            continue;
        }
        for day in present {
            let (lo, hi) = day_bounds(day);
            let part = filter_by_time(batch, |t| t >= lo && t < hi)?;
            days.entry(day).or_default().push(part);
        }
    }
    Ok(days)
}

/// Writes `batches` as one zstd Parquet file at `path` and flushes it to disk, so that once the
/// manifest names it the data survives a crash.
pub(super) fn write_file(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        store_error(format!("{what} `{}`: {e}", path.display()))
    };
    let level = ZstdLevel::try_new(3).map_err(|e| fail("zstd level for", &e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .build();
    let file = File::create(path).map_err(|e| fail("cannot create", &e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| fail("cannot write", &e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| fail("cannot write", &e))?;
    }
    let file = writer.into_inner().map_err(|e| fail("cannot finish", &e))?;
    file.sync_all().map_err(|e| fail("cannot sync", &e))
}

/// Why reading a listed file failed.
pub(super) enum ReadFailure {
    /// The file is gone: a writer in another process replaced it after we read the manifest.
    Vanished,
    Failed(OfflineError),
}

/// How the columns of a file become the table schema's.
#[derive(Clone, Copy, Debug)]
pub(super) enum Fit {
    /// The file has exactly the table's columns (feature tables: a new schema is a new table).
    Exact,
    /// Columns are matched by name: a nullable table column the file lacks (a field added
    /// since it was written) reads as nulls, and file columns the table lacks are dropped
    /// (record tables, whose namespaces gain fields in place).
    ByName,
}

/// Reads a whole file as batches carrying exactly `schema`.
pub(super) fn read_file(
    path: &Path,
    schema: &SchemaRef,
) -> std::result::Result<Vec<RecordBatch>, ReadFailure> {
    read_file_fit(path, schema, Fit::Exact)
}

/// Reads a whole file as batches carrying exactly `schema`, fitting its columns as `fit` says.
pub(super) fn read_file_fit(
    path: &Path,
    schema: &SchemaRef,
    fit: Fit,
) -> std::result::Result<Vec<RecordBatch>, ReadFailure> {
    let fail = |e: &dyn std::fmt::Display| {
        ReadFailure::Failed(store_error(format!(
            "cannot read `{}`: {e}",
            path.display()
        )))
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadFailure::Vanished),
        Err(e) => return Err(fail(&e)),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
        .map_err(|e| fail(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(&e))?;
        let batch = match fit {
            // Re-label with the table schema: the file's embedded Arrow schema must have the
            // same types, and the caller is promised exactly the table schema.
            Fit::Exact => {
                RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| {
                    fail(&format!(
                        "file does not match the table schema ({e}); was it written by another \
                         version?"
                    ))
                })?
            }
            Fit::ByName => by_name(schema, &batch).map_err(|e| fail(&e))?,
        };
        out.push(batch);
    }
    Ok(out)
}

/// `batch`'s columns matched to `schema` by name (see [`Fit::ByName`]).
fn by_name(schema: &SchemaRef, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => Err(format!(
                "column `{}` is {} in the file but {} in the table schema",
                field.name(),
                c.data_type(),
                field.data_type()
            )),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(format!("the file has no column `{}`", field.name())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// The Arrow schema a file was written with (its footer only).
pub(super) fn file_schema(path: &Path) -> Result<SchemaRef> {
    let fail =
        |e: &dyn std::fmt::Display| store_error(format!("cannot read `{}`: {e}", path.display()));
    let file = File::open(path).map_err(|e| fail(&e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map(|b| b.schema().clone())
        .map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_round_trip_including_before_1970() {
        for day in [-1, 0, 1, 20_000] {
            assert_eq!(parse_day_dir(&day_dir(day)), Some(day));
        }
        assert_eq!(day_dir(0), "day=1970-01-01");
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(DAY_NANOS), 1);
        assert_eq!(parse_day_dir("day=nope"), None);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a-", ".x"), unique_name("a-", ".x"));
    }
}
