//! The registry conformance suite, run on both backends: the JSON file (with its lock file) and
//! PostgreSQL (a real server started by the fixture). Two project directories with the same
//! project name share one registry, as two machines of a team would.

use std::path::{Path, PathBuf};

use quiver::registry::{MaterializationRun, RunKind};
use quiver::{ErrorKind, FeatureStore};
use quiver_test_utils::PostgresServer;

/// Definitions with one view whose single field is named `field`: each name is a different
/// set of definitions.
fn definitions(field: &str) -> String {
    format!(
        r#"
entities: [{{name: user, join_keys: [user_id]}}]
sources: [{{name: s, path: data/s.parquet, timestamp_field: ts}}]
feature_views:
  - {{name: v, entities: [user], source: s, fields: [{{name: {field}, type: int64}}]}}
"#
    )
}

/// Where the shared registry lives.
enum Backend {
    File(tempfile::TempDir),
    Postgres(PostgresServer),
}

impl Backend {
    fn file() -> Backend {
        Backend::File(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Backend {
        Backend::Postgres(PostgresServer::start())
    }

    fn block(&self) -> String {
        match self {
            Backend::File(dir) => format!(
                "registry: {}\n",
                dir.path().join("shared/registry.json").display()
            ),
            Backend::Postgres(pg) => {
                format!("registry: {{type: postgres, url: \"{}\"}}\n", pg.url())
            }
        }
    }

    /// A project directory (a "machine") using the shared registry, with `field`'s definitions.
    fn machine(&self, root: &Path, name: &str, field: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("features")).unwrap();
        std::fs::write(
            dir.join("quiver.yaml"),
            format!(
                "project: team\nonline_store: {{type: memory}}\n{}",
                self.block()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("features/defs.yaml"), definitions(field)).unwrap();
        dir
    }
}

fn set_field(dir: &Path, field: &str) {
    std::fs::write(dir.join("features/defs.yaml"), definitions(field)).unwrap();
}

async fn apply_load_and_reopen(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let a = backend.machine(root.path(), "a", "f1");
    let mut store = FeatureStore::open(&a).await.unwrap();
    assert!(
        store.registry().is_err(),
        "no registry before the first apply"
    );
    assert_eq!(store.registry_store().stamp().await.unwrap(), None);
    let report = store.apply().await.unwrap();
    assert_eq!(report.serial, 1);
    let stamp = store.registry_store().stamp().await.unwrap();
    assert!(stamp.is_some());

    // Another machine opens the same registry.
    let b = backend.machine(root.path(), "b", "f1");
    let mut other = FeatureStore::open(&b).await.unwrap();
    assert_eq!(other.registry().unwrap(), store.registry().unwrap());
    // Re-applying the same definitions changes nothing, not even the stamp.
    assert!(other.apply().await.unwrap().changes.is_empty());
    assert_eq!(other.registry().unwrap().serial, 1);
    assert_eq!(store.registry_store().stamp().await.unwrap(), stamp);

    // B applies new definitions; A reloads and sees them.
    set_field(&b, "f2");
    assert_eq!(other.apply().await.unwrap().serial, 2);
    assert_ne!(store.registry_store().stamp().await.unwrap(), stamp);
    store.reload_registry().await.unwrap();
    let registry = store.registry().unwrap();
    assert_eq!(registry.serial, 2);
    assert_eq!(registry.feature_views["v"].definition.fields[0].name, "f2");
    assert_eq!(registry.history.len(), 2);
}

async fn a_stale_plan_is_refused(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let a = backend.machine(root.path(), "a", "f1");
    let b = backend.machine(root.path(), "b", "f2");
    let mut first = FeatureStore::open(&a).await.unwrap();
    first.apply().await.unwrap();
    // A plans a change at serial 1...
    set_field(&a, "f3");
    let plan = first.plan().await.unwrap();
    assert_eq!(plan.serial, 1);
    // ...B applies meanwhile...
    let mut second = FeatureStore::open(&b).await.unwrap();
    assert_eq!(second.apply().await.unwrap().serial, 2);
    // ...so A's apply of its plan is refused, and nothing is written.
    let err = first.apply_if_serial(plan.serial).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains("registry changed since you planned"),
        "{err}"
    );
    second.reload_registry().await.unwrap();
    assert_eq!(second.registry().unwrap().serial, 2);
    // The registry-level compare-and-swap refuses the same way.
    let stale = second.registry().unwrap().clone();
    let err = second.registry_store().commit(1, &stale).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // Re-planned, it goes through.
    let plan = first.plan().await.unwrap();
    assert_eq!(plan.serial, 2);
    assert_eq!(first.apply_if_serial(2).await.unwrap().serial, 3);
}

async fn concurrent_applies_are_serialized(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let machines: Vec<PathBuf> = (0..8)
        .map(|i| backend.machine(root.path(), &format!("m{i}"), &format!("f{i}")))
        .collect();
    let mut tasks = Vec::new();
    for dir in machines {
        tasks.push(tokio::spawn(async move {
            let mut store = FeatureStore::open(&dir).await.unwrap();
            store.apply().await.map(|r| r.serial)
        }));
    }
    let mut won = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(serial) => won.push(serial),
            Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
            Err(e) => panic!("an apply failed otherwise: {e}"),
        }
    }
    assert!(!won.is_empty(), "someone must win");
    assert_eq!(won.len() + conflicts, 8);
    won.sort_unstable();
    // Every winner got its own serial: none overwrote another.
    assert_eq!(won, (1..=won.len() as u64).collect::<Vec<_>>());
    let check = backend.machine(root.path(), "check", "f0");
    let store = FeatureStore::open(&check).await.unwrap();
    let registry = store.registry().unwrap();
    assert_eq!(registry.serial, won.len() as u64);
    assert_eq!(registry.history.len(), won.len());
}

async fn concurrent_runs_are_all_recorded(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let a = backend.machine(root.path(), "a", "f1");
    let mut store = FeatureStore::open(&a).await.unwrap();
    store.apply().await.unwrap();
    let registry_store = store.registry_store().clone();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let registry_store = registry_store.clone();
        tasks.push(tokio::spawn(async move {
            registry_store
                .update(move |r| {
                    r.record_run(
                        "v",
                        MaterializationRun {
                            kind: RunKind::Materialize,
                            version: 1,
                            end: i,
                            ..MaterializationRun::default()
                        },
                    )
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_some());
    }
    let registry = registry_store.load().await.unwrap().unwrap();
    let mut ends: Vec<i64> = registry.runs["v"].iter().map(|r| r.end).collect();
    ends.sort_unstable();
    assert_eq!(ends, (0..16).collect::<Vec<_>>(), "a run was lost");
    assert_eq!(
        registry.serial, 1,
        "runs do not change the definitions' serial"
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::file()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::postgres()).await;
                }
            )*
        }
    };
}

conformance!(
    apply_load_and_reopen,
    a_stale_plan_is_refused,
    concurrent_applies_are_serialized,
    concurrent_runs_are_all_recorded,
);

/// PostgreSQL only: each apply is a row of `quiver_registry_applies`, queryable with SQL.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_every_apply_as_a_row() {
    let backend = Backend::postgres();
    let root = tempfile::tempdir().unwrap();
    let a = backend.machine(root.path(), "a", "f1");
    let mut store = FeatureStore::open(&a).await.unwrap();
    store.apply().await.unwrap();
    set_field(&a, "f2");
    store.apply().await.unwrap();
    let Backend::Postgres(pg) = &backend else {
        unreachable!()
    };
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT serial, changes::text FROM quiver_registry_applies WHERE project = 'team' ORDER BY serial",
            &[],
        )
        .await
        .unwrap();
    let serials: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(serials, [1, 2]);
    let second: &str = rows[1].get(1);
    assert!(second.contains("feature view"), "{second}");
    let row = client
        .query_one(
            "SELECT serial, document->>'serial' FROM quiver_registry WHERE project = 'team'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, &str>(1), "2");
}

/// An unreachable PostgreSQL registry is a clear, retryable error without the password.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_postgres_registry_is_unavailable_and_keeps_the_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("features")).unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("quiver.yaml"),
        format!(
            "project: team\nonline_store: {{type: memory}}\nregistry: {{type: postgres, url: \"postgres://u:hunter2@127.0.0.1:{port}/db\"}}\n"
        ),
    )
    .unwrap();
    let err = match FeatureStore::open(dir.path()).await {
        Ok(_) => panic!("opened a registry nothing serves"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}
