//! What every backend's `read_latest` shares: checking the keys and TTL a caller hands in, and
//! turning one row of a table-schema batch into a [`Record`].
//!
//! Backends find the winning rows their own way (an indexed SQL query, an in-memory index over
//! Parquet batches) but hand them back as Arrow rows of exactly the table schema, so the
//! conversion to Quiver values lives here once. It reuses the source reader's Arrow → [`Value`]
//! conversion (`source/convert.rs`), so a value comes back the same whichever path read it.
//!
//! The value types are recovered from the table's Arrow types: [`arrow_type`] is one-to-one, so
//! `OfflineTable` needs no second copy of the view's field types.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use arrow_schema::DataType;
use quiver_core::{EntityKey, KeyValue, Record, ScalarType, Value, ValueType};

use super::parquet::input::origin;
use super::{CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineTable, arrow_type};
use crate::error::{OfflineError, Result};
use crate::source::convert::{self, PlanOptions, Prepared};

/// The Quiver value type stored as `dt` in an offline table (the inverse of [`arrow_type`]).
pub(crate) fn value_type_of(dt: &DataType) -> Option<ValueType> {
    ScalarType::ALL
        .iter()
        .flat_map(|s| [ValueType::Scalar(*s), ValueType::List(*s)])
        .find(|ty| arrow_type(*ty) == *dt)
}

/// Whether each join key of `table` is a string (`Utf8`) rather than an integer (`Int64`).
pub(crate) fn string_keys(table: &OfflineTable) -> Result<Vec<bool>> {
    table
        .join_keys
        .iter()
        .map(|name| match table.schema.field_with_name(name) {
            Ok(f) if *f.data_type() == DataType::Utf8 => Ok(true),
            Ok(f) if *f.data_type() == DataType::Int64 => Ok(false),
            Ok(f) => Err(OfflineError::Unsupported {
                origin: origin(table),
                message: format!("join key `{name}` is {}, not Int64 or Utf8", f.data_type()),
            }),
            Err(_) => Err(OfflineError::Unsupported {
                origin: origin(table),
                message: format!("join key `{name}` is not a column (this is a bug in Quiver)"),
            }),
        })
        .collect()
}

/// Checks that every key has one value per join key, of the key column's kind, and that the
/// TTL is not negative; returns the lower event-time bound (`as_of - ttl`, saturating).
pub(crate) fn check_request(
    table: &OfflineTable,
    keys: &[EntityKey],
    as_of: i64,
    ttl_ns: Option<i64>,
) -> Result<Option<i64>> {
    let kinds = string_keys(table)?;
    let bad = |column: &str, message: String| OfflineError::BadValue {
        origin: origin(table),
        column: column.to_string(),
        message,
    };
    for (i, key) in keys.iter().enumerate() {
        if key.0.len() != kinds.len() {
            return Err(bad(
                &table.join_keys.join(", "),
                format!(
                    "lookup key {i} has {} values but the table has {} join keys",
                    key.0.len(),
                    kinds.len()
                ),
            ));
        }
        for ((value, is_string), name) in key.0.iter().zip(&kinds).zip(&table.join_keys) {
            let matches = matches!(
                (value, is_string),
                (KeyValue::Str(_), true) | (KeyValue::Int(_), false)
            );
            if !matches {
                let wanted = if *is_string { "a string" } else { "an integer" };
                return Err(bad(
                    name,
                    format!("lookup key {i} has {value:?} where the table stores {wanted}"),
                ));
            }
        }
    }
    match ttl_ns {
        Some(ttl) if ttl < 0 => Err(bad(
            EVENT_TIMESTAMP,
            format!("lookup TTL {ttl} ns is negative"),
        )),
        Some(ttl) => Ok(Some(as_of.saturating_sub(ttl))),
        None => Ok(None),
    }
}

/// One batch of the table schema, its columns resolved once, read out row by row as records.
pub(crate) struct RowDecoder {
    /// How errors name the table.
    origin: String,
    event: PrimitiveArray<TimestampNanosecondType>,
    created: PrimitiveArray<TimestampNanosecondType>,
    /// Feature name and prepared column, in the table's feature order.
    features: Vec<(String, Prepared)>,
}

impl RowDecoder {
    /// Resolves the columns of `batch`, which must carry `table`'s schema (after the join keys
    /// and the two timestamps, every column is a feature).
    pub(crate) fn new(table: &OfflineTable, batch: &RecordBatch) -> Result<RowDecoder> {
        let unsupported = |message: String| OfflineError::Unsupported {
            origin: origin(table),
            message,
        };
        let timestamps = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .cloned()
                .ok_or_else(|| {
                    unsupported(format!("batch has no nanosecond `{name}` (this is a bug)"))
                })
        };
        let event = timestamps(EVENT_TIMESTAMP)?;
        let created = timestamps(CREATED_TIMESTAMP)?;
        let mut features = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            if table.join_keys.contains(name)
                || name == EVENT_TIMESTAMP
                || name == CREATED_TIMESTAMP
            {
                continue;
            }
            let prepared = value_type_of(field.data_type())
                .and_then(|ty| convert::plan(field.data_type(), ty, PlanOptions::default()))
                .ok_or_else(|| {
                    unsupported(format!(
                        "column `{name}` is {}, which no Quiver value type is stored as",
                        field.data_type()
                    ))
                })?
                .prepare(column)
                .map_err(|e| unsupported(format!("column `{name}`: {e}")))?;
            features.push((name.clone(), prepared));
        }
        Ok(RowDecoder {
            origin: origin(table),
            event,
            created,
            features,
        })
    }

    /// Event time of `row` (never null in a table; a null reads as `i64::MIN`, i.e. never wins).
    pub(crate) fn event_ts(&self, row: usize) -> i64 {
        if self.event.is_valid(row) {
            self.event.value(row)
        } else {
            i64::MIN
        }
    }

    /// Created time of `row`, `None` when null.
    pub(crate) fn created_ts(&self, row: usize) -> Option<i64> {
        self.created.is_valid(row).then(|| self.created.value(row))
    }

    /// Row `row` as a record; an error (naming the table and column) for a stored value that
    /// a Quiver value cannot hold, such as a decimal beyond 28 digits.
    pub(crate) fn record(&self, row: usize) -> Result<Record> {
        let values = self
            .features
            .iter()
            .map(|(name, column)| {
                column.value(row).map_err(|message| OfflineError::BadValue {
                    origin: self.origin.clone(),
                    column: name.clone(),
                    message,
                })
            })
            .collect::<Result<Vec<Value>>>()?;
        Ok(Record {
            event_ts: self.event_ts(row),
            created_ts: self.created_ts(row),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Int64Array, TimestampNanosecondArray};
    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::store::timestamp_type;

    fn table() -> OfflineTable {
        OfflineTable {
            project: "p".into(),
            view: "v".into(),
            version: 1,
            schema: Arc::new(Schema::new(vec![
                Field::new("user_id", DataType::Int64, false),
                Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
                Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
                Field::new("score", DataType::Float32, true),
            ])),
            join_keys: vec!["user_id".into()],
        }
    }

    #[test]
    fn value_types_invert_arrow_types() {
        for s in ScalarType::ALL {
            for ty in [ValueType::Scalar(s), ValueType::List(s)] {
                assert_eq!(value_type_of(&arrow_type(ty)), Some(ty));
            }
        }
        assert_eq!(value_type_of(&DataType::UInt8), None);
    }

    #[test]
    fn rows_become_records() {
        let t = table();
        let batch = RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(TimestampNanosecondArray::from(vec![10, 20]).with_timezone("UTC")),
                Arc::new(TimestampNanosecondArray::from(vec![Some(11), None]).with_timezone("UTC")),
                Arc::new(Float32Array::from(vec![Some(0.5), None])),
            ],
        )
        .unwrap();
        let decoder = RowDecoder::new(&t, &batch).unwrap();
        assert_eq!(
            decoder.record(0).unwrap(),
            Record {
                event_ts: 10,
                created_ts: Some(11),
                values: vec![Value::Float32(0.5)]
            }
        );
        assert_eq!(decoder.record(1).unwrap().values, vec![Value::Null]);
        assert_eq!(decoder.created_ts(1), None);
    }

    #[test]
    fn requests_are_checked() {
        let t = table();
        let int = EntityKey(vec![KeyValue::Int(1)]);
        assert_eq!(
            check_request(&t, std::slice::from_ref(&int), 100, Some(30)).unwrap(),
            Some(70)
        );
        assert_eq!(
            check_request(&t, &[], i64::MIN, Some(1)).unwrap(),
            Some(i64::MIN)
        );
        assert!(check_request(&t, &[int], 100, Some(-1)).is_err());
        let text = EntityKey(vec![KeyValue::Str("a".into())]);
        let err = check_request(&t, &[text], 0, None).unwrap_err().to_string();
        assert!(
            err.contains("`user_id`") && err.contains("p__v__v1"),
            "{err}"
        );
        let two = EntityKey(vec![KeyValue::Int(1), KeyValue::Int(2)]);
        assert!(check_request(&t, &[two], 0, None).is_err());
    }
}
