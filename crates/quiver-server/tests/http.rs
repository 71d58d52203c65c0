//! The feature server over a real socket (127.0.0.1:0): Feast's shapes, statuses, and every
//! bad-input case answered with a 4xx JSON error.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use quiver::FeatureStore;
use serde_json::{Value, json};

const CONFIG: &str = "project: httptest
online_store:
  type: memory
server:
  max_entities: 50
  max_body_bytes: 20000
";

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
  - {name: merchant, join_keys: [merchant], key_type: string}
sources:
  - {name: users, path: data/users.csv, timestamp_field: updated_at}
  - {name: merchants, path: data/merchants.csv, timestamp_field: ts}
feature_views:
  - name: user_profile
    entities: [user]
    source: users
    ttl: 1d
    fields:
      - {name: age, type: int32, min: 0, max: 130}
      - {name: country, type: string}
      - {name: score, type: float64}
  - name: merchant_stats
    entities: [merchant]
    source: merchants
    fields:
      - {name: score, type: float64}
  - name: merchant_narrow
    entities: [merchant]
    source: merchants
    fields:
      - {name: score, type: float32}
      - {name: visits, type: int32}
feature_services:
  - {name: basics, features: ["user_profile:age", "user_profile:country"]}
"#;

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    _running: common::Running,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        write_project(dir.path());
        let mut store = FeatureStore::open(dir.path()).await.unwrap();
        store.apply().await.unwrap();
        let running = common::spawn(store, Default::default()).await;
        Server {
            addr: running.addr,
            client: reqwest::Client::new(),
            dir,
            _running: running,
        }
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
        (status, json)
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        self.post(path, body.to_string()).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn seed(&self) {
        let now = chrono::Utc::now();
        let fresh = (now - chrono::Duration::hours(1)).to_rfc3339();
        let stale = (now - chrono::Duration::days(3)).to_rfc3339();
        let (status, body) = self
            .post_json(
                "/write-to-online-store",
                json!({
                    "feature_view_name": "user_profile",
                    "df": {
                        "user_id": [1, 2, 3],
                        "age": [30, 41, null],
                        "country": ["DE", "US", "FR"],
                        "score": [0.5, 1.5, 2.5],
                        "event_timestamp": [fresh, stale, fresh],
                    },
                    "allow_registry_cache": true,
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["written"], 3);
    }
}

fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("quiver.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    std::fs::write(
        dir.join("data/users.csv"),
        "user_id,age,country,score,updated_at\n1,30,DE,0.5,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("data/merchants.csv"),
        "merchant,score,visits,ts\nm1,0.5,3,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
}

fn error_kind(body: &Value) -> &str {
    body["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no error kind in {body}"))
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

#[tokio::test]
async fn serves_feast_shape_with_statuses() {
    let s = Server::start().await;
    s.seed().await;
    let (status, body) = s
        .post_json(
            "/get-online-features",
            json!({
                "features": ["user_profile:age", "user_profile:country"],
                "entities": {"user_id": [1, 2, 3, 999]},
                "full_feature_names": false,
                "include_feature_view_version_metadata": true,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["user_id", "age", "country"])
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["values"], json!([1, 2, 3, 999]));
    assert_eq!(results[0]["event_timestamps"][0], "1970-01-01T00:00:00Z");
    assert_eq!(results[1]["values"], json!([30, 41, null, null]));
    assert_eq!(
        results[1]["statuses"],
        json!(["PRESENT", "OUTSIDE_MAX_AGE", "NULL_VALUE", "NOT_FOUND"])
    );
    assert_eq!(results[2]["values"], json!(["DE", "US", "FR", null]));
    assert_eq!(
        results[2]["statuses"],
        json!(["PRESENT", "OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"])
    );
    let ts = results[1]["event_timestamps"][0].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
        "{ts}"
    );
    assert_eq!(results[1]["event_timestamps"][3], "1970-01-01T00:00:00Z");
}

#[tokio::test]
async fn feature_service_and_full_names() {
    let s = Server::start().await;
    s.seed().await;
    let (status, body) = s
        .post_json(
            "/get-online-features",
            json!({"feature_service": "basics", "entities": {"user_id": [1]}, "full_feature_names": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["user_id", "user_profile__age", "user_profile__country"])
    );
    assert_eq!(body["results"][1]["values"], json!([30]));

    // Two views in one request: both read, each with its own join key.
    let (status, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["user_profile:age", "merchant_stats:score"], "full_feature_names": true,
                   "entities": {"user_id": [1, 2], "merchant": ["m1", "m2"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!([
            "user_id",
            "merchant",
            "user_profile__age",
            "merchant_stats__score"
        ])
    );
    assert_eq!(body["results"][2]["values"], json!([30, 41]));
    assert_eq!(
        body["results"][3]["statuses"],
        json!(["NOT_FOUND", "NOT_FOUND"])
    );
}

#[tokio::test]
async fn short_names_that_collide_are_refused() {
    let s = Server::start().await;
    let (status, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["user_profile:score", "merchant_stats:score"],
                   "entities": {"user_id": [1], "merchant": ["m1"]}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        error_message(&body).contains("full_feature_names"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_json_errors() {
    let s = Server::start().await;
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"features": ["nope:age"], "entities": {"user_id": [1]}}),
            404,
            "not_found",
            "no feature view `nope`",
        ),
        (
            json!({"features": ["user_profile:height"], "entities": {"user_id": [1]}}),
            404,
            "not_found",
            "has no feature `height`",
        ),
        (
            json!({"features": ["user_profile:age"], "entities": {"customer_id": [1]}}),
            422,
            "invalid_argument",
            "entity key `customer_id` is not a join key",
        ),
        (
            json!({"features": ["user_profile:age"], "entities": {"user_id": ["abc"]}}),
            422,
            "invalid_argument",
            "entity key `user_id` row 0: expected an integer",
        ),
        (
            json!({"features": ["user_profile:age", "merchant_stats:score"], "full_feature_names": true,
                   "entities": {"user_id": [1, 2], "merchant": ["m1"]}}),
            422,
            "invalid_argument",
            "has 1 values but `user_id` has 2",
        ),
        (
            json!({"features": ["user_profile:age", "merchant_stats:score"], "full_feature_names": true,
                   "entities": {"user_id": [1]}}),
            422,
            "invalid_argument",
            "missing entity key `merchant`",
        ),
        (
            json!({"features": ["user_profile:age"], "entities": {"user_id": (0..51).collect::<Vec<_>>()}}),
            422,
            "too_many_entities",
            "limit is 50",
        ),
        (
            json!({"features": ["user_profile"], "entities": {"user_id": [1]}}),
            422,
            "invalid_argument",
            "not of the form `view:feature`",
        ),
        (
            json!({"feature_service": "nope", "entities": {"user_id": [1]}}),
            404,
            "not_found",
            "unknown feature service `nope`",
        ),
        (
            json!({"entities": {"user_id": [1]}}),
            400,
            "malformed_request",
            "missing `features`",
        ),
        (
            json!({"features": ["user_profile:age"], "entities": {"user_id": 1}}),
            400,
            "malformed_request",
            "must be a list",
        ),
    ];
    for (request, status, kind, message) in cases {
        let (got, body) = s.post_json("/get-online-features", request.clone()).await;
        assert_eq!(got, status, "{request} -> {body}");
        assert_eq!(error_kind(&body), kind, "{request} -> {body}");
        assert!(
            error_message(&body).contains(message),
            "{request} -> {body}"
        );
    }

    let (status, body) = s.post("/get-online-features", "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(error_kind(&body), "malformed_request");
    assert!(error_message(&body).contains("invalid JSON"), "{body}");

    let big = format!(
        r#"{{"features": ["user_profile:age"], "entities": {{"user_id": [{}]}}}}"#,
        vec!["1"; 20_000].join(",")
    );
    let (status, body) = s.post("/get-online-features", big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_kind(&body), "payload_too_large");
}

#[tokio::test]
async fn writes_are_validated_all_or_nothing() {
    let s = Server::start().await;
    s.seed().await;
    let now = chrono::Utc::now().to_rfc3339();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1, 2], "age": [200, 5],
                   "country": ["DE", "DE"], "score": [1.0, 1.0], "event_timestamp": [now, now]}}),
            "field `age`: value `200` 200 is above `max` 130",
        ),
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1], "age": [5],
                   "country": ["DE"], "score": [1.0], "event_timestamp": [now], "height": [3]}}),
            "has no column `height`",
        ),
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1, 2], "age": [5],
                   "country": ["DE"], "score": [1.0], "event_timestamp": [now]}}),
            "has 1 values but `user_id` has 2",
        ),
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1], "age": ["old"],
                   "country": ["DE"], "score": [1.0], "event_timestamp": [now]}}),
            "column `age` row 0: expected int32",
        ),
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1], "age": [5],
                   "country": ["DE"], "event_timestamp": [now]}}),
            "missing column `score`",
        ),
        (
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1], "age": [5],
                   "country": ["DE"], "score": [1.0], "event_timestamp": ["yesterday"]}}),
            "invalid timestamp `yesterday`",
        ),
    ];
    for (request, message) in cases {
        let (status, body) = s.post_json("/write-to-online-store", request.clone()).await;
        assert_eq!(status, 422, "{request} -> {body}");
        assert!(
            error_message(&body).contains(message),
            "{request} -> {body}"
        );
    }
    let (status, body) = s
        .post_json(
            "/write-to-online-store",
            json!({"feature_view_name": "nope", "df": {}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // Nothing of the refused batches was written: user 1 still has its seeded age.
    let (_, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
        )
        .await;
    assert_eq!(body["results"][1]["values"], json!([30]));
}

#[tokio::test]
async fn values_beyond_the_declared_type_are_refused_not_stored_as_something_else() {
    let s = Server::start().await;
    let now = chrono::Utc::now().to_rfc3339();
    let write = |score: Value, visits: Value| {
        json!({"feature_view_name": "merchant_narrow", "df": {"merchant": ["m1", "m2"],
               "score": [0.5, score], "visits": [1, visits], "event_timestamp": [now, now]}})
    };
    let cases = [
        (
            write(json!(1e39), json!(2)),
            "column `score` row 1: 1e39 is outside float32's range",
        ),
        (
            write(json!(0.5), json!(3_000_000_000u64)),
            "column `visits` row 1: 3000000000 is outside int32's range",
        ),
        (
            write(json!(0.5), json!(1.5)),
            "column `visits` row 1: 1.5 is not an integer",
        ),
    ];
    for (request, message) in cases {
        let (status, body) = s.post_json("/write-to-online-store", request.clone()).await;
        assert_eq!(status, 422, "{request} -> {body}");
        let got = error_message(&body);
        assert!(
            got.contains("feature view `merchant_narrow`") && got.contains(message),
            "{request} -> {body}"
        );
    }
    // Nothing of the refused batches landed, not even their valid first rows.
    let (_, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["merchant_narrow:score"], "entities": {"merchant": ["m1"]}}),
        )
        .await;
    assert_eq!(body["results"][1]["statuses"], json!(["NOT_FOUND"]));
    // A whole float is an integer; the largest float32 is a float32.
    let (status, body) = s
        .post_json(
            "/write-to-online-store",
            write(json!(f64::from(f32::MAX)), json!(7.0)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_http_error_has_the_json_error_shape() {
    let s = Server::start().await;
    let resp = s
        .client
        .get(format!("http://{}/no-such-route", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(error_kind(&body), "not_found", "{body}");
    assert!(error_message(&body).contains("/no-such-route"), "{body}");

    let resp = s
        .client
        .get(format!("http://{}/get-online-features", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(
        resp.headers()
            .get("allow")
            .is_some_and(|v| v.to_str().unwrap().contains("POST")),
        "{:?}",
        resp.headers()
    );
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(error_kind(&body), "method_not_allowed", "{body}");

    // A repeated key is refused, naming the key, instead of the last one winning.
    let (status, body) = s
        .post(
            "/get-online-features",
            r#"{"features": ["user_profile:age"], "entities": {"user_id": [1], "user_id": [2]}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("key `user_id` appears twice"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/write-to-online-store",
            r#"{"feature_view_name": "merchant_stats", "df": {"merchant": ["m1"], "score": [1.0],
                "score": [2.0], "event_timestamp": ["2026-01-01T00:00:00Z"]}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("key `score` appears twice"),
        "{body}"
    );
}

#[tokio::test]
async fn older_writes_never_replace_newer() {
    let s = Server::start().await;
    s.seed().await;
    let old = (chrono::Utc::now() - chrono::Duration::hours(5)).to_rfc3339();
    let (status, body) = s
        .post_json(
            "/write-to-online-store",
            json!({"feature_view_name": "user_profile", "df": {"user_id": [1], "age": [99],
                   "country": ["DE"], "score": [1.0], "event_timestamp": [old]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped_older"], 1);
    let (_, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
        )
        .await;
    assert_eq!(body["results"][1]["values"], json!([30]));
}

#[tokio::test]
async fn health_and_metrics() {
    let s = Server::start().await;
    let (status, body) = s.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["online_store"]["kind"], "memory");
    s.post_json(
        "/get-online-features",
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
    )
    .await;
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("quiver_http_requests_total{route=\"/get-online-features\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("quiver_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn materialize_route_loads_sources() {
    let s = Server::start().await;
    let (status, body) = s.post("/materialize", "{}").await;
    assert_eq!(status, 200, "{body}");
    let views = body["views"].as_array().unwrap();
    assert_eq!(views.len(), 3, "{body}");
    assert!(views.iter().all(|v| v["written"] == 1), "{body}");
    assert!(
        views.iter().all(|v| v["rows_null_timestamp"] == 0),
        "{body}"
    );
    // The CSV row is from 2026-01-01, older than the view's 1d ttl.
    let (_, body) = s
        .post_json(
            "/get-online-features",
            json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
        )
        .await;
    assert_eq!(body["results"][1]["values"], json!([30]));
    assert_eq!(body["results"][1]["statuses"], json!(["OUTSIDE_MAX_AGE"]));
    let (status, body) = s.post("/materialize", r#"{"views": ["nope"]}"#).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.post("/materialize", r#"{"start": "soon"}"#).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn picks_up_a_new_registry_without_restart() {
    let s = Server::start().await;
    let defs = std::fs::read_to_string(s.dir.path().join("features/defs.yaml")).unwrap();
    std::fs::write(
        s.dir.path().join("features/defs.yaml"),
        defs.replace(
            "      - {name: score, type: float64}\n  - name: merchant_stats",
            "      - {name: score, type: float64}\n      - {name: tier, type: string}\n  - name: merchant_stats",
        ),
    )
    .unwrap();
    std::fs::write(
        s.dir.path().join("data/users.csv"),
        "user_id,age,country,score,tier,updated_at\n1,30,DE,0.5,gold,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    let mut other = FeatureStore::open(s.dir.path()).await.unwrap();
    let report = other.apply().await.unwrap();
    assert!(
        report.changes.iter().any(|c| c.name == "user_profile"),
        "{:?}",
        report.changes
    );
    let request = json!({"features": ["user_profile:tier"], "entities": {"user_id": [1]}});
    let mut last = (0, Value::Null);
    for _ in 0..50 {
        last = s.post_json("/get-online-features", request.clone()).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        last.0, 200,
        "server never saw the new view version: {}",
        last.1
    );
    assert_eq!(
        last.1["metadata"]["feature_names"],
        json!(["user_id", "tier"])
    );
    assert_eq!(last.1["results"][1]["statuses"], json!(["NOT_FOUND"]));
}
