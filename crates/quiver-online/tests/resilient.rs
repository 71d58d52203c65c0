//! [`Resilient`] over real stores: a Redis that is killed (SIGKILL) or stalled (SIGSTOP), and the
//! memory store behind [`Faulty`] for retries, deadlines and cancelled probes.
//!
//! Timing bounds are upper bounds with wide slack (the machine running tests is shared and
//! noisy); no test asserts an exact duration.

use std::time::Duration;

use quiver_core::{EntityKey, KeyValue, Record, RecordCodec, Value};
use quiver_online::config::RedisConfig;
use quiver_online::memory::MemoryStore;
use quiver_online::redis::RedisStore;
use quiver_online::resilient::BreakerState;
use quiver_online::{
    Faulty, OnlineError, OnlineStoreRead, OnlineStoreWrite, ResilienceConfig, Resilient, ViewTable,
    now_ns,
};
use quiver_test_utils::RedisServer;
use tokio::time::Instant;

fn table() -> ViewTable {
    ViewTable {
        project: "proj".into(),
        view: "view".into(),
        version: 1,
        types: vec!["int64".parse().unwrap()].into(),
        ttl: None,
    }
}

fn row(k: i64) -> (EntityKey, Record) {
    (
        EntityKey::single(KeyValue::Int(k)),
        Record {
            event_ts: now_ns(),
            created_ts: None,
            values: vec![Value::Int64(k)],
        },
    )
}

fn values(records: &[Option<Record>]) -> Vec<Option<Vec<Value>>> {
    records
        .iter()
        .map(|r| r.as_ref().map(|r| r.values.clone()))
        .collect()
}

/// A Redis store whose own timeouts are short, so a dead server is noticed quickly.
async fn redis_store(server: &RedisServer) -> RedisStore {
    let config: RedisConfig = serde_json::from_value(serde_json::json!({
        "url": server.url(),
        "command_timeout": "300ms",
        "connect_timeout": "300ms",
        "connections": 1,
    }))
    .unwrap();
    RedisStore::connect(&config).await.unwrap()
}

fn config(timeout_ms: u64, retries: u32, failures: u32, cooldown_ms: u64) -> ResilienceConfig {
    ResilienceConfig {
        timeout: Duration::from_millis(timeout_ms),
        retries,
        breaker_failures: failures,
        breaker_cooldown: Duration::from_millis(cooldown_ms),
        ..ResilienceConfig::default()
    }
}

fn is_unavailable(e: &OnlineError) -> bool {
    matches!(e, OnlineError::Unavailable { .. })
}

/// Reads until one succeeds, for at most `within`; returns the records and how long it took.
async fn read_until_ok<S: OnlineStoreRead>(
    store: &S,
    key: &EntityKey,
    within: Duration,
) -> (Vec<Option<Record>>, Duration) {
    let start = Instant::now();
    loop {
        match store.read(&table(), std::slice::from_ref(key)).await {
            Ok(records) => return (records, start.elapsed()),
            Err(e) if start.elapsed() < within => {
                assert!(is_unavailable(&e), "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no successful read within {within:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn breaker_opens_when_redis_dies_fails_fast_and_closes_after_restart() {
    let mut server = RedisServer::start();
    let faulty = Faulty::new(redis_store(&server).await);
    let cooldown_ms = 300;
    let store = Resilient::new(faulty.clone(), config(400, 0, 3, cooldown_ms)).unwrap();
    store.write(&table(), &[row(1)]).await.unwrap();
    assert_eq!(
        values(&store.read(&table(), &[row(1).0]).await.unwrap()),
        vec![Some(vec![Value::Int64(1)])]
    );

    server.kill();
    // Three failures in a row open the breaker; each is bounded by the timeout.
    for attempt in 0..3 {
        let start = Instant::now();
        let err = store.read(&table(), &[row(1).0]).await.unwrap_err();
        assert!(is_unavailable(&err), "attempt {attempt}: {err:?}");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(400 + 600),
            "attempt {attempt} took {took:?}"
        );
    }
    let state = store.state();
    assert_eq!(state.breaker.state, BreakerState::Open, "{state:?}");
    assert!(state.breaker.open_since.is_some());

    // Open: calls fail at once without reaching the store.
    let reached = faulty.calls();
    for _ in 0..20 {
        let start = Instant::now();
        let err = store.read(&table(), &[row(1).0]).await.unwrap_err();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(50),
            "a rejected read took {took:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("circuit breaker open since"), "{msg}");
        assert!(is_unavailable(&err));
    }
    assert!(matches!(
        store.write(&table(), &[row(2)]).await,
        Err(OnlineError::Unavailable { .. })
    ));
    assert_eq!(
        faulty.calls(),
        reached,
        "an open breaker must not call the store"
    );
    assert!(store.state().breaker.counters.rejected >= 21);

    // Restarted (empty: persistence is off). A probe after the cool-down closes the breaker; the
    // same store object serves again.
    server.restart();
    let (records, took) = read_until_ok(&store, &row(1).0, Duration::from_secs(5)).await;
    assert_eq!(records, vec![None]);
    // One cool-down (300ms) plus a probe, with wide slack for a noisy machine.
    assert!(took < Duration::from_secs(3), "recovery took {took:?}");
    assert_eq!(store.state().breaker.state, BreakerState::Closed);
    store.write(&table(), &[row(3)]).await.unwrap();
    assert_eq!(
        values(&store.read(&table(), &[row(3).0]).await.unwrap()),
        vec![Some(vec![Value::Int64(3)])]
    );
}

#[tokio::test]
async fn reads_of_a_stalled_redis_return_within_the_timeout() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(200);
    let slack = Duration::from_millis(300);
    // Retries on, so the deadline (not the retry budget) is what bounds each read.
    let store = Resilient::new(redis_store(&server).await, config(200, 2, 3, 60_000)).unwrap();
    store.write(&table(), &[row(1)]).await.unwrap();

    server.stop();
    for attempt in 0..6 {
        let start = Instant::now();
        let deadline = start + timeout;
        let err = store
            .read_by(&table(), &[row(1).0], deadline)
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(is_unavailable(&err), "attempt {attempt}: {err:?}");
        assert!(took < timeout + slack, "attempt {attempt} took {took:?}");
    }
    // Stalled reads timed out, and the timeouts opened the breaker.
    let state = store.state();
    assert_eq!(state.breaker.state, BreakerState::Open, "{state:?}");
    assert!(state.timeouts >= 3, "{state:?}");

    // Without a deadline a read is still bounded: one attempt per timeout, and the breaker.
    let start = Instant::now();
    assert!(store.read(&table(), &[row(1).0]).await.is_err());
    assert!(start.elapsed() < timeout + slack);
    server.resume();
}

#[tokio::test]
async fn a_stalled_redis_recovers_when_resumed() {
    let mut server = RedisServer::start();
    let store = Resilient::new(redis_store(&server).await, config(200, 0, 2, 200)).unwrap();
    store.write(&table(), &[row(5)]).await.unwrap();
    server.stop();
    for _ in 0..2 {
        assert!(store.read(&table(), &[row(5).0]).await.is_err());
    }
    assert_eq!(store.state().breaker.state, BreakerState::Open);
    server.resume();
    let (records, _) = read_until_ok(&store, &row(5).0, Duration::from_secs(5)).await;
    assert_eq!(values(&records), vec![Some(vec![Value::Int64(5)])]);
    assert_eq!(store.state().breaker.state, BreakerState::Closed);
}

fn memory() -> Faulty<MemoryStore> {
    Faulty::new(MemoryStore::new(RecordCodec::default()))
}

#[tokio::test]
async fn a_failed_read_is_retried_and_succeeds() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), ResilienceConfig::default()).unwrap();
    store.write(&table(), &[row(7)]).await.unwrap();
    faulty.fail_next(1);
    let records = store.read(&table(), &[row(7).0]).await.unwrap();
    assert_eq!(values(&records), vec![Some(vec![Value::Int64(7)])]);
    assert_eq!(faulty.calls().reads, 2);
    assert_eq!(store.state().retries, 1);
    // A failure followed by a success leaves the breaker closed with no failure streak.
    let breaker = store.state().breaker;
    assert_eq!(breaker.state, BreakerState::Closed);
    assert_eq!(breaker.consecutive_failures, 0);
}

#[tokio::test]
async fn retries_stop_at_the_configured_count() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), config(250, 2, 100, 1000)).unwrap();
    faulty.fail_all(true);
    assert!(store.read(&table(), &[row(1).0]).await.is_err());
    assert_eq!(faulty.calls().reads, 3);
}

#[tokio::test]
async fn no_retry_when_the_backoff_would_pass_the_deadline() {
    let faulty = memory();
    let store = Resilient::new(
        faulty.clone(),
        ResilienceConfig {
            // The first retry waits 100–200ms; the deadline is 20ms away.
            backoff_base: Duration::from_millis(200),
            ..ResilienceConfig::default()
        },
    )
    .unwrap();
    faulty.fail_next(1);
    let start = Instant::now();
    let err = store
        .read_by(&table(), &[row(1).0], start + Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(faulty.calls().reads, 1);
    assert_eq!(store.state().retries, 0);
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_slow_store_times_out_and_a_past_deadline_calls_nothing() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), config(50, 0, 100, 1000)).unwrap();
    faulty.delay(Some(Duration::from_secs(5)));
    let start = Instant::now();
    let err = store.read(&table(), &[row(1).0]).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(50 + 500));
    assert!(err.to_string().contains("within 50ms"), "{err}");
    assert_eq!(store.state().timeouts, 1);

    let err = store
        .read_by(&table(), &[row(1).0], Instant::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert_eq!(faulty.calls().reads, 1);
}

#[tokio::test]
async fn a_cancelled_probe_does_not_wedge_the_breaker() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), config(1000, 0, 1, 20)).unwrap();
    faulty.fail_next(1);
    assert!(store.read(&table(), &[row(1).0]).await.is_err());
    assert_eq!(store.state().breaker.state, BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(40)).await;
    // The probe stalls and its caller gives up (drops the future).
    faulty.delay(Some(Duration::from_secs(5)));
    let gave_up =
        tokio::time::timeout(Duration::from_millis(30), store.read(&table(), &[row(1).0])).await;
    assert!(gave_up.is_err());
    assert_eq!(store.state().breaker.state, BreakerState::HalfOpen);
    // The next call becomes the probe, succeeds, and closes the breaker.
    faulty.heal();
    store.read(&table(), &[row(1).0]).await.unwrap();
    assert_eq!(store.state().breaker.state, BreakerState::Closed);
}

#[tokio::test]
async fn errors_that_are_not_about_availability_are_neither_retried_nor_counted() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), config(250, 2, 1, 1000)).unwrap();
    store.write(&table(), &[row(1)]).await.unwrap();
    // Read back with another schema: the record does not decode. An answer, not an outage.
    let wrong = ViewTable {
        types: vec!["string".parse().unwrap(), "float64".parse().unwrap()].into(),
        ..table()
    };
    let err = store.read(&wrong, &[row(1).0]).await.unwrap_err();
    assert!(matches!(err, OnlineError::Corrupt { .. }), "{err:?}");
    assert_eq!(faulty.calls().reads, 1);
    let breaker = store.state().breaker;
    assert_eq!(breaker.state, BreakerState::Closed);
    assert_eq!(breaker.counters.failed, 0);
}

#[tokio::test]
async fn writes_are_not_retried_but_count_towards_the_breaker() {
    let faulty = memory();
    let store = Resilient::new(faulty.clone(), config(250, 2, 2, 60_000)).unwrap();
    faulty.fail_all(true);
    for _ in 0..2 {
        assert!(store.write(&table(), &[row(1)]).await.is_err());
    }
    assert_eq!(faulty.calls().writes, 2);
    assert_eq!(store.state().breaker.state, BreakerState::Open);
    assert_eq!(store.state().retries, 0);
}
