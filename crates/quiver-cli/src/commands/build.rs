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
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let (start, end) = args.window.bounds()?;
    let reports = store
        .build(&BuildOptions {
            views: args.window.views.clone(),
            start,
            end,
        })
        .await?;
    for r in &reports {
        println!(
            "{} v{}: {} rows into {} ({:.2}s)",
            r.view, r.version, r.rows, r.table, r.seconds
        );
    }
    if args.online {
        let report = store
            .materialize(
                &MaterializeOptions {
                    views: args.window.views,
                    start,
                    end,
                    strict: None,
                },
                &NoProgress,
            )
            .await?;
        for v in &report.views {
            println!("{} v{}: {} entities online", v.view, v.version, v.written);
        }
    }
    Ok(())
}
