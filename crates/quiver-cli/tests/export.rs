//! Exactly once across crashes of the exporter process: `quiver export` aborted right after a
//! sink commit (before acknowledging it) and SIGKILLed at a random moment, then run to the end;
//! every one of 100k records is in the offline store exactly once. Redis (durable) → Parquet and
//! the embedded store → PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use arrow_array::cast::AsArray;
use quiver::FeatureStore;
use quiver_test_utils::{PostgresServer, RedisServer};
use serde_json::json;

const RECORDS: usize = 100_000;

fn quiver(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project").arg(project).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quiver")
}

fn write_project(dir: &Path, online: &str, offline: &str) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        format!(
            "project: crash
online_store: {online}
offline_store: {offline}
records:
  namespaces:
    - name: events
      fields: {{user_id: int64, amount: float64}}
  export: {{batch_size: 10000, attempts: 3, backoff: 10ms, lock_lease: 1s}}
"
        ),
    )
    .unwrap();
}

async fn accept_all(dir: &Path) {
    let store = FeatureStore::open(dir).await.unwrap();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                (
                    None,
                    json!({"id": format!("e{i}"), "user_id": i % 1000, "amount": *i as f64}),
                )
            })
            .collect();
        store.put_records("events", batch).await.unwrap();
    }
}

async fn assert_exported_once(dir: &Path) {
    let store = FeatureStore::open(dir).await.unwrap();
    let table = store.records().namespace("events").unwrap().table.clone();
    let offline = store.offline_store().await.unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for b in offline.records().read_all(&table).await.unwrap() {
        for id in b.column(0).as_string::<i32>().iter() {
            *counts.entry(id.unwrap().to_string()).or_default() += 1;
        }
    }
    let duplicated = counts.values().filter(|&&c| c > 1).count();
    let missing = (0..RECORDS)
        .filter(|i| !counts.contains_key(&format!("e{i}")))
        .count();
    assert_eq!((duplicated, missing), (0, 0), "exactly once");
    assert_eq!(counts.len(), RECORDS);
    let stats = store.queue_stats().await.unwrap();
    assert!(stats.iter().all(|(_, s)| s.length == 0), "{stats:?}");
}

/// Aborts after the 3rd commit, SIGKILLs a run mid-way, then finishes.
fn crash_and_finish(dir: &Path) {
    let out = quiver(
        dir,
        &["export", "--namespace", "events"],
        &[("QUIVER_FAULT_ABORT_AFTER_COMMITS", "3")],
    );
    assert!(!out.status.success(), "the injected abort ends the process");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborting after a commit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(dir)
        .args(["export", "--namespace", "events"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();

    // The killed exporters' lock frees itself within its lease (1 s here); until then a run
    // says another exporter holds it.
    let started = std::time::Instant::now();
    let (out, stdout) = loop {
        let out = quiver(dir, &["export", "--json"], &[]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() || started.elapsed() > Duration::from_secs(10) {
            break (out, stdout);
        }
        assert!(
            stdout.contains("another exporter holds the lock"),
            "{stdout}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let events = report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "events")
        .unwrap()
        .clone();
    assert_eq!(events["remaining"], 0, "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_parquet_exactly_once_across_exporter_crashes() {
    let redis = RedisServer::start_durable();
    let dir = tempfile::tempdir().unwrap();
    write_project(
        dir.path(),
        &format!("{{type: redis, url: \"{}\"}}", redis.url()),
        "{type: parquet, path: offline}",
    );
    accept_all(dir.path()).await;
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || crash_and_finish(&d))
        .await
        .unwrap();
    assert_exported_once(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_to_postgres_exactly_once_across_exporter_crashes() {
    let pg = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(
        dir.path(),
        "{type: embedded}",
        &format!("{{type: postgres, url: \"{}\"}}", pg.url()),
    );
    accept_all(dir.path()).await;
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || crash_and_finish(&d))
        .await
        .unwrap();
    assert_exported_once(dir.path()).await;
}
