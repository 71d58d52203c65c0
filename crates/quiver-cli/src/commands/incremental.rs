//! `quiver materialize-incremental` and `quiver prune`.

use std::path::Path;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(project: &Path, _args: Args) -> anyhow::Result<()> {
    let mut store = quiver::FeatureStore::open(project).await?;
    let report = store.materialize_incremental(&quiver::NoProgress).await?;
    for v in &report.views {
        say!(
            "{} v{}: {} rows in window, {} written, {} kept newer online, {} rejected",
            v.view,
            v.version,
            v.rows_in_window,
            v.written,
            v.skipped_older,
            v.rejected
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Views to prune; default: all with a `retention`.
    #[arg(long, value_delimiter = ',')]
    views: Vec<String>,
}

pub async fn prune(project: &Path, args: PruneArgs) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let pruned = store.prune(&args.views).await?;
    if pruned.is_empty() {
        say!("No view has a `retention`; nothing pruned.");
    }
    for (view, rows) in pruned {
        say!("{view}: {rows} rows older than its retention deleted");
    }
    Ok(())
}
