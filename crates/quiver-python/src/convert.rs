//! Values across the boundary: Python objects in (entity rows, DataFrame columns, reports) as
//! the JSON the library's decoders take; typed feature values out as Python objects.
//!
//! Timestamps and decimals go through Python's own `datetime` and `decimal` modules (the
//! stable ABI has no direct datetime constructors); everything else is built directly.

use base64::Engine as _;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use quiver_core::Value;
use serde_json::Value as J;

static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FROMTIMESTAMP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A Python object as JSON: `None`, bool, int, float, str, bytes (base64, as the decoders
/// expect), list/tuple, dict, and anything with `isoformat()` (datetime, date, pandas
/// Timestamp; naive means UTC) or `item()` (NumPy scalars). `what` names the value in errors.
pub fn py_to_json(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<J> {
    if obj.is_none() {
        return Ok(J::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(J::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(J::from(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(J::from(v));
        }
        return Err(PyValueError::new_err(format!(
            "{}: integer {} does not fit in 64 bits",
            what(),
            obj.str()?
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Ok(if v.is_nan() {
            // A missing value in a pandas column.
            J::Null
        } else {
            serde_json::Number::from_f64(v).map_or_else(|| J::String(v.to_string()), J::Number)
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(J::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(J::String(
            base64::engine::general_purpose::STANDARD.encode(b.as_bytes()),
        ));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|v| py_to_json(&v, what)).collect();
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|v| py_to_json(&v, what)).collect();
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in dict.iter() {
            map.insert(k.str()?.to_cow()?.into_owned(), py_to_json(&v, what)?);
        }
        return Ok(J::Object(map));
    }
    if obj.hasattr("isoformat")? {
        // pandas' NaT has isoformat() == "NaT".
        let text: String = obj.call_method0("isoformat")?.extract()?;
        return Ok(if text == "NaT" {
            J::Null
        } else {
            J::String(text)
        });
    }
    if obj.hasattr("item")? && obj.hasattr("dtype")? {
        return py_to_json(&obj.call_method0("item")?, what);
    }
    let type_name = obj.get_type().name()?;
    if type_name.to_cow()? == "Decimal" {
        return Ok(J::String(obj.str()?.to_cow()?.into_owned()));
    }
    Err(PyTypeError::new_err(format!(
        "{}: cannot use a value of type `{type_name}` ({})",
        what(),
        obj.repr()?
    )))
}

fn timestamp<'py>(py: Python<'py>, nanos: i64) -> PyResult<Bound<'py, PyAny>> {
    let utc = UTC.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("datetime")?
            .getattr("timezone")?
            .getattr("utc")?
            .unbind())
    })?;
    let from = FROMTIMESTAMP.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("datetime")?
            .getattr("datetime")?
            .getattr("fromtimestamp")?
            .unbind())
    })?;
    // Python's datetime has microseconds; split so large values keep them exactly.
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1_000;
    let dt = from.bind(py).call1((secs, utc.bind(py)))?;
    if micros == 0 {
        return Ok(dt);
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("microsecond", micros)?;
    dt.call_method("replace", (), Some(&kwargs))
}

fn decimal<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let class = DECIMAL.import(py, "decimal", "Decimal")?;
    class.call1((text,))
}

fn list<'py, T>(
    py: Python<'py>,
    items: &[T],
    each: impl Fn(&T) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let out = PyList::empty(py);
    for item in items {
        out.append(each(item)?)?;
    }
    Ok(out.into_any())
}

/// A typed feature value as a Python object, the way Feast's SDK returns it: numbers, str,
/// bytes, bool, `datetime` (UTC) for timestamps, `decimal.Decimal`, lists of those, `None`.
pub fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Int32(v) => v.into_pyobject(py)?.into_any(),
        Value::Int64(v) => v.into_pyobject(py)?.into_any(),
        Value::Float32(v) => f64::from(*v).into_pyobject(py)?.into_any(),
        Value::Float64(v) => v.into_pyobject(py)?.into_any(),
        Value::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
        Value::String(v) => PyString::new(py, v).into_any(),
        Value::Bytes(v) => PyBytes::new(py, v).into_any(),
        Value::Timestamp(v) => timestamp(py, *v)?,
        Value::Decimal(v) => decimal(py, &v.to_string())?,
        Value::Int32List(v) => PyList::new(py, v)?.into_any(),
        Value::Int64List(v) => PyList::new(py, v)?.into_any(),
        Value::Float32List(v) => PyList::new(py, v.iter().map(|x| f64::from(*x)))?.into_any(),
        Value::Float64List(v) => PyList::new(py, v)?.into_any(),
        Value::BoolList(v) => PyList::new(py, v)?.into_any(),
        Value::StringList(v) => PyList::new(py, v)?.into_any(),
        Value::BytesList(v) => list(py, v, |b| Ok(PyBytes::new(py, b).into_any()))?,
        Value::TimestampList(v) => list(py, v, |t| timestamp(py, *t))?,
        Value::DecimalList(v) => list(py, v, |d| decimal(py, &d.to_string()))?,
    })
}

/// JSON as Python objects (reports, and values from the feature server).
pub fn json_to_py<'py>(py: Python<'py>, json: &J) -> PyResult<Bound<'py, PyAny>> {
    Ok(match json {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        J::String(s) => PyString::new(py, s).into_any(),
        J::Array(items) => list(py, items, |v| json_to_py(py, v))?,
        J::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Epoch seconds of `nanos`, as Feast's `to_dict(include_event_timestamps=True)` gives them.
pub fn epoch_seconds(nanos: i64) -> i64 {
    nanos.div_euclid(1_000_000_000)
}

/// An optional time argument: `None`, or text (RFC 3339; naive means UTC), as ns UTC.
pub fn parse_time(text: Option<&str>, what: &str) -> PyResult<Option<i64>> {
    text.map(|t| {
        quiver_core::value::parse_timestamp(t)
            .map_err(|e| PyValueError::new_err(format!("{what}: `{t}`: {e}")))
    })
    .transpose()
}
