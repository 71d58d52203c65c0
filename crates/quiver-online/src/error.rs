//! Online store errors.

use quiver_core::CoreError;

/// Errors of an online store.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The backend cannot be reached or did not answer in time.
    #[error("online store `{store}` is unavailable: {message}")]
    Unavailable {
        store: &'static str,
        message: String,
    },
    /// A stored record cannot be decoded.
    #[error("online store record `{key}` is corrupt: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: CoreError,
    },
    /// A record cannot be encoded (a value does not fit its field).
    #[error(transparent)]
    Encode(CoreError),
    /// The store's configuration is invalid.
    #[error("online store configuration: {0}")]
    Config(String),
    /// The backend does not implement this optional operation.
    #[error("online store does not support `{0}`")]
    Unsupported(&'static str),
    /// A local I/O or embedded-database failure.
    #[error("online store `{store}`: {message}")]
    Backend {
        store: &'static str,
        message: String,
    },
}

/// Result alias for online stores.
pub type Result<T, E = OnlineError> = std::result::Result<T, E>;
