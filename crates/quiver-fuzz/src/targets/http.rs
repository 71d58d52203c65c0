//! The Feast routes' request parsers, through the real router: `POST /get-online-features` and
//! `POST /write-to-online-store` (`quiver_server::router` driven by `tower::ServiceExt::oneshot`,
//! no socket).
//!
//! Bodies are JSON built from the project's real names (views, features, join keys, the service)
//! plus garbage: keys of the wrong type, nulls, nested values, numbers no `i64`/`f64` holds,
//! repeated keys, odd timestamps, ragged `df` columns; some are then byte-mutated or replaced by
//! garbage. Every answer must be a 2xx with the route's JSON shape or a 4xx with the server's
//! error shape `{"error": {"kind", "message"}}`; a 5xx or a panic is a finding.
//!
//! Each thread serves its own project (the embedded layout, with the in-memory online store so
//! ten million writes stay fast; `QUIVER_FUZZ_ONLINE=embedded` uses the redb file instead), made
//! again every [`REBUILD_EVERY`] requests so the store does not grow without bound.

use std::cell::RefCell;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use quiver::FeatureStore;
use quiver_server::AppState;
use serde_json::Value as J;
use tower::ServiceExt;

use crate::input::{
    Json, any_json, edge_i64, mutate, number, odd_string, one_in, timestamp_text, word,
};

/// Requests served by one project before it is made again.
const REBUILD_EVERY: u64 = 200_000;
/// `server.max_entities` of the project.
const MAX_ENTITIES: usize = 100;

const CONFIG: &str = "project: fuzz
online_store:
  {online}
server:
  max_entities: 100
  max_body_bytes: 1000000
";

/// The server tests' project (`crates/quiver-server/tests/http.rs`) plus `kitchen`, a view of
/// every value type with constraints and a compound key, and a service over it.
const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
  - {name: merchant, join_keys: [merchant], key_type: string}
sources:
  - {name: users, path: data/users.csv, timestamp_field: updated_at}
  - {name: merchants, path: data/merchants.csv, timestamp_field: ts}
  - {name: kitchen_rows, path: data/kitchen.parquet, timestamp_field: ts, created_timestamp_field: created_at}
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
  - name: kitchen
    entities: [user, merchant]
    source: kitchen_rows
    fields:
      - {name: i32, type: int32}
      - {name: i64, type: int64, not_null: true}
      - {name: f32, type: float32, min: -1.0, max: 1.0}
      - {name: f64, type: float64}
      - {name: flag, type: bool}
      - {name: label, type: string, one_of: [a, b]}
      - {name: blob, type: bytes}
      - {name: at, type: timestamp}
      - {name: price, type: decimal}
      - {name: vec, type: "list<float32>", dim: 3}
      - {name: vec64, type: "list<float64>"}
      - {name: ids, type: "list<int64>"}
      - {name: tags, type: "list<string>"}
      - {name: times, type: "list<timestamp>"}
      - {name: prices, type: "list<decimal>"}
      - {name: bits, type: "list<bool>"}
      - {name: blobs, type: "list<bytes>"}
feature_services:
  - {name: basics, features: ["user_profile:age", "user_profile:country"]}
  - {name: everything, features: [user_profile, kitchen]}
"#;

/// A view: its name, its columns and types (join keys first), its source's timestamp column.
type View = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const VIEWS: &[View] = &[
    (
        "user_profile",
        &[
            ("user_id", "int64"),
            ("age", "int32"),
            ("country", "string"),
            ("score", "float64"),
        ],
        "updated_at",
    ),
    (
        "merchant_stats",
        &[("merchant", "string"), ("score", "float64")],
        "ts",
    ),
    (
        "merchant_narrow",
        &[
            ("merchant", "string"),
            ("score", "float32"),
            ("visits", "int32"),
        ],
        "ts",
    ),
    (
        "kitchen",
        &[
            ("user_id", "int64"),
            ("merchant", "string"),
            ("i32", "int32"),
            ("i64", "int64"),
            ("f32", "float32"),
            ("f64", "float64"),
            ("flag", "bool"),
            ("label", "string"),
            ("blob", "bytes"),
            ("at", "timestamp"),
            ("price", "decimal"),
            ("vec", "list<float32>"),
            ("vec64", "list<float64>"),
            ("ids", "list<int64>"),
            ("tags", "list<string>"),
            ("times", "list<timestamp>"),
            ("prices", "list<decimal>"),
            ("bits", "list<bool>"),
            ("blobs", "list<bytes>"),
        ],
        "ts",
    ),
];

const FEATURES: &[&str] = &[
    "user_profile:age",
    "user_profile:country",
    "user_profile:score",
    "merchant_stats:score",
    "merchant_narrow:score",
    "merchant_narrow:visits",
    "kitchen:vec",
    "kitchen:price",
    "kitchen:at",
    "kitchen:blobs",
    "user_profile",
    "user_profile:",
    ":age",
    "user_profile:nope",
    "nope:age",
    "a:b:c",
];

const JOIN_KEYS: &[&str] = &["user_id", "merchant", "driver_id"];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    state: Arc<AppState>,
    served: u64,
    _dir: tempfile::TempDir,
}

thread_local! {
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        let online = match std::env::var("QUIVER_FUZZ_ONLINE").as_deref() {
            Ok("embedded") => "type: embedded\n  path: .quiver/online.redb",
            _ => "type: memory",
        };
        let files = [
            ("quiver.yaml", CONFIG.replace("{online}", online)),
            ("features/defs.yaml", DEFS.to_string()),
            (
                "data/users.csv",
                "user_id,age,country,score,updated_at\n1,30,DE,0.5,2026-01-01T00:00:00Z\n".into(),
            ),
            (
                "data/merchants.csv",
                "merchant,score,visits,ts\nm1,0.5,3,2026-01-01T00:00:00Z\n".into(),
            ),
        ];
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a project dir");
            std::fs::write(path, text).expect("a project file");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let store = runtime.block_on(async {
            let mut store = FeatureStore::open(root).await.expect("the project opens");
            store.apply().await.expect("the project applies");
            store
        });
        let state = AppState::new(store).expect("the example project's server config is valid");
        Server {
            runtime,
            router: quiver_server::router(state.clone()),
            state,
            served: 0,
            _dir: dir,
        }
    }

    /// Sends `body` to `path`; panics on a 5xx or an answer not in the server's shapes.
    fn post(&mut self, path: &str, body: Vec<u8>) {
        self.served += 1;
        if self.served.is_multiple_of(10_000) {
            // What `serve` does every few seconds: histogram samples are kept until drained.
            self.state.metrics.run_upkeep();
        }
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .expect("a request");
        let router = self.router.clone();
        let (status, answer) = self.runtime.block_on(async move {
            let response = router
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("the body is readable")
                .to_bytes();
            (status, bytes)
        });
        judge(path, &body, status, &answer);
        // `QUIVER_FUZZ_DETAIL=1` counts by the start of the error message too.
        let detail = std::env::var_os("QUIVER_FUZZ_DETAIL").is_some();
        let kind = serde_json::from_slice::<J>(&answer)
            .ok()
            .and_then(|j| {
                let kind = j["error"]["kind"].as_str()?.to_string();
                let message: String = j["error"]["message"].as_str()?.chars().take(40).collect();
                Some(if detail {
                    format!("{kind}: {message}")
                } else {
                    kind
                })
            })
            .unwrap_or_default();
        crate::stats::count(
            if path == "/write-to-online-store" {
                "write_to_online_store"
            } else {
                "get_online_features"
            },
            format!("{} {kind}", status.as_u16()),
        );
    }
}

fn with_server(f: impl FnOnce(&mut Server)) {
    SERVER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|s| s.served >= REBUILD_EVERY) {
            *slot = None;
            *slot = Some(Server::start());
        }
        if let Some(server) = slot.as_mut() {
            f(server);
        }
    });
}

/// The answer must be a 2xx in the route's shape or a 4xx in the error shape.
fn judge(path: &str, sent: &[u8], status: StatusCode, answer: &[u8]) {
    let sent = String::from_utf8_lossy(&sent[..sent.len().min(2000)]);
    let text = String::from_utf8_lossy(answer);
    assert!(
        status.is_success() || status.is_client_error(),
        "{path} answered {status} to bad input: {text} (request: {sent})"
    );
    let json: J = serde_json::from_slice(answer)
        .unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON ({e}): {text}"));
    if status.is_client_error() {
        let ok = json["error"]["kind"].is_string() && json["error"]["message"].is_string();
        assert!(
            ok,
            "{path} answered {status} without the error shape: {text}"
        );
        return;
    }
    if path == "/get-online-features" {
        let names = json["metadata"]["feature_names"].as_array();
        let results = json["results"].as_array();
        let (Some(names), Some(results)) = (names, results) else {
            panic!("{path} answered {status} without names or results: {text}");
        };
        assert_eq!(names.len(), results.len(), "names vs results: {text}");
        for r in results {
            let lens =
                ["values", "statuses", "event_timestamps"].map(|k| r[k].as_array().map(Vec::len));
            assert!(
                lens[0].is_some() && lens.iter().all(|l| *l == lens[0]),
                "ragged result {r} in {text}"
            );
        }
    } else {
        assert!(json["written"].is_u64(), "{path}: {text}");
    }
}

/// Fuzz target: `POST /get-online-features` (see the module docs).
pub fn get_online_features(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(body) = finish(&mut u, get_body) {
        with_server(|s| s.post("/get-online-features", body));
    }
}

/// Fuzz target: `POST /write-to-online-store` (see the module docs).
pub fn write_to_online_store(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(body) = finish(&mut u, write_body) {
        with_server(|s| s.post("/write-to-online-store", body));
    }
}

/// The body's text, sometimes byte-mutated, sometimes plain garbage.
fn finish(
    u: &mut Unstructured<'_>,
    body: fn(&mut Unstructured<'_>) -> Result<Json>,
) -> Result<Vec<u8>> {
    if one_in(u, 30)? {
        return u.arbitrary();
    }
    let mut bytes = body(u)?.to_text().into_bytes();
    if one_in(u, 10)? {
        mutate(u, &mut bytes)?;
    }
    Ok(bytes)
}

fn get_body(u: &mut Unstructured<'_>) -> Result<Json> {
    let mut fields = Vec::new();
    let selection = u.int_in_range(0u8..=9)?;
    if (1..=6).contains(&selection) || selection == 9 {
        let value = if one_in(u, 15)? {
            any_json(u, 2)?
        } else {
            let n = u.int_in_range(1usize..=5)? - usize::from(one_in(u, 20)?);
            Json::Array(
                (0..n)
                    .map(|_| Ok(Json::Str(word(u, FEATURES)?)))
                    .collect::<Result<_>>()?,
            )
        };
        fields.push(("features".to_string(), value));
    }
    if selection >= 7 {
        let value = if one_in(u, 10)? {
            any_json(u, 1)?
        } else {
            Json::Str(word(u, &["basics", "everything", "nope"])?)
        };
        fields.push(("feature_service".to_string(), value));
    }
    if !one_in(u, 20)? {
        fields.push(("entities".to_string(), entities(u)?));
    }
    if one_in(u, 3)? {
        let value = if one_in(u, 10)? {
            any_json(u, 1)?
        } else {
            Json::Bool(u.arbitrary()?)
        };
        fields.push(("full_feature_names".to_string(), value));
    }
    if one_in(u, 6)? {
        let value = if one_in(u, 10)? {
            any_json(u, 1)?
        } else {
            Json::Str(timestamp_text(u)?)
        };
        fields.push(("as_of".to_string(), value));
    }
    extras(u, &mut fields)?;
    Ok(Json::Object(fields))
}

fn entities(u: &mut Unstructured<'_>) -> Result<Json> {
    if one_in(u, 20)? {
        return any_json(u, 2);
    }
    // Distinct keys, mostly one or two (an empty map, or a repeated key, now and then).
    let keys = if one_in(u, 20)? {
        0
    } else {
        u.int_in_range(1usize..=2)?
    };
    let mut names: Vec<&str> = JOIN_KEYS.to_vec();
    let rows = if one_in(u, 40)? {
        u.int_in_range(MAX_ENTITIES - 1..=MAX_ENTITIES + 1)?
    } else {
        u.int_in_range(0usize..=4)?
    };
    let mut columns = Vec::new();
    for _ in 0..keys {
        let name = if one_in(u, 10)? {
            word(u, JOIN_KEYS)?
        } else {
            let i = u.choose_index(names.len())?;
            names.swap_remove(i).to_string()
        };
        let ty = match name.as_str() {
            "user_id" => "int64",
            _ => "string",
        };
        let value = if one_in(u, 20)? {
            any_json(u, 1)?
        } else {
            let n = if one_in(u, 10)? {
                u.int_in_range(0usize..=5)?
            } else {
                rows
            };
            Json::Array((0..n).map(|_| value_for(u, ty)).collect::<Result<_>>()?)
        };
        columns.push((name, value));
    }
    Ok(Json::Object(columns))
}

fn write_body(u: &mut Unstructured<'_>) -> Result<Json> {
    let mut fields = Vec::new();
    let &(view, columns, ts_field) = u.choose(VIEWS)?;
    if !one_in(u, 20)? {
        let name = if one_in(u, 10)? {
            if u.arbitrary()? {
                any_json(u, 1)?
            } else {
                Json::Str(odd_string(u)?)
            }
        } else {
            Json::str(view)
        };
        fields.push(("feature_view_name".to_string(), name));
    }
    if !one_in(u, 20)? {
        fields.push(("df".to_string(), df(u, columns, ts_field)?));
    }
    extras(u, &mut fields)?;
    Ok(Json::Object(fields))
}

fn df(u: &mut Unstructured<'_>, columns: &[(&str, &str)], ts_field: &str) -> Result<Json> {
    if one_in(u, 20)? {
        return any_json(u, 2);
    }
    let rows = u.int_in_range(0usize..=4)?;
    let mut out: Vec<(String, Json)> = Vec::new();
    let mut column = |u: &mut Unstructured<'_>, name: &str, ty: &str| -> Result<()> {
        let n = if one_in(u, 15)? {
            u.int_in_range(0usize..=5)?
        } else {
            rows
        };
        let value = if one_in(u, 25)? {
            any_json(u, 1)?
        } else {
            Json::Array((0..n).map(|_| value_for(u, ty)).collect::<Result<_>>()?)
        };
        out.push((name.to_string(), value));
        Ok(())
    };
    for (name, ty) in columns {
        if !one_in(u, 15)? {
            column(u, name, ty)?;
        }
    }
    let ts_name = if u.arbitrary()? {
        "event_timestamp"
    } else {
        ts_field
    };
    if !one_in(u, 15)? {
        column(u, ts_name, "timestamp")?;
    }
    if one_in(u, 3)? {
        column(u, "created", "timestamp")?;
    }
    if one_in(u, 12)? {
        let name = word(u, &["event_timestamp", "created", "age", "extra"])?;
        column(u, &name, "string")?;
    }
    Ok(Json::Object(out))
}

/// Unknown fields (Feast sends some) and, rarely, a repeated one.
fn extras(u: &mut Unstructured<'_>, fields: &mut Vec<(String, Json)>) -> Result<()> {
    if one_in(u, 10)? {
        fields.push((
            word(
                u,
                &[
                    "allow_registry_cache",
                    "include_feature_view_version_metadata",
                ],
            )?,
            any_json(u, 1)?,
        ));
    }
    if one_in(u, 30)? && !fields.is_empty() {
        let i = u.choose_index(fields.len())?;
        let repeated = fields[i].clone();
        fields.push(repeated);
    }
    if fields.len() > 1 && one_in(u, 10)? {
        let i = u.choose_index(fields.len())?;
        fields.rotate_left(i);
    }
    Ok(())
}

/// A value for a column of type `ty`: mostly of that type, sometimes not.
fn value_for(u: &mut Unstructured<'_>, ty: &str) -> Result<Json> {
    if one_in(u, 10)? {
        return Ok(Json::Null);
    }
    if one_in(u, 12)? {
        return any_json(u, 2);
    }
    if let Some(inner) = ty.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        let n = if one_in(u, 30)? {
            u.int_in_range(0usize..=300)?
        } else {
            u.int_in_range(0usize..=4)?
        };
        return Ok(Json::Array(
            (0..n).map(|_| value_for(u, inner)).collect::<Result<_>>()?,
        ));
    }
    Ok(match ty {
        "int32" | "int64" => {
            if one_in(u, 3)? {
                number(u)?
            } else {
                Json::int(u.int_in_range(0i64..=20)?)
            }
        }
        "float32" | "float64" => {
            if one_in(u, 5)? {
                Json::str(*u.choose(&["NaN", "Infinity", "-Infinity", "1.5", "inf"])?)
            } else {
                number(u)?
            }
        }
        "bool" => u
            .choose(&[
                Json::Bool(true),
                Json::Bool(false),
                Json::int(1),
                Json::Str("true".into()),
            ])?
            .clone(),
        "bytes" => Json::str(*u.choose(&["AAEC", "", "AAE=", "AAE", "!!!", "_-8=", "AA==="])?),
        "timestamp" => {
            if one_in(u, 8)? {
                Json::int(edge_i64(u)?)
            } else {
                Json::Str(timestamp_text(u)?)
            }
        }
        "decimal" => {
            if one_in(u, 5)? {
                number(u)?
            } else {
                Json::str(*u.choose(&[
                    "1.50",
                    "-0",
                    "79228162514264337593543950335",
                    "79228162514264337593543950336",
                    "-79228162514264337593543950336",
                    "0.0000000000000000000000000001",
                    "0.00000000000000000000000000001",
                    "1e5",
                    "1E-30",
                    "abc",
                    "",
                ])?)
            }
        }
        _ => {
            if one_in(u, 10)? {
                number(u)?
            } else {
                Json::Str(word(u, &["m1", "a", "b", "DE", "US", "42"])?)
            }
        }
    })
}
