//! [`FeatureStore`]: everything the CLI and the server do, as library calls, on a store that owns
//! its parts.
//!
//! A `FeatureStore` holds the project configuration, the resolved [`Catalog`] (absent until
//! `quiver apply` ran), the online store and the offline store. Each part is opened once and
//! shared by every call: the online store when the project is opened, the offline store on first
//! use (so commands that never touch it, such as `quiver get`, need no PostgreSQL), after which
//! its connection pool (PostgreSQL) or per-table locks (Parquet) serve every call. The operations
//! — `apply`, `materialize`, serving, `build`/`historical`, `prune` — are modules that depend on
//! this one and never on each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quiver_core::{FeatureRef, ScalarType};
use quiver_offline::store::{OfflineStore, ParquetOfflineStore, PostgresOfflineStore};
use quiver_online::OnlineStore;
use tokio::sync::OnceCell;

use crate::catalog::{Catalog, ResolvedSource, ServedView};
use crate::config::{OfflineStoreConfig, Project};
use crate::error::{Error, Result};
use crate::records::Records;
use crate::registry::Registry;
use crate::registry_store::RegistryStore;
use crate::selection::FeatureSelection;
use crate::serving::LayeredReader;

/// An opened project: configuration, the resolved catalog (if applied) and the stores.
pub struct FeatureStore {
    project: Project,
    catalog: Option<Arc<Catalog>>,
    online: Arc<dyn OnlineStore>,
    offline: Arc<OfflineHandle>,
    /// Online reads, behind the fallback layer.
    reader: Arc<LayeredReader>,
    /// Record namespaces, predictions and their export queues.
    pub(crate) records: Arc<Records>,
    /// Where the registry is kept (file or PostgreSQL).
    registry_store: Arc<RegistryStore>,
}

/// The offline store, opened on first use and then shared.
pub struct OfflineHandle {
    config: OfflineStoreConfig,
    dir: PathBuf,
    store: OnceCell<Arc<dyn OfflineStore>>,
}

impl OfflineHandle {
    fn new(project: &Project, store: Option<Arc<dyn OfflineStore>>) -> OfflineHandle {
        OfflineHandle {
            config: project.config.offline_store.clone(),
            dir: project.dir.clone(),
            store: match store {
                Some(store) => OnceCell::new_with(Some(store)),
                None => OnceCell::new(),
            },
        }
    }

    /// The store, opening it on the first call.
    pub async fn get(&self) -> Result<Arc<dyn OfflineStore>> {
        let store = self
            .store
            .get_or_try_init(|| async {
                Ok::<_, Error>(match &self.config {
                    OfflineStoreConfig::Parquet(p) => {
                        let path = if Path::new(&p.path).is_absolute() {
                            PathBuf::from(&p.path)
                        } else {
                            self.dir.join(&p.path)
                        };
                        Arc::new(ParquetOfflineStore::new(path)) as Arc<dyn OfflineStore>
                    }
                    OfflineStoreConfig::Postgres(p) => {
                        Arc::new(PostgresOfflineStore::connect(p).await?)
                    }
                })
            })
            .await?;
        Ok(store.clone())
    }
}

impl FeatureStore {
    /// Opens the project in `dir` (reads `quiver.yaml`, the registry, connects the online store).
    pub async fn open(dir: impl AsRef<Path>) -> Result<FeatureStore> {
        let project = Project::load(dir.as_ref())?;
        Self::from_project(project).await
    }

    /// Opens the project's registry and offline store but not its online store: for work that
    /// reads only those (`quiver status`, `quiver skew`), so it runs beside a `quiver serve`
    /// that holds an embedded online store's file. Online calls fail, saying so.
    pub async fn open_offline(dir: impl AsRef<Path>) -> Result<FeatureStore> {
        let project = Project::load(dir.as_ref())?;
        let online = Arc::new(NotOpened(project.config.online_store.kind()));
        Self::with_stores(project, online, None).await
    }

    /// Opens an already-loaded project configuration.
    pub async fn from_project(project: Project) -> Result<FeatureStore> {
        let online = quiver_online::open(&project.config.online_store, &project.dir).await?;
        Self::with_stores(project, online, None).await
    }

    /// Opens a project with caller-provided stores (tests, embedding). `offline: None` opens the
    /// configured offline store on first use.
    pub async fn with_stores(
        project: Project,
        online: Arc<dyn OnlineStore>,
        offline: Option<Arc<dyn OfflineStore>>,
    ) -> Result<FeatureStore> {
        let registry_store = Arc::new(RegistryStore::open(&project).await?);
        let registry = registry_store.load().await?;
        let offline = Arc::new(OfflineHandle::new(&project, offline));
        let reader = Arc::new(LayeredReader::new(
            online.clone(),
            offline.clone(),
            project.config.serving.clone(),
        ));
        let records = Arc::new(Records::new(&project, online.records())?);
        let mut store = FeatureStore {
            project,
            catalog: None,
            online,
            offline,
            reader,
            records,
            registry_store,
        };
        store.set_registry(registry)?;
        Ok(store)
    }

    /// The same stores with the registry read again (after another process ran `quiver apply`):
    /// what a long-running server swaps in.
    pub async fn reloaded(&self) -> Result<FeatureStore> {
        let registry = self.registry_store.load().await?;
        let mut store = FeatureStore {
            project: self.project.clone(),
            catalog: None,
            online: self.online.clone(),
            offline: self.offline.clone(),
            reader: self.reader.clone(),
            records: self.records.clone(),
            registry_store: self.registry_store.clone(),
        };
        store.set_registry(registry)?;
        Ok(store)
    }

    pub(crate) fn set_registry(&mut self, registry: Option<Registry>) -> Result<()> {
        self.catalog = match registry {
            Some(r) => Some(Arc::new(Catalog::new(&self.project, r)?)),
            None => None,
        };
        Ok(())
    }

    /// Re-reads the registry in place.
    pub async fn reload_registry(&mut self) -> Result<()> {
        let registry = self.registry_store.load().await?;
        self.set_registry(registry)
    }

    /// Where the registry is kept.
    pub fn registry_store(&self) -> &Arc<RegistryStore> {
        &self.registry_store
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

    /// The resolved catalog, or an error telling the user to run `quiver apply`.
    pub fn catalog(&self) -> Result<&Arc<Catalog>> {
        self.catalog.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "project `{}` has no registry yet; run `quiver apply` first",
                self.project_name()
            ))
        })
    }

    /// The applied registry, or an error telling the user to run `quiver apply`.
    pub fn registry(&self) -> Result<&Registry> {
        Ok(self.catalog()?.registry())
    }

    pub fn online_store(&self) -> &Arc<dyn OnlineStore> {
        &self.online
    }

    /// The offline store, opened on the first call and shared by every later one.
    pub async fn offline_store(&self) -> Result<Arc<dyn OfflineStore>> {
        self.offline.get().await
    }

    /// The reader serving goes through: the online store behind the fallback layer.
    /// Serving statistics since the store was opened (kept across registry reloads).
    pub fn stats(&self) -> &Arc<crate::stats::ServingStats> {
        self.reader.stats()
    }

    pub fn reader(&self) -> &Arc<LayeredReader> {
        &self.reader
    }

    /// A registered view, or a not-found error naming it and the known views.
    pub fn view(&self, name: &str) -> Result<&ServedView> {
        self.catalog()?.view(name)
    }

    /// Version `version` of a view (`None`: the active one), while the registry keeps its
    /// definition.
    pub fn view_at(&self, name: &str, version: Option<u32>) -> Result<&ServedView> {
        self.catalog()?.view_at(name, version)
    }

    /// The registered views (none before `quiver apply`).
    pub fn views(&self) -> impl Iterator<Item = &ServedView> {
        self.catalog.iter().flat_map(|c| c.views())
    }

    /// The resolved source a view reads.
    pub fn source_of(&self, view: &quiver_core::FeatureView) -> Result<&ResolvedSource> {
        self.catalog()?.source_of(view)
    }

    /// The type of a join key used by any registered view.
    pub fn join_key_type(&self, name: &str) -> Option<ScalarType> {
        self.catalog.as_ref()?.join_key_type(name)
    }

    /// Resolves a selection into feature references, checking every view and feature exists.
    pub fn resolve_features(&self, selection: &FeatureSelection) -> Result<Vec<FeatureRef>> {
        selection.resolve(self.catalog()?)
    }
}

/// The online store of a project opened with [`FeatureStore::open_offline`]: every call fails,
/// naming the store and why.
struct NotOpened(&'static str);

impl NotOpened {
    fn refuse(&self, what: &str) -> quiver_online::OnlineError {
        quiver_online::OnlineError::Unavailable {
            store: self.0,
            message: format!(
                "not opened: this command reads the registry and the offline store only ({what})"
            ),
        }
    }
}

#[async_trait::async_trait]
impl quiver_online::OnlineStoreRead for NotOpened {
    async fn read(
        &self,
        _table: &quiver_online::ViewTable,
        _keys: &[quiver_core::EntityKey],
    ) -> quiver_online::Result<Vec<Option<quiver_core::Record>>> {
        Err(self.refuse("read"))
    }

    async fn ping(&self) -> quiver_online::Result<std::time::Duration> {
        Err(self.refuse("ping"))
    }

    fn kind(&self) -> &'static str {
        self.0
    }
}

#[async_trait::async_trait]
impl quiver_online::OnlineStoreWrite for NotOpened {
    async fn write(
        &self,
        _table: &quiver_online::ViewTable,
        _rows: &[(quiver_core::EntityKey, quiver_core::Record)],
    ) -> quiver_online::Result<quiver_online::WriteSummary> {
        Err(self.refuse("write"))
    }
}
