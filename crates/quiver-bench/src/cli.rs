//! The command line of `quiver-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Every case, in the order they run. The HTTP case runs before the library case so the process
/// RSS it reports is not inflated by the other cases' allocations; materialization runs last for
/// the same reason (it holds a million records in memory).
pub const ALL_CASES: [&str; 10] = [
    "codec",
    "raw",
    "http",
    "library",
    "memory",
    "fallback",
    "records",
    "cluster",
    "materialize",
    "skew",
];

/// Quiver's end-to-end benchmarks: HTTP and library reads against Redis next to the raw-Redis
/// limit, materialization, codecs and memory. Prints a markdown report and writes it into
/// docs/benchmarks.md.
#[derive(Parser, Debug, Clone)]
#[command(name = "quiver-bench")]
pub struct Args {
    /// Use this Redis (loopback only) instead of starting a `redis-server`. The bench writes and
    /// then deletes keys under the `quiver:quiver_bench*` prefixes.
    #[arg(long)]
    pub redis_url: Option<String>,

    /// Short run: 2 s per load point, 0.5 s warm-up, 100k rows to materialize.
    #[arg(long)]
    pub quick: bool,

    /// Seconds each load point is measured (default 10, or 2 with `--quick`).
    #[arg(long)]
    pub duration_secs: Option<f64>,

    /// Cases to run, comma-separated (default all): codec, raw, http, library, memory,
    /// fallback, records, cluster, materialize, skew. `fallback` and `records` start its own redis-server (it kills it) and a
    /// PostgreSQL cluster, whatever `--redis-url` says. `soak` (only with `--soak-seconds`) names no case: `--cases soak` runs the
    /// soak alone.
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,

    /// Logged rows the skew case compares (default 1,000,000, or 100,000 with `--quick`).
    #[arg(long)]
    pub skew_rows: Option<usize>,

    /// Rows to materialize (default 1,000,000, or 100,000 with `--quick`).
    #[arg(long)]
    pub materialize_rows: Option<usize>,

    /// Concurrency levels of the load cases.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,

    /// Where to write the report (default: the workspace's docs/benchmarks.md).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Print the report only; leave docs/benchmarks.md alone.
    #[arg(long)]
    pub no_write: bool,

    /// After the cases, run a soak: HTTP at 32 connections (requests of all three shapes,
    /// interleaved) for this many seconds, sampling the feature server's RSS (e.g. 600).
    #[arg(long)]
    pub soak_seconds: Option<f64>,

    /// Seconds between RSS samples of the soak.
    #[arg(long, default_value_t = 10.0)]
    pub soak_sample_secs: f64,

    /// Internal: run only the feature server for the project in this directory (the HTTP case
    /// starts the bench's own executable this way, to measure the server's memory apart).
    #[arg(long, hide = true)]
    pub serve_project: Option<PathBuf>,

    /// Internal: run only `skew` of service `logged` over the project in this directory and
    /// print its figures as JSON (the skew case runs it apart, so its memory is its own).
    #[arg(long, hide = true)]
    pub skew_project: Option<PathBuf>,
}

impl Args {
    pub fn duration(&self) -> Duration {
        let secs = self
            .duration_secs
            .unwrap_or(if self.quick { 2.0 } else { 10.0 });
        Duration::from_secs_f64(secs.max(0.1))
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_millis(if self.quick { 500 } else { 2_000 })
    }

    pub fn skew_rows(&self) -> usize {
        self.skew_rows
            .unwrap_or(if self.quick { 100_000 } else { 1_000_000 })
    }

    pub fn materialize_rows(&self) -> usize {
        self.materialize_rows
            .unwrap_or(if self.quick { 100_000 } else { 1_000_000 })
    }

    /// The selected cases in run order; an unknown name is an error naming the known ones.
    pub fn selected_cases(&self) -> anyhow::Result<Vec<&'static str>> {
        if let Some(unknown) = self
            .cases
            .iter()
            .find(|c| !ALL_CASES.contains(&c.as_str()) && *c != "soak")
        {
            anyhow::bail!(
                "unknown case `{unknown}` (known: {}, soak)",
                ALL_CASES.join(", ")
            );
        }
        anyhow::ensure!(
            self.soak_seconds.is_some() || !self.cases.iter().any(|c| c == "soak"),
            "`--cases soak` needs `--soak-seconds N`"
        );
        Ok(ALL_CASES
            .into_iter()
            .filter(|c| self.cases.is_empty() || self.cases.iter().any(|s| s == c))
            .collect())
    }

    pub fn output_path(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md")
        })
    }

    /// The command as a user would type it, for the report.
    pub fn command_line() -> String {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.is_empty() {
            "cargo run --release -p quiver-bench".to_string()
        } else {
            format!("cargo run --release -p quiver-bench -- {}", args.join(" "))
        }
    }
}

/// Refuses a Redis URL whose host is not on the loopback interface: load tests stay on this
/// machine.
pub fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("`--redis-url` must look like redis://127.0.0.1:6379"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "`--redis-url` host `{host}` is not a loopback address; the bench only loads 127.0.0.1"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_only() {
        assert!(check_loopback("redis://127.0.0.1:6379").is_ok());
        assert!(check_loopback("redis://user:pw@localhost:1/0").is_ok());
        assert!(check_loopback("redis://[::1]:6379").is_ok());
        assert!(check_loopback("redis://10.0.0.1:6379").is_err());
        assert!(check_loopback("127.0.0.1:6379").is_err());
    }

    #[test]
    fn cases_keep_run_order() {
        let args = Args::parse_from(["quiver-bench", "--cases", "materialize,codec"]);
        assert_eq!(args.selected_cases().unwrap(), vec!["codec", "materialize"]);
        let args = Args::parse_from(["quiver-bench", "--cases", "materialize,fallback"]);
        assert_eq!(
            args.selected_cases().unwrap(),
            vec!["fallback", "materialize"]
        );
        let args = Args::parse_from(["quiver-bench", "--cases", "nope"]);
        assert!(args.selected_cases().is_err());
        let args = Args::parse_from(["quiver-bench", "--cases", "soak"]);
        assert!(args.selected_cases().is_err());
        let args = Args::parse_from(["quiver-bench", "--cases", "soak", "--soak-seconds", "5"]);
        assert_eq!(args.selected_cases().unwrap(), Vec::<&str>::new());
    }
}
