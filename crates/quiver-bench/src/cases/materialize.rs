//! Materialization into Redis: `FeatureStore::materialize` of N entities × 50 float32 features
//! from a generated Parquet source (reading the source, picking the latest row per entity,
//! validation, encoding and the Redis write pipelines all count; generating the file does not).

use std::time::Instant;

use crate::machine::self_status_bytes;
use crate::report::MaterializeRow;
use crate::setup::{self, MATERIALIZE_PROJECT, RedisTarget};

const FIELDS: usize = 50;

pub async fn run(redis: &RedisTarget, rows: usize) -> anyhow::Result<MaterializeRow> {
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-mat-")
        .tempdir()?;
    setup::write_project(
        dir.path(),
        MATERIALIZE_PROJECT,
        &redis.url,
        &[("m50", "m", FIELDS)],
    )?;
    eprintln!("  generating {rows} rows × {FIELDS} float32 as Parquet");
    let started = Instant::now();
    let path = dir.path().join("data/m.parquet");
    let now_us = setup::now_us();
    tokio::task::spawn_blocking(move || setup::write_source(&path, rows, FIELDS, 99, now_us))
        .await??;
    let generate_seconds = started.elapsed().as_secs_f64();

    let mut store = quiver::FeatureStore::open(dir.path()).await?;
    store.apply().await?;
    setup::delete_views(&store).await?;
    let mut conn = redis.connect().await?;
    let before = setup::used_memory(&mut conn).await?;
    eprintln!("  materializing");
    // The process's peak RSS of the materialization alone: reset `VmHWM` to the current RSS
    // (Linux: writing 5 to clear_refs), so the generation before does not count.
    let rss_before = self_status_bytes("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let report = setup::materialize(&store, "m50").await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss = self_status_bytes("VmHWM").filter(|_| reset);
    let after = setup::used_memory(&mut conn).await?;
    let written: u64 = report.views.iter().map(|v| v.written).sum();
    eprintln!(
        "  {written} rows in {seconds:.2} s: {} rows/s",
        crate::report::fmt_count(written as f64 / seconds)
    );
    // Leave Redis as we found it (and free its memory for whatever runs next).
    setup::delete_views(&store).await?;
    Ok(MaterializeRow {
        rows: written,
        features: FIELDS,
        generate_seconds,
        seconds,
        used_memory_delta: after - before,
        rss_before,
        peak_rss,
    })
}
