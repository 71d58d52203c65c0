//! `quiver-fuzz <target|all> --inputs N --seed S [--threads T]`: runs the seeded fuzz targets and
//! prints a summary per target; exits 1 when any input panicked. `--replay FILE` runs one saved
//! input without catching its panic.

use clap::Parser;
use quiver_fuzz::runner::{self, Options};
use quiver_fuzz::targets::{TARGETS, target};

#[derive(Parser)]
#[command(about = "Seeded, structure-aware fuzzing of Quiver's input decoders")]
struct Args {
    /// A target name, or `all`.
    target: String,
    /// Inputs per target.
    #[arg(long, default_value_t = 100_000)]
    inputs: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Longest input in bytes.
    #[arg(long, default_value_t = 8192)]
    max_len: usize,
    /// Run this one saved input (a crash file) instead.
    #[arg(long)]
    replay: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let targets = if args.target == "all" {
        TARGETS.to_vec()
    } else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        vec![target(&args.target).ok_or_else(|| {
            anyhow::anyhow!(
                "no target `{}`; targets: all, {}",
                args.target,
                names.join(", ")
            )
        })?]
    };
    if let Some(path) = args.replay {
        let data = std::fs::read(&path)?;
        for (name, run) in targets {
            println!("replaying {} on {name}", path.display());
            run(&data);
        }
        println!("no panic");
        return Ok(());
    }
    let options = Options {
        inputs: args.inputs,
        seed: args.seed,
        threads: args.threads,
        max_len: args.max_len,
        progress: true,
        ..Options::default()
    };
    let mut panics = 0;
    for t in targets {
        let summary = runner::run(t, &options);
        println!("{summary}");
        panics += summary.panics;
    }
    if panics > 0 {
        std::process::exit(1);
    }
    Ok(())
}
