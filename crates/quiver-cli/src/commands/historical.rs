//! `quiver historical`: a point-in-time-correct training set.

use std::path::{Path, PathBuf};

use quiver::{FeatureSelection, HistoricalOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Entity rows: a Parquet or CSV file with the join keys and a timestamp column.
    #[arg(long)]
    entities: PathBuf,
    /// Features as `view:feature` (comma-separated or repeated).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "feature_service"
    )]
    features: Vec<String>,
    /// A feature service instead of a feature list.
    #[arg(long, conflicts_with = "features")]
    feature_service: Option<String>,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// The entity file's timestamp column.
    #[arg(long, default_value = "event_timestamp")]
    timestamp_column: String,
    /// Name features `view__feature`.
    #[arg(long)]
    full_feature_names: bool,
    /// Fail when a source has rows with a null event time instead of skipping them.
    #[arg(long)]
    strict: bool,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let entities = quiver::offline_io::read_file(&args.entities)?;
    let selection = match args.feature_service {
        Some(s) => FeatureSelection::Service(s),
        None => FeatureSelection::Features(args.features),
    };
    let started = std::time::Instant::now();
    let training = store
        .get_historical_features(
            &entities,
            &selection,
            &HistoricalOptions {
                timestamp_column: args.timestamp_column,
                full_feature_names: args.full_feature_names,
                strict: args.strict,
                entities_origin: Some(format!("entity file `{}`", args.entities.display())),
            },
        )
        .await?;
    for skipped in &training.sources {
        super::print_skipped(
            &skipped.view,
            skipped.rows_null_timestamp,
            skipped.rows_null_key,
        );
    }
    let out = training.batch;
    quiver::offline_io::write_parquet(&args.out, &out)?;
    say!(
        "{} rows x {} columns written to {} ({:.2}s)",
        out.num_rows(),
        out.num_columns(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
