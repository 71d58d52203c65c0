//! Field types and values.
//!
//! Timestamps are nanoseconds since the Unix epoch, UTC (the Arrow range, 1677–2262), so every
//! timestamp a source can hold round-trips exactly. Decimals are `rust_decimal` values, carried as
//! strings wherever a float would round them.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The element types a field can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalarType {
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    String,
    Bytes,
    Timestamp,
    Decimal,
}

impl ScalarType {
    pub const ALL: [ScalarType; 9] = [
        ScalarType::Int32,
        ScalarType::Int64,
        ScalarType::Float32,
        ScalarType::Float64,
        ScalarType::Bool,
        ScalarType::String,
        ScalarType::Bytes,
        ScalarType::Timestamp,
        ScalarType::Decimal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Int32 => "int32",
            ScalarType::Int64 => "int64",
            ScalarType::Float32 => "float32",
            ScalarType::Float64 => "float64",
            ScalarType::Bool => "bool",
            ScalarType::String => "string",
            ScalarType::Bytes => "bytes",
            ScalarType::Timestamp => "timestamp",
            ScalarType::Decimal => "decimal",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ScalarType::Int32
                | ScalarType::Int64
                | ScalarType::Float32
                | ScalarType::Float64
                | ScalarType::Decimal
        )
    }
}

/// A field's type: a scalar or a list of scalars (`list<float32>`; add `dim` for a fixed-size vector).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    Scalar(ScalarType),
    List(ScalarType),
}

impl ValueType {
    pub fn scalar(self) -> ScalarType {
        match self {
            ValueType::Scalar(s) | ValueType::List(s) => s,
        }
    }

    pub fn is_list(self) -> bool {
        matches!(self, ValueType::List(_))
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Scalar(s) => f.write_str(s.name()),
            ValueType::List(s) => write!(f, "list<{}>", s.name()),
        }
    }
}

impl FromStr for ValueType {
    type Err = String;

    /// Accepts `int64`, `list<float32>`, `array<float32>` and `float32[]`.
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let (inner, list) = if let Some(inner) = t
            .strip_prefix("list<")
            .or_else(|| t.strip_prefix("array<"))
            .and_then(|r| r.strip_suffix('>'))
        {
            (inner.trim().to_string(), true)
        } else if let Some(inner) = t.strip_suffix("[]") {
            (inner.trim().to_string(), true)
        } else {
            (t.clone(), false)
        };
        let scalar = match inner.as_str() {
            "int32" | "int" => ScalarType::Int32,
            "int64" | "long" => ScalarType::Int64,
            "float32" | "float" => ScalarType::Float32,
            "float64" | "double" => ScalarType::Float64,
            "bool" | "boolean" => ScalarType::Bool,
            "string" | "str" => ScalarType::String,
            "bytes" | "binary" => ScalarType::Bytes,
            "timestamp" | "datetime" => ScalarType::Timestamp,
            "decimal" => ScalarType::Decimal,
            _ => {
                let names: Vec<&str> = ScalarType::ALL.iter().map(|s| s.name()).collect();
                return Err(format!(
                    "unknown type `{text}`; expected one of {} or `list<...>` of them",
                    names.join(", ")
                ));
            }
        };
        Ok(if list {
            ValueType::List(scalar)
        } else {
            ValueType::Scalar(scalar)
        })
    }
}

impl Serialize for ValueType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ValueType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One feature value. Lists are typed so a 384-dim embedding is one `Vec<f32>`, not 384 enums.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Bool(bool),
    String(String),
    Bytes(Vec<u8>),
    /// Nanoseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Decimal(Decimal),
    Int32List(Vec<i32>),
    Int64List(Vec<i64>),
    Float32List(Vec<f32>),
    Float64List(Vec<f64>),
    BoolList(Vec<bool>),
    StringList(Vec<String>),
    BytesList(Vec<Vec<u8>>),
    TimestampList(Vec<i64>),
    DecimalList(Vec<Decimal>),
}

/// Renders nanoseconds since the epoch as RFC 3339 UTC with the precision the value needs.
pub fn format_timestamp(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 timestamp (offset required; `Z` for UTC) or a plain date-time taken as UTC.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let dt = if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        dt.with_timezone(&Utc)
    } else if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
    {
        naive.and_utc()
    } else if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
    } else {
        return Err(format!(
            "invalid timestamp `{text}`; expected RFC 3339 like `2026-01-31T12:00:00Z`"
        ));
    };
    dt.timestamp_nanos_opt()
        .ok_or_else(|| format!("timestamp `{text}` is outside 1677-09-21..2262-04-11"))
}

fn json_f64(x: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(x) {
        Some(n) => serde_json::Value::Number(n),
        // JSON has no NaN or infinity; use the spelling protobuf's JSON mapping uses.
        None if x.is_nan() => serde_json::Value::String("NaN".into()),
        None if x > 0.0 => serde_json::Value::String("Infinity".into()),
        None => serde_json::Value::String("-Infinity".into()),
    }
}

fn b64(bytes: &[u8]) -> serde_json::Value {
    serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's type, or `None` for null.
    pub fn value_type(&self) -> Option<ValueType> {
        use ScalarType as S;
        use ValueType::{List, Scalar};
        Some(match self {
            Value::Null => return None,
            Value::Int32(_) => Scalar(S::Int32),
            Value::Int64(_) => Scalar(S::Int64),
            Value::Float32(_) => Scalar(S::Float32),
            Value::Float64(_) => Scalar(S::Float64),
            Value::Bool(_) => Scalar(S::Bool),
            Value::String(_) => Scalar(S::String),
            Value::Bytes(_) => Scalar(S::Bytes),
            Value::Timestamp(_) => Scalar(S::Timestamp),
            Value::Decimal(_) => Scalar(S::Decimal),
            Value::Int32List(_) => List(S::Int32),
            Value::Int64List(_) => List(S::Int64),
            Value::Float32List(_) => List(S::Float32),
            Value::Float64List(_) => List(S::Float64),
            Value::BoolList(_) => List(S::Bool),
            Value::StringList(_) => List(S::String),
            Value::BytesList(_) => List(S::Bytes),
            Value::TimestampList(_) => List(S::Timestamp),
            Value::DecimalList(_) => List(S::Decimal),
        })
    }

    /// Number of elements of a list value.
    pub fn list_len(&self) -> Option<usize> {
        Some(match self {
            Value::Int32List(v) => v.len(),
            Value::Int64List(v) => v.len(),
            Value::Float32List(v) => v.len(),
            Value::Float64List(v) => v.len(),
            Value::BoolList(v) => v.len(),
            Value::StringList(v) => v.len(),
            Value::BytesList(v) => v.len(),
            Value::TimestampList(v) => v.len(),
            Value::DecimalList(v) => v.len(),
            _ => return None,
        })
    }

    /// The value as a number, for `min`/`max` checks.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int32(v) => Some(*v as f64),
            Value::Int64(v) => Some(*v as f64),
            Value::Float32(v) => Some(*v as f64),
            Value::Float64(v) => Some(*v),
            Value::Decimal(d) => d.to_string().parse().ok(),
            _ => None,
        }
    }

    /// The JSON form served over HTTP: numbers, strings, RFC 3339 timestamps, base64 bytes,
    /// decimals as strings (exact), NaN/Infinity as strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Int32(v) => J::from(*v),
            Value::Int64(v) => J::from(*v),
            Value::Float32(v) => json_f32(*v),
            Value::Float64(v) => json_f64(*v),
            Value::Bool(v) => J::Bool(*v),
            Value::String(v) => J::String(v.clone()),
            Value::Bytes(v) => b64(v),
            Value::Timestamp(v) => J::String(format_timestamp(*v)),
            Value::Decimal(v) => J::String(v.to_string()),
            Value::Int32List(v) => J::Array(v.iter().map(|x| J::from(*x)).collect()),
            Value::Int64List(v) => J::Array(v.iter().map(|x| J::from(*x)).collect()),
            Value::Float32List(v) => J::Array(v.iter().map(|x| json_f32(*x)).collect()),
            Value::Float64List(v) => J::Array(v.iter().map(|x| json_f64(*x)).collect()),
            Value::BoolList(v) => J::Array(v.iter().map(|x| J::Bool(*x)).collect()),
            Value::StringList(v) => J::Array(v.iter().map(|x| J::String(x.clone())).collect()),
            Value::BytesList(v) => J::Array(v.iter().map(|x| b64(x)).collect()),
            Value::TimestampList(v) => {
                J::Array(v.iter().map(|x| J::String(format_timestamp(*x))).collect())
            }
            Value::DecimalList(v) => J::Array(v.iter().map(|x| J::String(x.to_string())).collect()),
        }
    }

    /// Parses a JSON value as `ty`. Accepts what [`Value::to_json`] writes, plus the natural
    /// alternatives (integers for timestamps as epoch seconds are *not* guessed: use RFC 3339).
    pub fn from_json(json: &serde_json::Value, ty: ValueType) -> Result<Value, String> {
        use serde_json::Value as J;
        if json.is_null() {
            return Ok(Value::Null);
        }
        match ty {
            ValueType::Scalar(s) => scalar_from_json(json, s),
            ValueType::List(s) => {
                let J::Array(items) = json else {
                    return Err(format!(
                        "expected a list of {}, got {}",
                        s.name(),
                        kind(json)
                    ));
                };
                let parsed = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        if item.is_null() {
                            Err(format!("list element {i} is null; lists cannot hold nulls"))
                        } else {
                            scalar_from_json(item, s).map_err(|e| format!("list element {i}: {e}"))
                        }
                    })
                    .collect::<Result<Vec<Value>, String>>()?;
                Ok(Value::list_from_scalars(s, parsed))
            }
        }
    }

    /// Builds a typed list from scalar values of type `s` (all non-null, all of type `s`).
    pub fn list_from_scalars(s: ScalarType, items: Vec<Value>) -> Value {
        macro_rules! collect {
            ($variant:ident, $list:ident) => {
                Value::$list(
                    items
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::$variant(x) => Some(x),
                            _ => None,
                        })
                        .collect(),
                )
            };
        }
        match s {
            ScalarType::Int32 => collect!(Int32, Int32List),
            ScalarType::Int64 => collect!(Int64, Int64List),
            ScalarType::Float32 => collect!(Float32, Float32List),
            ScalarType::Float64 => collect!(Float64, Float64List),
            ScalarType::Bool => collect!(Bool, BoolList),
            ScalarType::String => collect!(String, StringList),
            ScalarType::Bytes => collect!(Bytes, BytesList),
            ScalarType::Timestamp => collect!(Timestamp, TimestampList),
            ScalarType::Decimal => collect!(Decimal, DecimalList),
        }
    }

    /// A short rendering for error messages and the CLI (long lists are elided).
    pub fn display_short(&self) -> String {
        let json = self.to_json();
        let text = match &json {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.chars().count() > 48 {
            let cut: String = text.chars().take(45).collect();
            format!("{cut}...")
        } else {
            text
        }
    }
}

fn json_f32(x: f32) -> serde_json::Value {
    if x.is_finite() {
        // Print the shortest decimal that reads back as the same f32 (0.1, not 0.10000000149).
        let text = x.to_string();
        match text.parse::<serde_json::Number>() {
            Ok(n) => serde_json::Value::Number(n),
            Err(_) => json_f64(x as f64),
        }
    } else {
        json_f64(x as f64)
    }
}

fn kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn float_from_json(json: &serde_json::Value) -> Option<f64> {
    match json {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// An integer from a JSON number: `None` when `json` is not a number at all, an error naming the
/// value when it is a number that is not an integer or beyond int64.
fn int_from_json(json: &serde_json::Value, s: ScalarType) -> Option<Result<i64, String>> {
    let serde_json::Value::Number(n) = json else {
        return None;
    };
    let out_of_range = || Err(format!("{n} is outside {}'s range", s.name()));
    if let Some(v) = n.as_i64() {
        return Some(Ok(v));
    }
    if n.is_u64() {
        return Some(out_of_range());
    }
    // A float: whole numbers (`30.0`, what pandas sends for an integer column with gaps) are
    // taken exactly; fractions are refused, never rounded.
    let f = n.as_f64().unwrap_or(f64::NAN);
    Some(if f.fract() != 0.0 || !f.is_finite() {
        Err(format!(
            "{n} is not an integer ({} holds whole numbers)",
            s.name()
        ))
    } else if (-(2f64.powi(63))..2f64.powi(63)).contains(&f) {
        Ok(f as i64)
    } else {
        out_of_range()
    })
}

fn scalar_from_json(json: &serde_json::Value, s: ScalarType) -> Result<Value, String> {
    use serde_json::Value as J;
    let mismatch = || format!("expected {}, got {} `{json}`", s.name(), kind(json));
    Ok(match s {
        ScalarType::Int32 => {
            let v = int_from_json(json, s).ok_or_else(mismatch)??;
            Value::Int32(i32::try_from(v).map_err(|_| format!("{v} is outside int32's range"))?)
        }
        ScalarType::Int64 => Value::Int64(int_from_json(json, s).ok_or_else(mismatch)??),
        ScalarType::Float32 => {
            let v = float_from_json(json).ok_or_else(mismatch)?;
            // Only a finite number can overflow; an explicit "Infinity" is kept as sent. The
            // test is whether it rounds to a finite float32: float32's own extremes, written as
            // their shortest decimals, are a hair beyond `f32::MAX as f64` (found by AFL).
            if v.is_finite() && !(v as f32).is_finite() {
                return Err(format!("{v:?} is outside float32's range"));
            }
            Value::Float32(v as f32)
        }
        ScalarType::Float64 => Value::Float64(float_from_json(json).ok_or_else(mismatch)?),
        ScalarType::Bool => Value::Bool(json.as_bool().ok_or_else(mismatch)?),
        ScalarType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        ScalarType::Bytes => {
            let text = json.as_str().ok_or_else(mismatch)?;
            Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("bytes must be base64: {e}"))?,
            )
        }
        ScalarType::Timestamp => match json {
            J::String(text) => Value::Timestamp(parse_timestamp(text)?),
            _ => return Err(mismatch()),
        },
        ScalarType::Decimal => {
            let text = match json {
                J::String(t) => t.clone(),
                J::Number(n) => n.to_string(),
                _ => return Err(mismatch()),
            };
            Value::Decimal(
                Decimal::from_str_exact(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map_err(|e| format!("invalid decimal `{text}`: {e}"))?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_type_names() {
        assert_eq!(
            "int64".parse::<ValueType>().unwrap(),
            ValueType::Scalar(ScalarType::Int64)
        );
        assert_eq!(
            "list<float32>".parse::<ValueType>().unwrap(),
            ValueType::List(ScalarType::Float32)
        );
        assert_eq!(
            "float32[]".parse::<ValueType>().unwrap(),
            ValueType::List(ScalarType::Float32)
        );
        let err = "int65".parse::<ValueType>().unwrap_err();
        assert!(err.contains("unknown type `int65`"), "{err}");
        for s in ScalarType::ALL {
            for ty in [ValueType::Scalar(s), ValueType::List(s)] {
                assert_eq!(ty.to_string().parse::<ValueType>().unwrap(), ty);
            }
        }
    }

    #[test]
    fn json_round_trips_each_type() {
        let cases = vec![
            (Value::Int32(-7), "int32"),
            (Value::Int64(1 << 60), "int64"),
            (Value::Float32(0.1), "float32"),
            (Value::Float64(f64::NAN), "float64"),
            (Value::Bool(true), "bool"),
            (Value::String("é".into()), "string"),
            (Value::Bytes(vec![0, 255, 3]), "bytes"),
            (Value::Timestamp(1_700_000_000_123_456_789), "timestamp"),
            (
                Value::Decimal("12345.678901234567890".parse().unwrap()),
                "decimal",
            ),
            (Value::Float32List(vec![1.5, -0.25]), "list<float32>"),
            (Value::StringList(vec!["a".into()]), "list<string>"),
            (Value::TimestampList(vec![0, -1]), "list<timestamp>"),
        ];
        for (value, ty) in cases {
            let ty: ValueType = ty.parse().unwrap();
            let back = Value::from_json(&value.to_json(), ty).unwrap();
            match (&value, &back) {
                (Value::Float64(a), Value::Float64(b)) if a.is_nan() => assert!(b.is_nan()),
                _ => assert_eq!(back, value, "{ty}"),
            }
        }
    }

    #[test]
    fn float32_json_is_short() {
        assert_eq!(Value::Float32(0.1).to_json().to_string(), "0.1");
    }

    #[test]
    fn json_type_errors_name_the_problem() {
        let err = Value::from_json(&json!("x"), "int64".parse().unwrap()).unwrap_err();
        assert!(err.contains("expected int64"), "{err}");
        let err = Value::from_json(&json!(1_i64 << 40), "int32".parse().unwrap()).unwrap_err();
        assert!(
            err.contains("1099511627776 is outside int32's range"),
            "{err}"
        );
        let err = Value::from_json(&json!(1.5), "int32".parse().unwrap()).unwrap_err();
        assert!(err.contains("1.5 is not an integer"), "{err}");
        let err = Value::from_json(&json!(u64::MAX), "int64".parse().unwrap()).unwrap_err();
        assert!(err.contains("outside int64's range"), "{err}");
        let err = Value::from_json(&json!(1e39), "float32".parse().unwrap()).unwrap_err();
        assert!(err.contains("1e39 is outside float32's range"), "{err}");
        let err = Value::from_json(&json!([1.0, 1e39]), "list<float32>".parse().unwrap());
        assert!(err.unwrap_err().contains("outside float32's range"));
        // Whole floats are integers; explicit infinities stay what was sent.
        let whole = Value::from_json(&json!(30.0), "int32".parse().unwrap()).unwrap();
        assert_eq!(whole, Value::Int32(30));
        let inf = Value::from_json(&json!("Infinity"), "float32".parse().unwrap()).unwrap();
        assert_eq!(inf, Value::Float32(f32::INFINITY));
        let err = Value::from_json(&json!([1, null]), "list<int64>".parse().unwrap()).unwrap_err();
        assert!(err.contains("element 1"), "{err}");
    }

    #[test]
    fn timestamps_parse_and_format() {
        let ns = parse_timestamp("2026-01-31T12:00:00.5Z").unwrap();
        assert_eq!(format_timestamp(ns), "2026-01-31T12:00:00.500Z");
        assert_eq!(parse_timestamp("2026-01-31").unwrap() % 1_000_000_000, 0);
        assert!(parse_timestamp("yesterday").is_err());
    }
}
