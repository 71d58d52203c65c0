//! Freshness: per view, its last materialization, the newest event it put online, and whether
//! that event is within the view's `freshness.max_age`. One computation behind `quiver status`,
//! `/health` and the freshness gauges in `/metrics`.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::registry::MaterializationRun;
use crate::store::FeatureStore;

/// The freshness of one served view.
#[derive(Clone, Debug, Serialize)]
pub struct ViewFreshness {
    pub view: String,
    /// The served version.
    pub version: u32,
    /// The last materialization of the view (any version); `None`: never materialized.
    pub last_materialization: Option<MaterializationRun>,
    /// The newest event time put into the online store for the served version, ns UTC: by
    /// materializations, or by writes through this process (`/push`, `/write-to-online-store`
    /// on a server). `None`: nothing known (never materialized nor pushed here, or recorded
    /// before Quiver kept it).
    pub newest_event: Option<i64>,
    /// Seconds since the last materialization finished.
    pub materialized_seconds_ago: Option<f64>,
    /// Seconds since the newest event online.
    pub newest_event_seconds_ago: Option<f64>,
    /// The view's `freshness.max_age`.
    #[serde(serialize_with = "seconds")]
    pub max_age: Option<Duration>,
    /// Whether the view breaks its bound: its newest event online (or, for a run recorded
    /// before Quiver kept event times, the run itself) is older than `max_age`, or it was never
    /// materialized. Always false without a bound.
    pub stale: bool,
}

fn seconds<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl ViewFreshness {
    /// Why the view is stale, for `/health`'s reasons; `None` when it is not.
    pub fn stale_reason(&self) -> Option<String> {
        if !self.stale {
            return None;
        }
        let what = match (self.newest_event_seconds_ago, self.materialized_seconds_ago) {
            (Some(event), Some(run)) => format!(
                "its newest materialized event is {event:.0} s old (last materialized {run:.0} s ago)"
            ),
            (None, Some(run)) => match &self.last_materialization {
                Some(r) if r.version != self.version => format!(
                    "version {} was never materialized (version {} was, {run:.0} s ago)",
                    self.version, r.version
                ),
                _ => format!("last materialized {run:.0} s ago"),
            },
            (Some(event), None) => format!(
                "its newest event online is {event:.0} s old (written through this server; never materialized)"
            ),
            (None, None) => "never materialized".to_string(),
        };
        Some(format!(
            "view `{}` is stale: {what}, `freshness.max_age` is {:?}",
            self.view,
            self.max_age.unwrap_or_default()
        ))
    }
}

impl FeatureStore {
    /// The freshness of every served view at `now` (ns UTC), in name order.
    pub fn freshness(&self, now: i64) -> Result<Vec<ViewFreshness>> {
        let registry = self.registry()?;
        let age = |t: i64| (now - t) as f64 / 1e9;
        let mut out: Vec<ViewFreshness> = self
            .views()
            .map(|served| {
                let name = &served.definition.name;
                let run = registry.materializations.get(name).cloned();
                let this_version = run.as_ref().filter(|r| r.version == served.table.version);
                // Rows this process wrote online (pushes) count beside materializations.
                let pushed = Some(
                    self.stats()
                        .view(name)
                        .newest_written_ns
                        .load(std::sync::atomic::Ordering::Relaxed),
                )
                .filter(|&t| t != 0);
                let newest_event = this_version.and_then(|r| r.newest_event).max(pushed);
                let max_age = served.definition.freshness_max_age;
                // The age freshness is judged by: the newest event, else the run's own (a run
                // of another version put nothing online for this one).
                let judged = newest_event.or(this_version.map(|r| r.finished_at));
                let stale = match (max_age, judged) {
                    (Some(bound), Some(t)) => age(t) > bound.as_secs_f64(),
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                ViewFreshness {
                    view: name.clone(),
                    version: served.table.version,
                    materialized_seconds_ago: run.as_ref().map(|r| age(r.finished_at)),
                    newest_event_seconds_ago: newest_event.map(age),
                    last_materialization: run,
                    newest_event,
                    max_age,
                    stale,
                }
            })
            .collect();
        out.sort_by(|a, b| a.view.cmp(&b.view));
        Ok(out)
    }
}
