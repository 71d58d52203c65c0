//! `quiver plan` and `quiver versions` through the built binary: a plan writes nothing and says
//! what apply then does; every version keeps its schema, who applied it and its online records.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn quiver(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.arg("--project").arg(project).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quiver")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "quiver failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn init(root: &Path) -> PathBuf {
    let dir = root.join("shop");
    ok(Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap());
    dir
}

/// Changes `signup_days` from int32 to int64: a schema change, so a version bump.
fn bump_user_profile(dir: &Path) {
    let path = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = "- name: signup_days\n        type: int32";
    assert!(text.contains(old), "the example changed: {text}");
    std::fs::write(
        &path,
        text.replace(old, "- name: signup_days\n        type: int64"),
    )
    .unwrap();
}

#[test]
fn plan_writes_nothing_then_apply_does_what_it_said() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let registry = dir.join(".quiver/registry.json");

    let first = quiver(&dir, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(first.status.code(), Some(2), "changes: exit 2");
    let text = stdout(&first);
    assert!(text.contains("Plan (registry serial 0 -> 1)"), "{text}");
    assert!(text.contains("+ feature view `user_profile` v1"), "{text}");
    assert!(!registry.exists(), "plan wrote the registry");

    ok(quiver(&dir, &["apply"], &[("USER", "ann")]));
    ok(quiver(
        &dir,
        &["materialize", "--views", "user_profile"],
        &[],
    ));
    let same = quiver(&dir, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(same.status.code(), Some(0));
    assert!(stdout(&same).contains("No changes; registry at serial 1"));

    bump_user_profile(&dir);
    let before = std::fs::read(&registry).unwrap();
    let text = ok(quiver(&dir, &["plan"], &[]));
    assert!(
        text.contains("~ feature view `user_profile` v1 -> v2 (schema changed; re-materialize)"),
        "{text}"
    );
    // What the bump would leave unserved: the 10,000 materialized profiles of v1.
    assert!(text.contains("user_profile v1: 10000 records"), "{text}");
    assert_eq!(
        std::fs::read(&registry).unwrap(),
        before,
        "plan changed the registry"
    );

    let applied = ok(quiver(&dir, &["apply"], &[("USER", "bob")]));
    assert!(applied.contains("v1 -> v2"), "{applied}");
    assert!(
        applied.contains("user_profile v1: 10000 records"),
        "{applied}"
    );

    let report: Value = serde_json::from_str(&ok(quiver(
        &dir,
        &["versions", "user_profile", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(report["active"], 2);
    let versions = report["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{report}");
    let (v2, v1) = (&versions[0], &versions[1]);
    assert_eq!(
        (v2["version"].as_u64(), v2["served"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        (v1["version"].as_u64(), v1["served"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(v2["created_by"]["user"], "bob");
    assert_eq!(v1["created_by"]["user"], "ann");
    assert_eq!(v2["created_by"]["serial"], 2);
    assert_ne!(
        v1["created_by"]["definitions_hash"],
        v2["created_by"]["definitions_hash"]
    );
    assert_eq!(v1["online_keys"], 10000);
    assert_eq!(v2["online_keys"], 0);
    // Each version's own schema.
    let signup_type = |v: &Value| {
        v["definition"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "signup_days")
            .map(|f| f["type"].clone())
            .unwrap()
    };
    assert_eq!(signup_type(v1), "int32");
    assert_eq!(signup_type(v2), "int64");

    let table = ok(quiver(&dir, &["versions", "user_profile"], &[]));
    assert!(table.contains("user_profile: serving v2"), "{table}");
    assert!(table.contains("by bob"), "{table}");

    let unknown = quiver(&dir, &["versions", "nope"], &[]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("feature view `nope` was never applied"),
        "{err}"
    );
}

#[test]
fn lineage_of_a_computed_feature_lists_its_builds_and_materializations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(quiver(&dir, &["apply"], &[]));
    ok(quiver(&dir, &["materialize", "--views", "user_spend"], &[]));
    ok(quiver(&dir, &["build", "--views", "user_spend"], &[]));
    let lineage: Value = serde_json::from_str(&ok(quiver(
        &dir,
        &["lineage", "user_spend:amount__sum__7d", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(lineage["transformation"]["kind"], "aggregation");
    assert_eq!(
        lineage["transformation"]["expression"],
        "sum(amount) over 7d"
    );
    assert_eq!(lineage["source"]["name"], "transactions");
    assert_eq!(lineage["services"], serde_json::json!(["fraud_model"]));
    let kinds: Vec<&str> = lineage["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["materialize", "build"], "{lineage}");
    let text = ok(quiver(
        &dir,
        &["lineage", "user_spend:amount__sum__7d"],
        &[],
    ));
    assert!(text.contains("computed: sum(amount) over 7d"), "{text}");
    assert!(text.contains("last 2 of 2 runs"), "{text}");
}
