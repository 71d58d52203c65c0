//! Loads `features/*.yaml` (sorted by name, so errors and diffs are stable) into validated
//! [`Definitions`]. Parse errors name the file with serde's line and column.

use std::path::Path;

use quiver_core::definitions::serialize;
use quiver_core::{CoreError, Definitions};

use crate::error::{Error, Result};

/// Reads and validates every `*.yaml`/`*.yml` file in `dir`.
pub fn load_definitions(dir: &Path) -> Result<Definitions> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Config(format!(
                "definitions directory `{}` does not exist",
                dir.display()
            ))
        } else {
            Error::io(dir, e)
        }
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "no `*.yaml` definition files in `{}`",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let name = path
            .strip_prefix(dir.parent().unwrap_or(dir))
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        match serialize::parse(&text) {
            Ok(f) => files.push((name, f)),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(CoreError::Definitions(errors).into());
    }
    Ok(Definitions::build_and_validate(&files)?)
}
