//! The default offline store: a directory of Parquet files per view version, partitioned by the
//! UTC day of the event time.
//!
//! Layout under the store root:
//! ```text
//! {root}/{project}__{view}__v{version}/
//!     _manifest                              which files are the table (see below)
//!     day=2026-11-03/part-<unique>.parquet   zstd-compressed, the table schema
//!     day=2026-11-04/part-<unique>.parquet
//! ```
//!
//! - `store.rs`: [`ParquetOfflineStore`], the [`OfflineStore`](super::OfflineStore) impl; every
//!   file operation runs on tokio's blocking pool.
//! - `table.rs`: the blocking operations on one table directory (rewrite days, read, prune;
//!   for record tables, `append`, whose manifest also records the export-queue position:
//!   `crate::records`).
//! - `manifest.rs`: the `_manifest` file, the single source of truth for which files are live.
//! - `files.rs`: day partitions, file names, reading and writing one Parquet file.
//! - `input.rs`: checks on `write_range` input shared by every backend.
//! - `index.rs`: the in-memory per-table index that answers `read_latest` (and its trade-offs).
//!
//! Why a manifest: replacing a range rewrites whole day files, and a day's rows must never be
//! visible twice (old file and its replacement) nor vanish. New files are written under fresh
//! names first, then one atomic rename of `_manifest` switches readers from the old set to the
//! new set, across all the days a write touches; only then are the old files removed. A crash
//! at any point leaves either the old table or the new one, plus unreferenced files that the
//! next write to that day sweeps away. Files not listed in `_manifest` are never read.
//!
//! Concurrency: writers to one table are serialized within a process. Two processes writing the
//! same table at once are not supported (the last manifest wins); a reader in another process
//! that loses a race with a writer's cleanup re-reads the manifest and retries.

mod files;
mod index;
pub(crate) mod input;
mod manifest;
mod store;
pub(crate) mod table;

pub use store::ParquetOfflineStore;
pub(crate) use store::blocking;
