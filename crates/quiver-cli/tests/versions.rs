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

/// `quiver get ... --json` (Feast's shape): per feature, its statuses.
fn statuses(dir: &Path, features: &[&str], extra: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(features);
    args.extend(["--entity", "user_id=42", "--json"]);
    args.extend(extra);
    let response: Value = serde_json::from_str(&ok(quiver(dir, &args, &[]))).unwrap();
    let names = response["metadata"]["feature_names"].clone();
    let statuses: Vec<Value> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["statuses"][0].clone())
        .collect();
    serde_json::json!({"names": names, "statuses": statuses})
}

#[test]
fn pinned_versions_are_served_side_by_side_and_rollback_and_max_versions_keep_their_word() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(quiver(&dir, &["apply"], &[]));
    ok(quiver(&dir, &["materialize-incremental"], &[]));
    let registry = dir.join(".quiver/registry.json");
    let watermarks = |registry: &Path| {
        let r: Value = serde_json::from_slice(&std::fs::read(registry).unwrap()).unwrap();
        r["watermarks"].clone()
    };
    assert!(watermarks(&registry).get("user_profile:v1").is_some());
    bump_user_profile(&dir);
    ok(quiver(&dir, &["apply"], &[]));
    ok(quiver(
        &dir,
        &["materialize", "--views", "user_profile"],
        &[],
    ));

    // Both versions side by side: the pin reads v1's records, unpinned the active v2.
    let both = statuses(
        &dir,
        &["user_profile@v1:signup_days", "user_profile:signup_days"],
        &["--full-feature-names"],
    );
    assert_eq!(
        both["names"],
        serde_json::json!([
            "user_id",
            "user_profile@v1__signup_days",
            "user_profile__signup_days"
        ]),
        "{both}"
    );
    assert_eq!(both["statuses"][1], "PRESENT", "{both}");
    assert_eq!(both["statuses"][2], "PRESENT", "{both}");
    ok(quiver(
        &dir,
        &["invalidate", "--view", "user_profile", "--version", "1"],
        &[],
    ));
    let after = statuses(
        &dir,
        &["user_profile@v1:signup_days", "user_profile:signup_days"],
        &["--full-feature-names"],
    );
    assert_eq!(
        after["statuses"][1], "NOT_FOUND",
        "v1's records are gone: {after}"
    );
    assert_eq!(after["statuses"][2], "PRESENT", "v2's are not: {after}");
    // Training sets read pinned versions with their own schema: v1's int32, v2's int64.
    let train = tmp.path().join("train.parquet");
    let labels = dir.join("data/labels.csv");
    ok(quiver(
        &dir,
        &[
            "historical",
            "--entities",
            labels.to_str().unwrap(),
            "--features",
            "user_profile@v1:signup_days,user_profile:signup_days",
            "--full-feature-names",
            "--out",
            train.to_str().unwrap(),
        ],
        &[],
    ));
    let batch = quiver::offline_io::read_file(&train).unwrap();
    let schema = batch.schema();
    let v1 = schema
        .field_with_name("user_profile@v1__signup_days")
        .unwrap();
    let v2 = schema.field_with_name("user_profile__signup_days").unwrap();
    assert_eq!(v1.data_type(), &arrow_schema::DataType::Int32);
    assert_eq!(v2.data_type(), &arrow_schema::DataType::Int64);
    // A version that never existed is named in the error.
    let missing = quiver(
        &dir,
        &["get", "user_profile@v7:age", "-e", "user_id=1"],
        &[],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no readable version 7 (readable: v1, v2)"),
        "{err}"
    );

    // Rollback: the plan first (v1's online records were invalidated, so it says so), and a
    // dry run writes nothing.
    let before = std::fs::read(&registry).unwrap();
    let dry = ok(quiver(
        &dir,
        &["rollback", "user_profile", "--to", "1", "--dry-run"],
        &[],
    ));
    assert!(
        dry.contains("~ feature view `user_profile` v2 -> v1 (rolled back)"),
        "{dry}"
    );
    assert!(dry.contains("v1 has no online records"), "{dry}");
    assert_eq!(std::fs::read(&registry).unwrap(), before, "a dry run wrote");
    let done = ok(quiver(
        &dir,
        &["rollback", "user_profile", "--to", "1"],
        &[],
    ));
    assert!(
        done.contains("Rolled back: user_profile serves v1"),
        "{done}"
    );
    assert!(
        done.contains("quiver materialize --views user_profile"),
        "{done}"
    );
    let served = statuses(&dir, &["user_profile:signup_days"], &[]);
    assert_eq!(served["statuses"][1], "NOT_FOUND", "{served}");
    ok(quiver(
        &dir,
        &["materialize", "--views", "user_profile"],
        &[],
    ));
    let served = statuses(&dir, &["user_profile:signup_days"], &[]);
    assert_eq!(served["statuses"][1], "PRESENT", "{served}");
    // The definitions still say v2: plan shows it, and rolling forward is lossless (v2's
    // records were never touched).
    let plan = ok(quiver(&dir, &["plan"], &[]));
    assert!(plan.contains("v1 -> v2"), "{plan}");
    ok(quiver(
        &dir,
        &["rollback", "user_profile", "--to", "2"],
        &[],
    ));
    // v2's built history, in the offline store.
    ok(quiver(&dir, &["build", "--views", "user_profile"], &[]));
    let offline_v2 = dir.join(".quiver/offline/shop__user_profile__v2");
    assert!(offline_v2.exists(), "no offline table at {offline_v2:?}");
    let report: Value = serde_json::from_str(&ok(quiver(
        &dir,
        &["versions", "user_profile", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(report["active"], 2);
    assert_eq!(report["versions"][0]["online_keys"], 10000);
    assert_eq!(report["versions"][1]["online_keys"], 10000);
    let same = quiver(&dir, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));

    // max_versions: 2 — the apply that makes v3 prunes v1 (v3 served, v2 the one kept).
    let config = dir.join("quiver.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\nmax_versions: 2\n")).unwrap();
    let users = dir.join("features/users.yaml");
    let text = std::fs::read_to_string(&users).unwrap();
    let age = "- name: age\n        type: int32";
    assert!(text.contains(age));
    std::fs::write(
        &users,
        text.replace(age, "- name: age\n        type: int64"),
    )
    .unwrap();
    let applied = ok(quiver(&dir, &["apply"], &[]));
    assert!(
        applied.contains(
            "Pruned user_profile v1 from the online store (beyond max_versions): 10000 records"
        ),
        "{applied}"
    );
    let report: Value = serde_json::from_str(&ok(quiver(
        &dir,
        &["versions", "user_profile", "--json"],
        &[],
    )))
    .unwrap();
    let keys: Vec<(u64, u64)> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["online_keys"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [(3, 0), (2, 10000), (1, 0)], "{report}");
    // With --offline, pruning v2 (now unserved) also drops its offline table.
    let pruned = ok(quiver(
        &dir,
        &["prune-online", "--keep-versions", "0", "--offline"],
        &[],
    ));
    assert!(
        pruned.contains("Deleted user_profile v2: 10000 records"),
        "{pruned}"
    );
    assert!(
        pruned.contains("Dropped offline table shop__user_profile__v2"),
        "{pruned}"
    );
    assert!(!offline_v2.exists(), "the offline table is still there");
    // The pruned version's watermark went with its records: materializing v1 again would start
    // from the beginning.
    assert!(
        watermarks(&registry).get("user_profile:v1").is_none(),
        "{}",
        watermarks(&registry)
    );
}
