//! Embedded-store behaviour beyond the conformance suite: the file on disk (where it goes, that
//! it survives a reopen, that an incompatible one is moved aside) and the expiry sweep.

use std::path::Path;
use std::time::Duration;

use quiver_core::{EntityKey, KeyValue, Record, Value};
use quiver_online::config::{EmbeddedConfig, OnlineStoreConfig};
use quiver_online::embedded::EmbeddedStore;
use quiver_online::{OnlineStoreRead, OnlineStoreWrite, ViewTable, now_ns};

fn table(ttl: Option<Duration>) -> ViewTable {
    ViewTable {
        project: "shop".into(),
        view: "user".into(),
        version: 1,
        types: vec!["int64".parse().unwrap()].into(),
        ttl,
    }
}

fn key(k: i64) -> EntityKey {
    EntityKey::single(KeyValue::Int(k))
}

fn row(k: i64) -> (EntityKey, Record) {
    (
        key(k),
        Record {
            event_ts: now_ns(),
            created_ts: None,
            values: vec![Value::Int64(k)],
        },
    )
}

fn config(path: &str) -> EmbeddedConfig {
    EmbeddedConfig {
        path: path.into(),
        ..EmbeddedConfig::default()
    }
}

/// Names of files in `dir` that were moved aside.
fn moved_aside(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".incompatible-"))
        .collect()
}

#[tokio::test]
async fn open_resolves_the_path_from_the_project_dir_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = OnlineStoreConfig::Embedded(EmbeddedConfig::default());
    let store = quiver_online::open(&cfg, dir.path()).await.unwrap();
    assert_eq!(store.kind(), "embedded");
    assert!(dir.path().join(".quiver/online.redb").is_file());
    store.write(&table(None), &[row(1), row(2)]).await.unwrap();
    assert!(store.ping().await.is_ok());
    // Dropping the last handle closes the file (and stops the sweep), so it can be reopened.
    drop(store);
    let store = quiver_online::open(&cfg, dir.path()).await.unwrap();
    let got = store
        .read(&table(None), &[key(1), key(2), key(3)])
        .await
        .unwrap();
    assert_eq!(got.iter().filter(|r| r.is_some()).count(), 2);
    assert!(moved_aside(&dir.path().join(".quiver")).is_empty());
}

#[tokio::test]
async fn a_second_open_in_one_process_is_an_error_not_a_move() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    let err = match EmbeddedStore::open(&config("online.redb"), dir.path()).await {
        Ok(_) => panic!("opened a locked file twice"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("already open"), "{err}");
    assert!(err.contains("online.redb"), "{err}");
    assert!(moved_aside(dir.path()).is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    let store = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    store.write(&table(None), &[row(1)]).await.unwrap();
    let aside = moved_aside(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).unwrap(),
        vec![0xAB; 8192],
        "the old file is kept as it was"
    );
}

#[tokio::test]
async fn another_schema_version_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    {
        // What a future build would write: the same tables, schema version 2.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema_version", 2)
            .unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("records"))
            .unwrap()
            .insert("quiver:shop:user:v1:1", &[0u8; 30][..])
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    assert_eq!(moved_aside(dir.path()).len(), 1);
    // The fresh file is empty and usable.
    assert_eq!(
        store.read(&table(None), &[key(1)]).await.unwrap(),
        vec![None]
    );
    store.write(&table(None), &[row(1)]).await.unwrap();
    drop(store);

    // And it is now compatible: reopening moves nothing.
    let _store = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    assert_eq!(moved_aside(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_foreign_redb_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<u64, u64>::new("something_else"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let _store = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    assert_eq!(moved_aside(dir.path()).len(), 1);
}

#[tokio::test]
async fn the_sweep_deletes_only_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&config("online.redb"), dir.path())
        .await
        .unwrap();
    let short = table(Some(Duration::from_millis(200)));
    let long = ViewTable {
        view: "other".into(),
        ..table(Some(Duration::from_secs(600)))
    };
    let forever = ViewTable {
        view: "forever".into(),
        ..table(None)
    };
    store
        .write(&short, &[row(1), row(2), row(3)])
        .await
        .unwrap();
    store.write(&long, &[row(1)]).await.unwrap();
    store.write(&forever, &[row(1)]).await.unwrap();
    assert_eq!(store.sweep_expired().await.unwrap(), 0);

    tokio::time::sleep(Duration::from_millis(300)).await;
    // Hidden from reads before the sweep, still on disk.
    assert_eq!(store.read(&short, &[key(1)]).await.unwrap(), vec![None]);
    assert!(store.raw("quiver:shop:user:v1:1").await.unwrap().is_some());

    assert_eq!(store.sweep_expired().await.unwrap(), 3);
    assert!(store.raw("quiver:shop:user:v1:1").await.unwrap().is_none());
    assert!(store.read(&long, &[key(1)]).await.unwrap()[0].is_some());
    assert!(store.read(&forever, &[key(1)]).await.unwrap()[0].is_some());
    assert_eq!(store.sweep_expired().await.unwrap(), 0);
}
