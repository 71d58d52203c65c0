//! `quiver rollback VIEW --to N`: make a kept version of a view active again, with its
//! definition as the registry kept it. The plan (what changes, whether the version still has
//! online records) comes first; applying it is one registry write, which a running server picks
//! up like any apply.
//!
//! The definitions files are not touched: until they describe the version rolled back to, the
//! next `quiver plan` shows the difference and `quiver apply` rolls forward again.

use serde::Serialize;

use crate::error::Result;
use crate::registry::{ApplyContext, Change, Registry};
use crate::store::FeatureStore;

/// What a rollback changes (or changed).
#[derive(Clone, Debug, Serialize)]
pub struct RollbackPlan {
    pub view: String,
    /// The version served before (`None`: the view had been removed).
    pub from: Option<u32>,
    pub to: u32,
    /// Empty: version `to` is already served as kept; nothing to do.
    pub changes: Vec<Change>,
    /// The registry serial before, and after when applied.
    pub serial: u64,
    /// Online records of version `to` (0: none — pruned, or never materialized).
    pub online_keys: u64,
    /// Set when the online store could not be counted.
    pub online_error: Option<String>,
    /// Whether the registry was written.
    pub applied: bool,
}

impl RollbackPlan {
    /// Whether the version to serve has no online records (to be materialized).
    pub fn needs_materialize(&self) -> bool {
        self.online_error.is_none() && self.online_keys == 0
    }
}

impl FeatureStore {
    /// What rolling `view` back to version `to` would change, nothing written.
    pub async fn plan_rollback(&self, view: &str, to: u32) -> Result<RollbackPlan> {
        let current = self.current_registry().await?;
        let (_, changes) = current.rollback(view, to, &ApplyContext::current())?;
        self.rollback_plan(&current, view, to, changes).await
    }

    /// Rolls `view` back (or forward) to version `to`; see the module docs.
    pub async fn rollback(&mut self, view: &str, to: u32) -> Result<RollbackPlan> {
        let current = self.current_registry().await?;
        let (next, changes) = current.rollback(view, to, &ApplyContext::current())?;
        let mut plan = self.rollback_plan(&current, view, to, changes).await?;
        if !plan.changes.is_empty() {
            self.registry_store().commit(current.serial, &next).await?;
            plan.serial = next.serial;
            plan.applied = true;
            self.set_registry(Some(next))?;
        }
        Ok(plan)
    }

    /// The registry as it is now (another process may have applied since this store was
    /// opened).
    async fn current_registry(&self) -> Result<Registry> {
        match self.registry_store().load().await? {
            Some(r) => Ok(r),
            None => self.registry().cloned(),
        }
    }

    async fn rollback_plan(
        &self,
        current: &Registry,
        view: &str,
        to: u32,
        changes: Vec<Change>,
    ) -> Result<RollbackPlan> {
        let (online_keys, online_error) =
            match self.online_store().table_sizes(self.project_name()).await {
                Ok(sizes) => (
                    sizes
                        .iter()
                        .filter(|s| s.view == view && s.version == to)
                        .map(|s| s.keys)
                        .sum(),
                    None,
                ),
                Err(e) => (0, Some(e.to_string())),
            };
        Ok(RollbackPlan {
            view: view.to_string(),
            from: current.feature_views.get(view).map(|v| v.version),
            to,
            changes,
            serial: current.serial,
            online_keys,
            online_error,
            applied: false,
        })
    }
}
