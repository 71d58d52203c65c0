//! The offline loop through the library: build into the Parquet offline store, point-in-time
//! training sets (plain and aggregation views) that never leak the future, derived views
//! materialized online, incremental materialization.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use quiver::{FeatureSelection, FeatureStore, HistoricalOptions, NoProgress, OnlineRequest};

const CONFIG: &str = "project: offtest\nonline_store:\n  type: memory\n";

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: profiles, path: data/profiles.csv, timestamp_field: ts, created_timestamp_field: created}
  - {name: tx, path: data/tx.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: profiles
    ttl: 10d
    fields:
      - {name: age, type: int32}
  - name: spend
    entities: [user]
    source: tx
    retention: 3650d
    aggregations:
      - {column: amount, functions: [sum, count, max], windows: [2d, 7d]}
feature_services:
  - {name: model, features: ["profile:age", "spend:amount__sum__7d", "spend:amount__count__2d"]}
"#;

// Day numbers are days after 2026-01-01.
fn day(d: u32, hour: u32) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (base + chrono::Duration::days(d as i64) + chrono::Duration::hours(hour as i64))
        .and_utc()
        .to_rfc3339()
}

fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("quiver.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    // User 1: age 30 on day 1, corrected to 31 (same event time, later created), 40 on day 20.
    // User 2: age 50 on day 1 only.
    let profiles = format!(
        "user_id,age,ts,created\n1,30,{},{}\n1,31,{},{}\n1,40,{},{}\n2,50,{},{}\n",
        day(1, 0),
        day(1, 0),
        day(1, 0),
        day(1, 1),
        day(20, 0),
        day(20, 0),
        day(1, 0),
        day(1, 0),
    );
    std::fs::write(dir.join("data/profiles.csv"), profiles).unwrap();
    // User 1 spends 10 on day 1, 20 on day 3, 40 on day 8 (noon each).
    let tx = format!(
        "user_id,amount,ts\n1,10.0,{}\n1,20.0,{}\n1,40.0,{}\n",
        day(1, 12),
        day(3, 12),
        day(8, 12)
    );
    std::fs::write(dir.join("data/tx.csv"), tx).unwrap();
}

async fn open() -> (tempfile::TempDir, FeatureStore) {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    (dir, store)
}

fn entities(rows: &[(i64, String)]) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ));
    let ts: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Utf8, false),
        ])),
        vec![ids, ts],
    )
    .unwrap()
}

#[tokio::test]
async fn training_set_is_point_in_time_correct() {
    let (_dir, store) = open().await;
    let rows = vec![
        (1, day(0, 0)),  // before any data: nothing
        (1, day(1, 0)),  // exactly at the corrected row: 31 (later created wins)
        (1, day(5, 0)),  // still 31; 7d spend: 10 + 20
        (1, day(8, 12)), // the day-8 event is included at its own time: 7d = 20 + 40
        (1, day(12, 0)), // 11 days after the profile row: outside ttl 10d -> null
        (1, day(20, 0)), // the day-20 row: 40
        (2, day(3, 0)),  // user 2 has no spend: sum 0, count 0
        (3, day(3, 0)),  // unknown entity
    ];
    let out = store
        .get_historical_features(
            &entities(&rows),
            &FeatureSelection::Service("model".into()),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap()
        .batch;
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "user_id",
            "event_timestamp",
            "age",
            "amount__sum__7d",
            "amount__count__2d"
        ]
    );
    let age: Vec<Option<i32>> = out.column(2).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(
        age,
        [
            None,
            Some(31),
            Some(31),
            Some(31),
            None,
            Some(40),
            Some(50),
            None
        ]
    );
    let sum7: Vec<Option<f64>> = out.column(3).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(
        sum7,
        [
            Some(0.0),
            Some(0.0),
            Some(30.0),
            Some(60.0),
            Some(40.0),
            Some(0.0),
            Some(0.0),
            Some(0.0)
        ]
    );
    let count2: Vec<i64> = out.column(4).as_primitive::<Int64Type>().values().to_vec();
    // At day 5 the 2d window (day 3, day 5] holds the day-3-noon event.
    assert_eq!(count2, [0, 0, 1, 1, 0, 0, 0, 0]);
}

#[tokio::test]
async fn historical_errors_name_the_problem() {
    let (_dir, store) = open().await;
    let batch = entities(&[(1, day(1, 0))]);
    let err = store
        .get_historical_features(
            &batch,
            &FeatureSelection::Features(vec!["profile:age".into()]),
            &HistoricalOptions {
                timestamp_column: "ts".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no timestamp column `ts`"), "{err}");
    let err = store
        .get_historical_features(
            &batch,
            &FeatureSelection::Features(vec!["profile:height".into()]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no feature `height`"), "{err}");
}

#[tokio::test]
async fn build_writes_history_and_materialize_evaluates_windows_online() {
    let (_dir, mut store) = open().await;
    let reports = store.build(&Default::default()).await.unwrap();
    let rows: Vec<(String, u64)> = reports.iter().map(|r| (r.view.clone(), r.rows)).collect();
    assert_eq!(rows, [("profile".to_string(), 4), ("spend".to_string(), 3)]);
    // Re-building the same range replaces it: no duplicates.
    store.build(&Default::default()).await.unwrap();
    let offline = store.offline_store().await.unwrap();
    let served = store.view("spend").unwrap().clone();
    let table = quiver_offline::store::OfflineTable::for_view(
        "offtest",
        &served.definition,
        served.table.version,
    );
    let batches = offline.read_range(&table, None, None).await.unwrap();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 3);

    // Online, windows are evaluated at the materialization time: day 9 noon.
    let end = quiver_core::value::parse_timestamp(&day(9, 12)).unwrap();
    store
        .materialize(
            &quiver::MaterializeOptions {
                end: Some(end),
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    let response = store
        .get_online_features(&OnlineRequest {
            features: FeatureSelection::Features(vec![
                "spend:amount__sum__7d".into(),
                "spend:amount__max__2d".into(),
            ]),
            entities: vec![("user_id".into(), vec![quiver_core::KeyValue::Int(1)])],
            full_feature_names: false,
            as_of: None,
        })
        .await
        .unwrap();
    // (day 2.5, day 9.5]: 20 + 40; the 2d window holds only the day-8 event.
    assert_eq!(
        response.columns[1].values[0],
        quiver_core::Value::Float64(60.0)
    );
    assert_eq!(
        response.columns[2].values[0],
        quiver_core::Value::Float64(40.0)
    );
    assert_eq!(response.columns[1].event_timestamps[0], end);

    // Incremental: the first run records watermarks; the second finds nothing new for plain
    // views.
    store.materialize_incremental(&NoProgress).await.unwrap();
    let again = store.materialize_incremental(&NoProgress).await.unwrap();
    let profile = again.views.iter().find(|v| v.view == "profile").unwrap();
    assert_eq!(profile.rows_in_window, 0);
    assert!(!store.registry().unwrap().watermarks.is_empty());
    let pruned = store.prune(&[]).await.unwrap();
    assert_eq!(pruned, [("spend".to_string(), 0)]);
}
