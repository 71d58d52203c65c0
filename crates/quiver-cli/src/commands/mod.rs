//! One module per subcommand.

pub mod apply;
pub mod build;
pub mod get;
pub mod historical;
pub mod incremental;
pub mod init;
pub mod lineage;
pub mod materialize;
pub mod ops;
pub mod records;
pub mod rollback;
pub mod serve;
pub mod skew;
pub mod status;
pub mod versions;
pub mod warm;

/// Parses an RFC 3339 timestamp (or a date) given on the command line to ns UTC.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    quiver_core::value::parse_timestamp(text).map_err(anyhow::Error::msg)
}

/// The views and event-time window `build` and `materialize` act on.
#[derive(clap::Args)]
pub struct ViewWindow {
    /// Views (comma-separated or repeated); default: all.
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Only rows with event time at or after this (RFC 3339, UTC if no offset); default: all
    /// history.
    #[arg(long)]
    pub start: Option<String>,
    /// Only rows with event time before this (default: now).
    #[arg(long)]
    pub end: Option<String>,
}

impl ViewWindow {
    /// The window's bounds in ns UTC.
    pub fn bounds(&self) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        Ok((
            self.start.as_deref().map(parse_time).transpose()?,
            self.end.as_deref().map(parse_time).transpose()?,
        ))
    }
}

/// Says which source rows of a view were skipped because they belong to no point in time (the
/// `--strict` flags refuse them instead); silent when there were none.
pub fn print_skipped(view: &str, null_timestamp: u64, null_key: u64) {
    if null_timestamp > 0 {
        say!("  {view}: skipped {null_timestamp} source rows with a null event time");
    }
    if null_key > 0 {
        say!("  {view}: skipped {null_key} source rows with a null join key");
    }
}

/// `--entity key=value` rows (`a=1,b=x` for composite keys) as column-major entity rows, each
/// value parsed as its join key's type.
pub fn parse_entities(
    store: &quiver::FeatureStore,
    rows: &[String],
) -> anyhow::Result<Vec<(String, Vec<quiver_core::KeyValue>)>> {
    use anyhow::Context as _;
    let mut columns: Vec<(String, Vec<quiver_core::KeyValue>)> = Vec::new();
    for (row, text) in rows.iter().enumerate() {
        for pair in text.split(',') {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--entity `{pair}` is not `key=value`"))?;
            let ty = store
                .join_key_type(key)
                .unwrap_or(quiver_core::ScalarType::String);
            let parsed = quiver_core::KeyValue::parse(value, ty)
                .map_err(|e| anyhow::anyhow!("--entity `{pair}`: {e}"))?;
            match columns.iter_mut().find(|(k, _)| k == key) {
                Some((_, vals)) => vals.push(parsed),
                None if row == 0 => columns.push((key.to_string(), vec![parsed])),
                None => {
                    anyhow::bail!("--entity `{text}` has key `{key}` that the first row does not")
                }
            }
        }
    }
    Ok(columns)
}

/// A run's event-time window: `start .. end`, or `all history .. end`.
pub fn run_window(run: &quiver::registry::MaterializationRun) -> String {
    let time = quiver_core::value::format_timestamp;
    match run.start {
        Some(start) => format!("{} .. {}", time(start), time(run.end)),
        None => format!("all history .. {}", time(run.end)),
    }
}

/// `1.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}
