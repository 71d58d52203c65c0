//! Feature definitions: the domain types the rest of Quiver sees, built from the YAML user format
//! ([`serialize`]) by [`Definitions::build_and_validate`], which checks every cross-reference and
//! names the file, object and field of each problem.

mod constraints;
pub mod serialize;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::value::{ScalarType, ValueType};

pub use constraints::{Constraints, Rejection};

/// An entity: what features describe (a user, a merchant), identified by its join keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<JoinKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One join-key column and its type (int64 or string).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JoinKey {
    pub name: String,
    pub key_type: ScalarType,
}

/// File formats a source can be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Parquet,
    Csv,
    /// A PostgreSQL table or query.
    Postgres,
}

/// Where a view's rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub format: SourceFormat,
    /// File path as written (Parquet, CSV); relative paths resolve from the project directory.
    /// Empty for PostgreSQL sources.
    #[serde(default)]
    pub path: String,
    /// PostgreSQL: a table (`schema.table`) to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// PostgreSQL: a `SELECT` to read instead of a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// PostgreSQL: the connection URL; absent means the offline store's (`offline_store.url`).
    /// May name an environment variable as `env:VAR` so passwords stay out of definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub timestamp_field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A push source (`type: push`): rows arrive through `POST /push`, and are read (materialize,
    /// training sets) from this batch source, whose location and columns the push source
    /// carries as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_source: Option<String>,
}

impl Source {
    /// Whether rows can be pushed to it.
    pub fn is_push(&self) -> bool {
        self.batch_source.is_some()
    }
}

/// A typed feature with its constraints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    #[serde(default, skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
    /// A write-time transform: the value is computed from the row's columns by this expression
    /// ([`crate::expr`]) instead of read from a column of the field's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A feature view: a set of features of some entities, read from one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    /// The join keys of all its entities, in order; an online record is keyed by their values.
    pub join_keys: Vec<JoinKey>,
    pub source: String,
    /// Values older than this are served as OUTSIDE_MAX_AGE (and expire from Redis); `None`
    /// falls back to the online store's default.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub ttl: Option<Duration>,
    /// Offline history older than this is deleted by `quiver prune`; `None` keeps everything.
    #[serde(
        default,
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention: Option<Duration>,
    pub fields: Vec<Field>,
    /// Raw source columns that the fields' expressions read besides the view's own plain
    /// fields, typed (so a pushed JSON `3` and a Parquet `3.0` compute alike).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Field>,
    /// A SQL query over the source (registered as table `source`, and under the source's name)
    /// whose result rows stand in for the source's rows: they carry the join keys, the source's
    /// timestamp column(s) and the columns the fields or transforms read. Run by DataFusion
    /// (the `sql` cargo feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// For derived views: how each field is computed from the source, aligned with `fields`
    /// (empty for plain views, whose fields are source columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where serving turns when the online store cannot answer; `None`: the store-wide default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// The view is stale when its last materialization is older than this (`/health`,
    /// `/metrics`, the alert rules). Not part of the schema: changing it bumps no version.
    #[serde(
        default,
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub freshness_max_age: Option<Duration>,
    /// What one lazy computation of a key costs (any unit a team charts, e.g. dollars or
    /// source-query seconds): `/metrics` multiplies it by the computations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_computation: Option<f64>,
    /// How many versions keep their online records, the active one included (older ones are
    /// pruned after an apply); `None`: the project's `max_versions`. Not part of the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u32>,
}

/// A serving fallback policy: `{layer: offline, on: [unavailable, miss]}`, or `none`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    pub layer: FallbackLayer,
    /// When to use the layer (default: both).
    #[serde(default = "Fallback::all_triggers")]
    pub on: Vec<FallbackOn>,
}

impl Fallback {
    fn all_triggers() -> Vec<FallbackOn> {
        vec![FallbackOn::Unavailable, FallbackOn::Miss]
    }

    /// No fallback: online answers only.
    pub fn none() -> Fallback {
        Fallback {
            layer: FallbackLayer::None,
            on: Vec::new(),
        }
    }

    /// Whether the layer answers on this trigger.
    pub fn on(&self, trigger: FallbackOn) -> bool {
        self.layer != FallbackLayer::None && self.on.contains(&trigger)
    }
}

/// The layer a fallback reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackLayer {
    /// The offline store (latest row per key as of the request time; derived views computed).
    Offline,
    None,
}

/// What makes serving turn to the fallback layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackOn {
    /// The online store errs, times out or its circuit is open.
    Unavailable,
    /// The online store has no record for the key.
    Miss,
}

/// The YAML form of a fallback: the word `none`, or a policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FallbackDef {
    Word(String),
    Policy(Fallback),
}

impl FallbackDef {
    /// The policy, or what is wrong with the word.
    pub fn policy(&self) -> Result<Fallback, String> {
        match self {
            FallbackDef::Policy(p) => Ok(p.clone()),
            FallbackDef::Word(w) if w == "none" => Ok(Fallback::none()),
            FallbackDef::Word(w) => Err(format!(
                "`{w}` is not a fallback; write `none` or `{{layer: offline, on: [unavailable, miss]}}`"
            )),
        }
    }
}

/// Aggregation functions of rolling windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFunction {
    Sum,
    Mean,
    Count,
    Min,
    Max,
    /// Sample standard deviation (n - 1); null with fewer than two values.
    Std,
    /// The value of the latest event in the window.
    Last,
}

impl AggFunction {
    pub const ALL: [AggFunction; 7] = [
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Count,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::Std,
        AggFunction::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Count => "count",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::Std => "std",
            AggFunction::Last => "last",
        }
    }

    /// Parses a function name (case-insensitive; `avg` and `stddev` are accepted).
    pub fn parse(text: &str) -> Option<AggFunction> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "sum" => AggFunction::Sum,
            "mean" | "avg" => AggFunction::Mean,
            "count" => AggFunction::Count,
            "min" => AggFunction::Min,
            "max" => AggFunction::Max,
            "std" | "stddev" => AggFunction::Std,
            "last" => AggFunction::Last,
            _ => return None,
        })
    }
}

impl std::str::FromStr for AggFunction {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        AggFunction::parse(text).ok_or_else(|| {
            let names: Vec<&str> = AggFunction::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown aggregation function `{text}`; expected one of {}",
                names.join(", ")
            )
        })
    }
}

/// Time-series helpers over a per-entity price column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesKind {
    Return,
    Volatility,
    Momentum,
}

impl SeriesKind {
    pub fn name(self) -> &'static str {
        match self {
            SeriesKind::Return => "return",
            SeriesKind::Volatility => "volatility",
            SeriesKind::Momentum => "momentum",
        }
    }
}

/// How one derived feature is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// `function` over the events in `(t - window, t]`.
    Window {
        column: String,
        function: AggFunction,
        #[serde(with = "crate::duration::serde_req")]
        window: Duration,
    },
    /// A function of the last `periods` rows up to t.
    Series {
        column: String,
        series: SeriesKind,
        periods: u32,
    },
}

impl Transform {
    /// The source column it reads.
    pub fn column(&self) -> &str {
        match self {
            Transform::Window { column, .. } | Transform::Series { column, .. } => column,
        }
    }
}

impl FeatureView {
    /// A view whose features are computed (aggregations, time series) rather than read.
    pub fn is_derived(&self) -> bool {
        !self.transforms.is_empty()
    }

    /// The source columns a view reads besides keys and timestamps: its fields for a plain view,
    /// the distinct transform inputs for a derived one.
    pub fn source_columns(&self) -> Vec<String> {
        if self.is_derived() {
            let mut cols: Vec<String> = Vec::new();
            for t in &self.transforms {
                if !cols.iter().any(|c| c == t.column()) {
                    cols.push(t.column().to_string());
                }
            }
            cols
        } else {
            self.read_fields().into_iter().map(|f| f.name).collect()
        }
    }

    /// Whether some field is computed by an expression.
    pub fn has_expressions(&self) -> bool {
        self.fields.iter().any(|f| f.expression.is_some())
    }

    /// The typed source columns a plain view reads: its plain fields, then its `inputs`
    /// (the columns its expressions read).
    pub fn read_fields(&self) -> Vec<Field> {
        self.fields
            .iter()
            .filter(|f| f.expression.is_none())
            .chain(&self.inputs)
            .cloned()
            .collect()
    }

    /// The fields computed by expressions, parsed (they were checked at `apply`; an error
    /// names the field and the expression).
    pub fn expressions(&self) -> Result<Vec<(usize, crate::expr::Expr)>, String> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.expression.as_ref().map(|e| (i, f, e)))
            .map(|(i, f, e)| {
                crate::expr::Expr::parse(e)
                    .map(|x| (i, x))
                    .map_err(|err| format!("field `{}`: expression `{e}`: {err}", f.name))
            })
            .collect()
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn value_types(&self) -> Vec<ValueType> {
        self.fields.iter().map(|f| f.value_type).collect()
    }

    /// A stable fingerprint of what the online record layout depends on: join keys and the
    /// ordered field names and types. Changing it bumps the view's version.
    pub fn schema_fingerprint(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for k in &self.join_keys {
            h.update(format!("k:{}:{};", k.name, k.key_type.name()).as_bytes());
        }
        for f in &self.fields {
            h.update(format!("f:{}:{};", f.name, f.value_type).as_bytes());
            // A changed expression changes the values: older online records are another
            // version's. (Fields without one hash as before.)
            if let Some(e) = &f.expression {
                h.update(format!("e:{e};").as_bytes());
            }
        }
        format!("{:016x}", h.digest())
    }
}

/// A reference to one feature, `view:feature`, or `view@vN:feature` for version N of the view
/// (Feast's version-qualified spelling); unpinned means the view's active version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl FeatureRef {
    /// An unpinned reference.
    pub fn new(view: impl Into<String>, feature: impl Into<String>) -> FeatureRef {
        FeatureRef {
            view: view.into(),
            feature: feature.into(),
            version: None,
        }
    }

    /// Parses `view:feature` or `view@vN:feature`. The error names the reference.
    pub fn parse(text: &str) -> Result<FeatureRef, String> {
        match text.split_once(':') {
            Some((view, feature))
                if !view.is_empty() && !feature.is_empty() && !feature.contains(':') =>
            {
                let (view, version) =
                    split_version(view).map_err(|e| format!("feature reference `{text}`: {e}"))?;
                Ok(FeatureRef {
                    view: view.to_string(),
                    feature: feature.to_string(),
                    version,
                })
            }
            _ => Err(format!(
                "feature reference `{text}` is not of the form `view:feature` (or `view@vN:feature`)"
            )),
        }
    }

    /// The feature's column name in responses and training sets: `feature`, or
    /// `view__feature` (`view@vN__feature` when pinned) with full feature names (Feast's
    /// convention).
    pub fn output_name(&self, full_feature_names: bool) -> String {
        match (full_feature_names, self.version) {
            (false, _) => self.feature.clone(),
            (true, None) => format!("{}__{}", self.view, self.feature),
            (true, Some(v)) => format!("{}@v{v}__{}", self.view, self.feature),
        }
    }

    /// The view part as written: `view` or `view@vN`.
    pub fn view_label(&self) -> String {
        match self.version {
            None => self.view.clone(),
            Some(v) => format!("{}@v{v}", self.view),
        }
    }
}

/// Splits `view@vN` into the view name and N; a name without `@` is unpinned.
pub fn split_version(view: &str) -> Result<(&str, Option<u32>), String> {
    let Some((name, version)) = view.split_once('@') else {
        return Ok((view, None));
    };
    let number = version
        .strip_prefix('v')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0 && !name.is_empty());
    match number {
        Some(n) => Ok((name, Some(n))),
        None => Err(format!(
            "`{view}`: a version is written `view@vN` with N a positive integer (versions start at v1)"
        )),
    }
}

impl std::fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            None => write!(f, "{}:{}", self.view, self.feature),
            Some(v) => write!(f, "{}@v{v}:{}", self.view, self.feature),
        }
    }
}

/// A named set of features a model consumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Log what is served through this service (a record of the built-in `served_features`
    /// namespace per logged request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<ServiceLogging>,
}

/// A feature service's `logging:` block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogging {
    /// The share of requests logged, in (0, 1].
    pub sample_rate: f64,
}

/// All definitions of a project, validated: every reference resolves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, FeatureView>,
    pub feature_services: BTreeMap<String, FeatureService>,
}

impl Definitions {
    /// A hash of every definition (16 hex digits): equal for equal definitions whatever the
    /// files' layout, so an apply can say which definitions it recorded.
    pub fn content_hash(&self) -> String {
        // BTreeMaps serialize in key order: the JSON is canonical.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
    }
}
