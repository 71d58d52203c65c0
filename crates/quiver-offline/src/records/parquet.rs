//! [`ParquetOfflineStore`] as a [`RecordSink`].
//!
//! Layout under the store root:
//! ```text
//! {root}/records/{project}__records__{namespace}/
//!     _manifest                              live files and `position<TAB>MS-SEQ`
//!     day=2026-11-03/part-<unique>.parquet   rows whose event time is on that UTC day
//! ```
//! A commit writes one new file per UTC day its rows fall on (under temporary names, flushed,
//! renamed), then replaces `_manifest` with one listing the old files, the new ones and the new
//! position: that rename is the commit point (`store/parquet/table.rs`, `append`). A failure
//! before it removes the new files; a crash before it leaves unlisted files that are never read
//! and are swept by the next commit to the same day.
//!
//! Each commit adds files; nothing compacts them yet, so a day exported in many small batches
//! holds many small files.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use quiver_core::QueuePosition;

use super::{RecordSink, RecordTable, in_context};
use crate::error::{OfflineError, Result};
use crate::store::ParquetOfflineStore;
use crate::store::parquet::{blocking, table};

/// The directory under the store root that holds every record table.
const RECORDS_DIR: &str = "records";

impl ParquetOfflineStore {
    /// The directory of a record table: `{root}/records/{qualified name}`.
    pub fn record_table_dir(&self, table: &RecordTable) -> PathBuf {
        self.root().join(RECORDS_DIR).join(table.qualified_name())
    }

    fn record_lock(&self, table: &RecordTable) -> std::sync::Arc<tokio::sync::RwLock<()>> {
        self.lock_named(format!("{RECORDS_DIR}/{}", table.qualified_name()))
    }
}

/// Prefixes a Parquet store error with the table it concerns and what failed.
fn about(table: &RecordTable, doing: &str, e: OfflineError) -> OfflineError {
    in_context(e, &format!("{}: {doing}", table.origin()))
}

#[async_trait]
impl RecordSink for ParquetOfflineStore {
    fn kind(&self) -> &'static str {
        "parquet"
    }

    async fn committed_through(&self, table: &RecordTable) -> Result<Option<QueuePosition>> {
        table.validate()?;
        let dir = self.record_table_dir(table);
        let lock = self.record_lock(table);
        let _guard = lock.read().await;
        blocking(move || table::position(&dir))
            .await
            .map_err(|e| about(table, "reading the committed position", e))
    }

    async fn commit(
        &self,
        table: &RecordTable,
        batches: &[RecordBatch],
        through: QueuePosition,
    ) -> Result<u64> {
        let batches = table.conform(batches)?;
        let dir = self.record_table_dir(table);
        let schema = table.schema.clone();
        let lock = self.record_lock(table);
        let _guard = lock.write().await;
        let written = blocking(move || table::append(&dir, &schema, &batches, through))
            .await
            .map_err(|e| about(table, &format!("committing through {through}"), e))?;
        Ok(written.unwrap_or(0))
    }

    async fn read_all(&self, table: &RecordTable) -> Result<Vec<RecordBatch>> {
        self.read_range(table, None, None).await
    }

    async fn read_range(
        &self,
        table: &RecordTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<RecordBatch>> {
        table.validate()?;
        let dir = self.record_table_dir(table);
        let schema = table.schema.clone();
        let lock = self.record_lock(table);
        let _guard = lock.read().await;
        let (start, end) = (
            start.map_or(i128::MIN, i128::from),
            end.map_or(i128::MAX, i128::from),
        );
        blocking(move || table::read_range(&dir, &schema, start, end))
            .await
            .map_err(|e| about(table, "reading a time range", e))
    }
}
