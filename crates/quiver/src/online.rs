//! Online reads and writes in Feast's terms: a feature list or a feature service, entity rows as
//! columns; results column-major with a status and event timestamp per value.

use std::collections::{BTreeMap, HashMap};

use quiver_core::status::status_of;
use quiver_core::{EntityKey, FeatureStatus, KeyValue, Record, ScalarType, Value};
use quiver_online::WriteSummary;

use crate::error::{Error, Result};
use crate::selection::FeatureSelection;
use crate::store::FeatureStore;

/// A request for online features.
#[derive(Clone, Debug)]
pub struct OnlineRequest {
    pub features: FeatureSelection,
    /// Join-key columns: name and one JSON value per entity row (ints or strings, per key type).
    pub entities: Vec<(String, Vec<serde_json::Value>)>,
    /// Name features `view__feature` instead of `feature`.
    pub full_feature_names: bool,
}

/// One output column.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureColumn {
    pub values: Vec<Value>,
    pub statuses: Vec<FeatureStatus>,
    /// Event time per row, ns UTC; 0 (the epoch) for join keys and missing values, like Feast.
    pub event_timestamps: Vec<i64>,
}

/// The response: join-key columns first, then features, in request order.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineResponse {
    pub feature_names: Vec<String>,
    pub columns: Vec<FeatureColumn>,
}

impl OnlineResponse {
    /// Number of entity rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }
}

impl FeatureStore {
    /// Reads online features: one store round trip per feature view.
    pub async fn get_online_features(&self, request: &OnlineRequest) -> Result<OnlineResponse> {
        let refs = self.resolve_features(&request.features)?;

        // Output names, checking for collisions when short names are asked for.
        let mut names: Vec<String> = request.entities.iter().map(|(k, _)| k.clone()).collect();
        let mut seen: HashMap<String, &str> = HashMap::new();
        for r in &refs {
            let name = r.output_name(request.full_feature_names);
            if let Some(other) = seen.insert(name.clone(), &r.view) {
                return Err(Error::InvalidRequest(format!(
                    "feature name `{name}` is requested twice (views `{other}` and `{}`); set `full_feature_names: true` or drop the duplicate",
                    r.view
                )));
            }
            names.push(name);
        }

        // Entity columns: every join key the views need, nothing else, equal lengths.
        let mut view_order: Vec<&str> = Vec::new();
        for r in &refs {
            if !view_order.contains(&r.view.as_str()) {
                view_order.push(&r.view);
            }
        }
        let mut needed: BTreeMap<&str, ScalarType> = BTreeMap::new();
        for v in &view_order {
            for k in &self.view(v)?.definition.join_keys {
                needed.insert(&k.name, k.key_type);
            }
        }
        let rows = request.entities.first().map_or(0, |(_, v)| v.len());
        let mut parsed: HashMap<&str, Vec<KeyValue>> = HashMap::new();
        for (name, values) in &request.entities {
            let Some(ty) = needed.get(name.as_str()) else {
                let expected: Vec<String> = needed.keys().map(|k| format!("`{k}`")).collect();
                return Err(Error::InvalidRequest(format!(
                    "entity key `{name}` is not a join key of the requested feature views (expected {})",
                    expected.join(", ")
                )));
            };
            if values.len() != rows {
                return Err(Error::InvalidRequest(format!(
                    "entity key `{name}` has {} values but `{}` has {rows}; every entity column needs one value per row",
                    values.len(),
                    request.entities[0].0
                )));
            }
            let keys = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    KeyValue::from_json(v, *ty).map_err(|e| {
                        Error::InvalidRequest(format!("entity key `{name}` row {i}: {e}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if parsed.insert(name.as_str(), keys).is_some() {
                return Err(Error::InvalidRequest(format!(
                    "entity key `{name}` is given twice"
                )));
            }
        }
        if let Some(missing) = needed.keys().find(|k| !parsed.contains_key(*k)) {
            return Err(Error::InvalidRequest(format!(
                "missing entity key `{missing}` (needed by the requested feature views)"
            )));
        }

        let mut columns: Vec<FeatureColumn> = request
            .entities
            .iter()
            .map(|(name, _)| FeatureColumn {
                values: parsed[name.as_str()]
                    .iter()
                    .map(KeyValue::to_value)
                    .collect(),
                statuses: vec![FeatureStatus::Present; rows],
                event_timestamps: vec![0; rows],
            })
            .collect();

        let now = quiver_online::now_ns();
        // One store read per view, all in flight at once: a request spanning several views costs
        // one round trip of latency, not one per view.
        let mut reads = Vec::with_capacity(view_order.len());
        for v in &view_order {
            let served = self.view(v)?;
            let keys: Vec<EntityKey> = (0..rows)
                .map(|i| {
                    EntityKey(
                        served
                            .definition
                            .join_keys
                            .iter()
                            .map(|k| parsed[k.name.as_str()][i].clone())
                            .collect(),
                    )
                })
                .collect();
            let store = self.online_store();
            reads.push(async move {
                if keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    store.read(&served.table, &keys).await
                }
            });
        }
        let results = futures_util::future::try_join_all(reads).await?;
        let mut records: HashMap<&str, Vec<Option<Record>>> =
            view_order.iter().copied().zip(results).collect();
        for r in &refs {
            let served = self.view(&r.view)?;
            let index = served
                .field_index(&r.feature)
                .ok_or_else(|| Error::Internal(format!("feature `{r}` vanished")))?;
            let recs = records
                .get_mut(r.view.as_str())
                .ok_or_else(|| Error::Internal(format!("view `{}` was not read", r.view)))?;
            let mut col = FeatureColumn {
                values: Vec::with_capacity(rows),
                statuses: Vec::with_capacity(rows),
                event_timestamps: Vec::with_capacity(rows),
            };
            for rec in recs.iter_mut() {
                let status = status_of(rec.as_ref(), index, served.table.ttl, now);
                col.statuses.push(status);
                match rec {
                    Some(rec) => {
                        // Moved, not cloned: output names are unique, so no other column
                        // reads this (view, field) again (a 384-float vector is not copied).
                        col.values
                            .push(std::mem::replace(&mut rec.values[index], Value::Null));
                        col.event_timestamps.push(rec.event_ts);
                    }
                    None => {
                        col.values.push(Value::Null);
                        col.event_timestamps.push(0);
                    }
                }
            }
            columns.push(col);
        }
        Ok(OnlineResponse {
            feature_names: names,
            columns,
        })
    }

    /// Writes rows to the online store (Feast's `write-to-online-store`): `columns` holds the
    /// view's join keys, `event_timestamp` (or the source's timestamp column name), optionally
    /// `created`, and every feature of the view. The whole batch is validated before anything is
    /// written: it is stored entirely or refused.
    pub async fn write_to_online_store(
        &self,
        view_name: &str,
        columns: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<WriteSummary> {
        let served = self.view(view_name)?.clone();
        let view = &served.definition;
        let registry = self.registry()?;
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
                    "missing column `event_timestamp` (the event time of each row, RFC 3339)"
                        .into(),
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
            view.check_row(&key, &record)
                .map_err(|r| Error::InvalidRequest(r.to_string()))?;
            batch.push((key, record));
        }
        if batch.is_empty() {
            return Ok(WriteSummary::default());
        }
        Ok(self.online_store().write(&served.table, &batch).await?)
    }
}
