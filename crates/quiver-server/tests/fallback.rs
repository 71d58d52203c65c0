//! The second layer through the HTTP server, with a real `redis-server` that the tests kill,
//! stall and restart: with a fallback every response is a 200 with the offline layer's values,
//! without one a JSON 503 within the deadline, and online answers resume after a restart
//! without restarting Quiver.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quiver::FeatureStore;
use quiver_test_utils::RedisServer;
use serde_json::{Value, json};

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: users, path: data/users.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: users
    fields:
      - {name: age, type: int64}
      - {name: score, type: float64}
  - name: profile_strict
    entities: [user]
    source: users
    fallback: none
    fields:
      - {name: age, type: int64}
"#;

/// Users 1..=20: age 20 + id at day 1, then 40 + id at day 2 (the latest).
fn write_project(dir: &Path, redis_url: &str) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        "project: fb\n\
         online_store:\n  type: redis\n  url: \"{redis_url}\"\n  connect_timeout: 300ms\n  command_timeout: 300ms\n  \
         resilience: {{timeout: 150ms, retries: 1, breaker_failures: 3, breaker_cooldown: 300ms}}\n\
         server:\n  request_timeout: 1s\n\
         serving:\n  fallback: {{layer: offline, on: [unavailable, miss]}}\n"
    );
    std::fs::write(dir.join("quiver.yaml"), config).unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    let mut csv = String::from("user_id,age,score,ts\n");
    for id in 1..=20 {
        csv.push_str(&format!("{id},{},{id}.5,2026-01-01T00:00:00Z\n", 20 + id));
        csv.push_str(&format!("{id},{},{id}.25,2026-01-02T00:00:00Z\n", 40 + id));
    }
    std::fs::write(dir.join("data/users.csv"), csv).unwrap();
}

struct Served {
    addr: SocketAddr,
    client: reqwest::Client,
    _running: common::Running,
}

async fn serve(dir: &Path) -> Served {
    serve_with(dir, true, quiver_server::ServeOptions::default()).await
}

async fn serve_with(dir: &Path, materialize: bool, options: quiver_server::ServeOptions) -> Served {
    let mut store = FeatureStore::open(dir).await.unwrap();
    store.apply().await.unwrap();
    store.build(&Default::default()).await.unwrap();
    if materialize {
        store
            .materialize(&Default::default(), &quiver::NoProgress)
            .await
            .unwrap();
    }
    let running = common::spawn(store, options).await;
    Served {
        addr: running.addr,
        client: reqwest::Client::new(),
        _running: running,
    }
}

/// One request: (status, `x-quiver-layer`, body, elapsed).
async fn get(s: &Served, view: &str, ids: &[i64]) -> (u16, String, Value, Duration) {
    let started = Instant::now();
    let resp = s
        .client
        .post(format!("http://{}/get-online-features", s.addr))
        .json(&json!({
            "features": [format!("{view}:age")],
            "entities": {"user_id": ids},
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let layer = resp
        .headers()
        .get("x-quiver-layer")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (status, layer, body, started.elapsed())
}

async fn get_health(s: &Served) -> (u16, Value) {
    let resp = s
        .client
        .get(format!("http://{}/health", s.addr))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

fn expected_ages(ids: &[i64]) -> Value {
    json!(ids.iter().map(|id| 40 + id).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_stalled_and_restarted_while_clients_stream() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), &redis.url());
    let s = serve(dir.path()).await;
    let ids: Vec<i64> = (1..=20).collect();

    let (status, layer, body, _) = get(&s, "profile", &ids).await;
    assert_eq!((status, layer.as_str()), (200, "online"), "{body}");
    assert_eq!(body["results"][1]["values"], expected_ages(&ids));

    // Killed while four clients stream requests: every response is a 200 with the right
    // values within the deadline; the online layer answers before, the offline one after.
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (s, stop, ids) = (s.clone(), stop.clone(), ids.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (status, layer, body, took) = get(&s, "profile", &ids).await;
                    let right = body["results"][1]["values"] == expected_ages(&ids);
                    seen.push((status, layer, right, took));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }
    assert!(seen.len() > 20, "{} responses", seen.len());
    for (status, layer, right, took) in &seen {
        assert!(
            *status == 200 && *right && *took < Duration::from_millis(1500),
            "{status} {layer} {right} {took:?}"
        );
    }
    let layers: std::collections::BTreeSet<&str> = seen.iter().map(|r| r.1.as_str()).collect();
    assert!(
        layers.contains("online") && layers.contains("offline"),
        "{layers:?}"
    );
    for _ in 0..5 {
        let (status, layer, body, _) = get(&s, "profile", &ids).await;
        assert_eq!((status, layer.as_str()), (200, "offline"), "{body}");
    }
    // Degraded, not down: the offline layer answers for the online store, so the server
    // stays ready (a load balancer keeps sending it traffic).
    let (status, health) = get_health(&s).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["online_store"]["ok"], false, "{health}");
    assert_eq!(health["offline_layer"]["fallback"], true, "{health}");
    assert_eq!(
        health["online_store"]["circuit"]["state"], "open",
        "{health}"
    );
    let ready = s
        .client
        .get(format!("http://{}/readyz", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // A view without fallback: a JSON 503 within the deadline.
    let (status, _, body, took) = get(&s, "profile_strict", &ids).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // Restarted (empty: persistence is off): misses are answered by the offline layer and
    // written back, then answered online again — without restarting Quiver.
    redis.restart();
    let restarted = Instant::now();
    let resumed = loop {
        let (status, layer, body, _) = get(&s, "profile", &ids).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][1]["values"], expected_ages(&ids), "{body}");
        if layer == "online" {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("online answers resumed {resumed:?} after the restart");
    let (status, health) = get_health(&s).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(
        health["online_store"]["circuit"]["state"], "closed",
        "{health}"
    );
    assert!(
        resumed < Duration::from_secs(3),
        "online resumed after {resumed:?}"
    );

    // Stalled (SIGSTOP): every response still within the deadline.
    redis.stop();
    for _ in 0..5 {
        let (status, _, body, took) = get(&s, "profile", &ids).await;
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
    let (status, _, body, took) = get(&s, "profile_strict", &ids).await;
    assert!(
        status == 503 && took < Duration::from_millis(1500),
        "{status} {took:?} {body}"
    );
    redis.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_are_answered_offline_and_read_through() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), &redis.url());
    let s = serve(dir.path()).await;
    // Wipe the online store: every key misses.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    let (status, layer, body, _) = get(&s, "profile", &[3, 4, 999]).await;
    assert_eq!((status, layer.as_str()), (200, "offline"), "{body}");
    assert_eq!(body["results"][1]["values"], json!([43, 44, null]));
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    // Read-through wrote the found rows back; the next request is answered online.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, layer, body, _) = get(&s, "profile", &[3, 4]).await;
        if layer == "online" {
            assert_eq!(body["results"][1]["values"], json!([43, 44]));
            break;
        }
        assert!(Instant::now() < deadline, "read-through never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A view without fallback reports the miss as NOT_FOUND.
    let (status, layer, body, _) = get(&s, "profile_strict", &[5]).await;
    assert_eq!((status, layer.as_str()), (200, "online"), "{body}");
    assert_eq!(body["results"][1]["statuses"], json!(["NOT_FOUND"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warm_loads_the_online_store_and_reports_readiness() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), &redis.url());
    let options = quiver_server::ServeOptions {
        warm: Some(quiver::WarmOptions {
            views: vec!["profile_strict".into()],
            entities: quiver::WarmEntities::Top(5),
        }),
    };
    let s = serve_with(dir.path(), false, options).await;
    let url = |path: &str| format!("http://{}{path}", s.addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = s.client.get(url("/health")).send().await.unwrap();
        assert_eq!(
            health.status().as_u16(),
            200,
            "liveness never fails while warming"
        );
        let ready = s.client.get(url("/ready")).send().await.unwrap();
        let status = ready.status().as_u16();
        let body: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
        if status == 200 {
            assert_eq!(body["status"], "ready");
            break;
        }
        assert_eq!((status, body["status"].as_str()), (503, Some("warming")));
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The view has no fallback: PRESENT means the warm-up wrote it. All 20 users share the
    // latest event time, so which 5 are "top" is the key order; count them.
    let ids: Vec<i64> = (1..=20).collect();
    let (_, layer, body, _) = get(&s, "profile_strict", &ids).await;
    assert_eq!(layer, "online");
    let present = body["results"][1]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| *s == "PRESENT")
        .count();
    assert_eq!(present, 5, "{body}");
}
