//! The cases, and [`run_all`], which sets up what they need, runs the selected ones in order and
//! writes the report.
//!
//! - [`raw`]: `GET`/`MGET` of the stored values with a raw client per task (the limit).
//! - [`http`]: `POST /get-online-features` against a `quiver_server` process; the soak.
//! - [`library`]: `FeatureStore::get_online_features`, no HTTP.
//! - [`cluster`]: the same library reads against a Redis Cluster the case starts.
//! - [`memory`]: Redis bytes per entity for 50 float32 features.
//! - [`materialize`]: rows/s of `FeatureStore::materialize` from a generated Parquet source.
//! - [`codec`]: MessagePack vs JSON record encode/decode.
//! - [`fallback`]: library reads with Redis killed, answered by the offline store (Parquet,
//!   PostgreSQL), next to the same reads with Redis up.
//! - [`records`]: records accepted over HTTP, exported into Parquet and PostgreSQL, and what
//!   served-feature logging costs serving.
//! - [`skew`]: `FeatureStore::skew` over a million exported served-feature log rows.

pub mod cluster;
pub mod codec;
pub mod fallback;
pub mod http;
pub mod library;
pub mod materialize;
pub mod memory;
pub mod raw;
pub mod records;
pub mod skew;

use std::sync::Arc;

use crate::cli::Args;
use crate::load::{self, Worker};
use crate::machine::{self, Machine};
use crate::report::{Latency, LoadRow, ReadPath, Report, Shape};
use crate::setup::{self, RedisTarget, SERVE_ENTITIES, ServingSetup};

/// Distinct requests each load point cycles through (entity ids drawn per request).
pub(crate) const REQUEST_RING: usize = 256;

pub async fn run_all(args: Args) -> anyhow::Result<()> {
    let cases = args.selected_cases()?;
    let mut report = Report {
        command: Args::command_line(),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: Machine::describe(),
        warmup_seconds: args.warmup().as_secs_f64(),
        duration_seconds: args.duration().as_secs_f64(),
        ..Report::default()
    };
    // The fallback case starts (and kills) its own redis-server.
    let redis = if args.soak_seconds.is_some()
        || cases
            .iter()
            .any(|c| !matches!(*c, "codec" | "fallback" | "records" | "cluster" | "skew"))
    {
        let redis = RedisTarget::start(args.redis_url.as_deref())?;
        report.machine.redis_version = setup::redis_version(&mut redis.connect().await?).await?;
        report.redis = if redis.is_ours() {
            "started by the bench on an ephemeral loopback port".into()
        } else {
            "given with `--redis-url`".into()
        };
        Some(redis)
    } else {
        None
    };
    let serving = match &redis {
        Some(redis)
            if args.soak_seconds.is_some()
                || cases
                    .iter()
                    .any(|c| matches!(*c, "raw" | "http" | "library" | "memory")) =>
        {
            eprintln!(
                "setting up: {SERVE_ENTITIES} entities × 50 and × 250 float32 features into Redis"
            );
            Some(ServingSetup::create(redis).await?)
        }
        _ => None,
    };

    for case in cases {
        eprintln!("== {case}");
        let need = || anyhow::anyhow!("case `{case}` needs Redis (this is a bug in quiver-bench)");
        match case {
            "codec" => report.codecs = codec::run(args.quick).await?,
            "raw" => {
                let redis = redis.as_ref().ok_or_else(need)?;
                let serving = serving.as_ref().ok_or_else(need)?;
                report.loads.extend(raw::run(redis, serving, &args).await?);
            }
            "http" => {
                let serving = serving.as_ref().ok_or_else(need)?;
                let result = http::run(serving, &args).await?;
                report.loads.extend(result.loads);
                report.rss.extend(result.rss);
                report.server_peak_rss = result.server_peak_rss;
            }
            "library" => {
                let serving = serving.as_ref().ok_or_else(need)?;
                report.loads.extend(library::run(serving, &args).await?);
            }
            "memory" => {
                let redis = redis.as_ref().ok_or_else(need)?;
                let serving = serving.as_ref().ok_or_else(need)?;
                report.memory = Some(memory::run(redis, serving).await?);
            }
            "materialize" => {
                let redis = redis.as_ref().ok_or_else(need)?;
                report.materialize = Some(materialize::run(redis, args.materialize_rows()).await?);
            }
            "fallback" => {
                let result = fallback::run(&args).await?;
                report.fallback = result.rows;
                report.fallback_setups = result.setups;
                if report.machine.redis_version.is_empty() {
                    report.machine.redis_version = result.redis_version;
                    report.redis = "started by the fallback case on an ephemeral loopback \
                                    port, then killed"
                        .into();
                }
            }
            "records" => report.records = records::run(&args).await?,
            "cluster" => report.loads.extend(cluster::run(&args).await?),
            "skew" => report.skew = Some(skew::run(args.skew_rows()).await?),
            other => anyhow::bail!("case `{other}` has no runner (this is a bug in quiver-bench)"),
        }
    }
    if let Some(seconds) = args.soak_seconds {
        eprintln!("== soak");
        let serving = serving.as_ref().ok_or_else(|| {
            anyhow::anyhow!("the soak needs Redis (this is a bug in quiver-bench)")
        })?;
        report.soak = Some(http::soak(serving, &args, seconds).await?);
    }
    report.peak_rss = machine::self_status_bytes("VmHWM");
    report.machine.loadavg_end = machine::loadavg();

    if let (Some(redis), Some(serving)) = (&redis, &serving)
        && !redis.is_ours()
    {
        setup::delete_views(&serving.open_store().await?).await?;
    }

    let text = report.render();
    println!("{text}");
    if !args.no_write {
        let path = args.output_path();
        crate::report::write_section(&path, &text)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs one load point and prints a progress line.
async fn load_point<W: Worker>(
    path: ReadPath,
    shape: Shape,
    workers: Vec<W>,
    args: &Args,
) -> anyhow::Result<LoadRow> {
    let concurrency = workers.len();
    let result = load::run(workers, args.warmup(), args.duration()).await?;
    let row = LoadRow {
        path,
        shape,
        concurrency,
        per_second: result.per_second(),
        latency: Latency::of(&result.histogram),
        errors: result.errors,
        first_error: result.first_error,
    };
    eprintln!(
        "  {path:?} {shape} c={concurrency}: {} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, {} errors",
        crate::report::fmt_count(row.per_second),
        crate::report::fmt_ms(row.latency.p50),
        crate::report::fmt_ms(row.latency.p99),
        crate::report::fmt_ms(row.latency.p999),
        row.errors
    );
    Ok(row)
}

/// The entity ids of [`REQUEST_RING`] requests of `shape`, different per shape.
fn request_ids(shape: Shape) -> Vec<Vec<i64>> {
    let seed = (shape.entities * 1000 + shape.features) as u64;
    load::entity_ids(seed, shape.entities * REQUEST_RING, SERVE_ENTITIES)
        .chunks(shape.entities)
        .map(<[i64]>::to_vec)
        .collect()
}

/// The view serving `shape` and its `view:feature` references.
fn feature_refs(shape: Shape) -> Vec<String> {
    let view = if shape.features <= 50 { "f50" } else { "f250" };
    (0..shape.features)
        .map(|i| format!("{view}:f{i}"))
        .collect()
}

/// The Redis keys of `shape`'s view.
fn view_keys(serving: &ServingSetup, shape: Shape) -> Arc<[String]> {
    if shape.features <= 50 {
        serving.f50_keys.clone()
    } else {
        serving.f250_keys.clone()
    }
}
