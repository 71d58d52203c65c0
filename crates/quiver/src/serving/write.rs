//! Writing rows straight to the online store (Feast's `write-to-online-store`), typed.

use quiver_core::{EntityKey, Record};
use quiver_online::WriteSummary;

use crate::error::{Error, Result};
use crate::store::FeatureStore;

impl FeatureStore {
    /// Writes rows of a view to the online store: each an entity key (one value per join key)
    /// and a record with one value per field, in schema order. The whole batch is checked first
    /// — key and value types, constraints — and an invalid batch writes nothing. A store failure
    /// part way says how many rows were confirmed (`OnlineError::PartialWrite`); writes are
    /// newer-wins, so retrying the same rows is always safe.
    pub async fn write_to_online_store(
        &self,
        view_name: &str,
        rows: &[(EntityKey, Record)],
    ) -> Result<WriteSummary> {
        self.check_online_rows(view_name, rows)?;
        if rows.is_empty() {
            return Ok(WriteSummary::default());
        }
        let served = self.view(view_name)?;
        let started = std::time::Instant::now();
        let summary = self.online_store().write(&served.table, rows).await;
        self.record_write(view_name, started.elapsed(), summary.as_ref().ok());
        if summary.is_ok()
            && let Some(newest) = rows.iter().map(|(_, r)| r.event_ts).max()
        {
            self.stats()
                .view(view_name)
                .newest_written_ns
                .fetch_max(newest, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(summary?)
    }

    /// What [`write_to_online_store`](Self::write_to_online_store) checks before writing: key
    /// and value types, constraints. For callers that check several views' rows before writing
    /// any (`/push`).
    pub fn check_online_rows(&self, view_name: &str, rows: &[(EntityKey, Record)]) -> Result<()> {
        let served = self.view(view_name)?;
        let view = &served.definition;
        for (i, (key, record)) in rows.iter().enumerate() {
            let problem = |message: String| {
                Error::InvalidRequest(format!("feature view `{view_name}`: row {i}: {message}"))
            };
            if key.0.len() != view.join_keys.len() {
                return Err(problem(format!(
                    "the entity key has {} values but the view has {} join keys",
                    key.0.len(),
                    view.join_keys.len()
                )));
            }
            for (k, v) in view.join_keys.iter().zip(&key.0) {
                if !v.fits(k.key_type) {
                    return Err(problem(format!(
                        "join key `{}` is {}, got `{v}`",
                        k.name,
                        k.key_type.name()
                    )));
                }
            }
            if record.values.len() != view.fields.len() {
                return Err(problem(format!(
                    "{} values for {} fields",
                    record.values.len(),
                    view.fields.len()
                )));
            }
            for (field, value) in view.fields.iter().zip(&record.values) {
                if let Some(found) = value.value_type()
                    && found != field.value_type
                {
                    return Err(problem(format!(
                        "field `{}` is {}, got a {found} value",
                        field.name, field.value_type
                    )));
                }
            }
            view.check_row(key, record)
                .map_err(|r| Error::InvalidRequest(r.to_string()))?;
        }
        Ok(())
    }
}

impl FeatureStore {
    /// Counts an online write in the serving statistics (rows written, latency).
    pub(crate) fn record_write(
        &self,
        view: &str,
        took: std::time::Duration,
        summary: Option<&WriteSummary>,
    ) {
        let stats = self.stats();
        stats.store_operation(self.online_store().kind(), "write", took);
        let view = stats.view(view);
        match summary {
            Some(s) => {
                view.writes
                    .fetch_add(s.written as u64, std::sync::atomic::Ordering::Relaxed);
            }
            None => view.error(crate::error::ErrorKind::Unavailable),
        }
    }
}
