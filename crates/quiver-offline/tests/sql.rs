//! SQL transforms (`sql:` on a view) through the public read API: the query's result stands in
//! for the source's rows in the latest-row fold, the offline table read and the schema check.
#![cfg(feature = "sql")]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{Array, TimestampNanosecondArray};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use quiver_core::{EntityKey, Field, JoinKey, KeyValue, ScalarType, Source, SourceFormat, Value};
use quiver_offline::{OfflineError, ReadRequest, check_source, read_latest, read_table};

const SEC: i64 = 1_000_000_000;

fn source(name: &str, format: SourceFormat) -> Source {
    Source {
        name: name.into(),
        format,
        path: "unused".into(),
        timestamp_field: "ts".into(),
        created_timestamp_field: None,
        table: None,
        query: None,
        url: None,
        description: None,
        batch_source: None,
    }
}

fn keys() -> Vec<JoinKey> {
    vec![JoinKey {
        name: "user_id".into(),
        key_type: ScalarType::Int64,
    }]
}

fn field(name: &str, ty: &str) -> Field {
    Field {
        name: name.into(),
        value_type: ty.parse().unwrap(),
        expression: None,
        constraints: Default::default(),
        description: None,
    }
}

/// Events of users 1 and 2: (user, second, amount, category).
const EVENTS: [(i64, i64, f64, &str); 6] = [
    (1, 10, 5.0, "food"),
    (1, 20, -3.0, "refund"),
    (2, 15, 7.5, "travel"),
    (1, 30, 2.0, "food"),
    (2, 40, -1.0, "refund"),
    (1, 50, -9.0, "refund"),
];

fn write_events(path: &Path) {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "user_id",
            Arc::new(Int64Array::from_iter_values(EVENTS.iter().map(|e| e.0))),
        ),
        (
            "ts",
            Arc::new(
                TimestampNanosecondArray::from_iter_values(EVENTS.iter().map(|e| e.1 * SEC))
                    .with_timezone("UTC"),
            ),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(EVENTS.iter().map(|e| e.2))),
        ),
        (
            "category",
            Arc::new(StringArray::from_iter_values(EVENTS.iter().map(|e| e.3))),
        ),
    ];
    quiver_offline::io::write_parquet(path, &RecordBatch::try_from_iter(columns).unwrap()).unwrap();
}

fn request<'a>(
    path: &'a Path,
    source: &'a Source,
    keys: &'a [JoinKey],
    fields: &'a [Field],
    sql: &'a str,
) -> ReadRequest<'a> {
    ReadRequest {
        path,
        source,
        join_keys: keys,
        fields,
        inputs: &[],
        start: None,
        end: None,
        sql: Some(sql),
    }
}

fn latest_of(rows: &quiver_offline::LatestRows, user: i64) -> (i64, Vec<Value>) {
    let (_, record) = rows
        .rows
        .iter()
        .find(|(k, _)| *k == EntityKey::single(KeyValue::Int(user)))
        .unwrap_or_else(|| panic!("no row for user {user}"));
    (record.event_ts, record.values.clone())
}

#[test]
fn latest_rows_come_from_the_query_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.parquet");
    write_events(&path);
    let src = source("transactions", SourceFormat::Parquet);
    let fields = vec![field("cents", "float64"), field("kind", "string")];
    let keys = keys();
    // Refunds are filtered out, so the latest row per user is its latest purchase, not its
    // latest event.
    let sql = "SELECT user_id, ts, amount * 100 AS cents, upper(category) AS kind \
               FROM source WHERE amount > 0";
    let rows = read_latest(&request(&path, &src, &keys, &fields, sql)).unwrap();
    assert_eq!(rows.rows.len(), 2);
    assert_eq!(
        rows.rows_scanned, 3,
        "the query returns the three purchases"
    );
    assert_eq!(
        latest_of(&rows, 1),
        (
            30 * SEC,
            vec![Value::Float64(200.0), Value::String("FOOD".into())]
        )
    );
    assert_eq!(
        latest_of(&rows, 2),
        (
            15 * SEC,
            vec![Value::Float64(750.0), Value::String("TRAVEL".into())]
        )
    );
}

#[test]
fn the_source_is_also_registered_under_its_own_name_and_csv_types_are_inferred() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    let mut text = String::from("user_id,ts,amount,category\n");
    for (user, second, amount, category) in EVENTS {
        text.push_str(&format!(
            "{user},2026-01-01T00:00:{second:02},{amount},{category}\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    let src = source("transactions", SourceFormat::Csv);
    let keys = keys();
    let fields = vec![field("spent", "float64"), field("events", "int64")];
    // One row per user and minute, grouped by SQL; the view reads the grouped rows.
    let sql = "SELECT user_id, date_trunc('minute', ts) AS ts, \
               sum(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS spent, count(*) AS events \
               FROM transactions GROUP BY user_id, date_trunc('minute', ts)";
    let req = request(&path, &src, &keys, &fields, sql);
    check_source(&req).unwrap();
    let table = read_table(&req).unwrap();
    assert_eq!(table.num_rows(), 2);
    let users = table
        .column(0)
        .as_primitive::<arrow_array::types::Int64Type>();
    let spent = table.column(3).as_primitive::<Float64Type>();
    let times = table.column(1).as_primitive::<TimestampNanosecondType>();
    let minute = 1_767_225_600 * SEC; // 2026-01-01T00:00:00Z
    for row in 0..2 {
        assert_eq!(times.value(row), minute);
        let expected = if users.value(row) == 1 { 7.0 } else { 7.5 };
        assert_eq!(spent.value(row), expected, "user {}", users.value(row));
    }
    let counts = table
        .column(4)
        .as_primitive::<arrow_array::types::Int64Type>();
    let total: i64 = (0..2).map(|r| counts.value(r)).sum();
    assert_eq!(total, 6);
    assert!(table.column(2).is_null(0), "no created timestamp column");
}

fn check_err(sql: &str, fields: &[Field]) -> OfflineError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.parquet");
    write_events(&path);
    let src = source("transactions", SourceFormat::Parquet);
    let keys = keys();
    check_source(&request(&path, &src, &keys, fields, sql)).unwrap_err()
}

#[test]
fn apply_time_errors_name_the_query_and_the_problem() {
    let fields = vec![field("cents", "float64")];

    let err = check_err("SELEC user_id FROM source", &fields);
    assert!(matches!(err, OfflineError::Sql { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("the `sql` query over source `transactions`"),
        "{msg}"
    );
    assert!(msg.contains("SELEC"), "{msg}");

    let msg = check_err(
        "SELECT user_id, ts, no_such_column AS cents FROM source",
        &fields,
    )
    .to_string();
    assert!(msg.contains("no_such_column"), "{msg}");

    // The query runs, but its result lacks the view's timestamp column.
    let err = check_err("SELECT user_id, amount AS cents FROM source", &fields);
    let msg = err.to_string();
    assert!(
        matches!(&err, OfflineError::MissingColumn { column, .. } if column == "ts"),
        "{msg}"
    );
    assert!(msg.contains("the `sql` query"), "{msg}");
    assert!(msg.contains("`cents`"), "lists the query's columns: {msg}");

    // A result column of the wrong type is named with both types.
    let err = check_err("SELECT user_id, ts, category AS cents FROM source", &fields);
    assert!(
        matches!(&err, OfflineError::IncompatibleType { column, .. } if column == "cents"),
        "{err}"
    );

    // Only queries: no DDL or statements from a definition.
    let err = check_err("CREATE TABLE t AS SELECT 1", &fields);
    assert!(matches!(err, OfflineError::Sql { .. }), "{err:?}");
    let err = check_err("SET datafusion.execution.batch_size = 1", &fields);
    assert!(matches!(err, OfflineError::Sql { .. }), "{err:?}");
}

#[test]
fn a_query_over_an_unreadable_source_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.parquet");
    let src = source("transactions", SourceFormat::Parquet);
    let keys = keys();
    let fields = vec![field("cents", "float64")];
    let err = read_latest(&request(
        &path,
        &src,
        &keys,
        &fields,
        "SELECT user_id, ts, amount AS cents FROM source",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("missing.parquet"), "{err}");
}

#[test]
fn time_window_applies_to_the_query_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.parquet");
    write_events(&path);
    let src = source("transactions", SourceFormat::Parquet);
    let keys = keys();
    let fields = vec![field("amount", "float64")];
    let mut req = request(
        &path,
        &src,
        &keys,
        &fields,
        "SELECT user_id, ts, amount FROM source",
    );
    req.end = Some(25 * SEC);
    let rows = read_latest(&req).unwrap();
    assert_eq!(latest_of(&rows, 1), (20 * SEC, vec![Value::Float64(-3.0)]));
    assert_eq!(latest_of(&rows, 2), (15 * SEC, vec![Value::Float64(7.5)]));
}
