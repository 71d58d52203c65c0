//! The offline store conformance suite: every semantic promised by `store/mod.rs`, written once
//! (the `cases` module) and run against each backend by `conformance!`: Parquet in a temporary
//! directory, PostgreSQL on a real server started by `quiver-test-utils`, and TimescaleDB (the
//! same store over hypertables, on a server with the extension preloaded).
//!
//! Backend-specific behaviour (Parquet layout and crash leftovers, PostgreSQL binary COPY speed,
//! index description, password hygiene, reconnection) is tested after the shared suite.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema};
use quiver_core::{EntityKey, KeyValue, Record, ScalarType, Value, ValueType};
use quiver_offline::store::{
    CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineStore, OfflineTable, ParquetOfflineStore,
    PostgresConfig, PostgresOfflineStore, arrow_type, timestamp_type,
};
use quiver_test_utils::PostgresServer;
use rust_decimal::Decimal;

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;
/// 2026-11-03T00:00:00Z.
const D0: i64 = 20_760 * DAY;

/// A store under test and whatever keeps its backend alive.
struct Harness {
    store: Box<dyn OfflineStore>,
    /// Distinct per test, so tests sharing a server never share tables.
    project: String,
    /// PostgreSQL keeps microseconds only.
    micros_only: bool,
    /// The server's URL and the store's schema, for PostgreSQL harnesses.
    url: Option<String>,
    _guard: Box<dyn Any + Send>,
}

/// A project name unique to this test that keeps table and schema names well under
/// PostgreSQL's 63-byte limit.
fn project_name(case: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if case.len() <= 20 {
        return case.to_string();
    }
    format!("{}_{}", &case[..16], NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn parquet_harness(case: &str) -> Harness {
    let project = project_name(case);
    let project = project.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    Harness {
        store: Box::new(ParquetOfflineStore::new(dir.path().join("offline"))),
        project: project.to_string(),
        micros_only: false,
        url: None,
        _guard: Box::new(dir),
    }
}

/// One server for every PostgreSQL test running at the same time (each uses its own schema);
/// it stops when the last of them drops it, so nothing outlives the test binary.
fn shared_server() -> Arc<PostgresServer> {
    static SHARED: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(PostgresServer::start());
    *shared = Arc::downgrade(&server);
    server
}

/// Like [`shared_server`], for the TimescaleDB server.
fn shared_timescaledb_server() -> Arc<PostgresServer> {
    static SHARED: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(PostgresServer::start_timescaledb());
    *shared = Arc::downgrade(&server);
    server
}

async fn postgres_harness(case: &str) -> Harness {
    postgres_harness_on(case, shared_server()).await
}

async fn timescaledb_harness(case: &str) -> Harness {
    postgres_harness_on(case, shared_timescaledb_server()).await
}

async fn postgres_harness_on(case: &str, server: Arc<PostgresServer>) -> Harness {
    let project = project_name(case);
    let project = project.as_str();
    let mut config = PostgresConfig::new(server.url());
    config.schema = format!("t_{project}");
    let store = PostgresOfflineStore::connect(&config)
        .await
        .expect("connect to the test server");
    Harness {
        store: Box::new(store),
        project: project.to_string(),
        micros_only: true,
        url: Some(server.url()),
        _guard: Box::new(server),
    }
}

impl Harness {
    /// A second store on the same server and schema as this PostgreSQL harness, for calls
    /// beyond the trait (`explain_read_latest`).
    async fn postgres_store(&self) -> PostgresOfflineStore {
        let mut config = PostgresConfig::new(self.url.clone().expect("a PostgreSQL harness"));
        config.schema = format!("t_{}", self.project);
        PostgresOfflineStore::connect(&config)
            .await
            .expect("connect")
    }
}

// ---------------------------------------------------------------------------------------------
// Tables and rows.

/// `user_id` → `amount` (float64).
fn simple_table(project: &str) -> OfflineTable {
    OfflineTable {
        project: project.to_string(),
        view: "user_spend".to_string(),
        version: 1,
        schema: Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
            Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
            Field::new("amount", DataType::Float64, true),
        ])),
        join_keys: vec!["user_id".to_string()],
    }
}

fn ts_array(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

/// Rows `(user_id, event time, amount)` of the simple table; created time is event time + 1s.
fn simple_batch(table: &OfflineTable, rows: &[(i64, i64, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            ts_array(rows.iter().map(|r| Some(r.1)).collect()),
            ts_array(rows.iter().map(|r| Some(r.1 + SECOND)).collect()),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("valid batch")
}

/// The same type without timezones: the display code needs chrono-tz to render named zones.
fn without_timezone(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, None),
        DataType::List(item) => DataType::List(Arc::new(Field::new(
            item.name(),
            without_timezone(item.data_type()),
            item.is_nullable(),
        ))),
        other => other.clone(),
    }
}

/// Every row rendered as text, sorted: batches compare equal whatever their order or split.
fn rendered(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| arrow_cast::cast(c, &without_timezone(c.data_type())).expect("castable"))
            .collect::<Vec<_>>();
        let formatters = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formattable"))
            .collect::<Vec<_>>();
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// Event times (ns) of every row, sorted.
fn event_times(batches: &[RecordBatch]) -> Vec<i64> {
    let mut times: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(EVENT_TIMESTAMP)
                .expect("event time column")
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .expect("nanosecond timestamps")
                .values()
                .to_vec()
        })
        .collect();
    times.sort_unstable();
    times
}

async fn read_all(h: &Harness, table: &OfflineTable) -> Vec<RecordBatch> {
    let batches = h
        .store
        .read_range(table, None, None)
        .await
        .expect("read_range");
    for b in &batches {
        assert_eq!(
            b.schema(),
            table.schema,
            "read_range returns exactly the table schema"
        );
    }
    batches
}

/// A table with a string and an integer key and one feature of every type, scalar and list.
fn full_table(project: &str) -> OfflineTable {
    let scalars = [
        ("f_i32", ScalarType::Int32),
        ("f_i64", ScalarType::Int64),
        ("f_f32", ScalarType::Float32),
        ("f_f64", ScalarType::Float64),
        ("f_bool", ScalarType::Bool),
        ("f_str", ScalarType::String),
        ("f_bytes", ScalarType::Bytes),
        ("f_ts", ScalarType::Timestamp),
        ("f_dec", ScalarType::Decimal),
    ];
    let mut fields = vec![
        Field::new("merchant", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
        Field::new(CREATED_TIMESTAMP, timestamp_type(), true),
    ];
    for (name, ty) in scalars {
        fields.push(Field::new(name, arrow_type(ValueType::Scalar(ty)), true));
    }
    for (name, ty) in scalars {
        fields.push(Field::new(
            format!("l{name}"),
            arrow_type(ValueType::List(ty)),
            true,
        ));
    }
    OfflineTable {
        project: project.to_string(),
        view: "everything".to_string(),
        version: 3,
        schema: Arc::new(Schema::new(fields)),
        join_keys: vec!["merchant".to_string(), "user_id".to_string()],
    }
}

/// A list column of `item_type` from per-row optional element arrays.
fn list(
    table: &OfflineTable,
    column: &str,
    values: ArrayRef,
    lengths: &[Option<usize>],
) -> ArrayRef {
    let DataType::List(item) = table
        .schema
        .field_with_name(column)
        .unwrap()
        .data_type()
        .clone()
    else {
        panic!("{column} is a list");
    };
    let offsets =
        arrow_buffer::OffsetBuffer::<i32>::from_lengths(lengths.iter().map(|l| l.unwrap_or(0)));
    let nulls =
        arrow_buffer::NullBuffer::from(lengths.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(ListArray::new(item, offsets, values, Some(nulls)))
}

/// Three rows of the full table: ordinary values, extremes and empties, and all nulls.
fn full_batch(table: &OfflineTable, at: i64) -> RecordBatch {
    let dec = |a: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(a)
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )
    };
    let us = |s: i64| s * 1000; // microsecond-aligned nanoseconds (PostgreSQL precision)
    let lengths = [Some(2), Some(0), None];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            "acme",
            "ünïcødé \"quoted\" 'x'",
            "",
        ])),
        Arc::new(Int64Array::from(vec![1, i64::MIN, i64::MAX])),
        ts_array(vec![Some(at), Some(at + us(1)), Some(at + us(2))]),
        ts_array(vec![Some(at + SECOND), None, None]),
        Arc::new(Int32Array::from(vec![Some(7), Some(i32::MIN), None])),
        Arc::new(Int64Array::from(vec![Some(-7), Some(i64::MAX), None])),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            Some(f32::MIN_POSITIVE),
            None,
        ])),
        Arc::new(Float64Array::from(vec![Some(-2.25), Some(f64::MAX), None])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            Some(&b""[..]),
            None,
        ])),
        ts_array(vec![
            Some(us(-1_000_000)),
            Some(us(1_700_000_000_123_456)),
            None,
        ]),
        dec(vec![
            Some(123_456_789_012_345), // 12345.6789012345
            Some(-99_999_999_999_999_999_999_999_999_999_999_999_999),
            None,
        ]),
        list(
            table,
            "lf_i32",
            Arc::new(Int32Array::from(vec![1, -2])),
            &lengths,
        ),
        list(
            table,
            "lf_i64",
            Arc::new(Int64Array::from(vec![i64::MIN, 0])),
            &lengths,
        ),
        list(
            table,
            "lf_f32",
            Arc::new(Float32Array::from(vec![0.5, -0.0])),
            &lengths,
        ),
        list(
            table,
            "lf_f64",
            Arc::new(Float64Array::from(vec![1e300, 3.0])),
            &lengths,
        ),
        list(
            table,
            "lf_bool",
            Arc::new(BooleanArray::from(vec![true, false])),
            &lengths,
        ),
        list(
            table,
            "lf_str",
            Arc::new(StringArray::from(vec!["a,b", "{}\"\\"])),
            &lengths,
        ),
        list(
            table,
            "lf_bytes",
            Arc::new(BinaryArray::from(vec![&b"x"[..], &b""[..]])),
            &lengths,
        ),
        list(
            table,
            "lf_ts",
            Arc::new(TimestampNanosecondArray::from(vec![us(5), us(-5)]).with_timezone("UTC")),
            &lengths,
        ),
        list(
            table,
            "lf_dec",
            Arc::new(
                Decimal128Array::from(vec![1, -10_000_000_000])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            &lengths,
        ),
    ];
    RecordBatch::try_new(table.schema.clone(), columns).expect("valid full batch")
}

/// Rows `(user_id, event time, created time, amount)` of the simple table.
fn timed_batch(table: &OfflineTable, rows: &[(i64, i64, Option<i64>, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            ts_array(rows.iter().map(|r| Some(r.1)).collect()),
            ts_array(rows.iter().map(|r| r.2).collect()),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .expect("valid batch")
}

fn int_key(id: i64) -> EntityKey {
    EntityKey(vec![KeyValue::Int(id)])
}

/// The simple table's record: event time, created time, amount.
fn amount_record(event: i64, created: Option<i64>, amount: f64) -> Option<Record> {
    Some(Record {
        event_ts: event,
        created_ts: created,
        values: vec![Value::Float64(amount)],
    })
}

/// Looks up `ids` of the simple table and returns each winner's amount.
async fn amounts(
    h: &Harness,
    table: &OfflineTable,
    ids: &[i64],
    as_of: i64,
    ttl: Option<i64>,
) -> Vec<Option<f64>> {
    let keys: Vec<EntityKey> = ids.iter().map(|id| int_key(*id)).collect();
    let found = h
        .store
        .read_latest(table, &keys, as_of, ttl)
        .await
        .expect("read_latest");
    assert_eq!(found.len(), ids.len(), "one answer per key");
    found
        .into_iter()
        .map(|r| {
            r.map(|r| match r.values[..] {
                [Value::Float64(v)] => v,
                ref other => panic!("unexpected values {other:?}"),
            })
        })
        .collect()
}

/// What `read_latest` returns for row 0 of [`full_batch`] (written at `at`).
fn full_record(at: i64) -> Record {
    let us = |s: i64| s * 1000;
    let dec = |mantissa: i128| Decimal::from_i128_with_scale(mantissa, 10);
    Record {
        event_ts: at,
        created_ts: Some(at + SECOND),
        values: vec![
            Value::Int32(7),
            Value::Int64(-7),
            Value::Float32(1.5),
            Value::Float64(-2.25),
            Value::Bool(true),
            Value::String("héllo".into()),
            Value::Bytes(vec![0, 0xff]),
            Value::Timestamp(us(-1_000_000)),
            Value::Decimal(dec(123_456_789_012_345)),
            Value::Int32List(vec![1, -2]),
            Value::Int64List(vec![i64::MIN, 0]),
            Value::Float32List(vec![0.5, -0.0]),
            Value::Float64List(vec![1e300, 3.0]),
            Value::BoolList(vec![true, false]),
            Value::StringList(vec!["a,b".into(), "{}\"\\".into()]),
            Value::BytesList(vec![b"x".to_vec(), Vec::new()]),
            Value::TimestampList(vec![us(5), us(-5)]),
            Value::DecimalList(vec![dec(1), dec(-10_000_000_000)]),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// The suite, written once.

mod cases {
    use super::*;

    pub async fn ensure_table_is_idempotent(h: Harness) {
        let table = simple_table(&h.project);
        assert!(
            h.store.read_range(&table, None, None).await.is_err(),
            "reading a table that was never created is an error"
        );
        let first = h.store.ensure_table(&table).await.expect("ensure_table");
        let second = h
            .store
            .ensure_table(&table)
            .await
            .expect("ensure_table again");
        assert_eq!(first, second);
        assert!(read_all(&h, &table).await.is_empty());
        let rows = [(1, D0, 1.0)];
        h.store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        h.store
            .ensure_table(&table)
            .await
            .expect("ensure_table keeps data");
        assert_eq!(rendered(&read_all(&h, &table).await).len(), 1);
    }

    pub async fn write_then_read_back(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (0..50)
            .map(|i| (i % 7, D0 + i * 60 * SECOND, i as f64 * 0.5))
            .collect();
        let batch = simple_batch(&table, &rows);
        // Two batches, to check that writes accept any split.
        let written = h
            .store
            .write_range(
                &table,
                D0,
                D0 + DAY,
                &[batch.slice(0, 20), batch.slice(20, 30)],
            )
            .await
            .unwrap();
        assert_eq!(written, 50);
        assert_eq!(rendered(&read_all(&h, &table).await), rendered(&[batch]));
    }

    pub async fn read_range_bounds(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (0..10).map(|i| (1, D0 + i * HOUR, i as f64)).collect();
        h.store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        let at = |i: i64| D0 + i * HOUR;
        let read = |start: Option<i64>, end: Option<i64>| {
            let store = &h.store;
            let table = &table;
            async move { event_times(&store.read_range(table, start, end).await.unwrap()) }
        };
        assert_eq!(
            read(Some(at(3)), Some(at(7))).await,
            (3..7).map(at).collect::<Vec<_>>()
        );
        assert_eq!(read(None, Some(at(2))).await, vec![at(0), at(1)]);
        assert_eq!(read(Some(at(8)), None).await, vec![at(8), at(9)]);
        assert_eq!(read(None, None).await.len(), 10);
        assert!(read(Some(at(5)), Some(at(5))).await.is_empty());
        assert!(read(Some(at(20)), None).await.is_empty());
        // Bounds between rows, and a range spanning the day boundary.
        assert_eq!(
            read(Some(at(3) + 1), Some(at(5) - 1)).await,
            vec![at(4)],
            "start and end between rows"
        );
        assert_eq!(read(Some(D0 - DAY), Some(D0 + 2 * DAY)).await.len(), 10);
    }

    pub async fn overlapping_write_replaces_exactly_its_range(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        // Old rows every 6 hours over three days.
        let old: Vec<(i64, i64, f64)> = (0..12).map(|i| (1, D0 + i * 6 * HOUR, 1.0)).collect();
        h.store
            .write_range(&table, D0, D0 + 3 * DAY, &[simple_batch(&table, &old)])
            .await
            .unwrap();
        // Replace [day 0 18:00, day 1 12:00): old rows at 18:00, 00:00, 06:00 of day 1 go.
        let (start, end) = (D0 + 18 * HOUR, D0 + DAY + 12 * HOUR);
        let new = [(1, D0 + 20 * HOUR, 2.0), (2, D0 + DAY + 11 * HOUR, 2.0)];
        let expected: Vec<(i64, i64, f64)> = old
            .iter()
            .copied()
            .filter(|r| r.1 < start || r.1 >= end)
            .chain(new)
            .collect();
        assert_eq!(expected.len(), 11);
        for _ in 0..2 {
            // Re-running the same build never duplicates rows.
            h.store
                .write_range(&table, start, end, &[simple_batch(&table, &new)])
                .await
                .unwrap();
            assert_eq!(
                rendered(&read_all(&h, &table).await),
                rendered(&[simple_batch(&table, &expected)])
            );
        }
        // An empty write over a range deletes it.
        h.store
            .write_range(&table, D0 + 2 * DAY, D0 + 3 * DAY, &[])
            .await
            .unwrap();
        let times = event_times(&read_all(&h, &table).await);
        assert_eq!(times.len(), 7);
        assert!(times.iter().all(|t| *t < D0 + 2 * DAY));
    }

    pub async fn bad_writes_fail_and_keep_old_rows(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let old = [(1, D0, 1.0), (1, D0 + HOUR, 1.0)];
        h.store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &old)])
            .await
            .unwrap();
        // A row outside the range.
        let err = h
            .store
            .write_range(
                &table,
                D0,
                D0 + HOUR,
                &[simple_batch(&table, &[(2, D0 + HOUR, 9.0)])],
            )
            .await
            .expect_err("a row outside the range is rejected");
        assert!(
            err.to_string().contains("outside the written range"),
            "{err}"
        );
        // A batch of another schema.
        let other = full_table(&h.project);
        let err = h
            .store
            .write_range(&table, D0, D0 + DAY, &[full_batch(&other, D0)])
            .await
            .expect_err("a batch of another schema is rejected");
        assert!(err.to_string().contains("offline table"), "{err}");
        // An inverted range.
        assert!(
            h.store
                .write_range(&table, D0 + DAY, D0, &[])
                .await
                .is_err()
        );
        assert_eq!(
            rendered(&read_all(&h, &table).await),
            rendered(&[simple_batch(&table, &old)])
        );
    }

    pub async fn prune_deletes_older_rows(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (0..12).map(|i| (i, D0 + i * 6 * HOUR, 1.0)).collect();
        h.store
            .write_range(&table, D0, D0 + 3 * DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        // Before day 1 12:00: all of day 0 (4 rows) and day 1's 00:00 and 06:00.
        let before = D0 + DAY + 12 * HOUR;
        assert_eq!(h.store.prune(&table, before).await.unwrap(), 6);
        let times = event_times(&read_all(&h, &table).await);
        assert_eq!(
            times,
            (6..12).map(|i| D0 + i * 6 * HOUR).collect::<Vec<_>>()
        );
        assert_eq!(h.store.prune(&table, before).await.unwrap(), 0);
        assert_eq!(h.store.prune(&table, D0 - DAY).await.unwrap(), 0);
        assert_eq!(h.store.prune(&table, D0 + 10 * DAY).await.unwrap(), 6);
        assert!(read_all(&h, &table).await.is_empty());
    }

    pub async fn every_type_and_string_keys_round_trip(h: Harness) {
        let table = full_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let batch = full_batch(&table, D0 + HOUR);
        assert_eq!(
            h.store
                .write_range(&table, D0, D0 + DAY, std::slice::from_ref(&batch))
                .await
                .unwrap(),
            3
        );
        let back = read_all(&h, &table).await;
        assert_eq!(rendered(&back), rendered(&[batch]));
        // Range reads filter on event time whatever the key types.
        let one = h
            .store
            .read_range(&table, Some(D0 + HOUR), Some(D0 + HOUR + 1000))
            .await
            .unwrap();
        assert_eq!(rendered(&one).len(), 1);
        assert!(
            rendered(&one)[0].starts_with("acme | 1 |"),
            "{:?}",
            rendered(&one)
        );
    }

    pub async fn empty_writes(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        assert_eq!(
            h.store
                .write_range(&table, D0, D0 + DAY, &[])
                .await
                .unwrap(),
            0
        );
        let empty = simple_batch(&table, &[]);
        assert_eq!(
            h.store
                .write_range(&table, D0, D0 + DAY, &[empty])
                .await
                .unwrap(),
            0
        );
        // An empty range with no rows is a no-op, not an error.
        assert_eq!(h.store.write_range(&table, D0, D0, &[]).await.unwrap(), 0);
        assert!(read_all(&h, &table).await.is_empty());
        assert_eq!(h.store.prune(&table, D0 + DAY).await.unwrap(), 0);
    }

    pub async fn write_spanning_several_days(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        // Rows every 5 hours for 5 days, including just before midnight and at midnight.
        let mut rows: Vec<(i64, i64, f64)> =
            (0..24).map(|i| (i % 3, D0 + i * 5 * HOUR, 1.0)).collect();
        rows.push((9, D0 + DAY - 1000, 2.0));
        rows.push((9, D0 + 2 * DAY, 3.0));
        let batch = simple_batch(&table, &rows);
        h.store
            .write_range(&table, D0, D0 + 5 * DAY, std::slice::from_ref(&batch))
            .await
            .unwrap();
        assert_eq!(rendered(&read_all(&h, &table).await), rendered(&[batch]));
        // A read crossing two midnights.
        let times = event_times(
            &h.store
                .read_range(&table, Some(D0 + DAY - 1000), Some(D0 + 3 * DAY))
                .await
                .unwrap(),
        );
        let expected: Vec<i64> = {
            let mut t: Vec<i64> = rows
                .iter()
                .map(|r| r.1)
                .filter(|t| *t >= D0 + DAY - 1000 && *t < D0 + 3 * DAY)
                .collect();
            t.sort_unstable();
            t
        };
        assert_eq!(times, expected);
        // Replacing the middle day only leaves the others alone.
        h.store
            .write_range(&table, D0 + 2 * DAY, D0 + 3 * DAY, &[])
            .await
            .unwrap();
        let left = event_times(&read_all(&h, &table).await);
        assert_eq!(
            left.len(),
            rows.iter()
                .filter(|r| r.1 < D0 + 2 * DAY || r.1 >= D0 + 3 * DAY)
                .count()
        );
    }

    pub async fn tables_are_isolated_and_droppable(h: Harness) {
        let v1 = simple_table(&h.project);
        let mut v2 = simple_table(&h.project);
        v2.version = 2;
        h.store.ensure_table(&v1).await.unwrap();
        h.store.ensure_table(&v2).await.unwrap();
        h.store
            .write_range(&v1, D0, D0 + DAY, &[simple_batch(&v1, &[(1, D0, 1.0)])])
            .await
            .unwrap();
        assert!(read_all(&h, &v2).await.is_empty());
        h.store.drop_table(&v1).await.expect("drop_table");
        assert!(h.store.read_range(&v1, None, None).await.is_err());
        h.store.ensure_table(&v1).await.unwrap();
        assert!(read_all(&h, &v1).await.is_empty());
    }

    pub async fn nanoseconds_are_kept_or_truncated_to_microseconds(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let t = D0 + 1_234_567; // 1.234567 ms
        h.store
            .write_range(
                &table,
                D0,
                D0 + DAY,
                &[simple_batch(&table, &[(1, t, 1.0)])],
            )
            .await
            .unwrap();
        let stored = if h.micros_only { D0 + 1_234_000 } else { t };
        assert_eq!(event_times(&read_all(&h, &table).await), vec![stored]);
        // Re-running the write over a range with sub-microsecond bounds never duplicates.
        h.store
            .write_range(&table, t, t + 1, &[simple_batch(&table, &[(1, t, 2.0)])])
            .await
            .unwrap();
        assert_eq!(event_times(&read_all(&h, &table).await), vec![stored]);
    }

    pub async fn read_latest_as_of_and_ttl(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        // Key 1: the day before, then D0, +1h, +2h. Key 2: +1h only.
        let rows = [
            (1, D0 - DAY + HOUR, -1.0),
            (1, D0, 0.0),
            (1, D0 + HOUR, 1.0),
            (1, D0 + 2 * HOUR, 2.0),
            (2, D0 + HOUR, 20.0),
        ];
        h.store
            .write_range(&table, D0 - DAY, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        let found = h
            .store
            .read_latest(&table, &[int_key(1)], D0 + 3 * HOUR, None)
            .await
            .unwrap();
        assert_eq!(
            found,
            vec![amount_record(
                D0 + 2 * HOUR,
                Some(D0 + 2 * HOUR + SECOND),
                2.0
            )]
        );
        let at = |as_of, ttl| amounts(&h, &table, &[1, 2], as_of, ttl);
        // The upper bound is inclusive; older rows answer earlier times, across days too.
        assert_eq!(at(D0 + 2 * HOUR, None).await, [Some(2.0), Some(20.0)]);
        assert_eq!(at(D0 + 2 * HOUR - 1, None).await, [Some(1.0), Some(20.0)]);
        assert_eq!(at(D0 + HOUR - 1, None).await, [Some(0.0), None]);
        assert_eq!(at(D0 - 1, None).await, [Some(-1.0), None]);
        assert_eq!(at(D0 - DAY, None).await, [None, None]);
        // The TTL's lower bound is inclusive: [as_of - ttl, as_of].
        assert_eq!(
            at(D0 + 2 * HOUR - 1, Some(HOUR - 1)).await,
            [Some(1.0), Some(20.0)]
        );
        assert_eq!(at(D0 + 2 * HOUR - 1, Some(HOUR - 2)).await, [None, None]);
        assert_eq!(at(D0 + HOUR, Some(0)).await, [Some(1.0), Some(20.0)]);
        assert_eq!(at(D0 + 3 * HOUR, Some(HOUR)).await, [Some(2.0), None]);
        // A TTL reaching before the epoch of time itself saturates rather than overflowing.
        assert_eq!(at(D0, Some(i64::MAX)).await, [Some(0.0), None]);
        let err = h
            .store
            .read_latest(&table, &[int_key(1)], D0, Some(-1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&table.qualified_name()), "{err}");
    }

    pub async fn read_latest_breaks_ties_on_created_time(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let t = D0 + HOUR;
        let rows = [
            // Same event time: the later created time wins.
            (1, t, Some(t + 3 * SECOND), 2.0),
            (1, t, Some(t + 2 * SECOND), 1.0),
            // A null created time sorts first, so any present one beats it.
            (2, t, Some(t), 2.0),
            (2, t, None, 1.0),
            // Alone, a null created time comes back as None.
            (3, t, None, 3.0),
            // Event time decides before created time.
            (4, t + SECOND, None, 2.0),
            (4, t, Some(t + HOUR), 1.0),
        ];
        h.store
            .write_range(&table, D0, D0 + DAY, &[timed_batch(&table, &rows)])
            .await
            .unwrap();
        assert_eq!(
            amounts(&h, &table, &[1, 2, 3, 4], t + HOUR, None).await,
            [Some(2.0), Some(2.0), Some(3.0), Some(2.0)]
        );
        let found = h
            .store
            .read_latest(&table, &[int_key(3), int_key(1)], t, None)
            .await
            .unwrap();
        assert_eq!(
            found,
            vec![
                amount_record(t, None, 3.0),
                amount_record(t, Some(t + 3 * SECOND), 2.0)
            ]
        );
    }

    pub async fn read_latest_answers_each_key_in_order(h: Harness) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (1..=5)
            .map(|id| (id, D0 + id * SECOND, id as f64))
            .collect();
        h.store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        // Unknown keys are None, order is the caller's, a key asked twice is answered twice.
        assert_eq!(
            amounts(&h, &table, &[5, 404, 1, 5, -1, 3], D0 + DAY, None).await,
            [Some(5.0), None, Some(1.0), Some(5.0), None, Some(3.0)]
        );
        assert!(
            h.store
                .read_latest(&table, &[], D0, None)
                .await
                .unwrap()
                .is_empty()
        );
        // A key of the wrong kind or arity is an error naming the table and the key.
        let text = EntityKey(vec![KeyValue::Str("1".into())]);
        let err = h
            .store
            .read_latest(&table, &[text], D0, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&table.qualified_name()) && err.contains("`user_id`"),
            "{err}"
        );
        let pair = EntityKey(vec![KeyValue::Int(1), KeyValue::Int(2)]);
        assert!(
            h.store
                .read_latest(&table, &[pair], D0, None)
                .await
                .is_err()
        );
        // A table that was never created is an error, not a miss.
        let mut missing = simple_table(&h.project);
        missing.version = 9;
        assert!(
            h.store
                .read_latest(&missing, &[int_key(1)], D0, None)
                .await
                .is_err()
        );
    }

    pub async fn read_latest_every_type_and_composite_string_keys(h: Harness) {
        let table = full_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let at = D0 + HOUR;
        let batch = full_batch(&table, at);
        h.store
            .write_range(&table, D0, D0 + DAY, std::slice::from_ref(&batch))
            .await
            .unwrap();
        let key = |merchant: &str, user: i64| {
            EntityKey(vec![KeyValue::Str(merchant.into()), KeyValue::Int(user)])
        };
        let found = h
            .store
            .read_latest(
                &table,
                &[
                    key("acme", 1),
                    key("acme", 2),
                    key("", i64::MAX),
                    key("", 1),
                ],
                D0 + DAY,
                None,
            )
            .await
            .unwrap();
        let all_null = Record {
            event_ts: at + 2000,
            created_ts: None,
            values: vec![Value::Null; 18],
        };
        assert_eq!(
            found,
            vec![Some(full_record(at)), None, Some(all_null), None]
        );
        // Row 1 stores a 38-digit decimal, beyond what a Quiver decimal holds: an error that
        // names the table and the column, not a panic or a silently wrong value.
        let err = h
            .store
            .read_latest(
                &table,
                &[key("ünïcødé \"quoted\" 'x'", i64::MIN)],
                D0 + DAY,
                None,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&table.qualified_name()) && err.contains("`f_dec`"),
            "{err}"
        );
    }
}

/// Runs every case of the suite against one backend, each as its own test.
macro_rules! conformance {
    ($backend:ident, $harness:path) => {
        mod $backend {
            use super::*;

            conformance!(@cases $harness;
                ensure_table_is_idempotent,
                write_then_read_back,
                read_range_bounds,
                overlapping_write_replaces_exactly_its_range,
                bad_writes_fail_and_keep_old_rows,
                prune_deletes_older_rows,
                every_type_and_string_keys_round_trip,
                empty_writes,
                write_spanning_several_days,
                tables_are_isolated_and_droppable,
                nanoseconds_are_kept_or_truncated_to_microseconds,
                read_latest_as_of_and_ttl,
                read_latest_breaks_ties_on_created_time,
                read_latest_answers_each_key_in_order,
                read_latest_every_type_and_composite_string_keys,
            );
        }
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                cases::$case($harness(stringify!($case)).await).await;
            }
        )*
    };
}

conformance!(parquet, parquet_harness);
conformance!(postgres, postgres_harness);
conformance!(timescaledb, timescaledb_harness);

// ---------------------------------------------------------------------------------------------
// Parquet specifics.

mod parquet_only {
    use super::*;
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use ::parquet::basic::Compression;

    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                out.extend(files_under(&entry.path()));
            } else {
                out.push(entry.path());
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn layout_is_day_partitions_of_zstd_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetOfflineStore::new(dir.path().to_path_buf());
        let table = simple_table("layout");
        let description = store.ensure_table(&table).await.unwrap();
        let table_dir = dir.path().join("layout__user_spend__v1");
        assert_eq!(
            description,
            format!("parquet directory {}", table_dir.display())
        );
        let rows = [
            (1, D0 + HOUR, 1.0),
            (1, D0 + DAY + HOUR, 1.0),
            (1, D0 - HOUR, 1.0),
        ];
        store
            .write_range(
                &table,
                D0 - DAY,
                D0 + 2 * DAY,
                &[simple_batch(&table, &rows)],
            )
            .await
            .unwrap();
        let parts: Vec<String> = files_under(&table_dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .map(|p| {
                let rel = p.strip_prefix(&table_dir).unwrap();
                let day = rel.parent().unwrap().to_string_lossy().into_owned();
                let file = rel.file_name().unwrap().to_string_lossy().into_owned();
                assert!(file.starts_with("part-"), "{file}");
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap())
                        .unwrap();
                let compression = reader.metadata().row_group(0).column(0).compression();
                assert!(
                    matches!(compression, Compression::ZSTD(_)),
                    "{compression:?}"
                );
                day
            })
            .collect();
        assert_eq!(
            parts,
            vec!["day=2026-11-02", "day=2026-11-03", "day=2026-11-04"],
            "one file per UTC day"
        );
        // Replacing part of a day leaves one file for it, not two.
        store
            .write_range(
                &table,
                D0,
                D0 + 2 * HOUR,
                &[simple_batch(&table, &[(2, D0, 1.0)])],
            )
            .await
            .unwrap();
        let day_files = files_under(&table_dir.join("day=2026-11-03"));
        assert_eq!(day_files.len(), 1, "{day_files:?}");
        store.drop_table(&table).await.unwrap();
        assert!(!table_dir.exists());
    }

    /// What a crash mid-write leaves (a written part the manifest never listed, a half-written
    /// temporary file, a temporary manifest) is never read, and the next write cleans it up.
    #[tokio::test]
    async fn crash_leftovers_are_invisible_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetOfflineStore::new(dir.path().to_path_buf());
        let table = simple_table("crash");
        store.ensure_table(&table).await.unwrap();
        let rows = [(1, D0 + HOUR, 1.0)];
        store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        let table_dir = store.table_dir(&table);
        let day_dir = table_dir.join("day=2026-11-03");
        let live = files_under(&day_dir);
        // An orphan: a complete copy of the live part that no manifest names.
        std::fs::copy(&live[0], day_dir.join("part-orphan.parquet")).unwrap();
        std::fs::write(day_dir.join(".part-x.parquet.tmp"), b"half").unwrap();
        std::fs::write(table_dir.join("_manifest.tmp-x"), b"half").unwrap();
        let read = store.read_range(&table, None, None).await.unwrap();
        assert_eq!(rendered(&read), rendered(&[simple_batch(&table, &rows)]));
        store
            .write_range(&table, D0 + 2 * HOUR, D0 + 3 * HOUR, &[])
            .await
            .unwrap();
        assert_eq!(files_under(&day_dir).len(), 1);
        assert!(!table_dir.join("_manifest.tmp-x").exists());
        assert_eq!(
            event_times(&store.read_range(&table, None, None).await.unwrap()).len(),
            1
        );
    }

    async fn latest_event(store: &ParquetOfflineStore, table: &OfflineTable) -> Option<i64> {
        store
            .read_latest(table, &[int_key(1)], D0 + DAY, None)
            .await
            .unwrap()
            .remove(0)
            .map(|r| r.event_ts)
    }

    async fn write_one(store: &ParquetOfflineStore, table: &OfflineTable, t: i64) {
        let batch = simple_batch(table, &[(1, t, 1.0)]);
        store
            .write_range(table, t, t + HOUR, &[batch])
            .await
            .unwrap();
    }

    /// The lookup index is rebuilt when the manifest changes, whoever changed it: this store,
    /// or another store (process) writing the same directory.
    #[tokio::test]
    async fn lookups_see_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetOfflineStore::new(dir.path().to_path_buf());
        let other = ParquetOfflineStore::new(dir.path().to_path_buf());
        let table = simple_table("fresh");
        store.ensure_table(&table).await.unwrap();
        assert_eq!(latest_event(&store, &table).await, None);
        write_one(&store, &table, D0).await;
        assert_eq!(latest_event(&store, &table).await, Some(D0));
        write_one(&other, &table, D0 + HOUR).await;
        assert_eq!(latest_event(&store, &table).await, Some(D0 + HOUR));
        other.prune(&table, D0 + 2 * HOUR).await.unwrap();
        assert_eq!(latest_event(&store, &table).await, None);
        store.drop_table(&table).await.unwrap();
        assert!(
            store
                .read_latest(&table, &[int_key(1)], D0, None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_corrupt_manifest_is_an_error_not_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetOfflineStore::new(dir.path().to_path_buf());
        let table = simple_table("corrupt");
        store.ensure_table(&table).await.unwrap();
        std::fs::write(store.table_dir(&table).join("_manifest"), b"garbage").unwrap();
        let err = store.read_range(&table, None, None).await.unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL specifics.

pub(crate) mod postgres_only {
    use std::time::{Duration, Instant};

    use super::*;

    /// 100k rows go through binary COPY in one round of streaming; row-by-row INSERTs would
    /// take minutes here.
    #[tokio::test]
    async fn bulk_load_uses_binary_copy() {
        let h = postgres_harness("bulk").await;
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (0..100_000)
            .map(|i| (i % 1000, D0 + i * SECOND, i as f64))
            .collect();
        let batch = simple_batch(&table, &rows);
        let started = Instant::now();
        let written = h
            .store
            .write_range(&table, D0, D0 + 2 * DAY, &[batch])
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(written, 100_000);
        assert!(
            elapsed < Duration::from_secs(30),
            "100k rows took {elapsed:?}"
        );
        let back = read_all(&h, &table).await;
        assert_eq!(
            back.iter().map(RecordBatch::num_rows).sum::<usize>(),
            100_000
        );
        assert!(back.len() > 1, "reads stream in batches");
    }

    #[tokio::test]
    async fn describes_its_index_without_timescaledb() {
        let h = postgres_harness("describe").await;
        let description = h.store.ensure_table(&full_table(&h.project)).await.unwrap();
        assert_eq!(
            description,
            "table \"t_describe\".\"describe__everything__v3\" with index on (merchant, user_id, \
             event_timestamp DESC, created_timestamp DESC NULLS LAST)"
        );
    }

    /// 50k rows of history for 500 keys, analyzed: the lookup must probe the index per key.
    pub(super) async fn assert_lookup_uses_the_index(h: &Harness, store: &PostgresOfflineStore) {
        let table = simple_table(&h.project);
        h.store.ensure_table(&table).await.unwrap();
        let rows: Vec<(i64, i64, f64)> = (0..50_000)
            .map(|i| (i % 500, D0 + i * SECOND, i as f64))
            .collect();
        h.store
            .write_range(&table, D0, D0 + DAY, &[simple_batch(&table, &rows)])
            .await
            .unwrap();
        let server_url = h.url.clone().expect("a PostgreSQL harness");
        let (client, connection) = tokio_postgres::connect(&server_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "ANALYZE \"{}\".\"{}\"",
                store.schema(),
                table.qualified_name()
            ))
            .await
            .unwrap();
        let keys: Vec<EntityKey> = (0..100).map(|id| int_key(id * 5)).collect();
        for ttl in [None, Some(HOUR)] {
            let plan = store
                .explain_read_latest(&table, &keys, D0 + 12 * HOUR, ttl)
                .await
                .unwrap();
            assert!(!plan.contains("Seq Scan"), "{plan}");
            assert!(plan.contains("Index"), "{plan}");
        }
        let found = amounts(h, &table, &[0, 499, 500], D0 + DAY, None).await;
        assert_eq!(found, [Some(49_500.0), Some(49_999.0), None]);
    }

    #[tokio::test]
    async fn lookup_query_uses_the_index() {
        let h = postgres_harness("explain").await;
        let store = h.postgres_store().await;
        assert_lookup_uses_the_index(&h, &store).await;
    }

    #[tokio::test]
    async fn errors_never_show_the_password() {
        let server = shared_server();
        // Trust authentication ignores the password, so the store connects and then fails on
        // a table that does not exist.
        let url = format!(
            "postgres://postgres:hunter2@127.0.0.1:{}/postgres",
            server.port()
        );
        let mut config = PostgresConfig::new(url);
        config.schema = "t_password".into();
        assert!(!format!("{config:?}").contains("hunter2"));
        let store = PostgresOfflineStore::connect(&config).await.unwrap();
        let err = store
            .read_range(&simple_table("password"), None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // Nothing listens on port 1.
        let refused = PostgresConfig::new("postgres://postgres:hunter2@127.0.0.1:1/postgres");
        let err = PostgresOfflineStore::connect(&refused)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("offline store `postgres`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn long_names_are_rejected_not_truncated() {
        let h = postgres_harness("long").await;
        let mut table = simple_table(&h.project);
        table.view = "v".repeat(70);
        let err = h.store.ensure_table(&table).await.unwrap_err().to_string();
        assert!(err.contains("63-byte"), "{err}");
    }

    /// The fixture's kill/restart, and a store whose pooled connections died with the server
    /// working again once it is back.
    #[tokio::test]
    async fn store_recovers_after_the_server_restarts() {
        let mut server = PostgresServer::start();
        let first_pid = server.pid().expect("running");
        let store = PostgresOfflineStore::connect(&PostgresConfig::new(server.url()))
            .await
            .unwrap();
        let table = simple_table("restart");
        store.ensure_table(&table).await.unwrap();
        store
            .write_range(
                &table,
                D0,
                D0 + DAY,
                &[simple_batch(&table, &[(1, D0, 1.0)])],
            )
            .await
            .unwrap();
        server.kill();
        assert!(server.pid().is_none());
        // (No assertion that calls fail now: an orphaned backend may serve a query or two
        // before it notices its postmaster died.)
        server.restart();
        assert_ne!(server.pid(), Some(first_pid));
        // Each pooled connection broken by the crash may fail one call before the pool
        // replaces it.
        let mut result = store.read_range(&table, None, None).await;
        for _ in 0..3 {
            if result.is_ok() {
                break;
            }
            result = store.read_range(&table, None, None).await;
        }
        assert_eq!(event_times(&result.expect("reads after restart")), vec![D0]);
    }
}

// ---------------------------------------------------------------------------------------------
// TimescaleDB specifics (the shared suite runs against it above).

mod timescaledb_only {
    use super::*;

    #[tokio::test]
    async fn tables_are_hypertables_with_the_lookup_index() {
        let h = timescaledb_harness("hyper").await;
        let description = h.store.ensure_table(&full_table(&h.project)).await.unwrap();
        assert_eq!(
            description,
            "TimescaleDB hypertable \"t_hyper\".\"hyper__everything__v3\" with index on \
             (merchant, user_id, event_timestamp DESC, created_timestamp DESC NULLS LAST)"
        );
    }

    #[tokio::test]
    async fn lookup_query_uses_the_index_on_chunks() {
        let h = timescaledb_harness("tsexplain").await;
        let store = h.postgres_store().await;
        postgres_only::assert_lookup_uses_the_index(&h, &store).await;
    }
}
