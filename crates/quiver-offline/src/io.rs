//! Whole-file Arrow I/O for user-facing files: entity files given to `quiver historical` (Parquet
//! or CSV with a header; CSV types inferred) and training sets written by it (Parquet, zstd).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
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
        let (schema, _) = format
            .infer_schema(&mut file, Some(10_000))
            .map_err(|e| unreadable(path, format!("cannot infer CSV columns: {e}")))?;
        let file = File::open(path).map_err(|e| unreadable(path, e))?;
        arrow_csv::ReaderBuilder::new(Arc::new(schema))
            .with_format(format)
            .build(file)
            .map_err(|e| unreadable(path, e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unreadable(path, e))?
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
