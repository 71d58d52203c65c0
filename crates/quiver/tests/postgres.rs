//! PostgreSQL end to end through the library: a PostgreSQL table as the source (columns cast to
//! the declared types), the PostgreSQL offline store for `build`, a point-in-time training set
//! and materialization. A real server started by the fixture on an ephemeral port.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use quiver::{FeatureSelection, FeatureStore, HistoricalOptions, NoProgress, OnlineRequest};
use quiver_test_utils::PostgresServer;

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: profiles, type: postgres, table: public.profiles, timestamp_field: ts}
  - {name: tx, type: postgres, query: "SELECT user_id, amount, ts FROM public.tx WHERE amount > 0", timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: profiles
    fields:
      - {name: age, type: int32}
  - name: spend
    entities: [user]
    source: tx
    aggregations:
      - {column: amount, functions: [sum], windows: [7d]}
"#;

async fn seed(url: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE profiles (user_id integer, age smallint, ts timestamp);
             INSERT INTO profiles VALUES (1, 30, '2026-01-01 00:00'), (1, 31, '2026-01-05 00:00'),
                                         (2, 50, '2026-01-02 00:00');
             CREATE TABLE tx (user_id bigint, amount numeric(10,2), ts timestamptz);
             INSERT INTO tx VALUES (1, 10.50, '2026-01-01 12:00Z'), (1, 20.25, '2026-01-03 12:00Z'),
                                   (1, -5, '2026-01-03 13:00Z'), (2, 7, '2026-01-09 00:00Z');",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_source_and_offline_store() {
    let pg = PostgresServer::start();
    seed(&pg.url()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("features")).unwrap();
    std::fs::write(
        dir.path().join("quiver.yaml"),
        format!(
            "project: pgtest\nonline_store: {{type: memory}}\noffline_store: {{type: postgres, url: \"{}\"}}\n",
            pg.url()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("features/defs.yaml"), DEFS).unwrap();
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    let report = store.apply().await.unwrap();
    // No TimescaleDB here: apply says it made a plain table with an index.
    assert!(
        report
            .offline_tables
            .iter()
            .all(|(_, t)| t.contains("index")),
        "{:?}",
        report.offline_tables
    );

    let built = store.build(&Default::default()).await.unwrap();
    let rows: Vec<u64> = built.iter().map(|r| r.rows).collect();
    assert_eq!(rows, [3, 3], "{built:?}");
    assert!(built[0].table.contains("index"), "{}", built[0].table);

    let entities = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef,
            Arc::new(StringArray::from(vec![
                "2026-01-04T00:00:00Z",
                "2026-01-06T00:00:00Z",
                "2026-01-09T00:00:00Z",
            ])) as ArrayRef,
        ],
    )
    .unwrap();
    let out = store
        .get_historical_features(
            &entities,
            &FeatureSelection::Features(vec!["profile:age".into(), "spend:amount__sum__7d".into()]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap()
        .batch;
    let age: Vec<Option<i32>> = out.column(2).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(age, [Some(30), Some(31), Some(50)]);
    let sum: Vec<Option<f64>> = out.column(3).as_primitive::<Float64Type>().iter().collect();
    // The query filters out the negative amount; the 7d window at Jan 9 holds only user 2's 7.
    assert_eq!(sum, [Some(30.75), Some(30.75), Some(7.0)]);

    store
        .materialize(&Default::default(), &NoProgress)
        .await
        .unwrap();
    let response = store
        .get_online_features(&OnlineRequest {
            features: FeatureSelection::Features(vec!["profile:age".into()]),
            entities: vec![("user_id".into(), vec![quiver_core::KeyValue::Int(1)])],
            full_feature_names: false,
            as_of: None,
        })
        .await
        .unwrap();
    assert_eq!(response.columns[1].values[0], quiver_core::Value::Int32(31));

    // A missing column is named at apply time.
    std::fs::write(
        dir.path().join("features/defs.yaml"),
        DEFS.replace("{name: age, type: int32}", "{name: height, type: int32}"),
    )
    .unwrap();
    let err = store.apply().await.unwrap_err().to_string();
    assert!(err.contains("height"), "{err}");
}
