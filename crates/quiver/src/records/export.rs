//! Exporting record queues into the offline store, exactly once.
//!
//! Per namespace, one exporter at a time (an in-process mutex, and on Redis a lock every
//! process shares, `{prefix}:lock:export:{project}:{ns}`):
//! 1. read the position the sink last committed ([`RecordSink::committed_through`]);
//! 2. claim a batch: entries a crashed exporter left unacknowledged first, then new ones, in
//!    queue order;
//! 3. acknowledge entries at or before the committed position without writing them (a crash
//!    after a commit and before its acknowledgement);
//! 4. convert the rest to Arrow rows; an entry that cannot be converted goes to the dead
//!    letters with the reason;
//! 5. commit the rows and the batch's last position in one atomic step, retrying with
//!    exponential backoff (`attempts`, `backoff`);
//! 6. acknowledge the batch. A sink that stays unavailable leaves the batch queued (the next
//!    run takes it again); a batch the sink refuses for another reason is dead-lettered.
//!
//! A crash at any step leaves either "not committed" (the entries are still pending and are
//! claimed again) or "committed, not acknowledged" (step 3 skips them): never lost, never
//! written twice.

use std::time::{Duration, Instant};

use quiver_offline::records::RecordSink;
use quiver_online::records::QueueEntry;
use serde::Serialize;

use super::namespace::{Envelope, Namespace};
use crate::error::{Error, ErrorKind, Result};
use crate::store::FeatureStore;

/// How long one run exports a namespace before it stops and lets the next run continue.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Stored (compressed) bytes of records converted and committed at once: claimed entries are
/// cut into commits of about this size (at least one entry each).
const COMMIT_BYTES: usize = 8 << 20;

/// `entries` in order, cut into runs of about `max` payload bytes (at least one entry each).
fn chunks_by_bytes(entries: Vec<QueueEntry>, max: usize) -> Vec<Vec<QueueEntry>> {
    let mut out: Vec<Vec<QueueEntry>> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        match out.last_mut() {
            Some(last) if bytes < max => {
                bytes += e.payload.len();
                last.push(e);
            }
            _ => {
                bytes = e.payload.len();
                out.push(vec![e]);
            }
        }
    }
    out
}

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Namespaces to drain (empty: all).
    pub namespaces: Vec<String>,
}

/// One namespace's export run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NamespaceExport {
    pub namespace: String,
    /// Rows committed to the sink by this run.
    pub exported: u64,
    /// Entries found already committed (a previous run crashed before acknowledging them).
    pub already_exported: u64,
    pub dead_lettered: u64,
    pub batches: u64,
    /// Commit attempts that failed and were retried.
    pub retries: u64,
    /// Entries still queued after this run.
    pub remaining: u64,
    /// Why the run stopped early (the sink stayed unavailable, another exporter holds the lock).
    pub error: Option<String>,
}

/// An export run over several namespaces.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportReport {
    pub sink: String,
    pub namespaces: Vec<NamespaceExport>,
    pub seconds: f64,
}

impl ExportReport {
    pub fn exported(&self) -> u64 {
        self.namespaces.iter().map(|n| n.exported).sum()
    }

    /// Whether some namespace stopped early.
    pub fn failed(&self) -> bool {
        self.namespaces.iter().any(|n| n.error.is_some())
    }
}

/// Fault injection for crash tests: with `QUIVER_FAULT_ABORT_AFTER_COMMITS=N`, the process
/// aborts right after its Nth sink commit, before acknowledging it (the window exactly-once
/// must survive).
fn crash_point() {
    static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let limit = *LIMIT.get_or_init(|| {
        std::env::var("QUIVER_FAULT_ABORT_AFTER_COMMITS")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit
        && COMMITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= limit
    {
        eprintln!(
            "QUIVER_FAULT_ABORT_AFTER_COMMITS: aborting after a commit, before its acknowledgement"
        );
        std::process::abort();
    }
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    format!("{host}-{}", std::process::id())
}

impl FeatureStore {
    /// Drains the queues of the chosen namespaces into the offline store.
    pub async fn export(&self, options: &ExportOptions) -> Result<ExportReport> {
        let started = Instant::now();
        let chosen: Vec<&Namespace> = if options.namespaces.is_empty() {
            self.records.namespaces().collect()
        } else {
            options
                .namespaces
                .iter()
                .map(|n| self.records.namespace(n))
                .collect::<Result<_>>()?
        };
        self.records.store()?;
        // Served-feature logs buffered in this process (a few milliseconds' worth) are written
        // first, so an export drains everything served before it was called.
        if chosen.iter().any(|ns| ns.name == super::SERVED_FEATURES)
            && let Some(log) = self.records.served_started()
        {
            log.flush().await;
        }
        let offline = self.offline_store().await?;
        let sink = offline.records();
        let _one_at_a_time = self.records.exporting.lock().await;
        let mut report = ExportReport {
            sink: sink.kind().to_string(),
            ..ExportReport::default()
        };
        for ns in chosen {
            // One namespace failing (its table unreadable, the store down) does not stop the
            // others; the report says what happened to each.
            let done = match self.export_locked(ns, sink).await {
                Ok(done) => done,
                Err(e) => NamespaceExport {
                    namespace: ns.name.clone(),
                    error: Some(e.to_string()),
                    remaining: match self.records.store()?.stats(&ns.space).await {
                        Ok(s) => s.length,
                        Err(_) => 0,
                    },
                    ..NamespaceExport::default()
                },
            };
            report.namespaces.push(done);
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    async fn export_locked(
        &self,
        ns: &Namespace,
        sink: &dyn RecordSink,
    ) -> Result<NamespaceExport> {
        let lock_name = format!("export:{}:{}", self.project_name(), ns.name);
        let lease = self.records.config.export.lock_lease;
        let Some(locks) = self.online_store().shared_locks() else {
            return self.export_namespace(ns, sink).await;
        };
        let Some(token) = locks.try_lock(&lock_name, lease).await? else {
            return Ok(NamespaceExport {
                namespace: ns.name.clone(),
                error: Some(format!(
                    "another exporter holds the lock `{lock_name}` (it frees itself within \
                     `records.export.lock_lease`, {lease:?}, if that exporter died)"
                )),
                remaining: self.records.store()?.stats(&ns.space).await?.length,
                ..NamespaceExport::default()
            });
        };
        // The lease is renewed every third of itself while the export runs, so a crashed
        // exporter's lock frees itself within one lease; losing the lease (a stall longer than
        // it) stops this run: another exporter may have started.
        let renew = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                match locks.extend(&lock_name, &token, lease).await {
                    Ok(true) => {}
                    Ok(false) => return "the lease ran out".to_string(),
                    Err(e) => return e.to_string(),
                }
            }
        };
        let result = tokio::select! {
            result = self.export_namespace(ns, sink) => result,
            why = renew => Err(Error::FailedPrecondition(format!(
                "export of `{}` stopped: the export lock `{lock_name}` could not be renewed ({why}); \
                 what was committed stays, the rest is exported by the next run",
                ns.name
            ))),
        };
        if let Err(e) = locks.unlock(&lock_name, &token).await {
            tracing::warn!(lock = %lock_name, error = %e, "could not release the export lock; it expires by itself");
        }
        result
    }

    async fn export_namespace(
        &self,
        ns: &Namespace,
        sink: &dyn RecordSink,
    ) -> Result<NamespaceExport> {
        let store = self.records.store()?;
        let config = &self.records.config.export;
        let consumer = consumer_name();
        let started = Instant::now();
        let mut out = NamespaceExport {
            namespace: ns.name.clone(),
            ..NamespaceExport::default()
        };
        let mut committed = sink.committed_through(&ns.table).await?;
        'run: while started.elapsed() < RUN_LIMIT {
            // We hold the export lock: whatever is pending belongs to an exporter that died.
            let entries = store
                .claim(&ns.space, &consumer, config.batch_size, Duration::ZERO)
                .await?;
            if entries.is_empty() {
                break;
            }
            let (done, fresh): (Vec<QueueEntry>, Vec<QueueEntry>) = entries
                .into_iter()
                .partition(|e| committed.is_some_and(|c| e.position <= c));
            if !done.is_empty() {
                let positions: Vec<_> = done.iter().map(|e| e.position).collect();
                store.ack(&ns.space, &positions).await?;
                out.already_exported += done.len() as u64;
            }
            // Large records (a served-feature log of 100 rows × 20 features is ~80 KB of JSON)
            // are committed in pieces of about COMMIT_BYTES stored bytes, each with the queue
            // position of its last entry, so memory stays bounded whatever `batch_size` is.
            for fresh in chunks_by_bytes(fresh, COMMIT_BYTES) {
                let Some(through) = fresh.last().map(|e| e.position) else {
                    continue;
                };
                let mut dead = Vec::new();
                let mut envelopes = Vec::with_capacity(fresh.len());
                let mut kept = Vec::with_capacity(fresh.len());
                for e in &fresh {
                    match Envelope::from_bytes(&e.payload) {
                        Ok(env) => {
                            envelopes.push(env);
                            kept.push(e);
                        }
                        Err(reason) => dead.push((e.clone(), reason)),
                    }
                }
                let (batch, rejected) = ns.to_batch(&envelopes).map_err(Error::Internal)?;
                dead.extend(
                    rejected
                        .into_iter()
                        .map(|(i, reason)| (kept[i].clone(), reason)),
                );
                if !dead.is_empty() {
                    out.dead_lettered += dead.len() as u64;
                    for (e, reason) in &dead {
                        tracing::warn!(namespace = %ns.name, position = %e.position, reason = %reason, "record dead-lettered");
                    }
                    store.dead_letter(&ns.space, &dead).await?;
                }
                let exported: Vec<_> = fresh
                    .iter()
                    .filter(|e| !dead.iter().any(|(d, _)| d.position == e.position))
                    .map(|e| e.position)
                    .collect();
                if exported.is_empty() {
                    continue;
                }
                let mut attempt = 0;
                let written = loop {
                    attempt += 1;
                    match sink
                        .commit(&ns.table, std::slice::from_ref(&batch), through)
                        .await
                    {
                        Ok(n) => break Some(n),
                        Err(e) => {
                            let e = Error::from(e);
                            let transient = e.kind() == ErrorKind::Unavailable;
                            if transient && attempt < config.attempts {
                                out.retries += 1;
                                let wait =
                                    config.backoff.saturating_mul(1 << (attempt - 1).min(16));
                                tracing::warn!(namespace = %ns.name, attempt, error = %e, wait = ?wait, "export commit failed; retrying");
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                            if transient {
                                out.error = Some(format!(
                                    "the {} sink failed {attempt} times; the last error: {e}; the batch stays queued for the next run",
                                    sink.kind()
                                ));
                            } else {
                                let reason =
                                    format!("the {} sink refused the batch: {e}", sink.kind());
                                let refused: Vec<_> = fresh
                                    .iter()
                                    .filter(|q| exported.contains(&q.position))
                                    .map(|q| (q.clone(), reason.clone()))
                                    .collect();
                                out.dead_lettered += refused.len() as u64;
                                store.dead_letter(&ns.space, &refused).await?;
                                out.error = Some(reason);
                            }
                            break None;
                        }
                    }
                };
                let Some(written) = written else { break 'run };
                crash_point();
                store.ack(&ns.space, &exported).await?;
                committed = Some(through);
                out.exported += written;
                out.batches += 1;
            }
        }
        out.remaining = store.stats(&ns.space).await?.length;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::QueuePosition;

    fn entry(i: u64, len: usize) -> QueueEntry {
        QueueEntry {
            position: QueuePosition::new(i, 0),
            payload: vec![0; len],
        }
    }

    #[test]
    fn commits_are_cut_by_stored_bytes_in_order() {
        let sizes = [3, 3, 3, 10, 1, 1];
        let entries: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| entry(i as u64, n))
            .collect();
        let chunks = chunks_by_bytes(entries, 6);
        let positions: Vec<Vec<u64>> = chunks
            .iter()
            .map(|c| c.iter().map(|e| e.position.ms).collect())
            .collect();
        // 3+3 reaches 6: a new chunk; a big entry fills one alone; small ones share.
        assert_eq!(positions, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        // Small records: one commit, as before.
        let small: Vec<_> = (0..100).map(|i| entry(i, 200)).collect();
        assert_eq!(chunks_by_bytes(small, COMMIT_BYTES).len(), 1);
        assert!(chunks_by_bytes(Vec::new(), 6).is_empty());
    }
}
