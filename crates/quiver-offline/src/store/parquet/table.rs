//! Blocking operations on one table directory. Callers run them on tokio's blocking pool and
//! hold the table's lock (shared for reads, exclusive for changes).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::files::{
    ReadFailure, day_bounds, day_dir, filter_by_time, read_file, split_by_day, store_error,
    unique_name, write_file,
};
use super::manifest::{self, Entry, MANIFEST_TMP_PREFIX, Manifest};
use crate::error::Result;

/// How often a read retries after a listed file vanished under it (a writer in another process).
const READ_ATTEMPTS: usize = 3;

/// Creates the directory and an empty manifest unless they exist.
pub(super) fn ensure(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| store_error(format!("cannot create `{}`: {e}", dir.display())))?;
    if manifest::load(dir)?.is_none() {
        manifest::store(dir, &Manifest::default())?;
    }
    Ok(())
}

/// The manifest of a table that must exist.
fn load_existing(dir: &Path) -> Result<Manifest> {
    match manifest::load(dir)? {
        Some(m) => Ok(m),
        None if dir.is_dir() => Ok(Manifest::default()),
        None => Err(store_error(format!(
            "table directory `{}` does not exist; create the table first (ensure_table)",
            dir.display()
        ))),
    }
}

/// Rows with event time in `[start, end)`.
pub(super) fn read(
    dir: &Path,
    schema: &SchemaRef,
    start: i128,
    end: i128,
) -> Result<Vec<RecordBatch>> {
    read_with_manifest(dir, schema, start, end).map(|(_, batches)| batches)
}

/// The table's manifest, for telling whether something read from it earlier is still current.
pub(super) fn current_manifest(dir: &Path) -> Result<Manifest> {
    load_existing(dir)
}

/// Rows with event time in `[start, end)`, and the manifest that listed the files they came from.
pub(super) fn read_with_manifest(
    dir: &Path,
    schema: &SchemaRef,
    start: i128,
    end: i128,
) -> Result<(Manifest, Vec<RecordBatch>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let manifest = load_existing(dir)?;
        match read_entries(dir, schema, &manifest, start, end) {
            Ok(batches) => return Ok((manifest, batches)),
            Err(ReadFailure::Failed(e)) => return Err(e),
            Err(ReadFailure::Vanished) if attempt < READ_ATTEMPTS => continue,
            Err(ReadFailure::Vanished) => {
                return Err(store_error(format!(
                    "files of `{}` kept changing during {READ_ATTEMPTS} read attempts",
                    dir.display()
                )));
            }
        }
    }
}

fn read_entries(
    dir: &Path,
    schema: &SchemaRef,
    manifest: &Manifest,
    start: i128,
    end: i128,
) -> std::result::Result<Vec<RecordBatch>, ReadFailure> {
    let mut out = Vec::new();
    for entry in &manifest.entries {
        let (day_start, day_end) = day_bounds(entry.day);
        if day_end <= start || day_start >= end {
            continue;
        }
        let whole_day = day_start >= start && day_end <= end;
        for batch in read_file(&dir.join(&entry.path), schema)? {
            let batch = if whole_day {
                batch
            } else {
                filter_by_time(&batch, |t| t >= start && t < end).map_err(ReadFailure::Failed)?
            };
            if batch.num_rows() > 0 {
                out.push(batch);
            }
        }
    }
    Ok(out)
}

/// Replaces rows with event time in `[start, end)` by `new_rows` (all inside that range) and
/// returns how many old rows were removed.
///
/// Every day that has rows in the range or receives new rows gets one new file: its rows
/// outside the range plus its new rows. The manifest switch is the commit point (see the
/// module docs); on any failure before it, the new files are removed and the table is as it was.
pub(super) fn replace(
    dir: &Path,
    schema: &SchemaRef,
    start: i128,
    end: i128,
    new_rows: &[RecordBatch],
) -> Result<u64> {
    let old = load_existing(dir)?;
    let mut new_by_day = split_by_day(new_rows)?;
    let mut touched: BTreeSet<i64> = new_by_day.keys().copied().collect();
    for entry in &old.entries {
        let (day_start, day_end) = day_bounds(entry.day);
        if day_start < end && day_end > start {
            touched.insert(entry.day);
        }
    }
    if touched.is_empty() {
        return Ok(0);
    }
    let mut by_day: BTreeMap<i64, Vec<&Entry>> = BTreeMap::new();
    for entry in &old.entries {
        by_day.entry(entry.day).or_default().push(entry);
    }

    let mut created: Vec<PathBuf> = Vec::new();
    let mut removed_rows = 0u64;
    let planned = (|| {
        let mut entries = Vec::new();
        for day in &touched {
            let (day_start, day_end) = day_bounds(*day);
            let old_entries = by_day.get(day).map(Vec::as_slice).unwrap_or_default();
            let old_rows: u64 = old_entries.iter().map(|e| e.rows).sum();
            let mut parts = Vec::new();
            // A day wholly inside the range loses all its old rows: no need to read them.
            if !(day_start >= start && day_end <= end) {
                for entry in old_entries {
                    let batches = read_file(&dir.join(&entry.path), schema).map_err(|f| match f {
                        ReadFailure::Failed(e) => e,
                        ReadFailure::Vanished => store_error(format!(
                            "`{}` is listed in the manifest but missing; another process may be \
                             writing this table",
                            dir.join(&entry.path).display()
                        )),
                    })?;
                    for batch in batches {
                        let kept = filter_by_time(&batch, |t| t < start || t >= end)?;
                        if kept.num_rows() > 0 {
                            parts.push(kept);
                        }
                    }
                }
            }
            let kept_rows: u64 = parts.iter().map(|b| b.num_rows() as u64).sum();
            removed_rows += old_rows.saturating_sub(kept_rows);
            parts.extend(new_by_day.remove(day).unwrap_or_default());
            let rows: u64 = parts.iter().map(|b| b.num_rows() as u64).sum();
            if rows == 0 {
                continue;
            }
            let day_path = dir.join(day_dir(*day));
            std::fs::create_dir_all(&day_path)
                .map_err(|e| store_error(format!("cannot create `{}`: {e}", day_path.display())))?;
            // Written under a temporary name and renamed once complete, so nothing (not even
            // an operator's `ls`) mistakes a half-written file for a part.
            let name = unique_name("part-", ".parquet");
            let tmp = day_path.join(format!(".{name}.tmp"));
            let final_path = day_path.join(&name);
            created.push(tmp.clone());
            write_file(&tmp, schema, &parts)?;
            std::fs::rename(&tmp, &final_path)
                .map_err(|e| store_error(format!("cannot rename `{}`: {e}", tmp.display())))?;
            created.push(final_path);
            manifest::sync_dir(&day_path)?;
            entries.push(Entry {
                day: *day,
                path: format!("{}/{name}", day_dir(*day)),
                rows,
            });
        }
        Ok(entries)
    })();
    let commit = planned.and_then(|new_entries| {
        let mut next = Manifest {
            entries: old
                .entries
                .iter()
                .filter(|e| !touched.contains(&e.day))
                .cloned()
                .collect(),
        };
        next.entries.extend(new_entries);
        next.entries
            .sort_by(|a, b| (a.day, &a.path).cmp(&(b.day, &b.path)));
        manifest::store(dir, &next).map(|()| next)
    });
    let next = match commit {
        Ok(next) => next,
        Err(e) => {
            for path in &created {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    // Committed. What follows only reclaims space; a failure leaves unreferenced files that
    // the next write to the same day sweeps, so it is not reported.
    sweep(dir, &next, &touched);
    Ok(removed_rows)
}

/// Removes files of `days` that the manifest does not list (replaced parts, leftovers of
/// crashed writes), empty day directories, and stale temporary manifests.
fn sweep(dir: &Path, manifest: &Manifest, days: &BTreeSet<i64>) {
    let live: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    for day in days {
        let name = day_dir(*day);
        let day_path = dir.join(&name);
        let Ok(listing) = std::fs::read_dir(&day_path) else {
            continue;
        };
        for file in listing.flatten() {
            let file_name = file.file_name();
            let rel = format!("{name}/{}", file_name.to_string_lossy());
            if !live.contains(rel.as_str()) {
                let _ = std::fs::remove_file(file.path());
            }
        }
        // Fails (harmlessly) unless the directory is now empty.
        let _ = std::fs::remove_dir(&day_path);
    }
    if let Ok(listing) = std::fs::read_dir(dir) {
        for file in listing.flatten() {
            if file
                .file_name()
                .to_string_lossy()
                .starts_with(MANIFEST_TMP_PREFIX)
            {
                let _ = std::fs::remove_file(file.path());
            }
        }
    }
}

/// Removes the table directory; a missing one is not an error.
pub(super) fn drop_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(store_error(format!(
            "cannot remove `{}`: {e}",
            dir.display()
        ))),
    }
}
