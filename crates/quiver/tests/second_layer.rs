//! The second layer through the library: one offline lookup for 100 concurrent misses of a key,
//! read-through that never replaces a newer online value, derived features computed on a miss
//! and answers `as_of` a time equal to the training set's, and `warm`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use quiver::{
    FeatureSelection, FeatureStore, HistoricalOptions, Layer, OnlineRequest, Project, WarmEntities,
    WarmOptions,
};
use quiver_core::{EntityKey, KeyValue, Record, Value};
use quiver_offline::store::{OfflineStore, OfflineTable, ParquetOfflineStore};
use quiver_online::faulty::Faulty;
use quiver_online::memory::MemoryStore;
use quiver_online::{OnlineStore, OnlineStoreRead, OnlineStoreWrite};

const CONFIG: &str = "project: layers
online_store:
  type: memory
serving:
  fallback: {layer: offline, on: [unavailable, miss]}
  compute_budget: 30s
";

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: profiles, path: data/profiles.csv, timestamp_field: ts}
  - {name: tx, path: data/tx.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: profiles
    fields:
      - {name: age, type: int64}
  - name: spend
    entities: [user]
    source: tx
    aggregations:
      - {column: amount, functions: [sum, count, last], windows: [1d, 7d]}
"#;

fn write_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("quiver.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("features/defs.yaml"), DEFS).unwrap();
    let mut profiles = String::from("user_id,age,ts\n");
    let mut tx = String::from("user_id,amount,ts\n");
    let now = chrono::Utc::now();
    for id in 1..=50i64 {
        profiles.push_str(&format!("{id},{},2026-01-01T00:00:00Z\n", 20 + id));
        for back in [1i64, 30, 60, 200] {
            // Hours before now: windows at "now" hold some of them.
            let t = (now - chrono::Duration::hours(back + id % 5)).to_rfc3339();
            tx.push_str(&format!("{id},{}.5,{t}\n", id * back));
        }
    }
    std::fs::write(dir.join("data/profiles.csv"), profiles).unwrap();
    std::fs::write(dir.join("data/tx.csv"), tx).unwrap();
}

/// An offline store that answers point lookups slowly, so concurrent misses overlap.
struct SlowLookups(ParquetOfflineStore);

#[async_trait]
impl OfflineStore for SlowLookups {
    fn kind(&self) -> &'static str {
        "slow"
    }
    async fn ensure_table(&self, table: &OfflineTable) -> quiver_offline::Result<String> {
        self.0.ensure_table(table).await
    }
    async fn write_range(
        &self,
        table: &OfflineTable,
        start: i64,
        end: i64,
        batches: &[RecordBatch],
    ) -> quiver_offline::Result<u64> {
        self.0.write_range(table, start, end, batches).await
    }
    async fn read_range(
        &self,
        table: &OfflineTable,
        start: Option<i64>,
        end: Option<i64>,
    ) -> quiver_offline::Result<Vec<RecordBatch>> {
        self.0.read_range(table, start, end).await
    }
    async fn prune(&self, table: &OfflineTable, before: i64) -> quiver_offline::Result<u64> {
        self.0.prune(table, before).await
    }
    async fn read_latest(
        &self,
        table: &OfflineTable,
        keys: &[EntityKey],
        as_of: i64,
        ttl_ns: Option<i64>,
    ) -> quiver_offline::Result<Vec<Option<Record>>> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.read_latest(table, keys, as_of, ttl_ns).await
    }
}

/// A built project over `online`, with the slow offline store.
async fn open(
    online: Arc<dyn OnlineStore>,
) -> (tempfile::TempDir, FeatureStore, Arc<dyn OnlineStore>) {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let project = Project::load(dir.path()).unwrap();
    let offline: Arc<dyn OfflineStore> = Arc::new(SlowLookups(ParquetOfflineStore::new(
        dir.path().join(".quiver/offline"),
    )));
    let mut store = FeatureStore::with_stores(project, online.clone(), Some(offline))
        .await
        .unwrap();
    store.apply().await.unwrap();
    store.build(&Default::default()).await.unwrap();
    (dir, store, online)
}

fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(Default::default()))
}

fn request(features: &[&str], ids: &[i64]) -> OnlineRequest {
    OnlineRequest::new(
        FeatureSelection::Features(features.iter().map(|f| f.to_string()).collect()),
        vec![(
            "user_id".into(),
            ids.iter().copied().map(KeyValue::Int).collect(),
        )],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_key_look_it_up_once() {
    let (_dir, store, _) = open(memory()).await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .get_online_features(&request(&["profile:age"], &[7]))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let response = t.await.unwrap();
        assert_eq!(response.columns[1].values, [Value::Int64(27)]);
        assert_eq!(response.layers, [vec![Layer::Offline]]);
    }
    assert_eq!(store.reader().offline_lookups(), (1, 1));

    // The serving statistics: every request read the online store, each miss went to the
    // offline layer, which found the key; one lookup was written back.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let view = loop {
        let report = store.stats().report();
        let view = report.since_start.views["profile"].clone();
        if view.read_throughs == 1 || std::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view.hits + view.misses, 100, "{view:?}");
    assert!(view.misses >= 1, "{view:?}");
    assert_eq!(view.fallbacks.miss, view.misses, "{view:?}");
    assert_eq!(view.fallbacks.unavailable, 0, "{view:?}");
    let offline = &view.layers["offline"];
    assert_eq!((offline.hits, offline.misses), (view.misses, 0), "{view:?}");
    assert_eq!(offline.calls, view.misses, "{view:?}");
    // The waiting requests shared the one 300 ms lookup.
    assert!(offline.p99_ms >= 250.0, "{view:?}");
    assert_eq!(view.read_throughs, 1, "{view:?}");
    assert_eq!(view.layers["online"].calls, 100, "{view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_never_replaces_a_newer_online_value() {
    // Online writes (the read-through) take 300 ms; a newer value lands meanwhile.
    let inner = memory();
    let faulty = Faulty::new(inner.clone());
    let (_dir, store, _) = open(Arc::new(faulty.clone())).await;
    faulty.delay(Some(Duration::from_millis(300)));
    let response = store
        .get_online_features(&request(&["profile:age"], &[9]))
        .await
        .unwrap();
    assert_eq!(response.columns[1].values, [Value::Int64(29)]);
    let served = store.view("profile").unwrap().clone();
    let key = EntityKey::single(KeyValue::Int(9));
    let newer = Record {
        event_ts: quiver_online::now_ns(),
        created_ts: None,
        values: vec![Value::Int64(99)],
    };
    inner
        .write(&served.table, &[(key.clone(), newer)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stored = inner.read(&served.table, &[key]).await.unwrap();
    assert_eq!(stored[0].as_ref().unwrap().values, [Value::Int64(99)]);
    assert!(faulty.calls().writes >= 1, "the read-through ran");
}

fn entity_rows(ids: &[i64], at: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(vec![at; ids.len()])),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_and_as_of_answers_equal_the_training_set() {
    let (_dir, store, _) = open(memory()).await;
    let ids: Vec<i64> = (1..=50).collect();
    let features = [
        "spend:amount__sum__1d",
        "spend:amount__count__7d",
        "spend:amount__last__7d",
    ];
    // A miss of a derived view: computed at the request time.
    let response = store
        .get_online_features(&request(&features, &ids))
        .await
        .unwrap();
    assert!(response.layers.iter().all(|l| l == &[Layer::Computed]));
    let at = response.columns[1].event_timestamps[0];
    let at_text = quiver_core::value::format_timestamp(at);
    let training = store
        .get_historical_features(
            &entity_rows(&ids, &at_text),
            &FeatureSelection::Features(features.iter().map(|f| f.to_string()).collect()),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap()
        .batch;
    let check = |response: &quiver::OnlineResponse| {
        let sums: Vec<Option<f64>> = training
            .column_by_name("amount__sum__1d")
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .collect();
        let counts: Vec<i64> = training
            .column_by_name("amount__count__7d")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        for (row, (sum, count)) in sums.iter().zip(&counts).enumerate() {
            assert_eq!(
                response.columns[1].values[row],
                sum.map_or(Value::Null, Value::Float64),
                "row {row}"
            );
            assert_eq!(
                response.columns[2].values[row],
                Value::Int64(*count),
                "row {row}"
            );
        }
        assert!(counts.iter().any(|&c| c > 0));
    };
    check(&response);
    // The same time asked `as_of`: the same answers, and no leak from after it.
    let mut as_of = request(&features, &ids);
    as_of.as_of = Some(at);
    let response = store.get_online_features(&as_of).await.unwrap();
    check(&response);
    // A plain view as of a time before its only row: nothing.
    let mut early = request(&["profile:age"], &[1]);
    early.as_of = Some(quiver_core::value::parse_timestamp("2025-12-31T00:00:00Z").unwrap());
    let response = store.get_online_features(&early).await.unwrap();
    assert_eq!(response.columns[1].values, [Value::Null]);
    assert_eq!(response.layers, [vec![Layer::Offline]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_loads_the_top_entities_from_the_offline_layer() {
    let (_dir, store, online) = open(memory()).await;
    let reports = store
        .warm(&WarmOptions {
            views: vec!["profile".into()],
            entities: WarmEntities::Top(10),
        })
        .await
        .unwrap();
    assert_eq!((reports[0].entities, reports[0].written), (10, 10));
    let served = store.view("profile").unwrap().clone();
    let keys: Vec<EntityKey> = (1..=50)
        .map(|id| EntityKey::single(KeyValue::Int(id)))
        .collect();
    let present = online
        .read(&served.table, &keys)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert_eq!(present, 10);
    let reports = store
        .warm(&WarmOptions {
            views: vec!["spend".into()],
            entities: WarmEntities::Rows(entity_rows(&[1, 2, 3], "2026-01-01T00:00:00Z")),
        })
        .await
        .unwrap();
    assert_eq!((reports[0].entities, reports[0].written), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_missing_one_key_look_it_up_once() {
    let redis = quiver_test_utils::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let config = CONFIG.replace(
        "online_store:\n  type: memory\n",
        &format!("online_store:\n  type: redis\n  url: \"{}\"\n", redis.url()),
    );
    std::fs::write(dir.path().join("quiver.yaml"), config).unwrap();
    // Two stores over one Redis and one offline directory, sharing nothing in memory: what two
    // server processes share.
    let open_one = || async {
        let project = Project::load(dir.path()).unwrap();
        let online = quiver_online::open(&project.config.online_store, &project.dir)
            .await
            .unwrap();
        let offline: Arc<dyn OfflineStore> = Arc::new(SlowLookups(ParquetOfflineStore::new(
            dir.path().join(".quiver/offline"),
        )));
        FeatureStore::with_stores(project, online, Some(offline))
            .await
            .unwrap()
    };
    let mut first = open_one().await;
    first.apply().await.unwrap();
    first.build(&Default::default()).await.unwrap();
    let second = open_one().await;
    let stores = [Arc::new(first), Arc::new(second)];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .get_online_features(&request(&["profile:age"], &[7]))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let response = t.await.unwrap();
        assert_eq!(response.columns[1].values, [Value::Int64(27)]);
    }
    let lookups: Vec<u64> = stores
        .iter()
        .map(|s| s.reader().offline_lookups().1)
        .collect();
    assert_eq!(lookups.iter().sum::<u64>(), 1, "{lookups:?}");
}

/// A Redis Cluster primary killed while requests stream: with the offline fallback, no request
/// fails during the failover, and the online layer answers again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_is_covered_by_the_offline_layer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut cluster = quiver_test_utils::RedisCluster::start(1000);
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let nodes: Vec<String> = cluster.urls();
    std::fs::write(
        dir.path().join("quiver.yaml"),
        format!(
            "project: layers\nonline_store:\n  type: redis_cluster\n  nodes: {nodes:?}\n  command_timeout: 200ms\n  resilience: {{timeout: 200ms, breaker_failures: 3, breaker_cooldown: 500ms}}\nserving:\n  fallback: {{layer: offline, on: [unavailable, miss]}}\n"
        ),
    )
    .unwrap();
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    store.build(&Default::default()).await.unwrap();
    store
        .materialize(&Default::default(), &quiver::NoProgress)
        .await
        .unwrap();
    let store = Arc::new(store);
    let ids: Vec<i64> = (1..=50).collect();
    let before = store
        .get_online_features(&request(&["profile:age"], &ids))
        .await
        .unwrap();
    assert!(before.layers.iter().all(|l| l == &[Layer::Online]));

    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop, ids) = (store.clone(), stop.clone(), ids.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut offline) = (0usize, 0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    match store
                        .get_online_features(&request(&["profile:age"], &ids))
                        .await
                    {
                        Ok(r) => {
                            ok += 1;
                            let ages: Vec<Value> = (1..=50).map(|i| Value::Int64(20 + i)).collect();
                            assert_eq!(
                                r.columns[1].values, ages,
                                "a right answer, whichever layer"
                            );
                            if r.layers.iter().any(|l| l.contains(&Layer::Offline)) {
                                offline += 1;
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("request failed: {e}");
                        }
                    }
                }
                (ok, failed, offline)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The primary of the first user's profile key.
    let served = store.view("profile").unwrap().clone();
    let key = served
        .table
        .key("quiver", &EntityKey::single(KeyValue::Int(1)));
    let slot: u16 = String::from_utf8(
        std::process::Command::new("redis-cli")
            .args([
                "-p",
                &cluster.nodes[0].port().to_string(),
                "CLUSTER",
                "KEYSLOT",
                &key,
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let victim = cluster.primary_of(slot).unwrap();
    cluster.node_mut(victim.port).kill();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_failover(slot, victim.port);
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed, mut offline) = (0, 0, 0);
    for s in streams {
        let (a, b, c) = s.await.unwrap();
        ok += a;
        failed += b;
        offline += c;
    }
    println!(
        "cluster failover with the offline fallback: {ok} requests answered ({offline} with the offline layer), {failed} failed"
    );
    assert_eq!(failed, 0, "no request fails during the failover");
    assert!(offline > 0, "the offline layer covered the gap");
    // Afterwards the online layer answers again.
    let mut online_again = false;
    for _ in 0..50 {
        let r = store
            .get_online_features(&request(&["profile:age"], &ids))
            .await
            .unwrap();
        if r.layers.iter().all(|l| l == &[Layer::Online]) {
            online_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(online_again, "the online layer answers after the failover");
    drop(cluster);
}
