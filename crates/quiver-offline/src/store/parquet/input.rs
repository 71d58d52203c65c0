//! Checks on what a caller hands to `write_range`, done before a backend touches storage so a
//! bad batch fails the call without replacing anything.
//!
//! Shared by every backend (the Parquet and PostgreSQL stores both call [`conform_batches`]).

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray};
use chrono::DateTime;

use crate::error::{OfflineError, Result};
use crate::store::{EVENT_TIMESTAMP, OfflineTable};

/// How an error names the table.
pub(crate) fn origin(table: &OfflineTable) -> String {
    format!("offline table `{}`", table.qualified_name())
}

/// Renders a nanosecond timestamp for messages (RFC 3339, UTC).
pub(crate) fn render_time(ns: i64) -> String {
    let dt = DateTime::from_timestamp_nanos(ns);
    dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Checks that `batches` have exactly the table's columns and types and that every event time
/// lies in `[start, end)`; returns the non-empty batches carrying exactly the table schema
/// (so field metadata a caller attached never reaches storage).
pub(crate) fn conform_batches(
    table: &OfflineTable,
    start: i64,
    end: i64,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    if start > end {
        return Err(OfflineError::BadValue {
            origin: origin(table),
            column: EVENT_TIMESTAMP.to_string(),
            message: format!(
                "write range starts at {} after its end {}",
                render_time(start),
                render_time(end)
            ),
        });
    }
    let expected = &table.schema;
    let Some(ts_index) = expected.index_of(EVENT_TIMESTAMP).ok() else {
        return Err(OfflineError::Unsupported {
            origin: origin(table),
            message: format!("table schema has no `{EVENT_TIMESTAMP}` column (this is a bug)"),
        });
    };
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let found = batch.schema();
        for field in expected.fields() {
            let Ok(given) = found.field_with_name(field.name()) else {
                return Err(OfflineError::MissingColumn {
                    origin: origin(table),
                    column: field.name().clone(),
                    available: found
                        .fields()
                        .iter()
                        .map(|f| format!("`{}`", f.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if given.data_type() != field.data_type() {
                return Err(OfflineError::IncompatibleType {
                    origin: origin(table),
                    column: field.name().clone(),
                    found: given.data_type().to_string(),
                    expected: format!("the table stores {}", field.data_type()),
                });
            }
        }
        if found.fields().len() != expected.fields().len() {
            let extra = found
                .fields()
                .iter()
                .find(|f| expected.field_with_name(f.name()).is_err())
                .map(|f| f.name().clone())
                .unwrap_or_default();
            return Err(OfflineError::Unsupported {
                origin: origin(table),
                message: format!("column `{extra}` is not in the table"),
            });
        }
        if batch.num_rows() == 0 {
            continue;
        }
        // Columns in table order, whatever order the caller used.
        let columns = expected
            .fields()
            .iter()
            .map(|f| {
                batch
                    .column(found.index_of(f.name()).unwrap_or_default())
                    .clone()
            })
            .collect::<Vec<_>>();
        let conformed = RecordBatch::try_new(expected.clone(), columns).map_err(|e| {
            OfflineError::BadValue {
                origin: origin(table),
                column: String::new(),
                message: e.to_string(),
            }
        })?;
        let times = conformed
            .column(ts_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>();
        if let Some(times) = times {
            for (i, t) in times.values().iter().enumerate() {
                if times.is_valid(i) && (*t < start || *t >= end) {
                    return Err(OfflineError::BadValue {
                        origin: origin(table),
                        column: EVENT_TIMESTAMP.to_string(),
                        message: format!(
                            "row at {} is outside the written range [{}, {})",
                            render_time(*t),
                            render_time(start),
                            render_time(end)
                        ),
                    });
                }
            }
        }
        out.push(conformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, TimestampNanosecondArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::store::{CREATED_TIMESTAMP, timestamp_type};

    fn table() -> OfflineTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
            Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
            Field::new("amount", DataType::Int64, true),
        ]));
        OfflineTable {
            project: "p".into(),
            view: "v".into(),
            version: 1,
            schema,
            join_keys: vec!["user_id".into()],
        }
    }

    fn batch(times: Vec<i64>, amount_type: DataType) -> RecordBatch {
        let n = times.len();
        let amount: Arc<dyn Array> = match amount_type {
            DataType::Int64 => Arc::new(Int64Array::from(vec![1; n])),
            _ => Arc::new(arrow_array::Int32Array::from(vec![1; n])),
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
            Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
            Field::new("amount", amount.data_type().clone(), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7; n])),
                Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
                Arc::new(TimestampNanosecondArray::from(vec![None; n]).with_timezone("UTC")),
                amount,
            ],
        )
        .unwrap()
    }

    #[test]
    fn accepts_rows_inside_the_range() {
        let out = conform_batches(&table(), 10, 20, &[batch(vec![10, 19], DataType::Int64)]);
        assert_eq!(out.unwrap()[0].num_rows(), 2);
    }

    #[test]
    fn rejects_rows_outside_the_range() {
        let err = conform_batches(&table(), 10, 20, &[batch(vec![10, 20], DataType::Int64)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the written range"), "{err}");
    }

    #[test]
    fn rejects_wrong_types_naming_the_column() {
        let err = conform_batches(&table(), 0, 20, &[batch(vec![1], DataType::Int32)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`amount`"), "{err}");
    }

    #[test]
    fn skips_empty_batches_and_rejects_inverted_ranges() {
        assert!(
            conform_batches(&table(), 0, 20, &[batch(vec![], DataType::Int64)])
                .unwrap()
                .is_empty()
        );
        assert!(conform_batches(&table(), 20, 10, &[]).is_err());
    }
}
