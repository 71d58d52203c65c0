//! Operating the server: `/livez`, `/readyz` and `/health` (healthy, degraded, unhealthy),
//! `/stats` per view and layer, invalidation by entity and by view version, pruning the online
//! records of versions no longer served, per-view metrics and request ids. On the embedded store
//! (a real file database) and on a real `redis-server` that the tests kill.

mod common;

use std::path::Path;

use quiver::FeatureStore;
use quiver_server::ServeOptions;
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
    freshness: {max_age: FRESHNESS}
    fields:
      - {name: age, type: int64}
      - {name: score, type: float64}
"#;

/// Users 1..=10, one row each, an hour ago.
fn write_project(dir: &Path, online: &str, extra: &str, freshness: &str) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        format!(
            "project: ops\nonline_store: {online}\noffline_store: {{type: parquet, path: offline}}\n{extra}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("features/defs.yaml"),
        DEFS.replace("FRESHNESS", freshness),
    )
    .unwrap();
    let ts = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut csv = String::from("user_id,age,score,ts\n");
    for id in 1..=10 {
        csv.push_str(&format!("{id},{},{id}.5,{ts}\n", 20 + id));
    }
    std::fs::write(dir.join("data/users.csv"), csv).unwrap();
}

async fn open_materialized(dir: &Path) -> FeatureStore {
    let mut store = FeatureStore::open(dir).await.unwrap();
    store.apply().await.unwrap();
    store
        .materialize(&Default::default(), &quiver::NoProgress)
        .await
        .unwrap();
    // The registry now records the run; the server's store reads it.
    store.reload_registry().await.unwrap();
    store
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(addr: std::net::SocketAddr) -> Client {
        Client {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn features(&self, ids: &[i64]) -> Value {
        let (status, body) = self
            .post(
                "/get-online-features",
                json!({"features": ["profile:age", "profile:score"], "entities": {"user_id": ids}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_stats_invalidation_and_metrics_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), "{type: embedded}", "", "2h");
    let store = open_materialized(dir.path()).await;
    let server = common::spawn(store, ServeOptions::default()).await;
    let c = Client::new(server.addr);

    assert_eq!(c.get("/livez").await.0, 200);
    let (status, ready) = c.get("/readyz").await;
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    let (status, health) = c.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["online_store"]["kind"], "embedded", "{health}");
    assert_eq!(health["registry"]["ok"], true, "{health}");
    assert_eq!(health["views"]["profile"]["stale"], false, "{health}");
    assert!(
        health["views"]["profile"]["materialized_seconds_ago"]
            .as_f64()
            .unwrap()
            < 60.0,
        "{health}"
    );
    // Freshness is the age of the newest event materialized: the rows are an hour old.
    let event_age = health["views"]["profile"]["newest_event_seconds_ago"]
        .as_f64()
        .unwrap();
    assert!((3500.0..3800.0).contains(&event_age), "{health}");

    // Two hits and a miss, then the counts per view.
    let body = c.features(&[1, 2, 99]).await;
    assert_eq!(
        body["results"][1]["values"],
        json!([21, 22, null]),
        "{body}"
    );
    let (_, stats) = c.get("/stats").await;
    for period in ["since_start", "last_minute"] {
        let v = &stats[period]["views"]["profile"];
        assert_eq!(
            (v["hits"].as_u64(), v["misses"].as_u64()),
            (Some(2), Some(1)),
            "{stats}"
        );
        let rate = v["hit_rate"].as_f64().unwrap();
        assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{stats}");
        assert_eq!(v["layers"]["online"]["calls"], 1, "{stats}");
        assert_eq!(v["layers"]["online"]["hits"], 2, "{stats}");
        assert!(v["layers"]["online"]["p99_ms"].as_f64().unwrap() > 0.0);
    }
    // Materialization wrote ten rows (counted as writes of the view).
    assert_eq!(
        stats["since_start"]["views"]["profile"]["writes"], 10,
        "{stats}"
    );
    assert!(
        stats["since_start"]["stores"]["embedded"]["read"]["count"]
            .as_u64()
            .unwrap()
            >= 1,
        "{stats}"
    );

    // Request ids: the client's is echoed, otherwise one is made.
    let r = c
        .http
        .get(format!("{}/livez", c.base))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = c
        .http
        .get(format!("{}/livez", c.base))
        .send()
        .await
        .unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());

    // Invalidate one entity: it reads NOT_FOUND, the others stay.
    let (status, report) = c
        .post(
            "/invalidate",
            json!({"view": "profile", "entities": {"user_id": [1, 1000]}}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["entities"].as_u64(), report["removed"].as_u64()),
        (Some(2), Some(1))
    );
    let body = c.features(&[1, 2]).await;
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["NOT_FOUND", "PRESENT"]),
        "{body}"
    );
    // A bad entity value is a 422 naming it, counted by kind.
    let (status, err) = c
        .post(
            "/invalidate",
            json!({"view": "profile", "entities": {"user_id": ["x"]}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_id"),
        "{err}"
    );
    // The whole view version: the nine others go.
    let (status, report) = c.post("/invalidate", json!({"view": "profile"})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["removed"], 9, "{report}");
    let body = c.features(&[2]).await;
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["NOT_FOUND"]),
        "{body}"
    );

    let (status, metrics) = c.get("/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    for line in [
        "quiver_view_hits_total{view=\"profile\"} 3",
        "quiver_view_misses_total{view=\"profile\"} 3",
        "quiver_view_fallbacks_total{view=\"profile\",reason=\"miss\"} 0",
        "quiver_view_layer_keys_total{view=\"profile\",layer=\"online\",result=\"missing\"} 3",
        "quiver_feature_requests_total{view=\"profile\",feature=\"age\"} 3",
        "quiver_view_freshness_max_age_seconds{view=\"profile\"} 7200",
        "quiver_http_errors_total{route=\"/invalidate\",kind=\"invalid_argument\"}",
        "quiver_view_read_duration_seconds_bucket{view=\"profile\",layer=\"online\",le=\"+Inf\"} 3",
        "quiver_store_operation_duration_seconds_count{backend=\"embedded\",operation=\"read\"}",
        "quiver_health_status 0",
        "quiver_ready 1",
        "quiver_view_online_keys{view=\"profile\",version=\"1\",served=\"true\"}",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix("quiver_view_materialization_age_seconds{view=\"profile\"} "))
        .unwrap_or_else(|| panic!("no materialization age in\n{text}"));
    assert!(age.parse::<f64>().unwrap() < 60.0, "{age}");
    let event_age = text
        .lines()
        .find_map(|l| l.strip_prefix("quiver_view_newest_event_age_seconds{view=\"profile\"} "))
        .unwrap_or_else(|| panic!("no newest event age in\n{text}"));
    assert!(
        (3500.0..3800.0).contains(&event_age.parse::<f64>().unwrap()),
        "{event_age}"
    );
    let served = text
        .lines()
        .find_map(|l| l.strip_prefix("quiver_view_served_value_age_seconds{view=\"profile\"} "))
        .unwrap_or_else(|| panic!("no served value age in\n{text}"));
    // The values served were written an hour ago.
    let served: f64 = served.parse().unwrap();
    assert!((3500.0..3800.0).contains(&served), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_staler_than_its_bound_degrades_health_but_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    // Just materialized, but the newest event it loaded is an hour old: stale for a 30m bound.
    write_project(dir.path(), "{type: embedded}", "", "30m");
    let store = open_materialized(dir.path()).await;
    let server = common::spawn(store, ServeOptions::default()).await;
    let c = Client::new(server.addr);
    let (status, health) = c.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["views"]["profile"]["stale"], true, "{health}");
    let reason = health["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("`profile` is stale: its newest materialized event is 3")
            && reason.contains("s old (last materialized "),
        "{health}"
    );
    assert_eq!(c.get("/readyz").await.0, 200);

    // A row written through the server now (a push) is the newest event online: fresh again.
    let now = chrono::Utc::now().to_rfc3339();
    let (status, body) = c
        .post(
            "/write-to-online-store",
            json!({"feature_view_name": "profile", "df": {"user_id": [1], "age": [30], "score": [1.5], "event_timestamp": [now]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, health) = c.get("/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["views"]["profile"]["stale"], false, "{health}");
    assert!(
        health["views"]["profile"]["newest_event_seconds_ago"]
            .as_f64()
            .unwrap()
            < 60.0,
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_online_removes_versions_no_longer_served() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), "{type: embedded}", "", "2h");
    let mut store = open_materialized(dir.path()).await;
    // A schema change bumps the version: apply says what v1 leaves behind online.
    let defs = dir.path().join("features/defs.yaml");
    let text = std::fs::read_to_string(&defs).unwrap();
    std::fs::write(
        &defs,
        text.replace(
            "{name: score, type: float64}",
            "{name: score, type: float32}",
        ),
    )
    .unwrap();
    let report = store.apply().await.unwrap();
    let left = report.unserved_online.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (left[0].view.as_str(), left[0].version, left[0].keys),
        ("profile", 1, 10)
    );
    assert!(left[0].bytes > 0);
    store
        .materialize(&Default::default(), &quiver::NoProgress)
        .await
        .unwrap();

    // A dry run deletes nothing; keeping one version keeps v1; then v1 goes.
    let dry = store.prune_online(Some(0), true).await.unwrap();
    assert_eq!(dry.removed.len(), 1);
    assert_eq!(store.online_versions().await.unwrap().len(), 2);
    let kept = store.prune_online(Some(1), false).await.unwrap();
    assert!(kept.removed.is_empty() && kept.kept.len() == 1, "{kept:?}");
    let pruned = store.prune_online(Some(0), false).await.unwrap();
    assert_eq!(pruned.removed[0].version, 1);
    let versions = store.online_versions().await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert!(versions[0].served && versions[0].version == 2 && versions[0].keys == 10);
    // The served version still answers.
    let server = common::spawn(store, ServeOptions::default()).await;
    let c = Client::new(server.addr);
    let body = c.features(&[3]).await;
    assert_eq!(body["results"][1]["values"], json!([23]), "{body}");
    // Over HTTP, nothing is left to prune.
    let (status, report) = c.post("/prune-online", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["removed"], json!([]), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_without_a_fallback_is_unhealthy_and_not_ready() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let online = format!(
        "{{type: redis, url: \"{}\", connect_timeout: 300ms, command_timeout: 300ms, resilience: {{timeout: 150ms, retries: 0}}}}",
        redis.url()
    );
    write_project(dir.path(), &online, "server: {request_timeout: 1s}\n", "2h");
    let store = open_materialized(dir.path()).await;
    let server = common::spawn(store, ServeOptions::default()).await;
    let c = Client::new(server.addr);
    let (status, health) = c.get("/health").await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("healthy")),
        "{health}"
    );
    assert!(
        health["online_store"]["memory"]["used_bytes"]
            .as_u64()
            .unwrap()
            > 0,
        "{health}"
    );
    // Invalidation on Redis (SCAN + UNLINK).
    let (_, report) = c.post("/invalidate", json!({"view": "profile"})).await;
    assert_eq!(report["removed"], 10, "{report}");

    redis.kill();
    let (status, health) = c.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["online_store"]["ok"], false, "{health}");
    let (status, ready) = c.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    // Liveness does not depend on the stores.
    assert_eq!(c.get("/livez").await.0, 200);
    let (_, metrics) = c.get("/metrics").await;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("quiver_online_store_up 0"), "{text}");
    assert!(text.contains("quiver_ready 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_names_the_source_the_version_and_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), "{type: embedded}", "", "2h");
    let store = open_materialized(dir.path()).await;
    let server = common::spawn(store, ServeOptions::default()).await;
    let c = Client::new(server.addr);
    let (status, lineage) = c.get("/lineage?feature=profile:score").await;
    assert_eq!(status, 200, "{lineage}");
    assert_eq!(lineage["feature"], "profile:score");
    assert_eq!(lineage["version"], 1);
    assert_eq!(lineage["value_type"], "float64");
    assert_eq!(lineage["source"]["name"], "users");
    assert_eq!(lineage["source"]["format"], "csv");
    assert!(
        lineage["source"]["location"]
            .as_str()
            .unwrap()
            .ends_with("data/users.csv"),
        "{lineage}"
    );
    assert_eq!(lineage["source"]["schema_hash"].as_str().unwrap().len(), 16);
    assert_eq!(lineage["transformation"]["kind"], "column");
    assert_eq!(lineage["transformation"]["column"], "score");
    let runs = lineage["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{lineage}");
    assert_eq!(runs[0]["kind"], "materialize");
    assert_eq!(runs[0]["written"], 10);

    let (status, err) = c.get("/lineage?feature=profile:nope").await;
    assert_eq!(status, 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no feature `nope`"),
        "{err}"
    );
    let (status, err) = c.get("/lineage").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["kind"], "invalid_argument");
}
