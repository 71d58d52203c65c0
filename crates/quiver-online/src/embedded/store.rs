//! [`EmbeddedStore`]: the online store traits over one redb file.
//!
//! Keys are [`ViewTable::key`] with the prefix `quiver`, so records sort by project, view and
//! version and a view version is one contiguous key range (what `delete_table` removes). Values
//! are an expiry time followed by the shared record bytes (see `entry`). Expired records are
//! hidden at read time and deleted by a background sweep every [`SWEEP_INTERVAL`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quiver_core::record::may_replace;
use quiver_core::{EntityKey, Record, RecordCodec};
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::task::AbortHandle;

use super::entry::{frame, is_expired, is_live, now_ms, unframe};
use super::file::{RECORDS, backend_error, open_or_replace};
use crate::config::EmbeddedConfig;
use crate::error::{OnlineError, Result};
use crate::lock::{LocalLocks, LockToken, Locks};
use crate::{OnlineStoreRead, OnlineStoreWrite, ViewTable, WriteSummary};

/// Key prefix of every record (the file holds nothing else, but the key is kept identical to
/// the other backends' so a key in a log means the same thing everywhere).
const PREFIX: &str = "quiver";

/// How often the background task deletes expired records.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The open database, shared by every handle from [`EmbeddedStore::with_codec`]: redb locks the
/// file, so one process can open it only once.
pub(super) struct Shared {
    pub(super) db: Database,
    pub(super) path: PathBuf,
    sweeper: AbortHandle,
    /// In-process locks: redb lets one process open the file, so no other process competes.
    locks: LocalLocks,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The sweep task only holds a `Weak`, so it would stop at its next tick anyway; aborting
        // stops it now instead of up to a minute later.
        self.sweeper.abort();
    }
}

impl Shared {
    pub(super) fn err(&self, e: impl Into<redb::Error>) -> OnlineError {
        backend_error(&self.path, e.into())
    }

    /// Deletes every expired record in one write transaction. Blocking.
    fn sweep(&self) -> Result<u64> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            for item in table
                .extract_if(|_, value| is_expired(value, now))
                .map_err(|e| self.err(e))?
            {
                item.map_err(|e| self.err(e))?;
                removed += 1;
            }
        }
        removed += super::records::sweep(&txn, now).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }
}

/// The embedded (redb) online store. Cheap to clone; clones and [`EmbeddedStore::with_codec`]
/// handles share the open file, and the background sweep stops when the last one is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    codec: RecordCodec,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the file at `config.path`, resolved from `base_dir` when
    /// relative, and starts the expiry sweep. An incompatible file is moved aside (see the
    /// `file` module). Must be called inside a Tokio runtime.
    pub async fn open(config: &EmbeddedConfig, base_dir: &Path) -> Result<Self> {
        let path = base_dir.join(&config.path);
        let codec = RecordCodec {
            codec: config.codec,
            compression_threshold: config.compression_threshold,
            ..RecordCodec::default()
        };
        let opening = path.clone();
        let db = tokio::task::spawn_blocking(move || open_or_replace(&opening))
            .await
            .map_err(|e| backend_error(&path, join_message(e)))??;
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let sweeper = tokio::spawn(sweep_loop(weak.clone())).abort_handle();
            Shared {
                db,
                path,
                sweeper,
                locks: LocalLocks::new(),
            }
        });
        Ok(EmbeddedStore { shared, codec })
    }

    /// A handle on the same file that writes with another codec.
    pub fn with_codec(&self, codec: RecordCodec) -> Self {
        EmbeddedStore {
            shared: self.shared.clone(),
            codec,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The stored record bytes under a full storage key, expired or not (tests and debugging
    /// inspect the header).
    pub async fn raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.blocking(move |shared| {
            let txn = shared.db.begin_read().map_err(|e| shared.err(e))?;
            let table = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
            let value = table.get(key.as_str()).map_err(|e| shared.err(e))?;
            Ok(value.and_then(|v| unframe(v.value()).map(|(_, record)| record.to_vec())))
        })
        .await
    }

    /// Deletes expired records now (the background task does this every [`SWEEP_INTERVAL`]);
    /// returns how many.
    pub async fn sweep_expired(&self) -> Result<u64> {
        self.blocking(|shared| shared.sweep()).await
    }

    /// Runs blocking redb work off the async runtime.
    pub(super) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| backend_error(&self.shared.path, join_message(e)))?
    }
}

fn join_message(e: tokio::task::JoinError) -> String {
    format!("blocking task failed: {e} (this is a bug in Quiver)")
}

/// Sweeps every [`SWEEP_INTERVAL`] until the store is dropped.
async fn sweep_loop(store: Weak<Shared>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(shared) = store.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            let result = shared.sweep();
            (result, shared.path.clone())
        })
        .await;
        match result {
            Ok((Ok(removed), path)) => {
                tracing::debug!(path = %path.display(), removed, "swept expired online records");
            }
            Ok((Err(e), path)) => {
                tracing::warn!(path = %path.display(), error = %e, "online store expiry sweep failed");
            }
            Err(e) => tracing::warn!(error = %e, "online store expiry sweep panicked"),
        }
    }
}

#[async_trait]
impl Locks for EmbeddedStore {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        self.shared.locks.try_lock_now(name, ttl)
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        Ok(self.shared.locks.unlock_now(name, token))
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        self.shared.locks.extend_now(name, token, ttl)
    }
}

#[async_trait]
impl OnlineStoreRead for EmbeddedStore {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        let keys: Vec<String> = keys.iter().map(|k| table.key(PREFIX, k)).collect();
        let types = table.types.clone();
        self.blocking(move |shared| {
            let now = now_ms();
            let txn = shared.db.begin_read().map_err(|e| shared.err(e))?;
            let records = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
            keys.into_iter()
                .map(|key| {
                    let Some(value) = records.get(key.as_str()).map_err(|e| shared.err(e))? else {
                        return Ok(None);
                    };
                    let value = value.value();
                    let (expiry, bytes) = unframe(value).ok_or_else(|| OnlineError::Corrupt {
                        source: quiver_core::CoreError::Decode(format!(
                            "stored value is {} bytes, too short for its expiry",
                            value.len()
                        )),
                        key: key.clone(),
                    })?;
                    if !is_live(expiry, now) {
                        return Ok(None);
                    }
                    RecordCodec::decode(bytes, &types)
                        .map(Some)
                        .map_err(|source| OnlineError::Corrupt { key, source })
                })
                .collect()
        })
        .await
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<crate::TableSize>> {
        let project_prefix = format!("{PREFIX}:{project}:");
        self.blocking(move |shared| {
            let now = now_ms();
            let end = prefix_end(&project_prefix);
            let txn = shared.db.begin_read().map_err(|e| shared.err(e))?;
            let records = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
            let mut sizes = Vec::new();
            for item in records
                .range(project_prefix.as_str()..end.as_str())
                .map_err(|e| shared.err(e))?
            {
                let (key, value) = item.map_err(|e| shared.err(e))?;
                let (key, value) = (key.value(), value.value());
                if !unframe(value).is_some_and(|(expiry, _)| is_live(expiry, now)) {
                    continue;
                }
                if let Some((view, version)) = crate::parse_table_key(key, &project_prefix) {
                    crate::count_key(&mut sizes, view, version, (key.len() + value.len()) as u64);
                }
            }
            Ok(sizes)
        })
        .await
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        self.blocking(|shared| {
            let txn = shared.db.begin_read().map_err(|e| shared.err(e))?;
            txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
            Ok(())
        })
        .await?;
        Ok(start.elapsed())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn records(&self) -> Option<Arc<dyn crate::RecordStore>> {
        Some(Arc::new(self.clone()))
    }
}

#[async_trait]
impl OnlineStoreWrite for EmbeddedStore {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        // Owned copies: the encoding (and zstd compression of large values) runs on the blocking
        // pool with the transaction, not on the async runtime.
        let rows: Vec<(String, Record)> = rows
            .iter()
            .map(|(k, r)| (table.key(PREFIX, k), r.clone()))
            .collect();
        let types = table.types.clone();
        let ttl = table.ttl;
        let codec = self.codec;
        self.blocking(move |shared| {
            let encoded = rows
                .into_iter()
                .map(|(key, record)| {
                    let bytes = codec.encode(&record, &types).map_err(OnlineError::Encode)?;
                    Ok((key, bytes))
                })
                .collect::<Result<Vec<_>>>()?;
            let now = now_ms();
            let expires_at = ttl.map_or(0, |t| {
                now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
            });
            let mut summary = WriteSummary::default();
            let txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
            {
                let mut records = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
                for (key, bytes) in encoded {
                    // Compare against the live record only: an expired one is gone as far as
                    // readers can tell, so an older event may take its place.
                    let replace = match records.get(key.as_str()).map_err(|e| shared.err(e))? {
                        Some(old) => match unframe(old.value()) {
                            Some((expiry, old)) if is_live(expiry, now) => may_replace(&bytes, old),
                            _ => true,
                        },
                        None => true,
                    };
                    if replace {
                        records
                            .insert(key.as_str(), frame(expires_at, &bytes).as_slice())
                            .map_err(|e| shared.err(e))?;
                        summary.written += 1;
                    } else {
                        summary.skipped_older += 1;
                    }
                }
            }
            // Commit with redb's default `Durability::Immediate`: the data is on disk when
            // `write` returns Ok, as the trait promises.
            txn.commit().map_err(|e| shared.err(e))?;
            Ok(summary)
        })
        .await
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        let keys: Vec<String> = keys.iter().map(|k| table.key(PREFIX, k)).collect();
        self.blocking(move |shared| {
            let now = now_ms();
            let txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
            let mut removed = 0;
            {
                let mut records = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
                for key in &keys {
                    if let Some(old) = records.remove(key.as_str()).map_err(|e| shared.err(e))?
                        && unframe(old.value()).is_some_and(|(expiry, _)| is_live(expiry, now))
                    {
                        removed += 1;
                    }
                }
            }
            txn.commit().map_err(|e| shared.err(e))?;
            Ok(removed)
        })
        .await
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        let start = table.key_prefix(PREFIX);
        let end = prefix_end(&start);
        self.blocking(move |shared| {
            let txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
            let mut removed = 0;
            {
                let mut records = txn.open_table(RECORDS).map_err(|e| shared.err(e))?;
                for item in records
                    .extract_from_if(start.as_str()..end.as_str(), |_, _| true)
                    .map_err(|e| shared.err(e))?
                {
                    item.map_err(|e| shared.err(e))?;
                    removed += 1;
                }
            }
            txn.commit().map_err(|e| shared.err(e))?;
            Ok(removed)
        })
        .await
    }
}

/// The smallest string greater than every string starting with `prefix`, for a range scan.
/// Prefixes end in `:` (ASCII), so bumping the last byte keeps the string valid UTF-8.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    match end.pop() {
        Some(last) if last.is_ascii() && last != '\x7f' => {
            end.push((last as u8 + 1) as char);
            end
        }
        // Not reachable for `ViewTable::key_prefix`, which ends in `:`; fall back to the
        // largest char so the range still covers the prefix.
        Some(last) => {
            end.push(last);
            end.push(char::MAX);
            end
        }
        None => char::MAX.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        let p = "quiver:shop:user:v1:";
        let end = prefix_end(p);
        assert_eq!(end, "quiver:shop:user:v1;");
        assert!(format!("{p}zzz~~") < end);
        assert!(format!("{p}%FF") < end);
        // Another version's keys sort outside the range.
        let v10 = "quiver:shop:user:v10:1";
        assert!(v10 < p || v10 >= end.as_str());
    }
}
