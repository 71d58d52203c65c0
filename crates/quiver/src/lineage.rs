//! Where a feature comes from: its source (with the schema it has now), how it is computed, the
//! view version serving it, the services that include it, and the runs that loaded or built it
//! (`quiver lineage view:feature`, `GET /lineage?feature=...`).

use quiver_core::definitions::Transform;
use quiver_core::{FeatureRef, SourceFormat};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::registry::MaterializationRun;
use crate::store::FeatureStore;

/// A feature's source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceLineage {
    pub name: String,
    /// `parquet`, `csv` or `postgres`.
    pub format: String,
    /// The file (resolved), the table, or the query it reads.
    pub location: String,
    pub timestamp_field: String,
    /// A hash of the source's columns and their types as they are now (16 hex digits); `None`
    /// for PostgreSQL sources and files that cannot be read.
    pub schema_hash: Option<String>,
    /// Why there is no schema hash, when there is none.
    pub schema_note: Option<String>,
}

/// How the feature's values are made from the source rows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transformation {
    /// `column` (read as is), `expression` (computed from the row), `aggregation` or
    /// `time_series`.
    pub kind: String,
    /// The source column it reads (for an expression: the field itself; the expression names
    /// its columns).
    pub column: String,
    /// e.g. `sum(amount) over 7d`, `returns(price) over 5 periods`; `None` for a plain column.
    pub expression: Option<String>,
    /// The view's SQL, when the source rows pass through one first.
    pub sql: Option<String>,
}

/// The lineage of one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lineage {
    /// `view:feature`.
    pub feature: String,
    pub view: String,
    pub version: u32,
    /// The feature's value type (`int64`, `list<float32>`, ...).
    pub value_type: String,
    pub description: Option<String>,
    pub source: SourceLineage,
    pub transformation: Transformation,
    /// Feature services that include it.
    pub services: Vec<String>,
    /// The view's recent materializations and builds (all versions), oldest first.
    pub runs: Vec<MaterializationRun>,
}

fn schema_hash(schema: &arrow_schema::Schema) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in schema.fields() {
        h.update(format!("{}:{};", f.name(), f.data_type()).as_bytes());
    }
    format!("{:016x}", h.digest())
}

impl FeatureStore {
    /// The lineage of `view:feature`.
    pub async fn lineage(&self, feature: &str) -> Result<Lineage> {
        let reference = FeatureRef::parse(feature).map_err(Error::InvalidRequest)?;
        let served = self.view_at(&reference.view, reference.version)?;
        let view = &served.definition;
        let position = view
            .fields
            .iter()
            .position(|f| f.name == reference.feature)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "feature view `{}` has no feature `{}`",
                    view.name, reference.feature
                ))
            })?;
        let field = &view.fields[position];
        let resolved = self.source_of(view)?.clone();
        let source = &resolved.source;
        let (location, readable) = match source.format {
            SourceFormat::Postgres => (
                source
                    .table
                    .clone()
                    .or_else(|| source.query.clone())
                    .unwrap_or_default(),
                false,
            ),
            _ => (resolved.path.display().to_string(), true),
        };
        let (schema_hash, schema_note) = if readable {
            let (path, format) = (resolved.path.clone(), source.format);
            let read = tokio::task::spawn_blocking(move || {
                quiver_offline::source::read_columns(&path, format)
            })
            .await
            .map_err(|e| Error::Internal(format!("schema read task failed: {e}")))?;
            match read {
                Ok(schema) => (Some(schema_hash(&schema)), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (
                None,
                Some("a PostgreSQL source: its schema is not read here".to_string()),
            )
        };
        let transformation = match view.transforms.get(position) {
            None if field.expression.is_some() => Transformation {
                kind: "expression".to_string(),
                column: field.name.clone(),
                expression: field.expression.clone(),
                sql: view.sql.clone(),
            },
            None => Transformation {
                kind: "column".to_string(),
                column: field.name.clone(),
                expression: None,
                sql: view.sql.clone(),
            },
            Some(Transform::Window {
                column,
                function,
                window,
            }) => Transformation {
                kind: "aggregation".to_string(),
                column: column.clone(),
                expression: Some(format!(
                    "{}({column}) over {}",
                    function.name(),
                    quiver_core::duration::format(*window)
                )),
                sql: view.sql.clone(),
            },
            Some(Transform::Series {
                column,
                series,
                periods,
            }) => Transformation {
                kind: "time_series".to_string(),
                column: column.clone(),
                expression: Some(format!(
                    "{}({column}) over {periods} periods",
                    series.name()
                )),
                sql: view.sql.clone(),
            },
        };
        let registry = self.registry()?;
        let services = registry
            .feature_services
            .values()
            .filter(|s| s.features.contains(&reference))
            .map(|s| s.name.clone())
            .collect();
        Ok(Lineage {
            feature: format!("{}:{}", view.name, field.name),
            view: view.name.clone(),
            version: served.table.version,
            value_type: field.value_type.to_string(),
            description: field.description.clone(),
            source: SourceLineage {
                name: source.name.clone(),
                format: format!("{:?}", source.format).to_lowercase(),
                location,
                timestamp_field: source.timestamp_field.clone(),
                schema_hash,
                schema_note,
            },
            transformation,
            services,
            runs: registry.runs.get(&view.name).cloned().unwrap_or_default(),
        })
    }
}
