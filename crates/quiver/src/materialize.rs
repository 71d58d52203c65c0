//! `quiver materialize`: the latest row per entity within a time window, from each view's source
//! into the online store, validated against the view's constraints, written in batches.

use std::time::Instant;

use quiver_core::{EntityKey, FeatureView, Record};
use quiver_online::WriteSummary;

use crate::error::{Error, Result};
use crate::store::FeatureStore;

/// Most rejection messages kept per view (the count is always exact).
const MAX_REPORTED_REJECTIONS: usize = 20;

/// What to materialize.
#[derive(Clone, Debug, Default)]
pub struct MaterializeOptions {
    /// Views to materialize; empty means all.
    pub views: Vec<String>,
    /// Only rows with event time >= start (ns UTC).
    pub start: Option<i64>,
    /// Only rows with event time < end (ns UTC); default: now.
    pub end: Option<i64>,
    /// Fail a view on its first invalid row instead of skipping and counting invalid rows.
    /// `None`: the project's `materialize.strict`.
    pub strict: Option<bool>,
}

/// Progress callbacks, so the CLI can draw bars without the library printing anything.
pub trait Progress: Send + Sync {
    fn view_started(&self, _view: &str, _entities: u64) {}
    fn advanced(&self, _rows: u64) {}
    fn view_finished(&self, _report: &ViewReport) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What happened to one view.
#[derive(Clone, Debug, Default)]
pub struct ViewReport {
    pub view: String,
    pub version: u32,
    pub rows_scanned: u64,
    pub rows_in_window: u64,
    /// Distinct entities whose latest row was valid.
    pub entities: u64,
    pub written: u64,
    /// Not written because the online store holds a newer event.
    pub skipped_older: u64,
    /// Entities whose latest row violated a constraint (not written).
    pub rejected: u64,
    /// The first rejection messages, each naming view, entity key, field and value.
    pub rejections: Vec<String>,
    pub seconds: f64,
}

/// What `materialize` did, per view.
#[derive(Clone, Debug, Default)]
pub struct MaterializeReport {
    pub views: Vec<ViewReport>,
}

/// Checks a row against the view's constraints; the error names view, entity, field and value.
pub fn validate_row(view: &FeatureView, key: &EntityKey, record: &Record) -> Result<(), String> {
    for (field, value) in view.fields.iter().zip(&record.values) {
        if let Err(problem) = field.constraints.check(value) {
            let keys: Vec<String> = view
                .join_keys
                .iter()
                .zip(&key.0)
                .map(|(k, v)| format!("{}={v}", k.name))
                .collect();
            return Err(format!(
                "feature view `{}`: entity `{}`: field `{}`: value `{}` {problem}",
                view.name,
                keys.join(","),
                field.name,
                value.display_short()
            ));
        }
    }
    Ok(())
}

impl FeatureStore {
    /// Materializes the selected views; see [`MaterializeOptions`].
    pub async fn materialize(
        &self,
        options: &MaterializeOptions,
        progress: &dyn Progress,
    ) -> Result<MaterializeReport> {
        let registry = self.registry()?;
        let names: Vec<String> = if options.views.is_empty() {
            registry.feature_views.keys().cloned().collect()
        } else {
            for v in &options.views {
                self.view(v)?;
            }
            options.views.clone()
        };
        let end = options.end.unwrap_or_else(quiver_online::now_ns);
        if let Some(start) = options.start
            && start >= end
        {
            return Err(Error::InvalidRequest(format!(
                "materialize window is empty: start {} is not before end {}",
                quiver_core::value::format_timestamp(start),
                quiver_core::value::format_timestamp(end)
            )));
        }
        let strict = options
            .strict
            .unwrap_or(self.project().config.materialize.strict);
        let mut report = MaterializeReport::default();
        for name in names {
            report.views.push(
                self.materialize_view(&name, options.start, end, strict, progress)
                    .await?,
            );
        }
        Ok(report)
    }

    async fn materialize_view(
        &self,
        name: &str,
        start: Option<i64>,
        end: i64,
        strict: bool,
        progress: &dyn Progress,
    ) -> Result<ViewReport> {
        let started = Instant::now();
        let served = self.view(name)?.clone();
        let view = served.definition.clone();
        let registry = self.registry()?;
        let source = registry.sources.get(&view.source).cloned().ok_or_else(|| {
            Error::Internal(format!("source `{}` missing from registry", view.source))
        })?;
        let source = self.resolve_source(source)?;
        let path = self.project().resolve(&source.path);
        let read_view = view.clone();
        if view.is_derived() {
            let derived = tokio::task::spawn_blocking(move || {
                crate::offline::evaluate_latest(&path, &source, &read_view, end)
            })
            .await
            .map_err(|e| Error::Internal(format!("source read task failed: {e}")))??;
            return self
                .write_materialized(name, &served, derived, strict, started, progress)
                .await;
        }
        let latest = tokio::task::spawn_blocking(move || {
            quiver_offline::read_latest(&quiver_offline::ReadRequest {
                path: &path,
                source: &source,
                join_keys: &read_view.join_keys,
                fields: &read_view.fields,
                start,
                end: Some(end),
                sql: read_view.sql.as_deref(),
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("source read task failed: {e}")))??;

        self.write_materialized(name, &served, latest, strict, started, progress)
            .await
    }

    async fn write_materialized(
        &self,
        name: &str,
        served: &crate::store::ServedView,
        latest: quiver_offline::LatestRows,
        strict: bool,
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<ViewReport> {
        let view = &served.definition;
        let mut report = ViewReport {
            view: name.to_string(),
            version: served.table.version,
            rows_scanned: latest.rows_scanned,
            rows_in_window: latest.rows_in_window,
            ..ViewReport::default()
        };
        let mut valid = Vec::with_capacity(latest.rows.len());
        for (key, record) in latest.rows {
            match validate_row(view, &key, &record) {
                Ok(()) => valid.push((key, record)),
                Err(msg) if strict => {
                    return Err(Error::InvalidRequest(format!(
                        "{msg} (strict mode: nothing written for this view)"
                    )));
                }
                Err(msg) => {
                    report.rejected += 1;
                    if report.rejections.len() < MAX_REPORTED_REJECTIONS {
                        tracing::warn!(view = name, rejection = %msg, "row rejected");
                        report.rejections.push(msg);
                    }
                }
            }
        }
        report.entities = valid.len() as u64;
        progress.view_started(name, valid.len() as u64);
        let batch = self.project().config.materialize.batch_size.max(1);
        let mut total = WriteSummary::default();
        for chunk in valid.chunks(batch) {
            total += self.online_store().write(&served.table, chunk).await?;
            progress.advanced(chunk.len() as u64);
        }
        report.written = total.written as u64;
        report.skipped_older = total.skipped_older as u64;
        report.seconds = started.elapsed().as_secs_f64();
        progress.view_finished(&report);
        Ok(report)
    }
}

impl FeatureStore {
    /// Materializes every view from its watermark (the end of its last materialization, kept in
    /// the registry per view version) up to now, then advances the watermarks.
    pub async fn materialize_incremental(
        &mut self,
        progress: &dyn Progress,
    ) -> Result<MaterializeReport> {
        let end = quiver_online::now_ns();
        let registry = self.registry()?.clone();
        let mut report = MaterializeReport::default();
        for (name, view) in &registry.feature_views {
            let key = format!("{name}:v{}", view.version);
            let start = registry.watermarks.get(&key).copied();
            let options = MaterializeOptions {
                views: vec![name.clone()],
                start,
                end: Some(end),
                strict: None,
            };
            report
                .views
                .extend(self.materialize(&options, progress).await?.views);
            // Record each view's watermark as soon as it is done, so a failure later keeps it.
            let path = self.registry_path();
            let mut current = crate::registry::Registry::load(&path)?.unwrap_or(registry.clone());
            current.watermarks.insert(key, end);
            current.save(&path)?;
            self.set_registry(Some(current))?;
        }
        Ok(report)
    }
}
