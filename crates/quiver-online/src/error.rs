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
    /// A multi-round-trip write failed after its first `confirmed` rows (in request order) were
    /// acknowledged; the rest may or may not have been applied (a timed-out command can still
    /// run). Writes are newer-wins, so retrying the same rows is always safe.
    #[error(
        "wrote {confirmed} of {total} rows (the first {confirmed}, in request order), then: \
         {source}; the other {rest} rows may or may not have been applied; retrying the same \
         rows is safe (an older or equal event never replaces a newer one)",
        rest = total - confirmed
    )]
    PartialWrite {
        confirmed: usize,
        total: usize,
        #[source]
        source: Box<OnlineError>,
    },
    /// A local I/O or embedded-database failure.
    #[error("online store `{store}`: {message}")]
    Backend {
        store: &'static str,
        message: String,
    },
}

impl OnlineError {
    /// The error that stopped a partial write, or the error itself: what kind of failure it is.
    pub fn cause(&self) -> &OnlineError {
        match self {
            OnlineError::PartialWrite { source, .. } => source.cause(),
            other => other,
        }
    }
}

/// Result alias for online stores.
pub type Result<T, E = OnlineError> = std::result::Result<T, E>;
