//! Arrow columns to PostgreSQL cells (for binary COPY) and PostgreSQL rows back to Arrow
//! columns with exactly the table schema.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampNanosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    GenericListArray, Int32Array, Int64Array, ListArray, PrimitiveArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, FieldRef, SchemaRef, TimeUnit};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::codec::{Cell, PgNumeric, PgTimestamp};

/// Typed access to one Arrow column, resolved once per batch rather than per value.
pub(crate) enum Column<'a> {
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    F64(&'a PrimitiveArray<Float64Type>),
    Bool(&'a BooleanArray),
    Text(&'a StringArray),
    Bytes(&'a BinaryArray),
    Timestamp(&'a PrimitiveArray<TimestampNanosecondType>),
    Decimal(&'a PrimitiveArray<Decimal128Type>, i8),
    List(&'a GenericListArray<i32>, Box<Column<'a>>),
}

impl<'a> Column<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Column<'a>, String> {
        Ok(match array.data_type() {
            DataType::Int32 => Column::I32(array.as_primitive()),
            DataType::Int64 => Column::I64(array.as_primitive()),
            DataType::Float32 => Column::F32(array.as_primitive()),
            DataType::Float64 => Column::F64(array.as_primitive()),
            DataType::Boolean => Column::Bool(array.as_boolean()),
            DataType::Utf8 => Column::Text(array.as_string()),
            DataType::Binary => Column::Bytes(array.as_binary()),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Column::Timestamp(array.as_primitive()),
            DataType::Decimal128(_, s) => Column::Decimal(array.as_primitive(), *s),
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                Column::List(list, Box::new(Column::new(list.values().as_ref())?))
            }
            other => {
                return Err(format!(
                    "Arrow type {other} cannot be written to PostgreSQL"
                ));
            }
        })
    }

    /// The value at `i` as a cell (lists copy only their element cells, not the data).
    pub(crate) fn cell(&self, i: usize) -> Cell<'a> {
        let valid = match self {
            Column::I32(a) => a.is_valid(i),
            Column::I64(a) => a.is_valid(i),
            Column::F32(a) => a.is_valid(i),
            Column::F64(a) => a.is_valid(i),
            Column::Bool(a) => a.is_valid(i),
            Column::Text(a) => a.is_valid(i),
            Column::Bytes(a) => a.is_valid(i),
            Column::Timestamp(a) => a.is_valid(i),
            Column::Decimal(a, _) => a.is_valid(i),
            Column::List(a, _) => a.is_valid(i),
        };
        if !valid {
            return Cell::Null;
        }
        match self {
            Column::I32(a) => Cell::I32(a.value(i)),
            Column::I64(a) => Cell::I64(a.value(i)),
            Column::F32(a) => Cell::F32(a.value(i)),
            Column::F64(a) => Cell::F64(a.value(i)),
            Column::Bool(a) => Cell::Bool(a.value(i)),
            Column::Text(a) => Cell::Text(a.value(i)),
            Column::Bytes(a) => Cell::Bytes(a.value(i)),
            Column::Timestamp(a) => Cell::Timestamp(a.value(i)),
            Column::Decimal(a, scale) => Cell::Numeric {
                value: a.value(i),
                scale: *scale,
            },
            Column::List(a, items) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[i], offsets[i + 1]);
                let range = usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0);
                Cell::List(range.map(|j| items.cell(j)).collect())
            }
        }
    }
}

/// Values of column `idx` of every row.
fn values<'r, T: FromSql<'r>>(rows: &'r [Row], idx: usize) -> Result<Vec<Option<T>>, String> {
    rows.iter()
        .map(|row| row.try_get::<_, Option<T>>(idx))
        .collect::<Result<_, _>>()
        .map_err(|e| describe(&e))
}

/// A tokio-postgres conversion error with its cause (the bare Display omits it).
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn timestamps(values: Vec<Option<PgTimestamp>>, tz: &Option<Arc<str>>) -> ArrayRef {
    let ns: Vec<Option<i64>> = values.into_iter().map(|v| v.map(|t| t.0)).collect();
    Arc::new(TimestampNanosecondArray::from(ns).with_timezone_opt(tz.clone()))
}

fn decimals(values: Vec<Option<PgNumeric>>, precision: u8, scale: i8) -> Result<ArrayRef, String> {
    let mantissas = values
        .iter()
        .map(|n| n.as_ref().map(|n| n.to_mantissa(scale)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let array = Decimal128Array::from(mantissas)
        .with_precision_and_scale(precision, scale)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(array))
}

/// Column `idx` of `rows` as an Arrow array of exactly `dt` (timezone, decimal precision and
/// list item field included).
pub(super) fn column_array(dt: &DataType, rows: &[Row], idx: usize) -> Result<ArrayRef, String> {
    Ok(match dt {
        DataType::Int32 => Arc::new(Int32Array::from(values::<i32>(rows, idx)?)),
        DataType::Int64 => Arc::new(Int64Array::from(values::<i64>(rows, idx)?)),
        DataType::Float32 => Arc::new(Float32Array::from(values::<f32>(rows, idx)?)),
        DataType::Float64 => Arc::new(Float64Array::from(values::<f64>(rows, idx)?)),
        DataType::Boolean => Arc::new(BooleanArray::from(values::<bool>(rows, idx)?)),
        DataType::Utf8 => Arc::new(StringArray::from(values::<&str>(rows, idx)?)),
        DataType::Binary => Arc::new(BinaryArray::from(values::<&[u8]>(rows, idx)?)),
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            timestamps(values::<PgTimestamp>(rows, idx)?, tz)
        }
        DataType::Decimal128(p, s) => decimals(values::<PgNumeric>(rows, idx)?, *p, *s)?,
        DataType::List(item) => list_array(item, rows, idx)?,
        other => return Err(format!("Arrow type {other} cannot be read from PostgreSQL")),
    })
}

/// Every row's array of column `idx`, flattened: the elements (all present: list items are
/// not nullable in Quiver's schema, so a NULL element is an error), each row's length, and
/// whether the row's array is present.
type Flattened<T> = (Vec<Option<T>>, Vec<usize>, Vec<bool>);

fn flatten<'r, T: FromSql<'r>>(rows: &'r [Row], idx: usize) -> Result<Flattened<T>, String> {
    let lists = values::<Vec<T>>(rows, idx)?;
    let mut flat = Vec::new();
    let mut lengths = Vec::with_capacity(lists.len());
    let mut valid = Vec::with_capacity(lists.len());
    for list in lists {
        valid.push(list.is_some());
        let list = list.unwrap_or_default();
        lengths.push(list.len());
        flat.extend(list.into_iter().map(Some));
    }
    Ok((flat, lengths, valid))
}

/// A list column: PostgreSQL arrays become one child array plus offsets.
fn list_array(item: &FieldRef, rows: &[Row], idx: usize) -> Result<ArrayRef, String> {
    macro_rules! flat {
        ($t:ty, $build:expr) => {{
            let (flat, lengths, valid) = flatten::<$t>(rows, idx)?;
            let child: ArrayRef = $build(flat)?;
            (child, lengths, valid)
        }};
    }
    fn ok<A: Array + 'static>(a: A) -> Result<ArrayRef, String> {
        Ok(Arc::new(a))
    }
    let (child, lengths, valid) = match item.data_type() {
        DataType::Int32 => flat!(i32, |v| ok(Int32Array::from(v))),
        DataType::Int64 => flat!(i64, |v| ok(Int64Array::from(v))),
        DataType::Float32 => flat!(f32, |v| ok(Float32Array::from(v))),
        DataType::Float64 => flat!(f64, |v| ok(Float64Array::from(v))),
        DataType::Boolean => flat!(bool, |v| ok(BooleanArray::from(v))),
        DataType::Utf8 => flat!(&str, |v| ok(StringArray::from(v))),
        DataType::Binary => flat!(&[u8], |v| ok(BinaryArray::from(v))),
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            flat!(PgTimestamp, |v| Ok::<_, String>(timestamps(v, tz)))
        }
        DataType::Decimal128(p, s) => flat!(PgNumeric, |v| decimals(v, *p, *s)),
        other => return Err(format!("lists of {other} cannot be read from PostgreSQL")),
    };
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    let nulls = Some(NullBuffer::from(valid)).filter(|n| n.null_count() > 0);
    ListArray::try_new(item.clone(), offsets, child, nulls)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| e.to_string())
}

/// Rows of a `SELECT` of every table column, in schema order, as one batch.
pub(crate) fn rows_to_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch, String> {
    rows_to_batch_from(schema, rows, 0)
}

/// Like [`rows_to_batch`] for a `SELECT` whose table columns start at column `first` (the
/// ones before are something else, such as the lookup's key position).
pub(crate) fn rows_to_batch_from(
    schema: &SchemaRef,
    rows: &[Row],
    first: usize,
) -> Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            column_array(f.data_type(), rows, first + i)
                .map_err(|e| format!("column `{}`: {e}", f.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}
