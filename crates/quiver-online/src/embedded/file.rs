//! Opening the embedded database file.
//!
//! The file holds two tables: `records` (storage key → [`super::entry`] value) and `meta`
//! (`schema_version`). A file this build cannot use — corrupt, written by an older redb file
//! format, written with another schema version, or not a Quiver file at all — is renamed to
//! `<path>.incompatible-<ms since epoch>` and a fresh file is created in its place, with a warning:
//! the online store is a cache that `quiver materialize` refills, so refusing to start would help
//! no one, and deleting would destroy evidence of what went wrong.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableDatabase, StorageError, TableDefinition, TableError};

use crate::error::{OnlineError, Result};

/// Storage key → expiry + record bytes.
pub(super) const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
/// File-level metadata.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";
/// Bump when the key or value layout changes; older files are then moved aside.
pub(super) const SCHEMA_VERSION: u64 = 1;

/// Why a file could not be opened.
enum OpenError {
    /// The file is not one this build can use; moving it aside and starting fresh is safe.
    Incompatible(String),
    /// Anything else (permissions, a full disk, the file locked by another process): report it.
    Fatal(OnlineError),
}

pub(super) fn backend_error(path: &Path, e: impl std::fmt::Display) -> OnlineError {
    OnlineError::Backend {
        store: "embedded",
        message: format!("database `{}`: {e}", path.display()),
    }
}

/// Opens (creating if needed) the database at `path`, replacing an incompatible file.
/// Blocking.
pub(super) fn open_or_replace(path: &Path) -> Result<Database> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            backend_error(
                path,
                format!("cannot create directory `{}`: {e}", parent.display()),
            )
        })?;
    }
    match try_open(path) {
        Ok(db) => Ok(db),
        Err(OpenError::Fatal(e)) => Err(e),
        Err(OpenError::Incompatible(reason)) => {
            let aside = aside_path(path);
            std::fs::rename(path, &aside).map_err(|e| {
                backend_error(
                    path,
                    format!("is incompatible ({reason}) and cannot be moved aside: {e}"),
                )
            })?;
            tracing::warn!(
                path = %path.display(),
                moved_to = %aside.display(),
                reason = %reason,
                "embedded online store file is incompatible; moved it aside and created a fresh \
                 one (run `quiver materialize` to refill it)"
            );
            match try_open(path) {
                Ok(db) => Ok(db),
                Err(OpenError::Fatal(e)) => Err(e),
                Err(OpenError::Incompatible(reason)) => Err(backend_error(
                    path,
                    format!(
                        "a freshly created file is unusable: {reason} (this is a bug in Quiver)"
                    ),
                )),
            }
        }
    }
}

fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".incompatible-{}", super::entry::now_ms()));
    PathBuf::from(name)
}

fn try_open(path: &Path) -> std::result::Result<Database, OpenError> {
    // redb may panic on a file corrupted outside redb (and debug builds panic on some corrupt
    // pages by design); for a cache file that is one more reason to start over, not to crash.
    let opened = catch_unwind(AssertUnwindSafe(|| Database::create(path)));
    let db = match opened {
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            return Err(OpenError::Incompatible(format!(
                "redb panicked opening it: {what}"
            )));
        }
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::UpgradeRequired(v))) => {
            return Err(OpenError::Incompatible(format!("old redb file format {v}")));
        }
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(m)))) => {
            return Err(OpenError::Incompatible(format!("corrupt: {m}")));
        }
        // redb's answer for "not a redb file" (magic number mismatch).
        Ok(Err(DatabaseError::Storage(StorageError::Io(e))))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            return Err(OpenError::Incompatible(format!("not a redb database: {e}")));
        }
        Ok(Err(DatabaseError::RepairAborted)) => {
            return Err(OpenError::Incompatible("needs a repair".into()));
        }
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(OpenError::Fatal(backend_error(
                path,
                "is already open by another process (an embedded store has one user at a \
                 time: if `quiver serve` is running, materialize through it with \
                 `POST /materialize`, or stop it first)",
            )));
        }
        Ok(Err(e)) => return Err(OpenError::Fatal(backend_error(path, e))),
    };
    check_schema(&db).map_err(|e| match e {
        SchemaError::Incompatible(reason) => OpenError::Incompatible(reason),
        SchemaError::Db(e) => OpenError::Fatal(backend_error(path, e)),
    })?;
    Ok(db)
}

enum SchemaError {
    Incompatible(String),
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for SchemaError {
    fn from(e: E) -> Self {
        SchemaError::Db(e.into())
    }
}

/// Checks (or, in a new file, writes) the schema version and creates the tables.
fn check_schema(db: &Database) -> std::result::Result<(), SchemaError> {
    let stored = {
        let txn = db.begin_read()?;
        let tables: Vec<String> = txn
            .list_tables()?
            .map(|t| redb::TableHandle::name(&t).to_string())
            .collect();
        match txn.open_table(META) {
            Ok(meta) => meta.get(SCHEMA_KEY)?.map(|v| v.value()),
            Err(TableError::TableDoesNotExist(_)) if tables.is_empty() => None,
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(SchemaError::Incompatible(format!(
                    "not a Quiver online store (tables {tables:?}, no schema version)"
                )));
            }
            Err(TableError::TableTypeMismatch { .. }) => {
                return Err(SchemaError::Incompatible(
                    "its `meta` table has other types".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    };
    match stored {
        Some(SCHEMA_VERSION) => {}
        Some(other) => {
            return Err(SchemaError::Incompatible(format!(
                "schema version {other}, this build uses {SCHEMA_VERSION}"
            )));
        }
        None => {
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            txn.commit()?;
        }
    }
    // Create the records table up front so read transactions can always open it.
    let txn = db.begin_write()?;
    match txn.open_table(RECORDS) {
        Ok(_) => {}
        Err(TableError::TableTypeMismatch { .. }) => {
            return Err(SchemaError::Incompatible(
                "its `records` table has other types".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    txn.commit()?;
    Ok(())
}
