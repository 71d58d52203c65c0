//! The core crate's error type. Messages are lowercase, name the object and put identifiers in
//! backticks, so they can be shown to a user as they are.

/// Errors raised by the domain model.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A definition file is malformed or inconsistent; `file` names the file it came from.
    #[error("{file}: {message}")]
    Definition { file: String, message: String },
    /// Definitions are inconsistent; one line per problem, each naming file, object and field.
    #[error("{}", .0.join("\n"))]
    Definitions(Vec<String>),
    /// A value does not fit its declared type or violates a constraint.
    #[error("{0}")]
    InvalidValue(String),
    /// An online record could not be decoded (corrupt, or written for another schema).
    #[error("cannot decode record: {0}")]
    Decode(String),
    /// An online record could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
}

/// Result alias for the core crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
