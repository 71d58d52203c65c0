//! [`ParquetOfflineStore`]: the async face of the table operations in `table.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use tokio::sync::RwLock;

use quiver_core::{EntityKey, Record};

use super::files::store_error;
use super::index::LatestIndex;
use super::input::conform_batches;
use super::table;
use crate::error::Result;
use crate::store::lookup::check_request;
use crate::store::{OfflineStore, OfflineTable};

/// Offline tables as Parquet files under one root directory (see the module docs for layout
/// and crash safety).
pub struct ParquetOfflineStore {
    root: PathBuf,
    /// One lock per table: reads share it, changes take it alone, so a reader never sees a
    /// file disappear under it and two writes never race on one manifest. A std mutex guards
    /// the map only for the lookup, never across an await.
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    /// Per table, the lookup index (`index.rs`) once built. The async mutex makes concurrent
    /// first lookups wait for one build instead of each reading the whole table; it is held
    /// only to check or replace the index, never during a lookup.
    indexes: Mutex<HashMap<String, IndexSlot>>,
}

type IndexSlot = Arc<tokio::sync::Mutex<Option<Arc<LatestIndex>>>>;

impl ParquetOfflineStore {
    /// A store rooted at `root` (created on the first `ensure_table`).
    pub fn new(root: PathBuf) -> ParquetOfflineStore {
        ParquetOfflineStore {
            root,
            locks: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a table.
    pub fn table_dir(&self, table: &OfflineTable) -> PathBuf {
        self.root.join(table.qualified_name())
    }

    fn lock(&self, table: &OfflineTable) -> Arc<RwLock<()>> {
        self.lock_named(table.qualified_name())
    }

    /// The lock of the directory `key` names under the root (feature tables by their
    /// qualified name, record tables by `records/{qualified name}`).
    pub(crate) fn lock_named(&self, key: String) -> Arc<RwLock<()>> {
        // A poisoned map only means another thread panicked while inserting; the map is intact.
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key).or_default().clone()
    }
}

impl ParquetOfflineStore {
    fn index_slot(&self, table: &OfflineTable) -> IndexSlot {
        let mut slots = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(table.qualified_name()).or_default().clone()
    }

    /// The table's lookup index, rebuilt if the manifest changed since it was built. The
    /// caller holds the table's read lock, so no write in this process runs meanwhile.
    async fn current_index(&self, table: &OfflineTable) -> Result<Arc<LatestIndex>> {
        let dir = self.table_dir(table);
        let manifest = {
            let dir = dir.clone();
            blocking(move || table::current_manifest(&dir)).await?
        };
        let slot = self.index_slot(table);
        let mut slot = slot.lock().await;
        if let Some(index) = slot.as_ref().filter(|i| i.is_current(&manifest)) {
            return Ok(index.clone());
        }
        // Drop the stale index before building its successor, so the two never coexist.
        *slot = None;
        let schema = table.schema.clone();
        let owned = table.clone();
        let index = blocking(move || {
            let (manifest, batches) =
                table::read_with_manifest(&dir, &schema, i128::MIN, i128::MAX)?;
            LatestIndex::build(&owned, manifest, &batches)
        })
        .await?;
        let index = Arc::new(index);
        *slot = Some(index.clone());
        Ok(index)
    }

    /// Forgets a table's lookup index (its table is gone).
    fn forget_index(&self, table: &OfflineTable) {
        let mut slots = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(&table.qualified_name());
    }
}

impl std::fmt::Debug for ParquetOfflineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetOfflineStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Runs file I/O and Parquet coding on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| store_error(format!("a blocking file task failed (this is a bug): {e}")))?
}

#[async_trait]
impl OfflineStore for ParquetOfflineStore {
    fn kind(&self) -> &'static str {
        "parquet"
    }

    fn records(&self) -> &dyn crate::records::RecordSink {
        self
    }

    async fn ensure_table(&self, table: &OfflineTable) -> Result<String> {
        let dir = self.table_dir(table);
        let lock = self.lock(table);
        let _guard = lock.write().await;
        let target = dir.clone();
        blocking(move || table::ensure(&target)).await?;
        Ok(format!("parquet directory {}", dir.display()))
    }

    async fn write_range(
        &self,
        table: &OfflineTable,
        start: i64,
        end: i64,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let batches = conform_batches(table, start, end, batches)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let dir = self.table_dir(table);
        let schema = table.schema.clone();
        let lock = self.lock(table);
        let _guard = lock.write().await;
        blocking(move || {
            table::replace(&dir, &schema, i128::from(start), i128::from(end), &batches)
        })
        .await?;
        Ok(rows)
    }

    async fn read_range(
        &self,
        table: &OfflineTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<RecordBatch>> {
        let dir = self.table_dir(table);
        let schema = table.schema.clone();
        let start = start.map_or(i128::MIN, i128::from);
        let end = end.map_or(i128::MAX, i128::from);
        let lock = self.lock(table);
        let _guard = lock.read().await;
        blocking(move || table::read(&dir, &schema, start, end)).await
    }

    async fn read_latest(
        &self,
        table: &OfflineTable,
        keys: &[EntityKey],
        as_of: i64,
        ttl_ns: Option<i64>,
    ) -> Result<Vec<Option<Record>>> {
        let lower = check_request(table, keys, as_of, ttl_ns)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let lock = self.lock(table);
        let _guard = lock.read().await;
        let index = self.current_index(table).await?;
        // Hash probes and a few hundred value conversions: microseconds, fine on the runtime.
        index.lookup(keys, as_of, lower)
    }

    async fn prune(&self, table: &OfflineTable, before: i64) -> Result<u64> {
        let dir = self.table_dir(table);
        let schema = table.schema.clone();
        let lock = self.lock(table);
        let _guard = lock.write().await;
        blocking(move || table::replace(&dir, &schema, i128::MIN, i128::from(before), &[])).await
    }

    async fn drop_table(&self, table: &OfflineTable) -> Result<()> {
        let dir = self.table_dir(table);
        let lock = self.lock(table);
        let _guard = lock.write().await;
        self.forget_index(table);
        blocking(move || table::drop_dir(&dir)).await
    }
}
