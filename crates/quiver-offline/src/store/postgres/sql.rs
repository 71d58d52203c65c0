//! The SQL the PostgreSQL store runs: static statements from the `.sql` files beside this one,
//! and the per-table statements built from the Arrow schema with every identifier quoted.

use arrow_schema::{DataType, TimeUnit};
use tokio_postgres::types::Type;

use crate::store::{EVENT_TIMESTAMP, OfflineTable};

pub(super) const HAS_TIMESCALEDB: &str = include_str!("has_timescaledb.sql");
pub(super) const CREATE_HYPERTABLE: &str = include_str!("create_hypertable.sql");
pub(super) const HAS_INDEX: &str = include_str!("has_index.sql");
pub(super) const DDL_LOCK: &str = include_str!("ddl_lock.sql");

/// PostgreSQL silently truncates longer identifiers, which could make two tables one.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// `"name"` with embedded quotes doubled; an error for names PostgreSQL would alter or reject.
pub(super) fn quote_ident(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('\0') {
        return Err(format!("`{name}` is not a valid PostgreSQL identifier"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "`{name}` is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte identifier limit; \
             use shorter project or view names"
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// The column type declaration and the wire type of an Arrow type.
pub(crate) fn column_type(dt: &DataType) -> Result<(String, Type), String> {
    let scalar = |dt: &DataType| -> Option<(String, Type, Type)> {
        Some(match dt {
            DataType::Int32 => ("integer".into(), Type::INT4, Type::INT4_ARRAY),
            DataType::Int64 => ("bigint".into(), Type::INT8, Type::INT8_ARRAY),
            DataType::Float32 => ("real".into(), Type::FLOAT4, Type::FLOAT4_ARRAY),
            DataType::Float64 => ("double precision".into(), Type::FLOAT8, Type::FLOAT8_ARRAY),
            DataType::Boolean => ("boolean".into(), Type::BOOL, Type::BOOL_ARRAY),
            DataType::Utf8 => ("text".into(), Type::TEXT, Type::TEXT_ARRAY),
            DataType::Binary => ("bytea".into(), Type::BYTEA, Type::BYTEA_ARRAY),
            // Microsecond precision: nanoseconds are truncated (see `codec.rs`).
            DataType::Timestamp(TimeUnit::Nanosecond, _) => (
                "timestamptz".into(),
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ_ARRAY,
            ),
            // A declared precision and scale make PostgreSQL enforce what Arrow can hold back.
            DataType::Decimal128(p, s) if *s >= 0 => (
                format!("numeric({p}, {s})"),
                Type::NUMERIC,
                Type::NUMERIC_ARRAY,
            ),
            _ => return None,
        })
    };
    let unsupported = || format!("Arrow type {dt} has no PostgreSQL column type here");
    match dt {
        DataType::List(item) => {
            let (decl, _, array) = scalar(item.data_type()).ok_or_else(unsupported)?;
            Ok((format!("{decl}[]"), array))
        }
        other => {
            let (decl, ty, _) = scalar(other).ok_or_else(unsupported)?;
            Ok((decl, ty))
        }
    }
}

/// The statements of one table.
pub(super) struct TableSql {
    /// `"schema"."table"`.
    pub qualified: String,
    /// Quoted column names in schema order.
    pub columns: Vec<String>,
    /// Wire types in schema order (for binary COPY).
    pub types: Vec<Type>,
    /// Column declarations in schema order.
    decls: Vec<String>,
    /// Quoted join keys then `"event_timestamp"`: the lookup index.
    index_columns: Vec<String>,
}

impl TableSql {
    pub(super) fn new(schema: &str, table: &OfflineTable) -> Result<TableSql, String> {
        let qualified = format!(
            "{}.{}",
            quote_ident(schema)?,
            quote_ident(&table.qualified_name())?
        );
        let mut columns = Vec::new();
        let mut types = Vec::new();
        let mut decls = Vec::new();
        for field in table.schema.fields() {
            let name = quote_ident(field.name())?;
            let (decl, ty) = column_type(field.data_type())
                .map_err(|e| format!("column `{}`: {e}", field.name()))?;
            let null = if field.is_nullable() { "" } else { " NOT NULL" };
            decls.push(format!("{name} {decl}{null}"));
            columns.push(name);
            types.push(ty);
        }
        let index_columns = table
            .join_keys
            .iter()
            .map(String::as_str)
            .chain([EVENT_TIMESTAMP])
            .map(quote_ident)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TableSql {
            qualified,
            columns,
            types,
            decls,
            index_columns,
        })
    }

    pub(super) fn create_schema(schema: &str) -> Result<String, String> {
        Ok(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)?
        ))
    }

    pub(super) fn create_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.qualified,
            self.decls.join(", ")
        )
    }

    /// Unnamed, so PostgreSQL picks a name that fits its identifier limit; `has_index.sql`
    /// finds it again by its columns.
    pub(super) fn create_index(&self) -> String {
        format!(
            "CREATE INDEX ON {} ({})",
            self.qualified,
            self.index_columns.join(", ")
        )
    }

    /// Index column names unquoted, as `has_index.sql` compares them.
    pub(super) fn index_column_names(table: &OfflineTable) -> Vec<String> {
        table
            .join_keys
            .iter()
            .cloned()
            .chain([EVENT_TIMESTAMP.to_string()])
            .collect()
    }

    /// `WHERE` on event time with `$n` parameters for the bounds that are present.
    fn time_filter(lower: bool, upper: bool) -> String {
        let ts = format!("\"{EVENT_TIMESTAMP}\"");
        match (lower, upper) {
            (true, true) => format!(" WHERE {ts} >= $1 AND {ts} < $2"),
            (true, false) => format!(" WHERE {ts} >= $1"),
            (false, true) => format!(" WHERE {ts} < $1"),
            (false, false) => String::new(),
        }
    }

    pub(super) fn delete(&self, lower: bool, upper: bool) -> String {
        format!(
            "DELETE FROM {}{}",
            self.qualified,
            Self::time_filter(lower, upper)
        )
    }

    pub(super) fn select(&self, lower: bool, upper: bool) -> String {
        format!(
            "SELECT {} FROM {}{}",
            self.columns.join(", "),
            self.qualified,
            Self::time_filter(lower, upper)
        )
    }

    pub(super) fn copy_in(&self) -> String {
        format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.qualified,
            self.columns.join(", ")
        )
    }

    pub(super) fn drop_table(&self) -> String {
        format!("DROP TABLE IF EXISTS {}", self.qualified)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::store::{CREATED_TIMESTAMP, timestamp_type};

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident(&"x".repeat(64)).is_err());
    }

    #[test]
    fn builds_table_statements() {
        let table = OfflineTable {
            project: "shop".into(),
            view: "user-spend".into(),
            version: 2,
            schema: Arc::new(Schema::new(vec![
                Field::new("user_id", DataType::Int64, false),
                Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
                Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
                Field::new(
                    "tags",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                    true,
                ),
                Field::new("amount", DataType::Decimal128(38, 10), true),
            ])),
            join_keys: vec!["user_id".into()],
        };
        let sql = TableSql::new("quiver", &table).unwrap();
        assert_eq!(
            sql.create_table(),
            "CREATE TABLE IF NOT EXISTS \"quiver\".\"shop__user_spend__v2\" (\"user_id\" bigint \
             NOT NULL, \"event_timestamp\" timestamptz NOT NULL, \"created_timestamp\" \
             timestamptz, \"tags\" text[], \"amount\" numeric(38, 10))"
        );
        assert_eq!(
            sql.create_index(),
            "CREATE INDEX ON \"quiver\".\"shop__user_spend__v2\" (\"user_id\", \"event_timestamp\")"
        );
        assert_eq!(
            sql.delete(true, true),
            "DELETE FROM \"quiver\".\"shop__user_spend__v2\" WHERE \"event_timestamp\" >= $1 AND \
             \"event_timestamp\" < $2"
        );
        assert_eq!(sql.types[3], Type::TEXT_ARRAY);
    }
}
