//! The PostgreSQL offline store: one table per view version, `"{schema}"."{project}__{view}__v{n}"`,
//! a TimescaleDB hypertable when the extension is installed.
//!
//! - `config.rs`: [`PostgresConfig`] (URL, schema, pool size; the password is redacted in
//!   `Debug` and never reaches an error message).
//! - `store.rs`: [`PostgresOfflineStore`], the [`OfflineStore`](super::OfflineStore) impl over a
//!   `deadpool-postgres` pool.
//! - `sql.rs` and the `.sql` files beside it: the statements; identifiers are always quoted.
//! - `arrow.rs`: Arrow columns to COPY cells and rows back to Arrow arrays.
//! - `codec.rs`: binary `timestamptz` and `numeric` coding.
//!
//! Column types: Int32 → `integer`, Int64 → `bigint`, Float32 → `real`, Float64 → `double
//! precision`, Boolean → `boolean`, Utf8 → `text`, Binary → `bytea`, Timestamp(ns, UTC) →
//! `timestamptz`, Decimal128(p, s) → `numeric(p, s)`, List<T> → `T[]`.
//!
//! Precision: `timestamptz` holds microseconds, so nanoseconds are truncated on write. Reads and
//! `prune` compare the stored (truncated) times exactly against the nanosecond bounds. The range
//! a write deletes is widened to whole microseconds (start rounded down, end rounded up) so that
//! every row an earlier write stored from `[start, end)` is replaced and re-running a write never
//! duplicates rows; with bounds that are not whole microseconds, rows stored in the same
//! microsecond just outside the range are replaced too.
//!
//! Writes delete the range and bulk-load the new rows with binary `COPY` in one transaction:
//! readers see the old rows or the new ones, never a mix.

pub(crate) mod arrow;
pub(crate) mod codec;
mod config;
pub(crate) mod sql;
mod store;

pub use config::PostgresConfig;
pub use store::PostgresOfflineStore;
pub(crate) use store::describe;
