//! Whole-file Arrow I/O for user-facing files: entity files given to `quiver historical` (Parquet
//! or CSV with a header; CSV types inferred) and training sets written by it (Parquet, zstd).
//!
//! CSV timestamps come out as `Timestamp(µs, "UTC")` whatever their precision in the text: arrow
//! infers whole-second text as seconds and fractions as milliseconds, both without a zone, which
//! would reach a training set as a bare integer or a zone-less time.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{OfflineError, Result};

fn unreadable(path: &Path, message: impl ToString) -> OfflineError {
    OfflineError::Unreadable {
        origin: format!("file `{}`", path.display()),
        message: message.to_string(),
    }
}

/// Reads a Parquet or CSV file (by extension; `.csv` is CSV) into one batch.
pub fn read_file(path: &Path) -> Result<RecordBatch> {
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let batches: Vec<RecordBatch> = if is_csv {
        let mut file = File::open(path).map_err(|e| unreadable(path, e))?;
        let format = arrow_csv::reader::Format::default().with_header(true);
        let (inferred, _) = format
            .infer_schema(&mut file, Some(10_000))
            .map_err(|e| unreadable(path, format!("cannot infer CSV columns: {e}")))?;
        // Timestamp columns are read as text and parsed by Quiver's own RFC 3339 parser.
        let times: Vec<usize> = inferred
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f.data_type(), DataType::Timestamp(..)))
            .map(|(i, _)| i)
            .collect();
        let text_schema = Arc::new(Schema::new(
            inferred
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match times.contains(&i) {
                    true => Field::new(f.name(), DataType::Utf8, true),
                    false => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let file = File::open(path).map_err(|e| unreadable(path, e))?;
        let batches: Vec<RecordBatch> = arrow_csv::ReaderBuilder::new(text_schema)
            .with_format(format)
            .build(file)
            .map_err(|e| unreadable(path, e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unreadable(path, e))?;
        batches
            .iter()
            .map(|b| parse_timestamp_columns(path, b, &times))
            .collect::<Result<_>>()?
    } else {
        let file = File::open(path).map_err(|e| unreadable(path, e))?;
        ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| unreadable(path, format!("not a readable parquet file: {e}")))?
            .build()
            .map_err(|e| unreadable(path, e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unreadable(path, e))?
    };
    let Some(first) = batches.first() else {
        return Err(unreadable(path, "the file has no rows"));
    };
    arrow_select::concat::concat_batches(&first.schema(), &batches).map_err(|e| unreadable(path, e))
}

/// Replaces the text columns at `columns` with `Timestamp(µs, "UTC")` columns.
fn parse_timestamp_columns(
    path: &Path,
    batch: &RecordBatch,
    columns: &[usize],
) -> Result<RecordBatch> {
    if columns.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for &i in columns {
        let name = fields[i].name().clone();
        let micros = timestamp_micros(&name, &arrays[i]).map_err(|e| match e {
            OfflineError::BadValue {
                column, message, ..
            } => OfflineError::BadValue {
                origin: format!("file `{}`", path.display()),
                column,
                message,
            },
            other => other,
        })?;
        fields[i] = Field::new(name, micros.data_type().clone(), true);
        arrays[i] = micros;
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| unreadable(path, e))
}

/// A user file's time column (RFC 3339 text, or any timestamp or date type) as
/// `Timestamp(µs, "UTC")`: the type of a training set's time columns.
pub fn timestamp_micros(name: &str, column: &ArrayRef) -> Result<ArrayRef> {
    let nanos = crate::source::column_to_nanos(name, column)?;
    let micros: TimestampMicrosecondArray = nanos
        .iter()
        .map(|v| v.map(|ns| ns.div_euclid(1_000)))
        .collect();
    Ok(Arc::new(micros.with_timezone("UTC")))
}

/// Writes a batch as a zstd Parquet file (to a temporary name, then renamed into place).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let write_err = |e: &dyn std::fmt::Display| OfflineError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_err(&e))?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| write_err(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| write_err(&e))?;
    writer.write(batch).map_err(|e| write_err(&e))?;
    writer.close().map_err(|e| write_err(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(&e))
}
