//! `quiver status` and `quiver skew` through the built binary: serve a logged feature service
//! with `quiver serve`, export the logs, change the source, and the terminal report and the
//! HTML report (opened in headless Chromium) show exactly the changed rows.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn quiver(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(project)
        .args(args)
        .output()
        .expect("run quiver")
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

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: users, path: data/users.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: users
    ttl: 1d
    freshness: {max_age: 2h}
    fields:
      - {name: age, type: int64}
      - {name: score, type: float64}
  - name: stale_profile
    entities: [user]
    source: users
    ttl: 1d
    freshness: {max_age: 30m}
    fields:
      - {name: age, type: int64}
feature_services:
  - name: scoring
    features: [profile]
    logging: {sample_rate: 1.0}
"#;

const USERS: i64 = 200;

/// Users 1..=200 at `at`; `rewritten` users get another score at the same event time.
fn write_source(dir: &Path, at: &str, rewritten: &[i64]) {
    let mut csv = String::from("user_id,age,score,ts\n");
    for id in 1..=USERS {
        let score = if rewritten.contains(&id) {
            id as f64 + 0.5
        } else {
            id as f64 * 2.0
        };
        csv.push_str(&format!("{id},{},{score},{at}\n", 20 + id % 40));
    }
    std::fs::write(dir.join("data/users.csv"), csv).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_skew_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        "project: shop\nonline_store: {type: embedded}\noffline_store: {type: parquet, path: offline}\n",
    )
    .unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    // An hour ago.
    let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    write_source(&dir, &at, &[]);
    ok(quiver(&dir, &["apply"]));

    // Before any materialization: stale (exit 3) and says so.
    let out = quiver(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("profile v1: STALE (bound 2h 0m)"), "{text}");
    assert!(text.contains("never materialized"), "{text}");

    ok(quiver(&dir, &["materialize"]));
    // The rows are an hour old: within `profile`'s 2h, beyond `stale_profile`'s 30m.
    let out = quiver(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("profile v1: fresh (bound 2h 0m)"), "{text}");
    assert!(
        text.contains("stale_profile v1: STALE (bound 30m 0s)"),
        "{text}"
    );
    assert!(text.contains("200 rows written, 0 rejected"), "{text}");
    assert!(text.contains("newest event online: "), "{text}");
    let json: Value = serde_json::from_slice(&quiver(&dir, &["status", "--json"]).stdout).unwrap();
    let profile = json
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["view"] == "profile")
        .unwrap();
    let age = profile["newest_event_seconds_ago"].as_f64().unwrap();
    assert!((3500.0..3900.0).contains(&age), "{profile}");
    assert_eq!(profile["stale"], false);
    assert_eq!(profile["last_materialization"]["written"], 200);

    // Serve the logged service: 4 passes over every user.
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(&dir)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!("http://{}", line.trim().rsplit("http://").next().unwrap());
    let http = reqwest::Client::new();
    let ids: Vec<i64> = (1..=USERS).collect();
    for _ in 0..4 {
        for chunk in ids.chunks(25) {
            let r = http
                .post(format!("{base}/get-online-features"))
                .json(&json!({"feature_service": "scoring", "entities": {"user_id": chunk}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    // The log writer flushes within milliseconds; export until all 32 requests are out.
    let mut exported = 0;
    for _ in 0..250 {
        let report: Value = http
            .post(format!("{base}/export"))
            .json(&json!({"namespaces": ["served_features"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        exported += report["namespaces"][0]["exported"].as_u64().unwrap_or(0);
        if exported >= 32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(exported, 32);

    // Nothing changed yet: no skew. `status` and `skew` read the registry and the offline store
    // only, so they run while the server holds the embedded online store's file.
    let out = ok(quiver(&dir, &["skew", "--service", "scoring"]));
    assert!(
        out.contains("800 rows compared of 800 logged in 32 requests"),
        "{out}"
    );
    assert!(
        out.contains("no skew: every compared value agrees"),
        "{out}"
    );
    let out = quiver(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Users 11..=30 get another score at the same event time, after they were served.
    let rewritten: Vec<i64> = (11..=30).collect();
    write_source(&dir, &at, &rewritten);
    let report = root.path().join("report.html");
    let out = ok(quiver(
        &dir,
        &[
            "skew",
            "--service",
            "scoring",
            "--since",
            "1h",
            "--out",
            report.to_str().unwrap(),
        ],
    ));
    let row = |feature: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(feature))
            .unwrap_or_else(|| panic!("no {feature} row in\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // feature, compared, exact, mismatch rate, differ, online only, offline only.
    assert_eq!(
        row("profile:score")[1..7],
        ["800", "90.000%", "10.000%", "80", "0", "0"],
        "{out}"
    );
    assert_eq!(
        row("profile:age")[1..7],
        ["800", "100.000%", "0.000%", "0", "0", "0"],
        "{out}"
    );
    assert!(
        out.contains("profile:score: 80 rows disagree (same_event 80)"),
        "{out}"
    );
    assert!(out.contains("report written to"), "{out}");

    // The HTML report renders in a real browser: charts drawn, no console errors.
    let page = quiver_test_utils::browser::render(&report, 1280, 2200);
    assert!(page.console.is_empty(), "console: {:?}", page.console);
    assert!(
        page.dom.contains("data-ready=\"1\""),
        "the page's script ran"
    );
    // Two charts per feature: the rate over time and the distribution of differences.
    assert_eq!(page.dom.matches("<svg").count(), 4, "{}", page.dom);
    assert!(page.dom.contains("1 of 2 features disagree"));
    assert!(
        page.inked_pixels() > 20_000,
        "{} inked pixels",
        page.inked_pixels()
    );
    assert!(page.colours() > 20, "{} colours", page.colours());
    assert_eq!((page.width, page.height), (1280, 2200));
}

/// The browser check itself can fail: a page that throws is caught, a blank page is blank.
#[test]
fn the_browser_check_sees_errors_and_blank_pages() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><script>throw new Error('drawn wrong')</script></body></html>",
    )
    .unwrap();
    let page = quiver_test_utils::browser::render(&bad, 400, 300);
    assert!(
        page.console.iter().any(|l| l.contains("drawn wrong")),
        "{:?}",
        page.console
    );
    assert!(page.inked_pixels() < 100, "a blank page");
    assert!(page.colours() <= 2);
}
