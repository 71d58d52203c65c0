//! [`PostgresOfflineStore`]: the [`OfflineStore`] impl over a `deadpool-postgres` pool.

use std::fmt::Display;
use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::TryStreamExt;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use super::arrow::{Column, rows_to_batch};
use super::codec::{Cell, ceil_micros, floor_micros};
use super::config::PostgresConfig;
use super::sql::{CREATE_HYPERTABLE, DDL_LOCK, HAS_INDEX, HAS_TIMESCALEDB, TableSql};
use crate::error::{OfflineError, Result};
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
fn describe(e: &tokio_postgres::Error) -> String {
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
        };
        let client = store.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| store.error("checking the connection", describe(&e)))?;
        Ok(store)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A store error naming the server, with the password scrubbed.
    fn error(&self, doing: &str, message: impl Display) -> OfflineError {
        let mut message = format!("{doing} on {}: {message}", self.target);
        if let Some(password) = &self.password {
            message = message.replace(password.as_str(), "***");
        }
        OfflineError::Store {
            store: "postgres",
            message,
        }
    }

    async fn client(&self) -> Result<Object> {
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

    async fn ensure_table(&self, table: &OfflineTable) -> Result<String> {
        let sql = self.table_sql(table)?;
        let create_schema = TableSql::create_schema(&self.schema)
            .map_err(|e| self.error("creating the schema", e))?;
        let index_columns = TableSql::index_column_names(table);
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
        // TimescaleDB indexes event time alone; point-in-time joins look rows up by entity
        // then time, so both kinds of table get the composite index.
        let has_index = !tx
            .query(HAS_INDEX, &[&sql.qualified, &index_columns])
            .await
            .map_err(fail)?
            .is_empty();
        if !has_index {
            tx.batch_execute(&sql.create_index()).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        let columns = index_columns.join(", ");
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
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        let mut rows = Vec::with_capacity(READ_BATCH_ROWS);
        let to_batch = |rows: &[tokio_postgres::Row]| {
            rows_to_batch(&table.schema, rows).map_err(|e| self.error(&doing, e))
        };
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
