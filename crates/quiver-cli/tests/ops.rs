//! Operating commands through the built binary, on the example project's embedded store:
//! `quiver stats` against a running server, `quiver invalidate` (through the server and
//! directly), `apply`'s report of online data a version bump leaves behind, `quiver
//! prune-online`, and `serve --log-format json` with a request id on each request's lines.

use std::io::{BufRead, BufReader, Read};
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

#[tokio::test(flavor = "multi_thread")]
async fn stats_invalidate_and_prune_online_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    ok(Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap());
    ok(quiver(&dir, &["apply"]));
    ok(quiver(&dir, &["materialize", "--views", "user_profile"]));

    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(&dir)
        .args(["--log", "quiver_server=info", "--log-format", "json"])
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!("http://{}", line.trim().rsplit("http://").next().unwrap());

    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/get-online-features"))
        .header("x-request-id", "req-from-client-1")
        .json(&json!({"features": ["user_profile:age"], "entities": {"user_id": [42, 7, -1]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-from-client-1");

    let out = ok(quiver(&dir, &["stats", "--url", &base]));
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("user_profile"))
        .unwrap_or_else(|| panic!("no user_profile row in\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // view, hits, misses, hit rate.
    assert_eq!(&cells[1..4], ["2", "1", "66.7%"], "{out}");
    assert!(
        out.contains("Last minute") && out.contains("Since start"),
        "{out}"
    );
    let json_out: Value =
        serde_json::from_str(&ok(quiver(&dir, &["stats", "--url", &base, "--json"]))).unwrap();
    assert_eq!(json_out["since_start"]["views"]["user_profile"]["hits"], 2);

    // Through the server (it holds the embedded file).
    let out = ok(quiver(
        &dir,
        &[
            "invalidate",
            "--url",
            &base,
            "--view",
            "user_profile",
            "--entity",
            "user_id=42",
        ],
    ));
    assert!(
        out.contains("Invalidated user_profile v1 (1 entities): 1 records deleted."),
        "{out}"
    );
    let body: Value = http
        .post(format!("{base}/get-online-features"))
        .json(&json!({"features": ["user_profile:age"], "entities": {"user_id": [42, 7]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["NOT_FOUND", "PRESENT"])
    );
    // A view that does not exist: a clear error, non-zero exit.
    let out = quiver(&dir, &["invalidate", "--url", &base, "--view", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );

    // Stop the server: its JSON log lines carry the client's request id.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child.wait().unwrap();
    let tagged = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["request_id"] == "req-from-client-1")
        .unwrap_or_else(|| panic!("no JSON log line with the request id in\n{logs}"));
    assert_eq!(tagged["span"]["path"], "/get-online-features", "{tagged}");

    // Directly on the store, once the server let go of it.
    let out = ok(quiver(
        &dir,
        &[
            "invalidate",
            "--view",
            "user_profile",
            "--entity",
            "user_id=7",
        ],
    ));
    assert!(out.contains("1 records deleted"), "{out}");

    // A schema change bumps the version: apply says what v1 leaves online and how to remove it.
    let users = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(
        &users,
        text.replacen("max: 130", "max: 131", 1)
            .replacen("type: int32", "type: int64", 1),
    )
    .unwrap();
    let out = ok(quiver(&dir, &["apply"]));
    assert!(out.contains("user_profile v1: 9998 records"), "{out}");
    assert!(out.contains("quiver prune-online"), "{out}");
    let out = ok(quiver(&dir, &["prune-online", "--dry-run"]));
    assert!(
        out.contains("Would delete user_profile v1: 9998 records"),
        "{out}"
    );
    let out = ok(quiver(&dir, &["prune-online"]));
    assert!(
        out.contains("Deleted user_profile v1: 9998 records"),
        "{out}"
    );
    let out = ok(quiver(&dir, &["prune-online"]));
    assert!(
        out.contains("No online records of unserved versions"),
        "{out}"
    );
}
