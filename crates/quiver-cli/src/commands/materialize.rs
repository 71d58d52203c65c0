//! `quiver materialize`, with a progress bar per view.

use std::path::Path;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use quiver::{MaterializeOptions, Progress, ViewReport};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    window: super::ViewWindow,
    /// Fail on the first row that violates a constraint or does not fit its field's type, or
    /// when source rows have a null event time.
    #[arg(long)]
    strict: bool,
}

struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn view_started(&self, view: &str, entities: u64) {
        let bar = ProgressBar::new(entities);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {pos}/{len} entities {per_sec} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(view.to_string());
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    fn advanced(&self, rows: u64) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(rows);
        }
    }

    fn view_finished(&self, _report: &ViewReport) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish();
        }
    }
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    let (start, end) = args.window.bounds()?;
    let options = MaterializeOptions {
        views: args.window.views.clone(),
        start,
        end,
        strict: args.strict.then_some(true),
    };
    let bars = Bars {
        bar: Mutex::new(None),
    };
    let report = store.materialize(&options, &bars).await?;
    for v in &report.views {
        say!(
            "{} v{}: {} rows scanned, {} in window, {} entities, {} written, {} kept newer online, {} rejected ({:.2}s)",
            v.view,
            v.version,
            v.rows_scanned,
            v.rows_in_window,
            v.entities,
            v.written,
            v.skipped_older,
            v.rejected,
            v.seconds
        );
        super::print_skipped(&v.view, v.rows_null_timestamp, v.rows_null_key);
        for r in &v.rejections {
            say!("  rejected: {r}");
        }
        if v.rejected as usize > v.rejections.len() {
            say!(
                "  ... and {} more",
                v.rejected as usize - v.rejections.len()
            );
        }
    }
    Ok(())
}
