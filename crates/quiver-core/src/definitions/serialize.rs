//! The YAML user format of `features/*.yaml`. Unknown keys are errors (a typo such as `tll:` must
//! not be silently ignored). See the README's "Definitions" section for the documented format.

use serde::Deserialize;

/// One definitions file. Every section is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsFile {
    #[serde(default)]
    pub entities: Vec<EntityDef>,
    #[serde(default)]
    pub sources: Vec<SourceDef>,
    #[serde(default)]
    pub feature_views: Vec<FeatureViewDef>,
    #[serde(default)]
    pub feature_services: Vec<FeatureServiceDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDef {
    pub name: String,
    pub join_keys: Vec<String>,
    /// `int64` (default) or `string`.
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    pub name: String,
    /// `parquet`, `csv` or `postgres`; inferred from the path's extension when absent.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// File path (parquet, csv).
    #[serde(default)]
    pub path: String,
    /// PostgreSQL table.
    #[serde(default)]
    pub table: Option<String>,
    /// PostgreSQL query.
    #[serde(default)]
    pub query: Option<String>,
    /// PostgreSQL connection URL, or `env:VAR`; default: the offline store's.
    #[serde(default)]
    pub url: Option<String>,
    /// `type: push`: the source the pushed rows are appended to and read from.
    #[serde(default)]
    pub batch_source: Option<String>,
    /// Required, except for push sources (which use their batch source's).
    #[serde(default)]
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewDef {
    pub name: String,
    pub entities: Vec<String>,
    pub source: String,
    #[serde(default)]
    pub ttl: Option<String>,
    /// How long the offline store keeps this view's history (`quiver prune`).
    #[serde(default)]
    pub retention: Option<String>,
    /// A SQL query over the source (table `source`) whose result the view reads instead of the
    /// source's rows; needs the `sql` cargo feature.
    #[serde(default)]
    pub sql: Option<String>,
    /// Plain features, read as they are from the source, or computed from the row's columns by
    /// an `expression`.
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// Raw source columns that expressions read and the view does not serve, with their types.
    #[serde(default)]
    pub inputs: Vec<InputDef>,
    /// Rolling-window aggregations: features `{column}__{function}__{window}`.
    #[serde(default)]
    pub aggregations: Vec<AggregationDef>,
    /// Per-entity price helpers: features `{column}__return__{n}`, `__volatility__{n}`,
    /// `__momentum__{n}`.
    #[serde(default)]
    pub time_series: Vec<TimeSeriesDef>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Serving fallback: `none`, or `{layer: offline, on: [unavailable, miss]}`.
    #[serde(default)]
    pub fallback: Option<super::FallbackDef>,
    /// `{max_age: 1h}`: the view is stale when its last materialization is older.
    #[serde(default)]
    pub freshness: Option<FreshnessDef>,
    /// What one lazy computation costs (a number, in the unit the team charts).
    #[serde(default)]
    pub cost_per_computation: Option<f64>,
    /// How many versions keep their online records (the active one included); overrides the
    /// project's `max_versions`.
    #[serde(default)]
    pub max_versions: Option<u32>,
}

/// A raw column an expression reads: `{name: amount, type: float64}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessDef {
    pub max_age: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationDef {
    pub column: String,
    /// `sum`, `mean`, `count`, `min`, `max`, `std`, `last`.
    pub functions: Vec<String>,
    /// Durations: `1h`, `1d`, `7d`, `30d`.
    pub windows: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSeriesDef {
    pub column: String,
    /// N-period returns `close_t / close_(t-N) - 1`.
    #[serde(default)]
    pub returns: Vec<u32>,
    /// Sample std of the last N log returns.
    #[serde(default)]
    pub volatility: Vec<u32>,
    /// `close_t - close_(t-N)`.
    #[serde(default)]
    pub momentum: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub one_of: Option<Vec<serde_yaml_ng::Value>>,
    #[serde(default)]
    pub dim: Option<usize>,
    /// Computed from the row's columns (`amount * 100`), at push time and offline alike.
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureServiceDef {
    pub name: String,
    /// `view:feature`, or `view` for all of a view's features.
    pub features: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `{sample_rate: 1.0}`: log every answer made through the service.
    #[serde(default)]
    pub logging: Option<super::ServiceLogging>,
}

/// Parses one file's text; the error carries serde's line and column.
pub fn parse(text: &str) -> Result<DefinitionsFile, String> {
    if text.trim().is_empty() {
        return Ok(DefinitionsFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}
