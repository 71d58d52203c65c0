//! A team sharing one PostgreSQL registry: two project checkouts ("machines") with the same
//! project name, a feature server started from one of them, and applies from the other. The
//! server picks up the new serial without a restart, and an apply planned against an older
//! serial is refused.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use quiver_test_utils::PostgresServer;
use serde_json::Value;

fn quiver(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(project)
        .args(args)
        .output()
        .expect("run quiver")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "quiver failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `quiver init` into `root/name/shop` (the project is `shop` on every machine), registry in
/// PostgreSQL.
fn machine(root: &Path, name: &str, registry_url: &str) -> PathBuf {
    let dir = root.join(name).join("shop");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    ok(Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap());
    let config = dir.join("quiver.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\nregistry: .quiver/registry.json\n"),
        "{text}"
    );
    std::fs::write(
        &config,
        text.replace(
            "\nregistry: .quiver/registry.json\n",
            &format!("\nregistry: {{type: postgres, url: \"{registry_url}\"}}\n"),
        ),
    )
    .unwrap();
    dir
}

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--project")
        .arg(dir)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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

async fn served_version(addr: &str) -> u64 {
    let lineage: Value = reqwest::get(format!(
        "http://{addr}/lineage?feature=user_profile:signup_days"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    lineage["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("{lineage}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_follows_applies_from_another_machine_and_stale_plans_are_refused() {
    let pg = PostgresServer::start();
    let root = tempfile::tempdir().unwrap();
    let a = machine(root.path(), "a", &pg.url());
    let b = machine(root.path(), "b", &pg.url());
    ok(quiver(&a, &["apply"]));
    let server = serve(&a);
    assert_eq!(served_version(&server.1).await, 1);

    // B changes `signup_days` to int64 (a new version) and applies what it planned.
    let users = b.join("features/users.yaml");
    let text = std::fs::read_to_string(&users).unwrap();
    let old = "- name: signup_days\n        type: int32";
    assert!(text.contains(old));
    std::fs::write(
        &users,
        text.replace(old, "- name: signup_days\n        type: int64"),
    )
    .unwrap();
    let plan = ok(quiver(&b, &["plan"]));
    assert!(plan.contains("v1 -> v2"), "{plan}");
    assert!(plan.contains("--if-serial 1"), "{plan}");
    ok(quiver(&b, &["apply", "--if-serial", "1"]));

    // The server started from A reloads the shared registry on its own.
    let started = Instant::now();
    while served_version(&server.1).await != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server did not pick up serial 2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The embedded online store has one user at a time: stop the server before using A.
    drop(server);
    // A planned at serial 1 (before B's apply): its apply is refused, nothing written.
    let refused = quiver(&a, &["apply", "--if-serial", "1"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("registry changed since you planned"), "{err}");
    let versions: Value =
        serde_json::from_str(&ok(quiver(&a, &["versions", "user_profile", "--json"]))).unwrap();
    assert_eq!(versions["active"], 2);
    // A now sees B's change as the difference from its own files.
    let plan = ok(quiver(&a, &["plan"]));
    assert!(plan.contains("v2 -> v1"), "{plan}");
    assert!(plan.contains("registry serial 2 -> 3"), "{plan}");
}
