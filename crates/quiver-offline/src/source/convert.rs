//! Arrow columns to Quiver values.
//!
//! Conversion happens in two steps so that `quiver apply` can check a source without reading it:
//! [`plan`] decides from the column's Arrow type alone whether (and how) it converts to the
//! declared [`ValueType`]; [`Plan::prepare`] then casts one batch's column once, and
//! [`Prepared::value`] reads single rows. Per-value checks (an int64 value that must fit an int32
//! field, a timestamp beyond the nanosecond range) run only on the rows actually read out, so a
//! bad value in a row that never wins does not fail a read.
//!
//! Accepted conversions (anything else is an incompatible-type error):
//! - int32/int64: any integer column; values are checked to fit when the column is wider.
//! - float32: float16/float32 and integers (rounding, as any int-to-float conversion does);
//!   float64 and decimals are range-checked.
//! - float64: any integer, float or decimal column.
//! - bool: boolean. string: Utf8, LargeUtf8, Utf8View (and dictionaries of them).
//! - bytes: Binary, LargeBinary, BinaryView, FixedSizeBinary.
//! - timestamp: Timestamp of any unit, with or without a time zone (a naive timestamp is taken
//!   as UTC, the convention of Spark and pandas writers), Date32, Date64 (midnight UTC).
//! - decimal: Decimal32/64/128 (exact, up to rust_decimal's 28 digits of scale) and integers;
//!   text, only for CSV, where decimals are parsed from their digits rather than through a float.
//! - `list<T>`: List, LargeList or FixedSizeList whose elements convert to `T` as above.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    Int64Array, StringArray, UInt64Array,
};
use arrow_schema::{DataType, TimeUnit};
use quiver_core::{ScalarType, Value, ValueType};
use rust_decimal::Decimal;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// How one column converts to one scalar type, decided from its Arrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarPlan {
    /// Signed or narrower-than-64-bit unsigned integers, widened to int64, checked against
    /// the target's range when it is int32.
    Int(ScalarType),
    /// uint64 values, checked against the target's range.
    UInt64(ScalarType),
    Float32,
    /// float64 or decimal into float32: range-checked.
    Float64ToFloat32,
    Float64,
    Bool,
    Utf8,
    Binary,
    /// Timestamps of any unit (and Date64), times this factor gives nanoseconds.
    Timestamp(i64),
    Date32,
    Decimal,
    DecimalText,
}

/// How one column converts to a field's (or key's, or timestamp's) type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Scalar(ScalarPlan),
    List(ScalarPlan),
}

/// Options that depend on the file format, not on the column.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlanOptions {
    /// CSV carries decimals as text; parse them exactly instead of through a float.
    pub text_decimals: bool,
}

fn is_int(dt: &DataType) -> bool {
    dt.is_integer()
}

fn is_float(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

fn is_decimal(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..)
    )
}

fn is_utf8(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn unit_factor(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Dictionary-encoded columns (pandas categoricals) convert like their values.
fn value_type(dt: &DataType) -> &DataType {
    match dt {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    }
}

fn plan_scalar(dt: &DataType, target: ScalarType, opts: PlanOptions) -> Option<ScalarPlan> {
    use ScalarType as S;
    let dt = value_type(dt);
    Some(match target {
        S::Int32 | S::Int64 if *dt == DataType::UInt64 => ScalarPlan::UInt64(target),
        S::Int32 | S::Int64 if is_int(dt) => ScalarPlan::Int(target),
        S::Float32 if matches!(dt, DataType::Float16 | DataType::Float32) || is_int(dt) => {
            ScalarPlan::Float32
        }
        S::Float32 if *dt == DataType::Float64 || is_decimal(dt) => ScalarPlan::Float64ToFloat32,
        S::Float64 if is_int(dt) || is_float(dt) || is_decimal(dt) => ScalarPlan::Float64,
        S::Bool if *dt == DataType::Boolean => ScalarPlan::Bool,
        S::String if is_utf8(dt) => ScalarPlan::Utf8,
        S::Bytes
            if matches!(
                dt,
                DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::FixedSizeBinary(_)
            ) =>
        {
            ScalarPlan::Binary
        }
        S::Timestamp => match dt {
            DataType::Timestamp(unit, _) => ScalarPlan::Timestamp(unit_factor(*unit)),
            DataType::Date32 => ScalarPlan::Date32,
            DataType::Date64 => ScalarPlan::Timestamp(1_000_000),
            _ => return None,
        },
        S::Decimal if is_decimal(dt) || is_int(dt) => ScalarPlan::Decimal,
        S::Decimal if opts.text_decimals && is_utf8(dt) => ScalarPlan::DecimalText,
        _ => return None,
    })
}

/// Decides how a column of type `dt` converts to `target`, or `None` when it cannot.
pub(crate) fn plan(dt: &DataType, target: ValueType, opts: PlanOptions) -> Option<Plan> {
    match target {
        ValueType::Scalar(s) => plan_scalar(dt, s, opts).map(Plan::Scalar),
        ValueType::List(s) => match dt {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                plan_scalar(f.data_type(), s, opts).map(Plan::List)
            }
            _ => None,
        },
    }
}

/// A batch's column cast once into the shape its plan reads from.
#[derive(Debug)]
pub(crate) enum Prepared {
    Int(Int64Array, ScalarType),
    UInt64(UInt64Array, ScalarType),
    Float32(Float32Array),
    Float64ToFloat32(Float64Array),
    Float64(Float64Array),
    Bool(BooleanArray),
    Utf8(StringArray),
    Binary(BinaryArray),
    /// Raw values in the column's unit and the factor to nanoseconds.
    Timestamp(Int64Array, i64),
    Decimal(Decimal128Array, i8),
    DecimalText(StringArray),
    /// Per row: `(start, end)` into the elements, or `None` for a null list.
    List(Vec<Option<(usize, usize)>>, Box<Prepared>),
}

fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    arrow_cast::cast(array, to).map_err(|e| format!("cannot convert to {to}: {e}"))
}

impl ScalarPlan {
    fn prepare(self, array: &ArrayRef) -> Result<Prepared, String> {
        // Unpack dictionaries first so every arm below sees plain values.
        let unpacked;
        let array = match array.data_type() {
            DataType::Dictionary(_, values) => {
                unpacked = cast(array, values)?;
                &unpacked
            }
            _ => array,
        };
        Ok(match self {
            ScalarPlan::Int(target) => Prepared::Int(
                cast(array, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
                target,
            ),
            ScalarPlan::UInt64(target) => {
                Prepared::UInt64(array.as_primitive::<UInt64Type>().clone(), target)
            }
            ScalarPlan::Float32 => {
                Prepared::Float32(cast(array, &DataType::Float32)?.as_primitive().clone())
            }
            ScalarPlan::Float64ToFloat32 => {
                Prepared::Float64ToFloat32(cast(array, &DataType::Float64)?.as_primitive().clone())
            }
            ScalarPlan::Float64 => {
                Prepared::Float64(cast(array, &DataType::Float64)?.as_primitive().clone())
            }
            ScalarPlan::Bool => Prepared::Bool(array.as_boolean().clone()),
            ScalarPlan::Utf8 => Prepared::Utf8(cast(array, &DataType::Utf8)?.as_string().clone()),
            ScalarPlan::DecimalText => {
                Prepared::DecimalText(cast(array, &DataType::Utf8)?.as_string().clone())
            }
            ScalarPlan::Binary => {
                Prepared::Binary(cast(array, &DataType::Binary)?.as_binary().clone())
            }
            ScalarPlan::Timestamp(factor) => {
                // Reinterpreting keeps the raw i64s whatever the unit and time zone: no
                // time-zone database is needed, since Arrow stores instants as UTC already.
                let raw = match array.data_type() {
                    DataType::Timestamp(TimeUnit::Second, _) => array
                        .as_primitive::<TimestampSecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    DataType::Timestamp(TimeUnit::Millisecond, _) => array
                        .as_primitive::<TimestampMillisecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    DataType::Timestamp(TimeUnit::Microsecond, _) => array
                        .as_primitive::<TimestampMicrosecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => array
                        .as_primitive::<TimestampNanosecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    DataType::Date64 => array
                        .as_primitive::<Date64Type>()
                        .reinterpret_cast::<Int64Type>(),
                    other => {
                        return Err(format!(
                            "expected a timestamp column, found {other} (this is a bug in Quiver)"
                        ));
                    }
                };
                Prepared::Timestamp(raw, factor)
            }
            ScalarPlan::Date32 => Prepared::Timestamp(
                array
                    .as_primitive::<Date32Type>()
                    .unary::<_, Int64Type>(|d| d as i64),
                NANOS_PER_DAY,
            ),
            ScalarPlan::Decimal => {
                let as128 = match array.data_type() {
                    DataType::Decimal128(..) => array.clone(),
                    DataType::Decimal32(_, s) | DataType::Decimal64(_, s) => {
                        cast(array, &DataType::Decimal128(38, *s))?
                    }
                    // Integers: every 64-bit value fits 38 digits at scale 0.
                    _ => cast(array, &DataType::Decimal128(38, 0))?,
                };
                let DataType::Decimal128(_, scale) = *as128.data_type() else {
                    return Err(
                        "decimal cast produced another type (this is a bug in Quiver)".into(),
                    );
                };
                Prepared::Decimal(as128.as_primitive::<Decimal128Type>().clone(), scale)
            }
        })
    }
}

impl Plan {
    /// Casts one batch's column for reading. `array` must have the type the plan was made for.
    pub(crate) fn prepare(self, array: &ArrayRef) -> Result<Prepared, String> {
        match self {
            Plan::Scalar(p) => p.prepare(array),
            Plan::List(p) => {
                let (ranges, elements): (Vec<_>, ArrayRef) = match array.data_type() {
                    DataType::List(_) => {
                        let list = array.as_list::<i32>();
                        (
                            list_ranges(list, list.value_offsets()),
                            list.values().clone(),
                        )
                    }
                    DataType::LargeList(_) => {
                        let list = array.as_list::<i64>();
                        (
                            list_ranges(list, list.value_offsets()),
                            list.values().clone(),
                        )
                    }
                    DataType::FixedSizeList(_, _) => {
                        let list = array.as_fixed_size_list();
                        let len = list.value_length() as usize;
                        let ranges = (0..list.len())
                            .map(|i| {
                                let start = list.value_offset(i) as usize;
                                list.is_valid(i).then_some((start, start + len))
                            })
                            .collect();
                        (ranges, list.values().clone())
                    }
                    other => {
                        return Err(format!(
                            "expected a list column, found {other} (this is a bug in Quiver)"
                        ));
                    }
                };
                Ok(Prepared::List(ranges, Box::new(p.prepare(&elements)?)))
            }
        }
    }
}

fn list_ranges<O: TryInto<usize> + Copy>(
    list: &dyn Array,
    offsets: &[O],
) -> Vec<Option<(usize, usize)>> {
    (0..list.len())
        .map(|i| {
            let start = offsets[i].try_into().ok()?;
            let end = offsets[i + 1].try_into().ok()?;
            list.is_valid(i).then_some((start, end))
        })
        .collect()
}

fn fit_int(v: i128, target: ScalarType) -> Result<Value, String> {
    let out = match target {
        ScalarType::Int32 => i32::try_from(v).ok().map(Value::Int32),
        _ => i64::try_from(v).ok().map(Value::Int64),
    };
    out.ok_or_else(|| format!("value {v} does not fit {}", target.name()))
}

fn decimal(raw: i128, scale: i8) -> Result<Decimal, String> {
    let out = if scale >= 0 {
        Decimal::try_from_i128_with_scale(raw, scale as u32).ok()
    } else {
        // A negative scale means trailing zeros: multiply them back in.
        10i128
            .checked_pow(u32::from(scale.unsigned_abs()))
            .and_then(|f| raw.checked_mul(f))
            .and_then(|v| Decimal::try_from_i128_with_scale(v, 0).ok())
    };
    out.ok_or_else(|| {
        format!(
            "decimal value {raw}e{} does not fit a 96-bit decimal with at most 28 digits of scale",
            -i32::from(scale)
        )
    })
}

impl Prepared {
    /// The value at `row`, converted; `Value::Null` for a null. Errors describe the value only;
    /// the caller adds the source and column.
    pub(crate) fn value(&self, row: usize) -> Result<Value, String> {
        macro_rules! valid {
            ($array:expr) => {
                if $array.is_null(row) {
                    return Ok(Value::Null);
                }
            };
        }
        Ok(match self {
            Prepared::Int(a, target) => {
                valid!(a);
                fit_int(i128::from(a.value(row)), *target)?
            }
            Prepared::UInt64(a, target) => {
                valid!(a);
                fit_int(i128::from(a.value(row)), *target)?
            }
            Prepared::Float32(a) => {
                valid!(a);
                Value::Float32(a.value(row))
            }
            Prepared::Float64ToFloat32(a) => {
                valid!(a);
                let v = a.value(row);
                if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                    return Err(format!("value {v:?} does not fit float32"));
                }
                Value::Float32(v as f32)
            }
            Prepared::Float64(a) => {
                valid!(a);
                Value::Float64(a.value(row))
            }
            Prepared::Bool(a) => {
                valid!(a);
                Value::Bool(a.value(row))
            }
            Prepared::Utf8(a) => {
                valid!(a);
                Value::String(a.value(row).to_string())
            }
            Prepared::Binary(a) => {
                valid!(a);
                Value::Bytes(a.value(row).to_vec())
            }
            Prepared::Timestamp(..) => match self.timestamp(row)? {
                Some(ns) => Value::Timestamp(ns),
                None => Value::Null,
            },
            Prepared::Decimal(a, scale) => {
                valid!(a);
                Value::Decimal(decimal(a.value(row), *scale)?)
            }
            Prepared::DecimalText(a) => {
                valid!(a);
                let text = a.value(row).trim();
                Value::Decimal(
                    Decimal::from_str_exact(text)
                        .map_err(|e| format!("`{text}` is not a decimal: {e}"))?,
                )
            }
            Prepared::List(ranges, elements) => {
                let Some((start, end)) = ranges.get(row).copied().flatten() else {
                    return Ok(Value::Null);
                };
                let mut items = Vec::with_capacity(end - start);
                let mut scalar = None;
                for i in start..end {
                    let v = elements.value(i)?;
                    if v.is_null() {
                        return Err(format!(
                            "list element {} is null; lists cannot hold nulls",
                            i - start
                        ));
                    }
                    scalar = v.value_type().map(|t| t.scalar());
                    items.push(v);
                }
                match scalar.or_else(|| elements.scalar_type()) {
                    Some(s) => Value::list_from_scalars(s, items),
                    None => {
                        return Err("list of unknown element type (this is a bug in Quiver)".into());
                    }
                }
            }
        })
    }

    /// The element type this column produces (used to type empty lists).
    fn scalar_type(&self) -> Option<ScalarType> {
        Some(match self {
            Prepared::Int(_, t) | Prepared::UInt64(_, t) => *t,
            Prepared::Float32(_) | Prepared::Float64ToFloat32(_) => ScalarType::Float32,
            Prepared::Float64(_) => ScalarType::Float64,
            Prepared::Bool(_) => ScalarType::Bool,
            Prepared::Utf8(_) => ScalarType::String,
            Prepared::Binary(_) => ScalarType::Bytes,
            Prepared::Timestamp(..) => ScalarType::Timestamp,
            Prepared::Decimal(..) | Prepared::DecimalText(_) => ScalarType::Decimal,
            Prepared::List(..) => return None,
        })
    }

    /// Nanoseconds since the epoch at `row` of a timestamp column; `None` for a null.
    pub(crate) fn timestamp(&self, row: usize) -> Result<Option<i64>, String> {
        let Prepared::Timestamp(a, factor) = self else {
            return Err("not a timestamp column (this is a bug in Quiver)".into());
        };
        if a.is_null(row) {
            return Ok(None);
        }
        let raw = a.value(row);
        raw.checked_mul(*factor).map(Some).ok_or_else(|| {
            format!("timestamp {raw} (x{factor} ns) is outside the nanosecond range 1677-2262")
        })
    }
}

/// The values of `column` as Quiver values of `ty` (a training set's feature column read back,
/// say); the error names what does not convert.
pub fn column_values(column: &ArrayRef, ty: ValueType) -> Result<Vec<Value>, String> {
    let prepared = plan(column.data_type(), ty, PlanOptions::default())
        .ok_or_else(|| format!("a {} column does not hold {ty}", column.data_type()))?
        .prepare(column)?;
    (0..column.len()).map(|row| prepared.value(row)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder};
    use arrow_array::{
        Date32Array, DictionaryArray, Int8Array, Int32Array, TimestampMillisecondArray,
        types::Int32Type,
    };
    use std::sync::Arc;

    fn arr(a: impl Array + 'static) -> ArrayRef {
        Arc::new(a)
    }

    fn vt(s: &str) -> ValueType {
        s.parse().unwrap()
    }

    fn read(array: ArrayRef, ty: &str) -> Result<Vec<Value>, String> {
        let p = plan(array.data_type(), vt(ty), PlanOptions::default())
            .ok_or_else(|| format!("no plan for {} -> {ty}", array.data_type()))?;
        let prepared = p.prepare(&array)?;
        (0..array.len()).map(|i| prepared.value(i)).collect()
    }

    #[test]
    fn widening_casts_are_exact() {
        let a = arr(Int8Array::from(vec![Some(-3), None]));
        assert_eq!(
            read(a.clone(), "int64").unwrap(),
            vec![Value::Int64(-3), Value::Null]
        );
        assert_eq!(
            read(a.clone(), "float64").unwrap(),
            vec![Value::Float64(-3.0), Value::Null]
        );
        assert_eq!(
            read(a, "decimal").unwrap(),
            vec![Value::Decimal(Decimal::from(-3)), Value::Null]
        );
        let f = arrow_cast::cast(&Float32Array::from(vec![1.0]), &DataType::Float16).unwrap();
        assert_eq!(read(f, "float32").unwrap(), vec![Value::Float32(1.0)]);
    }

    #[test]
    fn narrowing_checks_each_value() {
        let a = arr(Int64Array::from(vec![5, 3_000_000_000]));
        let p = plan(a.data_type(), vt("int32"), PlanOptions::default()).unwrap();
        let prepared = p.prepare(&a).unwrap();
        assert_eq!(prepared.value(0).unwrap(), Value::Int32(5));
        let err = prepared.value(1).unwrap_err();
        assert!(err.contains("3000000000") && err.contains("int32"), "{err}");
        let u = arr(UInt64Array::from(vec![u64::MAX]));
        assert!(
            read(u, "int64")
                .unwrap_err()
                .contains("18446744073709551615")
        );
        let f = arr(Float64Array::from(vec![1e300]));
        assert!(read(f, "float32").unwrap_err().contains("float32"));
    }

    #[test]
    fn incompatible_types_have_no_plan() {
        let opts = PlanOptions::default();
        assert!(plan(&DataType::Utf8, vt("int32"), opts).is_none());
        assert!(plan(&DataType::Float64, vt("int64"), opts).is_none());
        assert!(plan(&DataType::Int64, vt("string"), opts).is_none());
        assert!(plan(&DataType::Utf8, vt("decimal"), opts).is_none());
        assert!(
            plan(
                &DataType::Utf8,
                vt("decimal"),
                PlanOptions {
                    text_decimals: true
                }
            )
            .is_some()
        );
        assert!(plan(&DataType::Float32, vt("list<float32>"), opts).is_none());
    }

    #[test]
    fn timestamps_become_utc_nanoseconds() {
        let ms =
            arr(TimestampMillisecondArray::from(vec![Some(1_500), None]).with_timezone("+02:00"));
        assert_eq!(
            read(ms, "timestamp").unwrap(),
            vec![Value::Timestamp(1_500_000_000), Value::Null]
        );
        let d = arr(Date32Array::from(vec![1]));
        assert_eq!(
            read(d, "timestamp").unwrap(),
            vec![Value::Timestamp(NANOS_PER_DAY)]
        );
        let far = arr(arrow_array::TimestampSecondArray::from(vec![i64::MAX / 10]));
        assert!(read(far, "timestamp").unwrap_err().contains("range"));
    }

    #[test]
    fn decimals_are_exact_including_negative_scale() {
        let a = arr(Decimal128Array::from(vec![12345, -1])
            .with_precision_and_scale(10, 3)
            .unwrap());
        assert_eq!(
            read(a, "decimal").unwrap(),
            vec![
                Value::Decimal(Decimal::from_str_exact("12.345").unwrap()),
                Value::Decimal(Decimal::from_str_exact("-0.001").unwrap())
            ]
        );
        let neg = arr(Decimal128Array::from(vec![7])
            .with_precision_and_scale(10, -2)
            .unwrap());
        assert_eq!(
            read(neg, "decimal").unwrap(),
            vec![Value::Decimal(Decimal::from(700))]
        );
        let tiny = arr(Decimal128Array::from(vec![1])
            .with_precision_and_scale(38, 30)
            .unwrap());
        assert!(read(tiny, "decimal").is_err());
    }

    #[test]
    fn lists_from_every_list_layout() {
        let mut b = ListBuilder::new(Float32Builder::new());
        b.values().append_slice(&[1.0, 2.0]);
        b.append(true);
        b.append(false);
        b.append(true);
        let list = arr(b.finish());
        assert_eq!(
            read(list, "list<float32>").unwrap(),
            vec![
                Value::Float32List(vec![1.0, 2.0]),
                Value::Null,
                Value::Float32List(vec![])
            ]
        );
        let mut fb = FixedSizeListBuilder::new(Float32Builder::new(), 2);
        fb.values().append_slice(&[0.5, 0.25]);
        fb.append(true);
        fb.values().append_value(1.0);
        fb.values().append_null();
        fb.append(true);
        let fixed = arr(fb.finish());
        let p = plan(
            fixed.data_type(),
            vt("list<float64>"),
            PlanOptions::default(),
        )
        .unwrap();
        let prepared = p.prepare(&fixed).unwrap();
        assert_eq!(
            prepared.value(0).unwrap(),
            Value::Float64List(vec![0.5, 0.25])
        );
        assert!(prepared.value(1).unwrap_err().contains("null"));
    }

    #[test]
    fn dictionaries_read_as_their_values() {
        let d: DictionaryArray<Int32Type> = vec!["de", "fr", "de"].into_iter().collect();
        assert_eq!(
            read(arr(d), "string").unwrap(),
            vec![
                Value::String("de".into()),
                Value::String("fr".into()),
                Value::String("de".into())
            ]
        );
        let i = arr(Int32Array::from(vec![1]));
        assert!(read(i, "bool").is_err());
    }
}
