//! Looking after the online store's contents: invalidation (by view, version and entity), the
//! size of each view version, and pruning the versions no longer served.
//!
//! Redis deletes with incremental `SCAN … MATCH` and `UNLINK` in batches, never `KEYS`; the
//! embedded store deletes a key range in one transaction. Either way the count of records that
//! went is reported.

use quiver_core::{EntityKey, KeyValue};
use quiver_online::{TableSize, ViewTable};

use crate::error::{Error, Result};
use crate::store::FeatureStore;

/// What `invalidate` removed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InvalidateReport {
    pub view: String,
    pub version: u32,
    /// Entities asked for (0: the whole view version).
    pub entities: usize,
    /// Records deleted.
    pub removed: u64,
}

/// One view version's online records, and whether it is the version served.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OnlineVersion {
    pub view: String,
    pub version: u32,
    pub keys: u64,
    pub bytes: u64,
    /// The registry's active version of a view it still defines.
    pub served: bool,
}

/// What `prune_online` removed (or would remove, in a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneOnlineReport {
    pub removed: Vec<OnlineVersion>,
    /// Unserved versions kept by `keep_versions`.
    pub kept: Vec<OnlineVersion>,
    pub dry_run: bool,
    /// With `offline`: the offline tables of the removed versions that were dropped (or, in a
    /// dry run, would be), by qualified name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offline_dropped: Vec<String>,
}

impl FeatureStore {
    /// The table of `view` at `version` (the active one when `None`). A version no longer
    /// defined still names its records: deleting needs only the key prefix.
    fn version_table(&self, view: &str, version: Option<u32>) -> Result<ViewTable> {
        let served = self.view(view);
        match (served, version) {
            (Ok(s), None) => Ok(s.table.clone()),
            (Ok(s), Some(v)) => Ok(ViewTable {
                version: v,
                ..s.table.clone()
            }),
            (Err(_), Some(v)) if self.registry()?.versions.contains_key(view) => Ok(ViewTable {
                project: self.project_name().to_string(),
                view: view.to_string(),
                version: v,
                types: Vec::new().into(),
                ttl: None,
            }),
            (Err(e), _) => Err(e),
        }
    }

    /// Deletes the online records of `view` (at `version`, default the served one): of the
    /// given entities (column-major rows, join key name → values, like a request), or all of
    /// them when `entities` is empty.
    pub async fn invalidate(
        &self,
        view: &str,
        version: Option<u32>,
        entities: &[(String, Vec<KeyValue>)],
    ) -> Result<InvalidateReport> {
        let table = self.version_table(view, version)?;
        let store = self.online_store();
        let (count, removed) = if entities.is_empty() {
            (0, store.delete_table(&table).await?)
        } else {
            // Keys are built with the served definition's join keys (a version keeps its
            // entities: changing them makes a new view, not a new version).
            let keys: Vec<EntityKey> = match self.view(view) {
                Ok(served) => crate::serving::plan::view_keys(served, entities)?,
                Err(_) => {
                    return Err(Error::InvalidRequest(format!(
                        "feature view `{view}` is no longer defined; invalidate its version {} whole (without entities)",
                        table.version
                    )));
                }
            };
            (keys.len(), store.delete(&table, &keys).await?)
        };
        tracing::info!(
            view,
            version = table.version,
            entities = count,
            removed,
            "invalidated"
        );
        Ok(InvalidateReport {
            view: view.to_string(),
            version: table.version,
            entities: count,
            removed,
        })
    }

    /// Every view version the online store holds records of, with its size; served versions
    /// (the active one, and those a feature service pins) are marked, and so is the window
    /// state of a served aggregation view (`{view}#window`).
    pub async fn online_versions(&self) -> Result<Vec<OnlineVersion>> {
        let sizes: Vec<TableSize> = self.online_store().table_sizes(self.project_name()).await?;
        let registry = self.registry().ok();
        Ok(sizes
            .into_iter()
            .map(|s| {
                // A view's window state (`{view}#window`, pushes into aggregations) is served
                // with its view version.
                let view = s.view.strip_suffix("#window").unwrap_or(&s.view);
                let served = registry.is_some_and(|r| r.served_versions(view).contains(&s.version));
                OnlineVersion {
                    view: s.view,
                    version: s.version,
                    keys: s.keys,
                    bytes: s.bytes,
                    served,
                }
            })
            .collect())
    }

    /// How many versions of `view` keep their online records, served ones included: the
    /// view's `max_versions`, else the project's; `None`: no bound.
    pub fn max_versions(&self, view: &str) -> Option<u32> {
        self.view(view)
            .ok()
            .and_then(|v| v.definition.max_versions)
            .or(self.project().config.max_versions)
    }

    /// Deletes the online records of view versions that are not served, keeping the newest
    /// `keep_versions` unserved versions of each view (0: keep none; `None`: as many as the
    /// view's `max_versions` leaves beside its served versions, none when it has no bound).
    /// A served version is never touched. `dry_run` only reports. A pruned version's
    /// incremental watermark goes too, so materializing it again starts from the beginning.
    pub async fn prune_online(
        &self,
        keep_versions: Option<usize>,
        dry_run: bool,
    ) -> Result<PruneOnlineReport> {
        self.prune_versions(keep_versions, dry_run, false, |_| true)
            .await
    }

    /// [`prune_online`](Self::prune_online), also dropping the offline tables (built history)
    /// of the versions it removes.
    pub async fn prune_online_and_offline(
        &self,
        keep_versions: Option<usize>,
        dry_run: bool,
    ) -> Result<PruneOnlineReport> {
        self.prune_versions(keep_versions, dry_run, true, |_| true)
            .await
    }

    /// After an apply: prunes the views with a `max_versions` bound down to it.
    pub(crate) async fn prune_beyond_max_versions(&self) -> Result<PruneOnlineReport> {
        self.prune_versions(None, false, false, |view| self.max_versions(view).is_some())
            .await
    }

    async fn prune_versions(
        &self,
        keep_versions: Option<usize>,
        dry_run: bool,
        offline: bool,
        include: impl Fn(&str) -> bool,
    ) -> Result<PruneOnlineReport> {
        let mut versions = self.online_versions().await?;
        versions.retain(|v| include(&v.view));
        // Newest first within each view, so the first unserved ones are the kept ones.
        versions.sort_by(|a, b| a.view.cmp(&b.view).then(b.version.cmp(&a.version)));
        let registry = self.registry().ok();
        let keep_of = |view: &str| -> usize {
            keep_versions.unwrap_or_else(|| match self.max_versions(view) {
                None => 0,
                Some(max) => {
                    let served = registry.map_or(0, |r| r.served_versions(view).len());
                    (max as usize).saturating_sub(served)
                }
            })
        };
        let mut report = PruneOnlineReport {
            dry_run,
            ..PruneOnlineReport::default()
        };
        let mut kept_of: Option<(String, usize)> = None;
        for v in versions {
            if v.served {
                continue;
            }
            let kept = match &mut kept_of {
                Some((view, n)) if *view == v.view => n,
                _ => &mut kept_of.insert((v.view.clone(), 0)).1,
            };
            if *kept < keep_of(&v.view) {
                *kept += 1;
                report.kept.push(v);
                continue;
            }
            if !dry_run {
                let table = ViewTable {
                    project: self.project_name().to_string(),
                    view: v.view.clone(),
                    version: v.version,
                    types: Vec::new().into(),
                    ttl: None,
                };
                let removed = self.online_store().delete_table(&table).await?;
                tracing::info!(view = %v.view, version = v.version, removed, "pruned online records");
            }
            if offline {
                // Dropping needs only the table's name.
                let table = quiver_offline::store::OfflineTable {
                    project: self.project_name().to_string(),
                    view: v.view.clone(),
                    version: v.version,
                    schema: std::sync::Arc::new(arrow_schema::Schema::empty()),
                    join_keys: Vec::new(),
                };
                if !dry_run {
                    self.offline_store().await?.drop_table(&table).await?;
                    tracing::info!(table = %table.qualified_name(), "dropped offline table");
                }
                report.offline_dropped.push(table.qualified_name());
            }
            report.removed.push(v);
        }
        if !dry_run && !report.removed.is_empty() {
            self.forget_watermarks(&report.removed).await?;
        }
        Ok(report)
    }

    /// Drops the incremental watermarks of pruned versions from the registry.
    async fn forget_watermarks(&self, pruned: &[OnlineVersion]) -> Result<()> {
        let keys: Vec<String> = pruned
            .iter()
            .map(|v| crate::materialize::watermark_key(&v.view, v.version))
            .collect();
        let registry = self.registry()?;
        if !keys.iter().any(|k| registry.watermarks.contains_key(k)) {
            return Ok(());
        }
        self.registry_store()
            .update(move |current| {
                for k in &keys {
                    current.watermarks.remove(k);
                }
            })
            .await?;
        Ok(())
    }
}
