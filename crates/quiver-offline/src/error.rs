//! The offline crate's error type.
//!
//! Every variant carries an `origin`, the rendered "source `users` (/data/users.parquet)" (or
//! "file `/data/users.parquet`" when no source is involved), so a message read on its own names
//! both the definition and the file to fix.

use std::path::PathBuf;

/// Errors from reading sources and writing sample data.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The file cannot be opened, or its metadata or header cannot be parsed.
    #[error("{origin}: cannot read file: {message}")]
    Unreadable { origin: String, message: String },

    /// Data in an otherwise readable file failed to decode or parse (a corrupt page, a CSV value
    /// that is not of its column's type).
    #[error("{origin}: cannot read data: {message}")]
    ReadData { origin: String, message: String },

    /// A column the definitions need is not in the file.
    #[error("{origin}: no column `{column}`; available columns: {available}")]
    MissingColumn {
        origin: String,
        column: String,
        /// The file's column names, comma-separated and backticked.
        available: String,
    },

    /// A column exists but its type cannot be converted to what the definitions declare.
    #[error("{origin}: column `{column}` is {found} but {expected}")]
    IncompatibleType {
        origin: String,
        column: String,
        found: String,
        expected: String,
    },

    /// One value of a convertible column does not fit the declared type (an int64 value beyond
    /// the int32 range, a timestamp beyond the nanosecond range, a list holding nulls).
    #[error("{origin}: column `{column}`: {message}")]
    BadValue {
        origin: String,
        column: String,
        message: String,
    },

    /// The request asks for something the format cannot provide (lists from CSV).
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },

    /// A view's `sql:` query failed to plan or run.
    #[error("{origin}: {message}")]
    Sql { origin: String, message: String },

    /// An offline store backend failed (connection, query, file I/O); `store` names it.
    #[error("offline store `{store}`: {message}")]
    Store {
        store: &'static str,
        message: String,
    },

    /// The compute operators refused their input (mismatched lengths, a bad parameter, key
    /// columns that cannot match).
    #[error(transparent)]
    Compute(#[from] crate::compute::ComputeError),

    /// A bug in Quiver: data it built itself does not fit together.
    #[error("this is a bug in Quiver: {message}")]
    Internal { message: String },

    /// Writing a file failed.
    #[error("cannot write `{path}`: {message}", path = path.display())]
    Write { path: PathBuf, message: String },
}

/// The offline crate's result type.
pub type Result<T, E = OfflineError> = std::result::Result<T, E>;

impl OfflineError {
    /// True for errors about the definitions not matching the file's columns (as opposed to the
    /// file being unreadable or a value being out of range): what `quiver apply` reports.
    pub fn is_schema_mismatch(&self) -> bool {
        matches!(
            self,
            OfflineError::MissingColumn { .. }
                | OfflineError::IncompatibleType { .. }
                | OfflineError::Unsupported { .. }
                | OfflineError::Sql { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_origin_and_column() {
        let err = OfflineError::IncompatibleType {
            origin: "source `users` (/d/users.parquet)".into(),
            column: "age".into(),
            found: "Utf8".into(),
            expected: "feature view field is int32".into(),
        };
        assert_eq!(
            err.to_string(),
            "source `users` (/d/users.parquet): column `age` is Utf8 but feature view field is int32"
        );
        assert!(err.is_schema_mismatch());
        let write = OfflineError::Write {
            path: "/x/y.parquet".into(),
            message: "disk full".into(),
        };
        assert_eq!(write.to_string(), "cannot write `/x/y.parquet`: disk full");
        assert!(!write.is_schema_mismatch());
    }
}
