//! Quiver's offline side: reading feature sources (Parquet, CSV) into typed rows, and writing the
//! quickstart's sample data.
//!
//! Layout:
//! - [`source`]: reading a source file. [`read_latest`] streams record batches and keeps, per entity
//!   key, the latest row inside a time window (what `materialize` writes online);
//!   [`read_columns`] and [`check_source`] validate a source against its definitions at
//!   `quiver apply` time without reading data.
//!   - `source/parquet.rs` and `source/csv.rs`: opening each format as a stream of batches of
//!     only the needed columns.
//!   - `source/convert.rs`: which Arrow types convert to which Quiver [`ValueType`]s, and the
//!     per-value conversion (checked narrowing, exact decimals, nanosecond timestamps).
//!   - `source/latest.rs`: the latest-row-per-entity fold over batches.
//! - [`sample`]: deterministic quickstart data (`users.parquet`, `transactions.parquet`).
//! - [`compute`]: the engine's hot-path operators over Arrow columns: key interning, the
//!   point-in-time join, rolling-window aggregations, price time-series helpers.
//! - [`engine`]: a view's answers over its source: its history, its features at given times,
//!   a derived view's latest values.
//! - [`store`]: the [`store::OfflineStore`] trait and its backends (feature history per view version).
//! - [`records`]: the [`records::RecordSink`] trait, where record namespaces (transactions,
//!   predictions, served-feature logs) are exported, implemented by both offline stores.
//! - [`io`]: whole-file reads of entity files and Parquet writes of training sets.
//! - [`error`]: [`OfflineError`] and the [`Result`] alias.
//!
//! [`ValueType`]: quiver_core::ValueType

pub mod compute;
pub mod engine;
pub mod error;
pub mod io;
pub mod records;
pub mod sample;
pub mod source;
pub mod store;

pub use error::{OfflineError, Result};
pub use records::{RecordSink, RecordTable};
pub use sample::{SampleSummary, write_quickstart_data, write_sample};
pub use source::{
    LatestRows, ReadRequest, check_source, read_columns, read_latest, read_latest_with_batch_size,
    read_table, read_table_counted, table_layout,
};
