//! Regressions of issue 8 through the library: the created-time tie rule in every
//! order-dependent function (training sets, built history, online values), a training set's
//! timestamp type, values beyond their declared type, and source rows without an event time.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use quiver::{
    BuildOptions, FeatureSelection, FeatureStore, HistoricalOptions, MaterializeOptions,
    NoProgress, OnlineRequest,
};
use quiver_core::Value;

const CONFIG: &str = "project: ties\nonline_store:\n  type: memory\n";

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: tx, path: data/tx.csv, timestamp_field: event_time, created_timestamp_field: created}
  - {name: quotes, path: data/quotes.csv, timestamp_field: event_time, created_timestamp_field: created}
  - {name: readings, path: data/readings.csv, timestamp_field: event_time}
feature_views:
  - name: plain
    entities: [user]
    source: tx
    fields:
      - {name: amount, type: float64}
  - name: agg
    entities: [user]
    source: tx
    aggregations:
      - {column: amount, functions: [last, count], windows: [1d]}
  - name: series
    entities: [user]
    source: quotes
    time_series:
      - {column: close, returns: [1], momentum: [1], volatility: [2]}
  - name: narrow
    entities: [user]
    source: readings
    fields:
      - {name: level, type: float32}
      - {name: visits, type: int32}
"#;

/// The issue's reproduction: two rows at the same event time, the first created later; it must
/// win everywhere. Quotes: user 1 closes 100 at midnight, then two closes at 06:00, of which
/// 110 was created later (so it is the later period); user 2 has a row without an event time.
fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("quiver.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    std::fs::write(
        dir.join("data/tx.csv"),
        "user_id,event_time,created,amount\n\
         1,2025-01-01T00:00:00Z,2025-01-01T00:00:02Z,10.0\n\
         1,2025-01-01T00:00:00Z,2025-01-01T00:00:01Z,20.0\n\
         2,,2025-01-01T00:00:01Z,5.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("data/quotes.csv"),
        "user_id,event_time,created,close\n\
         1,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z,100.0\n\
         1,2025-01-01T06:00:00Z,2025-01-01T06:00:09Z,110.0\n\
         1,2025-01-01T06:00:00Z,2025-01-01T06:00:01Z,105.0\n",
    )
    .unwrap();
    // User 1 fits; user 2's level overflows float32, user 3's visits overflow int32.
    std::fs::write(
        dir.join("data/readings.csv"),
        "user_id,event_time,level,visits\n\
         1,2025-01-01T00:00:00Z,1.5,3\n\
         2,2025-01-01T00:00:00Z,1e39,3\n\
         3,2025-01-01T00:00:00Z,1.5,3000000000\n",
    )
    .unwrap();
}

async fn open() -> (tempfile::TempDir, FeatureStore) {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    (dir, store)
}

fn entity_rows(ts: &str) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let times: ArrayRef = Arc::new(StringArray::from(vec![ts]));
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Utf8, false),
        ])),
        vec![ids, times],
    )
    .unwrap()
}

fn float(batch: &RecordBatch, column: &str) -> Option<f64> {
    let column = batch.column_by_name(column).unwrap();
    column.as_primitive::<Float64Type>().iter().next().unwrap()
}

#[tokio::test]
async fn later_created_time_wins_ties_in_training_sets() {
    let (_dir, store) = open().await;
    let features = FeatureSelection::Features(vec![
        "plain:amount".into(),
        "agg:amount__last__1d".into(),
        "agg:amount__count__1d".into(),
        "series:close__return__1".into(),
        "series:close__momentum__1".into(),
        "series:close__volatility__2".into(),
    ]);
    let training = store
        .get_historical_features(
            &entity_rows("2025-01-01T12:00:00Z"),
            &features,
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    let out = &training.batch;
    assert_eq!(float(out, "amount"), Some(10.0));
    assert_eq!(float(out, "amount__last__1d"), Some(10.0));
    // Periods in (time, created) order: 100, 105, 110.
    let ret = float(out, "close__return__1").unwrap();
    assert!((ret - (110.0 / 105.0 - 1.0)).abs() < 1e-12, "{ret}");
    assert_eq!(float(out, "close__momentum__1"), Some(5.0));
    let (a, b) = ((105.0f64 / 100.0).ln(), (110.0f64 / 105.0).ln());
    let vol = float(out, "close__volatility__2").unwrap();
    assert!((vol - (a - b).abs() / 2f64.sqrt()).abs() < 1e-12, "{vol}");

    // The row without an event time is counted, and refused in strict mode.
    let tx = training.sources.iter().find(|s| s.view == "agg").unwrap();
    assert_eq!((tx.rows_null_timestamp, tx.rows_null_key), (1, 0));
    let err = store
        .get_historical_features(
            &entity_rows("2025-01-01T12:00:00Z"),
            &features,
            &HistoricalOptions {
                strict: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 rows have a null event time `event_time`"),
        "{err}"
    );
    assert!(err.contains("tx.csv"), "{err}");
}

#[tokio::test]
async fn later_created_time_wins_ties_in_built_history_and_online() {
    let (_dir, store) = open().await;
    let views: Vec<String> = ["plain", "agg", "series"].map(String::from).into();
    let reports = store
        .build(&BuildOptions {
            views: views.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let agg = reports.iter().find(|r| r.view == "agg").unwrap();
    assert_eq!(agg.rows_null_timestamp, 1);
    let offline = store.offline_store().await.unwrap();
    let served = store.view("agg").unwrap().clone();
    let table = quiver_offline::store::OfflineTable::for_view(
        "ties",
        &served.definition,
        served.table.version,
    );
    let batches = offline.read_range(&table, None, None).await.unwrap();
    let last: Vec<Option<f64>> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("amount__last__1d")
                .unwrap()
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    // Both rows sit at the same instant, where the later-created one is the latest event.
    assert_eq!(last, [Some(10.0), Some(10.0)]);
    let strict = store
        .build(&BuildOptions {
            views,
            strict: true,
            ..Default::default()
        })
        .await;
    assert!(strict.is_err());

    let end = quiver_core::value::parse_timestamp("2025-01-01T12:00:00Z").unwrap();
    let report = store
        .materialize(
            &MaterializeOptions {
                end: Some(end),
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    for view in &report.views {
        let expected = u64::from(matches!(view.view.as_str(), "plain" | "agg"));
        assert_eq!(view.rows_null_timestamp, expected, "{}", view.view);
    }
    let response = store
        .get_online_features(&OnlineRequest {
            features: FeatureSelection::Features(vec![
                "plain:amount".into(),
                "agg:amount__last__1d".into(),
                "series:close__momentum__1".into(),
            ]),
            entities: vec![("user_id".into(), vec![quiver_core::KeyValue::Int(1)])],
            full_feature_names: false,
            as_of: None,
        })
        .await
        .unwrap();
    assert_eq!(response.columns[1].values[0], Value::Float64(10.0));
    assert_eq!(response.columns[2].values[0], Value::Float64(10.0));
    assert_eq!(response.columns[3].values[0], Value::Float64(5.0));
    let strict = store
        .materialize(
            &MaterializeOptions {
                end: Some(end),
                strict: Some(true),
                views: vec!["plain".into()],
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(strict.contains("null event time"), "{strict}");
}

#[tokio::test]
async fn training_set_timestamps_are_utc_microseconds_whatever_the_precision() {
    let (dir, store) = open().await;
    for (name, text) in [
        (
            "whole.csv",
            "user_id,event_timestamp\n1,2025-01-01T12:00:00Z\n",
        ),
        (
            "millis.csv",
            "user_id,event_timestamp\n1,2025-01-01T12:00:00.250Z\n",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let entities = quiver::offline_io::read_file(&path).unwrap();
        let out = store
            .get_historical_features(
                &entities,
                &FeatureSelection::Features(vec!["plain:amount".into()]),
                &HistoricalOptions::default(),
            )
            .await
            .unwrap()
            .batch;
        let ts = out.column_by_name("event_timestamp").unwrap();
        assert_eq!(
            ts.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "{name}"
        );
        // Through Parquet and back, the type stays.
        let written = dir.path().join(format!("{name}.parquet"));
        quiver::offline_io::write_parquet(&written, &out).unwrap();
        let back = quiver::offline_io::read_file(&written).unwrap();
        assert_eq!(
            back.column_by_name("event_timestamp").unwrap().data_type(),
            ts.data_type()
        );
        assert_eq!(float(&out, "amount"), Some(10.0), "{name}");
    }
    // A Parquet entity file keeps its own timestamp type.
    let own = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(arrow_array::TimestampNanosecondArray::from(vec![
                quiver_core::value::parse_timestamp("2025-01-01T12:00:00Z").unwrap(),
            ])),
        ],
    )
    .unwrap();
    let out = store
        .get_historical_features(
            &own,
            &FeatureSelection::Features(vec!["plain:amount".into()]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap()
        .batch;
    assert_eq!(
        out.column_by_name("event_timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

#[tokio::test]
async fn entity_key_type_errors_name_the_file_column_and_types() {
    let (dir, store) = open().await;
    let path = dir.path().join("strings.csv");
    std::fs::write(&path, "user_id,event_timestamp\nabc,2025-01-01T12:00:00Z\n").unwrap();
    let entities = quiver::offline_io::read_file(&path).unwrap();
    let err = store
        .get_historical_features(
            &entities,
            &FeatureSelection::Features(vec!["plain:amount".into()]),
            &HistoricalOptions {
                entities_origin: Some("entity file `strings.csv`".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "entity file `strings.csv`: column `user_id` is Utf8 but join key `user_id` of feature view `plain` is int64"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn materialize_rejects_values_beyond_the_declared_type() {
    let (_dir, store) = open().await;
    let options = MaterializeOptions {
        views: vec!["narrow".into()],
        end: Some(quiver_core::value::parse_timestamp("2025-01-02T00:00:00Z").unwrap()),
        ..Default::default()
    };
    let report = store.materialize(&options, &NoProgress).await.unwrap();
    let narrow = &report.views[0];
    assert_eq!((narrow.written, narrow.rejected), (1, 2), "{narrow:?}");
    let messages = narrow.rejections.join("\n");
    assert!(
        messages.contains("feature view `narrow`: entity `user_id=2`: field `level`: value 1e39")
            && messages.contains("does not fit float32"),
        "{messages}"
    );
    assert!(
        messages
            .contains("entity `user_id=3`: field `visits`: value 3000000000 does not fit int32"),
        "{messages}"
    );
    let response = store
        .get_online_features(&OnlineRequest {
            features: FeatureSelection::Features(vec!["narrow:level".into()]),
            entities: vec![(
                "user_id".into(),
                vec![quiver_core::KeyValue::Int(1), quiver_core::KeyValue::Int(2)],
            )],
            full_feature_names: false,
            as_of: None,
        })
        .await
        .unwrap();
    assert_eq!(
        response.columns[1].values,
        [Value::Float32(1.5), Value::Null]
    );
    let strict = MaterializeOptions {
        strict: Some(true),
        ..options
    };
    let err = store
        .materialize(&strict, &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not fit") && err.contains("strict mode"),
        "{err}"
    );
    // History refuses such values too, naming the column, rather than storing infinity.
    let err = store
        .build(&BuildOptions {
            views: vec!["narrow".into()],
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("readings.csv") && err.contains("column `level`: value 1e39"),
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_entity_file_gives_typed_empty_feature_columns() {
    let (_dir, store) = open().await;
    let empty = entity_rows("2025-01-01T12:00:00Z").slice(0, 0);
    let out = store
        .get_historical_features(
            &empty,
            &FeatureSelection::Features(vec![
                "plain:amount".into(),
                "agg:amount__count__1d".into(),
            ]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap()
        .batch;
    assert_eq!(out.num_rows(), 0);
    let amount = out
        .column_by_name("amount")
        .expect("the feature column is there");
    assert_eq!(amount.data_type(), &DataType::Float64);
    let count = out.column_by_name("amount__count__1d").unwrap();
    assert_eq!(count.data_type(), &DataType::Int64);
}
