//! Online/offline skew: were the values the server answered the values a training set computes
//! for the same entity at the same time?
//!
//! [`FeatureStore::skew`] reads the exported served-feature logs of one feature service (the
//! built-in `served_features` record namespace, exported by `quiver export`), runs the
//! point-in-time join of the offline engine at each logged request's time for its entities (the
//! same join `get_historical_features` runs), and compares value by value and status by status.
//!
//! Per logged row and feature, "has a value" means: online, status `PRESENT`; offline, a
//! non-null value in the training set (a row within the TTL). Then:
//! - neither has one: a match (`NOT_FOUND`, `OUTSIDE_MAX_AGE` or `NULL_VALUE` online, no row or
//!   an old row offline — what training sees is null as well);
//! - both have one: a match when equal (floats within `tolerance`, relative), else a
//!   *mismatch*;
//! - only online has one: *online only*, a value the offline side cannot explain;
//! - only offline has one: *offline only*, a value training sees that serving did not answer.
//!
//! Each disagreement gets a cause from the two event times (plain views): `same_event` (the
//! same event time but another value: the source changed after it was materialized),
//! `online_behind` (offline knows a newer event: not materialized yet, or expired online),
//! `offline_behind` (online holds a newer event than the source has at that time: pushed online
//! only, say), `not_in_offline`, `not_online`, or `derived` (windows and series are evaluated
//! at the request time offline, so there is no event time to compare).
//!
//! The report ([`SkewReport`]) is typed; [`SkewReport::to_arrow`] gives the same report as
//! Arrow batches, and [`html::render`] as a self-contained HTML page with charts.

pub mod html;
mod logs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, TimeUnit};
use quiver_core::{FeatureRef, FeatureStatus, Value, ValueType};
use quiver_offline::engine::{self, EntityRows};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::records::SERVED_FEATURES;
use crate::selection::FeatureSelection;
use crate::store::FeatureStore;

pub use logs::LoggedRows;

/// What `skew` compares.
#[derive(Clone, Debug)]
pub struct SkewOptions {
    /// The feature service whose served-feature logs are compared.
    pub service: String,
    /// Only requests logged at or after this time (ns UTC).
    pub start: Option<i64>,
    /// Only requests logged before this time (ns UTC).
    pub end: Option<i64>,
    /// Compare a uniform random sample of this many logged rows (all when fewer).
    pub sample: Option<usize>,
    /// The seed of the sample, so a report can be repeated.
    pub seed: u64,
    /// Two floats match when `|a - b| <= tolerance * max(|a|, |b|)`; 0: only equal floats.
    pub tolerance: f64,
    /// Example rows kept per feature and kind of disagreement.
    pub examples: usize,
    /// Time buckets of the mismatch-rate-over-time series.
    pub buckets: usize,
}

impl SkewOptions {
    pub fn new(service: impl Into<String>) -> SkewOptions {
        SkewOptions {
            service: service.into(),
            start: None,
            end: None,
            sample: None,
            seed: 0,
            tolerance: 0.0,
            examples: 5,
            buckets: 48,
        }
    }
}

/// The kind of a compared row and feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both have the same value, or neither has one.
    Match,
    /// Both have a value and they differ.
    Mismatch,
    /// Online answered a value; the training set has none.
    OnlineOnly,
    /// The training set has a value; online answered none.
    OfflineOnly,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::OnlineOnly => "online_only",
            Outcome::OfflineOnly => "offline_only",
        }
    }
}

/// Why online and offline disagree (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    SameEvent,
    OnlineBehind,
    OfflineBehind,
    NotInOffline,
    NotOnline,
    Derived,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::SameEvent => "same_event",
            Cause::OnlineBehind => "online_behind",
            Cause::OfflineBehind => "offline_behind",
            Cause::NotInOffline => "not_in_offline",
            Cause::NotOnline => "not_online",
            Cause::Derived => "derived",
        }
    }
}

/// One feature's comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FeatureSkew {
    /// `view:feature` (`view@vN:feature` when pinned).
    pub feature: String,
    pub value_type: String,
    /// Logged rows compared (rows whose log holds the feature).
    pub compared: u64,
    /// Matches, exact or within the tolerance, including rows where neither side has a value.
    pub matched: u64,
    /// Matches that are identical (or where neither side has a value).
    pub exact: u64,
    pub mismatched: u64,
    pub online_only: u64,
    pub offline_only: u64,
    /// Disagreements per cause.
    pub causes: BTreeMap<Cause, u64>,
    /// Over rows where both sides have a number: the mean and the largest `|online - offline|`.
    pub mean_abs_diff: Option<f64>,
    pub max_abs_diff: Option<f64>,
    /// Rows per online status and offline status (`PRESENT`, `NOT_FOUND`, ...).
    pub online_statuses: BTreeMap<String, u64>,
    pub offline_statuses: BTreeMap<String, u64>,
}

impl FeatureSkew {
    /// Rows that disagree: mismatches and rows only one side has a value for.
    pub fn disagreements(&self) -> u64 {
        self.mismatched + self.online_only + self.offline_only
    }

    pub fn exact_match_rate(&self) -> f64 {
        ratio(self.exact, self.compared)
    }

    pub fn mismatch_rate(&self) -> f64 {
        ratio(self.disagreements(), self.compared)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A disagreeing row, kept as an example.
#[derive(Clone, Debug, Serialize)]
pub struct SkewExample {
    pub feature: String,
    pub outcome: Outcome,
    pub cause: Cause,
    /// `key=value` pairs of the row's entity.
    pub entity: String,
    /// When it was served (the logged request time), ns UTC.
    pub time: i64,
    pub request_id: String,
    pub online: String,
    pub offline: String,
    pub online_status: String,
    pub offline_status: String,
    /// Event times: what online served (`None`: no record) and the source row offline found.
    pub online_event_time: Option<i64>,
    pub offline_event_time: Option<i64>,
    /// Which layers answered the row (`online`, `offline`, `computed`).
    pub layers: String,
}

/// One time bucket of one feature: rows compared and disagreements.
#[derive(Clone, Debug, Serialize)]
pub struct TimeBucket {
    pub feature: String,
    /// The bucket's start, ns UTC.
    pub start: i64,
    pub compared: u64,
    pub disagreements: u64,
}

/// One bin of the distribution of `online - offline` over rows where both have a number and
/// they differ.
#[derive(Clone, Debug, Serialize)]
pub struct DifferenceBin {
    pub feature: String,
    pub low: f64,
    pub high: f64,
    pub count: u64,
}

/// What `skew` found.
#[derive(Clone, Debug, Serialize)]
pub struct SkewReport {
    pub service: String,
    /// The window asked for (ns UTC).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Logged requests read and logged rows in them (before sampling).
    pub requests: u64,
    pub logged_rows: u64,
    /// Rows compared (after sampling).
    pub rows: u64,
    /// Logged rows left out, with why (a join key the others lack, say).
    pub skipped_rows: u64,
    pub skipped_reasons: Vec<String>,
    /// The span of the compared rows' request times (ns UTC).
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    pub tolerance: f64,
    pub features: Vec<FeatureSkew>,
    pub examples: Vec<SkewExample>,
    pub timeline: Vec<TimeBucket>,
    pub differences: Vec<DifferenceBin>,
    /// Seconds: reading and decoding the logs, the point-in-time join, the whole call.
    pub read_seconds: f64,
    pub join_seconds: f64,
    pub seconds: f64,
}

impl SkewReport {
    /// Whether any row disagrees.
    pub fn has_skew(&self) -> bool {
        self.features.iter().any(|f| f.disagreements() > 0)
    }

    /// The report as Arrow batches: one row per feature, per example, per time bucket and per
    /// difference bin.
    pub fn to_arrow(&self) -> Result<SkewTables> {
        Ok(SkewTables {
            summary: self.summary_batch()?,
            examples: self.examples_batch()?,
            timeline: self.timeline_batch()?,
            differences: self.differences_batch()?,
        })
    }

    fn summary_batch(&self) -> Result<RecordBatch> {
        let f = &self.features;
        let count = |get: &dyn Fn(&FeatureSkew) -> u64| -> ArrayRef {
            Arc::new(
                f.iter()
                    .map(|x| Some(get(x)))
                    .collect::<arrow_array::UInt64Array>(),
            )
        };
        let float = |get: &dyn Fn(&FeatureSkew) -> Option<f64>| -> ArrayRef {
            Arc::new(f.iter().map(get).collect::<arrow_array::Float64Array>())
        };
        let cause =
            |c: Cause| count(&move |x: &FeatureSkew| x.causes.get(&c).copied().unwrap_or(0));
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("feature", strings(f.iter().map(|x| x.feature.as_str()))),
            (
                "value_type",
                strings(f.iter().map(|x| x.value_type.as_str())),
            ),
            ("compared", count(&|x| x.compared)),
            ("matched", count(&|x| x.matched)),
            ("exact", count(&|x| x.exact)),
            ("mismatched", count(&|x| x.mismatched)),
            ("online_only", count(&|x| x.online_only)),
            ("offline_only", count(&|x| x.offline_only)),
            ("exact_match_rate", float(&|x| Some(x.exact_match_rate()))),
            ("mismatch_rate", float(&|x| Some(x.mismatch_rate()))),
            ("mean_abs_diff", float(&|x| x.mean_abs_diff)),
            ("max_abs_diff", float(&|x| x.max_abs_diff)),
        ];
        for c in CAUSES {
            columns.push((c.as_str(), cause(c)));
        }
        batch(columns)
    }

    fn examples_batch(&self) -> Result<RecordBatch> {
        let e = &self.examples;
        let mut online_ts = TimestampNanosecondBuilder::new().with_timezone("UTC");
        let mut offline_ts = TimestampNanosecondBuilder::new().with_timezone("UTC");
        let mut time = TimestampNanosecondBuilder::new().with_timezone("UTC");
        for x in e {
            online_ts.append_option(x.online_event_time);
            offline_ts.append_option(x.offline_event_time);
            time.append_value(x.time);
        }
        batch(vec![
            ("feature", strings(e.iter().map(|x| x.feature.as_str()))),
            ("outcome", strings(e.iter().map(|x| x.outcome.as_str()))),
            ("cause", strings(e.iter().map(|x| x.cause.as_str()))),
            ("entity", strings(e.iter().map(|x| x.entity.as_str()))),
            ("time", Arc::new(time.finish())),
            (
                "request_id",
                strings(e.iter().map(|x| x.request_id.as_str())),
            ),
            ("online", strings(e.iter().map(|x| x.online.as_str()))),
            ("offline", strings(e.iter().map(|x| x.offline.as_str()))),
            (
                "online_status",
                strings(e.iter().map(|x| x.online_status.as_str())),
            ),
            (
                "offline_status",
                strings(e.iter().map(|x| x.offline_status.as_str())),
            ),
            ("online_event_time", Arc::new(online_ts.finish())),
            ("offline_event_time", Arc::new(offline_ts.finish())),
            ("layers", strings(e.iter().map(|x| x.layers.as_str()))),
        ])
    }

    fn timeline_batch(&self) -> Result<RecordBatch> {
        let t = &self.timeline;
        let mut start = TimestampNanosecondBuilder::new().with_timezone("UTC");
        let (mut compared, mut disagreements) = (UInt64Builder::new(), UInt64Builder::new());
        for b in t {
            start.append_value(b.start);
            compared.append_value(b.compared);
            disagreements.append_value(b.disagreements);
        }
        batch(vec![
            ("feature", strings(t.iter().map(|b| b.feature.as_str()))),
            ("start", Arc::new(start.finish())),
            ("compared", Arc::new(compared.finish())),
            ("disagreements", Arc::new(disagreements.finish())),
        ])
    }

    fn differences_batch(&self) -> Result<RecordBatch> {
        let d = &self.differences;
        let (mut low, mut high, mut count) = (
            Float64Builder::new(),
            Float64Builder::new(),
            UInt64Builder::new(),
        );
        for b in d {
            low.append_value(b.low);
            high.append_value(b.high);
            count.append_value(b.count);
        }
        batch(vec![
            ("feature", strings(d.iter().map(|b| b.feature.as_str()))),
            ("low", Arc::new(low.finish())),
            ("high", Arc::new(high.finish())),
            ("count", Arc::new(count.finish())),
        ])
    }
}

/// The causes, in the order reports list them.
pub const CAUSES: [Cause; 6] = [
    Cause::SameEvent,
    Cause::OnlineBehind,
    Cause::OfflineBehind,
    Cause::NotInOffline,
    Cause::NotOnline,
    Cause::Derived,
];

/// [`SkewReport`] as Arrow batches.
#[derive(Clone, Debug)]
pub struct SkewTables {
    /// One row per feature: `feature`, `value_type`, the counts, `exact_match_rate`,
    /// `mismatch_rate`, `mean_abs_diff`, `max_abs_diff`, one count per cause.
    pub summary: RecordBatch,
    /// One row per example: `feature`, `outcome`, `cause`, `entity`, `time`, `request_id`,
    /// `online`, `offline`, both statuses and event times, `layers`.
    pub examples: RecordBatch,
    /// One row per feature and time bucket: `feature`, `start`, `compared`, `disagreements`.
    pub timeline: RecordBatch,
    /// One row per feature and bin of `online - offline`: `feature`, `low`, `high`, `count`.
    pub differences: RecordBatch,
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<ArrowField> = columns
        .iter()
        .map(|(name, c)| {
            let nullable = c.null_count() > 0 || matches!(c.data_type(), DataType::Float64);
            let dt = match c.data_type() {
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
                }
                other => other.clone(),
            };
            ArrowField::new(*name, dt, nullable || name.ends_with("event_time"))
        })
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, c)| c).collect(),
    )
    .map_err(|e| Error::Internal(format!("skew report batch: {e}")))
}

/// One feature of the service, resolved.
struct Wanted {
    reference: FeatureRef,
    label: String,
    ty: ValueType,
}

impl FeatureStore {
    /// Compares what feature service `options.service` served (its exported served-feature
    /// logs) with what a training set computes for the same entities at the same times; see
    /// the module docs.
    pub async fn skew(&self, options: &SkewOptions) -> Result<SkewReport> {
        let started = Instant::now();
        let service = &options.service;
        let registry = self.registry()?;
        let svc = registry.feature_services.get(service).ok_or_else(|| {
            Error::NotFound(format!(
                "feature service `{service}` is not applied; known: {}",
                registry
                    .feature_services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if svc.logging.is_none() {
            tracing::warn!(
                service,
                "the feature service has no `logging`: only earlier logs can be compared"
            );
        }
        if !(options.tolerance >= 0.0 && options.tolerance.is_finite()) {
            return Err(Error::InvalidRequest(format!(
                "tolerance {} must be a finite number >= 0",
                options.tolerance
            )));
        }
        if let (Some(s), Some(e)) = (options.start, options.end)
            && s >= e
        {
            return Err(Error::InvalidRequest(format!(
                "the window is empty: start {} is not before end {}",
                quiver_core::value::format_timestamp(s),
                quiver_core::value::format_timestamp(e)
            )));
        }
        let wanted = self.wanted_features(service)?;

        // The logs.
        let ns = self.records().namespace(SERVED_FEATURES)?;
        let offline = self.offline_store().await?;
        // Only the window's rows are read (Parquet: the days it touches; PostgreSQL: a WHERE).
        let batches = offline
            .records()
            .read_range(&ns.table, options.start, options.end)
            .await?;
        let key_types: BTreeMap<String, quiver_core::ScalarType> = wanted
            .iter()
            .filter_map(|w| self.view_at(&w.reference.view, w.reference.version).ok())
            .flat_map(|v| v.definition.join_keys.iter())
            .map(|k| (k.name.clone(), k.key_type))
            .collect();
        let spec = logs::Spec {
            service: service.clone(),
            features: wanted
                .iter()
                .map(|w| {
                    (
                        [
                            w.reference.output_name(true),
                            w.reference.output_name(false),
                        ],
                        w.ty,
                    )
                })
                .collect(),
            key_types,
        };
        let sample = options.sample;
        let seed = options.seed;
        let mut rows = tokio::task::spawn_blocking(move || logs::decode(&batches, &spec))
            .await
            .map_err(|e| Error::Internal(format!("log decoding task failed: {e}")))??;
        let logged_rows = rows.len() as u64;
        if let Some(n) = sample
            && n < rows.len()
        {
            rows = rows.sample(n, seed);
        }
        let read_seconds = started.elapsed().as_secs_f64();

        // The training set's values at the same points.
        let joined = Instant::now();
        let rows = Arc::new(rows);
        let sides = self.offline_sides(&rows, &wanted).await?;
        let join_seconds = joined.elapsed().as_secs_f64();

        // Compare, the features spread over the cores.
        let tolerance = options.tolerance;
        let (examples, buckets) = (options.examples, options.buckets.max(1));
        let labels: Vec<String> = wanted.iter().map(|w| w.label.clone()).collect();
        let compared_rows = rows.clone();
        let results = tokio::task::spawn_blocking(move || {
            compare(
                &compared_rows,
                &labels,
                &sides,
                tolerance,
                examples,
                buckets,
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("comparison task failed: {e}")))??;
        let mut report = SkewReport {
            service: service.clone(),
            start: options.start,
            end: options.end,
            requests: rows.requests,
            logged_rows,
            rows: rows.len() as u64,
            skipped_rows: rows.skipped,
            skipped_reasons: rows.skipped_reasons.clone(),
            first_time: rows.times.iter().copied().min(),
            last_time: rows.times.iter().copied().max(),
            tolerance,
            features: Vec::with_capacity(results.len()),
            examples: Vec::new(),
            timeline: Vec::new(),
            differences: Vec::new(),
            read_seconds,
            join_seconds,
            seconds: 0.0,
        };
        for r in results {
            report.features.push(r.summary);
            report.examples.extend(r.examples);
            report.timeline.extend(r.timeline);
            report.differences.extend(r.differences);
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The features of `service`, resolved: reference, `view:feature` label and type.
    fn wanted_features(&self, service: &str) -> Result<Vec<Wanted>> {
        let refs = self.resolve_features(&FeatureSelection::Service(service.to_string()))?;
        let mut wanted = Vec::with_capacity(refs.len());
        for r in refs {
            let view = self.view_at(&r.view, r.version)?;
            let field = view
                .definition
                .field_index(&r.feature)
                .map(|i| &view.definition.fields[i])
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "feature `{}` of `{}` is not a field",
                        r.feature, r.view
                    ))
                })?;
            wanted.push(Wanted {
                label: format!("{}:{}", r.view_label(), r.feature),
                ty: field.value_type,
                reference: r,
            });
        }

        Ok(wanted)
    }

    /// The training set's side of every wanted feature at the logged rows: one point-in-time
    /// join per view (the views concurrently, on the blocking pool), in `wanted`'s order.
    async fn offline_sides(
        &self,
        rows: &Arc<LoggedRows>,
        wanted: &[Wanted],
    ) -> Result<Vec<OfflineSide>> {
        let mut offline_sides: Vec<Option<OfflineSide>> = (0..wanted.len()).map(|_| None).collect();
        let mut jobs = tokio::task::JoinSet::new();
        for ((view_name, version), indices) in
            crate::offline::group_by_view(wanted.iter().map(|w| &w.reference))
        {
            let served = self.view_at(&view_name, version)?.clone();
            let resolved = self.source_of(&served.definition)?.clone();
            let names: Vec<String> = indices
                .iter()
                .map(|&i| wanted[i].reference.feature.clone())
                .collect();
            let types: Vec<ValueType> = indices.iter().map(|&i| wanted[i].ty).collect();
            let rows = Arc::clone(rows);
            jobs.spawn_blocking(move || -> Result<Vec<(usize, OfflineSide)>> {
                let view = &served.definition;
                let entities = rows.entity_batch(view)?;
                let origin = format!("served-feature logs of view `{}`", view.name);
                let (pit, _) = engine::point_in_time(
                    &resolved.path,
                    &resolved.source,
                    view,
                    EntityRows {
                        rows: &entities,
                        times: &rows.times,
                        origin: &origin,
                    },
                    &names,
                )?;
                let detail = Arc::new(PitDetail {
                    event_times: pit.event_times,
                    outside_ttl: pit.outside_ttl,
                });
                let out = indices
                    .into_iter()
                    .zip(pit.columns)
                    .zip(types)
                    .map(|((i, column), ty)| {
                        (
                            i,
                            OfflineSide {
                                column,
                                ty,
                                detail: detail.clone(),
                                derived: view.is_derived(),
                            },
                        )
                    })
                    .collect();
                Ok(out)
            });
        }
        while let Some(done) = jobs.join_next().await {
            let done =
                done.map_err(|e| Error::Internal(format!("point-in-time task failed: {e}")))??;
            for (i, side) in done {
                offline_sides[i] = Some(side);
            }
        }
        Ok(offline_sides.into_iter().flatten().collect())
    }
}

/// Per entity row of one view: the event time of the source row found and whether it was
/// older than the TTL (shared by the view's features).
struct PitDetail {
    event_times: Vec<Option<i64>>,
    outside_ttl: Vec<bool>,
}

/// A training set's side of one feature: its column (converted to values when compared, one
/// feature at a time) and its view's per-row detail.
struct OfflineSide {
    column: ArrayRef,
    ty: ValueType,
    detail: Arc<PitDetail>,
    derived: bool,
}

impl OfflineSide {
    fn status(&self, value: &Value, row: usize) -> FeatureStatus {
        if !value.is_null() {
            FeatureStatus::Present
        } else if self.detail.outside_ttl[row] {
            FeatureStatus::OutsideMaxAge
        } else if self.detail.event_times[row].is_some() || self.derived {
            FeatureStatus::NullValue
        } else {
            FeatureStatus::NotFound
        }
    }
}

/// Whether two present values match: equal, or floats within `tolerance` (relative). The
/// second item: identical.
fn values_match(a: &Value, b: &Value, tolerance: f64) -> (bool, bool) {
    if a == b {
        return (true, true);
    }
    match (a, b) {
        (Value::Float64(_) | Value::Float32(_), Value::Float64(_) | Value::Float32(_)) => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if x.is_nan() && y.is_nan() {
                return (true, true);
            }
            let close = (x - y).abs() <= tolerance * x.abs().max(y.abs());
            (close, false)
        }
        _ => (false, false),
    }
}

fn cause_of(online_ts: Option<i64>, offline_ts: Option<i64>, derived: bool) -> Cause {
    if derived {
        return Cause::Derived;
    }
    match (online_ts, offline_ts) {
        (Some(on), Some(off)) if on == off => Cause::SameEvent,
        (Some(on), Some(off)) if off > on => Cause::OnlineBehind,
        (Some(_), Some(_)) => Cause::OfflineBehind,
        (Some(_), None) => Cause::NotInOffline,
        (None, _) => Cause::NotOnline,
    }
}

/// What comparing one feature found.
struct FeatureResult {
    summary: FeatureSkew,
    examples: Vec<SkewExample>,
    timeline: Vec<TimeBucket>,
    differences: Vec<DifferenceBin>,
}

/// The time buckets of the compared rows: first start, width, count.
#[derive(Clone, Copy)]
struct Buckets {
    first: i64,
    width: i64,
    count: usize,
}

impl Buckets {
    fn of(&self, t: i64) -> usize {
        (((t - self.first) / self.width) as usize).min(self.count - 1)
    }
}

/// Compares every feature (one per core at a time), in `labels`' order.
fn compare(
    rows: &LoggedRows,
    labels: &[String],
    sides: &[OfflineSide],
    tolerance: f64,
    examples: usize,
    buckets: usize,
) -> Result<Vec<FeatureResult>> {
    let (first, last) = (
        rows.times.iter().copied().min().unwrap_or(0),
        rows.times.iter().copied().max().unwrap_or(0),
    );
    let buckets = Buckets {
        first,
        width: ((last - first) / buckets as i64).max(1),
        count: buckets,
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, labels.len().max(1));
    let mut results: Vec<Option<Result<FeatureResult>>> = (0..labels.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (w..labels.len())
                        .step_by(workers)
                        .map(|f| {
                            (
                                f,
                                compare_feature(
                                    rows, f, &labels[f], &sides[f], tolerance, examples, buckets,
                                ),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (f, r) in done {
                        results[f] = Some(r);
                    }
                }
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    results.into_iter().flatten().collect()
}

fn compare_feature(
    rows: &LoggedRows,
    f: usize,
    label: &str,
    side: &OfflineSide,
    tolerance: f64,
    examples: usize,
    buckets: Buckets,
) -> Result<FeatureResult> {
    let online = &rows.features[f];
    let offline = quiver_offline::source::column_values(&side.column, side.ty)
        .map_err(|e| Error::Internal(format!("reading back the training set's `{label}`: {e}")))?;
    let mut s = FeatureSkew {
        feature: label.to_string(),
        value_type: side.ty.to_string(),
        ..FeatureSkew::default()
    };
    let mut per_bucket = vec![(0u64, 0u64); buckets.count];
    let mut kept_per_outcome: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    let (mut diff_sum, mut diff_n, mut diff_max) = (0.0f64, 0u64, None::<f64>);
    let mut signed = Vec::new();
    for row in 0..rows.len() {
        let Some(on_status) = online.statuses[row] else {
            continue; // not logged for this row
        };
        let on_value = &online.values[row];
        let off_value = &offline[row];
        let off_status = side.status(off_value, row);
        s.compared += 1;
        *s.online_statuses
            .entry(on_status.as_str().to_string())
            .or_default() += 1;
        *s.offline_statuses
            .entry(off_status.as_str().to_string())
            .or_default() += 1;
        let on_has = on_status == FeatureStatus::Present && !on_value.is_null();
        let off_has = !off_value.is_null();
        let outcome = match (on_has, off_has) {
            (false, false) => {
                s.exact += 1;
                Outcome::Match
            }
            (true, false) => Outcome::OnlineOnly,
            (false, true) => Outcome::OfflineOnly,
            (true, true) => {
                if let (Some(a), Some(b)) = (on_value.as_f64(), off_value.as_f64()) {
                    let d = a - b;
                    if d.is_finite() {
                        diff_sum += d.abs();
                        diff_n += 1;
                        diff_max = Some(diff_max.map_or(d.abs(), |m: f64| m.max(d.abs())));
                        if d != 0.0 {
                            signed.push(d);
                        }
                    }
                }
                match values_match(on_value, off_value, tolerance) {
                    (true, exact) => {
                        s.exact += u64::from(exact);
                        Outcome::Match
                    }
                    (false, _) => Outcome::Mismatch,
                }
            }
        };
        let bucket = &mut per_bucket[buckets.of(rows.times[row])];
        bucket.0 += 1;
        match outcome {
            Outcome::Match => {
                s.matched += 1;
                continue;
            }
            Outcome::Mismatch => s.mismatched += 1,
            Outcome::OnlineOnly => s.online_only += 1,
            Outcome::OfflineOnly => s.offline_only += 1,
        }
        bucket.1 += 1;
        let online_ts = Some(online.event_times[row]).filter(|&t| t != 0);
        let offline_ts = side.detail.event_times[row];
        let cause = cause_of(online_ts, offline_ts, side.derived);
        *s.causes.entry(cause).or_default() += 1;
        let n = kept_per_outcome.entry(outcome).or_default();
        if *n < examples {
            *n += 1;
            kept.push(SkewExample {
                feature: label.to_string(),
                outcome,
                cause,
                entity: rows.entity_label(row),
                time: rows.times[row],
                request_id: rows.request_id(row).to_string(),
                online: on_value.display_short(),
                offline: off_value.display_short(),
                online_status: on_status.as_str().to_string(),
                offline_status: off_status.as_str().to_string(),
                online_event_time: online_ts,
                offline_event_time: offline_ts,
                layers: rows.layers[row].to_string(),
            });
        }
    }
    if diff_n > 0 {
        s.mean_abs_diff = Some(diff_sum / diff_n as f64);
        s.max_abs_diff = diff_max;
    }
    Ok(FeatureResult {
        summary: s,
        examples: kept,
        timeline: per_bucket
            .iter()
            .enumerate()
            .map(|(i, &(compared, disagreements))| TimeBucket {
                feature: label.to_string(),
                start: buckets.first + i as i64 * buckets.width,
                compared,
                disagreements,
            })
            .collect(),
        differences: histogram(label, &signed, 30),
    })
}

/// `bins` equal-width bins over the range of `values` (one bin when they are all equal).
fn histogram(feature: &str, values: &[f64], bins: usize) -> Vec<DifferenceBin> {
    let (Some(lo), Some(hi)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    if lo == hi {
        return vec![DifferenceBin {
            feature: feature.to_string(),
            low: lo,
            high: hi,
            count: values.len() as u64,
        }];
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| DifferenceBin {
            feature: feature.to_string(),
            low: lo + i as f64 * width,
            high: lo + (i + 1) as f64 * width,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_within_a_relative_tolerance_only() {
        let (a, b) = (Value::Float64(100.0), Value::Float64(100.000_000_1));
        assert_eq!(values_match(&a, &b, 0.0), (false, false));
        assert_eq!(values_match(&a, &b, 1e-9), (true, false));
        assert_eq!(values_match(&a, &a, 0.0), (true, true));
        assert_eq!(
            values_match(&Value::Int64(1), &Value::Int64(2), 1.0),
            (false, false),
            "integers are never approximate"
        );
    }

    #[test]
    fn causes_follow_the_event_times() {
        let c = |on, off| cause_of(on, off, false);
        assert_eq!(c(Some(5), Some(5)), Cause::SameEvent);
        assert_eq!(c(Some(5), Some(9)), Cause::OnlineBehind);
        assert_eq!(c(Some(9), Some(5)), Cause::OfflineBehind);
        assert_eq!(c(Some(9), None), Cause::NotInOffline);
        assert_eq!(c(None, Some(1)), Cause::NotOnline);
        assert_eq!(cause_of(Some(1), None, true), Cause::Derived);
    }

    #[test]
    fn histogram_bins_cover_the_range() {
        let bins = histogram("f", &[-1.0, 0.5, 1.0, 1.0], 4);
        assert_eq!(bins.len(), 4);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 4);
        assert_eq!((bins[0].low, bins[3].high), (-1.0, 1.0));
        // [-1, -0.5) holds -1; [0.5, 1] holds 0.5 and both 1s (the maximum is in the last bin).
        assert_eq!(bins[0].count, 1);
        assert_eq!(bins[3].count, 3);
        assert!(histogram("f", &[], 4).is_empty());
    }
}
