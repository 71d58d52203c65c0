//! SQL transforms: a feature view's `sql:` query, run by Apache DataFusion over the view's source.
//!
//! The source is read whole (every column) into memory and registered as table `source`, and
//! under the source's own name; the query's result stands in for the source's rows. Everything
//! after [`open`] — the planners and their "column `x` is ... but ..." errors, the latest-row fold,
//! the offline table layout — reads the result exactly as it would read a file, so a query must
//! return the join keys, the source's timestamp column(s) and the columns the view's fields or
//! aggregations read. Only queries run (no DDL, DML or `SET`), so a definition cannot create
//! tables or read other files.
//!
//! The whole source is held while the query runs: a SQL view is for reshaping and deriving
//! columns of sources that fit in memory; Quiver's own operators (aggregations, the point-in-time
//! join) stream. Without the `sql` cargo feature a view with `sql:` is refused with an error that
//! says how to build with it.

use super::{Opened, ReadRequest};
#[cfg(not(feature = "sql"))]
use crate::error::OfflineError;
use crate::error::Result;
use arrow_schema::SchemaRef;

/// Name under which the source's rows are registered, whatever the source is called.
pub const SOURCE_TABLE: &str = "source";

/// Opens the query's result for reading, in `batch_size`-row batches at most.
#[cfg(feature = "sql")]
pub(crate) fn open(
    req: &ReadRequest<'_>,
    origin: &str,
    sql: &str,
    batch_size: usize,
) -> Result<Opened> {
    let (schema, batches, options) = engine::read_source(req, origin, batch_size)?;
    let (schema, out) = engine::run(origin, &req.source.name, sql, schema, batches)?;
    Ok(Opened {
        schema,
        batches: Box::new(out.into_iter().map(Ok)),
        options,
    })
}

/// The query's result schema, planned against the source's schema without reading its rows
/// (`quiver apply`): syntax errors, unknown columns and type errors surface here.
#[cfg(feature = "sql")]
pub(crate) fn schema(
    req: &ReadRequest<'_>,
    origin: &str,
    sql: &str,
) -> Result<(SchemaRef, super::convert::PlanOptions)> {
    let (schema, options) = engine::source_schema(req, origin)?;
    Ok((
        engine::plan_only(origin, &req.source.name, sql, schema)?,
        options,
    ))
}

#[cfg(not(feature = "sql"))]
pub(crate) fn open(
    _req: &ReadRequest<'_>,
    origin: &str,
    _sql: &str,
    _batch_size: usize,
) -> Result<Opened> {
    Err(not_built(origin))
}

#[cfg(not(feature = "sql"))]
pub(crate) fn schema(
    _req: &ReadRequest<'_>,
    origin: &str,
    _sql: &str,
) -> Result<(SchemaRef, super::convert::PlanOptions)> {
    Err(not_built(origin))
}

#[cfg(not(feature = "sql"))]
fn not_built(origin: &str) -> OfflineError {
    OfflineError::Unsupported {
        origin: origin.to_string(),
        message: "the view has a `sql:` transform, but this Quiver was built without the `sql` \
                  feature; build it with `cargo install --path crates/quiver-cli --features sql` \
                  (or `cargo run -p quiver-cli --features sql -- ...`)"
            .into(),
    }
}

#[cfg(feature = "sql")]
mod engine {
    use std::sync::Arc;

    use arrow_array::RecordBatch;
    use arrow_csv::ReaderBuilder;
    use arrow_csv::reader::Format;
    use arrow_schema::SchemaRef;
    use datafusion::catalog::MemTable;
    use datafusion::common::TableReference;
    use datafusion::error::DataFusionError;
    use datafusion::execution::context::{SQLOptions, SessionContext};
    use quiver_core::SourceFormat;

    use super::super::convert::PlanOptions;
    use super::super::{ReadRequest, csv, parquet};
    use super::SOURCE_TABLE;
    use crate::error::{OfflineError, Result};

    fn sql_error(origin: &str, e: impl std::fmt::Display) -> OfflineError {
        OfflineError::Sql {
            origin: origin.to_string(),
            message: e.to_string(),
        }
    }

    /// The source's full schema (CSV: types inferred from the whole file) and how its values
    /// convert.
    pub(super) fn source_schema(
        req: &ReadRequest<'_>,
        origin: &str,
    ) -> Result<(SchemaRef, PlanOptions)> {
        match req.source.format {
            SourceFormat::Parquet => {
                Ok((parquet::schema(req.path, origin)?, PlanOptions::default()))
            }
            SourceFormat::Csv => Ok((
                csv_schema(req, origin)?,
                PlanOptions {
                    text_decimals: true,
                },
            )),
            SourceFormat::Postgres => Err(OfflineError::Unsupported {
                origin: origin.to_string(),
                message: "a `sql:` transform over a postgres source is not supported; put the \
                          SQL in the source's `query` (PostgreSQL runs it)"
                    .into(),
            }),
        }
    }

    fn csv_schema(req: &ReadRequest<'_>, origin: &str) -> Result<SchemaRef> {
        let unreadable = |message: String| OfflineError::Unreadable {
            origin: origin.to_string(),
            message,
        };
        let file = csv::open_file(req.path, origin)?;
        // Every record, so a later value cannot contradict a type guessed from the first rows.
        let (schema, _) = Format::default()
            .with_header(true)
            .infer_schema(file, None)
            .map_err(|e| unreadable(format!("cannot infer the csv column types: {e}")))?;
        if schema.fields().is_empty() {
            return Err(unreadable(
                "the csv file is empty; a header row naming the columns is required".into(),
            ));
        }
        Ok(Arc::new(schema))
    }

    /// Every row and column of the source.
    pub(super) fn read_source(
        req: &ReadRequest<'_>,
        origin: &str,
        batch_size: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, PlanOptions)> {
        let (schema, options) = source_schema(req, origin)?;
        let read_err = |e: arrow_schema::ArrowError| OfflineError::ReadData {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let batches = match req.source.format {
            SourceFormat::Csv => {
                let file = csv::open_file(req.path, origin)?;
                ReaderBuilder::new(schema.clone())
                    .with_header(true)
                    .with_batch_size(batch_size)
                    .build(file)
                    .map_err(read_err)?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(read_err)?
            }
            _ => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                parquet::open(req.path, origin, &names, batch_size)?
                    .batches
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(read_err)?
            }
        };
        Ok((schema, batches, options))
    }

    fn context(
        origin: &str,
        source_name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        let table =
            Arc::new(MemTable::try_new(schema, vec![batches]).map_err(|e| sql_error(origin, e))?);
        ctx.register_table(SOURCE_TABLE, table.clone())
            .map_err(|e| sql_error(origin, e))?;
        if source_name != SOURCE_TABLE {
            ctx.register_table(TableReference::bare(source_name), table)
                .map_err(|e| sql_error(origin, e))?;
        }
        Ok(ctx)
    }

    /// Runs `work` on its own thread with its own Tokio runtime: DataFusion is async, and the
    /// read path is called both from blocking tasks and from inside async code.
    fn on_runtime<T: Send>(
        origin: &str,
        work: impl std::future::Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                        .enable_all()
                        .build()
                        .map_err(|e| sql_error(origin, format!("cannot start a runtime: {e}")))?;
                    runtime.block_on(work)
                })
                .join()
                .unwrap_or_else(|_| Err(sql_error(origin, "the query panicked (this is a bug)")))
        })
    }

    fn options() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    fn describe(e: DataFusionError) -> String {
        // DataFusion prefixes planning errors with their phase ("Error during planning: ...");
        // the phase helps, the nesting of context wrappers does not.
        e.strip_backtrace()
    }

    /// Plans the query against an empty table of `schema`: its output schema.
    pub(super) fn plan_only(
        origin: &str,
        source_name: &str,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SchemaRef> {
        on_runtime(origin, async {
            let ctx = context(origin, source_name, schema, Vec::new())?;
            let df = ctx
                .sql_with_options(sql, options())
                .await
                .map_err(|e| sql_error(origin, describe(e)))?;
            Ok(Arc::new(df.schema().as_arrow().clone()))
        })
    }

    /// Runs the query over `batches`: its output schema and rows.
    pub(super) fn run(
        origin: &str,
        source_name: &str,
        sql: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        on_runtime(origin, async {
            let ctx = context(origin, source_name, schema, batches)?;
            let df = ctx
                .sql_with_options(sql, options())
                .await
                .map_err(|e| sql_error(origin, describe(e)))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let out = df
                .collect()
                .await
                .map_err(|e| sql_error(origin, describe(e)))?;
            Ok((schema, out))
        })
    }
}

#[cfg(all(test, not(feature = "sql")))]
mod tests {
    #[test]
    fn without_the_feature_a_sql_view_is_refused_with_how_to_build_it() {
        let message = super::not_built("source `tx` (tx.parquet)").to_string();
        assert!(
            message.starts_with("source `tx` (tx.parquet): "),
            "{message}"
        );
        assert!(message.contains("--features sql"), "{message}");
    }
}
