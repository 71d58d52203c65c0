//! The resolved catalog: the applied registry with what every operation needs ready — each view's
//! online table and field positions, each source resolved (its file path against the project
//! directory, a PostgreSQL source's connection URL from its `env:` variable or the offline
//! store's). Built once per registry version and shared (`Arc`) by every call, so no operation
//! reads the registry file or re-resolves a source on its own.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use quiver_core::{FeatureView, ScalarType, Source, SourceFormat};
use quiver_offline::store::OfflineTable;
use quiver_online::ViewTable;

use crate::config::{OfflineStoreConfig, Project};
use crate::error::{Error, Result};
use crate::registry::Registry;

/// A feature view ready to serve: its definition and the online table it lives in.
#[derive(Clone, Debug)]
pub struct ServedView {
    pub definition: Arc<FeatureView>,
    pub table: ViewTable,
    /// The view version's offline table (history written by `build`, point lookups).
    pub offline: OfflineTable,
    /// Field name → position, so serving a 250-feature request is not 250 linear scans.
    pub positions: Arc<HashMap<String, usize>>,
}

impl ServedView {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }
}

/// A source with its location resolved.
#[derive(Clone, Debug)]
pub struct ResolvedSource {
    pub source: Source,
    /// The file, resolved against the project directory (unused by PostgreSQL sources).
    pub path: PathBuf,
}

/// The applied registry, resolved.
#[derive(Debug)]
pub struct Catalog {
    registry: Registry,
    views: BTreeMap<String, ServedView>,
    /// Per source: resolved, or why it cannot be (reported when a view reads it).
    sources: BTreeMap<String, std::result::Result<ResolvedSource, String>>,
}

impl Catalog {
    /// Resolves `registry` for `project`.
    pub fn new(project: &Project, registry: Registry) -> Result<Catalog> {
        let default_ttl = project.config.online_store.default_ttl()?;
        let views = registry
            .feature_views
            .values()
            .map(|rv| {
                let def = &rv.definition;
                let served = ServedView {
                    table: ViewTable {
                        project: project.config.project.clone(),
                        view: def.name.clone(),
                        version: rv.version,
                        types: def.value_types().into(),
                        ttl: def.ttl.or(default_ttl),
                    },
                    offline: OfflineTable::for_view(&project.config.project, def, rv.version),
                    definition: Arc::new(def.clone()),
                    positions: Arc::new(
                        def.fields
                            .iter()
                            .enumerate()
                            .map(|(i, f)| (f.name.clone(), i))
                            .collect(),
                    ),
                };
                (def.name.clone(), served)
            })
            .collect();
        let sources = registry
            .sources
            .iter()
            .map(|(name, source)| {
                let resolved = resolve_source(project, source.clone())
                    .map(|source| ResolvedSource {
                        path: project.resolve(&source.path),
                        source,
                    })
                    .map_err(|e| e.to_string());
                (name.clone(), resolved)
            })
            .collect();
        Ok(Catalog {
            registry,
            views,
            sources,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A registered view, or a not-found error naming it and the known views.
    pub fn view(&self, name: &str) -> Result<&ServedView> {
        self.views.get(name).ok_or_else(|| {
            let known: Vec<String> = self.views.keys().map(|k| format!("`{k}`")).collect();
            Error::NotFound(format!(
                "unknown feature view `{name}` (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    pub fn views(&self) -> impl Iterator<Item = &ServedView> {
        self.views.values()
    }

    /// The resolved source a view reads.
    pub fn source_of(&self, view: &FeatureView) -> Result<&ResolvedSource> {
        match self.sources.get(&view.source) {
            Some(Ok(resolved)) => Ok(resolved),
            Some(Err(message)) => Err(Error::Config(message.clone())),
            None => Err(Error::Internal(format!(
                "source `{}` missing from registry",
                view.source
            ))),
        }
    }

    /// The type of a join key used by any registered view.
    pub fn join_key_type(&self, name: &str) -> Option<ScalarType> {
        self.views()
            .flat_map(|v| v.definition.join_keys.iter())
            .find(|k| k.name == name)
            .map(|k| k.key_type)
    }
}

/// Fills a PostgreSQL source's connection URL: `env:VAR` reads the variable, absent means the
/// PostgreSQL offline store's URL. Other sources are returned as they are.
pub fn resolve_source(project: &Project, mut source: Source) -> Result<Source> {
    if source.format != SourceFormat::Postgres {
        return Ok(source);
    }
    let url = match source.url.as_deref() {
        Some(u) => match u.strip_prefix("env:") {
            Some(var) => std::env::var(var).map_err(|_| {
                Error::Config(format!(
                    "source `{}`: environment variable `{var}` (its `url`) is not set",
                    source.name
                ))
            })?,
            None => u.to_string(),
        },
        None => match &project.config.offline_store {
            OfflineStoreConfig::Postgres(p) => p.url.clone(),
            _ => {
                return Err(Error::Config(format!(
                    "source `{}` is a postgres source without `url`, and the offline store is not postgres",
                    source.name
                )));
            }
        },
    };
    source.url = Some(url);
    Ok(source)
}
