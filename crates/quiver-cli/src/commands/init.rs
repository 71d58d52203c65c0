//! `quiver init DIR`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to create the project in.
    dir: PathBuf,
    /// Project name (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Seed for the generated sample data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = quiver::init_project(&args.dir, args.name.as_deref(), args.seed)?;
    say!("Created Quiver project in {}", report.dir.display());
    for f in &report.files {
        say!("  {}", f.strip_prefix(&report.dir).unwrap_or(f).display());
    }
    say!(
        "Sample data: {} users ({} profile rows), {} transactions",
        report.users,
        report.user_rows,
        report.transactions
    );
    say!(
        "Next: cd {} && quiver apply && quiver materialize && quiver get user_profile:age --entity user_id=42",
        report.dir.display()
    );
    Ok(())
}
