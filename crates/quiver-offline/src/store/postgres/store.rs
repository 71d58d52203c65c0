//! [`PostgresOfflineStore`]: the [`OfflineStore`] impl over a `deadpool-postgres` pool.

use std::fmt::Display;
use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::TryStreamExt;
use quiver_core::{EntityKey, KeyValue, Record};
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;

use super::arrow::{Column, rows_to_batch, rows_to_batch_from};
use super::codec::{Cell, ceil_micros, floor_micros};
use super::config::PostgresConfig;
use super::sql::{CREATE_HYPERTABLE, DDL_LOCK, HAS_INDEX, HAS_TIMESCALEDB, TableSql};
use crate::error::{OfflineError, Result};
use crate::store::lookup::{RowDecoder, check_request, string_keys};
use crate::store::parquet::input::conform_batches;
use crate::store::{OfflineStore, OfflineTable};

/// Rows per returned record batch.
const READ_BATCH_ROWS: usize = 8192;
/// How long opening a connection may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a free pooled connection.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Offline tables in PostgreSQL (see the module docs for types, precision and atomicity).
pub struct PostgresOfflineStore {
    pool: Pool,
    schema: String,
    /// The URL with its password hidden, for messages.
    target: String,
    /// Scrubbed from every message, in case a driver error ever echoes it.
    password: Option<String>,
    /// Record tables (`crate::records`) created and checked against their schema by this
    /// store, so commits skip the catalog queries; keyed by name and schema.
    pub(crate) record_tables: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for PostgresOfflineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOfflineStore")
            .field("target", &self.target)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A tokio-postgres error with the server's message, detail and hint (its Display alone says
/// only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            out.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            out.push_str(&format!("; hint: {hint}"));
        }
        return out;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn describe_pool(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// The lookup query's parameters: one array per join key (a key asked twice is sent twice, and
/// answered by its position), then the inclusive event-time bounds as whole microseconds
/// (stored times are truncated microseconds, so `t <= as_of` is `t <= floor(as_of)` and
/// `t >= lower` is `t >= ceil(lower)`). Keys were checked against `kinds` already.
fn latest_params(
    keys: &[EntityKey],
    kinds: &[bool],
    as_of: i64,
    lower: Option<i64>,
) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (i, is_string) in kinds.iter().enumerate() {
        let values = keys.iter().map(|k| &k.0[i]);
        if *is_string {
            let texts: Vec<String> = values
                .map(|v| match v {
                    KeyValue::Str(s) => s.clone(),
                    // Unreachable: `check_request` matched every value to its column.
                    KeyValue::Int(n) => n.to_string(),
                })
                .collect();
            params.push(Box::new(texts));
        } else {
            let ints: Vec<i64> = values
                .map(|v| match v {
                    KeyValue::Int(n) => *n,
                    // Unreachable, as above.
                    KeyValue::Str(_) => 0,
                })
                .collect();
            params.push(Box::new(ints));
        }
    }
    params.push(Box::new(Cell::Micros(floor_micros(as_of))));
    if let Some(lower) = lower {
        params.push(Box::new(Cell::Micros(ceil_micros(lower))));
    }
    params
}

impl PostgresOfflineStore {
    /// Opens a pool and checks that the server answers, so a wrong URL fails here rather than
    /// at the first build.
    pub async fn connect(config: &PostgresConfig) -> Result<PostgresOfflineStore> {
        let target = config.redacted_url();
        let fail = |message: String| OfflineError::Store {
            store: "postgres",
            message,
        };
        if config.schema.is_empty() {
            return Err(fail("`schema` must not be empty".to_string()));
        }
        if config.pool_size == 0 {
            return Err(fail("`pool_size` must be at least 1".to_string()));
        }
        // The parse error does not echo the URL, and the URL is not added to it.
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| fail(format!("invalid connection URL {target}: {e}")))?;
        let password = pg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| fail(format!("cannot create a connection pool: {e}")))?;
        let store = PostgresOfflineStore {
            pool,
            schema: config.schema.clone(),
            target,
            password,
            record_tables: Default::default(),
        };
        let client = store.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| store.error("checking the connection", describe(&e)))?;
        Ok(store)
    }

    /// The plan PostgreSQL picks for `read_latest`'s query with these arguments (`EXPLAIN`
    /// output, one line per node): for checking that lookups use the index. The keys reach the
    /// per-key probe as columns of the unnested arrays, never as constants, so the plan does not
    /// hinge on which keys are asked.
    pub async fn explain_read_latest(
        &self,
        table: &OfflineTable,
        keys: &[EntityKey],
        as_of: i64,
        ttl_ns: Option<i64>,
    ) -> Result<String> {
        let lower = check_request(table, keys, as_of, ttl_ns)?;
        let sql = self.table_sql(table)?;
        let kinds = string_keys(table)?;
        let explain = format!("EXPLAIN {}", sql.latest(&kinds, lower.is_some()));
        let doing = format!("explaining the lookup on {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let params = latest_params(keys, &kinds, as_of, lower);
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let rows = client.query(&explain, &params).await.map_err(fail)?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(lines.join("\n"))
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The rows of a query, as batches of at most `READ_BATCH_ROWS` rows with `schema`; errors
    /// say what was being done (`doing`).
    pub(crate) async fn read_batches(
        &self,
        stream: tokio_postgres::RowStream,
        schema: &arrow_schema::SchemaRef,
        doing: &str,
    ) -> Result<Vec<RecordBatch>> {
        let fail = |e: tokio_postgres::Error| self.error(doing, describe(&e));
        let to_batch = |rows: &[tokio_postgres::Row]| {
            rows_to_batch(schema, rows).map_err(|e| self.error(doing, e))
        };
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        let mut rows = Vec::with_capacity(READ_BATCH_ROWS);
        while let Some(row) = stream.try_next().await.map_err(fail)? {
            rows.push(row);
            if rows.len() == READ_BATCH_ROWS {
                out.push(to_batch(&rows)?);
                rows.clear();
            }
        }
        if !rows.is_empty() {
            out.push(to_batch(&rows)?);
        }
        Ok(out)
    }

    /// A store error naming the server, with the password scrubbed.
    pub(crate) fn error(&self, doing: &str, message: impl Display) -> OfflineError {
        let mut message = format!("{doing} on {}: {message}", self.target);
        if let Some(password) = &self.password {
            message = message.replace(password.as_str(), "***");
        }
        OfflineError::Store {
            store: "postgres",
            message,
        }
    }

    pub(crate) async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| self.error("connecting", describe_pool(&e)))
    }

    fn table_sql(&self, table: &OfflineTable) -> Result<TableSql> {
        TableSql::new(&self.schema, table).map_err(|message| OfflineError::Unsupported {
            origin: format!("offline table `{}`", table.qualified_name()),
            message,
        })
    }
}

#[async_trait]
impl OfflineStore for PostgresOfflineStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn records(&self) -> &dyn crate::records::RecordSink {
        self
    }

    async fn ensure_table(&self, table: &OfflineTable) -> Result<String> {
        let sql = self.table_sql(table)?;
        let create_schema = TableSql::create_schema(&self.schema)
            .map_err(|e| self.error("creating the schema", e))?;
        let (index_columns, index_options) = TableSql::index_signature(table);
        let doing = format!("creating table {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute(DDL_LOCK, &[]).await.map_err(fail)?;
        tx.batch_execute(&create_schema).await.map_err(fail)?;
        tx.batch_execute(&sql.create_table()).await.map_err(fail)?;
        let timescale = !tx
            .query(HAS_TIMESCALEDB, &[])
            .await
            .map_err(fail)?
            .is_empty();
        if timescale {
            tx.query(CREATE_HYPERTABLE, &[&sql.qualified])
                .await
                .map_err(fail)?;
        }
        // TimescaleDB indexes event time alone; lookups and point-in-time joins go by entity
        // then time, so both kinds of table get the composite index. Tables created before it
        // had its current ordering get it now (and keep their old, redundant one).
        let has_index = !tx
            .query(HAS_INDEX, &[&sql.qualified, &index_columns, &index_options])
            .await
            .map_err(fail)?
            .is_empty();
        if !has_index {
            tx.batch_execute(&sql.create_index()).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        let columns = TableSql::index_description(table);
        Ok(if timescale {
            format!(
                "TimescaleDB hypertable {} with index on ({columns})",
                sql.qualified
            )
        } else {
            format!("table {} with index on ({columns})", sql.qualified)
        })
    }

    async fn write_range(
        &self,
        table: &OfflineTable,
        start: i64,
        end: i64,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let batches = conform_batches(table, start, end, batches)?;
        let sql = self.table_sql(table)?;
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
                origin: format!("offline table `{}`", table.qualified_name()),
                message,
            })?;
        let doing = format!("writing {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let mut client = self.client().await?;
        // Delete and load in one transaction: a failure anywhere rolls back to the old rows.
        let tx = client.transaction().await.map_err(fail)?;
        if start < end {
            // Widened to whole microseconds: a row written at t in [start, end) is stored at
            // floor(t), which may be below `start` or (rounded) at `end`'s microsecond.
            let bounds = [
                Cell::Micros(floor_micros(start)),
                Cell::Micros(ceil_micros(end)),
            ];
            tx.execute(&sql.delete(true, true), &[&bounds[0], &bounds[1]])
                .await
                .map_err(fail)?;
        }
        let sink = tx.copy_in(&sql.copy_in()).await.map_err(fail)?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &sql.types));
        let mut row = Vec::with_capacity(sql.types.len());
        for (batch, columns) in batches.iter().zip(&columns) {
            for i in 0..batch.num_rows() {
                row.clear();
                row.extend(columns.iter().map(|c| c.cell(i)));
                writer.as_mut().write_raw(row.iter()).await.map_err(fail)?;
            }
        }
        let written = writer.as_mut().finish().await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(written)
    }

    async fn read_range(
        &self,
        table: &OfflineTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<RecordBatch>> {
        let sql = self.table_sql(table)?;
        let doing = format!("reading {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        // Stored times are whole microseconds; comparing them exactly against nanosecond
        // bounds means rounding both bounds up.
        let params: Vec<Cell<'_>> = start
            .map(|s| Cell::Micros(ceil_micros(s)))
            .into_iter()
            .chain(end.map(|e| Cell::Micros(ceil_micros(e))))
            .collect();
        let client = self.client().await?;
        let stream = client
            .query_raw(&sql.select(start.is_some(), end.is_some()), params.iter())
            .await
            .map_err(fail)?;
        self.read_batches(stream, &table.schema, &doing).await
    }

    async fn read_latest(
        &self,
        table: &OfflineTable,
        keys: &[EntityKey],
        as_of: i64,
        ttl_ns: Option<i64>,
    ) -> Result<Vec<Option<Record>>> {
        let lower = check_request(table, keys, as_of, ttl_ns)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.table_sql(table)?;
        let kinds = string_keys(table)?;
        let doing = format!("looking up latest rows of {}", sql.qualified);
        let fail = |e: tokio_postgres::Error| self.error(&doing, describe(&e));
        let params = latest_params(keys, &kinds, as_of, lower);
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        // Cached per pooled connection: serving repeats this statement, and preparing it
        // each time would cost a second round trip.
        let statement = client
            .prepare_cached(&sql.latest(&kinds, lower.is_some()))
            .await
            .map_err(fail)?;
        let rows = client.query(&statement, &params).await.map_err(fail)?;
        let batch =
            rows_to_batch_from(&table.schema, &rows, 1).map_err(|e| self.error(&doing, e))?;
        let decoder = RowDecoder::new(table, &batch)?;
        let mut out = vec![None; keys.len()];
        for (i, row) in rows.iter().enumerate() {
            let position: i64 = row.try_get(0).map_err(fail)?;
            let slot = usize::try_from(position - 1)
                .ok()
                .and_then(|p| out.get_mut(p))
                .ok_or_else(|| {
                    self.error(&doing, format!("key position {position} (this is a bug)"))
                })?;
            *slot = Some(decoder.record(i)?);
        }
        Ok(out)
    }

    async fn prune(&self, table: &OfflineTable, before: i64) -> Result<u64> {
        let sql = self.table_sql(table)?;
        let client = self.client().await?;
        let bound = Cell::Micros(ceil_micros(before));
        client
            .execute(&sql.delete(false, true), &[&bound])
            .await
            .map_err(|e| self.error(&format!("pruning {}", sql.qualified), describe(&e)))
    }

    async fn drop_table(&self, table: &OfflineTable) -> Result<()> {
        let sql = self.table_sql(table)?;
        let client = self.client().await?;
        client
            .batch_execute(&sql.drop_table())
            .await
            .map_err(|e| self.error(&format!("dropping {}", sql.qualified), describe(&e)))
    }
}
