//! `_manifest`: the list of a table's live files, replaced atomically on every change.
//!
//! Format (text, so an operator can read it):
//! ```text
//! quiver parquet manifest v1
//! day=2026-11-03/part-18f2...-1a2b-0.parquet<TAB>1234
//! ```
//! one line per file: its path relative to the table directory, a tab, its row count (so `prune`
//! can count whole dropped days without opening them).
//!
//! Record tables (`crate::records`) add one line naming the last export-queue entry whose rows
//! the listed files hold, so the rows and the position are committed by the same rename:
//! ```text
//! position<TAB>1733356800000-7
//! ```
//! The line is optional: manifests without it (every feature table's, and those written before
//! it existed) parse as before, with no position.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use quiver_core::QueuePosition;

use super::files::{parse_day_dir, store_error, unique_name};
use crate::error::Result;

pub(super) const MANIFEST: &str = "_manifest";
/// Prefix of manifests being written; never read, swept by later writes.
pub(super) const MANIFEST_TMP_PREFIX: &str = "_manifest.tmp-";
const HEADER: &str = "quiver parquet manifest v1";
/// The key of the optional position line (not a path: every path holds a `/`).
const POSITION_KEY: &str = "position";

/// One live file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// Days since 1970-01-01 (UTC) of every row in the file.
    pub day: i64,
    /// Relative to the table directory: `day=YYYY-MM-DD/part-….parquet`.
    pub path: String,
    pub rows: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    pub entries: Vec<Entry>,
    /// Record tables: the last export-queue entry committed into the listed files.
    pub position: Option<QueuePosition>,
}

impl Manifest {
    fn parse(text: &str, origin: &Path) -> Result<Manifest> {
        let bad = |line: &str| {
            store_error(format!(
                "`{}` is corrupt at line `{line}`; restore it or rebuild the table",
                origin.display()
            ))
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(text.lines().next().unwrap_or("")));
        }
        let mut entries = Vec::new();
        let mut position = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (path, rows) = line.split_once('\t').ok_or_else(|| bad(line))?;
            if path == POSITION_KEY {
                if position.is_some() {
                    return Err(bad(line));
                }
                position = Some(rows.parse::<QueuePosition>().map_err(|_| bad(line))?);
                continue;
            }
            let rows = rows.parse().map_err(|_| bad(line))?;
            let (dir, file) = path.split_once('/').ok_or_else(|| bad(line))?;
            let day = parse_day_dir(dir).ok_or_else(|| bad(line))?;
            // A manifest naming files outside the table directory would be a path traversal.
            if file.contains('/') || file.contains("..") || file.is_empty() {
                return Err(bad(line));
            }
            entries.push(Entry {
                day,
                path: path.to_string(),
                rows,
            });
        }
        Ok(Manifest { entries, position })
    }

    fn render(&self) -> String {
        let mut out = String::from(HEADER);
        out.push('\n');
        if let Some(position) = &self.position {
            out.push_str(&format!("{POSITION_KEY}\t{position}\n"));
        }
        for e in &self.entries {
            out.push_str(&format!("{}\t{}\n", e.path, e.rows));
        }
        out
    }
}

/// The table's manifest, or `None` if it has none yet.
pub(super) fn load(table_dir: &Path) -> Result<Option<Manifest>> {
    let path = table_dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => Manifest::parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(store_error(format!(
            "cannot read `{}`: {e}",
            path.display()
        ))),
    }
}

/// Replaces the manifest atomically: write a temporary file, flush it, rename it over the old
/// one, flush the directory so the rename itself survives a crash.
pub(super) fn store(table_dir: &Path, manifest: &Manifest) -> Result<()> {
    let tmp = table_dir.join(unique_name(MANIFEST_TMP_PREFIX, ""));
    let path = table_dir.join(MANIFEST);
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        store_error(format!("cannot {what} `{}`: {e}", p.display()))
    };
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| fail("create", &tmp, e))?;
        file.write_all(manifest.render().as_bytes())
            .map_err(|e| fail("write", &tmp, e))?;
        file.sync_all().map_err(|e| fail("sync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail("replace", &path, e))?;
        sync_dir(table_dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| store_error(format!("cannot sync directory `{}`: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Manifest {
            entries: vec![Entry {
                day: 1,
                path: "day=1970-01-02/part-1.parquet".into(),
                rows: 3,
            }],
            position: None,
        };
        assert_eq!(Manifest::parse(&m.render(), Path::new("m")).unwrap(), m);
        let with_position = Manifest {
            position: Some(QueuePosition::new(1_733_356_800_000, 7)),
            ..m.clone()
        };
        let text = with_position.render();
        assert!(text.contains("\nposition\t1733356800000-7\n"), "{text}");
        assert_eq!(
            Manifest::parse(&text, Path::new("m")).unwrap(),
            with_position
        );
        assert_eq!(
            Manifest::parse(&Manifest::default().render(), Path::new("m")).unwrap(),
            Manifest::default()
        );
    }

    /// A manifest written before positions existed (the exact v1 text) still parses, and a
    /// table without a position renders exactly as before.
    #[test]
    fn manifests_without_a_position_still_parse() {
        let old = "quiver parquet manifest v1\nday=1970-01-02/part-1.parquet\t3\n";
        let m = Manifest::parse(old, Path::new("m")).unwrap();
        assert_eq!(m.position, None);
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.render(), old);
    }

    #[test]
    fn rejects_corruption_and_traversal() {
        for text in [
            "",
            "other header\n",
            "quiver parquet manifest v1\nday=1970-01-02/part-1.parquet\n",
            "quiver parquet manifest v1\nday=1970-01-02/../x.parquet\t1\n",
            "quiver parquet manifest v1\nnot-a-day/x.parquet\t1\n",
            "quiver parquet manifest v1\nposition\tnot-a-position\n",
            "quiver parquet manifest v1\nposition\t1-1\nposition\t1-2\n",
        ] {
            assert!(Manifest::parse(text, Path::new("m")).is_err(), "{text:?}");
        }
    }
}
