//! `quiver records` (put, get, delete, queue) and `quiver export`.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(clap::Subcommand)]
pub enum RecordsCommand {
    /// Accept records: one JSON object (`--id` names it), or a JSON array / JSON lines file.
    Put {
        namespace: String,
        /// The record's id (otherwise each record's id field).
        #[arg(long)]
        id: Option<String>,
        /// The record(s) as JSON text.
        #[arg(long, conflicts_with = "file")]
        json: Option<String>,
        /// A file of records: a JSON array, or one JSON object per line.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a cached record as JSON.
    Get { namespace: String, id: String },
    /// Delete a cached record (its queued copy is still exported).
    Delete { namespace: String, id: String },
    /// Each namespace's export queue: length, oldest entry, dead letters.
    Queue,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RecordsCommand,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Namespaces (comma-separated or repeated); default: all.
    #[arg(long = "namespace", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// List the dead letters of the namespaces instead of exporting.
    #[arg(long, conflicts_with = "replay")]
    dead_letters: bool,
    /// Queue the namespaces' dead letters again (then export them with `quiver export`).
    #[arg(long)]
    replay: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_records(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str(text)? {
            Value::Array(items) => Ok(items),
            _ => anyhow::bail!("expected a JSON array"),
        };
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(vec![v]);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("line {}: invalid JSON: {e}", i + 1))
        })
        .collect()
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    match args.command {
        RecordsCommand::Put {
            namespace,
            id,
            json,
            file,
        } => {
            let text = match (json, file) {
                (Some(j), _) => j,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", f.display()))?,
                (None, None) => anyhow::bail!("give the record(s) with --json or --file"),
            };
            let records = parse_records(&text)?;
            if id.is_some() && records.len() != 1 {
                anyhow::bail!("--id names one record; {} were given", records.len());
            }
            let receipts = store
                .put_records(
                    &namespace,
                    records.into_iter().map(|r| (id.clone(), r)).collect(),
                )
                .await?;
            say!("accepted {} records into `{namespace}`", receipts.len());
        }
        RecordsCommand::Get { namespace, id } => match store.get_record(&namespace, &id).await? {
            Some(e) => say!("{}", serde_json::to_string_pretty(&e)?),
            None => anyhow::bail!(
                "no record `{id}` in namespace `{namespace}` (never written, expired or deleted)"
            ),
        },
        RecordsCommand::Delete { namespace, id } => {
            let deleted = store.delete_record(&namespace, &id).await?;
            say!(
                "{}",
                if deleted {
                    "deleted"
                } else {
                    "no such cached record"
                }
            );
        }
        RecordsCommand::Queue => {
            say!(
                "{:<24} {:>10} {:>10} {:>14} {:>12}",
                "namespace",
                "queued",
                "pending",
                "oldest (s)",
                "dead letters"
            );
            for (ns, s) in store.queue_stats().await? {
                let age = s
                    .oldest_age_seconds()
                    .map_or("-".to_string(), |a| format!("{a:.1}"));
                say!(
                    "{ns:<24} {:>10} {:>10} {age:>14} {:>12}",
                    s.length,
                    s.pending,
                    s.dead_letters
                );
            }
        }
    }
    Ok(())
}

pub async fn export(project: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let namespaces: Vec<String> = if args.namespaces.is_empty() {
        store
            .records()
            .namespaces()
            .map(|n| n.name.clone())
            .collect()
    } else {
        args.namespaces.clone()
    };
    if args.dead_letters {
        for ns in &namespaces {
            for d in store.dead_letters(ns, 1000).await? {
                say!(
                    "{}",
                    serde_json::json!({
                        "namespace": ns, "position": d.position.to_string(), "reason": d.reason,
                        "record": serde_json::from_slice::<Value>(&d.payload).unwrap_or(Value::Null),
                    })
                );
            }
        }
        return Ok(());
    }
    if args.replay {
        for ns in &namespaces {
            let n = store.replay_dead_letters(ns).await?;
            say!("{ns}: {n} dead letters queued again");
        }
        return Ok(());
    }
    let report = store
        .export(&quiver::ExportOptions {
            namespaces: args.namespaces,
        })
        .await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for n in &report.namespaces {
            let mut line = format!(
                "{}: exported {} in {} batches, {} still queued",
                n.namespace, n.exported, n.batches, n.remaining
            );
            if n.already_exported > 0 {
                line.push_str(&format!(", {} already exported", n.already_exported));
            }
            if n.dead_lettered > 0 {
                line.push_str(&format!(", {} dead-lettered", n.dead_lettered));
            }
            if n.retries > 0 {
                line.push_str(&format!(", {} retries", n.retries));
            }
            say!("{line}");
            if let Some(e) = &n.error {
                say!("  stopped: {e}");
            }
        }
        say!(
            "into the {} offline store in {:.2}s",
            report.sink,
            report.seconds
        );
    }
    if report.failed() {
        anyhow::bail!(
            "the export stopped early for some namespaces (see above); rerun `quiver export` to continue"
        );
    }
    Ok(())
}
