//! PostgreSQL sources: a table or a query, read with the needed columns cast in SQL to their
//! target types (so `integer` keys, `numeric` amounts and `timestamp` columns all arrive as what
//! the view declares) and the time window applied in the `WHERE` clause. `timestamp without time
//! zone` columns are taken as UTC (the session runs with `TimeZone=UTC`).

use std::sync::Arc;

use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use quiver_core::ValueType;
use quiver_core::value::format_timestamp;

use super::convert::PlanOptions;
use super::{Need, Opened, ReadRequest, Role};
use crate::error::{OfflineError, Result};
use crate::store::postgres::{arrow::rows_to_batch, sql::column_type};
use crate::store::{arrow_type, timestamp_type};

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The target Arrow type of each needed column, deduplicated in first-need order.
fn columns(
    req: &ReadRequest<'_>,
    origin: &str,
    needs: &[Need<'_>],
) -> Result<Vec<(String, DataType)>> {
    let mut out: Vec<(String, DataType)> = Vec::new();
    for need in needs {
        if out.iter().any(|(c, _)| c == need.column) {
            continue;
        }
        let dt = match need.role {
            Role::Timestamp => timestamp_type(),
            _ => match need.role.target(origin)? {
                ValueType::Scalar(quiver_core::ScalarType::Timestamp) => timestamp_type(),
                vt => arrow_type(vt),
            },
        };
        out.push((need.column.to_string(), dt));
    }
    let _ = req;
    Ok(out)
}

fn relation(req: &ReadRequest<'_>, origin: &str) -> Result<String> {
    match (&req.source.table, &req.source.query) {
        (Some(table), None) => Ok(table.split('.').map(quote).collect::<Vec<_>>().join(".")),
        (None, Some(query)) => Ok(format!("({query})")),
        _ => Err(OfflineError::Unsupported {
            origin: origin.to_string(),
            message: "a postgres source needs exactly one of `table` or `query`".into(),
        }),
    }
}

fn run<F: std::future::Future>(f: F) -> std::io::Result<F::Output> {
    match tokio::runtime::Handle::try_current() {
        // On a blocking-pool thread of the caller's runtime.
        Ok(handle) => Ok(handle.block_on(f)),
        Err(_) => Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)),
    }
}

/// Runs the source's query for the needed columns and window (`limit 0`: schema check only).
fn query(
    req: &ReadRequest<'_>,
    origin: &str,
    needs: &[Need<'_>],
    limit_zero: bool,
) -> Result<(SchemaRef, arrow_array::RecordBatch)> {
    let url = req
        .source
        .url
        .clone()
        .ok_or_else(|| OfflineError::Unsupported {
            origin: origin.to_string(),
            message: "no connection URL (set the source's `url`, or use a postgres offline store)"
                .into(),
        })?;
    let cols = columns(req, origin, needs)?;
    let select = cols
        .iter()
        .map(|(c, dt)| {
            let (pg, _) = column_type(dt).map_err(|message| OfflineError::Unsupported {
                origin: origin.to_string(),
                message,
            })?;
            Ok(format!("q.{}::{pg} AS {}", quote(c), quote(c)))
        })
        .collect::<Result<Vec<_>>>()?
        .join(", ");
    let ts = quote(&req.source.timestamp_field);
    let mut sql = format!(
        "SELECT {select} FROM {} AS q WHERE ($1::text IS NULL OR q.{ts} >= $1::text::timestamptz) \
         AND ($2::text IS NULL OR q.{ts} < $2::text::timestamptz)",
        relation(req, origin)?
    );
    if limit_zero {
        sql.push_str(" LIMIT 0");
    }
    let schema: SchemaRef = Arc::new(Schema::new(
        cols.iter()
            .map(|(c, dt)| ArrowField::new(c, dt.clone(), true))
            .collect::<Vec<_>>(),
    ));
    // PostgreSQL keeps microseconds: widen the bounds to whole microseconds (start down, end
    // up) so no row in the nanosecond window is lost; callers filter exactly afterwards.
    let start = req
        .start
        .map(|s| format_timestamp(s.div_euclid(1000) * 1000));
    let end = req.end.map(|e| {
        format_timestamp(
            e.div_euclid(1000)
                .saturating_add((e.rem_euclid(1000) > 0) as i64)
                * 1000,
        )
    });
    let store_err = |message: String| OfflineError::ReadData {
        origin: origin.to_string(),
        message,
    };
    let rows = run(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(|e| describe(&e))?;
        let conn = tokio::spawn(connection);
        client
            .batch_execute("SET TimeZone = 'UTC'")
            .await
            .map_err(|e| describe(&e))?;
        let rows = client
            .query(&sql, &[&start, &end])
            .await
            .map_err(|e| describe(&e));
        drop(client);
        let _ = conn.await;
        rows
    })
    .map_err(|e| store_err(e.to_string()))?
    .map_err(store_err)?;
    let batch = rows_to_batch(&schema, &rows).map_err(store_err)?;
    Ok((schema, batch))
}

/// A PostgreSQL error without the connection string (which may hold a password).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

pub(super) fn schema(
    req: &ReadRequest<'_>,
    origin: &str,
    needs: &[Need<'_>],
) -> Result<(SchemaRef, PlanOptions)> {
    let (schema, _) = query(req, origin, needs, true)?;
    Ok((schema, PlanOptions::default()))
}

pub(super) fn open(req: &ReadRequest<'_>, origin: &str, needs: &[Need<'_>]) -> Result<Opened> {
    let (schema, batch) = query(req, origin, needs, false)?;
    Ok(Opened {
        schema,
        batches: Box::new(std::iter::once(Ok(batch))),
        options: PlanOptions::default(),
    })
}
