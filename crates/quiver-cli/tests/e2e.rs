//! End to end through the built binary: init → apply → materialize → get → serve → HTTP, on the
//! embedded default and on Redis (a real `redis-server` on an ephemeral loopback port).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use quiver_test_utils::RedisServer;
use serde_json::{Value, json};

fn quiver(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project").arg(project).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quiver")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "quiver failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn init(root: &Path) -> std::path::PathBuf {
    let dir = root.join("shop");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["init"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("10000 users"), "{stdout}");
    assert!(dir.join("data/users.parquet").exists());
    assert!(dir.join("data/transactions.parquet").exists());
    dir
}

/// Runs apply (twice: the second is a no-op), materialize and a `get --json`.
fn apply_materialize_get(dir: &Path, env: &[(&str, &str)]) {
    let out = ok(quiver(dir, &["apply"], env));
    assert!(out.contains("+ feature view `user_profile` v1"), "{out}");
    assert!(out.contains("+ feature service `user_basics`"), "{out}");
    let out = ok(quiver(dir, &["apply"], env));
    assert!(out.contains("No changes"), "{out}");

    let out = ok(quiver(dir, &["materialize"], env));
    assert!(
        out.contains("10000 entities, 10000 written, 0 kept newer online, 0 rejected"),
        "{out}"
    );
    // Re-materializing the same data writes the same events again (equal is not older).
    let out = ok(quiver(
        dir,
        &["materialize", "--views", "user_profile"],
        env,
    ));
    assert!(out.contains("10000 written"), "{out}");

    let out = ok(quiver(
        dir,
        &[
            "get",
            "user_profile:age",
            "user_profile:embedding",
            "--entity",
            "user_id=42",
            "--entity",
            "user_id=99999999",
            "--json",
        ],
        env,
    ));
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["user_id", "age", "embedding"])
    );
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["PRESENT", "NOT_FOUND"])
    );
    let age = body["results"][1]["values"][0].as_i64().unwrap();
    assert!((18..=90).contains(&age), "{age}");
    assert_eq!(
        body["results"][2]["values"][0].as_array().unwrap().len(),
        16
    );

    let out = ok(quiver(
        dir,
        &["get", "--service", "user_basics", "--entity", "user_id=7"],
        env,
    ));
    assert!(out.contains("user_id=7"), "{out}");
    assert!(out.contains("country") && out.contains("PRESENT"), "{out}");
}

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, env: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project")
        .arg(dir)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served(child, addr)
}

async fn http_get_features(addr: &str) -> Value {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{addr}/get-online-features"))
        .body(
            json!({
                "features": ["user_profile:age", "user_profile:country"],
                "entities": {"user_id": [42, 7, -1]},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let health = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    body
}

fn check_feast_shape(body: &Value) {
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["user_id", "age", "country"])
    );
    assert_eq!(body["results"][0]["values"], json!([42, 7, -1]));
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    assert!(body["results"][2]["values"][0].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    apply_materialize_get(&dir, &[]);
    assert!(dir.join(".quiver/online.redb").exists());
    let mut served = serve(&dir, &[]);
    check_feast_shape(&http_get_features(&served.1).await);

    // SIGTERM stops the server cleanly (exit status 0) and releases the embedded file.
    let pid = served.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = served.0.wait().unwrap();
    assert!(status.success(), "server exited with {status}");
    ok(quiver(&dir, &["materialize"], &[]));

    // The README's records walkthrough on the example project.
    let out = ok(quiver(
        &dir,
        &[
            "records",
            "put",
            "transactions",
            "--json",
            r#"{"transaction_id": "t-1", "user_id": 42, "amount": 12.5}"#,
        ],
        &[],
    ));
    assert!(
        out.contains("accepted 1 records into `transactions`"),
        "{out}"
    );
    let out = ok(quiver(
        &dir,
        &["records", "get", "transactions", "t-1"],
        &[],
    ));
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["record"]["amount"], 12.5);
    let bad = quiver(
        &dir,
        &[
            "records",
            "put",
            "transactions",
            "--json",
            r#"{"transaction_id": "t-2", "amount": 1}"#,
        ],
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("field `user_id` is required"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let out = ok(quiver(&dir, &["records", "queue"], &[]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("transactions") && l.contains(" 1 ")),
        "{out}"
    );
    let out = ok(quiver(&dir, &["export"], &[]));
    assert!(
        out.contains("transactions: exported 1 in 1 batches, 0 still queued"),
        "{out}"
    );
    assert!(
        dir.join(".quiver/offline/records/demo__records__transactions")
            .exists()
            || std::fs::read_dir(dir.join(".quiver/offline/records"))
                .unwrap()
                .any(|e| e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("__records__transactions")),
        "the Parquet table exists"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_end_to_end() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    let url = redis.url();
    let env = [
        ("QUIVER__ONLINE_STORE__TYPE", "redis"),
        ("QUIVER__ONLINE_STORE__URL", url.as_str()),
    ];
    apply_materialize_get(&dir, &env);
    let served = serve(&dir, &env);
    check_feast_shape(&http_get_features(&served.1).await);

    // Keys are readable and carry the view's TTL (90d).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("quiver:shop:user_profile:v1:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys.len(), 10_000);
    assert!(keys.contains(&"quiver:shop:user_profile:v1:42".to_string()));
    let ttl: i64 = redis::cmd("TTL")
        .arg("quiver:shop:user_profile:v1:42")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 89 * 86_400 && ttl <= 90 * 86_400, "ttl {ttl}");
}

#[test]
fn apply_errors_name_file_object_and_field() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    let path = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("ttl: 90d", "ttl: 90 days please")).unwrap();
    let out = quiver(&dir, &["apply"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("features/users.yaml: feature view `user_profile`: field `ttl`"),
        "{stderr}"
    );
    // Nothing was recorded.
    assert!(!dir.join(".quiver/registry.json").exists());
}

#[test]
fn materialize_reports_rejected_rows() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    // Tighten a constraint so some users' ages violate it.
    let path = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("max: 130", "max: 60")).unwrap();
    ok(quiver(&dir, &["apply"], &[]));
    let out = ok(quiver(&dir, &["materialize"], &[]));
    assert!(
        out.contains("rejected: feature view `user_profile`: entity `user_id="),
        "{out}"
    );
    assert!(out.contains("field `age`"), "{out}");
    let strict = quiver(&dir, &["materialize", "--strict"], &[]);
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("strict mode"));
}

#[test]
fn training_set_walkthrough() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    ok(quiver(&dir, &["apply"], &[]));
    let out = ok(quiver(&dir, &["build"], &[]));
    assert!(
        out.contains("user_spend v1: 300000 rows into parquet directory"),
        "{out}"
    );
    let train = root.path().join("train.parquet");
    let labels = dir.join("data/labels.csv");
    let out = ok(quiver(
        &dir,
        &[
            "historical",
            "--entities",
            labels.to_str().unwrap(),
            "--feature-service",
            "fraud_model",
            "--out",
            train.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(out.contains("1000 rows x 8 columns"), "{out}");
    let batch = quiver::offline_io::read_file(&train).unwrap();
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "user_id",
            "event_timestamp",
            "label",
            "age",
            "country",
            "amount__sum__7d",
            "amount__count__1d",
            "amount__mean__30d"
        ]
    );
    let out = ok(quiver(&dir, &["materialize-incremental"], &[]));
    assert!(out.contains("user_spend v1"), "{out}");
    let out = ok(quiver(&dir, &["prune"], &[]));
    assert!(out.contains("user_spend: 0 rows"), "{out}");
}

/// The `sql.yaml.example` from `quiver init`, enabled as the README says: a filtered plain view
/// and aggregations over a filtered stream, checked against the transactions file directly.
#[cfg(feature = "sql")]
#[test]
fn sql_transform_walkthrough() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};

    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());
    std::fs::rename(
        dir.join("features/sql.yaml.example"),
        dir.join("features/sql.yaml"),
    )
    .unwrap();
    let out = ok(quiver(&dir, &["apply"], &[]));
    assert!(
        out.contains("+ feature view `user_last_travel` v1"),
        "{out}"
    );
    assert!(out.contains("+ feature view `user_big_ticket` v1"), "{out}");

    // The oracle: per user, the latest travel transaction and all big-ticket ones.
    let tx = quiver::offline_io::read_file(&dir.join("data/transactions.parquet")).unwrap();
    let col = |name: &str| tx.column(tx.schema().index_of(name).unwrap()).clone();
    let (users, amounts, categories, times) = (
        col("user_id"),
        col("amount"),
        col("merchant_category"),
        col("event_time"),
    );
    let users = users.as_primitive::<Int64Type>();
    let amounts = amounts.as_primitive::<Float64Type>();
    let categories = categories.as_string::<i32>();
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let mut last_travel: std::collections::HashMap<i64, (i64, f64)> = Default::default();
    let mut big_ticket: Vec<(i64, i64, f64)> = Vec::new();
    for row in 0..tx.num_rows() {
        let (user, t, amount) = (users.value(row), times.value(row), amounts.value(row));
        let category = categories.value(row);
        if category == "travel" {
            let best = last_travel.entry(user).or_insert((t, amount));
            if t >= best.0 {
                *best = (t, amount);
            }
        }
        if category == "travel" || category == "electronics" {
            big_ticket.push((user, t * 1_000, amount));
        }
    }

    let out = ok(quiver(
        &dir,
        &["materialize", "--views", "user_last_travel"],
        &[],
    ));
    assert!(
        out.contains(&format!("{} entities", last_travel.len())),
        "{out}"
    );
    let mut travellers: Vec<i64> = last_travel.keys().copied().collect();
    travellers.sort_unstable();
    let mut args = vec![
        "get".to_string(),
        "user_last_travel:travel_amount".into(),
        "user_last_travel:travel_rounded".into(),
    ];
    for user in travellers.iter().take(5) {
        args.push("--entity".into());
        args.push(format!("user_id={user}"));
    }
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let body: Value = serde_json::from_str(&ok(quiver(&dir, &args, &[]))).unwrap();
    for (i, user) in travellers.iter().take(5).enumerate() {
        let amount = last_travel[user].1;
        assert_eq!(
            body["results"][1]["values"][i],
            json!(amount),
            "user {user}"
        );
        assert_eq!(
            body["results"][2]["values"][i],
            json!(amount.round()),
            "user {user}"
        );
    }

    // Windows over the SQL result, evaluated at each label row's own time.
    ok(quiver(&dir, &["build", "--views", "user_big_ticket"], &[]));
    let train = root.path().join("train.parquet");
    let labels = dir.join("data/labels.csv");
    ok(quiver(
        &dir,
        &[
            "historical",
            "--entities",
            labels.to_str().unwrap(),
            "--features",
            "user_big_ticket:amount__sum__7d,user_big_ticket:amount__count__30d",
            "--out",
            train.to_str().unwrap(),
        ],
        &[],
    ));
    let batch = quiver::offline_io::read_file(&train).unwrap();
    let at = batch.column_by_name("event_timestamp").unwrap();
    // A training set's time column is UTC microseconds, whatever the CSV's precision.
    assert_eq!(
        at.data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
    );
    let at = at.as_primitive::<TimestampMicrosecondType>();
    let who = batch.column_by_name("user_id").unwrap();
    let who = who.as_primitive::<Int64Type>();
    let sums = batch.column_by_name("amount__sum__7d").unwrap();
    let sums = sums.as_primitive::<Float64Type>();
    let counts = batch.column_by_name("amount__count__30d").unwrap();
    let counts = counts.as_primitive::<Int64Type>();
    let mut non_empty = 0;
    for row in 0..batch.num_rows() {
        let (user, t) = (who.value(row), at.value(row) * 1_000);
        let week = 7 * 86_400 * 1_000_000_000_i64;
        let month = 30 * 86_400 * 1_000_000_000_i64;
        let in_week: Vec<f64> = big_ticket
            .iter()
            .filter(|(u, e, _)| *u == user && *e <= t && *e > t - week)
            .map(|(_, _, a)| *a)
            .collect();
        let in_month = big_ticket
            .iter()
            .filter(|(u, e, _)| *u == user && *e <= t && *e > t - month)
            .count();
        assert_eq!(counts.value(row) as usize, in_month, "row {row}");
        if in_week.is_empty() {
            continue;
        }
        non_empty += 1;
        let expected: f64 = in_week.iter().sum();
        assert!(
            (sums.value(row) - expected).abs() < 1e-6 * expected.abs().max(1.0),
            "row {row}: {} vs {expected}",
            sums.value(row)
        );
    }
    assert!(
        non_empty > 0,
        "some label rows have big-ticket spend in their week"
    );
}
