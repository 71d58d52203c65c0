//! Feast's JSON shapes, decoded into Quiver's typed requests: the one place that knows them.
//! Entity rows arrive column-major (`{"user_id": [1, 2]}`), each value typed by its join key;
//! `/write-to-online-store`'s `df` holds the join keys, `event_timestamp` (or the source's
//! timestamp column), optionally `created`, and every feature of the view.

use std::collections::HashMap;

use quiver::{Error, FeatureStore, Result};
use quiver_core::{EntityKey, KeyValue, Record, ScalarType, Value};

/// Entity key columns, each value typed by the join key of that name (by the JSON value's
/// shape when no registered view has the key; serving then reports it as unknown).
pub fn decode_entities(
    store: &FeatureStore,
    entities: Vec<(String, Vec<serde_json::Value>)>,
) -> Result<Vec<(String, Vec<KeyValue>)>> {
    entities
        .into_iter()
        .map(|(name, values)| {
            let ty = store.join_key_type(&name);
            let keys = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let parsed = match ty {
                        Some(ty) => KeyValue::from_json(v, ty),
                        None => match v {
                            serde_json::Value::String(s) => Ok(KeyValue::Str(s.clone())),
                            other => KeyValue::from_json(other, ScalarType::Int64),
                        },
                    };
                    parsed.map_err(|e| {
                        Error::InvalidRequest(format!("entity key `{name}` row {i}: {e}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((name, keys))
        })
        .collect()
}

/// `/write-to-online-store`'s `df` as typed rows of the view (types checked here, constraints
/// by the library's write).
pub fn decode_rows(
    store: &FeatureStore,
    view_name: &str,
    columns: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(EntityKey, Record)>> {
    let served = store.view(view_name)?;
    let view = &served.definition;
    let registry = store.registry()?;
    let ts_field = registry
        .sources
        .get(&view.source)
        .map(|s| s.timestamp_field.clone())
        .unwrap_or_default();

    let mut known: Vec<&str> = view.join_keys.iter().map(|k| k.name.as_str()).collect();
    known.extend(view.fields.iter().map(|f| f.name.as_str()));
    known.extend(["event_timestamp", "created", ts_field.as_str()]);
    let mut arrays: HashMap<&str, &Vec<serde_json::Value>> = HashMap::new();
    let mut rows: Option<(usize, &str)> = None;
    for (name, col) in columns {
        if !known.contains(&name.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "feature view `{view_name}` has no column `{name}`"
            )));
        }
        let arr = col.as_array().ok_or_else(|| {
            Error::InvalidRequest(format!("column `{name}` must be a list of values"))
        })?;
        match rows {
            Some((n, first)) if n != arr.len() => {
                return Err(Error::InvalidRequest(format!(
                    "column `{name}` has {} values but `{first}` has {n}",
                    arr.len()
                )));
            }
            None => rows = Some((arr.len(), name)),
            _ => {}
        }
        arrays.insert(name.as_str(), arr);
    }
    let n = rows.map_or(0, |(n, _)| n);
    let column = |name: &str| -> Result<&Vec<serde_json::Value>> {
        arrays.get(name).copied().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "missing column `{name}` for feature view `{view_name}`"
            ))
        })
    };
    let ts_col = match (arrays.get("event_timestamp"), arrays.get(ts_field.as_str())) {
        (Some(c), _) | (None, Some(c)) => *c,
        (None, None) => {
            return Err(Error::InvalidRequest(
                "missing column `event_timestamp` (the event time of each row, RFC 3339)".into(),
            ));
        }
    };
    let created_col = arrays.get("created").copied();
    let key_cols = view
        .join_keys
        .iter()
        .map(|k| column(&k.name).map(|c| (k, c)))
        .collect::<Result<Vec<_>>>()?;
    let field_cols = view
        .fields
        .iter()
        .map(|f| column(&f.name).map(|c| (f, c)))
        .collect::<Result<Vec<_>>>()?;

    let parse_ts = |col: &str, i: usize, v: &serde_json::Value| -> Result<i64> {
        match Value::from_json(v, quiver_core::ValueType::Scalar(ScalarType::Timestamp)) {
            Ok(Value::Timestamp(ts)) => Ok(ts),
            Ok(_) => Err(Error::InvalidRequest(format!(
                "column `{col}` row {i} is null"
            ))),
            Err(e) => Err(Error::InvalidRequest(format!(
                "column `{col}` row {i}: {e}"
            ))),
        }
    };
    let mut batch = Vec::with_capacity(n);
    for i in 0..n {
        let key = EntityKey(
            key_cols
                .iter()
                .map(|(k, c)| {
                    KeyValue::from_json(&c[i], k.key_type).map_err(|e| {
                        Error::InvalidRequest(format!("column `{}` row {i}: {e}", k.name))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        );
        let event_ts = parse_ts("event_timestamp", i, &ts_col[i])?;
        let created_ts = match created_col.map(|c| &c[i]) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(parse_ts("created", i, v)?),
        };
        let values = field_cols
            .iter()
            .map(|(f, c)| {
                Value::from_json(&c[i], f.value_type).map_err(|e| {
                    Error::InvalidRequest(format!(
                        "feature view `{view_name}`: column `{}` row {i}: {e}",
                        f.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let record = Record {
            event_ts,
            created_ts,
            values,
        };
        batch.push((key, record));
    }
    Ok(batch)
}
