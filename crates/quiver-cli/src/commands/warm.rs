//! `quiver warm`: load the online store from the offline layer before traffic arrives.

use std::path::{Path, PathBuf};

use quiver::{WarmEntities, WarmOptions};

/// Which entities to warm: exactly one of the three.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// A Parquet or CSV file with the views' join-key columns.
    #[arg(long)]
    entities: Option<PathBuf>,
    /// Every entity in each view's offline table.
    #[arg(long)]
    all: bool,
    /// The N entities with the most recent events per view.
    #[arg(long)]
    top: Option<usize>,
}

#[derive(clap::Args)]
pub struct Args {
    /// Views (comma-separated or repeated); default: all.
    #[arg(long, value_delimiter = ',')]
    views: Vec<String>,
    #[command(flatten)]
    which: Which,
}

impl Args {
    /// The options these arguments ask for (reads the entity file).
    pub fn options(&self) -> anyhow::Result<WarmOptions> {
        let entities = match (&self.which.entities, self.which.top) {
            (Some(path), _) => WarmEntities::Rows(quiver::offline_io::read_file(path)?),
            (None, Some(n)) => WarmEntities::Top(n),
            (None, None) => WarmEntities::All,
        };
        Ok(WarmOptions {
            views: self.views.clone(),
            entities,
        })
    }
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    for r in store.warm(&args.options()?).await? {
        say!(
            "{} v{}: {} entities, {} written, {} kept newer online, {} not in the offline layer ({:.2}s)",
            r.view,
            r.version,
            r.entities,
            r.written,
            r.skipped_older,
            r.missing,
            r.seconds
        );
    }
    Ok(())
}
