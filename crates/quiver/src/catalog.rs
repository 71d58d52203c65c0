//! The resolved catalog: the applied registry with what every operation needs ready — each view's
//! online table and field positions, each source resolved (its file path against the project
//! directory, a PostgreSQL source's connection URL from its `env:` variable or the offline
//! store's). Built once per registry version and shared (`Arc`) by every call, so no operation
//! reads the registry file or re-resolves a source on its own.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use quiver_core::{FeatureRef, FeatureView, ScalarType, Source, SourceFormat};
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
    /// Every version whose definition the registry kept, by (view, version): what
    /// `view@vN:feature` reads.
    versions: BTreeMap<(String, u32), ServedView>,
    /// Per source: resolved, or why it cannot be (reported when a view reads it).
    sources: BTreeMap<String, std::result::Result<ResolvedSource, String>>,
}

impl Catalog {
    /// Resolves `registry` for `project`.
    pub fn new(project: &Project, registry: Registry) -> Result<Catalog> {
        let default_ttl = project.config.online_store.default_ttl()?;
        let served = |def: &FeatureView, version: u32| ServedView {
            table: ViewTable {
                project: project.config.project.clone(),
                view: def.name.clone(),
                version,
                types: def.value_types().into(),
                ttl: def.ttl.or(default_ttl),
            },
            offline: OfflineTable::for_view(&project.config.project, def, version),
            definition: Arc::new(def.clone()),
            positions: Arc::new(
                def.fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name.clone(), i))
                    .collect(),
            ),
        };
        let views: BTreeMap<String, ServedView> = registry
            .feature_views
            .values()
            .map(|rv| {
                (
                    rv.definition.name.clone(),
                    served(&rv.definition, rv.version),
                )
            })
            .collect();
        // Every kept version, the active ones shared with `views`.
        let mut versions = BTreeMap::new();
        for (name, history) in &registry.versions {
            for (&version, kept) in &history.definitions {
                let view = match views.get(name) {
                    Some(active) if active.table.version == version => active.clone(),
                    _ => served(&kept.definition, version),
                };
                versions.insert((name.clone(), version), view);
            }
        }
        for (name, view) in &views {
            versions
                .entry((name.clone(), view.table.version))
                .or_insert_with(|| view.clone());
        }
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
            versions,
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

    /// Version `version` of `name` (`None`: the active one), or a not-found error naming the
    /// versions that can be read.
    pub fn view_at(&self, name: &str, version: Option<u32>) -> Result<&ServedView> {
        let Some(version) = version else {
            return self.view(name);
        };
        if let Some(served) = self.versions.get(&(name.to_string(), version)) {
            return Ok(served);
        }
        let known: Vec<String> = self
            .versions
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| format!("v{v}"))
            .collect();
        Err(Error::NotFound(if known.is_empty() {
            format!("unknown feature view `{name}` (asked for `{name}@v{version}`)")
        } else {
            let history = self.registry.versions.get(name);
            let older = history.is_some_and(|h| h.fingerprints.contains_key(&version));
            format!(
                "feature view `{name}` has no readable version {version}{} (readable: {})",
                if older {
                    " (it was applied before Quiver kept each version's definition)"
                } else {
                    ""
                },
                known.join(", ")
            )
        }))
    }

    /// The view a reference reads: its pinned version, or the active one.
    pub fn view_of(&self, reference: &FeatureRef) -> Result<&ServedView> {
        self.view_at(&reference.view, reference.version)
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
