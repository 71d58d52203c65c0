//! Redis Cluster faults against a real six-node cluster: a primary killed while clients stream
//! reads (its replica takes over; reads resume without restarting the store) and a live
//! reshard under load (keys move between primaries while clients read: never a wrong answer).
//! The figures (the failover gap, failed reads) are printed for the record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quiver_core::{EntityKey, KeyValue, Record, Value};
use quiver_online::config::RedisConfig;
use quiver_online::redis::RedisStore;
use quiver_online::{OnlineStoreRead, OnlineStoreWrite, ViewTable, now_ns};
use quiver_test_utils::RedisCluster;

const KEYS: i64 = 2000;

fn table() -> ViewTable {
    ViewTable {
        project: "faults".into(),
        view: "v".into(),
        version: 1,
        types: vec!["int64".parse().unwrap()].into(),
        ttl: None,
    }
}

fn key(i: i64) -> EntityKey {
    EntityKey::single(KeyValue::Int(i))
}

async fn connect(cluster: &RedisCluster) -> RedisStore {
    let config: RedisConfig = serde_json::from_value(serde_json::json!({
        "nodes": cluster.urls(),
        "connect_timeout": "1s",
        "command_timeout": "500ms",
    }))
    .unwrap();
    RedisStore::connect(&config).await.unwrap()
}

async fn fill(store: &RedisStore) {
    let rows: Vec<(EntityKey, Record)> = (0..KEYS)
        .map(|i| {
            (
                key(i),
                Record {
                    event_ts: now_ns(),
                    created_ts: None,
                    values: vec![Value::Int64(i)],
                },
            )
        })
        .collect();
    let summary = store.write(&table(), &rows).await.unwrap();
    assert_eq!(summary.written, KEYS as usize);
}

/// What readers saw: per read, when it ended and whether it failed; and wrong answers.
#[derive(Default)]
struct Seen {
    reads: Vec<(Instant, bool)>,
    wrong: Vec<String>,
}

/// Reads batches of 50 keys in a loop until `stop`, checking every value.
async fn read_until(store: RedisStore, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let t = table();
    let mut start = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<i64> = (0..50).map(|j| (start + j * 37) % KEYS).collect();
        start = (start + 1) % KEYS;
        let keys: Vec<EntityKey> = ids.iter().map(|&i| key(i)).collect();
        match store.read(&t, &keys).await {
            Ok(records) => {
                for (id, r) in ids.iter().zip(records) {
                    match r.map(|r| r.values) {
                        Some(v) if v == [Value::Int64(*id)] => {}
                        other => seen.wrong.push(format!("key {id}: {other:?}")),
                    }
                }
                seen.reads.push((Instant::now(), true));
            }
            Err(_) => {
                seen.reads.push((Instant::now(), false));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    seen
}

/// Stops the readers and merges what they saw.
async fn stop_readers(stop: &AtomicBool, readers: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::default();
    for r in readers {
        let s = r.await.unwrap();
        seen.reads.extend(s.reads);
        seen.wrong.extend(s.wrong);
    }
    seen
}

fn keyslot(cluster: &RedisCluster, key: &str) -> u16 {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &cluster.nodes[0].port().to_string(),
            "CLUSTER",
            "KEYSLOT",
            key,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_reads_resume_without_a_restart() {
    let mut cluster = RedisCluster::start(1000);
    let store = connect(&cluster).await;
    fill(&store).await;
    let slot = keyslot(&cluster, &table().key("quiver", &key(0)));
    let victim = cluster.primary_of(slot).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(read_until(store.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    cluster.node_mut(victim.port).kill();
    let victim_port = victim.port;
    let waiting = tokio::task::spawn_blocking(move || {
        cluster.wait_failover(slot, victim_port);
        cluster
    });
    let cluster = waiting.await.unwrap();
    let promoted_after = killed_at.elapsed();
    // Keep reading on the new topology for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = stop_readers(&stop, readers).await;
    let new_primary = cluster
        .primary_of(slot)
        .unwrap_or_else(|| panic!("no primary for slot {slot}: {:?}", cluster.topology()));
    assert_ne!(
        new_primary.port, victim.port,
        "a replica took the slot over"
    );
    assert!(
        seen.wrong.is_empty(),
        "wrong answers: {:?}",
        &seen.wrong[..seen.wrong.len().min(5)]
    );
    let failed: Vec<Instant> = seen.reads.iter().filter(|r| !r.1).map(|r| r.0).collect();
    let gap = match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    // Reads resumed: every read in the last second succeeded, through the same store.
    let end = seen.reads.iter().map(|r| r.0).max().unwrap();
    let tail: Vec<bool> = seen
        .reads
        .iter()
        .filter(|r| end.duration_since(r.0) < Duration::from_secs(1))
        .map(|r| r.1)
        .collect();
    assert!(
        !tail.is_empty() && tail.iter().all(|ok| *ok),
        "reads did not resume"
    );
    println!(
        "failover: replica promoted {:.2}s after the kill; reads failing for {gap:.2}s ({} of {} reads of 50 keys failed)",
        promoted_after.as_secs_f64(),
        failed.len(),
        seen.reads.len()
    );
    assert!(gap < 20.0, "reads failed for {gap:.2}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_load_never_gives_a_wrong_answer() {
    let cluster = RedisCluster::start(2000);
    let store = connect(&cluster).await;
    fill(&store).await;
    let primaries = cluster.primaries();
    let (from, to) = (primaries[0].clone(), primaries[1].clone());

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(read_until(store.clone(), stop.clone())))
        .collect();
    let (from_id, to_id) = (from.id.clone(), to.id.clone());
    let moved = tokio::task::spawn_blocking(move || {
        let out = cluster.reshard(&from_id, &to_id, 1000);
        (cluster, out)
    });
    let (cluster, out) = moved.await.unwrap();
    out.unwrap();
    cluster.wait_ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = stop_readers(&stop, readers).await;
    let after: u32 = cluster
        .topology()
        .iter()
        .find(|n| n.id == to.id)
        .unwrap()
        .slots
        .iter()
        .map(|(a, b)| u32::from(b - a) + 1)
        .sum();
    let before: u32 = to.slots.iter().map(|(a, b)| u32::from(b - a) + 1).sum();
    assert_eq!(after, before + 1000, "1000 slots moved");
    assert!(
        seen.wrong.is_empty(),
        "wrong answers: {:?}",
        &seen.wrong[..seen.wrong.len().min(5)]
    );
    let failed = seen.reads.iter().filter(|r| !r.1).count();
    println!(
        "reshard of 1000 slots under load: {} reads of 50 keys, {failed} failed, 0 wrong",
        seen.reads.len()
    );
    // Every key is still there, with its value.
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(200) {
        let keys: Vec<EntityKey> = chunk.iter().map(|&i| key(i)).collect();
        let mut attempt = 0;
        let records = loop {
            match store.read(&table(), &keys).await {
                Ok(r) => break r,
                Err(e) if attempt < 5 => {
                    println!("final read failed (attempt {attempt}): {e}");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        for (i, r) in chunk.iter().zip(records) {
            assert_eq!(r.map(|r| r.values), Some(vec![Value::Int64(*i)]), "key {i}");
        }
    }
}
