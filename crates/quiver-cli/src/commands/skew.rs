//! `quiver skew --service S`: compares what a feature service served (its exported served-feature
//! logs) with what a training set computes for the same entities at the same times.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use quiver::skew::{CAUSES, SkewOptions};
use quiver_core::value::format_timestamp as time;

#[derive(clap::Args)]
pub struct Args {
    /// The feature service (it needs `logging`, and its logs exported: `quiver export`).
    #[arg(long)]
    pub service: String,
    /// Only requests served within this long before now (`24h`, `7d`).
    #[arg(long, conflicts_with = "start")]
    pub since: Option<String>,
    /// Only requests served at or after this time (RFC 3339, UTC if no offset).
    #[arg(long)]
    pub start: Option<String>,
    /// Only requests served before this time.
    #[arg(long)]
    pub end: Option<String>,
    /// Compare a uniform random sample of N logged rows.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// The sample's seed (the same seed, the same rows).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Floats match within this relative tolerance (`1e-9`); default: only equal values.
    #[arg(long, default_value_t = 0.0)]
    pub tolerance: f64,
    /// Example rows per feature and kind of disagreement.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// Also write the report as a self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON instead.
    #[arg(long)]
    pub json: bool,
}

fn pct(x: f64) -> String {
    format!("{:.3}%", x * 100.0)
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open_offline(project).await?;
    let now = quiver::online_store::now_ns();
    let start = match (&args.since, &args.start) {
        (Some(since), _) => {
            let d =
                quiver_core::duration::parse(since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            Some(now.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
        }
        (None, Some(s)) => Some(super::parse_time(s).context("--start")?),
        (None, None) => None,
    };
    let end = args
        .end
        .as_deref()
        .map(super::parse_time)
        .transpose()
        .context("--end")?;
    let options = SkewOptions {
        start,
        end,
        sample: args.sample,
        seed: args.seed,
        tolerance: args.tolerance,
        examples: args.examples,
        ..SkewOptions::new(&args.service)
    };
    let report = store.skew(&options).await?;
    if let Some(path) = &args.out {
        std::fs::write(path, quiver::skew::html::render(&report))
            .with_context(|| format!("cannot write the HTML report to {}", path.display()))?;
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let span = match (report.first_time, report.last_time) {
        (Some(a), Some(b)) => format!(", served {} .. {}", time(a), time(b)),
        _ => String::new(),
    };
    say!(
        "feature service `{}`: {} rows compared of {} logged in {} requests{span} ({:.2} s)",
        report.service,
        report.rows,
        report.logged_rows,
        report.requests,
        report.seconds
    );
    if report.rows == 0 {
        say!(
            "  no logged rows: is `logging` on for the service, and were the logs exported (`quiver export --namespace served_features`)?"
        );
    }
    if report.skipped_rows > 0 {
        say!("  {} logged rows skipped:", report.skipped_rows);
    }
    for reason in &report.skipped_reasons {
        say!("    {reason}");
    }
    say!(
        "{:<32} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "feature",
        "compared",
        "exact",
        "mismatch",
        "differ",
        "onl.only",
        "off.only",
        "mean|diff|",
        "max|diff|"
    );
    let num = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    for f in &report.features {
        say!(
            "{:<32} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>11}",
            f.feature,
            f.compared,
            pct(f.exact_match_rate()),
            pct(f.mismatch_rate()),
            f.mismatched,
            f.online_only,
            f.offline_only,
            num(f.mean_abs_diff),
            num(f.max_abs_diff)
        );
    }
    for f in report.features.iter().filter(|f| f.disagreements() > 0) {
        let causes: Vec<String> = CAUSES
            .iter()
            .filter_map(|c| f.causes.get(c).map(|n| format!("{} {n}", c.as_str())))
            .collect();
        say!(
            "\n{}: {} rows disagree ({})",
            f.feature,
            f.disagreements(),
            causes.join(", ")
        );
        for e in report.examples.iter().filter(|e| e.feature == f.feature) {
            say!(
                "  {:<12} {} at {}: online {} ({}, event {}) offline {} ({}, event {}), layers {}, request {}",
                e.outcome.as_str(),
                e.entity,
                time(e.time),
                e.online,
                e.online_status,
                e.online_event_time.map_or("-".to_string(), time),
                e.offline,
                e.offline_status,
                e.offline_event_time.map_or("-".to_string(), time),
                e.layers,
                e.request_id
            );
        }
    }
    if !report.has_skew() && report.rows > 0 {
        say!("\nno skew: every compared value agrees");
    }
    if let Some(path) = &args.out {
        say!("report written to {}", path.display());
    }
    Ok(())
}
