//! `quiver apply`.

use std::path::Path;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(project: &Path, _args: Args) -> anyhow::Result<()> {
    let mut store = quiver::FeatureStore::open(project).await?;
    let report = store.apply().await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.changes.is_empty() {
        say!("No changes; registry at serial {}.", report.serial);
    } else {
        say!("Applied (registry serial {}):", report.serial);
        for c in &report.changes {
            say!("  {c}");
        }
    }
    for (view, table) in &report.offline_tables {
        say!("Offline store: `{view}` -> {table}");
    }
    Ok(())
}
