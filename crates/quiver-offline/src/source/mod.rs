//! Reading a feature view's source file.
//!
//! A [`ReadRequest`] names the file, its [`Source`] definition (format, timestamp columns), the
//! view's join keys and fields. [`read_latest`] streams the file in record batches, reading only
//! the needed columns, and keeps one row per entity: the latest inside the window. Nothing
//! else is held in memory, so a file far larger than memory materializes in one pass.
//!
//! [`read_columns`] and [`check_source`] answer "does this file fit these definitions" from the
//! Parquet footer or the CSV header alone, for `quiver apply`.

mod computed;
pub(crate) mod convert;
mod csv;
mod latest;
mod parquet;
mod postgres;
mod sql;
mod table;

pub use convert::column_values;
pub use latest::{BadRow, LatestIndex, LatestRow, read_latest_index};
pub use sql::SOURCE_TABLE;
pub use table::{TableRead, column_to_nanos, read_table, read_table_counted, table_layout};

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use quiver_core::{EntityKey, Field, JoinKey, Record, ScalarType, Source, SourceFormat, ValueType};

use crate::error::{OfflineError, Result};
use convert::{Plan, PlanOptions};

/// Rows per record batch: large enough to amortize per-batch work, small enough that a batch of
/// a wide file stays a few MiB.
const DEFAULT_BATCH_SIZE: usize = 16 * 1024;

/// What to read from a source file.
#[derive(Clone, Copy, Debug)]
pub struct ReadRequest<'a> {
    /// The file, already resolved against the project directory.
    pub path: &'a Path,
    /// The source definition: format, `timestamp_field`, `created_timestamp_field`.
    pub source: &'a Source,
    /// The view's join keys, in entity-key order.
    pub join_keys: &'a [JoinKey],
    /// The view's fields; a record's values come out in this order. Fields with an
    /// `expression` are computed from the row (`computed.rs`).
    pub fields: &'a [Field],
    /// The raw columns the fields' expressions read besides the plain fields (the view's
    /// `inputs`), with their declared types.
    pub inputs: &'a [Field],
    /// Earliest event time to read, ns since the epoch UTC, inclusive.
    pub start: Option<i64>,
    /// Event times from here on are not read, ns since the epoch UTC (exclusive).
    pub end: Option<i64>,
    /// The view's `sql:` transform: when set, its result over the source is read instead of the
    /// source (see `sql.rs`).
    pub sql: Option<&'a str>,
}

/// The result of [`read_latest`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatestRows {
    /// One row per entity key, in the order each key first appeared in the file.
    pub rows: Vec<(EntityKey, Record)>,
    /// Every row of the file.
    pub rows_scanned: u64,
    /// Rows whose event time is inside the window (including those with a null join key).
    pub rows_in_window: u64,
    /// Rows inside the window skipped because a join key is null.
    pub rows_null_key: u64,
    /// Rows skipped because their event time is null (they belong to no window).
    pub rows_null_timestamp: u64,
}

/// Per entity key, the latest row with `start <= event time < end`.
///
/// "Latest" orders by event time, then created time (a null created time sorts first, as in
/// [`Record::order_key`]); rows equal on both resolve to the later row in the file, so an
/// append-only file's correction wins. Values are converted to each field's type as described in
/// `convert.rs`; a value that does not fit its type is an error only if its row is read out.
/// Timestamp columns without a time zone are taken as UTC; Date32/Date64 as midnight UTC.
pub fn read_latest(req: &ReadRequest<'_>) -> Result<LatestRows> {
    read_latest_with_batch_size(req, DEFAULT_BATCH_SIZE)
}

/// [`read_latest`] reading `batch_size` rows at a time: smaller batches bound memory on very wide
/// files (and let tests cross batch boundaries).
pub fn read_latest_with_batch_size(req: &ReadRequest<'_>, batch_size: usize) -> Result<LatestRows> {
    let origin = origin(req);
    let needs = needs(req);
    let opened = open(req, &origin, &needs, batch_size.max(1))?;
    let planned = plan_all(&origin, &opened.schema, &needs, opened.options)?;
    latest::fold(
        &origin,
        opened.batches,
        &planned,
        latest::Layout {
            keys: req.join_keys.len(),
            created: req.source.created_timestamp_field.is_some(),
        },
        req.start,
        req.end,
    )
}

/// Checks that every column the request needs exists and converts to its declared type, from
/// the Parquet footer or the CSV header (no data is read, so a CSV value that fails to parse,
/// or a value out of its field's range, is only found by reading).
pub fn check_source(req: &ReadRequest<'_>) -> Result<()> {
    let origin = origin(req);
    let needs = needs(req);
    let raw = computed::raw_needs(req, &needs);
    let (schema, options) = match (req.sql, req.source.format) {
        (Some(sql), _) => sql::schema(req, &origin, sql)?,
        (None, SourceFormat::Parquet) => {
            (parquet::schema(req.path, &origin)?, PlanOptions::default())
        }
        (None, SourceFormat::Csv) => {
            csv::typed_schema(req.path, &origin, &csv_columns(&origin, &raw)?)?
        }
        (None, SourceFormat::Postgres) => postgres::schema(req, &origin, &raw)?,
    };
    let schema = match computed::Computed::new(req, &origin, &schema, options)? {
        Some(c) => c.schema(),
        None => schema,
    };
    plan_all(&origin, &schema, &needs, options).map(|_| ())
}

/// The columns of a source file without reading its data: the Parquet schema from the footer,
/// or the CSV header's names (typed Utf8, since CSV carries no types).
pub fn read_columns(path: &Path, format: SourceFormat) -> Result<SchemaRef> {
    let origin = format!("file `{}`", path.display());
    match format {
        SourceFormat::Parquet => parquet::schema(path, &origin),
        SourceFormat::Csv => csv::header_schema(path, &origin),
        SourceFormat::Postgres => Err(OfflineError::Unsupported {
            origin,
            message: "a postgres source has no file to read columns from".into(),
        }),
    }
}

fn origin(req: &ReadRequest<'_>) -> String {
    if req.sql.is_some() {
        return format!(
            "the `sql` query over source `{}` ({})",
            req.source.name,
            req.path.display()
        );
    }
    match (&req.source.table, &req.source.query) {
        (Some(t), _) => format!("source `{}` (postgres table `{t}`)", req.source.name),
        (None, Some(_)) => format!("source `{}` (postgres query)", req.source.name),
        _ => format!("source `{}` ({})", req.source.name, req.path.display()),
    }
}

/// What a column is read for; decides its target type and how errors describe it.
#[derive(Clone, Copy, Debug)]
enum Role<'a> {
    Key(&'a JoinKey),
    Timestamp,
    Field(&'a Field),
}

#[derive(Clone, Copy, Debug)]
struct Need<'a> {
    column: &'a str,
    role: Role<'a>,
}

/// The columns to read, in the order [`latest::fold`] expects: join keys, event timestamp,
/// created timestamp (when defined), fields.
fn needs<'a>(req: &ReadRequest<'a>) -> Vec<Need<'a>> {
    let keys = req.join_keys.iter().map(|k| Need {
        column: &k.name,
        role: Role::Key(k),
    });
    let timestamps = std::iter::once(req.source.timestamp_field.as_str())
        .chain(req.source.created_timestamp_field.as_deref())
        .map(|column| Need {
            column,
            role: Role::Timestamp,
        });
    let fields = req.fields.iter().map(|f| Need {
        column: &f.name,
        role: Role::Field(f),
    });
    keys.chain(timestamps).chain(fields).collect()
}

impl Role<'_> {
    fn target(&self, origin: &str) -> Result<ValueType> {
        Ok(match self {
            Role::Key(k) => match k.key_type {
                ScalarType::Int32 | ScalarType::Int64 => ValueType::Scalar(ScalarType::Int64),
                ScalarType::String => ValueType::Scalar(ScalarType::String),
                other => {
                    return Err(OfflineError::Unsupported {
                        origin: origin.to_string(),
                        message: format!(
                            "join key `{}` has type {}; join keys are int64 or string",
                            k.name,
                            other.name()
                        ),
                    });
                }
            },
            Role::Timestamp => ValueType::Scalar(ScalarType::Timestamp),
            Role::Field(f) => f.value_type,
        })
    }

    fn expected_type(&self) -> String {
        match self {
            Role::Field(f) => f.value_type.to_string(),
            Role::Key(k) => k.key_type.name().to_string(),
            Role::Timestamp => "timestamp".into(),
        }
    }

    fn expected(&self) -> String {
        match self {
            Role::Key(k) => format!("join key `{}` is {}", k.name, k.key_type.name()),
            Role::Timestamp => "a source timestamp must be a timestamp or date column".into(),
            Role::Field(f) => format!("feature view field is {}", f.value_type),
        }
    }
}

/// A needed column and how it converts.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub column: String,
    pub plan: Plan,
}

fn plan_all(
    origin: &str,
    schema: &Schema,
    needs: &[Need<'_>],
    options: PlanOptions,
) -> Result<Vec<Planned>> {
    needs
        .iter()
        .map(|need| {
            let field =
                schema
                    .field_with_name(need.column)
                    .map_err(|_| OfflineError::MissingColumn {
                        origin: origin.to_string(),
                        column: need.column.to_string(),
                        available: available(schema),
                    })?;
            let target = need.role.target(origin)?;
            let plan = convert::plan(field.data_type(), target, options).ok_or_else(|| {
                OfflineError::IncompatibleType {
                    origin: origin.to_string(),
                    column: need.column.to_string(),
                    found: field.data_type().to_string(),
                    expected: need.role.expected(),
                }
            })?;
            Ok(Planned {
                column: need.column.to_string(),
                plan,
            })
        })
        .collect()
}

fn available(schema: &Schema) -> String {
    if schema.fields().is_empty() {
        return "none".into();
    }
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A source opened for reading: the types its batches carry and the batches.
pub(crate) struct Opened {
    pub schema: SchemaRef,
    pub batches: Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>>>,
    pub options: PlanOptions,
}

/// Opens the source for the request's needs; fields computed by expressions are added to each
/// batch (`computed.rs`) from the raw columns read for them.
fn open(
    req: &ReadRequest<'_>,
    origin: &str,
    needs: &[Need<'_>],
    batch_size: usize,
) -> Result<Opened> {
    let raw = computed::raw_needs(req, needs);
    let opened = open_raw(req, origin, &raw, batch_size)?;
    Ok(
        match computed::Computed::new(req, origin, &opened.schema, opened.options)? {
            Some(c) => c.wrap(opened),
            None => opened,
        },
    )
}

fn open_raw(
    req: &ReadRequest<'_>,
    origin: &str,
    needs: &[Need<'_>],
    batch_size: usize,
) -> Result<Opened> {
    let mut columns: Vec<&str> = Vec::new();
    for need in needs {
        if !columns.contains(&need.column) {
            columns.push(need.column);
        }
    }
    if let Some(sql) = req.sql {
        return sql::open(req, origin, sql, batch_size);
    }
    match req.source.format {
        SourceFormat::Parquet => parquet::open(req.path, origin, &columns, batch_size),
        SourceFormat::Csv => csv::open(req.path, origin, &csv_columns(origin, needs)?, batch_size),
        SourceFormat::Postgres => postgres::open(req, origin, needs),
    }
}

/// The Arrow type each needed CSV column is parsed as. A column needed twice (a join key that is
/// also a feature) is parsed as its first role's type and converted from there.
fn csv_columns<'a>(origin: &str, needs: &[Need<'a>]) -> Result<Vec<(&'a str, DataType)>> {
    let mut out: Vec<(&str, DataType)> = Vec::new();
    for need in needs {
        if out.iter().any(|(c, _)| *c == need.column) {
            continue;
        }
        let unsupported = |what: String| OfflineError::Unsupported {
            origin: origin.to_string(),
            message: format!(
                "field `{}` is {what}, which a CSV file cannot hold; use a parquet source",
                need.column
            ),
        };
        let ty = match need.role.target(origin)? {
            ValueType::List(_) => {
                return Err(unsupported(format!(
                    "a list ({})",
                    need.role.expected_type()
                )));
            }
            ValueType::Scalar(s) => match s {
                // Parsed wide, then range-checked per value (`convert.rs`): text holding
                // `1e39` for a float32 field is an out-of-range value, not infinity.
                ScalarType::Int32 | ScalarType::Int64 => DataType::Int64,
                ScalarType::Float32 | ScalarType::Float64 => DataType::Float64,
                ScalarType::Bool => DataType::Boolean,
                ScalarType::String => DataType::Utf8,
                // arrow-csv reads a naive time as UTC and honours an explicit offset. No time
                // zone name: without chrono-tz, arrow only understands offsets.
                ScalarType::Timestamp => {
                    DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None)
                }
                // Parsed from the text by rust_decimal: exact, whatever the scale.
                ScalarType::Decimal => DataType::Utf8,
                ScalarType::Bytes => return Err(unsupported("bytes".into())),
            },
        };
        out.push((need.column, ty));
    }
    Ok(out)
}
