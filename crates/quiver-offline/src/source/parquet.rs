//! Parquet sources: the footer gives the schema, and the Arrow reader decodes only the projected
//! columns, so a 50-column file costs what its 5 needed columns cost.

use std::fs::File;
use std::path::Path;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::Opened;
use super::convert::PlanOptions;
use crate::error::{OfflineError, Result};
use arrow_schema::SchemaRef;

fn builder(path: &Path, origin: &str) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let unreadable = |message: String| OfflineError::Unreadable {
        origin: origin.to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| unreadable(format!("not a readable parquet file: {e}")))
}

/// The file's Arrow schema, from the footer only.
pub(crate) fn schema(path: &Path, origin: &str) -> Result<SchemaRef> {
    Ok(builder(path, origin)?.schema().clone())
}

/// Opens the file reading only `columns` (those present; missing ones are reported by the
/// planner, which knows what each column was needed for).
pub(crate) fn open(
    path: &Path,
    origin: &str,
    columns: &[&str],
    batch_size: usize,
) -> Result<Opened> {
    let builder = builder(path, origin)?;
    let schema = builder.schema().clone();
    // Root indices of the Arrow schema are the Parquet schema's root columns, in order, so a
    // list column is projected whole.
    let roots: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| columns.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| OfflineError::Unreadable {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    Ok(Opened {
        schema,
        batches: Box::new(reader),
        options: PlanOptions::default(),
    })
}
