//! `quiver-bench`: Quiver's end-to-end benchmark suite, one command.
//!
//! ```text
//! cargo run --release -p quiver-bench -- [--redis-url URL] [--quick] [--duration-secs N] [--cases a,b]
//! ```
//!
//! It generates its own data, starts a `redis-server` on an ephemeral loopback port (unless
//! `--redis-url` names one on 127.0.0.1), runs every case, prints a markdown report and writes it
//! into `docs/benchmarks.md` between `<!-- bench:begin -->` and `<!-- bench:end -->`, so the
//! hand-written notes around it survive.
//!
//! Layout:
//! - [`cli`]: the command line.
//! - [`setup`]: the Redis target, the generated projects and their Parquet data.
//! - [`load`]: the closed-loop load generator (N tasks, warm-up, fixed duration, HdrHistogram).
//! - [`cases`]: one module per case: `http`, `library`, `raw` (the Redis limit), `materialize`,
//!   `codec`, `memory`, `fallback` (Redis killed, the offline store answering).
//! - [`report`]: the results, the targets of issue 3, and their markdown.
//! - [`machine`]: what the run ran on (uname, CPU, load) and process RSS from `/proc`.
//! - [`server`]: the feature server as a separate process (this executable with
//!   `--serve-project DIR`), so its RSS is its own.

mod cases;
mod cli;
mod load;
mod machine;
mod report;
mod server;
mod setup;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(dir) = &args.serve_project {
        return runtime.block_on(server::run(dir));
    }
    if let Some(dir) = &args.skew_project {
        return runtime.block_on(cases::skew::child(dir));
    }
    runtime.block_on(cases::run_all(args))
}
