//! Reading a whole source window as one Arrow batch in the offline table layout: join keys
//! (Int64 or Utf8), `event_timestamp` and `created_timestamp` (Timestamp(ns, UTC)), then the
//! requested fields cast to their Arrow types ([`crate::store::arrow_type`]). Rows with a null
//! join key or event time, or outside `[start, end)`, are dropped. This is the input of
//! `quiver build`, the point-in-time join and window aggregations.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow_cast::cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use quiver_core::ScalarType;

use super::{ReadRequest, needs, open, origin, plan_all};
use crate::error::{OfflineError, Result};
use crate::store::layout_schema;

const BATCH: usize = 64 * 1024;

/// The layout [`read_table`] returns for a request.
pub fn table_layout(req: &ReadRequest<'_>) -> SchemaRef {
    layout_schema(req.join_keys, req.fields)
}

/// What [`read_table_counted`] read: the window's rows in the layout and the rows it dropped.
#[derive(Clone, Debug)]
pub struct TableRead {
    pub batch: RecordBatch,
    /// Every row of the source (or of the `sql` result).
    pub rows_scanned: u64,
    /// Rows dropped because their event time is null (they belong to no point in time).
    pub rows_null_timestamp: u64,
    /// Rows inside the window dropped because a join key is null.
    pub rows_null_key: u64,
}

/// Reads the request's window into one batch (see the module docs).
pub fn read_table(req: &ReadRequest<'_>) -> Result<RecordBatch> {
    read_table_counted(req).map(|read| read.batch)
}

/// [`read_table`], also counting the rows it dropped for a null event time or join key, so
/// callers can report them (and refuse them in strict mode).
pub fn read_table_counted(req: &ReadRequest<'_>) -> Result<TableRead> {
    let origin = origin(req);
    let needs = needs(req);
    let opened = open(req, &origin, &needs, BATCH)?;
    // The planner gives the precise "column `x` is Utf8 but ..." errors before any data is read.
    plan_all(&origin, &opened.schema, &needs, opened.options)?;
    let layout = table_layout(req);
    let read_err = |e: arrow_schema::ArrowError| OfflineError::ReadData {
        origin: origin.clone(),
        message: e.to_string(),
    };
    let mut out: Vec<RecordBatch> = Vec::new();
    let (mut rows_scanned, mut rows_null_timestamp, mut rows_null_key) = (0u64, 0u64, 0u64);
    for batch in opened.batches {
        let batch = batch.map_err(read_err)?;
        let column = |name: &str| -> Result<ArrayRef> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| OfflineError::MissingColumn {
                    origin: origin.clone(),
                    column: name.to_string(),
                    available: "(projected away)".into(),
                })
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(layout.fields().len());
        for (k, f) in req.join_keys.iter().zip(layout.fields()) {
            columns.push(cast_column(
                &origin,
                &k.name,
                &column(&k.name)?,
                f.data_type(),
            )?);
        }
        columns.push(to_nanos(
            &origin,
            &req.source.timestamp_field,
            &column(&req.source.timestamp_field)?,
        )?);
        columns.push(match &req.source.created_timestamp_field {
            Some(c) => to_nanos(&origin, c, &column(c)?)?,
            None => {
                Arc::new(TimestampNanosecondArray::new_null(batch.num_rows()).with_timezone("UTC"))
            }
        });
        let offset = req.join_keys.len() + 2;
        for (f, lf) in req.fields.iter().zip(&layout.fields()[offset..]) {
            let col = column(&f.name)?;
            columns.push(match f.value_type {
                quiver_core::ValueType::Scalar(ScalarType::Timestamp) => {
                    to_nanos(&origin, &f.name, &col)?
                }
                _ => cast_column(&origin, &f.name, &col, lf.data_type())?,
            });
        }
        // Keep rows with keys and an event time inside the window.
        let ts = columns[req.join_keys.len()].as_primitive::<TimestampNanosecondType>();
        rows_scanned += batch.num_rows() as u64;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                if ts.is_null(i) {
                    rows_null_timestamp += 1;
                    return Some(false);
                }
                let t = ts.value(i);
                if req.start.is_some_and(|s| t < s) || req.end.is_some_and(|e| t >= e) {
                    return Some(false);
                }
                let key_ok = columns[..req.join_keys.len()].iter().all(|c| c.is_valid(i));
                rows_null_key += u64::from(!key_ok);
                Some(key_ok)
            })
            .collect();
        let filtered = columns
            .iter()
            .map(|c| arrow_select::filter::filter(c, &keep))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| OfflineError::ReadData {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        // Non-null layout columns: safe after the filter above.
        out.push(RecordBatch::try_new(layout.clone(), filtered).map_err(|e| {
            OfflineError::ReadData {
                origin: origin.clone(),
                message: format!("this is a bug in Quiver: {e}"),
            }
        })?);
    }
    let batch = arrow_select::concat::concat_batches(&layout, &out).map_err(|e| {
        OfflineError::ReadData {
            origin,
            message: e.to_string(),
        }
    })?;
    Ok(TableRead {
        batch,
        rows_scanned,
        rows_null_timestamp,
        rows_null_key,
    })
}

fn cast_column(origin: &str, name: &str, col: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if col.data_type() == to {
        return Ok(col.clone());
    }
    // Arrow casts a float64 beyond float32's range to infinity, even with `safe: false`.
    if *to == DataType::Float32 && *col.data_type() == DataType::Float64 {
        let values = col.as_primitive::<arrow_array::types::Float64Type>();
        let max = f64::from(f32::MAX);
        if let Some((row, v)) = values.iter().enumerate().find_map(|(row, v)| {
            v.filter(|v| v.is_finite() && v.abs() > max)
                .map(|v| (row, v))
        }) {
            return Err(OfflineError::BadValue {
                origin: origin.to_string(),
                column: name.to_string(),
                message: format!("value {v:?} (row {row} of its batch) does not fit float32"),
            });
        }
    }
    // `safe: false`: a value that does not fit (int64 into int32) is an error, not a silent null.
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(col, to, &options).map_err(|e| OfflineError::BadValue {
        origin: origin.to_string(),
        column: name.to_string(),
        message: format!("cannot convert {} to {to}: {e}", col.data_type()),
    })
}

/// A timestamp or date column of a user file (an entity file's time column) as ns UTC; naive
/// times are UTC. The error names the column.
pub fn column_to_nanos(name: &str, col: &ArrayRef) -> Result<TimestampNanosecondArray> {
    let origin = format!("column `{name}`");
    let converted = match col.data_type() {
        // CSV entity files: RFC 3339 text.
        DataType::Utf8 | DataType::LargeUtf8 => {
            let strings = cast_column(&origin, name, col, &DataType::Utf8)?;
            let values: Vec<Option<i64>> = strings
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|t| {
                        quiver_core::value::parse_timestamp(t).map_err(|e| OfflineError::BadValue {
                            origin: origin.clone(),
                            column: name.to_string(),
                            message: e,
                        })
                    })
                    .transpose()
                })
                .collect::<Result<_>>()?;
            Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC")) as ArrayRef
        }
        _ => to_nanos(&origin, name, col)?,
    };
    Ok(converted.as_primitive::<TimestampNanosecondType>().clone())
}

/// Any timestamp unit or date, with or without a zone (naive = UTC), to ns UTC. Done on the raw
/// values: arrow without `chrono-tz` cannot parse zone names such as `UTC`.
fn to_nanos(origin: &str, name: &str, col: &ArrayRef) -> Result<ArrayRef> {
    fn scale<T: arrow_array::ArrowPrimitiveType>(col: &ArrayRef, factor: i64) -> Vec<Option<i64>>
    where
        T::Native: Into<i64>,
    {
        col.as_primitive::<T>()
            .iter()
            .map(|v| v.and_then(|v| v.into().checked_mul(factor)))
            .collect()
    }
    let values: Vec<Option<i64>> = match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scale::<TimestampSecondType>(col, 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scale::<TimestampMillisecondType>(col, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scale::<TimestampMicrosecondType>(col, 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => scale::<TimestampNanosecondType>(col, 1),
        DataType::Date32 => col
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| v.and_then(|d| (d as i64).checked_mul(86_400_000_000_000)))
            .collect(),
        DataType::Date64 => scale::<Date64Type>(col, 1_000_000),
        other => {
            return Err(OfflineError::IncompatibleType {
                origin: origin.to_string(),
                column: name.to_string(),
                found: other.to_string(),
                expected: "a timestamp must be a timestamp or date column".into(),
            });
        }
    };
    Ok(Arc::new(
        TimestampNanosecondArray::from(values).with_timezone("UTC"),
    ))
}
