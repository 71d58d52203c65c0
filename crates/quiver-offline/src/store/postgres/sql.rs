//! The SQL the PostgreSQL store runs: static statements from the `.sql` files beside this one,
//! and the per-table statements built from the Arrow schema with every identifier quoted.

use arrow_schema::{DataType, TimeUnit};
use tokio_postgres::types::Type;

use crate::store::{CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineTable};

pub(super) const HAS_TIMESCALEDB: &str = include_str!("has_timescaledb.sql");
pub(super) const CREATE_HYPERTABLE: &str = include_str!("create_hypertable.sql");
pub(super) const HAS_INDEX: &str = include_str!("has_index.sql");
pub(crate) const DDL_LOCK: &str = include_str!("ddl_lock.sql");

/// PostgreSQL silently truncates longer identifiers, which could make two tables one.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// `"name"` with embedded quotes doubled; an error for names PostgreSQL would alter or reject.
pub(crate) fn quote_ident(name: &str) -> Result<String, String> {
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
    /// Quoted join keys.
    keys: Vec<String>,
    /// Quoted join keys with their index ordering, then the two timestamps newest first: the
    /// lookup index.
    index_columns: Vec<String>,
}

/// The lookup index's ordering after the join keys. It is exactly `read_latest`'s order, so
/// `LIMIT 1` reads one index entry per key and sorts nothing (TimescaleDB's own index is on
/// event time alone; point-in-time reads go by entity, then time).
const INDEX_ORDER: [(&str, &str, i16); 2] = [
    (
        EVENT_TIMESTAMP,
        "DESC",
        INDOPTION_DESC | INDOPTION_NULLS_FIRST,
    ),
    (CREATED_TIMESTAMP, "DESC NULLS LAST", INDOPTION_DESC),
];
/// `pg_index.indoption` bits (PostgreSQL's `INDOPTION_DESC`, `INDOPTION_NULLS_FIRST`).
const INDOPTION_DESC: i16 = 1;
const INDOPTION_NULLS_FIRST: i16 = 2;

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
        let keys = table
            .join_keys
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Result<Vec<_>, _>>()?;
        let mut index_columns = keys.clone();
        for (name, order, _) in INDEX_ORDER {
            index_columns.push(format!("{} {order}", quote_ident(name)?));
        }
        Ok(TableSql {
            qualified,
            columns,
            types,
            decls,
            keys,
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

    /// Unnamed (no `CREATE INDEX IF NOT EXISTS`, which needs a name), so PostgreSQL picks a name that fits its identifier limit; `has_index.sql`
    /// finds it again by its columns.
    pub(super) fn create_index(&self) -> String {
        format!(
            "CREATE INDEX ON {} ({})",
            self.qualified,
            self.index_columns.join(", ")
        )
    }

    /// Index column names unquoted and their `indoption` flags, as `has_index.sql` compares
    /// them.
    pub(super) fn index_signature(table: &OfflineTable) -> (Vec<String>, Vec<i16>) {
        let mut names = table.join_keys.clone();
        let mut options = vec![0; names.len()];
        for (name, _, option) in INDEX_ORDER {
            names.push(name.to_string());
            options.push(option);
        }
        (names, options)
    }

    /// The index described for people: `user_id, event_timestamp DESC, ...`.
    pub(super) fn index_description(table: &OfflineTable) -> String {
        let order = INDEX_ORDER
            .iter()
            .map(|(name, order, _)| format!("{name} {order}"));
        table
            .join_keys
            .iter()
            .cloned()
            .chain(order)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `read_latest`'s one query for all keys. `$1..$k` are the key columns as arrays (one
    /// element per requested key, `bigint[]` or `text[]`), `$k+1` the inclusive upper event
    /// time, `$k+2` the inclusive lower one when `lower`. Returns the key's 1-based position,
    /// then every table column of its winning row; keys without one return no row.
    ///
    /// Each key is its own `LIMIT 1` index probe (a nested loop over the unnested keys), so
    /// the cost is ~100 index descents, not a scan of the history.
    pub(super) fn latest(&self, string_keys: &[bool], lower: bool) -> String {
        let n = self.keys.len();
        let arrays = string_keys
            .iter()
            .enumerate()
            .map(|(i, s)| format!("${}::{}[]", i + 1, if *s { "text" } else { "bigint" }))
            .collect::<Vec<_>>()
            .join(", ");
        let aliases = (0..n)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ts = format!("\"{EVENT_TIMESTAMP}\"");
        let mut filter: Vec<String> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{k} = q.k{i}"))
            .collect();
        filter.push(format!("t.{ts} <= ${}", n + 1));
        if lower {
            filter.push(format!("t.{ts} >= ${}", n + 2));
        }
        let order = INDEX_ORDER
            .iter()
            .map(|(name, order, _)| format!("t.\"{name}\" {order}"))
            .collect::<Vec<_>>()
            .join(", ");
        let inner = self
            .columns
            .iter()
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>();
        let outer = self
            .columns
            .iter()
            .map(|c| format!("w.{c}"))
            .collect::<Vec<_>>();
        format!(
            "SELECT q.ord, {} FROM unnest({arrays}) WITH ORDINALITY AS q({aliases}, ord) \
             CROSS JOIN LATERAL (SELECT {} FROM {} AS t WHERE {} ORDER BY {order} LIMIT 1) AS w",
            outer.join(", "),
            inner.join(", "),
            self.qualified,
            filter.join(" AND "),
        )
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
            "CREATE INDEX ON \"quiver\".\"shop__user_spend__v2\" (\"user_id\", \
             \"event_timestamp\" DESC, \"created_timestamp\" DESC NULLS LAST)"
        );
        assert_eq!(
            TableSql::index_signature(&table),
            (
                vec![
                    "user_id".to_string(),
                    EVENT_TIMESTAMP.to_string(),
                    CREATED_TIMESTAMP.to_string()
                ],
                vec![0, 3, 1]
            )
        );
        assert_eq!(
            sql.latest(&[false], true),
            "SELECT q.ord, w.\"user_id\", w.\"event_timestamp\", w.\"created_timestamp\", \
             w.\"tags\", w.\"amount\" FROM unnest($1::bigint[]) WITH ORDINALITY AS q(k0, ord) \
             CROSS JOIN LATERAL (SELECT t.\"user_id\", t.\"event_timestamp\", \
             t.\"created_timestamp\", t.\"tags\", t.\"amount\" FROM \
             \"quiver\".\"shop__user_spend__v2\" AS t WHERE t.\"user_id\" = q.k0 AND \
             t.\"event_timestamp\" <= $2 AND t.\"event_timestamp\" >= $3 ORDER BY \
             t.\"event_timestamp\" DESC, t.\"created_timestamp\" DESC NULLS LAST LIMIT 1) AS w"
        );
        assert_eq!(
            sql.delete(true, true),
            "DELETE FROM \"quiver\".\"shop__user_spend__v2\" WHERE \"event_timestamp\" >= $1 AND \
             \"event_timestamp\" < $2"
        );
        assert_eq!(sql.types[3], Type::TEXT_ARRAY);
    }
}
