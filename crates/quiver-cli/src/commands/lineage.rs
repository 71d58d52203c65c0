//! `quiver lineage view:feature`: where a feature comes from.

use std::path::Path;

use quiver_core::value::format_timestamp as time;

#[derive(clap::Args)]
pub struct Args {
    /// The feature, `view:feature`.
    pub feature: String,
    /// Print the lineage as JSON.
    #[arg(long)]
    pub json: bool,
    /// How many of the latest runs to print (the registry keeps 100 per view).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let lineage = store.lineage(&args.feature).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&lineage)?);
        return Ok(());
    }
    say!(
        "{} ({}), feature view `{}` v{}",
        lineage.feature,
        lineage.value_type,
        lineage.view,
        lineage.version
    );
    if let Some(d) = &lineage.description {
        say!("  {d}");
    }
    let s = &lineage.source;
    let schema = match (&s.schema_hash, &s.schema_note) {
        (Some(h), _) => format!("schema {h}"),
        (None, Some(note)) => format!("schema unknown: {note}"),
        (None, None) => "schema unknown".to_string(),
    };
    say!(
        "  source: `{}` ({}) {}, event time `{}`, {schema}",
        s.name,
        s.format,
        s.location,
        s.timestamp_field
    );
    let t = &lineage.transformation;
    match &t.expression {
        Some(e) => say!("  computed: {} ({})", e, t.kind.replace('_', " ")),
        None => say!("  read from column `{}`", t.column),
    }
    if let Some(sql) = &t.sql {
        say!(
            "  after SQL: {}",
            sql.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    if lineage.services.is_empty() {
        say!("  in no feature service");
    } else {
        say!("  in feature services: {}", lineage.services.join(", "));
    }
    if lineage.runs.is_empty() {
        say!("  never materialized or built");
    } else {
        let shown = lineage.runs.len().min(args.runs);
        say!("  last {shown} of {} runs:", lineage.runs.len());
        for r in &lineage.runs[lineage.runs.len() - shown..] {
            let window = super::run_window(r);
            say!(
                "    {:<11} v{} at {}: events {window}, {} rows written, {} rejected, {:.2} s",
                format!("{:?}", r.kind).to_lowercase(),
                r.version,
                time(r.finished_at),
                r.written,
                r.rejected,
                r.seconds
            );
        }
    }
    Ok(())
}
