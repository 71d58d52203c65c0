//! `POST /push` (Feast's shape) against a real server: rows of a push source go to every view
//! that reads it online, to its batch source (Parquet rewritten, CSV appended), or both;
//! everything is checked before anything is written.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use quiver::FeatureStore;
use quiver_server::ServeOptions;
use serde_json::{Value, json};

const DEFS: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: events, path: data/events.parquet, timestamp_field: ts}
  - {name: events_push, type: push, batch_source: events}
  - {name: clicks_log, path: data/clicks.csv, timestamp_field: ts}
  - {name: clicks_push, type: push, batch_source: clicks_log}
feature_views:
  - name: activity
    entities: [user]
    source: events_push
    ttl: 3650d
    fields: [{name: clicks, type: int64, min: 0}, {name: score, type: float64}]
  - name: activity_score
    entities: [user]
    source: events_push
    ttl: 3650d
    fields: [{name: score, type: float64}]
  - name: clicks_7d
    entities: [user]
    source: clicks_push
    aggregations: [{column: n, functions: [sum], windows: [7d]}]
"#;

fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        "project: pushy\nonline_store: {type: memory}\n",
    )
    .unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![9])) as ArrayRef),
        ("clicks", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("score", Arc::new(Float64Array::from(vec![0.9])) as ArrayRef),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_767_225_600_000_000]).with_timezone("UTC"),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    quiver::offline_io::write_parquet(&dir.join("data/events.parquet"), &batch).unwrap();
    std::fs::write(
        dir.join("data/clicks.csv"),
        "user_id,n,ts\n9,3,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
}

fn parquet_rows(dir: &Path) -> usize {
    quiver::offline_io::read_file(&dir.join("data/events.parquet"))
        .unwrap()
        .num_rows()
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

/// `[(status, value)]` of one feature for the given users.
async fn read(base: &str, feature: &str, users: &[i64]) -> Vec<(String, Value)> {
    let (status, body) = post(
        base,
        "/get-online-features",
        json!({"features": [feature], "entities": {"user_id": users}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let col = &body["results"][1];
    (0..users.len())
        .map(|i| {
            (
                col["statuses"][i].as_str().unwrap().to_string(),
                col["values"][i].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_online_offline_and_both_with_everything_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    let server = common::spawn(store, ServeOptions::default()).await;
    let base = format!("http://{}", server.addr);

    // Online: both views reading the push source take their own columns.
    let (status, report) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "events_push",
            "df": {
                "user_id": [1, 2],
                "clicks": [5, 7],
                "score": [0.5, 0.75],
                "ts": ["2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"],
            },
            "to": "online",
        }),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["offline_rows"], 0);
    let written: Vec<(&str, u64)> = report["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["view"].as_str().unwrap(), v["written"].as_u64().unwrap()))
        .collect();
    assert_eq!(written, [("activity", 2), ("activity_score", 2)]);
    assert_eq!(
        read(&base, "activity:clicks", &[1, 2]).await,
        [
            ("PRESENT".to_string(), json!(5)),
            ("PRESENT".to_string(), json!(7))
        ]
    );
    assert_eq!(
        read(&base, "activity_score:score", &[2]).await,
        [("PRESENT".to_string(), json!(0.75))]
    );
    assert_eq!(
        parquet_rows(dir.path()),
        1,
        "online only: the batch file is untouched"
    );

    // A row breaking a constraint of one view: nothing is written, to any view.
    let (status, body) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "events_push",
            "df": {"user_id": [3], "clicks": [-1], "score": [0.1], "ts": ["2026-02-02T00:00:00Z"]},
            "to": "online_and_offline",
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clicks"),
        "{body}"
    );
    assert_eq!(
        read(&base, "activity_score:score", &[3]).await[0].0,
        "NOT_FOUND"
    );
    assert_eq!(parquet_rows(dir.path()), 1);

    // Offline: appended to the Parquet batch source, served after a materialization.
    let (status, report) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "events_push",
            "df": {"user_id": [4, 5], "clicks": [40, 50], "score": [4.0, 5.0],
                   "ts": ["2026-02-03T00:00:00Z", "2026-02-03T00:00:00Z"]},
            "to": "offline",
        }),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["offline_rows"], 2);
    assert_eq!(report["views"], json!([]));
    assert_eq!(parquet_rows(dir.path()), 3);
    assert_eq!(read(&base, "activity:clicks", &[4]).await[0].0, "NOT_FOUND");
    let (status, body) = post(&base, "/materialize", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read(&base, "activity:clicks", &[4, 9]).await,
        [
            ("PRESENT".to_string(), json!(40)),
            ("PRESENT".to_string(), json!(1))
        ]
    );

    // Both at once.
    let (status, report) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "events_push",
            "df": {"user_id": [6], "clicks": [60], "score": [6.0], "ts": ["2026-02-04T00:00:00Z"]},
            "to": "online_and_offline",
        }),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["offline_rows"], 1);
    assert_eq!(parquet_rows(dir.path()), 4);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("quiver_push_offline_rows_total{source=\"events_push\"} 3"),
        "{metrics}"
    );
    assert_eq!(read(&base, "activity:clicks", &[6]).await[0].1, json!(60));

    // A value that does not fit the batch file's column: refused, the file unchanged.
    let (status, body) = post(
        &base,
        "/push",
        json!({
            "push_source_name": "events_push",
            "df": {"user_id": [7], "clicks": [1], "score": ["high"], "ts": ["2026-02-05T00:00:00Z"]},
            "to": "offline",
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(parquet_rows(dir.path()), 4);

    // A view computed from the push source takes the rows online as window events (its
    // window seeded from the batch source: the 3 clicks of 2026-01-01 are more than 7 days
    // old, so the sum is the pushed 2). The event is newer than the materialization above,
    // whose record (evaluated at its own time) it replaces.
    let now = quiver::core::value::format_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64,
    );
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "clicks_push", "df": {"user_id": [9], "n": [2], "ts": [now]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["views"][0]["view"], "clicks_7d");
    assert_eq!(body["views"][0]["written"], 1);
    assert_eq!(
        read(&base, "clicks_7d:n__sum__7d", &[9]).await,
        [("PRESENT".to_string(), json!(2.0))]
    );
    // Offline it works: a line appended to the CSV batch source.
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "clicks_push", "to": "offline",
               "df": {"user_id": [1], "n": [2], "ts": ["2026-02-05T00:00:00Z"]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let csv = std::fs::read_to_string(dir.path().join("data/clicks.csv")).unwrap();
    assert_eq!(
        csv,
        "user_id,n,ts\n9,3,2026-01-01T00:00:00Z\n1,2,2026-02-05T00:00:00Z\n"
    );

    // Wrong names are named.
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "nope", "df": {"user_id": [1]}}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("push sources: `clicks_push`, `events_push`"),
        "{body}"
    );
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "events", "df": {"user_id": [1]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not a push source"),
        "{body}"
    );
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "events_push", "df": {"user_id": [1]}, "to": "everywhere"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`everywhere`"),
        "{body}"
    );
}

#[test]
fn a_push_source_needs_a_batch_source_that_exists() {
    let parse = |text: &str| {
        quiver::core::Definitions::build_and_validate(&[(
            "f.yaml".into(),
            quiver::core::definitions::serialize::parse(text).unwrap(),
        )])
    };
    let err = parse("sources: [{name: p, type: push, batch_source: missing}]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `batch_source`: unknown source `missing`"),
        "{err}"
    );
    let err = parse("sources: [{name: p, type: push}]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`batch_source` is required"), "{err}");
    let err = parse(
        "sources: [{name: b, path: b.parquet, timestamp_field: ts}, {name: p, type: push, batch_source: b, path: x.parquet}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("a push source has no `path`"), "{err}");
    let defs = parse(
        "sources: [{name: b, path: b.parquet, timestamp_field: ts}, {name: p, type: push, batch_source: b}]\n",
    )
    .unwrap();
    let p = &defs.sources["p"];
    assert_eq!(
        (p.path.as_str(), p.timestamp_field.as_str()),
        ("b.parquet", "ts")
    );
    assert_eq!(p.batch_source.as_deref(), Some("b"));
}

/// A PostgreSQL table as the batch source: pushed rows are inserted in one statement, typed by
/// the table; a value that does not fit refuses the whole batch.
#[tokio::test(flavor = "multi_thread")]
async fn push_offline_into_a_postgres_table() {
    let pg = quiver_test_utils::PostgresServer::start();
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE events (user_id bigint, clicks bigint, ts timestamptz);
             INSERT INTO events VALUES (9, 1, '2026-01-01T00:00:00Z');",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("features")).unwrap();
    std::fs::write(
        dir.path().join("quiver.yaml"),
        "project: pushy\nonline_store: {type: memory}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("features/defs.yaml"),
        format!(
            r#"
entities: [{{name: user, join_keys: [user_id]}}]
sources:
  - {{name: events, type: postgres, table: public.events, url: "{url}", timestamp_field: ts}}
  - {{name: events_push, type: push, batch_source: events}}
  - {{name: recent, type: postgres, query: "SELECT * FROM events", url: "{url}", timestamp_field: ts}}
  - {{name: recent_push, type: push, batch_source: recent}}
feature_views:
  - {{name: activity, entities: [user], source: events_push, ttl: 3650d, fields: [{{name: clicks, type: int64}}]}}
  - {{name: recent_activity, entities: [user], source: recent_push, ttl: 3650d, fields: [{{name: clicks, type: int64}}]}}
"#,
            url = pg.url()
        ),
    )
    .unwrap();
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    let server = common::spawn(store, ServeOptions::default()).await;
    let base = format!("http://{}", server.addr);
    let count = async || -> i64 {
        client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(count().await, 1);

    let (status, report) = post(
        &base,
        "/push",
        json!({"push_source_name": "events_push", "to": "online_and_offline",
               "df": {"user_id": [1, 2], "clicks": [10, 20], "ts": ["2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"]}}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["offline_rows"], 2);
    assert_eq!(count().await, 3);
    assert_eq!(read(&base, "activity:clicks", &[2]).await[0].1, json!(20));

    // Not a number: PostgreSQL refuses the batch, nothing is inserted, nothing written online.
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "events_push", "to": "offline",
               "df": {"user_id": [3, 4], "clicks": [30, "many"], "ts": ["2026-02-02T00:00:00Z", "2026-02-02T00:00:00Z"]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not fit"),
        "{body}"
    );
    assert_eq!(count().await, 3);
    // An unknown column is named.
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "events_push", "to": "offline",
               "df": {"user_id": [3], "clicks": [30], "bogus": [1], "ts": ["2026-02-02T00:00:00Z"]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no column `bogus`"),
        "{body}"
    );
    // The pushed rows are what materialization reads.
    let (status, body) = post(&base, "/materialize", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read(&base, "activity:clicks", &[1, 9]).await,
        [
            ("PRESENT".to_string(), json!(10)),
            ("PRESENT".to_string(), json!(1))
        ]
    );
    // A query cannot take rows.
    let (status, body) = post(
        &base,
        "/push",
        json!({"push_source_name": "recent_push", "to": "offline",
               "df": {"user_id": [3], "clicks": [30], "ts": ["2026-02-02T00:00:00Z"]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rows can only be appended to a `table`"),
        "{body}"
    );
}
