//! Quiver's errors as Python exceptions: one class per [`ErrorKind`] under `QuiverError`, each
//! with the library's message unchanged.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use quiver::ErrorKind;

create_exception!(
    quiver,
    QuiverError,
    PyException,
    "Any error raised by Quiver."
);
create_exception!(
    quiver,
    InvalidArgument,
    QuiverError,
    "The request was malformed or inconsistent (a wrong key type, an unknown column)."
);
create_exception!(
    quiver,
    NotFound,
    QuiverError,
    "A named object (feature view, feature, feature service, record) does not exist."
);
create_exception!(
    quiver,
    FailedPrecondition,
    QuiverError,
    "The project is not ready for this yet (e.g. `apply` never ran)."
);
create_exception!(
    quiver,
    Unavailable,
    QuiverError,
    "A backend (Redis, PostgreSQL, the feature server) is unreachable or timed out; retrying may help."
);
create_exception!(
    quiver,
    ConfigError,
    QuiverError,
    "The project's configuration is invalid."
);
create_exception!(
    quiver,
    InternalError,
    QuiverError,
    "A bug or corrupt state inside Quiver."
);

/// The exception class for an error kind.
pub fn exception(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        ErrorKind::InvalidArgument => InvalidArgument::new_err(message),
        ErrorKind::NotFound => NotFound::new_err(message),
        ErrorKind::FailedPrecondition => FailedPrecondition::new_err(message),
        ErrorKind::Unavailable => Unavailable::new_err(message),
        ErrorKind::Config => ConfigError::new_err(message),
        ErrorKind::Internal => InternalError::new_err(message),
    }
}

/// A library error as its Python exception.
pub fn to_py(e: quiver::Error) -> PyErr {
    exception(e.kind(), e.to_string())
}

/// The server's `{"error": {"kind", "message"}}` kind, as a Python exception.
pub fn from_server_kind(kind: &str, message: String) -> PyErr {
    let kind = match kind {
        "invalid_argument" => ErrorKind::InvalidArgument,
        "not_found" => ErrorKind::NotFound,
        "failed_precondition" => ErrorKind::FailedPrecondition,
        "unavailable" => ErrorKind::Unavailable,
        "config" => ErrorKind::Config,
        _ => ErrorKind::Internal,
    };
    exception(kind, message)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("QuiverError", py.get_type::<QuiverError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("FailedPrecondition", py.get_type::<FailedPrecondition>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
