//! `quiver warm`: loads the online store from the offline layer before traffic arrives ("pre-load
//! the top entities at market open"). For each view, the entities — given in a file, all those
//! in the offline store, or the N with the most recent events — get what a fallback would
//! answer now (the offline store's latest row for plain views, the features computed from the
//! source for derived views), written newer-wins, so a fresher online value is never replaced.

use std::time::Instant;

use arrow_array::RecordBatch;
use quiver_core::EntityKey;
use quiver_online::WriteSummary;

use crate::error::Result;
use crate::store::FeatureStore;

/// Entities per offline lookup and online write.
const CHUNK: usize = 1_000;

/// Which entities to warm.
#[derive(Clone, Debug)]
pub enum WarmEntities {
    /// Rows with each view's join-key columns (an entity file).
    Rows(RecordBatch),
    /// Every entity in the view's offline table.
    All,
    /// The N entities with the most recent events in the view's offline table.
    Top(usize),
}

/// What to warm.
#[derive(Clone, Debug)]
pub struct WarmOptions {
    /// Views to warm; empty means all.
    pub views: Vec<String>,
    pub entities: WarmEntities,
}

/// What `warm` did for one view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WarmReport {
    pub view: String,
    pub version: u32,
    /// Entities asked for.
    pub entities: u64,
    /// Entities the offline layer had nothing for.
    pub missing: u64,
    pub written: u64,
    /// Not written: the online store holds a newer value.
    pub skipped_older: u64,
    pub seconds: f64,
}

impl FeatureStore {
    /// Warms the selected views (see the module docs).
    pub async fn warm(&self, options: &WarmOptions) -> Result<Vec<WarmReport>> {
        let catalog = self.catalog()?.clone();
        let names: Vec<String> = if options.views.is_empty() {
            catalog.views().map(|v| v.definition.name.clone()).collect()
        } else {
            for v in &options.views {
                catalog.view(v)?;
            }
            options.views.clone()
        };
        let mut reports = Vec::with_capacity(names.len());
        for name in names {
            let started = Instant::now();
            let served = catalog.view(&name)?;
            let keys = self.warm_keys(served, &options.entities).await?;
            let now = quiver_online::now_ns();
            let mut report = WarmReport {
                view: name.clone(),
                version: served.table.version,
                entities: keys.len() as u64,
                ..WarmReport::default()
            };
            let mut total = WriteSummary::default();
            for chunk in keys.chunks(CHUNK) {
                let answers = self
                    .reader()
                    .offline_answers(&catalog, served, chunk, now)
                    .await?;
                let rows: Vec<_> = chunk
                    .iter()
                    .zip(answers)
                    .filter_map(|(k, r)| r.map(|r| (k.clone(), r)))
                    .collect();
                report.missing += (chunk.len() - rows.len()) as u64;
                if !rows.is_empty() {
                    total += self.online_store().write(&served.table, &rows).await?;
                }
            }
            report.written = total.written as u64;
            report.skipped_older = total.skipped_older as u64;
            report.seconds = started.elapsed().as_secs_f64();
            reports.push(report);
        }
        Ok(reports)
    }

    async fn warm_keys(
        &self,
        served: &crate::catalog::ServedView,
        entities: &WarmEntities,
    ) -> Result<Vec<EntityKey>> {
        let view = &served.definition;
        let limit = match entities {
            WarmEntities::Rows(rows) => {
                let mut keys = quiver_offline::engine::entity_keys(view, rows, "entity rows")?;
                let mut seen = std::collections::HashSet::new();
                keys.retain(|k| seen.insert(k.clone()));
                return Ok(keys);
            }
            WarmEntities::All => usize::MAX,
            WarmEntities::Top(n) => *n,
        };
        let store = self.offline_store().await?;
        store.ensure_table(&served.offline).await?;
        let batches = store.read_range(&served.offline, None, None).await?;
        let mut keys = quiver_offline::engine::keys_by_recency(view, &batches)?;
        keys.truncate(limit);
        Ok(keys)
    }
}
