//! CSV sources. CSV has no types, so the Arrow schema is built from the request: each needed
//! column is parsed as its declared type (timestamps as RFC 3339 or `YYYY-MM-DD HH:MM:SS`, UTC
//! when no offset is given; decimals as text, parsed exactly later), and every other column is
//! projected away unparsed. A header row is required: columns are matched by name.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_csv::ReaderBuilder;
use arrow_csv::reader::Format;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::Opened;
use super::convert::PlanOptions;
use crate::error::{OfflineError, Result};

fn unreadable(origin: &str, message: String) -> OfflineError {
    OfflineError::Unreadable {
        origin: origin.to_string(),
        message,
    }
}

pub(crate) fn open_file(path: &Path, origin: &str) -> Result<File> {
    File::open(path).map_err(|e| unreadable(origin, e.to_string()))
}

/// The header's column names, each typed Utf8.
pub(crate) fn header_schema(path: &Path, origin: &str) -> Result<SchemaRef> {
    let file = open_file(path, origin)?;
    // Zero records: read the header line only.
    let (inferred, _) = Format::default()
        .with_header(true)
        .infer_schema(file, Some(0))
        .map_err(|e| unreadable(origin, format!("cannot read the csv header: {e}")))?;
    if inferred.fields().is_empty() {
        return Err(unreadable(
            origin,
            "the csv file is empty; a header row naming the columns is required".into(),
        ));
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The full-width schema arrow-csv parses with: `columns` typed as given, the rest Utf8 (never
/// parsed, being projected away). Also the plan options CSV needs.
pub(crate) fn typed_schema(
    path: &Path,
    origin: &str,
    columns: &[(&str, DataType)],
) -> Result<(SchemaRef, PlanOptions)> {
    let header = header_schema(path, origin)?;
    let mut seen: Vec<&str> = Vec::new();
    let fields: Vec<Field> = header
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().as_str();
            // A repeated header name: only the first occurrence is the column.
            let first = !seen.contains(&name);
            seen.push(name);
            let ty = columns
                .iter()
                .find(|(c, _)| first && *c == name)
                .map(|(_, t)| t.clone())
                .unwrap_or(DataType::Utf8);
            Field::new(name, ty, true)
        })
        .collect();
    Ok((
        Arc::new(Schema::new(fields)),
        PlanOptions {
            text_decimals: true,
        },
    ))
}

pub(crate) fn open(
    path: &Path,
    origin: &str,
    columns: &[(&str, DataType)],
    batch_size: usize,
) -> Result<Opened> {
    let (full, options) = typed_schema(path, origin, columns)?;
    let mut projection: Vec<usize> = Vec::new();
    for (name, _) in columns {
        if let Some(i) = full.fields().iter().position(|f| f.name() == name)
            && !projection.contains(&i)
        {
            projection.push(i);
        }
    }
    projection.sort_unstable();
    let reader = ReaderBuilder::new(full.clone())
        .with_header(true)
        .with_batch_size(batch_size)
        .with_projection(projection)
        .build(open_file(path, origin)?)
        .map_err(|e| unreadable(origin, e.to_string()))?;
    Ok(Opened {
        schema: full,
        batches: Box::new(reader),
        options,
    })
}
