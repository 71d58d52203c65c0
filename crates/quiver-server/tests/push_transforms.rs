//! Write-time transforms: a view over a push source computes fields from the pushed raw columns
//! with expressions. What `/push` writes online must be what the offline engine computes from the
//! appended rows (training sets, materialize), value for value, nulls included.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use quiver::selection::FeatureSelection;
use quiver::{FeatureStore, HistoricalOptions};
use quiver_server::ServeOptions;
use serde_json::{Value, json};

const FEATURES: [&str; 6] = [
    "amount_cents",
    "big_fr",
    "country_len",
    "unit_price",
    "tag",
    "next_qty",
];

const DEFS: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: orders, path: data/orders.parquet, timestamp_field: ts}
  - {name: orders_push, type: push, batch_source: orders}
feature_views:
  - name: order_features
    entities: [user]
    source: orders_push
    ttl: 3650d
    inputs: [{name: amount, type: float64}, {name: country, type: string}]
    fields:
      - {name: qty, type: int64}
      - {name: amount_cents, type: int64, expression: "cast(amount * 100 as int64)"}
      - {name: big_fr, type: bool, expression: "amount * qty >= 100 and lower(trim(country)) = 'fr'"}
      - {name: country_len, type: int64, expression: "length(trim(country))"}
      - {name: unit_price, type: float64, expression: "amount / qty"}
      - {name: tag, type: string, expression: "concat(upper(trim(country)), '-', cast(qty as string))"}
      - {name: next_qty, type: int64, expression: "qty + 1"}
"#;

fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        "project: transforms\nonline_store: {type: memory}\n",
    )
    .unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    // The batch source holds raw columns only (and one earlier row).
    let batch = RecordBatch::try_from_iter_with_nullable(vec![
        (
            "user_id",
            Arc::new(Int64Array::from(vec![9])) as ArrayRef,
            true,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
            true,
        ),
        ("qty", Arc::new(Int64Array::from(vec![1])) as ArrayRef, true),
        (
            "country",
            Arc::new(StringArray::from(vec!["it"])) as ArrayRef,
            true,
        ),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_767_225_600_000_000]).with_timezone("UTC"),
            ) as ArrayRef,
            true,
        ),
    ])
    .unwrap();
    quiver::offline_io::write_parquet(&dir.join("data/orders.parquet"), &batch).unwrap();
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Per feature, the values served online for the users, in order.
async fn online(base: &str, users: &[i64]) -> Vec<Vec<Value>> {
    let features: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("order_features:{f}"))
        .collect();
    let (status, body) = post(
        base,
        "/get-online-features",
        json!({"features": features, "entities": {"user_id": users}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (0..FEATURES.len())
        .map(|i| body["results"][i + 1]["values"].as_array().unwrap().clone())
        .collect()
}

/// One training-set cell as JSON, the way the server renders it.
fn cell(column: &ArrayRef, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        arrow_schema::DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(row)),
        arrow_schema::DataType::Float64 => {
            json!(column.as_primitive::<Float64Type>().value(row))
        }
        arrow_schema::DataType::Boolean => json!(column.as_boolean().value(row)),
        arrow_schema::DataType::Utf8 => json!(column.as_string::<i32>().value(row)),
        other => panic!("unexpected column type {other}"),
    }
}

/// Per feature, the point-in-time values the offline engine computes for the users at `at`.
async fn offline(dir: &Path, users: &[i64], at: &str) -> Vec<Vec<Value>> {
    let store = FeatureStore::open(dir).await.unwrap();
    let entities = RecordBatch::try_from_iter(vec![
        (
            "user_id",
            Arc::new(Int64Array::from(users.to_vec())) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(StringArray::from(vec![at; users.len()])) as ArrayRef,
        ),
    ])
    .unwrap();
    let selection = FeatureSelection::Features(
        FEATURES
            .iter()
            .map(|f| format!("order_features:{f}"))
            .collect(),
    );
    let training = store
        .get_historical_features(&entities, &selection, &HistoricalOptions::default())
        .await
        .unwrap();
    FEATURES
        .iter()
        .map(|f| {
            let column = training.batch.column_by_name(f).unwrap();
            (0..users.len()).map(|r| cell(column, r)).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_rows_are_computed_alike_online_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    let server = common::spawn(store, ServeOptions::default()).await;
    let base = format!("http://{}", server.addr);

    // Raw columns only; `amount` arrives as a JSON integer for user 2 and is still a float64
    // (its declared type) on both sides.
    let (status, report) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "orders_push",
            "df": {
                "user_id": [1, 2, 3],
                "amount": [12.5, 3, null],
                "qty": [10, 0, 4],
                "country": [" fr ", "DE", null],
                "ts": ["2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"],
            },
            "to": "online_and_offline",
        }),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["offline_rows"], 3);
    assert_eq!(report["views"][0]["written"], 3);

    let expected = vec![
        vec![json!(1250), json!(300), Value::Null],
        // `null and x` is null unless x is false.
        vec![json!(true), json!(false), Value::Null],
        vec![json!(2), json!(2), Value::Null],
        // Dividing by zero is null.
        vec![json!(1.25), Value::Null, Value::Null],
        // `concat` skips nulls.
        vec![json!("FR-10"), json!("DE-0"), json!("-4")],
        vec![json!(11), json!(1), json!(5)],
    ];
    let users = [1, 2, 3];
    assert_eq!(online(&base, &users).await, expected, "online");
    assert_eq!(
        offline(dir.path(), &users, "2026-03-02T00:00:00Z").await,
        expected,
        "offline (training set over the appended rows)"
    );

    // The batch source's earlier row is computed offline too, and materialized online.
    let (status, body) = post(&base, "/materialize", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let nine = online(&base, &[9]).await;
    assert_eq!(
        nine,
        offline(dir.path(), &[9], "2026-03-02T00:00:00Z").await
    );
    assert_eq!(nine[0], [json!(100)]);
    assert_eq!(nine[4], [json!("IT-1")]);

    // An expression that fails on a row refuses the whole push: nothing online, nothing
    // appended; the message names the field, the expression and the row.
    let rows_before = quiver::offline_io::read_file(&dir.path().join("data/orders.parquet"))
        .unwrap()
        .num_rows();
    let (status, body) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "orders_push",
            "df": {
                "user_id": [4, 5],
                "amount": [1.0, 1.0],
                "qty": [1, i64::MAX],
                "country": ["fr", "fr"],
                "ts": ["2026-03-03T00:00:00Z", "2026-03-03T00:00:00Z"],
            },
            "to": "online_and_offline",
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("field `next_qty`: expression `qty + 1`: row 1: integer overflow"),
        "{message}"
    );
    assert_eq!(online(&base, &[4]).await[0], [Value::Null]);
    assert_eq!(
        quiver::offline_io::read_file(&dir.path().join("data/orders.parquet"))
            .unwrap()
            .num_rows(),
        rows_before
    );
    // An offline-only push is checked the same way.
    let (status, _) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "orders_push",
            "df": {"user_id": [5], "amount": [1.0], "qty": [i64::MAX], "country": ["fr"],
                   "ts": ["2026-03-03T00:00:00Z"]},
            "to": "offline",
        }),
    )
    .await;
    assert_eq!(status, 422);

    // A computed column cannot be written directly: its inputs are what is sent.
    let (status, body) = post(
        &base,
        "/write-to-online-store",
        json!({
            "feature_view_name": "order_features",
            "df": {"user_id": [6], "qty": [1], "amount": [2.0], "country": ["fr"],
                   "amount_cents": [7], "event_timestamp": ["2026-03-03T00:00:00Z"]},
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`amount_cents` is computed by its expression"),
        "{body}"
    );
}

#[test]
fn expressions_are_checked_at_apply_with_the_expression_named() {
    let parse = |fields: &str| {
        let text = format!(
            "entities: [{{name: user, join_keys: [user_id]}}]\nsources: [{{name: s, path: s.parquet, timestamp_field: ts}}]\nfeature_views:\n  - name: v\n    entities: [user]\n    source: s\n    inputs: [{{name: amount, type: float64}}]\n    fields: {fields}\n"
        );
        quiver::core::Definitions::build_and_validate(&[(
            "f.yaml".into(),
            quiver::core::definitions::serialize::parse(&text).unwrap(),
        )])
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        parse("[{name: c, type: int64, expression: 'cast(amount * 100 as int64)'}]"),
        Ok(())
    );
    let err = parse("[{name: c, type: int64, expression: 'amount * 100'}]").unwrap_err();
    assert!(
        err.contains("field `c`: expression `amount * 100`: the result is a float, the field is int64; write `cast(... as int64)`"),
        "{err}"
    );
    let err = parse("[{name: c, type: float64, expression: 'amont * 2'}]").unwrap_err();
    assert!(
        err.contains("unknown column `amont`") && err.contains("declared: `amount`"),
        "{err}"
    );
    let err = parse("[{name: c, type: string, expression: 'lower(amount'}]").unwrap_err();
    assert!(err.contains("expected `,` or `)`"), "{err}");
    let err = parse("[{name: amount, type: float64}]").unwrap_err();
    assert!(err.contains("input `amount` is also a field"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_that_fails_online_appends_nothing_and_its_retry_appends_once() {
    use quiver::online_store::memory::MemoryStore;
    use quiver::online_store::{Faulty, OnlineStore};
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let faulty = Faulty::new(MemoryStore::new(Default::default()));
    let online: Arc<dyn OnlineStore> = Arc::new(faulty.clone());
    let project = quiver::Project::load(dir.path()).unwrap();
    let mut store = FeatureStore::with_stores(project, online, None)
        .await
        .unwrap();
    store.apply().await.unwrap();
    let rows = |v: Value| v.as_object().unwrap().clone();
    let df = rows(json!({
        "user_id": [1, 2], "amount": [1.5, 2.5], "qty": [1, 2], "country": ["fr", "de"],
        "ts": ["2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"],
    }));
    let to = quiver::push::PushTo::OnlineAndOffline;
    let parquet = dir.path().join("data/orders.parquet");
    let count = || quiver::offline_io::read_file(&parquet).unwrap().num_rows();

    faulty.fail_all(true);
    let err = quiver_server::feast_json::push(&store, "orders_push", &df, to)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), quiver::ErrorKind::Unavailable, "{err}");
    assert_eq!(count(), 1, "nothing appended when the online write failed");
    let staged: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("staged"))
        .collect();
    assert!(staged.is_empty(), "the staged file is removed: {staged:?}");

    faulty.fail_all(false);
    let report = quiver_server::feast_json::push(&store, "orders_push", &df, to)
        .await
        .unwrap();
    assert_eq!(report.offline_rows, 2);
    assert_eq!(report.views[0].written, 2);
    assert_eq!(count(), 1 + 2, "the retry appended its rows once");
}
