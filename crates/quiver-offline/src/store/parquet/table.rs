//! Blocking operations on one table directory. Callers run them on tokio's blocking pool and
//! hold the table's lock (shared for reads, exclusive for changes).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use quiver_core::QueuePosition;

use super::files::{
    Fit, ReadFailure, day_bounds, day_dir, file_schema, filter_by_time, read_file, read_file_fit,
    split_by_day, store_error, unique_name, write_file,
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
    read_with_manifest_fit(dir, schema, start, end, Fit::Exact)
}

fn read_with_manifest_fit(
    dir: &Path,
    schema: &SchemaRef,
    start: i128,
    end: i128,
    fit: Fit,
) -> Result<(Manifest, Vec<RecordBatch>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let manifest = load_existing(dir)?;
        match read_entries(dir, schema, &manifest, start, end, fit) {
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
    fit: Fit,
) -> std::result::Result<Vec<RecordBatch>, ReadFailure> {
    let mut out = Vec::new();
    for entry in &manifest.entries {
        let (day_start, day_end) = day_bounds(entry.day);
        if day_end <= start || day_start >= end {
            continue;
        }
        let whole_day = day_start >= start && day_end <= end;
        for batch in read_file_fit(&dir.join(&entry.path), schema, fit)? {
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
            entries.push(write_part(dir, schema, *day, &parts, rows, &mut created)?);
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
            position: old.position,
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

/// Writes one new part of `day` holding `parts` (`rows` rows in all) and returns its manifest
/// entry. The file is written under a temporary name, flushed, renamed, and its directory
/// flushed, so once a manifest names it, it is complete and survives a crash. Every path
/// created is pushed to `created` (for removal if the write is abandoned).
fn write_part(
    dir: &Path,
    schema: &SchemaRef,
    day: i64,
    parts: &[RecordBatch],
    rows: u64,
    created: &mut Vec<PathBuf>,
) -> Result<Entry> {
    let day_path = dir.join(day_dir(day));
    std::fs::create_dir_all(&day_path)
        .map_err(|e| store_error(format!("cannot create `{}`: {e}", day_path.display())))?;
    // Written under a temporary name and renamed once complete, so nothing (not even an
    // operator's `ls`) mistakes a half-written file for a part.
    let name = unique_name("part-", ".parquet");
    let tmp = day_path.join(format!(".{name}.tmp"));
    let final_path = day_path.join(&name);
    created.push(tmp.clone());
    write_file(&tmp, schema, parts)?;
    std::fs::rename(&tmp, &final_path)
        .map_err(|e| store_error(format!("cannot rename `{}`: {e}", tmp.display())))?;
    created.push(final_path);
    manifest::sync_dir(&day_path)?;
    Ok(Entry {
        day,
        path: format!("{}/{name}", day_dir(day)),
        rows,
    })
}

/// Appends `batches` to the table at `dir` as new parts (one per UTC day of event time) and
/// records `through` as its position, both by one manifest replacement: after a failure or a
/// crash the table has either all the new rows and the new position, or neither.
///
/// Creates the directory on first use. Returns `None`, writing nothing, when the manifest's
/// position is already at or after `through` (the entries were committed before).
pub(crate) fn append(
    dir: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    through: QueuePosition,
) -> Result<Option<u64>> {
    create_durably(dir)?;
    let old = manifest::load(dir)?.unwrap_or_default();
    if old.position.is_some_and(|p| through <= p) {
        return Ok(None);
    }
    check_types(dir, schema, &old)?;
    let by_day = split_by_day(batches)?;
    let touched: BTreeSet<i64> = by_day.keys().copied().collect();
    let mut created: Vec<PathBuf> = Vec::new();
    let mut total = 0u64;
    let written = (|| {
        let mut entries = Vec::with_capacity(by_day.len());
        for (day, parts) in &by_day {
            let rows: u64 = parts.iter().map(|b| b.num_rows() as u64).sum();
            if rows == 0 {
                continue;
            }
            entries.push(write_part(dir, schema, *day, parts, rows, &mut created)?);
            total += rows;
        }
        Ok(entries)
    })();
    let commit = written.and_then(|new_entries| {
        let mut next = old.clone();
        next.entries.extend(new_entries);
        next.entries
            .sort_by(|a, b| (a.day, &a.path).cmp(&(b.day, &b.path)));
        next.position = Some(through);
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
    // Committed; reclaim leftovers of earlier crashed writes to the same days (best effort).
    sweep(dir, &next, &touched);
    Ok(Some(total))
}

/// The position recorded in the table's manifest; `None` when the table or its position does
/// not exist yet.
pub(crate) fn position(dir: &Path) -> Result<Option<QueuePosition>> {
    Ok(manifest::load(dir)?.and_then(|m| m.position))
}

/// Every row of the files the manifest lists, columns matched by name (a field added since a
/// file was written reads as nulls); no rows when the table does not exist yet.
/// The rows with event time in `[start, end)` (ns), reading only the days the range touches.
pub(crate) fn read_range(
    dir: &Path,
    schema: &SchemaRef,
    start: i128,
    end: i128,
) -> Result<Vec<RecordBatch>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    read_with_manifest_fit(dir, schema, start, end, Fit::ByName).map(|(_, b)| b)
}

/// Refuses a schema whose columns have other types than the same columns of the newest file
/// (part names start with their write time), since files of one table must read back under one
/// schema; a new column is fine. Reads one footer.
fn check_types(dir: &Path, schema: &SchemaRef, manifest: &Manifest) -> Result<()> {
    let newest = manifest
        .entries
        .iter()
        .max_by_key(|e| e.path.rsplit('/').next().unwrap_or_default());
    let Some(entry) = newest else {
        return Ok(());
    };
    let path = dir.join(&entry.path);
    let stored = file_schema(&path)?;
    for field in schema.fields() {
        if let Ok(found) = stored.field_with_name(field.name())
            && found.data_type() != field.data_type()
        {
            return Err(store_error(format!(
                "column `{}` is {} in the stored files (`{}`) but {} in the table schema",
                field.name(),
                found.data_type(),
                path.display(),
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Creates `dir` (and missing parents) and flushes each new directory's entry in its parent, so
/// a table created just before a commit survives a crash along with it.
fn create_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(path);
        at = path.parent();
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| store_error(format!("cannot create `{}`: {e}", dir.display())))?;
    for path in missing {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            manifest::sync_dir(parent)?;
        }
    }
    Ok(())
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
