//! `quiver materialize`: the latest row per entity within a time window, from each view's source
//! into the online store, validated against the view's constraints, written in batches.

use std::time::Instant;

use quiver_core::{EntityKey, FeatureView, Record};
use quiver_offline::source::{BadRow, LatestRow};
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
    /// Rows skipped because their event time is null (they belong to no window).
    pub rows_null_timestamp: u64,
    /// Rows inside the window skipped because a join key is null.
    pub rows_null_key: u64,
    /// Entities whose latest row violated a constraint or held a value its field's type cannot
    /// hold (not written).
    pub rejected: u64,
    /// The first rejection messages, each naming view, entity key, field and value.
    pub rejections: Vec<String>,
    pub seconds: f64,
    /// The newest event time among the rows written (ns UTC); `None` when none were.
    pub newest_event: Option<i64>,
}

/// What `materialize` did, per view.
#[derive(Clone, Debug, Default)]
pub struct MaterializeReport {
    pub views: Vec<ViewReport>,
}

/// Checks a converted row: a value its field's type cannot hold, or a constraint violation.
fn check_row(
    view: &FeatureView,
    key: &EntityKey,
    record: &std::result::Result<Record, BadRow>,
) -> Result<(), String> {
    match record {
        Ok(record) => view.check_row(key, record).map_err(|r| r.to_string()),
        Err(bad) => Err(format!(
            "feature view `{}`: entity `{}`: {bad}",
            view.name,
            view.entity_label(key)
        )),
    }
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
            let view = self
                .materialize_view(&name, options.start, end, strict, progress)
                .await?;
            self.record_materialization(&view, options.start, end).await;
            report.views.push(view);
        }
        Ok(report)
    }

    /// Counts the rows in the serving statistics and records the run in the registry file (what
    /// freshness is measured from). The data is written either way: a registry that cannot be
    /// saved is logged, not an error of the materialization.
    async fn record_materialization(&self, view: &ViewReport, start: Option<i64>, end: i64) {
        self.stats()
            .view(&view.view)
            .writes
            .fetch_add(view.written, std::sync::atomic::Ordering::Relaxed);
        let run = crate::registry::MaterializationRun {
            kind: crate::registry::RunKind::Materialize,
            version: view.version,
            finished_at: quiver_online::now_ns(),
            start,
            end,
            written: view.written,
            rejected: view.rejected,
            seconds: view.seconds,
            newest_event: view.newest_event,
        };
        let name = view.view.clone();
        let saved = self
            .registry_store()
            .update(move |current| current.record_run(&name, run))
            .await;
        if let Err(e) = saved {
            tracing::warn!(view = %view.view, error = %e, "the materialization is not recorded in the registry");
        }
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
        let resolved = self.source_of(&view)?.clone();
        let (source, path) = (resolved.source, resolved.path);
        let timestamp_field = source.timestamp_field.clone();
        let read_view = view.clone();
        if view.is_derived() {
            let derived = tokio::task::spawn_blocking(move || {
                quiver_offline::engine::evaluate_latest(&path, &source, &read_view, end)
            })
            .await
            .map_err(|e| Error::Internal(format!("source read task failed: {e}")))??;
            return self
                .write_materialized(
                    name,
                    &served,
                    Latest::Rows(
                        derived.rows.into_iter(),
                        SourceCounts {
                            rows_scanned: derived.rows_scanned,
                            rows_in_window: derived.rows_in_window,
                            rows_null_timestamp: derived.rows_null_timestamp,
                            rows_null_key: derived.rows_null_key,
                            timestamp_field,
                        },
                    ),
                    strict,
                    started,
                    progress,
                )
                .await;
        }
        let latest = tokio::task::spawn_blocking(move || {
            quiver_offline::source::read_latest_index(&read_request(
                &path, &source, &read_view, start, end,
            ))
        })
        .await
        .map_err(|e| Error::Internal(format!("source read task failed: {e}")))??;

        self.write_materialized(
            name,
            &served,
            Latest::Index(latest, timestamp_field),
            strict,
            started,
            progress,
        )
        .await
    }

    /// Validates and writes the latest rows: a blocking thread converts and validates them a
    /// batch at a time while up to [`WRITES_IN_FLIGHT`] batches are being written, so reading
    /// overlaps writing and only a few batches of converted rows exist at any moment.
    async fn write_materialized(
        &self,
        name: &str,
        served: &crate::catalog::ServedView,
        mut latest: Latest,
        strict: bool,
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<ViewReport> {
        let counts = latest.counts();
        let report = ViewReport {
            view: name.to_string(),
            version: served.table.version,
            rows_scanned: counts.rows_scanned,
            rows_in_window: counts.rows_in_window,
            rows_null_timestamp: counts.rows_null_timestamp,
            rows_null_key: counts.rows_null_key,
            ..ViewReport::default()
        };
        if strict && counts.rows_null_timestamp > 0 {
            return Err(Error::InvalidRequest(format!(
                "feature view `{name}`: {} source rows have a null event time `{}` \
                 (strict mode: nothing written for this view)",
                counts.rows_null_timestamp, counts.timestamp_field
            )));
        }
        let batch = self.project().config.materialize.batch_size.max(1);
        let mut view = served.definition.clone();
        if strict {
            // Strict: every row is checked before anything is written.
            let (checked, v) = tokio::task::spawn_blocking(move || {
                let result = latest.check_all(&view, batch);
                (result.map(|()| latest), view)
            })
            .await
            .map_err(|e| Error::Internal(format!("validation task failed: {e}")))?;
            latest = checked?;
            view = v;
        }
        self.write_valid(name, served, latest, view, batch, report, started, progress)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_valid(
        &self,
        name: &str,
        served: &crate::catalog::ServedView,
        mut latest: Latest,
        view: std::sync::Arc<FeatureView>,
        batch: usize,
        mut report: ViewReport,
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<ViewReport> {
        progress.view_started(name, latest.remaining() as u64);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<(EntityKey, Record)>>>(2);
        let view_name = name.to_string();
        let producer = tokio::task::spawn_blocking(move || {
            let mut rejected = 0u64;
            let mut rejections = Vec::new();
            while let Some(chunk) = latest.next_chunk(batch) {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                };
                let mut valid = Vec::with_capacity(chunk.len());
                for (key, record) in chunk {
                    match check_row(&view, &key, &record) {
                        Ok(()) => valid.extend(record.ok().map(|r| (key, r))),
                        Err(msg) => {
                            rejected += 1;
                            if rejections.len() < MAX_REPORTED_REJECTIONS {
                                tracing::warn!(view = %view_name, rejection = %msg, "row rejected");
                                rejections.push(msg);
                            }
                        }
                    }
                }
                // A closed channel: the writer failed and returned its error already.
                if tx.blocking_send(Ok(valid)).is_err() {
                    break;
                }
            }
            (rejected, rejections)
        });

        let mut total = WriteSummary::default();
        let mut writes: tokio::task::JoinSet<Result<(WriteSummary, usize)>> =
            tokio::task::JoinSet::new();
        let mut newest_event: Option<i64> = None;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            let newest = chunk.iter().map(|(_, r)| r.event_ts).max();
            newest_event = newest_event.max(newest);
            while writes.len() >= WRITES_IN_FLIGHT {
                if let Some(joined) = writes.join_next().await {
                    let (summary, rows) = finished(joined)?;
                    total += summary;
                    progress.advanced(rows as u64);
                }
            }
            let store = self.online_store().clone();
            let table = served.table.clone();
            writes.spawn(async move {
                let summary = store.write(&table, &chunk).await?;
                Ok((summary, chunk.len()))
            });
        }
        while let Some(joined) = writes.join_next().await {
            let (summary, rows) = finished(joined)?;
            total += summary;
            progress.advanced(rows as u64);
        }
        let (rejected, rejections) = producer
            .await
            .map_err(|e| Error::Internal(format!("validation task failed: {e}")))?;
        report.rejected = rejected;
        report.rejections = rejections;
        report.written = total.written as u64;
        report.skipped_older = total.skipped_older as u64;
        report.entities = report.written + report.skipped_older;
        // Rows skipped as older leave the online store's newer event in place, so the newest
        // event online is at least the newest one offered.
        report.newest_event = newest_event.filter(|_| total.written + total.skipped_older > 0);
        report.seconds = started.elapsed().as_secs_f64();
        progress.view_finished(&report);
        Ok(report)
    }
}

/// What to read from a plain view's source: its latest rows with `start <= event time < end`.
fn read_request<'a>(
    path: &'a std::path::Path,
    source: &'a quiver_core::Source,
    view: &'a FeatureView,
    start: Option<i64>,
    end: i64,
) -> quiver_offline::ReadRequest<'a> {
    quiver_offline::ReadRequest {
        path,
        source,
        join_keys: &view.join_keys,
        fields: &view.fields,
        inputs: &view.inputs,
        start,
        end: Some(end),
        sql: view.sql.as_deref(),
    }
}

fn finished(
    joined: std::result::Result<Result<(WriteSummary, usize)>, tokio::task::JoinError>,
) -> Result<(WriteSummary, usize)> {
    joined.map_err(|e| Error::Internal(format!("write task failed: {e}")))?
}

/// Write batches in flight at once per view: while one is on the wire or in Redis, the next is
/// encoded.
const WRITES_IN_FLIGHT: usize = 3;

/// The latest rows of a view: converted already (derived views), or an index into the source's
/// columns, converted a batch at a time.
enum Latest {
    Rows(std::vec::IntoIter<(EntityKey, Record)>, SourceCounts),
    Index(quiver_offline::source::LatestIndex, String),
}

/// What reading a view's source found, for its report.
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceCounts {
    pub rows_scanned: u64,
    pub rows_in_window: u64,
    pub rows_null_timestamp: u64,
    pub rows_null_key: u64,
    /// The source's event time column, for messages.
    pub timestamp_field: String,
}

impl Latest {
    fn counts(&self) -> SourceCounts {
        match self {
            Latest::Rows(_, counts) => counts.clone(),
            Latest::Index(index, timestamp_field) => SourceCounts {
                rows_scanned: index.rows_scanned,
                rows_in_window: index.rows_in_window,
                rows_null_timestamp: index.rows_null_timestamp,
                rows_null_key: index.rows_null_key,
                timestamp_field: timestamp_field.clone(),
            },
        }
    }

    fn remaining(&self) -> usize {
        match self {
            Latest::Rows(rows, ..) => rows.len(),
            Latest::Index(index, _) => index.remaining(),
        }
    }

    fn next_chunk(&mut self, max: usize) -> Option<Result<Vec<LatestRow>>> {
        match self {
            Latest::Rows(rows, ..) => {
                let chunk: Vec<_> = rows.by_ref().take(max).map(|(k, r)| (k, Ok(r))).collect();
                (!chunk.is_empty()).then_some(Ok(chunk))
            }
            Latest::Index(index, _) => index.next_chunk(max).map(|r| r.map_err(Error::from)),
        }
    }

    /// Fails on the first row that violates a constraint; the rows stay in place.
    fn check_all(&self, view: &FeatureView, batch: usize) -> Result<()> {
        let fail = |msg: String| {
            Error::InvalidRequest(format!(
                "{msg} (strict mode: nothing written for this view)"
            ))
        };
        match self {
            Latest::Rows(rows, _) => {
                for (key, record) in rows.as_slice() {
                    view.check_row(key, record)
                        .map_err(|r| fail(r.to_string()))?;
                }
            }
            Latest::Index(index, _) => {
                let mut at = 0;
                while at < index.len() {
                    let end = (at + batch).min(index.len());
                    for (key, record) in index.rows(at..end)? {
                        check_row(view, &key, &record).map_err(fail)?;
                    }
                    at = end;
                }
            }
        }
        Ok(())
    }
}

/// The registry's watermark key of a view version: `view:vN`.
pub(crate) fn watermark_key(view: &str, version: u32) -> String {
    format!("{view}:v{version}")
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
            let key = watermark_key(name, view.version);
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
            let current = self
                .registry_store()
                .update(move |current| {
                    current.watermarks.insert(key, end);
                })
                .await?;
            if let Some(current) = current {
                self.set_registry(Some(current))?;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example project with `user_profile`'s `age` capped at 60 (so some latest rows are
    /// invalid) and small write batches (so the pipeline runs many batches, several in flight).
    async fn project(root: &std::path::Path) -> FeatureStore {
        let dir = root.join("p");
        crate::init::init_project(&dir, None, 7).unwrap();
        let config = dir.join("quiver.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("batch_size: 2000", "batch_size: 300")).unwrap();
        let users = dir.join("features/users.yaml");
        let text = std::fs::read_to_string(&users).unwrap();
        assert!(text.contains("max: 130"));
        std::fs::write(&users, text.replace("max: 130", "max: 60")).unwrap();
        let mut store = FeatureStore::open(&dir).await.unwrap();
        store.apply().await.unwrap();
        store
    }

    fn options(strict: bool, end: i64) -> MaterializeOptions {
        MaterializeOptions {
            views: vec!["user_profile".into()],
            strict: Some(strict),
            end: Some(end),
            ..MaterializeOptions::default()
        }
    }

    /// The streamed materialization writes exactly the rows of the reference fold
    /// (`read_latest`, everything in memory) that pass validation, and counts the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_batches_write_exactly_the_valid_latest_rows() {
        let root = tempfile::tempdir().unwrap();
        let store = project(root.path()).await;
        let end = quiver_online::now_ns();
        let report = store
            .materialize(&options(false, end), &NoProgress)
            .await
            .unwrap();
        let report = &report.views[0];

        let served = store.view("user_profile").unwrap();
        let view = &served.definition;
        let resolved = store.source_of(view).unwrap().clone();
        let (source, path) = (resolved.source, resolved.path);
        let reference =
            quiver_offline::read_latest(&read_request(&path, &source, view, None, end)).unwrap();
        let (valid, invalid): (Vec<_>, Vec<_>) = reference
            .rows
            .into_iter()
            .partition(|(k, r)| view.check_row(k, r).is_ok());
        assert!(valid.len() > 600 && !invalid.is_empty(), "{}", valid.len());
        assert_eq!(report.rows_scanned, reference.rows_scanned);
        assert_eq!(report.entities, valid.len() as u64);
        assert_eq!(report.written, valid.len() as u64);
        assert_eq!(report.skipped_older, 0);
        assert_eq!(report.rejected, invalid.len() as u64);
        assert_eq!(
            report.rejections.len(),
            invalid.len().min(MAX_REPORTED_REJECTIONS)
        );

        let online = store.online_store();
        let keys: Vec<EntityKey> = valid.iter().map(|(k, _)| k.clone()).collect();
        let got = online.read(&served.table, &keys).await.unwrap();
        for ((key, expected), got) in valid.iter().zip(&got) {
            assert_eq!(got.as_ref(), Some(expected), "entity {key:?}");
        }
        let keys: Vec<EntityKey> = invalid.iter().map(|(k, _)| k.clone()).collect();
        let got = online.read(&served.table, &keys).await.unwrap();
        assert!(
            got.iter().all(Option::is_none),
            "a rejected row was written"
        );

        // Again: the same events, so every row is rewritten (equal times overwrite).
        let again = store
            .materialize(&options(false, end), &NoProgress)
            .await
            .unwrap();
        assert_eq!(again.views[0].written, valid.len() as u64);
    }

    /// Strict mode checks every row before writing any.
    #[tokio::test]
    async fn strict_mode_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = project(root.path()).await;
        let err = store
            .materialize(&options(true, quiver_online::now_ns()), &NoProgress)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("strict mode") && err.contains("field `age`"),
            "{err}"
        );
        let served = store.view("user_profile").unwrap();
        let keys: Vec<EntityKey> = (0..10_000)
            .map(|i| EntityKey::single(quiver_core::KeyValue::Int(i)))
            .collect();
        let got = store
            .online_store()
            .read(&served.table, &keys)
            .await
            .unwrap();
        assert!(got.iter().all(Option::is_none));
    }
}
