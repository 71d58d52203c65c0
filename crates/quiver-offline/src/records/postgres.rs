//! [`PostgresOfflineStore`] as a [`RecordSink`].
//!
//! Tables, in the store's schema:
//! - `"{schema}"."{project}__records__{namespace}"`: the record table's columns (types as in the
//!   feature tables, `store/postgres/mod.rs`), `PRIMARY KEY` on the id column. Created on the
//!   first commit; a declared field the table lacks is added (`ALTER TABLE ... ADD COLUMN`,
//!   nullable, since rows already stored have no value for it); a column of another type is an
//!   error naming the table, the column and both types. Columns the table has beyond the schema
//!   are left alone.
//! - `"{schema}"."quiver_record_exports"(table_name text PRIMARY KEY, position text NOT NULL,
//!   updated_at timestamptz)`: each record table's committed position.
//!
//! A commit is one transaction: a transaction-scoped advisory lock on the table (one exporter
//! at a time), the stored position read (a commit at or before it is a no-op), a temporary
//! staging table (`ON COMMIT DROP`) filled by binary `COPY`, one
//! `INSERT ... SELECT DISTINCT ON (id) ... ON CONFLICT (id) DO UPDATE ... WHERE stored
//! accepted_at <= new accepted_at` into the table, the position upserted, `COMMIT`. Any failure
//! (the server gone included) before `COMMIT` leaves nothing of it.
//!
//! Precision: `timestamptz` holds microseconds, so `event_timestamp` and `accepted_at` come
//! back truncated to whole microseconds, and two versions of a record accepted within one
//! microsecond count as equally new (the later one in the queue wins).

use std::fmt::Write as _;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, FieldRef};
use async_trait::async_trait;
use quiver_core::QueuePosition;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::{ACCEPTED_AT, RecordSink, RecordTable, in_context};
use crate::error::{OfflineError, Result};
use crate::store::PostgresOfflineStore;
use crate::store::postgres::arrow::Column;
use crate::store::postgres::codec::Cell;
use crate::store::postgres::describe;
use crate::store::postgres::sql::{DDL_LOCK, column_type, quote_ident};

/// The table holding every record table's committed position, in the store's schema.
pub const EXPORTS_TABLE: &str = "quiver_record_exports";
/// The staging table's name (temporary, so private to the session and dropped at commit).
const STAGE: &str = "quiver_record_stage";
/// The staging column numbering rows in commit order: of two rows with one id and one
/// `accepted_at`, the later one wins.
const ORDINAL: &str = "__quiver_ordinal";

/// One record table's statements, every identifier quoted.
struct RecordSql {
    /// `"schema"."table"`.
    qualified: String,
    /// `"schema"."quiver_record_exports"`.
    exports: String,
    /// The table's name in `quiver_record_exports`: its qualified name, unquoted.
    name: String,
    id: String,
    /// Quoted column names in schema order.
    columns: Vec<String>,
    /// Column declarations (name, type, NOT NULL where the schema says so) in schema order.
    decls: Vec<String>,
    /// Wire types in schema order.
    types: Vec<Type>,
    /// The lock key serializing commits to this table.
    lock_key: String,
}

impl RecordSql {
    fn new(schema: &str, table: &RecordTable) -> Result<RecordSql> {
        let unsupported = |message: String| OfflineError::Unsupported {
            origin: table.origin(),
            message,
        };
        let schema_q = quote_ident(schema).map_err(unsupported)?;
        let name = table.qualified_name();
        let qualified = format!("{schema_q}.{}", quote_ident(&name).map_err(unsupported)?);
        let exports = format!(
            "{schema_q}.{}",
            quote_ident(EXPORTS_TABLE).map_err(unsupported)?
        );
        let mut columns = Vec::new();
        let mut decls = Vec::new();
        let mut types = Vec::new();
        for field in table.schema.fields() {
            let quoted = quote_ident(field.name()).map_err(unsupported)?;
            let (decl, ty) = column_type(field.data_type())
                .map_err(|e| unsupported(format!("column `{}`: {e}", field.name())))?;
            let null = if field.is_nullable() { "" } else { " NOT NULL" };
            decls.push(format!("{quoted} {decl}{null}"));
            columns.push(quoted);
            types.push(ty);
        }
        Ok(RecordSql {
            id: quote_ident(&table.id_column).map_err(unsupported)?,
            lock_key: format!("quiver.records {qualified}"),
            qualified,
            exports,
            name,
            columns,
            decls,
            types,
        })
    }

    fn create_exports(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, position text NOT NULL, \
             updated_at timestamptz)",
            self.exports
        )
    }

    fn create_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.qualified,
            self.decls.join(", "),
            self.id
        )
    }

    /// The staging table: the table's columns without constraints, plus the ordinal.
    fn create_stage(&self) -> String {
        let mut out = format!("CREATE TEMPORARY TABLE \"{STAGE}\" (");
        for (column, decl) in self.columns.iter().zip(&self.decls) {
            // The declaration without NOT NULL: the batches were checked already.
            let ty = decl
                .strip_prefix(column.as_str())
                .unwrap_or(decl)
                .trim_end_matches(" NOT NULL");
            let _ = write!(out, "{column}{ty}, ");
        }
        let _ = write!(out, "\"{ORDINAL}\" bigint) ON COMMIT DROP");
        out
    }

    fn copy_stage(&self) -> String {
        format!(
            "COPY pg_temp.\"{STAGE}\" ({}, \"{ORDINAL}\") FROM STDIN (FORMAT binary)",
            self.columns.join(", ")
        )
    }

    /// The staged rows into the table: per id the latest `accepted_at` (then the latest
    /// ordinal), replacing a stored row unless the stored one was accepted later.
    fn upsert(&self) -> String {
        let columns = self.columns.join(", ");
        let updates = self
            .columns
            .iter()
            .filter(|c| **c != self.id)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let accepted = format!("\"{ACCEPTED_AT}\"");
        format!(
            "INSERT INTO {table} AS target ({columns}) \
             SELECT DISTINCT ON ({id}) {columns} FROM pg_temp.\"{STAGE}\" \
             ORDER BY {id}, {accepted} DESC, \"{ORDINAL}\" DESC \
             ON CONFLICT ({id}) DO UPDATE SET {updates} \
             WHERE target.{accepted} <= EXCLUDED.{accepted}",
            table = self.qualified,
            id = self.id,
        )
    }

    fn select_position(&self) -> String {
        format!(
            "SELECT position FROM {} WHERE table_name = $1",
            self.exports
        )
    }

    fn upsert_position(&self) -> String {
        format!(
            "INSERT INTO {} (table_name, position, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (table_name) DO UPDATE SET position = EXCLUDED.position, \
             updated_at = EXCLUDED.updated_at",
            self.exports
        )
    }

    fn select_all(&self) -> String {
        format!("SELECT {} FROM {}", self.columns.join(", "), self.qualified)
    }

    /// Rows with `start <= event_timestamp < end`, bounds in µs since the epoch (integers, so
    /// they are written into the statement as literals).
    fn select_range(&self, start_us: Option<i64>, end_us: Option<i64>) -> String {
        let at = |us: i64| format!("'epoch'::timestamptz + {us} * interval '1 microsecond'");
        let mut conditions = Vec::new();
        if let Some(s) = start_us {
            conditions.push(format!("\"event_timestamp\" >= {}", at(s)));
        }
        if let Some(e) = end_us {
            conditions.push(format!("\"event_timestamp\" < {}", at(e)));
        }
        if conditions.is_empty() {
            return self.select_all();
        }
        format!("{} WHERE {}", self.select_all(), conditions.join(" AND "))
    }
}

/// A column as the catalog has it.
struct Existing {
    name: String,
    type_oid: u32,
    typmod: i32,
    /// `format_type`'s rendering, for messages.
    rendered: String,
}

/// The `atttypmod` PostgreSQL stores for `numeric(p, s)`.
fn numeric_typmod(precision: u8, scale: i8) -> i32 {
    ((i32::from(precision) << 16) | i32::from(scale)) + 4
}

/// Whether a stored column holds what `field` needs.
fn fits(field: &FieldRef, wire: &Type, existing: &Existing) -> bool {
    if existing.type_oid != wire.oid() {
        return false;
    }
    let decimal = match field.data_type() {
        DataType::Decimal128(p, s) => Some((*p, *s)),
        DataType::List(item) => match item.data_type() {
            DataType::Decimal128(p, s) => Some((*p, *s)),
            _ => None,
        },
        _ => None,
    };
    decimal.is_none_or(|(p, s)| existing.typmod == numeric_typmod(p, s))
}

impl PostgresOfflineStore {
    fn record_sql(&self, table: &RecordTable) -> Result<RecordSql> {
        RecordSql::new(self.schema(), table)
    }

    /// The cache key of a table checked against its schema.
    fn record_key(sql: &RecordSql, table: &RecordTable) -> String {
        let mut key = sql.qualified.clone();
        for field in table.schema.fields() {
            let _ = write!(
                key,
                "|{}:{}:{}",
                field.name(),
                field.data_type(),
                field.is_nullable()
            );
        }
        key
    }

    fn forget_record_table(&self, key: &str) {
        let mut known = self.record_tables.lock().unwrap_or_else(|p| p.into_inner());
        known.remove(key);
    }

    /// Creates the schema, the exports table and the record table if missing, adds declared
    /// fields the table lacks, and refuses columns of another type. Once per table and schema
    /// per store.
    async fn ensure_record_table(&self, table: &RecordTable, sql: &RecordSql) -> Result<()> {
        let key = Self::record_key(sql, table);
        {
            let known = self.record_tables.lock().unwrap_or_else(|p| p.into_inner());
            if known.contains(&key) {
                return Ok(());
            }
        }
        let doing = format!("creating record table {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let create_schema = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(self.schema()).map_err(|e| self.error(&doing, e))?
        );
        let mut client = self.client().await.map_err(|e| in_context(e, &doing))?;
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute(DDL_LOCK, &[]).await.map_err(fail)?;
        tx.batch_execute(&create_schema).await.map_err(fail)?;
        tx.batch_execute(&sql.create_exports())
            .await
            .map_err(fail)?;
        tx.batch_execute(&sql.create_table()).await.map_err(fail)?;
        let rows = tx
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod, \
                 format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute AS a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                &[&sql.qualified],
            )
            .await
            .map_err(fail)?;
        let existing = rows
            .iter()
            .map(|row| {
                Ok(Existing {
                    name: row.try_get(0)?,
                    type_oid: row.try_get(1)?,
                    typmod: row.try_get(2)?,
                    rendered: row.try_get(3)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(fail)?;
        for ((field, wire), (column, decl)) in table
            .schema
            .fields()
            .iter()
            .zip(&sql.types)
            .zip(sql.columns.iter().zip(&sql.decls))
        {
            match existing.iter().find(|e| e.name == *field.name()) {
                Some(found) if fits(field, wire, found) => {}
                Some(found) => {
                    let declared = decl
                        .strip_prefix(column.as_str())
                        .unwrap_or(decl)
                        .trim()
                        .trim_end_matches(" NOT NULL");
                    return Err(OfflineError::IncompatibleType {
                        origin: format!("record table {}", sql.qualified),
                        column: field.name().clone(),
                        found: format!("`{}` in PostgreSQL", found.rendered),
                        expected: format!(
                            "the namespace declares {} (`{declared}`)",
                            field.data_type()
                        ),
                    });
                }
                None if field.is_nullable() => {
                    let declared = decl.strip_prefix(column.as_str()).unwrap_or(decl);
                    tx.batch_execute(&format!(
                        "ALTER TABLE {} ADD COLUMN {column}{declared}",
                        sql.qualified
                    ))
                    .await
                    .map_err(fail)?;
                }
                None => {
                    return Err(self.error(
                        &doing,
                        format!(
                            "the existing table has no column `{}`, which every record table \
                             needs; was it created by something else?",
                            field.name()
                        ),
                    ));
                }
            }
        }
        tx.commit().await.map_err(fail)?;
        let mut known = self.record_tables.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(key);
        Ok(())
    }

    async fn commit_records(
        &self,
        table: &RecordTable,
        sql: &RecordSql,
        batches: &[RecordBatch],
        through: QueuePosition,
    ) -> Result<u64> {
        let columns = batches
            .iter()
            .map(|b| {
                b.columns()
                    .iter()
                    .map(|c| Column::new(c.as_ref()))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| OfflineError::Unsupported {
                origin: table.origin(),
                message,
            })?;
        let doing = format!("committing {} through {through}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let mut client = self.client().await.map_err(|e| in_context(e, &doing))?;
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&sql.lock_key],
        )
        .await
        .map_err(fail)?;
        let stored = tx
            .query_opt(&sql.select_position(), &[&sql.name])
            .await
            .map_err(fail)?
            .map(|row| row.try_get::<_, String>(0))
            .transpose()
            .map_err(fail)?;
        if let Some(stored) = stored {
            let stored: QueuePosition = stored.parse().map_err(|e| {
                self.error(&doing, format!("the stored position is unreadable: {e}"))
            })?;
            if through <= stored {
                tx.rollback().await.map_err(fail)?;
                return Ok(0);
            }
        }
        tx.batch_execute(&sql.create_stage()).await.map_err(fail)?;
        let sink = tx.copy_in(&sql.copy_stage()).await.map_err(fail)?;
        let mut types = sql.types.clone();
        types.push(Type::INT8);
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        let mut row = Vec::with_capacity(types.len());
        let mut ordinal = 0i64;
        for (batch, columns) in batches.iter().zip(&columns) {
            for i in 0..batch.num_rows() {
                row.clear();
                row.extend(columns.iter().map(|c| c.cell(i)));
                row.push(Cell::I64(ordinal));
                ordinal += 1;
                writer.as_mut().write_raw(row.iter()).await.map_err(fail)?;
            }
        }
        let staged = writer.as_mut().finish().await.map_err(fail)?;
        tx.execute(&sql.upsert(), &[]).await.map_err(fail)?;
        tx.execute(&sql.upsert_position(), &[&sql.name, &through.to_string()])
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(staged)
    }
}

#[async_trait]
impl RecordSink for PostgresOfflineStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn committed_through(&self, table: &RecordTable) -> Result<Option<QueuePosition>> {
        table.validate()?;
        let sql = self.record_sql(table)?;
        let doing = format!("reading the committed position of {}", sql.qualified);
        let client = self.client().await.map_err(|e| in_context(e, &doing))?;
        let row = match client.query_opt(&sql.select_position(), &[&sql.name]).await {
            Ok(row) => row,
            // No exports table yet: nothing was ever committed in this schema.
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(None),
            Err(e) => return Err(self.error(&doing, describe(&e))),
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row
            .try_get(0)
            .map_err(|e| self.error(&doing, describe(&e)))?;
        text.parse()
            .map(Some)
            .map_err(|e| self.error(&doing, format!("the stored position is unreadable: {e}")))
    }

    async fn commit(
        &self,
        table: &RecordTable,
        batches: &[RecordBatch],
        through: QueuePosition,
    ) -> Result<u64> {
        let batches = table.conform(batches)?;
        let sql = self.record_sql(table)?;
        self.ensure_record_table(table, &sql).await?;
        let result = self.commit_records(table, &sql, &batches, through).await;
        if result.is_err() {
            // The table may have been dropped or altered behind our back: check it again next
            // time.
            self.forget_record_table(&Self::record_key(&sql, table));
        }
        result
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
        let sql = self.record_sql(table)?;
        let doing = format!("reading a time range of {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let client = self.client().await.map_err(|e| in_context(e, &doing))?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&sql.qualified],
            )
            .await
            .map_err(fail)?
            .try_get(0)
            .map_err(fail)?;
        if !exists {
            return Ok(Vec::new());
        }
        // Stored times are whole µs: t >= s ns exactly when t_µs >= ceil(s / 1000).
        let ceil_us = |ns: i64| ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) != 0);
        let stream = client
            .query_raw(
                &sql.select_range(start.map(ceil_us), end.map(ceil_us)),
                std::iter::empty::<&str>(),
            )
            .await
            .map_err(fail)?;
        self.read_batches(stream, &table.schema, &doing).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::{ScalarType, ValueType};

    #[test]
    fn builds_the_commit_statements() {
        let table = RecordTable::new(
            "shop",
            "card-tx",
            "tx_id",
            &[("amount".into(), ValueType::Scalar(ScalarType::Decimal))],
        );
        let sql = RecordSql::new("quiver", &table).unwrap();
        assert_eq!(
            sql.create_table(),
            "CREATE TABLE IF NOT EXISTS \"quiver\".\"shop__records__card_tx\" (\"tx_id\" text \
             NOT NULL, \"event_timestamp\" timestamptz NOT NULL, \"accepted_at\" timestamptz NOT \
             NULL, \"amount\" numeric(38, 10), \"payload\" text NOT NULL, PRIMARY KEY (\"tx_id\"))"
        );
        assert_eq!(
            sql.create_stage(),
            "CREATE TEMPORARY TABLE \"quiver_record_stage\" (\"tx_id\" text, \"event_timestamp\" \
             timestamptz, \"accepted_at\" timestamptz, \"amount\" numeric(38, 10), \"payload\" \
             text, \"__quiver_ordinal\" bigint) ON COMMIT DROP"
        );
        assert_eq!(
            sql.upsert(),
            "INSERT INTO \"quiver\".\"shop__records__card_tx\" AS target (\"tx_id\", \
             \"event_timestamp\", \"accepted_at\", \"amount\", \"payload\") SELECT DISTINCT ON \
             (\"tx_id\") \"tx_id\", \"event_timestamp\", \"accepted_at\", \"amount\", \"payload\" \
             FROM pg_temp.\"quiver_record_stage\" ORDER BY \"tx_id\", \"accepted_at\" DESC, \
             \"__quiver_ordinal\" DESC ON CONFLICT (\"tx_id\") DO UPDATE SET \"event_timestamp\" = \
             EXCLUDED.\"event_timestamp\", \"accepted_at\" = EXCLUDED.\"accepted_at\", \"amount\" \
             = EXCLUDED.\"amount\", \"payload\" = EXCLUDED.\"payload\" WHERE \
             target.\"accepted_at\" <= EXCLUDED.\"accepted_at\""
        );
        assert_eq!(numeric_typmod(38, 10), 2_490_382);
    }
}
