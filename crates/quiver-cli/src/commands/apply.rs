//! `quiver plan` and `quiver apply`: what would change, and doing it.

use std::path::Path;

use quiver::online_admin::OnlineVersion;

#[derive(clap::Args)]
pub struct Args {
    /// Apply only if the registry is still at this serial (the one `quiver plan` showed);
    /// otherwise fail with "registry changed since you planned" and write nothing.
    #[arg(long)]
    pub if_serial: Option<u64>,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Exit with status 2 when the plan has changes (0: none), for CI checks.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Prints the online records of versions that are (or would be) no longer served.
fn print_left_behind(header: &str, left: &Result<Vec<OnlineVersion>, String>, command_hint: &str) {
    match left {
        Ok(left) if !left.is_empty() => {
            say!("{header}");
            for v in left {
                say!(
                    "  {} v{}: {} records, ~{}",
                    v.view,
                    v.version,
                    v.keys,
                    super::human_bytes(v.bytes)
                );
            }
            say!("{command_hint}");
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not count the online records left behind: {e}"),
    }
}

/// `quiver plan`: what `apply` would record, checked the same way, nothing written.
pub async fn plan(project: &Path, args: PlanArgs) -> anyhow::Result<bool> {
    let store = quiver::FeatureStore::open(project).await?;
    let plan = store.plan().await?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    if plan.changes.is_empty() {
        say!("No changes; registry at serial {}.", plan.serial);
        return Ok(false);
    }
    say!(
        "Plan (registry serial {} -> {}):",
        plan.serial,
        plan.serial + 1
    );
    for c in &plan.changes {
        say!("  {c}");
    }
    print_left_behind(
        "Online records that would no longer be served:",
        &plan.unreferenced_online,
        "After applying, `quiver prune-online` removes them (or keep a few: `--keep-versions N`).",
    );
    say!(
        "Run `quiver apply` to record these changes (`quiver apply --if-serial {}` refuses if someone applies first).",
        plan.serial
    );
    Ok(args.detailed_exitcode)
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let mut store = quiver::FeatureStore::open(project).await?;
    let report = match args.if_serial {
        Some(serial) => store.apply_if_serial(serial).await?,
        None => store.apply().await?,
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.changes.is_empty() {
        say!("No changes; registry at serial {}.", report.serial);
    } else {
        say!("Applied (registry serial {}):", report.serial);
        for c in &report.changes {
            say!("  {c}");
        }
    }
    for (view, table) in &report.offline_tables {
        say!("Offline store: `{view}` -> {table}");
    }
    match &report.pruned_online {
        Ok(pruned) => {
            for v in pruned {
                say!(
                    "Pruned {} v{} from the online store (beyond max_versions): {} records, ~{}",
                    v.view,
                    v.version,
                    v.keys,
                    super::human_bytes(v.bytes)
                );
            }
        }
        Err(e) => eprintln!(
            "warning: the apply is recorded, but pruning versions beyond max_versions failed: {e}"
        ),
    }
    print_left_behind(
        "Online records of versions no longer served:",
        &report.unserved_online,
        "Remove them with `quiver prune-online` (or keep a few: `--keep-versions N`).",
    );
    Ok(())
}
