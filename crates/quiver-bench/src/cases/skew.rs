//! Online/offline skew: `FeatureStore::skew` over N logged rows × 20 float32 features. The logs
//! are real: a logged feature service is served through the library (100 entities per request,
//! from the embedded online store), the served-feature log is flushed and exported to Parquet,
//! then `skew` reads the exported logs, runs the point-in-time join and compares. Only `skew`
//! counts toward the rate; serving and exporting are reported beside it.

use std::sync::Arc;
use std::time::Instant;

use quiver::skew::SkewOptions;
use quiver::{ExportOptions, FeatureSelection, OnlineRequest};
use quiver_core::KeyValue;

use crate::report::SkewRow;
use crate::setup;

const FIELDS: usize = 20;
const ENTITIES: usize = 100_000;
const PER_REQUEST: usize = 100;
const WORKERS: usize = 4;

pub async fn run(logged_rows: usize) -> anyhow::Result<SkewRow> {
    let dir = tempfile::Builder::new()
        .prefix("quiver-bench-skew-")
        .tempdir()?;
    setup::write_project_with_config(
        dir.path(),
        "project: quiver_bench_skew\nonline_store: {type: embedded}\noffline_store: {type: parquet, path: offline}\n",
        &[("s20", "s", FIELDS)],
    )?;
    let defs = dir.path().join("features/bench.yaml");
    let mut text = std::fs::read_to_string(&defs)?;
    text.push_str("feature_services:\n  - name: logged\n    features: [s20]\n    logging: {sample_rate: 1.0}\n");
    std::fs::write(&defs, text)?;
    let path = dir.path().join("data/s.parquet");
    let now_us = setup::now_us();
    tokio::task::spawn_blocking(move || setup::write_source(&path, ENTITIES, FIELDS, 7, now_us))
        .await??;
    let mut store = quiver::FeatureStore::open(dir.path()).await?;
    store.apply().await?;
    setup::materialize(&store, "s20").await?;

    let requests = logged_rows.div_ceil(PER_REQUEST);
    eprintln!("  serving {requests} logged requests × {PER_REQUEST} entities");
    let store = Arc::new(store);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let store = store.clone();
        workers.spawn(async move {
            let mut state = (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for _ in (w..requests).step_by(WORKERS) {
                let ids = (0..PER_REQUEST)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        KeyValue::Int((state % ENTITIES as u64) as i64)
                    })
                    .collect();
                let request = OnlineRequest::new(
                    FeatureSelection::Service("logged".into()),
                    vec![("id".into(), ids)],
                );
                store.get_online_features(&request).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let log = store
        .records()
        .served_log()
        .ok_or_else(|| anyhow::anyhow!("the embedded store keeps no served-feature log"))?;
    log.flush().await;
    let serve_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(log.dropped() == 0, "{} log records dropped", log.dropped());
    let rss = |when: &str| {
        if let (Some(now), Some(peak)) = (
            crate::machine::self_status_bytes("VmRSS"),
            crate::machine::self_status_bytes("VmHWM"),
        ) {
            eprintln!(
                "  bench process RSS {when}: {} (peak so far {})",
                crate::report::fmt_mib(now),
                crate::report::fmt_mib(peak)
            );
        }
    };
    rss("after serving and logging");

    eprintln!("  exporting the served-feature log");
    let started = Instant::now();
    let export = store
        .export(&ExportOptions {
            namespaces: vec![quiver::records::SERVED_FEATURES.into()],
        })
        .await?;
    anyhow::ensure!(!export.failed(), "export failed: {export:?}");
    let export_seconds = started.elapsed().as_secs_f64();
    rss("after exporting");

    // `skew` runs in a process of its own (this executable with `--skew-project`), so its
    // peak RSS is its own and not what serving and exporting left in this one.
    drop(store);
    eprintln!("  skew (in a separate process)");
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--skew-project")
        .arg(dir.path())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the skew process failed: {}",
        out.status
    );
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let get = |k: &str| figures[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "  {} rows × {} features in {:.2} s ({} disagreements)",
        get("rows"),
        get("features"),
        get("seconds"),
        get("disagreements")
    );
    Ok(SkewRow {
        rows: get("rows") as u64,
        features: get("features") as usize,
        requests: get("requests") as u64,
        seconds: get("seconds"),
        read_seconds: get("read_seconds"),
        join_seconds: get("join_seconds"),
        disagreements: get("disagreements") as u64,
        serve_seconds,
        export_seconds,
        rss_before: figures["rss_before"].as_u64(),
        peak_rss: figures["peak_rss"].as_u64(),
    })
}

/// The child process: `skew` of service `logged` over the project in `dir`; prints its figures
/// as one JSON object on stdout.
pub async fn child(dir: &std::path::Path) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open_offline(dir).await?;
    let rss_before = crate::machine::self_status_bytes("VmRSS");
    let started = Instant::now();
    let report = store.skew(&SkewOptions::new("logged")).await?;
    let seconds = started.elapsed().as_secs_f64();
    let disagreements: u64 = report.features.iter().map(|f| f.disagreements()).sum();
    println!(
        "{}",
        serde_json::json!({
            "rows": report.rows,
            "features": report.features.len(),
            "requests": report.requests,
            "seconds": seconds,
            "read_seconds": report.read_seconds,
            "join_seconds": report.join_seconds,
            "disagreements": disagreements,
            "rss_before": rss_before,
            "peak_rss": crate::machine::self_status_bytes("VmHWM"),
        })
    );
    Ok(())
}
