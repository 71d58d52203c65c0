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
    match &report.unserved_online {
        Ok(left) if !left.is_empty() => {
            say!("Online records of versions no longer served:");
            for v in left {
                say!(
                    "  {} v{}: {} records, ~{}",
                    v.view,
                    v.version,
                    v.keys,
                    super::human_bytes(v.bytes)
                );
            }
            say!("Remove them with `quiver prune-online` (or keep a few: `--keep-versions N`).");
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not count the online records left behind: {e}"),
    }
    Ok(())
}
