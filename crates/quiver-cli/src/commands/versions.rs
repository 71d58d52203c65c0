//! `quiver versions VIEW`: every version of a view, with its schema, the apply that made it,
//! whether it is served and what the online store holds of it.

use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// The feature view.
    pub view: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let report = store.versions(&args.view).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    match report.active {
        Some(v) => say!("{}: serving v{v}", report.view),
        None => say!("{}: removed (no version served)", report.view),
    }
    for v in &report.versions {
        let state = match (v.served, v.pinned_by.is_empty()) {
            (true, _) => "served".to_string(),
            (false, false) => format!("pinned by {}", v.pinned_by.join(", ")),
            (false, true) => "-".to_string(),
        };
        let applied = match &v.created_by {
            Some(by) => {
                let who = match (&by.user, &by.host) {
                    (Some(u), Some(h)) => format!(" by {u}@{h}"),
                    (Some(u), None) => format!(" by {u}"),
                    (None, Some(h)) => format!(" from {h}"),
                    (None, None) => String::new(),
                };
                let hash = by
                    .definitions_hash
                    .as_deref()
                    .map(|h| format!(", definitions {h}"))
                    .unwrap_or_default();
                format!("applied at {} (serial {}){who}{hash}", by.at, by.serial)
            }
            None => "applied before the history kept it".to_string(),
        };
        let online = if v.online_keys == 0 {
            "no online records".to_string()
        } else {
            format!(
                "{} online records, ~{}",
                v.online_keys,
                super::human_bytes(v.online_bytes)
            )
        };
        say!("  v{:<4} {state:<7} {applied}; {online}", v.version);
        match &v.definition {
            Some(d) => {
                let keys: Vec<String> = d
                    .join_keys
                    .iter()
                    .map(|k| format!("{} {}", k.name, k.key_type.name()))
                    .collect();
                let fields: Vec<String> = d
                    .fields
                    .iter()
                    .map(|f| format!("{} {}", f.name, f.value_type))
                    .collect();
                say!(
                    "         keys: {}; fields: {}",
                    keys.join(", "),
                    fields.join(", ")
                );
            }
            None => say!("         schema {} (definition not kept)", v.fingerprint),
        }
    }
    if let Some(e) = &report.online_error {
        eprintln!("warning: could not count online records: {e}");
    }
    Ok(())
}
