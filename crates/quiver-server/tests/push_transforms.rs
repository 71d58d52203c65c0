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

const WINDOW_DEFS: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: tx, path: data/tx.csv, timestamp_field: ts}
  - {name: tx_push, type: push, batch_source: tx}
feature_views:
  - name: spend
    entities: [user]
    source: tx_push
    ttl: 3650d
    aggregations:
      - {column: amount, functions: [sum, count, mean, min, max, std, last], windows: [1h, 1d]}
    time_series:
      - {column: amount, returns: [1], momentum: [2], volatility: [2]}
"#;

/// One push of `(user, "HH:MM", amount)` events on 2026-03-01, to both sides.
async fn push_events(store: &FeatureStore, events: &[(i64, &str, Option<f64>)]) -> Value {
    let df = json!({
        "user_id": events.iter().map(|e| e.0).collect::<Vec<_>>(),
        "ts": events.iter().map(|e| format!("2026-03-01T{}:00Z", e.1)).collect::<Vec<_>>(),
        "amount": events.iter().map(|e| e.2).collect::<Vec<_>>(),
    });
    let report = quiver_server::feast_json::push(
        store,
        "tx_push",
        df.as_object().unwrap(),
        quiver::push::PushTo::OnlineAndOffline,
    )
    .await
    .unwrap();
    serde_json::to_value(report).unwrap()
}

/// As a number (ints widened), `None` for null.
fn number(v: &quiver::core::Value) -> Option<f64> {
    match v {
        quiver::core::Value::Null => None,
        other => Some(other.as_f64().unwrap()),
    }
}

/// Checks that the online features of each user equal `quiver build`'s row (the offline
/// engine's history over the batch source) for that user's latest event.
async fn assert_online_equals_build(store: &FeatureStore, users: &[i64]) {
    use quiver::core::{EntityKey, KeyValue};
    let served = store.view("spend").unwrap().clone();
    let view = served.definition.clone();
    let resolved = store.source_of(&view).unwrap().clone();
    let schema = quiver::offline_store::store::table_schema(&view);
    let history = quiver::offline_store::engine::history(
        &resolved.path,
        &resolved.source,
        &view,
        &schema,
        None,
        None,
    )
    .unwrap()
    .batch;
    let ids = history.column(0).as_primitive::<Int64Type>();
    let times = history
        .column(1)
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    for &user in users {
        // The user's latest event; among equal times, the later row.
        let row = (0..history.num_rows())
            .filter(|&r| ids.value(r) == user)
            .max_by_key(|&r| (times.value(r), r))
            .unwrap();
        let key = EntityKey(vec![KeyValue::Int(user)]);
        let stored = store
            .online_store()
            .read(&served.table, &[key])
            .await
            .unwrap()
            .remove(0)
            .expect("an online record");
        assert_eq!(stored.event_ts, times.value(row), "user {user}: event time");
        for (i, field) in view.fields.iter().enumerate() {
            let column = history.column_by_name(&field.name).unwrap();
            let built = (!column.is_null(row)).then(|| match column.data_type() {
                arrow_schema::DataType::Int64 => {
                    column.as_primitive::<Int64Type>().value(row) as f64
                }
                _ => column.as_primitive::<Float64Type>().value(row),
            });
            let online = number(&stored.values[i]);
            let same = match (online, built) {
                (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
                (a, b) => a == b,
            };
            assert!(
                same,
                "user {user}: `{}` online {online:?}, build {built:?}",
                field.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_events_update_windows_incrementally_as_build_computes_them() {
    use quiver::online_store::memory::MemoryStore;
    use quiver::online_store::{Faulty, OnlineStore};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("features")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("quiver.yaml"), "project: windows\n").unwrap();
    std::fs::write(dir.path().join("features/defs.yaml"), WINDOW_DEFS).unwrap();
    // History already in the batch source: the first push of user 1 seeds its window from it.
    std::fs::write(
        dir.path().join("data/tx.csv"),
        "user_id,ts,amount\n1,2026-03-01T09:00:00Z,5\n1,2026-03-01T09:30:00Z,7\n9,2026-03-01T08:00:00Z,1\n",
    )
    .unwrap();
    let faulty = Faulty::new(MemoryStore::new(Default::default()));
    let online: Arc<dyn OnlineStore> = Arc::new(faulty.clone());
    let project = quiver::Project::load(dir.path()).unwrap();
    let mut store = FeatureStore::with_stores(project, online, None)
        .await
        .unwrap();
    store.apply().await.unwrap();

    let report = push_events(&store, &[(1, "10:00", Some(10.0)), (2, "10:00", Some(2.5))]).await;
    assert_eq!(report["views"][0]["view"], "spend");
    assert_eq!(report["views"][0]["written"], 2);
    assert_online_equals_build(&store, &[1, 2]).await;
    // The 09:00 event is exactly 1h before 10:00: out of the 1h window, in the 1d one.
    let served = store.view("spend").unwrap().clone();
    let field = |name: &str| served.definition.field_index(name).unwrap();
    let one = quiver::core::EntityKey(vec![quiver::core::KeyValue::Int(1)]);
    let read_one = || async {
        store
            .online_store()
            .read(&served.table, std::slice::from_ref(&one))
            .await
            .unwrap()
            .remove(0)
            .unwrap()
    };
    let r = read_one().await;
    assert_eq!(number(&r.values[field("amount__sum__1h")]), Some(17.0));
    assert_eq!(number(&r.values[field("amount__sum__1d")]), Some(22.0));

    // A null value, equal times, a new user.
    push_events(
        &store,
        &[
            (1, "10:20", None),
            (2, "10:05", Some(4.0)),
            (2, "10:05", Some(6.0)),
            (3, "11:00", Some(1.0)),
        ],
    )
    .await;
    assert_online_equals_build(&store, &[1, 2, 3]).await;
    // A late event: user 1's latest stays 10:20, its 1h window (09:20, 10:20] now counts the
    // 09:50 event beside 09:30 and 10:00 (7 + 100 + 10; the 10:20 value is null).
    push_events(&store, &[(1, "09:50", Some(100.0))]).await;
    assert_online_equals_build(&store, &[1]).await;
    assert_eq!(
        number(&read_one().await.values[field("amount__sum__1h")]),
        Some(117.0)
    );
    // Hours later: the 1h window has emptied, the 1d window has not; series move on.
    push_events(&store, &[(2, "12:00", Some(3.0)), (1, "23:00", Some(0.5))]).await;
    assert_online_equals_build(&store, &[1, 2]).await;

    // Each push wrote online twice (the features, then the window state), nothing else.
    assert_eq!(faulty.calls().writes, 2 * 4);
    // A push failing online changes neither side; its retry counts every event once.
    faulty.fail_all(true);
    let df = json!({"user_id": [2], "ts": ["2026-03-01T12:30:00Z"], "amount": [50.0]});
    let err = quiver_server::feast_json::push(
        &store,
        "tx_push",
        df.as_object().unwrap(),
        quiver::push::PushTo::OnlineAndOffline,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), quiver::ErrorKind::Unavailable);
    faulty.fail_all(false);
    push_events(&store, &[(2, "12:30", Some(50.0))]).await;
    assert_online_equals_build(&store, &[2]).await;

    // Incremental, not recomputed from the source: with the batch file emptied, user 3's next
    // event still meets its 11:00 event in the window state.
    std::fs::write(dir.path().join("data/tx.csv"), "user_id,ts,amount\n").unwrap();
    push_events(&store, &[(3, "11:30", Some(2.0))]).await;
    let three = quiver::core::EntityKey(vec![quiver::core::KeyValue::Int(3)]);
    let r = store
        .online_store()
        .read(&served.table, &[three])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(number(&r.values[field("amount__sum__1h")]), Some(3.0));
    assert_eq!(number(&r.values[field("amount__count__1h")]), Some(2.0));

    // The window state is served with its view: `prune-online` leaves it.
    let versions = store.online_versions().await.unwrap();
    let state = versions.iter().find(|v| v.view == "spend#window").unwrap();
    assert!(state.served && state.keys == 3, "{versions:?}");
    let pruned = store.prune_online(Some(0), false).await.unwrap();
    assert!(pruned.removed.is_empty(), "{pruned:?}");
}
