//! The sample writer produces the documented schema and counts, deterministically, and its files
//! read back through the source reader.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_core::{Field, JoinKey, ScalarType, Source, SourceFormat, Value};
use quiver_offline::sample::{transactions_schema, users_schema};
use quiver_offline::{ReadRequest, read_latest, write_sample};

const NOW_NS: i64 = 1_780_000_000_000_000_000;
const DAY_US: i64 = 86_400 * 1_000_000;

fn read_all(path: &std::path::Path) -> (Vec<RecordBatch>, usize) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let groups = builder.metadata().num_row_groups();
    let batches = builder
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (batches, groups)
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

#[test]
fn writes_documented_schema_counts_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_sample(dir.path(), NOW_NS, 42, 300, 5_000).unwrap();
    assert_eq!(summary.users, 300);
    assert_eq!(summary.transactions, 5_000);
    assert!(
        (300..=900).contains(&summary.user_rows),
        "{}",
        summary.user_rows
    );

    let (users, _) = read_all(&summary.users_path);
    let users = concat(&users);
    assert_eq!(users.schema(), users_schema());
    assert_eq!(users.num_rows(), summary.user_rows);
    let ages = users.column(1).as_primitive::<Int32Type>();
    assert!(ages.values().iter().all(|a| (18..90).contains(a)));
    let embedding = users.column(4).as_fixed_size_list();
    assert_eq!(embedding.value_length(), 16);
    for i in 0..embedding.len() {
        let v = embedding.value(i);
        let norm: f32 = v
            .as_primitive::<arrow_array::types::Float32Type>()
            .values()
            .iter()
            .map(|x| x * x)
            .sum();
        assert!((norm - 1.0).abs() < 1e-3, "row {i}: squared norm {norm}");
    }
    let now_us = NOW_NS / 1_000;
    let updated = users.column(5).as_primitive::<TimestampMicrosecondType>();
    assert!(
        updated
            .values()
            .iter()
            .all(|t| *t < now_us && *t >= now_us - 60 * DAY_US)
    );
    assert!(
        users
            .column(3)
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .all(|d| *d >= 0),
        "signup precedes every snapshot"
    );

    let (tx, groups) = read_all(&summary.transactions_path);
    assert!(groups >= 1);
    let tx = concat(&tx);
    assert_eq!(tx.schema(), transactions_schema());
    assert_eq!(tx.num_rows(), 5_000);
    assert_eq!(
        tx.schema().field(4).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let times = tx
        .column(4)
        .as_primitive::<TimestampMicrosecondType>()
        .values();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "sorted by event_time"
    );
    assert!(
        times
            .iter()
            .all(|t| *t < now_us && *t >= now_us - 90 * DAY_US)
    );
    let amounts = tx.column(2).as_primitive::<Float64Type>().values();
    assert!(
        amounts
            .iter()
            .all(|a| *a > 0.0 && (a * 100.0 - (a * 100.0).round()).abs() < 1e-6)
    );
    let ids = tx.column(0).as_primitive::<Int64Type>().values();
    assert!(ids.iter().copied().eq(1..=5_000));
    let users_ref = tx.column(1).as_primitive::<Int64Type>().values();
    assert!(users_ref.iter().all(|u| (1..=300).contains(u)));
    let categories: std::collections::BTreeSet<&str> =
        tx.column(3).as_string::<i32>().iter().flatten().collect();
    assert_eq!(categories.len(), 10, "{categories:?}");
}

#[test]
fn same_seed_same_bytes_and_other_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = write_sample(a.path(), NOW_NS, 7, 50, 500).unwrap();
    let sb = write_sample(b.path(), NOW_NS, 7, 50, 500).unwrap();
    let sc = write_sample(c.path(), NOW_NS, 8, 50, 500).unwrap();
    let bytes = |p: &std::path::Path| std::fs::read(p).unwrap();
    assert_eq!(bytes(&sa.users_path), bytes(&sb.users_path));
    assert_eq!(bytes(&sa.transactions_path), bytes(&sb.transactions_path));
    assert_ne!(bytes(&sa.transactions_path), bytes(&sc.transactions_path));
}

#[test]
fn sample_users_read_back_one_latest_row_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_sample(dir.path(), NOW_NS, 3, 120, 0).unwrap();
    assert_eq!(summary.transactions, 0);
    let source = Source {
        name: "users".into(),
        format: SourceFormat::Parquet,
        path: "data/users.parquet".into(),
        timestamp_field: "updated_at".into(),
        created_timestamp_field: None,
        table: None,
        query: None,
        url: None,
        description: None,
        batch_source: None,
    };
    let keys = [JoinKey {
        name: "user_id".into(),
        key_type: ScalarType::Int64,
    }];
    let fields: Vec<Field> = [
        ("age", "int32"),
        ("country", "string"),
        ("embedding", "list<float32>"),
    ]
    .iter()
    .map(|(n, t)| Field {
        name: n.to_string(),
        value_type: t.parse().unwrap(),
        expression: None,
        constraints: Default::default(),
        description: None,
    })
    .collect();
    let rows = read_latest(&ReadRequest {
        path: &summary.users_path,
        source: &source,
        join_keys: &keys,
        fields: &fields,
        inputs: &[],
        start: None,
        end: Some(NOW_NS),
        sql: None,
    })
    .unwrap();
    assert_eq!(rows.rows.len(), 120);
    assert_eq!(rows.rows_scanned as usize, summary.user_rows);
    for (_, record) in &rows.rows {
        assert!(matches!(&record.values[2], Value::Float32List(v) if v.len() == 16));
        assert!(matches!(&record.values[1], Value::String(c) if c.len() == 2));
    }
}

#[test]
fn transactions_without_users_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_sample(dir.path(), NOW_NS, 1, 0, 10).unwrap_err();
    assert!(err.to_string().contains("at least one user"), "{err}");
}

#[test]
fn quickstart_data_has_the_documented_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let summary = quiver_offline::write_quickstart_data(dir.path(), NOW_NS, 42).unwrap();
    assert_eq!(summary.users, 10_000);
    assert_eq!(summary.transactions, 300_000);
    // 1-3 snapshots each, uniformly: about 20,000 rows.
    assert!(
        (18_000..=22_000).contains(&summary.user_rows),
        "{}",
        summary.user_rows
    );
    let (tx, groups) = read_all(&summary.transactions_path);
    assert_eq!(tx.iter().map(|b| b.num_rows()).sum::<usize>(), 300_000);
    assert!(groups >= 2, "written in bounded row groups, got {groups}");
}
