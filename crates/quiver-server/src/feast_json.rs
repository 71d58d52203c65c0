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

    let known = row_columns(view, &ts_field);
    let mut arrays: HashMap<&str, &Vec<serde_json::Value>> = HashMap::new();
    let mut rows: Option<(usize, &str)> = None;
    for (name, col) in columns {
        if !known.contains(&name.as_str()) {
            if let Some(f) = view.fields.iter().find(|f| &f.name == name)
                && let Some(e) = &f.expression
            {
                return Err(Error::InvalidRequest(format!(
                    "feature view `{view_name}`: column `{name}` is computed by its expression `{e}`; send the columns it reads instead"
                )));
            }
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
    // The columns read as they are (plain fields, then the expressions' inputs); computed
    // fields are evaluated from them, as the offline engine does.
    let read_fields = view.read_fields();
    let field_cols = read_fields
        .iter()
        .map(|f| column(&f.name).map(|c| (f, c)))
        .collect::<Result<Vec<_>>>()?;
    let expressions = view
        .expressions()
        .map_err(|e| Error::Internal(format!("feature view `{view_name}`: {e}")))?
        .into_iter()
        .map(|(i, expr)| {
            let args: Vec<usize> = expr
                .columns()
                .iter()
                .map(|c| {
                    read_fields
                        .iter()
                        .position(|f| &f.name == c)
                        .unwrap_or(usize::MAX)
                })
                .collect();
            (i, expr, args)
        })
        .collect::<Vec<_>>();
    let plain: Vec<usize> = view
        .fields
        .iter()
        .filter(|f| f.expression.is_none())
        .map(|f| {
            read_fields
                .iter()
                .position(|r| r.name == f.name)
                .unwrap_or(usize::MAX)
        })
        .collect();

    let mut batch = Vec::with_capacity(n);
    for i in 0..n {
        let key = key_at(&key_cols, i)?;
        let event_ts = event_time_at("event_timestamp", i, &ts_col[i])?;
        let created_ts = match created_col.map(|c| &c[i]) {
            None => None,
            Some(v) => time_at("created", i, v)?,
        };
        let read = field_cols
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
        let values = if expressions.is_empty() {
            read
        } else {
            let mut values = vec![Value::Null; view.fields.len()];
            let mut next_plain = plain.iter();
            for (slot, f) in values.iter_mut().zip(&view.fields) {
                if f.expression.is_none()
                    && let Some(&p) = next_plain.next()
                {
                    *slot = read.get(p).cloned().unwrap_or(Value::Null);
                }
            }
            for (fi, expr, args) in &expressions {
                let f = &view.fields[*fi];
                let argv: Vec<Value> = args
                    .iter()
                    .map(|a| read.get(*a).cloned().unwrap_or(Value::Null))
                    .collect();
                values[*fi] = expr.eval(&argv, f.value_type.scalar()).map_err(|e| {
                    Error::InvalidRequest(format!(
                        "feature view `{view_name}`: field `{}`: expression `{}`: row {i}: {e}",
                        f.name,
                        expr.text()
                    ))
                })?;
            }
            values
        };
        let record = Record {
            event_ts,
            created_ts,
            values,
        };
        batch.push((key, record));
    }
    Ok(batch)
}

/// Row `i`'s entity key from the join-key columns, each value typed by its key.
fn key_at(
    columns: &[(&quiver_core::JoinKey, &Vec<serde_json::Value>)],
    i: usize,
) -> Result<EntityKey> {
    columns
        .iter()
        .map(|(k, c)| {
            KeyValue::from_json(&c[i], k.key_type)
                .map_err(|e| Error::InvalidRequest(format!("column `{}` row {i}: {e}", k.name)))
        })
        .collect::<Result<Vec<_>>>()
        .map(EntityKey)
}

/// A timestamp cell (RFC 3339) of column `col`, row `i`; `None` for null.
fn time_at(col: &str, i: usize, v: &serde_json::Value) -> Result<Option<i64>> {
    match Value::from_json(v, quiver_core::ValueType::Scalar(ScalarType::Timestamp)) {
        Ok(Value::Timestamp(t)) => Ok(Some(t)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::InvalidRequest(format!(
            "column `{col}` row {i}: {e}"
        ))),
    }
}

/// An event time cell: a timestamp, never null.
fn event_time_at(col: &str, i: usize, v: &serde_json::Value) -> Result<i64> {
    time_at(col, i, v)?
        .ok_or_else(|| Error::InvalidRequest(format!("column `{col}` row {i} is null")))
}

/// The columns a row of `view` may carry: its join keys, its plain fields and inputs (never a
/// computed field), the event time
/// (`event_timestamp` or the source's `ts_field`) and `created`.
fn row_columns<'a>(view: &'a quiver_core::FeatureView, ts_field: &'a str) -> Vec<&'a str> {
    let mut known: Vec<&str> = view.join_keys.iter().map(|k| k.name.as_str()).collect();
    known.extend(
        view.fields
            .iter()
            .filter(|f| f.expression.is_none())
            .chain(&view.inputs)
            .map(|f| f.name.as_str()),
    );
    known.extend(["event_timestamp", "created", ts_field]);
    known
}

/// What a push did, per view it wrote online and to the batch source.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    pub push_source: String,
    /// Per view written online: rows written, rows skipped as older than what is stored.
    pub views: Vec<PushedView>,
    /// Rows appended to the batch source (0: not asked to).
    pub offline_rows: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PushedView {
    pub view: String,
    pub written: usize,
    pub skipped_older: usize,
}

/// Feast's push (`{push_source_name, df, to}`): the rows of `df` go to the online store of every
/// view that reads the push source (each view takes the columns it knows: join keys, its plain
/// fields and inputs, the event time; fields with an expression are computed from them; views
/// with aggregations or time series take their input columns as events and update their windows
/// incrementally, [`FeatureStore::push_window_events`]), to the batch source, or both. Everything is checked before anything is written: every view's rows
/// (types, expressions, constraints), then the batch source append is staged (which refuses the
/// whole batch when a value does not fit its column), then the online writes, and last the
/// append is committed. A push that fails online appends nothing offline, so retrying it (online
/// writes are newer-wins, idempotent) never appends a row twice.
pub async fn push(
    store: &FeatureStore,
    push_source: &str,
    columns: &serde_json::Map<String, serde_json::Value>,
    to: quiver::push::PushTo,
) -> Result<PushReport> {
    let (resolved, views) = store.push_source(push_source)?;
    let ts_field = resolved.source.timestamp_field.clone();
    let mut online = Vec::new();
    let mut windows = Vec::new();
    for served in &views {
        let view = &served.definition;
        if view.is_derived() {
            if to.online() {
                if view.sql.is_some() {
                    return Err(Error::InvalidRequest(format!(
                        "feature view `{}` reads push source `{push_source}` through `sql`; pushed rows cannot update it online: push `to: offline` and materialize",
                        view.name
                    )));
                }
                let events =
                    decode_window_events(view, &ts_field, columns).map_err(|e| match e {
                        Error::InvalidRequest(m) => Error::InvalidRequest(format!(
                            "push source `{push_source}`: feature view `{}`: {m}",
                            view.name
                        )),
                        other => other,
                    })?;
                windows.push((view.name.clone(), events));
            }
            continue;
        }
        if !to.online() && !view.has_expressions() {
            continue;
        }
        let known = row_columns(view, &ts_field);
        let own: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .filter(|(name, _)| known.contains(&name.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Decoded for an offline-only push too when the view computes fields: a row whose
        // expressions cannot be computed would fail every later read of the batch source.
        let rows = decode_rows(store, &view.name, &own).map_err(|e| match e {
            Error::InvalidRequest(m) => Error::InvalidRequest(format!(
                "push source `{push_source}`: feature view `{}`: {m}",
                view.name
            )),
            other => other,
        })?;
        if to.online() {
            store.check_online_rows(&view.name, &rows)?;
            online.push((view.name.clone(), rows));
        }
    }
    let mut report = PushReport {
        push_source: push_source.to_string(),
        ..PushReport::default()
    };
    let pending = if to.offline() {
        Some(store.prepare_batch_append(push_source, columns).await?)
    } else {
        None
    };
    for (view, rows) in online {
        let summary = store.write_to_online_store(&view, &rows).await?;
        report.views.push(PushedView {
            view,
            written: summary.written,
            skipped_older: summary.skipped_older,
        });
    }
    for (view, events) in windows {
        let summary = store.push_window_events(&view, events).await?;
        report.views.push(PushedView {
            view,
            written: summary.written,
            skipped_older: summary.skipped_older,
        });
    }
    if let Some(pending) = pending {
        let written_online = !report.views.is_empty();
        report.offline_rows = pending.commit().await.map_err(|e| {
            if !written_online {
                return e;
            }
            let say = |m: String| {
                format!("{m} (the rows were written online; nothing was appended offline, and retrying the push is safe)")
            };
            match e {
                Error::Unavailable(m) => Error::Unavailable(say(m)),
                Error::Io { .. } | Error::Internal(_) => Error::Unavailable(say(e.to_string())),
                other => other,
            }
        })?;
    }
    Ok(report)
}

/// The rows of `df` as events of a derived view: join keys, event time, `created` when given,
/// and each input column ([`quiver_core::FeatureView::source_columns`]) as a float64 (null
/// allowed).
fn decode_window_events(
    view: &quiver_core::FeatureView,
    ts_field: &str,
    columns: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(EntityKey, quiver::offline_store::engine::WindowEvent)>> {
    let column = |name: &str| -> Result<&Vec<serde_json::Value>> {
        columns
            .get(name)
            .ok_or_else(|| Error::InvalidRequest(format!("missing column `{name}`")))?
            .as_array()
            .ok_or_else(|| {
                Error::InvalidRequest(format!("column `{name}` must be a list of values"))
            })
    };
    let ts_name = if columns.contains_key("event_timestamp") {
        "event_timestamp"
    } else {
        ts_field
    };
    let ts = column(ts_name).map_err(|_| {
        Error::InvalidRequest(format!(
            "missing column `event_timestamp` (or `{ts_field}`): the event time of each row, RFC 3339"
        ))
    })?;
    let keys = view
        .join_keys
        .iter()
        .map(|k| column(&k.name).map(|c| (k, c)))
        .collect::<Result<Vec<_>>>()?;
    let inputs = view.source_columns();
    let values = inputs
        .iter()
        .map(|c| column(c).map(|v| (c, v)))
        .collect::<Result<Vec<_>>>()?;
    let created = columns.get("created").and_then(|c| c.as_array());
    let n = ts.len();
    for (name, len) in keys
        .iter()
        .map(|(k, c)| (k.name.as_str(), c.len()))
        .chain(values.iter().map(|(c, v)| (c.as_str(), v.len())))
        .chain(created.map(|c| ("created", c.len())))
    {
        if len != n {
            return Err(Error::InvalidRequest(format!(
                "column `{name}` has {len} values but `{ts_name}` has {n}"
            )));
        }
    }
    (0..n)
        .map(|i| {
            let key = key_at(&keys, i)?;
            let event_ts = event_time_at(ts_name, i, &ts[i])?;
            let created_ts = match created.map(|c| &c[i]) {
                None => None,
                Some(v) => time_at("created", i, v)?,
            };
            let values = values
                .iter()
                .map(|(name, col)| {
                    match Value::from_json(
                        &col[i],
                        quiver_core::ValueType::Scalar(ScalarType::Float64),
                    ) {
                        Ok(Value::Float64(x)) => Ok(Some(x)),
                        Ok(_) => Ok(None),
                        Err(e) => Err(Error::InvalidRequest(format!(
                            "column `{name}` row {i}: {e}"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((
                key,
                quiver::offline_store::engine::WindowEvent {
                    event_ts,
                    created_ts,
                    values,
                },
            ))
        })
        .collect()
}
