//! The arguments the embedded store and the client share, read from Python the way Feast's SDK
//! takes them.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use quiver::FeatureSelection;
use serde_json::Value as J;

use crate::convert::py_to_json;

/// `features=[...]` or `feature_service="name"`: exactly one. `features` may also be a feature
/// service object (anything with a `name`), as Feast's `features=store.get_feature_service(..)`.
pub fn selection(
    features: Option<&Bound<'_, PyAny>>,
    feature_service: Option<String>,
) -> PyResult<FeatureSelection> {
    let mut service = feature_service;
    let mut list = None;
    if let Some(f) = features {
        if f.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "features must be a list of `view:feature` references (for a feature service, \
                 use feature_service=\"name\")",
            ));
        }
        if f.cast::<PyList>().is_err() && f.cast::<PyTuple>().is_err() && f.hasattr("name")? {
            if service.is_some() {
                return Err(PyValueError::new_err(
                    "give either `features` or `feature_service`, not both",
                ));
            }
            service = Some(f.getattr("name")?.extract()?);
        } else {
            list = Some(f.extract::<Vec<String>>().map_err(|_| {
                PyTypeError::new_err("features must be a list of `view:feature` references")
            })?);
        }
    }
    match (list, service) {
        (Some(f), None) => Ok(FeatureSelection::Features(f)),
        (None, Some(s)) => Ok(FeatureSelection::Service(s)),
        (Some(_), Some(_)) => Err(PyValueError::new_err(
            "give either `features` or `feature_service`, not both",
        )),
        (None, None) => Err(PyValueError::new_err(
            "give `features` (a list of `view:feature`) or `feature_service`",
        )),
    }
}

/// Entity rows as JSON columns: join key name and one value per row.
pub type EntityColumns = Vec<(String, Vec<J>)>;

/// `get_online_features`' arguments, shared by the store and the client: which features, and
/// the entity rows as JSON columns.
pub fn online_args(
    features: Option<&Bound<'_, PyAny>>,
    entity_rows: Option<&Bound<'_, PyAny>>,
    feature_service: Option<String>,
) -> PyResult<(FeatureSelection, EntityColumns)> {
    let selection = selection(features, feature_service)?;
    let rows = entity_rows.ok_or_else(|| PyValueError::new_err("entity_rows is required"))?;
    Ok((selection, entity_columns(rows)?))
}

/// Entity rows, column-major: Feast's list of dicts (`[{"user_id": 1}, ...]`, every row with
/// the same keys) or a mapping of columns (`{"user_id": [1, 2]}`).
pub fn entity_columns(rows: &Bound<'_, PyAny>) -> PyResult<EntityColumns> {
    if let Ok(map) = rows.cast::<PyDict>() {
        let mut columns = Vec::with_capacity(map.len());
        let mut len: Option<(usize, String)> = None;
        for (k, v) in map.iter() {
            let name: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("entity_rows: column names must be strings"))?;
            let values = sequence(&v, &|| format!("entity_rows[`{name}`]"))?;
            match &len {
                Some((n, first)) if *n != values.len() => {
                    return Err(PyValueError::new_err(format!(
                        "entity_rows: column `{name}` has {} values but `{first}` has {n}",
                        values.len()
                    )));
                }
                None => len = Some((values.len(), name.clone())),
                _ => {}
            }
            columns.push((name, values));
        }
        return Ok(columns);
    }
    let rows: Vec<Bound<'_, PyAny>> = if let Ok(list) = rows.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = rows.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Err(PyTypeError::new_err(
            "entity_rows must be a list of dicts (`[{\"user_id\": 42}]`) or a dict of columns",
        ));
    };
    let mut columns: Vec<(String, Vec<J>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let row = row.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!("entity_rows[{i}] must be a dict of join keys"))
        })?;
        if i == 0 {
            for (k, _) in row.iter() {
                let name: String = k.extract().map_err(|_| {
                    PyTypeError::new_err("entity_rows[0]: join key names must be strings")
                })?;
                columns.push((name, Vec::with_capacity(rows.len())));
            }
        } else if row.len() != columns.len() {
            return Err(PyValueError::new_err(format!(
                "entity_rows[{i}] has {} join keys but entity_rows[0] has {} ({})",
                row.len(),
                columns.len(),
                columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (name, values) in &mut columns {
            let v = row.get_item(name.as_str())?.ok_or_else(|| {
                PyValueError::new_err(format!("entity_rows[{i}] has no join key `{name}`"))
            })?;
            values.push(py_to_json(&v, &|| format!("entity_rows[{i}][`{name}`]"))?);
        }
    }
    Ok(columns)
}

/// A list-like of values (list, tuple, or anything with `tolist()`: NumPy arrays, pandas and
/// pyarrow columns) as JSON values.
pub fn sequence(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Vec<J>> {
    let obj = if obj.cast::<PyList>().is_err()
        && obj.cast::<PyTuple>().is_err()
        && obj.hasattr("tolist")?
    {
        obj.call_method0("tolist")?
    } else if obj.hasattr("to_pylist")? {
        obj.call_method0("to_pylist")?
    } else {
        obj.clone()
    };
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .enumerate()
            .map(|(i, v)| py_to_json(&v, &|| format!("{} row {i}", what())))
            .collect();
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .enumerate()
            .map(|(i, v)| py_to_json(&v, &|| format!("{} row {i}", what())))
            .collect();
    }
    Err(PyTypeError::new_err(format!(
        "{} must be a list of values",
        what()
    )))
}

/// A DataFrame for `write_to_online_store`, as `{column: [values]}`: a dict of lists, or
/// anything with `to_pydict()` (pyarrow) or `to_dict("list")` (pandas).
pub fn frame_columns(df: &Bound<'_, PyAny>) -> PyResult<serde_json::Map<String, J>> {
    let dict = if let Ok(d) = df.cast::<PyDict>() {
        d.clone()
    } else if df.hasattr("to_pydict")? {
        df.call_method0("to_pydict")?.cast_into::<PyDict>()?
    } else if df.hasattr("to_dict")? {
        df.call_method1("to_dict", ("list",))?
            .cast_into::<PyDict>()?
    } else {
        return Err(PyTypeError::new_err(
            "df must be a pandas DataFrame, a pyarrow Table or a dict of columns",
        ));
    };
    let mut out = serde_json::Map::new();
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("df: column names must be strings"))?;
        let values = sequence(&v, &|| format!("df column `{name}`"))?;
        out.insert(name, J::Array(values));
    }
    Ok(out)
}

/// Feast's push `to`: a string (`"online"`, `"offline"`, `"online_and_offline"`) or a
/// `PushMode`-like enum member (its `name`, e.g. `PushMode.ONLINE_AND_OFFLINE`); absent:
/// `online`.
pub fn push_mode(to: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let Some(to) = to else {
        return Ok("online".to_string());
    };
    let text = if let Ok(s) = to.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else if to.hasattr("name")? {
        to.getattr("name")?.str()?.to_cow()?.into_owned()
    } else {
        return Err(PyTypeError::new_err(
            "`to` must be \"online\", \"offline\", \"online_and_offline\" or a PushMode",
        ));
    };
    let mode = text.to_ascii_lowercase();
    match mode.as_str() {
        "online" | "offline" | "online_and_offline" => Ok(mode),
        _ => Err(PyValueError::new_err(format!(
            "`to`: `{text}` is not one of \"online\", \"offline\", \"online_and_offline\""
        ))),
    }
}
