//! `quiver serve` with `server.auth`: a token read from the environment guards the routes, a
//! missing variable stops the server at start with the field named, and the token never
//! reaches the logs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn init(root: &Path) -> PathBuf {
    let dir = root.join("shop");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let config = dir.join("quiver.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\nserver:\n"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "\nserver:\n",
            "\nserver:\n  auth: {tokens: [{name: ops, env: QUIVER_OPS_TOKEN, scopes: [read]}]}\n",
        ),
    )
    .unwrap();
    let apply = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(&dir)
        .arg("apply")
        .output()
        .unwrap();
    assert!(apply.status.success());
    dir
}

fn serve(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project")
        .arg(dir)
        .args(["--log", "debug", "--log-format", "json"])
        .args(["serve", "--host", "127.0.0.1", "--port", "0"]);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_the_environment_guards_the_server_and_never_reaches_the_logs() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path());

    // Without the variable the server does not start, and says why.
    let refused = serve(&dir).env_remove("QUIVER_OPS_TOKEN").output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("environment variable `QUIVER_OPS_TOKEN`"),
        "{err}"
    );

    let secret = "correct-horse-battery-staple";
    let mut child = serve(&dir)
        .env("QUIVER_OPS_TOKEN", secret)
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
    let without = http.get(format!("{base}/stats")).send().await.unwrap();
    assert_eq!(without.status().as_u16(), 401);
    let wrong = http
        .get(format!("{base}/stats"))
        .bearer_auth("not-it")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let with = http
        .get(format!("{base}/stats"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status().as_u16(), 200);
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("\"status\":401"),
        "the requests were logged: {logs}"
    );
    assert!(!logs.contains(secret), "the token is in the logs");
}
