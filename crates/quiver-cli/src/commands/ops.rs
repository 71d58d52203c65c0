//! Operating a running store: `quiver stats`, `quiver invalidate`, `quiver prune-online`.
//!
//! `stats` asks a running server (its counters live in that process). `invalidate` and
//! `prune-online` act on the online store directly, or through a server with `--url` (the
//! embedded store's file is held by the server that has it open).

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct StatsArgs {
    /// The feature server; default: `http://{server.host}:{server.port}` of the project.
    #[arg(long)]
    url: Option<String>,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct InvalidateArgs {
    /// The feature view.
    #[arg(long)]
    view: String,
    /// The view version (default: the served one).
    #[arg(long)]
    version: Option<u32>,
    /// Only these entities, `key=value` (repeat for more; `a=1,b=x` for composite keys);
    /// default: every record of the view version.
    #[arg(long = "entity", short = 'e')]
    entities: Vec<String>,
    /// Go through this feature server (`POST /invalidate`) instead of opening the store.
    #[arg(long)]
    url: Option<String>,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Keep the online records of this many unserved versions per view (newest first).
    /// Default: what each view's `max_versions` (or the project's) leaves beside its served
    /// versions; none for views without that bound.
    #[arg(long)]
    keep_versions: Option<usize>,
    /// Only say what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Also drop the offline tables (built history) of the versions pruned.
    #[arg(long)]
    offline: bool,
    /// Go through this feature server (`POST /prune-online`) instead of opening the store.
    #[arg(long)]
    url: Option<String>,
}

fn default_url(project: &Path) -> anyhow::Result<String> {
    let config = quiver::Project::load(project)?;
    let server = &config.config.server;
    let host = match server.host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    Ok(format!("http://{host}:{}", server.port))
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()?;
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the feature server at {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if !status.is_success() {
        let detail = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(text);
        bail!("{url} answered {status}: {detail}");
    }
    Ok(value)
}

pub async fn stats(project: &Path, args: StatsArgs) -> anyhow::Result<()> {
    let base = match args.url {
        Some(u) => u,
        None => default_url(project)?,
    };
    let url = format!("{}/stats", base.trim_end_matches('/'));
    let stats = call(reqwest::Method::GET, &url, None).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    for (title, key) in [
        ("Last minute", "last_minute"),
        ("Since start", "since_start"),
    ] {
        let period = &stats[key];
        let seconds = period["seconds"].as_f64().unwrap_or(0.0);
        say!("{title} ({seconds:.0} s):");
        print_period(period);
        say!("");
    }
    Ok(())
}

fn ms(layer: &Value) -> String {
    match layer
        .get("calls")
        .or_else(|| layer.get("count"))
        .and_then(Value::as_u64)
    {
        Some(n) if n > 0 => format!(
            "{:.2}/{:.2}/{:.2}",
            layer["mean_ms"].as_f64().unwrap_or(0.0),
            layer["p50_ms"].as_f64().unwrap_or(0.0),
            layer["p99_ms"].as_f64().unwrap_or(0.0)
        ),
        _ => "-".to_string(),
    }
}

fn print_period(period: &Value) {
    let views = period["views"].as_object().cloned().unwrap_or_default();
    if views.is_empty() {
        say!("  no reads yet");
    } else {
        say!(
            "  {:<24} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  {:<20} {:<20}",
            "view",
            "hits",
            "misses",
            "hit rate",
            "fb:down",
            "fb:miss",
            "rd-thru",
            "lazy",
            "writes",
            "errors",
            "online ms mean/p50/p99",
            "offline ms mean/p50/p99"
        );
        for (name, v) in &views {
            let rate = v["hit_rate"]
                .as_f64()
                .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
            let errors: u64 = v["errors"]
                .as_object()
                .map(|e| e.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            let layers = &v["layers"];
            let offline = match layers.get("computed") {
                Some(c) if !layers.get("offline").is_some_and(|o| o.is_object()) => c,
                _ => &layers["offline"],
            };
            say!(
                "  {:<24} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  {:<20} {:<20}",
                name,
                v["hits"].to_string(),
                v["misses"].to_string(),
                rate,
                v["fallbacks"]["unavailable"].to_string(),
                v["fallbacks"]["miss"].to_string(),
                v["read_throughs"].to_string(),
                v["lazy_computations"].to_string(),
                v["writes"].to_string(),
                errors,
                ms(&layers["online"]),
                ms(offline)
            );
        }
    }
    if let Some(stores) = period["stores"].as_object().filter(|s| !s.is_empty()) {
        say!(
            "  {:<24} {:>9}  {:<20}",
            "store operation",
            "calls",
            "ms mean/p50/p99"
        );
        for (backend, ops) in stores {
            for (op, l) in ops.as_object().into_iter().flatten() {
                say!(
                    "  {:<24} {:>9}  {:<20}",
                    format!("{backend} {op}"),
                    l["count"].to_string(),
                    ms(l)
                );
            }
        }
    }
}

pub async fn invalidate(project: &Path, args: InvalidateArgs) -> anyhow::Result<()> {
    let report = match &args.url {
        Some(base) => {
            let entities = entity_json(&args.entities)?;
            let body = json!({"view": args.view, "version": args.version, "entities": entities});
            let url = format!("{}/invalidate", base.trim_end_matches('/'));
            call(reqwest::Method::POST, &url, Some(body)).await?
        }
        None => {
            let store = quiver::FeatureStore::open(project).await?;
            let entities = super::parse_entities(&store, &args.entities)?;
            serde_json::to_value(
                store
                    .invalidate(&args.view, args.version, &entities)
                    .await?,
            )?
        }
    };
    let what = match report["entities"].as_u64() {
        Some(0) | None => "every record".to_string(),
        Some(n) => format!("{n} entities"),
    };
    say!(
        "Invalidated {} v{} ({what}): {} records deleted.",
        report["view"].as_str().unwrap_or(&args.view),
        report["version"],
        report["removed"]
    );
    Ok(())
}

/// `--entity` rows as the JSON `entities` of `POST /invalidate` (Feast's column-major shape);
/// the server parses each value as its join key's type.
fn entity_json(rows: &[String]) -> anyhow::Result<Value> {
    let mut columns: serde_json::Map<String, Value> = serde_json::Map::new();
    for text in rows {
        for pair in text.split(',') {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--entity `{pair}` is not `key=value`"))?;
            let value = match value.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => json!(value),
            };
            if let Value::Array(values) =
                columns.entry(key.to_string()).or_insert_with(|| json!([]))
            {
                values.push(value);
            }
        }
    }
    Ok(Value::Object(columns))
}

pub async fn prune_online(project: &Path, args: PruneArgs) -> anyhow::Result<()> {
    let report = match &args.url {
        Some(base) => {
            let url = format!("{}/prune-online", base.trim_end_matches('/'));
            let body = json!({
                "keep_versions": args.keep_versions,
                "dry_run": args.dry_run,
                "offline": args.offline,
            });
            call(reqwest::Method::POST, &url, Some(body)).await?
        }
        None => {
            let store = quiver::FeatureStore::open(project).await?;
            let report = match args.offline {
                true => {
                    store
                        .prune_online_and_offline(args.keep_versions, args.dry_run)
                        .await?
                }
                false => store.prune_online(args.keep_versions, args.dry_run).await?,
            };
            serde_json::to_value(report)?
        }
    };
    let verb = if args.dry_run {
        "Would delete"
    } else {
        "Deleted"
    };
    let removed = report["removed"].as_array().cloned().unwrap_or_default();
    if removed.is_empty() {
        say!("No online records of unserved versions to delete.");
    }
    for v in &removed {
        say!(
            "{verb} {} v{}: {} records (~{})",
            v["view"].as_str().unwrap_or("?"),
            v["version"],
            v["keys"],
            super::human_bytes(v["bytes"].as_u64().unwrap_or(0))
        );
    }
    for t in report["offline_dropped"].as_array().into_iter().flatten() {
        let verb = if args.dry_run {
            "Would drop"
        } else {
            "Dropped"
        };
        say!("{verb} offline table {}", t.as_str().unwrap_or("?"));
    }
    for v in report["kept"].as_array().into_iter().flatten() {
        say!(
            "Kept {} v{}: {} records ({})",
            v["view"].as_str().unwrap_or("?"),
            v["version"],
            v["keys"],
            if args.keep_versions.is_some() {
                "--keep-versions"
            } else {
                "max_versions"
            }
        );
    }
    Ok(())
}
