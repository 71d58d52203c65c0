//! `quiver get view:feature ... --entity user_id=42`.

use std::path::Path;

use anyhow::bail;
use quiver::{FeatureSelection, OnlineRequest};

#[derive(clap::Args)]
pub struct Args {
    /// Features as `view:feature`.
    features: Vec<String>,
    /// A feature service instead of a feature list.
    #[arg(long, conflicts_with = "features")]
    service: Option<String>,
    /// Entity row as `key=value` (repeat for more rows; `a=1,b=x` for composite keys).
    #[arg(long = "entity", short = 'e', required = true)]
    entities: Vec<String>,
    /// Print Feast's JSON response shape.
    #[arg(long)]
    json: bool,
    /// Name features `view__feature`.
    #[arg(long)]
    full_feature_names: bool,
    /// Features as of this time (RFC 3339), from the offline layer with the training-set rule
    /// (nothing after it leaks in); default: now, online.
    #[arg(long)]
    as_of: Option<String>,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let features = match (args.service, args.features.is_empty()) {
        (Some(s), _) => FeatureSelection::Service(s),
        (None, false) => FeatureSelection::Features(args.features),
        (None, true) => {
            bail!("name features as `view:feature`, or a feature service with `--service`")
        }
    };
    let columns = super::parse_entities(&store, &args.entities)?;
    let request = OnlineRequest {
        features,
        entities: columns,
        full_feature_names: args.full_feature_names,
        as_of: args.as_of.as_deref().map(super::parse_time).transpose()?,
    };
    let response = store.get_online_features(&request).await?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&quiver_server::routes::feast::render(&response))?
        );
        return Ok(());
    }
    let keys = request.entities.len();
    let width = response
        .feature_names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    for row in 0..response.rows() {
        let id: Vec<String> = (0..keys)
            .map(|k| {
                format!(
                    "{}={}",
                    response.feature_names[k],
                    response.columns[k].values[row].display_short()
                )
            })
            .collect();
        say!("{}", id.join(","));
        for (name, col) in response
            .feature_names
            .iter()
            .zip(&response.columns)
            .skip(keys)
        {
            let ts = col.event_timestamps[row];
            say!(
                "  {name:<width$}  {:<16}  {:<15}  {}",
                col.values[row].display_short(),
                col.statuses[row].as_str(),
                if ts == 0 {
                    "-".to_string()
                } else {
                    quiver_core::value::format_timestamp(ts)
                }
            );
        }
    }
    Ok(())
}
