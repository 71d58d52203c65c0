//! [`Locks`] semantics, written once and run against Redis (a real `redis-server`) and the
//! in-process implementation of the memory store.

use std::sync::Arc;
use std::time::Duration;

use quiver_core::RecordCodec;
use quiver_online::config::RedisConfig;
use quiver_online::memory::MemoryStore;
use quiver_online::redis::RedisStore;
use quiver_online::{LockToken, Locks};
use quiver_test_utils::RedisServer;

async fn redis(server: &RedisServer) -> RedisStore {
    let config: RedisConfig =
        serde_json::from_value(serde_json::json!({ "url": server.url() })).unwrap();
    RedisStore::connect(&config).await.unwrap()
}

const LONG: Duration = Duration::from_secs(60);

async fn one_winner_and_only_the_owner_unlocks(locks: &impl Locks) {
    let token = locks.try_lock("refresh", LONG).await.unwrap().unwrap();
    assert_eq!(locks.try_lock("refresh", LONG).await.unwrap(), None);
    // Another name is another lock.
    assert!(locks.try_lock("other", LONG).await.unwrap().is_some());
    // A wrong token changes nothing.
    assert!(!locks.unlock("refresh", &LockToken::random()).await.unwrap());
    assert_eq!(locks.try_lock("refresh", LONG).await.unwrap(), None);
    // The owner frees it, once.
    assert!(locks.unlock("refresh", &token).await.unwrap());
    assert!(!locks.unlock("refresh", &token).await.unwrap());
    let next = locks.try_lock("refresh", LONG).await.unwrap().unwrap();
    assert_ne!(next, token);
}

async fn the_lease_expires(locks: &impl Locks) {
    let old = locks
        .try_lock("lease", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(locks.try_lock("lease", LONG).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = locks.try_lock("lease", LONG).await.unwrap().unwrap();
    // The expired holder cannot release its successor's lock.
    assert!(!locks.unlock("lease", &old).await.unwrap());
    assert!(locks.unlock("lease", &new).await.unwrap());
}

async fn only_the_holder_renews_the_lease(locks: &impl Locks) {
    let token = locks
        .try_lock("renew", Duration::from_millis(150))
        .await
        .unwrap()
        .unwrap();
    // Renewed before it expires, the lease outlives the first one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(locks.extend("renew", &token, LONG).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(locks.try_lock("renew", LONG).await.unwrap(), None);
    assert!(
        !locks
            .extend("renew", &LockToken::random(), LONG)
            .await
            .unwrap()
    );
    assert!(locks.unlock("renew", &token).await.unwrap());
    // An expired lease is not renewed: its holder learns it lost the lock.
    let short = locks
        .try_lock("renew", Duration::from_millis(20))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!locks.extend("renew", &short, LONG).await.unwrap());
}

async fn concurrent_callers_get_one_lock(locks: Arc<impl Locks + 'static>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let locks = locks.clone();
            tokio::spawn(async move { locks.try_lock("stampede", LONG).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

async fn bad_arguments_are_errors(locks: &impl Locks) {
    assert!(locks.try_lock("", LONG).await.is_err());
    let err = locks.try_lock("x", Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("lock `x`"), "{err}");
}

#[tokio::test]
async fn redis_locks() {
    let server = RedisServer::start();
    let store = redis(&server).await;
    one_winner_and_only_the_owner_unlocks(&store).await;
    the_lease_expires(&store).await;
    only_the_holder_renews_the_lease(&store).await;
    concurrent_callers_get_one_lock(Arc::new(store.clone())).await;
    bad_arguments_are_errors(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_locks_live_under_the_prefix_with_a_ttl() {
    let server = RedisServer::start();
    let store = redis(&server).await;
    let token = store.try_lock("daily", LONG).await.unwrap().unwrap();
    assert_eq!(store.lock_key("daily"), "quiver:lock:daily");
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: String = redis::cmd("GET")
        .arg("quiver:lock:daily")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, token.as_str());
    let pttl: i64 = redis::cmd("PTTL")
        .arg("quiver:lock:daily")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "PTTL {pttl}");
    // Unlock works after the server lost its scripts (the script is loaded on demand).
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(store.unlock("daily", &token).await.unwrap());
    concurrent_callers_get_one_lock(Arc::new(store)).await;
}

#[tokio::test]
async fn memory_locks() {
    let store = MemoryStore::new(RecordCodec::default());
    one_winner_and_only_the_owner_unlocks(&store).await;
    the_lease_expires(&store).await;
    only_the_holder_renews_the_lease(&store).await;
    // Clones share the locks.
    concurrent_callers_get_one_lock(Arc::new(store.clone())).await;
    assert_eq!(store.try_lock("stampede", LONG).await.unwrap(), None);
    bad_arguments_are_errors(&store).await;
}
