//! `quiver status`: per view, the last materialization, the newest event online and whether it
//! is within the view's freshness bound.

use std::path::Path;

use quiver_core::value::format_timestamp as time;

#[derive(clap::Args)]
pub struct Args {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `3h 20m`, `45 s`: an age for people.
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// Exits 0 when every view with a bound is within it, 3 when one is stale (for scripts).
pub async fn run(project: &Path, args: Args) -> anyhow::Result<bool> {
    let store = quiver::FeatureStore::open_offline(project).await?;
    let views = store.freshness(quiver::online_store::now_ns())?;
    let stale = views.iter().any(|v| v.stale);
    if args.json {
        say!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(stale);
    }
    if views.is_empty() {
        say!("no feature views are applied");
    }
    for v in &views {
        let verdict = match (v.max_age, v.stale) {
            (None, _) => "no freshness bound".to_string(),
            (Some(b), false) => format!("fresh (bound {})", age(b.as_secs_f64())),
            (Some(b), true) => format!("STALE (bound {})", age(b.as_secs_f64())),
        };
        say!("{} v{}: {verdict}", v.view, v.version);
        match &v.last_materialization {
            None => say!("  never materialized"),
            Some(r) => {
                let window = super::run_window(r);
                say!(
                    "  last materialized {} ({} ago){}: events {window}, {} rows written, {} rejected",
                    time(r.finished_at),
                    age(v.materialized_seconds_ago.unwrap_or(0.0)),
                    if r.version == v.version {
                        String::new()
                    } else {
                        format!(", version {}", r.version)
                    },
                    r.written,
                    r.rejected
                );
            }
        }
        match (v.newest_event, v.newest_event_seconds_ago) {
            (Some(t), Some(a)) => say!("  newest event online: {} ({} old)", time(t), age(a)),
            _ => say!("  newest event online: unknown"),
        }
    }
    Ok(stale)
}
