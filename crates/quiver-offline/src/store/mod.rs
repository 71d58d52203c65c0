//! Offline stores: where computed feature history lives, one table per feature view version.
//!
//! - [`OfflineStore`]: the trait every backend implements.
//! - [`OfflineTable`]: which table a call addresses, and its Arrow schema ([`table_schema`]):
//!   the join keys, `event_timestamp` (Timestamp(ns, UTC), not null), `created_timestamp`
//!   (Timestamp(ns, UTC), nullable), then the view's features in schema order.
//! - `parquet/`: the default, a directory of Parquet files partitioned by view version and UTC day.
//! - `postgres/`: one table per view version (a TimescaleDB hypertable when the extension exists).
//!
//! Both backends are also record sinks ([`OfflineStore::records`], `crate::records`): where
//! record namespaces are exported.
//!
//! Semantics every backend guarantees (the conformance suite in `tests/offline_store.rs`):
//! - `write_range(t, start, end, batches)` atomically replaces the rows of `t` whose event time is
//!   in `[start, end)` by `batches` (every row of which must be in that range): re-running a build
//!   over the same range never duplicates rows.
//! - `read_range` returns rows with event time in `[start, end)` (either bound optional), in no
//!   particular order, with exactly the table schema.
//! - `prune(t, before)` deletes rows with event time `< before` and returns how many.
//! - `read_latest(t, keys, as_of, ttl)` answers, per key, with the row that wins "latest as of
//!   `as_of`": the greatest event time `<= as_of` (and `>= as_of - ttl`), ties going to the
//!   greater created time, a null created time losing to any present one. It is the serving
//!   fallback behind the online store, so it must answer ~100 keys in milliseconds: PostgreSQL
//!   runs one indexed query, Parquet keeps a per-table in-memory index (`parquet/index.rs`).
//!   `lookup.rs` turns a winning row into a [`quiver_core::Record`] for both.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use quiver_core::{FeatureView, Field, JoinKey, ScalarType, ValueType};

use crate::error::{OfflineError, Result};

pub(crate) mod lookup;
pub mod parquet;
pub mod postgres;

pub use parquet::ParquetOfflineStore;
pub use postgres::{PostgresConfig, PostgresOfflineStore};

/// The name of the event-time column in every offline table.
pub const EVENT_TIMESTAMP: &str = "event_timestamp";
/// The name of the created-time column in every offline table.
pub const CREATED_TIMESTAMP: &str = "created_timestamp";

/// One feature view version's table.
#[derive(Clone, Debug)]
pub struct OfflineTable {
    pub project: String,
    pub view: String,
    pub version: u32,
    pub schema: SchemaRef,
    /// Names of the join-key columns (the first columns of `schema`).
    pub join_keys: Vec<String>,
}

impl OfflineTable {
    /// The table of a view version, with its schema derived from the definition.
    pub fn for_view(project: &str, view: &FeatureView, version: u32) -> OfflineTable {
        OfflineTable {
            project: project.to_string(),
            view: view.name.clone(),
            version,
            schema: table_schema(view),
            join_keys: view.join_keys.iter().map(|k| k.name.clone()).collect(),
        }
    }

    /// A name usable as a SQL table or directory name: `{project}__{view}__v{version}`.
    pub fn qualified_name(&self) -> String {
        format!("{}__{}__v{}", self.project, self.view, self.version).replace('-', "_")
    }
}

/// The UTC timestamp type used for every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The Arrow type holding a Quiver value type.
pub fn arrow_type(ty: ValueType) -> DataType {
    match ty {
        ValueType::Scalar(s) => scalar_arrow_type(s),
        ValueType::List(s) => DataType::List(Arc::new(ArrowField::new(
            "item",
            scalar_arrow_type(s),
            false,
        ))),
    }
}

fn scalar_arrow_type(s: ScalarType) -> DataType {
    match s {
        ScalarType::Int32 => DataType::Int32,
        ScalarType::Int64 => DataType::Int64,
        ScalarType::Float32 => DataType::Float32,
        ScalarType::Float64 => DataType::Float64,
        ScalarType::Bool => DataType::Boolean,
        ScalarType::String => DataType::Utf8,
        ScalarType::Bytes => DataType::Binary,
        ScalarType::Timestamp => timestamp_type(),
        // rust_decimal's range: 28 digits; scale is per value there, fixed here.
        ScalarType::Decimal => DataType::Decimal128(38, 10),
    }
}

/// The Arrow schema of a view's offline table.
pub fn table_schema(view: &FeatureView) -> SchemaRef {
    layout_schema(&view.join_keys, &view.fields)
}

/// The offline layout for join keys and fields: keys (Int64 or Utf8), `event_timestamp`,
/// `created_timestamp`, then the fields. Shared by offline tables and source reads.
pub fn layout_schema(join_keys: &[JoinKey], fields: &[Field]) -> SchemaRef {
    let mut out: Vec<ArrowField> = join_keys
        .iter()
        .map(|k| {
            let dt = match k.key_type {
                ScalarType::String => DataType::Utf8,
                _ => DataType::Int64,
            };
            ArrowField::new(&k.name, dt, false)
        })
        .collect();
    out.push(ArrowField::new(EVENT_TIMESTAMP, timestamp_type(), false));
    out.push(ArrowField::new(CREATED_TIMESTAMP, timestamp_type(), true));
    out.extend(
        fields
            .iter()
            .map(|f| ArrowField::new(&f.name, arrow_type(f.value_type), true)),
    );
    Arc::new(Schema::new(out))
}

/// An offline store backend.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// Short backend name (`parquet`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Creates the table if it does not exist; returns what it is (e.g. `TimescaleDB hypertable`,
    /// `table with index on (user_id, event_timestamp DESC, created_timestamp DESC NULLS LAST)`,
    /// `parquet directory`).
    async fn ensure_table(&self, table: &OfflineTable) -> Result<String>;

    /// Replaces the rows with event time in `[start, end)` by `batches`; returns rows written.
    async fn write_range(
        &self,
        table: &OfflineTable,
        start: i64,
        end: i64,
        batches: &[RecordBatch],
    ) -> Result<u64>;

    /// Rows with event time in `[start, end)`.
    async fn read_range(
        &self,
        table: &OfflineTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<RecordBatch>>;

    /// Deletes rows with event time before `before`; returns how many.
    async fn prune(&self, table: &OfflineTable, before: i64) -> Result<u64>;

    /// Per key, the latest row with event time <= `as_of` (and >= `as_of - ttl_ns` when given):
    /// ties on event time go to the later created time (a null created time sorts first).
    /// One entry per key, in order; None = no such row.
    ///
    /// Values are in the table's feature order, typed by the view's field types. A key asked
    /// twice is answered twice; an empty key list returns an empty vector. A key whose arity or
    /// value kinds do not match the join keys, or a negative TTL, is an error naming the table.
    /// Backends that cannot answer point lookups return [`OfflineError::Unsupported`].
    async fn read_latest(
        &self,
        table: &OfflineTable,
        keys: &[quiver_core::EntityKey],
        as_of: i64,
        ttl_ns: Option<i64>,
    ) -> Result<Vec<Option<quiver_core::Record>>> {
        let _ = (keys, as_of, ttl_ns);
        Err(OfflineError::Unsupported {
            origin: format!("offline table `{}`", table.qualified_name()),
            message: format!("offline store `{}` cannot look up latest rows", self.kind()),
        })
    }

    /// The store's record sink (`crate::records`): where record namespaces are exported. Stores
    /// that keep no records answer with [`NoRecordSink`](crate::records::NoRecordSink), whose
    /// every call fails.
    fn records(&self) -> &dyn crate::records::RecordSink {
        &crate::records::NoRecordSink
    }

    /// Drops the whole table. Optional.
    async fn drop_table(&self, table: &OfflineTable) -> Result<()> {
        let _ = table;
        Err(OfflineError::Unsupported {
            origin: format!("offline store `{}`", self.kind()),
            message: "dropping tables is not supported".to_string(),
        })
    }
}
