//! The record sink suite: the semantics promised by `records/mod.rs`, written once
//! ([`conformance`], [`versions_of_one_id`]) and run against both offline stores through
//! `OfflineStore::records()`: Parquet in a temporary directory, PostgreSQL on a real server
//! started by `quiver-test-utils`. Then what each backend does on its own: Parquet's day
//! directories, manifest position and a write failing part way; PostgreSQL's schema changes and
//! the server dying before and in the middle of a commit.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field};
use quiver_core::{QueuePosition, ScalarType, ValueType};
use quiver_offline::records::{ACCEPTED_AT, PAYLOAD, RecordSink, RecordTable};
use quiver_offline::store::{
    EVENT_TIMESTAMP, OfflineStore, ParquetOfflineStore, PostgresConfig, PostgresOfflineStore,
};
use quiver_test_utils::PostgresServer;

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;
/// 2026-11-03T00:00:00Z.
const D0: i64 = 20_760 * DAY;

fn pos(ms: u64, seq: u64) -> QueuePosition {
    QueuePosition::new(ms, seq)
}

// ---------------------------------------------------------------------------------------------
// Harnesses.

/// A store under test and whatever keeps its backend alive.
struct Harness {
    store: Box<dyn OfflineStore>,
    /// Distinct per test, so tests sharing a server never share tables.
    project: String,
    /// The Parquet store's root.
    parquet_root: Option<PathBuf>,
    _guard: Box<dyn Any + Send>,
}

impl Harness {
    fn sink(&self) -> &dyn RecordSink {
        self.store.records()
    }
}

fn project_name(case: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{case}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn parquet_harness(case: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("offline");
    Harness {
        store: Box::new(ParquetOfflineStore::new(root.clone())),
        project: project_name(case),
        parquet_root: Some(root),
        _guard: Box::new(dir),
    }
}

/// One server for every PostgreSQL test that does not stop it (each uses its own schema).
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

async fn connect(url: &str, schema: &str) -> PostgresOfflineStore {
    let mut config = PostgresConfig::new(url);
    config.schema = schema.to_string();
    PostgresOfflineStore::connect(&config)
        .await
        .expect("connect to the test server")
}

async fn postgres_harness(case: &str) -> Harness {
    let server = shared_server();
    let project = project_name(case);
    let store = connect(&server.url(), &format!("t_{project}")).await;
    Harness {
        store: Box::new(store),
        project,
        parquet_root: None,
        _guard: Box::new(server),
    }
}

// ---------------------------------------------------------------------------------------------
// Tables and rows.

/// A namespace with one declared field of each kind of type.
fn declared() -> Vec<(String, ValueType)> {
    [
        ("amount", ValueType::Scalar(ScalarType::Float64)),
        ("merchant", ValueType::Scalar(ScalarType::String)),
        ("items", ValueType::Scalar(ScalarType::Int32)),
        ("big", ValueType::Scalar(ScalarType::Int64)),
        ("score", ValueType::Scalar(ScalarType::Float32)),
        ("flagged", ValueType::Scalar(ScalarType::Bool)),
        ("raw", ValueType::Scalar(ScalarType::Bytes)),
        ("seen_at", ValueType::Scalar(ScalarType::Timestamp)),
        ("price", ValueType::Scalar(ScalarType::Decimal)),
        ("tags", ValueType::List(ScalarType::String)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn record_table(project: &str) -> RecordTable {
    RecordTable::new(project, "card-tx", "tx_id", &declared())
}

fn ts_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

/// One record: its id, event time, accepted time and a number its other values derive from.
/// Times are whole microseconds (PostgreSQL's precision).
#[derive(Clone, Copy)]
struct Rec<'a> {
    id: &'a str,
    event: i64,
    accepted: i64,
    n: i64,
}

fn rec(id: &str, event: i64, accepted: i64, n: i64) -> Rec<'_> {
    Rec {
        id,
        event,
        accepted,
        n,
    }
}

/// A batch of `table` (the [`declared`] fields) holding `recs`; every fifth row's declared
/// fields are null.
fn batch(table: &RecordTable, recs: &[Rec<'_>]) -> RecordBatch {
    let some = |r: &Rec<'_>| r.n % 5 != 0;
    let opt = |r: &Rec<'_>, v| if some(r) { Some(v) } else { None };
    let tags_lengths: Vec<usize> = recs.iter().map(|r| if some(r) { 2 } else { 0 }).collect();
    let tag_values: Vec<String> = recs
        .iter()
        .filter(|r| some(r))
        .flat_map(|r| ["a".to_string(), format!("t{}", r.n)])
        .collect();
    let tags = ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        arrow_buffer::OffsetBuffer::<i32>::from_lengths(tags_lengths),
        Arc::new(StringArray::from(tag_values)),
        Some(arrow_buffer::NullBuffer::from(
            recs.iter().map(some).collect::<Vec<_>>(),
        )),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(recs.iter().map(|r| r.id))),
        ts_array(recs.iter().map(|r| r.event).collect()),
        ts_array(recs.iter().map(|r| r.accepted).collect()),
        Arc::new(Float64Array::from_iter(
            recs.iter().map(|r| opt(r, r.n as f64 * 1.5)),
        )),
        Arc::new(StringArray::from_iter(
            recs.iter()
                .map(|r| some(r).then(|| format!("mérchant \"{}\"", r.n))),
        )),
        Arc::new(Int32Array::from_iter(
            recs.iter().map(|r| some(r).then_some(r.n as i32)),
        )),
        Arc::new(Int64Array::from_iter(
            recs.iter().map(|r| some(r).then_some(r.n * 1_000_000_007)),
        )),
        Arc::new(Float32Array::from_iter(
            recs.iter().map(|r| some(r).then_some(r.n as f32 / 4.0)),
        )),
        Arc::new(BooleanArray::from_iter(
            recs.iter().map(|r| some(r).then_some(r.n % 2 == 0)),
        )),
        Arc::new(BinaryArray::from_iter(
            recs.iter()
                .map(|r| some(r).then(|| vec![0u8, 255, r.n as u8])),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter(
                recs.iter().map(|r| some(r).then_some(D0 - r.n * 1000)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(
            Decimal128Array::from_iter(
                recs.iter()
                    .map(|r| some(r).then_some(i128::from(r.n) * 10_000_000_000 + 5)),
            )
            .with_precision_and_scale(38, 10)
            .expect("decimal"),
        ),
        Arc::new(tags),
        Arc::new(StringArray::from_iter_values(recs.iter().map(|r| {
            format!(
                "{{\"tx_id\":\"{}\",\"n\":{},\"note\":\"ünïcødé\"}}",
                r.id, r.n
            )
        }))),
    ];
    RecordBatch::try_new(table.schema.clone(), columns).expect("valid batch")
}

/// Records `{prefix}{i}` for `i` in `range`, on the day starting at `day`.
fn recs(prefix: &str, range: std::ops::Range<i64>, day: i64) -> Vec<(String, i64)> {
    range
        .map(|i| (format!("{prefix}{i}"), day + i * SECOND))
        .collect()
}

fn batch_of(table: &RecordTable, rows: &[(String, i64)]) -> RecordBatch {
    let recs: Vec<Rec<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, t))| rec(id, *t, *t + SECOND, i as i64 + 1))
        .collect();
    batch(table, &recs)
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

/// Every stored row, checking that each batch carries exactly the table schema.
async fn stored(sink: &dyn RecordSink, table: &RecordTable) -> Vec<RecordBatch> {
    let batches = sink.read_all(table).await.expect("read_all");
    for b in &batches {
        assert_eq!(
            b.schema(),
            table.schema,
            "read_all returns the table schema"
        );
    }
    batches
}

/// `(id, payload)` of every stored row, sorted.
async fn ids_and_payloads(sink: &dyn RecordSink, table: &RecordTable) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in stored(sink, table).await {
        let text = |name: &str| -> StringArray {
            b.column_by_name(name)
                .expect("column")
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone()
        };
        let (ids, payloads) = (text(&table.id_column), text(PAYLOAD));
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), payloads.value(i).to_string()));
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// The shared suite.

/// Commits, positions and read-back, the same on every backend.
async fn conformance(h: &Harness) {
    let sink = h.sink();
    let table = record_table(&h.project);
    assert_eq!(sink.committed_through(&table).await.unwrap(), None);
    assert!(stored(sink, &table).await.is_empty());

    // One batch, then two batches in one commit.
    let a = batch_of(&table, &recs("a", 0..10, D0));
    assert_eq!(
        sink.commit(&table, std::slice::from_ref(&a), pos(100, 0))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(100, 0))
    );
    let b1 = batch_of(&table, &recs("b", 0..5, D0 + HOUR));
    let b2 = batch_of(&table, &recs("b", 5..12, D0 + 2 * HOUR));
    let written = sink
        .commit(&table, &[b1.clone(), b2.clone()], pos(100, 9))
        .await
        .unwrap();
    assert_eq!(written, 12);
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(100, 9)),
        "the position advances, compared as numbers (9 after 0)"
    );
    let expected = rendered(&[a.clone(), b1.clone(), b2.clone()]);
    assert_eq!(rendered(&stored(sink, &table).await), expected);
    assert_eq!(expected.len(), 22, "every row once");

    // A batch spanning two UTC days.
    let span = batch_of(
        &table,
        &[
            ("s0".to_string(), D0 + DAY - SECOND),
            ("s1".to_string(), D0 + DAY),
            ("s2".to_string(), D0 + DAY + HOUR),
        ],
    );
    assert_eq!(
        sink.commit(&table, std::slice::from_ref(&span), pos(200, 0))
            .await
            .unwrap(),
        3
    );
    let expected = rendered(&[a.clone(), b1.clone(), b2.clone(), span.clone()]);
    assert_eq!(rendered(&stored(sink, &table).await), expected);

    // A commit at or before the committed position was committed already: nothing changes.
    let late = batch_of(&table, &recs("late", 0..3, D0));
    for stale in [pos(200, 0), pos(100, 50), pos(0, 0)] {
        assert_eq!(
            sink.commit(&table, std::slice::from_ref(&late), stale)
                .await
                .unwrap(),
            0,
            "{stale}"
        );
    }
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(200, 0))
    );
    assert_eq!(rendered(&stored(sink, &table).await), expected);

    // No rows: the position still advances (entries the exporter skipped are done).
    assert_eq!(sink.commit(&table, &[], pos(300, 0)).await.unwrap(), 0);
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(300, 0))
    );

    // A batch of another schema fails before anything is written, naming table and column.
    let mut other = record_table(&h.project);
    other.schema = quiver_offline::records::record_schema(
        "tx_id",
        &[("amount".to_string(), ValueType::Scalar(ScalarType::String))],
    );
    let wrong = RecordBatch::try_new(
        other.schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["w"])),
            ts_array(vec![D0]),
            ts_array(vec![D0]),
            Arc::new(StringArray::from(vec!["12"])),
            Arc::new(StringArray::from(vec!["{}"])),
        ],
    )
    .unwrap();
    let err = sink
        .commit(&table, &[wrong], pos(400, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&table.qualified_name()), "{err}");
    assert!(err.contains("`amount`"), "{err}");
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(300, 0))
    );
    assert_eq!(rendered(&stored(sink, &table).await), expected);

    // Namespaces are separate tables with separate positions.
    let mut second = record_table(&h.project);
    second.namespace = "predictions".to_string();
    assert_eq!(sink.committed_through(&second).await.unwrap(), None);
    assert!(stored(sink, &second).await.is_empty());
}

/// One id committed in several versions. PostgreSQL keeps one row per id, the one accepted
/// last (`upserts`); Parquet appends, keeping every version.
async fn versions_of_one_id(h: &Harness, upserts: bool) {
    let sink = h.sink();
    let table = record_table(&h.project);
    let t = D0 + HOUR;
    let version = |accepted: i64, n: i64| batch(&table, &[rec("x", t, accepted, n)]);
    sink.commit(&table, &[version(t + 10 * SECOND, 1)], pos(1, 0))
        .await
        .unwrap();
    // Accepted later: replaces.
    sink.commit(&table, &[version(t + 20 * SECOND, 2)], pos(2, 0))
        .await
        .unwrap();
    // Accepted earlier than the stored one (a late retry of an old write): does not replace.
    sink.commit(&table, &[version(t + 15 * SECOND, 3)], pos(3, 0))
        .await
        .unwrap();
    let payload = |id: &str, n: i64| {
        (
            id.to_string(),
            format!("{{\"tx_id\":\"{id}\",\"n\":{n},\"note\":\"ünïcødé\"}}"),
        )
    };
    let so_far = ids_and_payloads(sink, &table).await;
    if upserts {
        assert_eq!(
            so_far,
            [payload("x", 2)],
            "the later-accepted version stays"
        );
    } else {
        assert_eq!(so_far, [payload("x", 1), payload("x", 2), payload("x", 3)]);
    }
    // Several versions in one commit: the latest accepted_at wins wherever it sits; the
    // same accepted_at as the stored row replaces it.
    let several = batch(
        &table,
        &[
            rec("y", t, t + 30 * SECOND, 4),
            rec("y", t, t + 50 * SECOND, 5),
            rec("y", t, t + 40 * SECOND, 6),
            rec("x", t, t + 20 * SECOND, 7),
        ],
    );
    assert_eq!(
        sink.commit(&table, &[several], pos(4, 0)).await.unwrap(),
        4,
        "the rows handed in are counted, whether or not a newer version supersedes them"
    );
    // Equal accepted_at within one commit: the later row (in queue order) wins.
    let ties = batch(
        &table,
        &[rec("z", t, t + SECOND, 8), rec("z", t, t + SECOND, 9)],
    );
    sink.commit(&table, &[ties], pos(5, 0)).await.unwrap();

    let mut expected = if upserts {
        vec![payload("x", 7), payload("y", 5), payload("z", 9)]
    } else {
        [
            ("x", 1),
            ("x", 2),
            ("x", 3),
            ("y", 4),
            ("y", 5),
            ("y", 6),
            ("x", 7),
            ("z", 8),
            ("z", 9),
        ]
        .iter()
        .map(|(id, n)| payload(id, *n))
        .collect()
    };
    expected.sort();
    assert_eq!(ids_and_payloads(sink, &table).await, expected);
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(5, 0))
    );
}

#[tokio::test]
async fn parquet_conformance() {
    let h = parquet_harness("conf");
    assert_eq!(h.sink().kind(), "parquet");
    conformance(&h).await;
}

#[tokio::test]
async fn postgres_conformance() {
    let h = postgres_harness("conf").await;
    assert_eq!(h.sink().kind(), "postgres");
    conformance(&h).await;
}

#[tokio::test]
async fn parquet_appends_every_version() {
    let h = parquet_harness("versions");
    versions_of_one_id(&h, false).await;
}

#[tokio::test]
async fn postgres_upserts_by_id_keeping_the_latest_accepted() {
    let h = postgres_harness("versions").await;
    versions_of_one_id(&h, true).await;
}

/// `read_range` returns exactly the rows with `start <= event time < end`, across days, with
/// either bound open, at sub-millisecond bounds (PostgreSQL keeps µs).
async fn ranges(h: &Harness) {
    let sink = h.sink();
    let table = record_table(&h.project);
    let day = 1_764_547_200 * SECOND; // 2025-12-01T00:00:00Z
    // Two days, ten records each, one second apart, and one at 17 µs past a second.
    let mut rows = recs("a", 0..10, day);
    rows.extend(recs("b", 0..10, day + 86_400 * SECOND));
    rows.push(("c".to_string(), day + 5 * SECOND + 17_000));
    sink.commit(&table, &[batch_of(&table, &rows)], pos(1, 0))
        .await
        .unwrap();
    let ids = |batches: Vec<RecordBatch>| -> Vec<String> {
        let mut out: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                assert_eq!(
                    b.schema(),
                    table.schema,
                    "read_range returns the table schema"
                );
                let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                ids.iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    };
    let read = |start: Option<i64>, end: Option<i64>| sink.read_range(&table, start, end);
    // [a3, a6): a3, a4, a5 and c (5 s + 17 µs).
    assert_eq!(
        ids(read(Some(day + 3 * SECOND), Some(day + 6 * SECOND))
            .await
            .unwrap()),
        ["a3", "a4", "a5", "c"]
    );
    // A bound between c's µs: c is at 5 s + 17 µs, so [.., 5 s + 17 µs) leaves it out and
    // [5 s + 16.5 µs, ..) keeps it.
    assert_eq!(
        ids(
            read(Some(day + 5 * SECOND), Some(day + 5 * SECOND + 17_000))
                .await
                .unwrap()
        ),
        ["a5"]
    );
    assert_eq!(
        ids(
            read(Some(day + 5 * SECOND + 16_500), Some(day + 6 * SECOND))
                .await
                .unwrap()
        ),
        ["c"]
    );
    // Across the day boundary, open ends.
    assert_eq!(
        ids(read(Some(day + 86_400 * SECOND + 8 * SECOND), None)
            .await
            .unwrap()),
        ["b8", "b9"]
    );
    assert_eq!(ids(read(None, Some(day + SECOND)).await.unwrap()), ["a0"]);
    assert_eq!(ids(read(None, None).await.unwrap()).len(), 21);
    assert!(ids(read(Some(day - SECOND), Some(day)).await.unwrap()).is_empty());
}

#[tokio::test]
async fn parquet_reads_time_ranges() {
    ranges(&parquet_harness("ranges")).await;
}

#[tokio::test]
async fn postgres_reads_time_ranges() {
    ranges(&postgres_harness("ranges").await).await;
}

// ---------------------------------------------------------------------------------------------
// Parquet specifics.

fn table_dir(h: &Harness, table: &RecordTable) -> PathBuf {
    h.parquet_root
        .as_ref()
        .expect("a Parquet harness")
        .join("records")
        .join(table.qualified_name())
}

/// The `.parquet` files (any name) directly under `dir`, sorted.
fn parquet_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".parquet") || n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test]
async fn parquet_partitions_by_utc_day_and_keeps_the_position_in_the_manifest() {
    let h = parquet_harness("layout");
    let sink = h.sink();
    let table = record_table(&h.project);
    let dir = table_dir(&h, &table);
    let span = batch_of(
        &table,
        &[
            ("s0".to_string(), D0 + DAY - SECOND),
            ("s1".to_string(), D0 + DAY),
            ("s2".to_string(), D0 + DAY + HOUR),
        ],
    );
    sink.commit(&table, &[span], pos(1_733_356_800_000, 3))
        .await
        .unwrap();
    assert_eq!(parquet_files(&dir.join("day=2026-11-03")).len(), 1);
    assert_eq!(parquet_files(&dir.join("day=2026-11-04")).len(), 1);
    let manifest = std::fs::read_to_string(dir.join("_manifest")).unwrap();
    assert!(
        manifest.contains("\nposition\t1733356800000-3\n"),
        "{manifest}"
    );
    // Each day's file holds only that day's rows.
    let day1 = std::fs::read_dir(dir.join("day=2026-11-04"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(day1).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap().num_rows())
    .sum();
    assert_eq!(rows, 2);

    // A file the manifest does not list (a crashed commit's leftover) is never read, and the
    // next commit to its day sweeps it.
    let stray = dir.join("day=2026-11-03/part-stray.parquet");
    std::fs::write(&stray, b"not parquet").unwrap();
    assert_eq!(
        stored(sink, &table)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        3
    );
    sink.commit(
        &table,
        &[batch_of(&table, &recs("n", 0..2, D0))],
        pos(1_733_356_800_000, 4),
    )
    .await
    .unwrap();
    assert!(!stray.exists(), "swept");
    assert_eq!(
        stored(sink, &table)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        5
    );
}

/// A commit that fails after writing its first day's file leaves the table exactly as it was
/// (manifest, position, rows, no new files), and succeeds once the obstacle is gone.
#[tokio::test]
async fn parquet_commit_failing_part_way_changes_nothing() {
    let h = parquet_harness("partial");
    let sink = h.sink();
    let table = record_table(&h.project);
    let dir = table_dir(&h, &table);
    let first = batch_of(&table, &recs("a", 0..4, D0));
    sink.commit(&table, &[first], pos(10, 0)).await.unwrap();
    let manifest_before = std::fs::read(dir.join("_manifest")).unwrap();
    let rows_before = rendered(&stored(sink, &table).await);

    // Days 2026-11-04 (written first) and 2026-11-05, whose directory cannot be created.
    let obstacle = dir.join("day=2026-11-05");
    std::fs::write(&obstacle, b"in the way").unwrap();
    let spanning = batch_of(
        &table,
        &[
            ("s0".to_string(), D0 + DAY),
            ("s1".to_string(), D0 + 2 * DAY),
        ],
    );
    let err = sink
        .commit(&table, std::slice::from_ref(&spanning), pos(11, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&table.qualified_name()), "{err}");
    assert!(err.contains("committing through 11-0"), "{err}");
    assert!(err.contains("day=2026-11-05"), "{err}");

    assert_eq!(
        std::fs::read(dir.join("_manifest")).unwrap(),
        manifest_before
    );
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(10, 0))
    );
    assert_eq!(rendered(&stored(sink, &table).await), rows_before);
    assert!(
        parquet_files(&dir.join("day=2026-11-04")).is_empty(),
        "the first day's file was written, then removed: {:?}",
        parquet_files(&dir.join("day=2026-11-04"))
    );

    std::fs::remove_file(&obstacle).unwrap();
    assert_eq!(
        sink.commit(&table, std::slice::from_ref(&spanning), pos(11, 0))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        sink.committed_through(&table).await.unwrap(),
        Some(pos(11, 0))
    );
    let mut expected = rows_before;
    expected.extend(rendered(&[spanning]));
    expected.sort();
    assert_eq!(rendered(&stored(sink, &table).await), expected);
}

// ---------------------------------------------------------------------------------------------
// Namespaces whose fields change.

/// A namespace gaining a field keeps its table (PostgreSQL adds the column; Parquet reads the
/// older files' missing column as nulls); a field whose type changed is refused on commit,
/// naming table, column and both types.
async fn schema_changes(h: &Harness, postgres: bool) {
    let sink = h.sink();
    let narrow = RecordTable::new(
        &h.project,
        "preds",
        "request_id",
        &[("score".to_string(), ValueType::Scalar(ScalarType::Float64))],
    );
    let row = |table: &RecordTable, id: &str, extra: Vec<ArrayRef>| {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![id])),
            ts_array(vec![D0]),
            ts_array(vec![D0 + SECOND]),
            Arc::new(Float64Array::from(vec![0.5])),
        ];
        columns.extend(extra);
        columns.push(Arc::new(StringArray::from(vec!["{}"])));
        RecordBatch::try_new(table.schema.clone(), columns).unwrap()
    };
    sink.commit(&narrow, &[row(&narrow, "r1", vec![])], pos(1, 0))
        .await
        .unwrap();

    let wide = RecordTable::new(
        &h.project,
        "preds",
        "request_id",
        &[
            ("score".to_string(), ValueType::Scalar(ScalarType::Float64)),
            ("model".to_string(), ValueType::Scalar(ScalarType::String)),
        ],
    );
    let model: ArrayRef = Arc::new(StringArray::from(vec!["fraud-v2"]));
    sink.commit(&wide, &[row(&wide, "r2", vec![model])], pos(2, 0))
        .await
        .unwrap();
    let rows = rendered(&stored(sink, &wide).await);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with("r1 |") && rows[0].contains("| 0.5 | ∅ |"),
        "{rows:?}"
    );
    assert!(rows[1].contains("| fraud-v2 |"), "{rows:?}");

    let changed = RecordTable::new(
        &h.project,
        "preds",
        "request_id",
        &[("score".to_string(), ValueType::Scalar(ScalarType::String))],
    );
    let batch = RecordBatch::try_new(
        changed.schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["r3"])),
            ts_array(vec![D0]),
            ts_array(vec![D0]),
            Arc::new(StringArray::from(vec!["high"])),
            Arc::new(StringArray::from(vec!["{}"])),
        ],
    )
    .unwrap();
    let err = sink
        .commit(&changed, &[batch], pos(3, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&changed.qualified_name()), "{err}");
    assert!(err.contains("column `score`"), "{err}");
    if postgres {
        assert!(err.contains("is `double precision` in PostgreSQL"), "{err}");
        assert!(err.contains("declares Utf8 (`text`)"), "{err}");
    } else {
        assert!(err.contains("is Float64 in the stored files"), "{err}");
        assert!(err.contains("but Utf8 in the table schema"), "{err}");
    }
    assert_eq!(
        sink.committed_through(&wide).await.unwrap(),
        Some(pos(2, 0))
    );
    assert_eq!(
        stored(sink, &wide)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        2
    );
}

#[tokio::test]
async fn parquet_schema_changes() {
    schema_changes(&parquet_harness("evolve"), false).await;
}

#[tokio::test]
async fn postgres_schema_changes() {
    schema_changes(&postgres_harness("evolve").await, true).await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL specifics.

/// Polls until `check` holds, failing after 10 seconds.
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain connection to the test server, for what the test does beside the store.
async fn side_connection(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("side connection");
    tokio::spawn(connection);
    client
}

/// The rows and position a commit left behind, read by a fresh store after a restart.
async fn after_restart(
    url: &str,
    schema: &str,
    table: &RecordTable,
) -> (Vec<String>, Option<QueuePosition>) {
    let store = connect(url, schema).await;
    let sink = store.records();
    (
        rendered(&stored(sink, table).await),
        sink.committed_through(table).await.unwrap(),
    )
}

/// The server dies while a commit's transaction is open, after its rows were staged and
/// upserted but before the position was stored: the commit fails, and after the restart
/// neither its rows nor its position are there. Retrying it then succeeds.
#[tokio::test]
async fn postgres_commit_interrupted_by_a_server_crash_leaves_nothing() {
    let mut server = PostgresServer::start();
    let url = server.url();
    let schema = "t_crash";
    let store = Arc::new(connect(&url, schema).await);
    let table = record_table("crash");
    let first = batch_of(&table, &recs("a", 0..5, D0));
    store
        .records()
        .commit(&table, std::slice::from_ref(&first), pos(10, 0))
        .await
        .unwrap();

    // Hold the position row, so the next commit blocks on it at its last statement.
    let holder = side_connection(&url).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            &format!(
                "SELECT * FROM \"{schema}\".quiver_record_exports WHERE table_name = $1 FOR UPDATE"
            ),
            &[&table.qualified_name()],
        )
        .await
        .unwrap();
    let second = batch_of(&table, &recs("b", 0..1000, D0 + HOUR));
    let committing = {
        let (store, table, second) = (store.clone(), table.clone(), second.clone());
        tokio::spawn(async move { store.records().commit(&table, &[second], pos(11, 0)).await })
    };
    let watcher = side_connection(&url).await;
    wait_for("the commit to block on the position row", async || {
        let rows = watcher
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%quiver_record_exports%'",
                &[],
            )
            .await
            .unwrap();
        !rows.is_empty()
    })
    .await;
    // Its rows are in the table inside its transaction by now.
    server.kill();
    let err = committing.await.unwrap().unwrap_err().to_string();
    assert!(err.contains(&table.qualified_name()), "{err}");
    assert!(err.contains("committing"), "{err}");

    server.restart();
    let (rows, position) = after_restart(&url, schema, &table).await;
    // (Compared without printing thousands of rows on failure.)
    let interrupted = rows.iter().filter(|r| r.starts_with('b')).count();
    assert_eq!(interrupted, 0, "rows of the interrupted commit are visible");
    assert!(
        rows == rendered(std::slice::from_ref(&first)),
        "the first commit's rows, unchanged"
    );
    assert_eq!(position, Some(pos(10, 0)), "the old position");

    let store = connect(&url, schema).await;
    assert_eq!(
        store
            .records()
            .commit(&table, std::slice::from_ref(&second), pos(11, 0))
            .await
            .unwrap(),
        1000
    );
    let (rows, position) = after_restart(&url, schema, &table).await;
    assert_eq!(rows.len(), 1005);
    assert!(
        rows == rendered(&[first, second]),
        "both commits' rows, once each"
    );
    assert_eq!(position, Some(pos(11, 0)));
    drop((holder, watcher));
}

/// The server is down when a commit starts: it fails naming the table, and nothing of it is
/// there once the server is back.
#[tokio::test]
async fn postgres_commit_while_the_server_is_down_fails_and_leaves_nothing() {
    let mut server = PostgresServer::start();
    let url = server.url();
    let schema = "t_down";
    let store = connect(&url, schema).await;
    let table = record_table("down");
    let first = batch_of(&table, &recs("a", 0..5, D0));
    store
        .records()
        .commit(&table, std::slice::from_ref(&first), pos(10, 0))
        .await
        .unwrap();

    server.kill();
    // Let the orphaned backends notice their postmaster is gone (pooled connections close).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = batch_of(&table, &recs("b", 0..5, D0));
    let err = store
        .records()
        .commit(&table, &[second], pos(11, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&table.qualified_name()), "{err}");
    assert!(err.contains("committing"), "{err}");

    server.restart();
    let (rows, position) = after_restart(&url, schema, &table).await;
    assert_eq!(rows, rendered(&[first]));
    assert_eq!(position, Some(pos(10, 0)));
}

/// Checks every backend makes on the table definition itself.
#[tokio::test]
async fn invalid_tables_are_refused_naming_the_table() {
    let h = parquet_harness("invalid");
    let mut table = record_table(&h.project);
    table.id_column = "id".to_string();
    let err = h.sink().read_all(&table).await.unwrap_err().to_string();
    assert!(err.contains(&table.qualified_name()), "{err}");
    assert!(err.contains("must be `id`"), "{err}");
    let names: Vec<String> = record_table("p")
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names[..3], ["tx_id", EVENT_TIMESTAMP, ACCEPTED_AT]);
}
