//! Record sinks: where a record namespace's export queue lands in the offline store.
//!
//! Records (transactions, predictions, served-feature logs) are cached online and queued durably;
//! the exporter drains each namespace's queue in batches and hands every batch to a
//! [`RecordSink`] together with the queue position of its last entry. The sink commits the rows
//! and that position atomically, so after a crash the exporter asks
//! [`committed_through`](RecordSink::committed_through), acknowledges what is already in, and
//! resumes after it: every record lands exactly once.
//!
//! - [`RecordTable`]: one namespace's table and its Arrow schema ([`record_schema`]).
//! - `parquet.rs`: [`ParquetOfflineStore`](crate::store::ParquetOfflineStore) as a sink. Files
//!   under `{root}/records/{qualified name}/day=YYYY-MM-DD/`, committed by the table's
//!   `_manifest` (which also holds the position); appends.
//! - `postgres.rs`: [`PostgresOfflineStore`](crate::store::PostgresOfflineStore) as a sink. One
//!   table per namespace with the id column as primary key, upserted from a staging table in one
//!   transaction that also stores the position in `quiver_record_exports`.
//!
//! Both backends implement [`RecordSink`] themselves and hand themselves out through
//! [`OfflineStore::records`](crate::store::OfflineStore::records).
//!
//! Semantics shared by both (the suite in `tests/record_sink.rs`):
//! - `commit(t, batches, through)` makes every row of `batches` and `through` visible together,
//!   or (on any error or crash) neither.
//! - A commit whose `through` is at or before the committed position writes nothing and returns
//!   0: the queue is in order, so its entries were all committed already (an exporter retrying
//!   a batch whose commit succeeded but whose answer it never saw).
//! - One exporter per table at a time: commits to one table are serialized (a per-table lock in
//!   the Parquet store's process, a transaction-scoped advisory lock in PostgreSQL), but two
//!   processes exporting one namespace concurrently would interleave positions.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use async_trait::async_trait;
use quiver_core::{QueuePosition, ValueType};

use crate::error::{OfflineError, Result};
use crate::store::lookup::value_type_of;
use crate::store::{EVENT_TIMESTAMP, arrow_type, timestamp_type};

mod parquet;
mod postgres;

/// The column holding when Quiver accepted a record.
pub const ACCEPTED_AT: &str = "accepted_at";
/// The column holding the whole record as JSON.
pub const PAYLOAD: &str = "payload";

/// One record namespace's table in the offline store.
#[derive(Clone, Debug)]
pub struct RecordTable {
    pub project: String,
    pub namespace: String,
    /// The column holding the record id (Utf8, not null); the upsert key in PostgreSQL.
    pub id_column: String,
    /// The full schema: `id_column` (Utf8, not null), `event_timestamp` (Timestamp(ns, "UTC"),
    /// not null: the record's time; Parquet partitions by its UTC day), `accepted_at`
    /// (Timestamp(ns, "UTC"), not null: when Quiver accepted it), then the namespace's declared
    /// fields (any type [`arrow_type`] produces, nullable), then `payload` (Utf8, not null: the
    /// whole record as JSON). See [`record_schema`].
    pub schema: SchemaRef,
}

impl RecordTable {
    /// The table of a namespace whose declared fields are `fields` (name, type), in that order.
    pub fn new(
        project: &str,
        namespace: &str,
        id_column: &str,
        fields: &[(String, ValueType)],
    ) -> RecordTable {
        RecordTable {
            project: project.to_string(),
            namespace: namespace.to_string(),
            id_column: id_column.to_string(),
            schema: record_schema(id_column, fields),
        }
    }

    /// `{project}__records__{namespace}` with `-` replaced by `_` (a directory / SQL table name).
    pub fn qualified_name(&self) -> String {
        format!("{}__records__{}", self.project, self.namespace).replace('-', "_")
    }

    /// How errors name the table.
    pub(crate) fn origin(&self) -> String {
        format!("record table `{}`", self.qualified_name())
    }

    /// The declared fields: the schema's columns between `accepted_at` and `payload`.
    pub fn declared_fields(&self) -> &[arrow_schema::FieldRef] {
        let fields = self.schema.fields();
        fields.get(3..fields.len().saturating_sub(1)).unwrap_or(&[])
    }

    /// Checks that `schema` has the layout [`record_schema`] builds, so a sink never creates
    /// or writes a table it could not read back.
    pub fn validate(&self) -> Result<()> {
        let unsupported = |message: String| OfflineError::Unsupported {
            origin: self.origin(),
            message,
        };
        for (what, name) in [("project", &self.project), ("namespace", &self.namespace)] {
            if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
                return Err(unsupported(format!(
                    "`{name}` is not a usable {what} name for a record table"
                )));
            }
        }
        let fields = self.schema.fields();
        let expect = |at: usize, name: &str, ty: &DataType| -> Result<()> {
            let Some(field) = fields.get(at) else {
                return Err(unsupported(format!(
                    "the schema has {} columns; a record table needs `{}`, `{EVENT_TIMESTAMP}`, \
                     `{ACCEPTED_AT}`, its fields, then `{PAYLOAD}`",
                    fields.len(),
                    self.id_column
                )));
            };
            if field.name() != name {
                return Err(unsupported(format!(
                    "column {} is `{}` but must be `{name}` (a record table's columns are `{}`, \
                     `{EVENT_TIMESTAMP}`, `{ACCEPTED_AT}`, its fields, then `{PAYLOAD}`)",
                    at + 1,
                    field.name(),
                    self.id_column
                )));
            }
            if field.data_type() != ty || field.is_nullable() {
                return Err(OfflineError::IncompatibleType {
                    origin: self.origin(),
                    column: name.to_string(),
                    found: format!(
                        "{}{}",
                        field.data_type(),
                        if field.is_nullable() {
                            " (nullable)"
                        } else {
                            ""
                        }
                    ),
                    expected: format!("a record table stores {ty} (not null)"),
                });
            }
            Ok(())
        };
        expect(0, &self.id_column, &DataType::Utf8)?;
        expect(1, EVENT_TIMESTAMP, &timestamp_type())?;
        expect(2, ACCEPTED_AT, &timestamp_type())?;
        expect(fields.len().max(4) - 1, PAYLOAD, &DataType::Utf8)?;
        let mut seen = HashSet::new();
        for field in fields {
            if !seen.insert(field.name().as_str()) {
                return Err(unsupported(format!(
                    "column `{}` appears twice in the schema",
                    field.name()
                )));
            }
        }
        for field in self.declared_fields() {
            if value_type_of(field.data_type()).is_none() {
                return Err(OfflineError::IncompatibleType {
                    origin: self.origin(),
                    column: field.name().clone(),
                    found: field.data_type().to_string(),
                    expected: "a Quiver value type's Arrow type".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The non-empty `batches` relabelled with exactly the table schema, after checking that
    /// each has the table's columns (names and types, in order) and no null where the schema
    /// has none.
    pub(crate) fn conform(&self, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
        self.validate()?;
        let expected = self.schema.fields();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let found = batch.schema();
            let found = found.fields();
            for (i, field) in expected.iter().enumerate() {
                let Some(given) = found.get(i).filter(|g| g.name() == field.name()) else {
                    return Err(OfflineError::MissingColumn {
                        origin: self.origin(),
                        column: field.name().clone(),
                        available: found
                            .iter()
                            .map(|f| format!("`{}`", f.name()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                if given.data_type() != field.data_type() {
                    return Err(OfflineError::IncompatibleType {
                        origin: self.origin(),
                        column: field.name().clone(),
                        found: given.data_type().to_string(),
                        expected: format!("the table stores {}", field.data_type()),
                    });
                }
            }
            if let Some(extra) = found.get(expected.len()) {
                return Err(OfflineError::Unsupported {
                    origin: self.origin(),
                    message: format!("batch column `{}` is not in the table", extra.name()),
                });
            }
            if batch.num_rows() == 0 {
                continue;
            }
            // Also refuses nulls in the not-null columns.
            let conformed = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
                .map_err(|e| OfflineError::BadValue {
                    origin: self.origin(),
                    column: String::new(),
                    message: e.to_string(),
                })?;
            out.push(conformed);
        }
        Ok(out)
    }
}

/// Prefixes a backend's store error with what was being done (which names the table), so a
/// message read on its own says which table failed and how.
pub(crate) fn in_context(e: OfflineError, doing: &str) -> OfflineError {
    match e {
        OfflineError::Store { store, message } => OfflineError::Store {
            store,
            message: format!("{doing}: {message}"),
        },
        other => other,
    }
}

/// A record table's schema: `id_column` (Utf8, not null), `event_timestamp` and `accepted_at`
/// (Timestamp(ns, UTC), not null), the declared `fields` (nullable), then `payload` (Utf8, not
/// null).
pub fn record_schema(id_column: &str, fields: &[(String, ValueType)]) -> SchemaRef {
    let mut out = vec![
        ArrowField::new(id_column, DataType::Utf8, false),
        ArrowField::new(EVENT_TIMESTAMP, timestamp_type(), false),
        ArrowField::new(ACCEPTED_AT, timestamp_type(), false),
    ];
    out.extend(
        fields
            .iter()
            .map(|(name, ty)| ArrowField::new(name, arrow_type(*ty), true)),
    );
    out.push(ArrowField::new(PAYLOAD, DataType::Utf8, false));
    Arc::new(Schema::new(out))
}

/// Where a record namespace's export queue is committed (see the module docs).
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// `parquet` or `postgres`.
    fn kind(&self) -> &'static str;

    /// The position of the last queue entry committed into `table` (None: nothing yet).
    async fn committed_through(&self, table: &RecordTable) -> Result<Option<QueuePosition>>;

    /// Commits `batches` (each with exactly `table.schema`) and `through` atomically: after any
    /// crash or failure, either every row and the new position are visible, or none of them and
    /// the old position. Returns the rows committed (every row of `batches`; 0 when `through`
    /// is at or before the committed position, in which case nothing is written).
    ///
    /// PostgreSQL upserts on the id column: a row whose `accepted_at` is not older replaces the
    /// stored one; of several rows with one id in a commit the latest `accepted_at` wins (on a
    /// tie, the later row). Parquet appends.
    async fn commit(
        &self,
        table: &RecordTable,
        batches: &[RecordBatch],
        through: QueuePosition,
    ) -> Result<u64>;

    /// Every stored row, with exactly `table.schema` (no rows when nothing was committed).
    async fn read_all(&self, table: &RecordTable) -> Result<Vec<RecordBatch>>;

    /// The stored rows with `start <= event_timestamp < end` (ns UTC; `None`: unbounded), with
    /// exactly `table.schema`. Parquet reads only the day partitions the range touches;
    /// PostgreSQL filters in the query.
    async fn read_range(
        &self,
        table: &RecordTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<RecordBatch>>;
}

/// The sink of offline stores that keep no records: every call fails, naming the table.
#[derive(Debug)]
pub struct NoRecordSink;

impl NoRecordSink {
    fn refuse(table: &RecordTable) -> OfflineError {
        OfflineError::Unsupported {
            origin: table.origin(),
            message: "this offline store does not store records".to_string(),
        }
    }
}

#[async_trait]
impl RecordSink for NoRecordSink {
    fn kind(&self) -> &'static str {
        "none"
    }

    async fn committed_through(&self, table: &RecordTable) -> Result<Option<QueuePosition>> {
        Err(Self::refuse(table))
    }

    async fn commit(
        &self,
        table: &RecordTable,
        _batches: &[RecordBatch],
        _through: QueuePosition,
    ) -> Result<u64> {
        Err(Self::refuse(table))
    }

    async fn read_all(&self, table: &RecordTable) -> Result<Vec<RecordBatch>> {
        Err(Self::refuse(table))
    }

    async fn read_range(
        &self,
        table: &RecordTable,
        _start: Option<i64>,
        _end: Option<i64>,
    ) -> Result<Vec<RecordBatch>> {
        Err(Self::refuse(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::ScalarType;

    fn table() -> RecordTable {
        RecordTable::new(
            "shop-eu",
            "card-tx",
            "tx_id",
            &[("amount".to_string(), ValueType::Scalar(ScalarType::Float64))],
        )
    }

    #[test]
    fn names_and_schema() {
        let t = table();
        assert_eq!(t.qualified_name(), "shop_eu__records__card_tx");
        let names: Vec<&str> = t
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["tx_id", EVENT_TIMESTAMP, ACCEPTED_AT, "amount", PAYLOAD]
        );
        assert_eq!(t.declared_fields().len(), 1);
        t.validate().unwrap();
    }

    #[test]
    fn validate_names_the_table_and_the_problem() {
        let mut t = table();
        t.id_column = "id".into();
        let err = t.validate().unwrap_err().to_string();
        assert!(
            err.contains("record table `shop_eu__records__card_tx`"),
            "{err}"
        );
        assert!(err.contains("`tx_id` but must be `id`"), "{err}");

        let mut t = table();
        let mut fields: Vec<ArrowField> = t
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[3] = ArrowField::new("amount", DataType::UInt8, true);
        t.schema = Arc::new(Schema::new(fields.clone()));
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("`amount` is UInt8"), "{err}");

        fields[3] = ArrowField::new(PAYLOAD, DataType::Utf8, true);
        t.schema = Arc::new(Schema::new(fields[..4].to_vec()));
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("`payload`"), "{err}");

        t.namespace = "../x".into();
        assert!(t.validate().is_err());
    }
}
