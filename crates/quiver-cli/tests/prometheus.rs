//! The Grafana dashboard and the Prometheus alert rules in `deploy/`, proven against the real
//! thing:
//! - `promtool check rules` and `promtool test rules` (the unit tests in
//!   `deploy/prometheus/alerts_test.yml`, one firing and one quiet case per alert);
//! - a real Prometheus on loopback scrapes `quiver serve` (Redis online store, fallbacks and a
//!   lazily computed view configured) after traffic that hits, misses, falls back, computes,
//!   writes, refuses bad requests, puts and exports records, and survives a Redis outage; every
//!   PromQL expression of the dashboard and of the rules must parse and return data.
//!
//! "Return data" has one explicit rule, [`with_bool`]: an alert condition is empty while it is
//! false (`x > 0.1` on a healthy server), so its top-level comparisons are evaluated with
//! `bool` (`x > bool 0.1`), which returns 0 or 1 wherever both sides have data. Filters inside
//! parentheses (`max > 0`) stay filters.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use quiver_test_utils::RedisServer;
use quiver_test_utils::prometheus::PrometheusServer;
use serde_json::{Value, json};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn alerts_path() -> PathBuf {
    deploy().join("prometheus/alerts.yml")
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `promtool` ({e}); install it with `apt-get install -y prometheus`")
        })
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_rules() {
    let dir = deploy().join("prometheus");
    let out = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert_success("promtool check rules alerts.yml", &out);
}

#[test]
fn promtool_unit_tests_pass() {
    let dir = deploy().join("prometheus");
    let out = promtool(&["test", "rules", "alerts_test.yml"], &dir);
    assert_success("promtool test rules alerts_test.yml", &out);
    // Every alert of alerts.yml has a unit test.
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for (name, _) in alert_rules() {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "alerts_test.yml has no case for {name}"
        );
    }
}

/// `(alert or record name, expr)` of every rule in alerts.yml.
fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(alerts_path()).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).expect("alerts.yml is YAML");
    let mut rules = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert or record name");
            let expr = rule["expr"].as_str().expect("expr");
            rules.push((name.to_string(), expr.trim().to_string()));
        }
    }
    rules
}

/// `(panel title, expr)` of every query in the dashboard, template variables substituted, and
/// the `view` variable's query as PromQL.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = deploy().join("grafana/quiver-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(doc["schemaVersion"], 39);
    let mut out = Vec::new();
    collect_exprs(&doc, "", &mut out);
    for var in doc["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            out.push((format!("variable {}", var["name"]), label_values(q)));
        }
    }
    out.into_iter()
        .map(|(title, expr)| (title, substitute(&expr)))
        .collect()
}

fn collect_exprs(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push((title.to_string(), expr.clone())),
                    _ => collect_exprs(v, title, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, title, out)),
        _ => {}
    }
}

/// Grafana's `label_values(metric, label)` as the PromQL that has the same answer.
fn label_values(query: &str) -> String {
    let args = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values query: {query}"));
    let (metric, label) = args.rsplit_once(',').unwrap();
    format!("count by ({}) ({})", label.trim(), metric.trim())
}

/// Grafana's variables as a query over all views in the last hour would see them.
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("${view}", ".*")
        .replace("$view", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    assert!(!out.contains('$'), "unknown template variable in {expr}");
    out
}

/// The expression with `bool` after each top-level comparison operator (outside parentheses,
/// braces, brackets and strings): the value of the condition instead of a filter.
fn with_bool(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() + 16);
    let (mut depth, mut quote) = (0i32, None::<char>);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(n) = next {
                    out.push(n);
                    i += 1;
                }
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            _ => {}
        }
        let op_len = match (c, next) {
            ('=' | '!' | '>' | '<', Some('=')) => 2,
            ('>' | '<', _) => 1,
            _ => 0,
        };
        if depth == 0 && op_len > 0 {
            let op: String = chars[i..i + op_len].iter().collect();
            out.push_str(&op);
            i += op_len;
            let rest: String = chars[i..].iter().collect();
            if !rest.trim_start().starts_with("bool") {
                out.push_str(" bool");
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[test]
fn with_bool_turns_top_level_comparisons_only() {
    assert_eq!(with_bool("up == 0"), "up == bool 0");
    assert_eq!(
        with_bool(r#"a{x!="1"} / (b > 0) > 0.9"#),
        r#"a{x!="1"} / (b > 0) > bool 0.9"#
    );
    assert_eq!(
        with_bool("x < 0.8\nand on (view)\n  y >= 100"),
        "x < bool 0.8\nand on (view)\n  y >= bool 100"
    );
    assert_eq!(with_bool("a > on (view) b"), "a > bool on (view) b");
    assert_eq!(with_bool("sum(rate(x[1m]))"), "sum(rate(x[1m]))");
}

// ---------------------------------------------------------------------------------------------
// Against a real Prometheus scraping a real `quiver serve`.

fn quiver(project: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project").arg(project).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run quiver");
    assert_success(&format!("quiver {args:?}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Served(Child, SocketAddr);

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
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Served(child, addr)
}

/// The example project, with `user_profile` falling back to the offline store on a miss and
/// declaring a freshness bound, and `user_spend` (not materialized) computed at request time on
/// a miss or an outage.
fn project(root: &Path) -> PathBuf {
    let dir = root.join("shop");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_success("quiver init", &out);
    let path = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text
        .replace(
            "    ttl: 90d\n",
            "    ttl: 90d\n    fallback: {layer: offline, on: [miss]}\n    freshness: {max_age: 1h}\n",
        )
        .replace(
            "    ttl: 2d\n",
            "    ttl: 2d\n    fallback: {layer: offline, on: [unavailable, miss]}\n    cost_per_computation: 2.5\n",
        );
    assert_eq!(edited.matches("fallback:").count(), 2, "{edited}");
    std::fs::write(&path, edited).unwrap();
    dir
}

fn set_maxmemory(redis: &RedisServer) {
    let client = redis::Client::open(redis.url().as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1gb")
        .query(&mut con)
        .unwrap();
}

struct Traffic {
    client: reqwest::Client,
    base: String,
}

impl Traffic {
    async fn post(&self, path: &str, body: Value) -> u16 {
        self.client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn get(&self, path: &str) -> u16 {
        let resp = self.client.get(format!("{}{path}", self.base)).send();
        resp.await.unwrap().status().as_u16()
    }

    async fn features(&self, features: &[&str], users: &[i64]) -> u16 {
        let body = json!({"features": features, "entities": {"user_id": users}});
        self.post("/get-online-features", body).await
    }

    /// One round of everything a dashboard panel or an alert looks at.
    async fn round(&self, n: usize) {
        // Hits, and a miss that falls back to the offline store (which has no user -1 either).
        let profile = ["user_profile:age", "user_profile:country"];
        assert_eq!(self.features(&profile, &[42, 7, 99, -1]).await, 200);
        // Computed on the first miss, then read through into the online store.
        let spend = ["user_spend:amount__sum__7d", "user_spend:amount__count__1d"];
        let user = 1 + n as i64;
        assert_eq!(self.features(&spend, &[user, 42]).await, 200);
        // A Feast push.
        let now = chrono::Utc::now().to_rfc3339();
        let write = json!({"feature_view_name": "user_profile", "df": {
            "user_id": [424_242 + n as i64], "age": [33], "country": ["DE"], "signup_days": [10],
            "embedding": [vec![0.5_f32; 16]], "event_timestamp": [now]}});
        assert_eq!(self.post("/write-to-online-store", write).await, 200);
        // Client errors: an unknown feature, a key of the wrong type.
        let status = self.features(&["user_profile:nope"], &[42]).await;
        assert!((400..500).contains(&status), "{status}");
        let bad = json!({"features": ["user_profile:age"], "entities": {"user_id": ["x"]}});
        let status = self.post("/get-online-features", bad).await;
        assert!((400..500).contains(&status), "{status}");
        // Records.
        let record = json!({"user_id": 42, "amount": 12.5});
        let status = self
            .client
            .put(format!("{}/records/transactions/t-{n}", self.base))
            .json(&record)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
        assert_eq!(self.get("/ready").await, 200);
        assert_eq!(self.get("/health").await, 200);
    }

    /// Calls `/health` (which refreshes the store's gauges) until Prometheus has scraped a state
    /// where `expr` returns data.
    async fn health_until(&self, prometheus: &PrometheusServer, expr: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            self.get("/health").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let answer = prometheus.query(expr);
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{expr}` returned no data within 20 s: {answer}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_alert_expressions_run_against_prometheus_scraping_quiver() {
    let mut redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path());
    let url = redis.url();
    let env = [
        ("QUIVER__ONLINE_STORE__TYPE", "redis"),
        ("QUIVER__ONLINE_STORE__URL", url.as_str()),
    ];
    quiver(&dir, &["apply"], &env);
    quiver(&dir, &["materialize", "--views", "user_profile"], &env);
    set_maxmemory(&redis);
    let served = serve(&dir, &env);
    let traffic = Traffic {
        client: reqwest::Client::new(),
        base: format!("http://{}", served.1),
    };

    traffic.round(0).await;
    let alerts = alerts_path();
    let prometheus = PrometheusServer::start(&[served.1], &[alerts.as_path()]);
    prometheus.wait_for_scrapes(2, Duration::from_secs(30));
    traffic.round(1).await;
    assert_eq!(traffic.post("/export", json!({})).await, 200);

    // An outage: the store is down (and Prometheus sees the alert's condition), reads of
    // `user_profile` fail, `user_spend` falls back to computing.
    redis.kill();
    for _ in 0..6 {
        // No fallback on `unavailable`: an error (its status is the server's business here).
        traffic.features(&["user_profile:age"], &[42]).await;
        let spend = ["user_spend:amount__sum__7d"];
        assert_eq!(traffic.features(&spend, &[42]).await, 200);
    }
    traffic
        .health_until(&prometheus, "quiver_online_store_up == 0")
        .await;
    redis.restart();
    set_maxmemory(&redis);
    traffic
        .health_until(&prometheus, "quiver_online_store_up == 1")
        .await;
    for n in 2..5 {
        traffic.round(n).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    prometheus.wait_for_scrapes(8, Duration::from_secs(30));

    let mut queries: Vec<(String, String)> = alert_rules();
    queries.extend(dashboard_queries());
    let (mut errors, mut empty) = (Vec::new(), Vec::new());
    for (source, expr) in &queries {
        let answer = prometheus.query(expr);
        if answer["status"] != "success" {
            errors.push(format!("{source}: {expr}\n  -> {answer}"));
            continue;
        }
        let data = with_bool(expr);
        let answer = prometheus.query(&data);
        let result = &answer["data"]["result"];
        if answer["status"] != "success" || result.as_array().is_none_or(Vec::is_empty) {
            empty.push(format!("{source}: {data}\n  -> {answer}"));
        }
    }
    // Prometheus loaded every rule and evaluates each without error (no many-to-many matches).
    let rules = prometheus.get("/api/v1/rules");
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), alert_rules().len(), "{rules}");
    for rule in &loaded {
        if rule["health"] != "ok" {
            errors.push(format!(
                "rule {} evaluates with {}: {}",
                rule["name"], rule["health"], rule["lastError"]
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} expressions fail in Prometheus:\n{}",
        errors.len(),
        queries.len(),
        errors.join("\n")
    );
    assert!(
        empty.is_empty(),
        "{} of {} expressions return no data after the traffic:\n{}\n/metrics:\n{}",
        empty.len(),
        queries.len(),
        empty.join("\n"),
        reqwest::get(format!("{}/metrics", traffic.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    );
}
