//! Serving: online features for entity rows, in three steps.
//! - **plan** (`plan.rs`): resolve the features, check names and entity key columns, build each
//!   view's entity keys. Every client mistake is found here, before a store is touched.
//! - **read** (`read.rs`): one read per view, all in flight at once, through a
//!   [`FeatureReader`]: the online store behind the fallback layer ([`LayeredReader`]).
//! - **assemble** (here): columns in request order, with a status and event time per value and
//!   the layer that answered each entity row.
//!
//! The library speaks typed values ([`KeyValue`], [`Value`]); JSON belongs to the HTTP server
//! and the CLI. Writes (`write.rs`) take typed rows too.

mod flight;
pub(crate) mod plan;
mod read;
mod write;

pub use read::{FeatureReader, Layer, LayeredReader, Lookup, OnlineReader, ReadContext};

use quiver_core::status::status_of;
use quiver_core::{FeatureStatus, KeyValue, Value};

use crate::error::{Error, Result};
use crate::selection::FeatureSelection;
use crate::store::FeatureStore;

/// A request for online features.
#[derive(Clone, Debug)]
pub struct OnlineRequest {
    pub features: FeatureSelection,
    /// Join-key columns: name and one value per entity row (ints or strings, per key type).
    pub entities: Vec<(String, Vec<KeyValue>)>,
    /// Name features `view__feature` instead of `feature`.
    pub full_feature_names: bool,
    /// Answer as of this time (ns UTC) from the offline layer, with the training-set rule;
    /// `None`: now.
    pub as_of: Option<i64>,
}

impl OnlineRequest {
    /// A request for `features` of the entity rows in `entities`, now, with short names.
    pub fn new(features: FeatureSelection, entities: Vec<(String, Vec<KeyValue>)>) -> Self {
        OnlineRequest {
            features,
            entities,
            full_feature_names: false,
            as_of: None,
        }
    }
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
    /// Per entity row, the layers that answered its views (online first).
    pub layers: Vec<Vec<Layer>>,
    /// The served-feature log record's id when this answer was logged (its feature service has
    /// `logging`).
    pub logged_as: Option<String>,
}

impl OnlineResponse {
    /// Number of entity rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// `online`, `offline` (the second layer answered everything: `offline` or `computed`), or
    /// `mixed`: what the `x-quiver-layer` response header says.
    pub fn layer_summary(&self) -> &'static str {
        let mut online = false;
        let mut other = false;
        for row in &self.layers {
            for layer in row {
                match layer {
                    Layer::Online => online = true,
                    Layer::Offline | Layer::Computed => other = true,
                }
            }
        }
        match (online, other) {
            (_, false) => "online",
            (false, true) => "offline",
            (true, true) => "mixed",
        }
    }
}

impl FeatureStore {
    /// Reads online features: plan, one read per view (concurrently), assemble.
    pub async fn get_online_features(&self, request: &OnlineRequest) -> Result<OnlineResponse> {
        self.get_online_features_by(request, None).await
    }

    /// [`get_online_features`](Self::get_online_features), giving up online reads at
    /// `deadline` (the fallback layer then answers where configured).
    pub async fn get_online_features_by(
        &self,
        request: &OnlineRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<OnlineResponse> {
        let catalog = self.catalog()?;
        let plan = plan::plan(catalog, request)?;
        let ctx = ReadContext {
            catalog,
            now: quiver_online::now_ns(),
            as_of: request.as_of,
            deadline,
        };
        let reader = self.reader();
        for (i, v) in plan.views.iter().enumerate() {
            let fields = &v.served.definition.fields;
            reader.stats().view(&v.served.definition.name).requested(
                plan.features
                    .iter()
                    .filter(|(view, _)| *view == i)
                    .filter_map(|(_, pos)| fields.get(*pos).map(|f| f.name.as_str())),
            );
        }
        let reads = plan
            .views
            .iter()
            .map(|v| reader.read(v.served, &v.keys, &ctx));
        let lookups = futures_util::future::try_join_all(reads).await?;
        let mut response = assemble(plan, request, lookups, request.as_of.unwrap_or(ctx.now))?;
        if let FeatureSelection::Service(name) = &request.features
            && request.as_of.is_none()
            && let Some(logging) = catalog
                .registry()
                .feature_services
                .get(name)
                .and_then(|s| s.logging)
            && (logging.sample_rate >= 1.0 || rand::random::<f64>() < logging.sample_rate)
        {
            response.logged_as = self.records().log_served(name, request, &response);
        }
        Ok(response)
    }
}

/// Columns in request order from the per-view lookups; `now` is the time statuses are judged
/// at (the request's `as_of` for point-in-time reads).
fn assemble(
    plan: plan::Plan<'_>,
    request: &OnlineRequest,
    mut lookups: Vec<Vec<Lookup>>,
    now: i64,
) -> Result<OnlineResponse> {
    let rows = plan.rows;
    let mut columns: Vec<FeatureColumn> = request
        .entities
        .iter()
        .map(|(_, values)| FeatureColumn {
            values: values.iter().map(KeyValue::to_value).collect(),
            statuses: vec![FeatureStatus::Present; rows],
            event_timestamps: vec![0; rows],
        })
        .collect();
    let mut layers: Vec<Vec<Layer>> = vec![Vec::new(); rows];
    for view in &lookups {
        for (row, lookup) in view.iter().enumerate() {
            if !layers[row].contains(&lookup.layer) {
                layers[row].push(lookup.layer);
            }
        }
    }
    for &(v, index) in &plan.features {
        let served = plan.views[v].served;
        let answers = lookups
            .get_mut(v)
            .ok_or_else(|| Error::Internal(format!("view `{}` was not read", served.table.view)))?;
        let mut col = FeatureColumn {
            values: Vec::with_capacity(rows),
            statuses: Vec::with_capacity(rows),
            event_timestamps: Vec::with_capacity(rows),
        };
        for answer in answers.iter_mut() {
            let rec = &mut answer.record;
            col.statuses
                .push(status_of(rec.as_ref(), index, served.table.ttl, now));
            match rec {
                Some(rec) => {
                    // Moved, not cloned: output names are unique, so no other column reads
                    // this (view, field) again (a 384-float vector is not copied).
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
        feature_names: plan.names,
        columns,
        layers,
        logged_as: None,
    })
}
