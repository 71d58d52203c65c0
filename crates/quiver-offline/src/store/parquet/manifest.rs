//! `_manifest`: the list of a table's live files, replaced atomically on every change.
//!
//! Format (text, so an operator can read it):
//! ```text
//! quiver parquet manifest v1
//! day=2026-11-03/part-18f2...-1a2b-0.parquet<TAB>1234
//! ```
//! one line per file: its path relative to the table directory, a tab, its row count (so `prune`
//! can count whole dropped days without opening them).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::files::{parse_day_dir, store_error, unique_name};
use crate::error::Result;

pub(super) const MANIFEST: &str = "_manifest";
/// Prefix of manifests being written; never read, swept by later writes.
pub(super) const MANIFEST_TMP_PREFIX: &str = "_manifest.tmp-";
const HEADER: &str = "quiver parquet manifest v1";

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
        for line in lines.filter(|l| !l.is_empty()) {
            let (path, rows) = line.split_once('\t').ok_or_else(|| bad(line))?;
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
        Ok(Manifest { entries })
    }

    fn render(&self) -> String {
        let mut out = String::from(HEADER);
        out.push('\n');
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
        };
        assert_eq!(Manifest::parse(&m.render(), Path::new("m")).unwrap(), m);
        assert_eq!(
            Manifest::parse(&Manifest::default().render(), Path::new("m")).unwrap(),
            Manifest::default()
        );
    }

    #[test]
    fn rejects_corruption_and_traversal() {
        for text in [
            "",
            "other header\n",
            "quiver parquet manifest v1\nday=1970-01-02/part-1.parquet\n",
            "quiver parquet manifest v1\nday=1970-01-02/../x.parquet\t1\n",
            "quiver parquet manifest v1\nnot-a-day/x.parquet\t1\n",
        ] {
            assert!(Manifest::parse(text, Path::new("m")).is_err(), "{text:?}");
        }
    }
}
