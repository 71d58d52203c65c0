//! Records and predictions through the library: checked on write, cached, queued, and exported
//! exactly once into each offline store, also when the sink fails part way and a later run
//! resumes.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use quiver::{ErrorKind, ExportOptions, FeatureStore};
use quiver_test_utils::{PostgresServer, RedisServer};
use serde_json::json;

fn write_project(dir: &Path, online: &str, offline: &str) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        format!(
            "project: rec
online_store: {online}
offline_store: {offline}
records:
  namespaces:
    - name: transactions
      id_field: transaction_id
      time_field: ts
      fields: {{amount: float64, user_id: int64, ts: timestamp}}
      required: [amount]
  export: {{batch_size: 1000, attempts: 2, backoff: 10ms}}
"
        ),
    )
    .unwrap();
}

/// Every exported id with how many times it appears.
async fn exported(store: &FeatureStore, namespace: &str) -> HashMap<String, usize> {
    let ns = store.records().namespace(namespace).unwrap().clone();
    let offline = store.offline_store().await.unwrap();
    let batches: Vec<RecordBatch> = offline.records().read_all(&ns.table).await.unwrap();
    let mut out = HashMap::new();
    for b in &batches {
        assert_eq!(
            b.schema(),
            ns.table.schema,
            "exported rows have the table schema"
        );
        let ids = b.column(0).as_string::<i32>();
        for id in ids.iter() {
            *out.entry(id.unwrap().to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn assert_exactly_once(counts: &HashMap<String, usize>, ids: impl Iterator<Item = String>) {
    let mut expected = 0;
    for id in ids {
        expected += 1;
        assert_eq!(
            counts.get(&id),
            Some(&1),
            "record `{id}` exported {:?} times",
            counts.get(&id)
        );
    }
    assert_eq!(
        counts.len(),
        expected,
        "no record exported that was not accepted"
    );
}

async fn records_and_predictions(store: &FeatureStore) {
    // One record: cached, readable, deletable.
    let r = store
        .put_record(
            "transactions",
            "t-1",
            json!({"amount": 12.5, "user_id": 42, "ts": "2026-12-01T10:00:00Z", "note": "kept"}),
        )
        .await
        .unwrap();
    assert_eq!(r.id, "t-1");
    let got = store
        .get_record("transactions", "t-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.record["note"], "kept");
    assert_eq!(got.record["transaction_id"], "t-1");
    assert_eq!(got.time, 1_796_119_200_000_000_000);

    // Bad input names the field and writes nothing.
    let before = store.queue_stats().await.unwrap();
    let err = store
        .put_records(
            "transactions",
            vec![
                (None, json!({"transaction_id": "ok", "amount": 1})),
                (None, json!({"transaction_id": "bad", "amount": "lots"})),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("record 1: field `amount`"),
        "{err}"
    );
    let err = store
        .put_record("transactions", "t-2", json!({"user_id": 1}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("field `amount` is required"),
        "{err}"
    );
    let err = store.put_record("nope", "x", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("transactions"), "{err}");
    assert_eq!(
        store.queue_stats().await.unwrap(),
        before,
        "a refused batch queues nothing"
    );

    // Predictions: the latest per model and entity.
    for (i, score) in [0.1, 0.9].iter().enumerate() {
        store
            .put_prediction(json!({
                "model": "fraud", "model_version": "3", "entity": {"user_id": 42},
                "request_id": format!("req-{i}"), "prediction": {"score": score},
                "decision": "review",
            }))
            .await
            .unwrap();
    }
    let latest = store
        .latest_prediction(
            "fraud",
            &json!({"user_id": "42"}).as_object().unwrap().clone(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.record["prediction"]["score"], 0.9);
    assert_eq!(latest.id, "req-1");
    let err = store
        .put_prediction(json!({"model": "fraud"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("field `entity`"), "{err}");

    // Deleting the cached copy does not unqueue it.
    assert!(store.delete_record("transactions", "t-1").await.unwrap());
    assert!(
        store
            .get_record("transactions", "t-1")
            .await
            .unwrap()
            .is_none()
    );
}

/// Accepts `n` records in batches of 500.
async fn accept(store: &FeatureStore, from: usize, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| {
                ids.push(format!("tx-{i}"));
                (
                    None,
                    json!({"transaction_id": format!("tx-{i}"), "amount": *i as f64, "user_id": i % 97}),
                )
            })
            .collect();
        store.put_records("transactions", batch).await.unwrap();
    }
    ids
}

#[tokio::test]
async fn embedded_and_parquet_export_exactly_once_and_resume_after_a_sink_failure() {
    let dir = tempfile::tempdir().unwrap();
    write_project(
        dir.path(),
        "{type: embedded}",
        "{type: parquet, path: offline}",
    );
    let store = FeatureStore::open(dir.path()).await.unwrap();
    records_and_predictions(&store).await;
    let mut ids = accept(&store, 0, 5_000).await;
    ids.push("t-1".into());

    // Make the sink fail: a plain file where today's day directory must go (the records'
    // time is when they were accepted).
    let day_dir = dir.path().join(format!(
        "offline/records/rec__records__transactions/day={}",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    std::fs::create_dir_all(day_dir.parent().unwrap()).unwrap();
    std::fs::write(&day_dir, b"in the way").unwrap();
    let report = store
        .export(&ExportOptions {
            namespaces: vec!["transactions".into()],
        })
        .await
        .unwrap();
    let tx = &report.namespaces[0];
    assert!(tx.error.is_some(), "{report:?}");
    assert_eq!(tx.exported, 0);
    assert_eq!(tx.retries, 1, "2 attempts: one retry");
    assert_eq!(tx.remaining, 5_001, "a failed batch stays queued");
    assert!(report.failed());

    std::fs::remove_file(&day_dir).unwrap();
    let report = store.export(&ExportOptions::default()).await.unwrap();
    assert!(!report.failed(), "{report:?}");
    let tx = report
        .namespaces
        .iter()
        .find(|n| n.namespace == "transactions")
        .unwrap();
    assert_eq!((tx.exported, tx.remaining, tx.batches), (5_001, 0, 6));
    assert_exactly_once(&exported(&store, "transactions").await, ids.into_iter());
    let predictions = exported(&store, "predictions").await;
    assert_eq!(predictions.len(), 2, "{predictions:?}");

    // Nothing left: a second run exports nothing.
    let again = store.export(&ExportOptions::default()).await.unwrap();
    assert_eq!(again.exported(), 0);
}

#[tokio::test]
async fn redis_and_postgres_export_exactly_once_and_resume_after_postgres_stops() {
    let redis = RedisServer::start_durable();
    let mut pg = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(
        dir.path(),
        &format!("{{type: redis, url: \"{}\"}}", redis.url()),
        &format!("{{type: postgres, url: \"{}\"}}", pg.url()),
    );
    let store = FeatureStore::open(dir.path()).await.unwrap();
    records_and_predictions(&store).await;
    let mut ids = accept(&store, 0, 3_000).await;
    ids.push("t-1".into());

    // A first run exports part; then PostgreSQL dies.
    let first = store
        .export(&ExportOptions {
            namespaces: vec!["predictions".into()],
        })
        .await
        .unwrap();
    assert_eq!(first.exported(), 2);
    pg.kill();
    let failed = store
        .export(&ExportOptions {
            namespaces: vec!["transactions".into()],
        })
        .await;
    match failed {
        // The pool may notice at connect time or at commit time.
        Ok(report) => {
            assert!(report.failed(), "{report:?}");
            assert_eq!(report.namespaces[0].remaining, 3_001);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
    }
    pg.restart();
    let mut report = store.export(&ExportOptions::default()).await;
    for _ in 0..20 {
        // The pool's connections died with the server; the first calls may still fail.
        if matches!(&report, Ok(r) if !r.failed()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        report = store.export(&ExportOptions::default()).await;
    }
    let report = report.unwrap();
    assert!(!report.failed(), "{report:?}");
    assert_exactly_once(&exported(&store, "transactions").await, ids.into_iter());
    let stats = store.queue_stats().await.unwrap();
    assert!(
        stats.iter().all(|(_, s)| s.length == 0 && s.pending == 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_with_a_spill_file_accepts_and_replays_in_order() {
    let mut redis = RedisServer::start_durable();
    let dir = tempfile::tempdir().unwrap();
    write_project(
        dir.path(),
        &format!(
            "{{type: redis, url: \"{}\", connect_timeout: 300ms, command_timeout: 300ms}}",
            redis.url()
        ),
        "{type: parquet, path: offline}",
    );
    let mut config = std::fs::read_to_string(dir.path().join("quiver.yaml")).unwrap();
    config.push_str("  spill: {path: spill/records.jsonl}\n");
    std::fs::write(dir.path().join("quiver.yaml"), config).unwrap();
    let store = FeatureStore::open(dir.path()).await.unwrap();

    let before = accept(&store, 0, 1_000).await;
    redis.kill();
    let r = store
        .put_record("transactions", "during-1", json!({"amount": 1}))
        .await
        .unwrap();
    assert_eq!(r.position, None, "spilled, not queued yet");
    let r = store
        .put_records(
            "transactions",
            vec![
                (None, json!({"transaction_id": "during-2", "amount": 2})),
                (None, json!({"transaction_id": "during-3", "amount": 3})),
            ],
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.position.is_none()));
    let spill = std::fs::read_to_string(dir.path().join("spill/records.jsonl")).unwrap();
    assert_eq!(spill.lines().count(), 2, "one fsynced line per call");
    // Bad input is still refused, not spilled.
    let err = store
        .put_record("transactions", "bad", json!({"amount": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    assert!(
        store.replay_spill().await.unwrap(),
        "Redis is down: the spill stays"
    );
    redis.restart();
    let mut remaining = true;
    for _ in 0..30 {
        match store.replay_spill().await {
            Ok(false) => {
                remaining = false;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert!(!remaining, "the spill drains once Redis is back");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("spill/records.jsonl")).unwrap(),
        ""
    );
    // Records after the outage queue behind the replayed ones.
    let after = store
        .put_record("transactions", "after-1", json!({"amount": 4}))
        .await
        .unwrap();
    assert!(after.position.is_some());

    let report = store.export(&ExportOptions::default()).await.unwrap();
    assert!(!report.failed(), "{report:?}");
    let mut ids = before;
    ids.extend(["during-1", "during-2", "during-3", "after-1"].map(String::from));
    assert_exactly_once(&exported(&store, "transactions").await, ids.into_iter());
    // In acceptance order: the spilled records sit between the ones before and after.
    let ns = store.records().namespace("transactions").unwrap().clone();
    let offline = store.offline_store().await.unwrap();
    let mut order = Vec::new();
    for b in offline.records().read_all(&ns.table).await.unwrap() {
        let accepted = b
            .column(2)
            .as_primitive::<arrow_array::types::TimestampNanosecondType>();
        let ids = b.column(0).as_string::<i32>();
        for (id, at) in ids.iter().zip(accepted.iter()) {
            order.push((at.unwrap(), id.unwrap().to_string()));
        }
    }
    order.sort();
    let pos = |id: &str| order.iter().position(|(_, i)| i == id).unwrap();
    assert!(pos("tx-999") < pos("during-1"));
    assert!(pos("during-3") < pos("after-1"));
}
