//! The `quiver` command line. Thin: parse arguments, set up logging, call the library.

/// `println!` that ends the program quietly when stdout is closed (`quiver get --json | head`)
/// instead of panicking: the reader has what it wanted.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }};
}

mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Quiver: a feature store. Definitions in YAML, training data offline, the same features online.
#[derive(Parser)]
#[command(name = "quiver", version, about)]
struct Cli {
    /// Project directory (holding quiver.yaml).
    #[arg(
        long,
        short = 'p',
        global = true,
        default_value = ".",
        env = "QUIVER_PROJECT"
    )]
    project: PathBuf,
    /// Log level filter (e.g. `info`, `quiver=debug`); also RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Log lines as `text` or `json` (one object per line, with the request id of each
    /// request's lines under `serve`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a runnable example project with sample data into DIR.
    Init(commands::init::Args),
    /// Show what `apply` would record (added, changed, removed, version bumps, online data
    /// left unserved) without writing anything.
    Plan(commands::apply::PlanArgs),
    /// Validate definitions and record them in the registry.
    Apply(commands::apply::Args),
    /// Every version of a feature view: schema, the apply that made it, served, online data.
    Versions(commands::versions::Args),
    /// Where a feature comes from: source, transformation, version, services, runs.
    Lineage(commands::lineage::Args),
    /// Serve a kept version of a feature view again (its plan first).
    Rollback(commands::rollback::Args),
    /// Load the latest row per entity from each view's source into the online store.
    Materialize(commands::materialize::Args),
    /// Materialize every view from its last watermark up to now.
    MaterializeIncremental(commands::incremental::Args),
    /// Compute views' features over a range into the offline store.
    Build(commands::build::Args),
    /// Build a point-in-time-correct training set from entity rows.
    Historical(commands::historical::Args),
    /// Delete offline history older than each view's `retention`.
    Prune(commands::incremental::PruneArgs),
    /// Print online feature values for entities.
    Get(commands::get::Args),
    /// Per view: the last materialization, the newest event online, and whether it is within
    /// its `freshness.max_age` (exit code 3 when a view is stale).
    Status(commands::status::Args),
    /// Compare what a feature service served (its exported logs) with what a training set
    /// computes for the same entities and times, value by value.
    Skew(commands::skew::Args),
    /// Run the HTTP feature server.
    Serve(commands::serve::Args),
    /// Load the online store from the offline layer (entities from a file, all, or the top N).
    Warm(commands::warm::Args),
    /// Records in namespaces: put, get, delete, and the export queue.
    Records(commands::records::Args),
    /// Drain the record queues into the offline store (exactly once); dead letters.
    Export(commands::records::ExportArgs),
    /// A running server's serving statistics per view and layer (since start, last minute).
    Stats(commands::ops::StatsArgs),
    /// Delete online records of a view (version), all or some entities.
    Invalidate(commands::ops::InvalidateArgs),
    /// Delete the online records of view versions no longer served.
    PruneOnline(commands::ops::PruneArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // `plan --detailed-exitcode` exits 2 when there are changes.
    let mut plan_has_changes = false;
    // `status` exits 3 when a view is staler than its bound.
    let mut stale_views = false;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init(args) => commands::init::run(args),
            Command::Plan(args) => commands::apply::plan(&cli.project, args)
                .await
                .map(|changes| plan_has_changes = changes),
            Command::Apply(args) => commands::apply::run(&cli.project, args).await,
            Command::Versions(args) => commands::versions::run(&cli.project, args).await,
            Command::Lineage(args) => commands::lineage::run(&cli.project, args).await,
            Command::Rollback(args) => commands::rollback::run(&cli.project, args).await,
            Command::Materialize(args) => commands::materialize::run(&cli.project, args).await,
            Command::MaterializeIncremental(args) => {
                commands::incremental::run(&cli.project, args).await
            }
            Command::Build(args) => commands::build::run(&cli.project, args).await,
            Command::Historical(args) => commands::historical::run(&cli.project, args).await,
            Command::Prune(args) => commands::incremental::prune(&cli.project, args).await,
            Command::Get(args) => commands::get::run(&cli.project, args).await,
            Command::Skew(args) => commands::skew::run(&cli.project, args).await,
            Command::Status(args) => commands::status::run(&cli.project, args)
                .await
                .map(|stale| stale_views = stale),
            Command::Serve(args) => commands::serve::run(&cli.project, args).await,
            Command::Warm(args) => commands::warm::run(&cli.project, args).await,
            Command::Records(args) => commands::records::run(&cli.project, args).await,
            Command::Export(args) => commands::records::export(&cli.project, args).await,
            Command::Stats(args) => commands::ops::stats(&cli.project, args).await,
            Command::Invalidate(args) => commands::ops::invalidate(&cli.project, args).await,
            Command::PruneOnline(args) => commands::ops::prune_online(&cli.project, args).await,
        }
    });
    match result {
        Ok(()) if plan_has_changes => std::process::ExitCode::from(2),
        Ok(()) if stale_views => std::process::ExitCode::from(3),
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
