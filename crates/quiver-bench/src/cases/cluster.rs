//! The `library` reads against a Redis Cluster: three primaries and three replicas the bench
//! starts on loopback (`redis-cli --cluster create`), `f50`'s entities materialized into it, the
//! 1 × 50 and 100 × 50 shapes at each concurrency. Run with `library` in the same invocation
//! (`--cases library,cluster`) for the single-node figures beside them.

use std::sync::Arc;

use quiver::FeatureStore;
use quiver_test_utils::RedisCluster;

use super::library::{LibraryWorker, ensure_present, requests};
use super::load_point;
use crate::cli::Args;
use crate::report::{LoadRow, ReadPath, SHAPES};
use crate::setup::{
    SERVE_ENTITIES, SERVE_PROJECT, materialize, now_us, write_project_with_config, write_source,
};

pub async fn run(args: &Args) -> anyhow::Result<Vec<LoadRow>> {
    eprintln!("starting a six-node Redis Cluster on loopback");
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(5000)).await?;
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-cluster-")
        .tempdir()?;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    write_project_with_config(
        dir.path(),
        &format!(
            "project: {SERVE_PROJECT}\nonline_store:\n  type: redis_cluster\n  nodes: [{}]\n",
            nodes.join(", ")
        ),
        &[("f50", "s50", 50)],
    )?;
    write_source(
        &dir.path().join("data/s50.parquet"),
        SERVE_ENTITIES,
        50,
        1,
        now_us(),
    )?;
    let mut store = FeatureStore::open(dir.path()).await?;
    store.apply().await?;
    eprintln!("setting up: {SERVE_ENTITIES} entities × 50 float32 features into the cluster");
    materialize(&store, "f50").await?;
    let store = Arc::new(store);
    let mut loads = Vec::new();
    for shape in &SHAPES[..2] {
        let requests = requests(*shape);
        ensure_present(&store, &requests[0], *shape).await?;
        for &concurrency in &args.concurrency {
            let workers = (0..concurrency)
                .map(|i| LibraryWorker::new(store.clone(), requests.clone(), i * 37))
                .collect();
            loads.push(load_point(ReadPath::ClusterLibrary, *shape, workers, args).await?);
        }
    }
    drop(cluster);
    Ok(loads)
}
