//! Push sources (`type: push`, Feast's `PushSource`): rows that arrive at request time through
//! `POST /push` (or `FeatureStore.push` in Python) go to the online store of every view that
//! reads the push source, to its batch source (the offline side, which materialization and
//! training sets read), or both. This module holds what is not JSON: finding the views, and
//! appending rows to the batch source under a lock.
//!
//! A PostgreSQL batch source (a `table`) takes the rows in one `INSERT … SELECT FROM
//! json_populate_recordset(…)`, typed by the table's columns. Appending to a file batch source rewrites it (Parquet: read, concatenate, write a temporary
//! file and rename it into place; CSV: append lines), holding an OS lock on `<file>.lock` so
//! concurrent pushes queue instead of losing each other's rows. Every push is either in the file
//! or refused. An append is prepared (checked and staged) first and committed after the online
//! writes of the same push, so a push that fails online appends nothing offline and its retry
//! appends once. Rewriting costs the file's size per push: batch pushes, not single rows, are what
//! it is made for.

use std::io::Write as _;
use std::path::Path;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};
use quiver_core::definitions::Transform;
use quiver_core::{EntityKey, FeatureView, Record, ScalarType, SourceFormat, Value, ValueType};
use quiver_offline::engine::WindowEvent;
use quiver_online::{ViewTable, WriteSummary};
use serde_json::{Map, Value as Json};

use crate::catalog::{ResolvedSource, ServedView};
use crate::error::{Error, Result};
use crate::file_lock::FileLock;
use crate::store::FeatureStore;

/// Where pushed rows go (Feast's `to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

impl PushTo {
    /// `online`, `offline` or `online_and_offline` (Feast's spelling).
    pub fn parse(text: &str) -> Result<PushTo> {
        match text {
            "online" => Ok(PushTo::Online),
            "offline" => Ok(PushTo::Offline),
            "online_and_offline" => Ok(PushTo::OnlineAndOffline),
            other => Err(Error::InvalidRequest(format!(
                "`to`: `{other}` is not one of `online`, `offline`, `online_and_offline`"
            ))),
        }
    }

    pub fn online(self) -> bool {
        self != PushTo::Offline
    }

    pub fn offline(self) -> bool {
        self != PushTo::Online
    }
}

impl FeatureStore {
    /// The push source `name` (resolved to its batch source's location) and the views that
    /// read it.
    pub fn push_source(&self, name: &str) -> Result<(&ResolvedSource, Vec<&ServedView>)> {
        let catalog = self.catalog()?;
        let registry = catalog.registry();
        let source = registry.sources.get(name).ok_or_else(|| {
            let pushes: Vec<String> = registry
                .sources
                .values()
                .filter(|s| s.is_push())
                .map(|s| format!("`{}`", s.name))
                .collect();
            Error::NotFound(format!(
                "unknown push source `{name}` (push sources: {})",
                if pushes.is_empty() {
                    "none; declare one with `type: push` and a `batch_source`".to_string()
                } else {
                    pushes.join(", ")
                }
            ))
        })?;
        if !source.is_push() {
            return Err(Error::InvalidRequest(format!(
                "source `{name}` is not a push source (declare one with `type: push` and `batch_source: {name}`)"
            )));
        }
        let views: Vec<&ServedView> = catalog
            .views()
            .filter(|v| v.definition.source == name)
            .collect();
        if views.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "no feature view reads push source `{name}`"
            )));
        }
        Ok((catalog.source_of(&views[0].definition)?, views))
    }

    /// Appends rows (columns by name, one value per row) to the batch source of push source
    /// `name`; returns the rows appended. The columns must be the file's (missing nullable ones
    /// are null); nothing is appended when any value does not fit its column.
    pub async fn append_to_batch_source(
        &self,
        name: &str,
        columns: &Map<String, Json>,
    ) -> Result<u64> {
        self.prepare_batch_append(name, columns)
            .await?
            .commit()
            .await
    }

    /// Prepares the append of rows to the batch source of push source `name` without making
    /// them visible: every value is checked against its column and the new data is staged (a
    /// rewritten Parquet file beside the source, CSV lines in memory, or an uncommitted
    /// PostgreSQL transaction), holding the source's lock. [`PendingAppend::commit`] makes the
    /// rows visible; dropping it discards them. `/push` writes online between the two, so a
    /// failed online write appends nothing and a retried push does not append twice.
    pub async fn prepare_batch_append(
        &self,
        name: &str,
        columns: &Map<String, Json>,
    ) -> Result<PendingAppend> {
        let (resolved, _) = self.push_source(name)?;
        let source = resolved.source.clone();
        let path = resolved.path.clone();
        let rows = row_major(columns)?;
        let count = rows.len() as u64;
        let batch = source.batch_source.clone().unwrap_or_default();
        let pending = |stage| PendingAppend {
            push_source: name.to_string(),
            batch_source: batch.clone(),
            rows: count,
            stage,
        };
        if rows.is_empty() {
            return Ok(pending(Stage::Nothing));
        }
        match source.format {
            SourceFormat::Postgres => {
                let Some(table) = source.table.as_deref() else {
                    return Err(Error::InvalidRequest(format!(
                        "push source `{name}`: its batch source `{batch}` is a PostgreSQL query; rows can only be appended to a `table`"
                    )));
                };
                let url = source.url.as_deref().ok_or_else(|| {
                    Error::Internal(format!("source `{batch}` has no resolved url"))
                })?;
                let client = stage_postgres(url, table, &rows).await?;
                Ok(pending(Stage::Postgres {
                    client,
                    table: table.to_string(),
                }))
            }
            format => {
                let stage = tokio::task::spawn_blocking(move || -> Result<Stage> {
                    let mut lock = path.as_os_str().to_owned();
                    lock.push(".lock");
                    let lock = FileLock::acquire(Path::new(&lock))?;
                    match format {
                        SourceFormat::Csv => Ok(Stage::Csv {
                            _lock: lock,
                            text: csv_lines(&path, &rows)?,
                            path,
                        }),
                        _ => {
                            let staged = staged_path(&path);
                            stage_parquet(&path, &staged, &rows)?;
                            Ok(Stage::Parquet {
                                _lock: lock,
                                staged,
                                path,
                            })
                        }
                    }
                })
                .await
                .map_err(|e| Error::Internal(format!("push task failed: {e}")))??;
                Ok(pending(stage))
            }
        }
    }
}

/// Rows staged for a batch source by [`FeatureStore::prepare_batch_append`].
pub struct PendingAppend {
    push_source: String,
    batch_source: String,
    rows: u64,
    stage: Stage,
}

enum Stage {
    Nothing,
    /// The whole new file, written beside the source; renamed over it on commit.
    Parquet {
        _lock: FileLock,
        staged: std::path::PathBuf,
        path: std::path::PathBuf,
    },
    Csv {
        _lock: FileLock,
        path: std::path::PathBuf,
        text: String,
    },
    /// An open transaction holding the INSERT; dropping the client rolls it back.
    Postgres {
        client: tokio_postgres::Client,
        table: String,
    },
}

impl PendingAppend {
    /// The rows it holds.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Makes the rows visible in the batch source; returns how many were appended.
    pub async fn commit(mut self) -> Result<u64> {
        let stage = std::mem::replace(&mut self.stage, Stage::Nothing);
        match stage {
            Stage::Nothing => return Ok(0),
            Stage::Postgres { client, table } => {
                client.batch_execute("COMMIT").await.map_err(|e| {
                    Error::Unavailable(format!("batch source table `{table}`: commit: {e}"))
                })?;
            }
            Stage::Parquet {
                _lock,
                staged,
                path,
            } => {
                tokio::task::spawn_blocking(move || {
                    let _lock = _lock;
                    std::fs::rename(&staged, &path).map_err(|e| Error::io(&path, e))
                })
                .await
                .map_err(|e| Error::Internal(format!("push task failed: {e}")))??;
            }
            Stage::Csv { _lock, path, text } => {
                tokio::task::spawn_blocking(move || {
                    let _lock = _lock;
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(|e| Error::io(&path, e))?;
                    file.write_all(text.as_bytes())
                        .and_then(|_| file.sync_data())
                        .map_err(|e| Error::io(&path, e))
                })
                .await
                .map_err(|e| Error::Internal(format!("push task failed: {e}")))??;
            }
        }
        tracing::info!(push_source = %self.push_source, batch_source = %self.batch_source, rows = self.rows, "appended pushed rows");
        Ok(self.rows)
    }
}

impl Drop for PendingAppend {
    fn drop(&mut self) {
        // Not committed: a staged Parquet file is removed (a PostgreSQL transaction rolls back
        // when its connection closes; CSV lines were only in memory).
        if let Stage::Parquet { staged, .. } = &self.stage {
            let _ = std::fs::remove_file(staged);
        }
    }
}

/// Where a Parquet batch source's next version is staged: beside it, so the rename is atomic.
fn staged_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".push-staged");
    std::path::PathBuf::from(name)
}

/// Columns (name → list) to rows (name → value), all lists of one length.
fn row_major(columns: &Map<String, Json>) -> Result<Vec<Map<String, Json>>> {
    let mut n: Option<(usize, &str)> = None;
    let mut lists = Vec::new();
    for (name, col) in columns {
        let list = col.as_array().ok_or_else(|| {
            Error::InvalidRequest(format!("column `{name}` must be a list of values"))
        })?;
        match n {
            Some((len, first)) if len != list.len() => {
                return Err(Error::InvalidRequest(format!(
                    "column `{name}` has {} values but `{first}` has {len}",
                    list.len()
                )));
            }
            None => n = Some((list.len(), name)),
            _ => {}
        }
        lists.push((name, list));
    }
    let rows = n.map_or(0, |(len, _)| len);
    Ok((0..rows)
        .map(|i| {
            lists
                .iter()
                .map(|(name, list)| ((*name).clone(), list[i].clone()))
                .collect()
        })
        .collect())
}

fn unwritable(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("batch source file `{}`: {message}", path.display()))
}

/// Reads the Parquet file, adds the rows (decoded with its schema) and writes the result to
/// `staged` (renamed over `path` on commit).
fn stage_parquet(path: &Path, staged: &Path, rows: &[Map<String, Json>]) -> Result<()> {
    if !path.exists() {
        return Err(unwritable(
            path,
            "does not exist; pushed rows follow its columns, so create it first (with at least its header or one row)",
        ));
    }
    let existing = quiver_offline::io::read_file(path)?;
    let schema = existing.schema();
    // Named time zones need arrow's `chrono-tz` feature to parse; every time column is decoded
    // with a fixed UTC offset instead and labelled with its own zone after (the instants are
    // the same: arrow stores UTC).
    let decode_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, Some(_)) => f
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, Some("+00:00".into()))),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut decoder = arrow_json::ReaderBuilder::new(decode_schema)
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| Error::Internal(format!("json decoder: {e}")))?;
    decoder
        .serialize(rows)
        .map_err(|e| unwritable(path, format!("a pushed row does not fit its columns: {e}")))?;
    let pushed: RecordBatch = decoder
        .flush()
        .map_err(|e| unwritable(path, format!("a pushed row does not fit its columns: {e}")))?
        .ok_or_else(|| Error::Internal("no rows decoded".into()))?;
    let columns: Vec<ArrayRef> = pushed
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, field)| relabel_zone(col, field.data_type()))
        .collect();
    let pushed = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("pushed rows: {e}")))?;
    let combined = arrow_select::concat::concat_batches(&schema, [&existing, &pushed])
        .map_err(|e| Error::Internal(format!("concatenating pushed rows: {e}")))?;
    Ok(quiver_offline::io::write_parquet(staged, &combined)?)
}

/// Inserts the rows into `table` in one statement inside a transaction left open (committed by
/// [`PendingAppend::commit`]): PostgreSQL types each value by its column
/// (`json_populate_recordset`), so a value that does not fit refuses the whole batch.
async fn stage_postgres(
    url: &str,
    table: &str,
    rows: &[Map<String, Json>],
) -> Result<tokio_postgres::Client> {
    let quote = |ident: &str| format!("\"{}\"", ident.replace('"', "\"\""));
    let unavailable =
        |e: tokio_postgres::Error| Error::Unavailable(format!("batch source table `{table}`: {e}"));
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(unavailable)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "push connection ended");
        }
    });
    let (schema, bare) = match table.split_once('.') {
        Some((schema, bare)) => (Some(schema.to_string()), bare.to_string()),
        None => (None, table.to_string()),
    };
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_name = $1 AND table_schema = coalesce($2, current_schema())",
            &[&bare, &schema],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if columns.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "batch source table `{table}` does not exist"
        )));
    }
    let pushed: Vec<&String> = rows.first().map(|r| r.keys().collect()).unwrap_or_default();
    if let Some(extra) = pushed.iter().find(|k| !columns.contains(k)) {
        return Err(Error::InvalidRequest(format!(
            "batch source table `{table}` has no column `{extra}` (columns: {})",
            columns.join(", ")
        )));
    }
    let qualified = table.split('.').map(quote).collect::<Vec<_>>().join(".");
    let list = pushed
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {qualified} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{qualified}, $1::text::json)"
    );
    let body = serde_json::to_string(rows)
        .map_err(|e| Error::Internal(format!("serializing pushed rows: {e}")))?;
    client.batch_execute("BEGIN").await.map_err(unavailable)?;
    client.execute(&sql, &[&body]).await.map_err(|e| {
        // Class 22 (data exception) and 23 (integrity): the rows, not the server.
        match e.code().map(|c| c.code()) {
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                Error::InvalidRequest(format!(
                    "batch source table `{table}`: a pushed row does not fit: {}",
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string())
                ))
            }
            _ => unavailable(e),
        }
    })?;
    Ok(client)
}

/// `col` with the time zone label of `target` (a no-op for other types).
fn relabel_zone(col: &ArrayRef, target: &DataType) -> ArrayRef {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    let DataType::Timestamp(unit, Some(tz)) = target else {
        return col.clone();
    };
    let tz = tz.clone();
    match unit {
        TimeUnit::Second => Arc::new(
            col.as_primitive::<TimestampSecondType>()
                .clone()
                .with_timezone(tz),
        ),
        TimeUnit::Millisecond => Arc::new(
            col.as_primitive::<TimestampMillisecondType>()
                .clone()
                .with_timezone(tz),
        ),
        TimeUnit::Microsecond => Arc::new(
            col.as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone(tz),
        ),
        TimeUnit::Nanosecond => Arc::new(
            col.as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone(tz),
        ),
    }
}

/// The rows as CSV lines in the file's header order (appended on commit).
fn csv_lines(path: &Path, rows: &[Map<String, Json>]) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let header: Vec<&str> = text
        .lines()
        .next()
        .ok_or_else(|| unwritable(path, "has no header line"))?
        .split(',')
        .map(str::trim)
        .collect();
    if let Some(extra) = rows
        .first()
        .and_then(|r| r.keys().find(|k| !header.contains(&k.as_str())))
    {
        return Err(unwritable(
            path,
            format!("has no column `{extra}` (columns: {})", header.join(", ")),
        ));
    }
    let mut out = String::new();
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    for row in rows {
        let cells: Vec<String> = header
            .iter()
            .map(|h| csv_cell(row.get(*h).unwrap_or(&Json::Null)))
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn csv_cell(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) if s.contains([',', '"', '\n', '\r']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The online window state of a derived view: per entity key, the events its next evaluation
/// needs (`retain_window_events`), stored as one record in a table beside the view's own
/// (`{view}#window`, same version; `#` cannot appear in a view name):
/// `[event times, created times (i64::MIN: none), one float64 list per input column (NaN:
/// null)]`.
fn window_state_table(table: &ViewTable, view: &FeatureView) -> ViewTable {
    let mut types = vec![
        ValueType::List(ScalarType::Timestamp),
        ValueType::List(ScalarType::Int64),
    ];
    types.extend(
        view.source_columns()
            .iter()
            .map(|_| ValueType::List(ScalarType::Float64)),
    );
    ViewTable {
        project: table.project.clone(),
        view: format!("{}#window", table.view),
        version: table.version,
        types: types.into(),
        // Windows only: a state untouched for its longest window is no longer needed (a
        // later push seeds it again from the batch source). Series keep theirs.
        ttl: quiver_offline::engine::lookback_ns(view)
            .filter(|_| {
                view.transforms
                    .iter()
                    .all(|t| matches!(t, Transform::Window { .. }))
            })
            .map(|ns| std::time::Duration::from_nanos(ns.max(1) as u64)),
    }
}

const NO_CREATED: i64 = i64::MIN;

fn encode_window_state(events: &[WindowEvent], columns: usize) -> Record {
    let mut values = vec![
        Value::TimestampList(events.iter().map(|e| e.event_ts).collect()),
        Value::Int64List(
            events
                .iter()
                .map(|e| e.created_ts.unwrap_or(NO_CREATED))
                .collect(),
        ),
    ];
    for c in 0..columns {
        values.push(Value::Float64List(
            events
                .iter()
                .map(|e| e.values.get(c).copied().flatten().unwrap_or(f64::NAN))
                .collect(),
        ));
    }
    Record {
        event_ts: events.last().map_or(0, |e| e.event_ts),
        created_ts: None,
        values,
    }
}

fn decode_window_state(record: &Record, columns: usize) -> Result<Vec<WindowEvent>> {
    let corrupt = || Error::Internal("a window state record does not have its layout".into());
    let (Some(Value::TimestampList(times)), Some(Value::Int64List(created))) =
        (record.values.first(), record.values.get(1))
    else {
        return Err(corrupt());
    };
    let lists = (0..columns)
        .map(|c| match record.values.get(2 + c) {
            Some(Value::Float64List(v)) if v.len() == times.len() => Ok(v),
            _ => Err(corrupt()),
        })
        .collect::<Result<Vec<_>>>()?;
    if created.len() != times.len() {
        return Err(corrupt());
    }
    Ok((0..times.len())
        .map(|i| WindowEvent {
            event_ts: times[i],
            created_ts: (created[i] != NO_CREATED).then_some(created[i]),
            values: lists
                .iter()
                .map(|l| Some(l[i]).filter(|x| !x.is_nan()))
                .collect(),
        })
        .collect())
}

/// One lock per view version's window state: pushes into one view read, extend and write its
/// state one at a time in this process.
fn window_lock(table: &ViewTable) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    locks.entry(table.key_prefix("")).or_default().clone()
}

impl FeatureStore {
    /// Pushed events of a derived view (aggregations, time series) update its online features
    /// incrementally: the events join each key's window state (read from the online store, or
    /// seeded once from the batch source for a key without one), the state keeps what the next
    /// evaluation needs, and the key's features are evaluated at its latest event by the same
    /// operators `quiver build` runs, so they equal build's row for that event. The features
    /// are written newer-wins (event time: the key's latest event), then the state. Returns
    /// what the feature write did.
    pub async fn push_window_events(
        &self,
        view_name: &str,
        events: Vec<(EntityKey, WindowEvent)>,
    ) -> Result<WriteSummary> {
        let served = self.view(view_name)?.clone();
        let view = served.definition.clone();
        if !view.is_derived() {
            return Err(Error::Internal(format!(
                "feature view `{view_name}` has no aggregations or time series"
            )));
        }
        if view.sql.is_some() {
            return Err(Error::InvalidRequest(format!(
                "feature view `{view_name}` reads its source through `sql`; pushed rows cannot update it online: push `to: offline` and materialize"
            )));
        }
        if events.is_empty() {
            return Ok(WriteSummary::default());
        }
        let lock = window_lock(&served.table);
        let _guard = lock.lock().await;
        let columns = view.source_columns().len();
        let state_table = window_state_table(&served.table, &view);
        let mut keys: Vec<EntityKey> = Vec::new();
        let mut pushed: Vec<Vec<WindowEvent>> = Vec::new();
        let mut index: std::collections::HashMap<EntityKey, usize> = Default::default();
        for (key, event) in events {
            let i = *index.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                pushed.push(Vec::new());
                keys.len() - 1
            });
            pushed[i].push(event);
        }
        let stored = self.online_store().read(&state_table, &keys).await?;
        let mut lists: Vec<Vec<WindowEvent>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<usize> = Vec::new();
        for (i, record) in stored.iter().enumerate() {
            match record {
                Some(r) => lists.push(decode_window_state(r, columns)?),
                None => {
                    missing.push(i);
                    lists.push(Vec::new());
                }
            }
        }
        if !missing.is_empty() {
            let earliest = missing
                .iter()
                .flat_map(|&i| pushed[i].iter().map(|e| e.event_ts))
                .min()
                .unwrap_or(i64::MAX);
            let start = quiver_offline::engine::lookback_ns(&view)
                .map(|back| earliest.saturating_sub(back));
            let resolved = self.source_of(&view)?.clone();
            let seed_keys: Vec<EntityKey> = missing.iter().map(|&i| keys[i].clone()).collect();
            let seed_view = view.clone();
            let seeded = tokio::task::spawn_blocking(move || {
                quiver_offline::engine::window_events_of(
                    &resolved.path,
                    &resolved.source,
                    &seed_view,
                    start,
                    &seed_keys,
                )
            })
            .await
            .map_err(|e| Error::Internal(format!("window seed task failed: {e}")))??;
            for (&i, events) in missing.iter().zip(seeded) {
                lists[i] = events;
            }
        }
        for (list, new) in lists.iter_mut().zip(pushed) {
            list.extend(new);
            quiver_offline::engine::retain_window_events(&view, list);
        }
        let records = quiver_offline::engine::evaluate_at_latest_event(&view, &lists)?;
        let rows: Vec<(EntityKey, Record)> = keys
            .iter()
            .cloned()
            .zip(records)
            .filter_map(|(k, r)| r.map(|r| (k, r)))
            .collect();
        // Features first: if the state write then fails, the push fails and its retry adds the
        // same events to the old state once.
        let summary = self.write_to_online_store(view_name, &rows).await?;
        let states: Vec<(EntityKey, Record)> = keys
            .into_iter()
            .zip(&lists)
            .map(|(k, list)| (k, encode_window_state(list, columns)))
            .collect();
        self.online_store().write(&state_table, &states).await?;
        Ok(summary)
    }
}
