//! `quiver rollback VIEW --to N`: the plan first, then the rollback (unless `--dry-run`).

use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// The feature view.
    pub view: String,
    /// The version to serve again (see `quiver versions VIEW`).
    #[arg(long)]
    pub to: u32,
    /// Only print the plan.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let mut store = quiver::FeatureStore::open(project).await?;
    let plan = store.plan_rollback(&args.view, args.to).await?;
    let done = if args.dry_run || plan.changes.is_empty() {
        plan
    } else {
        if !args.json {
            print_plan(&plan);
        }
        store.rollback(&args.view, args.to).await?
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    if done.changes.is_empty() {
        say!(
            "{} already serves v{} as kept; nothing to roll back (registry at serial {}).",
            done.view,
            done.to,
            done.serial
        );
        return Ok(());
    }
    if !done.applied {
        print_plan(&done);
        say!("Dry run: nothing written. Run without `--dry-run` to roll back.");
        return Ok(());
    }
    say!(
        "Rolled back: {} serves v{} (registry serial {}).",
        done.view,
        done.to,
        done.serial
    );
    if done.needs_materialize() {
        say!(
            "v{} has no online records (pruned, or never materialized): requests answer NOT_FOUND (or fall back) until `quiver materialize --views {}`.",
            done.to,
            done.view
        );
    }
    say!(
        "The definitions in your features directory are unchanged: `quiver plan` shows the difference, and `quiver apply` would roll forward again. Make them match v{} (`quiver versions {} --json` prints its definition) to keep this version.",
        done.to,
        done.view
    );
    Ok(())
}

fn print_plan(plan: &quiver::RollbackPlan) {
    say!(
        "Plan (registry serial {} -> {}):",
        plan.serial,
        plan.serial + 1
    );
    for c in &plan.changes {
        say!("  {c}");
    }
    match &plan.online_error {
        Some(e) => eprintln!(
            "warning: could not count v{}'s online records: {e}",
            plan.to
        ),
        None if plan.online_keys == 0 => say!(
            "  v{} has no online records (pruned, or never materialized); run `quiver materialize --views {}` after.",
            plan.to,
            plan.view
        ),
        None => say!("  v{} has {} online records.", plan.to, plan.online_keys),
    }
}
