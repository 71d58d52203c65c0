//! [`FeatureStore`]: everything the CLI and the server do, as library calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quiver_core::FeatureView;
use quiver_online::{OnlineStore, ViewTable};

use crate::config::Project;
use crate::error::{Error, Result};
use crate::registry::{RegisteredView, Registry};

/// A feature view ready to serve: its definition and the online table it lives in.
#[derive(Clone, Debug)]
pub struct ServedView {
    pub definition: Arc<FeatureView>,
    pub table: ViewTable,
    /// Field name → position, so serving a 250-feature request is not 250 linear scans.
    pub positions: Arc<std::collections::HashMap<String, usize>>,
}

impl ServedView {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }
}

/// An opened project: configuration, the applied registry (if any) and the online store.
pub struct FeatureStore {
    project: Project,
    registry: Option<Registry>,
    views: BTreeMap<String, ServedView>,
    online: Arc<dyn OnlineStore>,
}

impl FeatureStore {
    /// Opens the project in `dir` (reads `quiver.yaml`, the registry, connects the online store).
    pub async fn open(dir: impl AsRef<Path>) -> Result<FeatureStore> {
        let project = Project::load(dir.as_ref())?;
        Self::from_project(project).await
    }

    /// Opens an already-loaded project configuration.
    pub async fn from_project(project: Project) -> Result<FeatureStore> {
        let online = quiver_online::open(&project.config.online_store, &project.dir).await?;
        Self::with_online_store(project, online)
    }

    /// Opens a project with a caller-provided online store (tests, embedding).
    pub fn with_online_store(
        project: Project,
        online: Arc<dyn OnlineStore>,
    ) -> Result<FeatureStore> {
        let registry = Registry::load(&project.resolve(&project.config.registry))?;
        let mut store = FeatureStore {
            project,
            registry: None,
            views: BTreeMap::new(),
            online,
        };
        store.set_registry(registry)?;
        Ok(store)
    }

    pub(crate) fn set_registry(&mut self, registry: Option<Registry>) -> Result<()> {
        let default_ttl = self.project.config.online_store.default_ttl()?;
        self.views = registry
            .iter()
            .flat_map(|r| r.feature_views.values())
            .map(|rv: &RegisteredView| {
                let def = &rv.definition;
                let served = ServedView {
                    table: ViewTable {
                        project: self.project.config.project.clone(),
                        view: def.name.clone(),
                        version: rv.version,
                        types: def.value_types().into(),
                        ttl: def.ttl.or(default_ttl),
                    },
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
        self.registry = registry;
        Ok(())
    }

    /// Re-reads the registry file (after another process ran `quiver apply`).
    pub fn reload_registry(&mut self) -> Result<()> {
        let registry = Registry::load(&self.registry_path())?;
        self.set_registry(registry)
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn project_name(&self) -> &str {
        &self.project.config.project
    }

    pub fn project_dir(&self) -> &Path {
        &self.project.dir
    }

    pub fn registry_path(&self) -> PathBuf {
        self.project.resolve(&self.project.config.registry)
    }

    /// The applied registry, or an error telling the user to run `quiver apply`.
    pub fn registry(&self) -> Result<&Registry> {
        self.registry.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "project `{}` has no registry yet; run `quiver apply` first",
                self.project_name()
            ))
        })
    }

    pub fn online_store(&self) -> &Arc<dyn OnlineStore> {
        &self.online
    }

    /// A registered view, or a not-found error naming it and the known views.
    pub fn view(&self, name: &str) -> Result<&ServedView> {
        self.registry()?;
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
}
