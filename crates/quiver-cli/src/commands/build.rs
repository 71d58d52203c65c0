//! `quiver build`: compute features over a range into the offline store (and online).

use std::path::Path;

use quiver::{BuildOptions, MaterializeOptions, NoProgress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    window: super::ViewWindow,
    /// Also write the latest value per entity (windows evaluated at the end) online.
    #[arg(long)]
    online: bool,
    /// Fail when a source has rows with a null event time instead of skipping them.
    #[arg(long)]
    strict: bool,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let (start, end) = args.window.bounds()?;
    let reports = store
        .build(&BuildOptions {
            views: args.window.views.clone(),
            start,
            end,
            strict: args.strict,
        })
        .await?;
    for r in &reports {
        say!(
            "{} v{}: {} rows into {} ({:.2}s)",
            r.view,
            r.version,
            r.rows,
            r.table,
            r.seconds
        );
        super::print_skipped(&r.view, r.rows_null_timestamp, r.rows_null_key);
    }
    if args.online {
        let report = store
            .materialize(
                &MaterializeOptions {
                    views: args.window.views,
                    start,
                    end,
                    strict: args.strict.then_some(true),
                },
                &NoProgress,
            )
            .await?;
        for v in &report.views {
            say!("{} v{}: {} entities online", v.view, v.version, v.written);
        }
    }
    Ok(())
}
