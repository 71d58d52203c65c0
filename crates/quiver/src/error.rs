//! The facade's error type. Every error has a [`ErrorKind`], which the HTTP server maps to a
//! status code in one place; messages name the object at fault.

use std::path::PathBuf;

use quiver_core::CoreError;
use quiver_offline::OfflineError;
use quiver_online::OnlineError;

/// What kind of failure an error is, independent of where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something malformed or inconsistent (bad JSON value, wrong key type).
    InvalidArgument,
    /// A named object (view, feature, service) does not exist.
    NotFound,
    /// The project is not in a state to do this yet (e.g. `quiver apply` never ran).
    FailedPrecondition,
    /// A backend (Redis, a file) is unreachable or timed out; retrying may help.
    Unavailable,
    /// Someone else changed it first (the registry moved on since the plan): re-plan and retry.
    Conflict,
    /// The caller's credentials are missing, unknown, or lack the scope (a feature server's
    /// 401 and 403, as its clients see them).
    PermissionDenied,
    /// Configuration is invalid.
    Config,
    /// A bug or corrupt state inside Quiver.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Config => "config",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Errors of the Quiver library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Definitions(#[from] CoreError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A backend (the PostgreSQL registry) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A concurrent writer changed it first.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Online(#[from] OnlineError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} (this is a bug in Quiver)")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::Definitions(CoreError::Decode(_)) => ErrorKind::Internal,
            Error::Definitions(_) => ErrorKind::InvalidArgument,
            Error::InvalidRequest(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Online(e) => match e.cause() {
                OnlineError::Unavailable { .. } | OnlineError::Backend { .. } => {
                    ErrorKind::Unavailable
                }
                OnlineError::Encode(_) => ErrorKind::InvalidArgument,
                OnlineError::Config(_) => ErrorKind::Config,
                OnlineError::Corrupt { .. }
                | OnlineError::Unsupported(_)
                | OnlineError::PartialWrite { .. } => ErrorKind::Internal,
            },
            Error::Offline(OfflineError::Store { .. }) => ErrorKind::Unavailable,
            Error::Offline(OfflineError::Internal { .. }) => ErrorKind::Internal,
            Error::Offline(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
