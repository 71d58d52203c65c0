//! `quiver apply`: validate definitions, check sources, record them in the registry.

use quiver_core::{Definitions, FeatureView};

use crate::definitions::load_definitions;
use crate::error::{Error, Result};
use crate::registry::{ApplyContext, Change, ChangeAction, Registry};
use crate::store::FeatureStore;

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Changes recorded (empty: definitions unchanged, registry untouched).
    pub changes: Vec<Change>,
    /// Registry serial after the apply.
    pub serial: u64,
    /// Non-fatal findings (e.g. a source file that does not exist yet).
    pub warnings: Vec<String>,
    /// The applied view versions.
    pub versions: Vec<(String, u32)>,
    /// Per view, what its offline table is (e.g. `TimescaleDB hypertable ...`, `table ... with
    /// index on (...)`, `parquet directory ...`), created if missing.
    pub offline_tables: Vec<(String, String)>,
    /// Online records of view versions no longer served (after a removal or a version bump in
    /// this apply): what `quiver prune-online` would delete. `Err`: the store could not say.
    pub unserved_online: std::result::Result<Vec<crate::online_admin::OnlineVersion>, String>,
    /// Versions pruned from the online store because this apply put them beyond their view's
    /// `max_versions` (empty: nothing was). `Err`: the pruning failed (the apply stands).
    pub pruned_online: std::result::Result<Vec<crate::online_admin::OnlineVersion>, String>,
}

/// What `apply` would do, without doing it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What would be recorded (empty: the definitions are what the registry holds).
    pub changes: Vec<Change>,
    /// The registry's serial now; an apply that changes something makes it `serial + 1`.
    pub serial: u64,
    /// Non-fatal findings (e.g. a source file that does not exist yet).
    pub warnings: Vec<String>,
    /// Online records of view versions served now that the apply would stop serving (a
    /// removed view, a version bump). `Err`: the store could not say.
    pub unreferenced_online: std::result::Result<Vec<crate::online_admin::OnlineVersion>, String>,
}

/// Whether changes remove a view or bump a version (so online records stop being served).
fn leaves_versions_behind(changes: &[Change]) -> bool {
    changes.iter().any(|c| {
        c.kind == "feature view"
            && (c.action == ChangeAction::Removed
                || c.detail.as_deref().is_some_and(|d| d.contains(" -> v")))
    })
}

/// Refuses an apply whose feature services pin a version the registry cannot read.
fn refuse_bad_pins(next: &Registry) -> Result<()> {
    let errors = next.pinned_reference_errors();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(quiver_core::CoreError::Definitions(errors).into())
    }
}

impl FeatureStore {
    fn load_project_definitions(&self) -> Result<Definitions> {
        load_definitions(&self.project().resolve(&self.project().config.features))
    }

    /// Loads `features/*.yaml`, validates them and their sources, and records them.
    pub async fn apply(&mut self) -> Result<ApplyReport> {
        let defs = self.load_project_definitions()?;
        self.apply_definitions(defs).await
    }

    /// [`apply`](Self::apply) only if the registry is still at serial `expected` (what a plan
    /// was made against); otherwise [`Error::Conflict`], nothing written.
    pub async fn apply_if_serial(&mut self, expected: u64) -> Result<ApplyReport> {
        let defs = self.load_project_definitions()?;
        self.apply_definitions_if(defs, Some(expected)).await
    }

    /// What [`apply`](Self::apply) would record, checked the same way, without writing anything.
    pub async fn plan(&self) -> Result<Plan> {
        let defs = self.load_project_definitions()?;
        self.plan_definitions(&defs).await
    }

    /// [`plan`](Self::plan) for already-built definitions.
    pub async fn plan_definitions(&self, defs: &Definitions) -> Result<Plan> {
        let warnings = self.check_sources(defs).await?;
        let current = self
            .registry_store()
            .load()
            .await?
            .unwrap_or_else(|| Registry::empty(self.project_name()));
        let (next, changes) = current.apply_with(defs, &ApplyContext::current());
        refuse_bad_pins(&next)?;
        let unreferenced_online = if leaves_versions_behind(&changes) {
            self.online_versions()
                .await
                .map(|versions| {
                    versions
                        .into_iter()
                        .filter(|v| {
                            v.served
                                && next.feature_views.get(&v.view).map(|r| r.version)
                                    != Some(v.version)
                        })
                        .collect()
                })
                .map_err(|e| e.to_string())
        } else {
            Ok(Vec::new())
        };
        Ok(Plan {
            changes,
            serial: current.serial,
            warnings,
            unreferenced_online,
        })
    }

    /// Records already-built definitions (library users who build them in code).
    pub async fn apply_definitions(&mut self, defs: Definitions) -> Result<ApplyReport> {
        self.apply_definitions_if(defs, None).await
    }

    /// Records `defs` against the registry as it is now, or, with `expected`, only if it is
    /// still at that serial. The write is a compare-and-swap under the registry's lock: an
    /// apply that raced another gets [`Error::Conflict`] instead of overwriting it.
    pub async fn apply_definitions_if(
        &mut self,
        defs: Definitions,
        expected: Option<u64>,
    ) -> Result<ApplyReport> {
        let warnings = self.check_sources(&defs).await?;
        let stored = self.registry_store().load().await?;
        let missing = stored.is_none();
        let current = stored.unwrap_or_else(|| Registry::empty(self.project_name()));
        if let Some(expected) = expected
            && expected != current.serial
        {
            return Err(Error::Conflict(format!(
                "registry changed since you planned: the plan was made at serial {expected} and the registry is at serial {}; run `quiver plan` again",
                current.serial
            )));
        }
        let (next, changes) = current.apply_with(&defs, &ApplyContext::current());
        refuse_bad_pins(&next)?;
        if !changes.is_empty() || missing {
            self.registry_store().commit(current.serial, &next).await?;
        }
        let versions = next
            .feature_views
            .iter()
            .map(|(k, v)| (k.clone(), v.version))
            .collect();
        let serial = next.serial;
        self.set_registry(Some(next))?;
        let offline = self.offline_store().await?;
        let mut offline_tables = Vec::new();
        for served in self.views() {
            let table = quiver_offline::store::OfflineTable::for_view(
                self.project_name(),
                &served.definition,
                served.table.version,
            );
            offline_tables.push((
                served.definition.name.clone(),
                offline.ensure_table(&table).await?,
            ));
        }
        // Only when this apply left a version behind: counting walks the online store's keys.
        let leaves_behind = leaves_versions_behind(&changes);
        let bounded = self.project().config.max_versions.is_some()
            || self.views().any(|v| v.definition.max_versions.is_some());
        let pruned_online = match leaves_behind && bounded {
            true => self
                .prune_beyond_max_versions()
                .await
                .map(|r| r.removed)
                .map_err(|e| e.to_string()),
            false => Ok(Vec::new()),
        };
        let unserved_online = match leaves_behind {
            true => self
                .online_versions()
                .await
                .map(|v| v.into_iter().filter(|v| !v.served).collect())
                .map_err(|e| e.to_string()),
            false => Ok(Vec::new()),
        };
        Ok(ApplyReport {
            changes,
            serial,
            warnings,
            versions,
            offline_tables,
            unserved_online,
            pruned_online,
        })
    }

    /// Checks that each view's source has the columns it needs with convertible types. A source
    /// file that does not exist yet is a warning: data may be produced after definitions.
    async fn check_sources(&self, defs: &Definitions) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        for view in defs.feature_views.values() {
            let source = &defs.sources[&view.source];
            let path = self.project().resolve(&source.path);
            let is_file = source.format != quiver_core::SourceFormat::Postgres;
            if is_file && !path.exists() {
                warnings.push(format!(
                    "source `{}`: file `{}` does not exist yet (feature view `{}` cannot be materialized until it does)",
                    source.name,
                    path.display(),
                    view.name
                ));
                continue;
            }
            let view: FeatureView = view.clone();
            let source = match crate::catalog::resolve_source(self.project(), source.clone()) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(format!("feature view `{}`: {e}", view.name));
                    continue;
                }
            };
            let result = tokio::task::spawn_blocking(move || {
                let fields = quiver_offline::engine::source_fields(&view);
                quiver_offline::check_source(&quiver_offline::ReadRequest {
                    path: &path,
                    source: &source,
                    join_keys: &view.join_keys,
                    fields: &fields,
                    inputs: &view.inputs,
                    start: None,
                    end: None,
                    sql: view.sql.as_deref(),
                })
                .map_err(|e| format!("feature view `{}`: {e}", view.name))
            })
            .await
            .map_err(|e| Error::Internal(format!("source check task failed: {e}")))?;
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(quiver_core::CoreError::Definitions(errors).into())
        }
    }
}
