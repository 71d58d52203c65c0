//! Record namespaces and their export queues: one conformance suite run on the embedded store
//! and on a real `redis-server`, then the Redis specifics (a logical database per namespace, a
//! crashed consumer's entries taken over, failing fast when the server is down, nothing
//! acknowledged lost across a crash of a durable server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_online::config::{EmbeddedConfig, RedisConfig};
use quiver_online::embedded::EmbeddedStore;
use quiver_online::records::{PutRecord, QueueEntry, RecordSpace, RecordStore};
use quiver_online::redis::RedisStore;
use quiver_online::{OnlineError, OnlineStoreRead};
use quiver_test_utils::RedisServer;

fn space(name: &str, ttl: Option<Duration>) -> RecordSpace {
    RecordSpace {
        name: name.into(),
        key_prefix: format!("quiver:shop:records:{name}"),
        ttl,
        db: None,
        cache: true,
    }
}

fn rec(id: &str) -> PutRecord {
    PutRecord {
        id: id.into(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        aliases: Vec::new(),
    }
}

fn ids(entries: &[QueueEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect()
}

async fn redis_store(url: &str) -> RedisStore {
    let config: RedisConfig = serde_json::from_value(serde_json::json!({ "url": url })).unwrap();
    RedisStore::connect(&config).await.unwrap()
}

/// What every backend guarantees.
async fn conformance(store: Arc<dyn RecordStore>) {
    let s = space("tx", None);
    // Put: cached and queued, positions in order.
    let p = store
        .put(&s, &[rec("a"), rec("b"), rec("c")])
        .await
        .unwrap();
    assert_eq!(p.len(), 3);
    assert!(p[0] < p[1] && p[1] < p[2], "{p:?}");
    assert_eq!(
        store.get(&s, "b").await.unwrap().unwrap(),
        b"{\"id\":\"b\"}"
    );
    assert_eq!(store.get(&s, "zz").await.unwrap(), None);
    assert_eq!(store.stats(&s).await.unwrap().length, 3);

    // Delete removes the cached copy only: the queued one is still exported.
    assert!(store.delete(&s, "b").await.unwrap());
    assert!(!store.delete(&s, "b").await.unwrap());
    assert_eq!(store.get(&s, "b").await.unwrap(), None);

    // Claim in order; ack removes.
    let first = store.claim(&s, "c1", 2, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&first), ["{\"id\":\"a\"}", "{\"id\":\"b\"}"]);
    assert_eq!(first[0].position, p[0]);
    store
        .ack(&s, &first.iter().map(|e| e.position).collect::<Vec<_>>())
        .await
        .unwrap();
    let stats = store.stats(&s).await.unwrap();
    assert_eq!(stats.length, 1);
    assert!(stats.oldest_ms.is_some());

    // An unacknowledged claim is handed out again (the exporter crashed).
    let rest = store.claim(&s, "c1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&rest), ["{\"id\":\"c\"}"]);
    let again = store.claim(&s, "c2", 10, Duration::ZERO).await.unwrap();
    assert_eq!(
        ids(&again),
        ["{\"id\":\"c\"}"],
        "a crashed consumer's entry is taken over"
    );

    // Dead letters keep the reason and can be replayed.
    store
        .dead_letter(&s, &[(again[0].clone(), "sink refused: bad".into())])
        .await
        .unwrap();
    let stats = store.stats(&s).await.unwrap();
    assert_eq!((stats.length, stats.dead_letters), (0, 1));
    let dead = store.dead_letters(&s, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "sink refused: bad");
    assert_eq!(dead[0].position, p[2]);
    assert_eq!(store.replay_dead_letters(&s).await.unwrap(), 1);
    let stats = store.stats(&s).await.unwrap();
    assert_eq!((stats.length, stats.dead_letters), (1, 0));
    let replayed = store.claim(&s, "c3", 10, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&replayed), ["{\"id\":\"c\"}"]);
    assert!(
        replayed[0].position > p[2],
        "a replayed entry is queued at the end"
    );
    store.ack(&s, &[replayed[0].position]).await.unwrap();

    // Positions keep growing after the queue drained (the sink compares them).
    let later = store.put(&s, &[rec("d")]).await.unwrap();
    assert!(later[0] > replayed[0].position);

    // Aliases are cached, not queued again.
    let mut aliased = rec("e");
    aliased.aliases = vec!["latest:m:user_id=1".into()];
    store.put(&s, &[aliased]).await.unwrap();
    assert_eq!(
        store.get(&s, "latest:m:user_id=1").await.unwrap().unwrap(),
        b"{\"id\":\"e\"}"
    );
    assert_eq!(store.stats(&s).await.unwrap().length, 2);

    // A queue-only namespace keeps no cached copy.
    let logs = RecordSpace {
        cache: false,
        ..space("logs", None)
    };
    store.put(&logs, &[rec("l1")]).await.unwrap();
    assert_eq!(store.get(&logs, "l1").await.unwrap(), None, "not cached");
    let queued = store.claim(&logs, "c1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&queued), ["{\"id\":\"l1\"}"], "but queued");

    // Namespaces are separate.
    let other = space("predictions", None);
    assert_eq!(store.get(&other, "a").await.unwrap(), None);
    assert_eq!(store.stats(&other).await.unwrap().length, 0);

    // TTL expiry of the cached copy never loses the queued one.
    let short = space("short", Some(Duration::from_millis(100)));
    store.put(&short, &[rec("x")]).await.unwrap();
    assert!(store.get(&short, "x").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get(&short, "x").await.unwrap(), None, "expired");
    let queued = store.claim(&short, "c1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&queued), ["{\"id\":\"x\"}"], "still queued for export");
}

#[tokio::test]
async fn embedded_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedConfig::default(), dir.path())
        .await
        .unwrap();
    conformance(store.records().expect("the embedded store keeps records")).await;
}

#[tokio::test]
async fn embedded_queue_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("tx", None);
    {
        let store = EmbeddedStore::open(&EmbeddedConfig::default(), dir.path())
            .await
            .unwrap();
        store.put(&s, &[rec("a"), rec("b")]).await.unwrap();
    }
    let store = EmbeddedStore::open(&EmbeddedConfig::default(), dir.path())
        .await
        .unwrap();
    let entries = store.claim(&s, "c", 10, Duration::ZERO).await.unwrap();
    assert_eq!(ids(&entries), ["{\"id\":\"a\"}", "{\"id\":\"b\"}"]);
}

#[tokio::test]
async fn embedded_sweep_removes_expired_records_not_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedConfig::default(), dir.path())
        .await
        .unwrap();
    let s = space("short", Some(Duration::from_millis(50)));
    store.put(&s, &[rec("a"), rec("b")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.sweep_expired().await.unwrap(), 2);
    assert_eq!(store.stats(&s).await.unwrap().length, 2);
}

#[tokio::test]
async fn redis_conformance() {
    let server = RedisServer::start();
    let store = redis_store(&server.url()).await;
    conformance(store.records().expect("redis keeps records")).await;
}

#[tokio::test]
async fn redis_keys_an_operator_can_read_and_a_database_per_namespace() {
    let server = RedisServer::start();
    let store = redis_store(&server.url()).await;
    let s = space("tx", Some(Duration::from_secs(3600)));
    store.put(&s, &[rec("a")]).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("quiver:shop:records:tx:r:a")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    let len: i64 = redis::cmd("XLEN")
        .arg("quiver:shop:records:tx:queue")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1);

    let isolated = RecordSpace {
        db: Some(3),
        ..space("iso", None)
    };
    store.put(&isolated, &[rec("z")]).await.unwrap();
    let in_db0: Option<Vec<u8>> = redis::cmd("GET")
        .arg("quiver:shop:records:iso:r:z")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        in_db0, None,
        "an isolated namespace writes nothing to the store's database"
    );
    let mut db3 = redis::Client::open(format!("{}/3", server.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let in_db3: Option<Vec<u8>> = redis::cmd("GET")
        .arg("quiver:shop:records:iso:r:z")
        .query_async(&mut db3)
        .await
        .unwrap();
    assert_eq!(in_db3.as_deref(), Some(&b"{\"id\":\"z\"}"[..]));
    assert_eq!(
        store.get(&isolated, "z").await.unwrap().unwrap(),
        b"{\"id\":\"z\"}"
    );

    // What the memory alert watches.
    let memory = store
        .memory()
        .await
        .unwrap()
        .expect("redis reports its memory");
    assert!(memory.used_bytes > 100_000, "{memory:?}");
    assert_eq!(memory.max_bytes, None, "the fixture sets no maxmemory");
}

#[tokio::test]
async fn redis_down_fails_fast_and_nothing_acknowledged_is_lost() {
    let mut server = RedisServer::start_durable();
    let store = redis_store(&server.url()).await;
    let s = space("tx", Some(Duration::from_secs(3600)));
    let accepted: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    let recs: Vec<PutRecord> = accepted.iter().map(|id| rec(id)).collect();
    store.put(&s, &recs).await.unwrap();

    server.kill();
    let started = Instant::now();
    let err = store.put(&s, &[rec("refused")]).await.unwrap_err();
    assert!(
        matches!(err, OnlineError::Unavailable { .. }),
        "a dead server is Unavailable, got {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failing took {:?}",
        started.elapsed()
    );

    server.restart();
    // The AOF (appendfsync always) replays everything acknowledged.
    let mut exported = Vec::new();
    loop {
        let batch = match store.claim(&s, "c", 64, Duration::ZERO).await {
            Ok(b) => b,
            // The first commands after the restart may meet the broken connection.
            Err(OnlineError::Unavailable { .. }) => continue,
            Err(e) => panic!("{e}"),
        };
        if batch.is_empty() {
            break;
        }
        store
            .ack(&s, &batch.iter().map(|e| e.position).collect::<Vec<_>>())
            .await
            .unwrap();
        exported.extend(ids(&batch));
    }
    let expected: Vec<String> = accepted
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\"}}"))
        .collect();
    assert_eq!(
        exported, expected,
        "every acknowledged record, once, in order"
    );
}
