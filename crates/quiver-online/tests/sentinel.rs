//! A Sentinel-managed primary through `online_store: {type: redis, sentinel: {...}}`: the store
//! finds the primary through real `redis-server --sentinel` processes, and after the primary is
//! SIGKILLed and Sentinel promotes its replica, reads and writes resume on the new primary
//! without restarting the store (the gap is printed).

use std::time::{Duration, Instant};

use quiver_core::{EntityKey, KeyValue, Record, Value};
use quiver_online::config::RedisConfig;
use quiver_online::redis::RedisStore;
use quiver_online::{OnlineStoreRead, OnlineStoreWrite, ViewTable, now_ns};
use quiver_test_utils::RedisSentinel;
use quiver_test_utils::sentinel::MASTER;

fn table() -> ViewTable {
    ViewTable {
        project: "sentinel".into(),
        view: "v".into(),
        version: 1,
        types: vec!["int64".parse().unwrap()].into(),
        ttl: None,
    }
}

fn row(i: i64) -> (EntityKey, Record) {
    (
        EntityKey::single(KeyValue::Int(i)),
        Record {
            event_ts: now_ns(),
            created_ts: None,
            values: vec![Value::Int64(i)],
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover() {
    let mut setup = RedisSentinel::start(1000);
    let config: RedisConfig = serde_json::from_value(serde_json::json!({
        "sentinel": {"master": MASTER, "nodes": setup.sentinel_urls()},
        "connect_timeout": "1s",
        "command_timeout": "300ms",
    }))
    .unwrap();
    let store = RedisStore::connect(&config).await.unwrap();
    let t = table();
    let rows: Vec<_> = (0..100).map(row).collect();
    store.write(&t, &rows).await.unwrap();
    let keys: Vec<EntityKey> = rows.iter().map(|(k, _)| k.clone()).collect();
    assert!(
        store
            .read(&t, &keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );

    let old = setup.primary.port();
    // Let the replica catch up with the writes above before the primary dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    setup.primary.kill();
    let (mut failed, mut first_ok_after) = (0usize, None);
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        match store.read(&t, &keys).await {
            Ok(records) if records.iter().all(Option::is_some) => {
                // Reads may succeed from the old connections' retries only once a primary
                // answers: the replica, promoted.
                if setup.primary_port().is_some_and(|p| p != old) {
                    first_ok_after = Some(killed_at.elapsed());
                    break;
                }
            }
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = setup.wait_promotion(old);
    assert_eq!(
        promoted,
        setup.replica.port(),
        "Sentinel promoted the replica"
    );
    let gap = first_ok_after.expect("reads resumed after the failover");
    // Writes go to the new primary: a write lands and reads back.
    let mut write_ok = None;
    for _ in 0..100 {
        if store.write(&t, &[row(1000)]).await.is_ok() {
            write_ok = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let write_ok = write_ok.expect("writes resumed on the new primary");
    let back = store
        .read(&t, &[EntityKey::single(KeyValue::Int(1000))])
        .await
        .unwrap();
    assert_eq!(back[0].as_ref().unwrap().values, [Value::Int64(1000)]);
    println!(
        "sentinel failover: reads answered again {:.2}s after the kill ({failed} failed reads), writes {:.2}s after",
        gap.as_secs_f64(),
        write_ok.as_secs_f64()
    );
}
