//! Quiver's errors as Python exceptions: one class per [`ErrorKind`] under `QuiverError`, each
//! with the library's message unchanged. Each class also derives from the builtin exception a
//! Feast user's `except` clause names (`ValueError` for a bad argument, `LookupError` for a
//! missing object, `ConnectionError` for an unreachable backend), so code written for Feast
//! keeps catching them.
//!
//! Work runs with the GIL released, where no Python object can be made: it fails with a
//! [`Failure`], turned into the exception once the GIL is back.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use quiver::ErrorKind;

create_exception!(
    quiver,
    QuiverError,
    PyException,
    "Any error raised by Quiver."
);

/// The subclasses: name, the builtin they also derive from, and their doc.
const CLASSES: [(ErrorKind, &str, &str, &str); 8] = [
    (
        ErrorKind::InvalidArgument,
        "InvalidArgument",
        "ValueError",
        "The request was malformed or inconsistent (a wrong key type, an unknown column).",
    ),
    (
        ErrorKind::NotFound,
        "NotFound",
        "LookupError",
        "A named object (feature view, feature, feature service, record) does not exist.",
    ),
    (
        ErrorKind::FailedPrecondition,
        "FailedPrecondition",
        "RuntimeError",
        "The project is not ready for this yet (e.g. `apply` never ran, the store is closed).",
    ),
    (
        ErrorKind::Unavailable,
        "Unavailable",
        "ConnectionError",
        "A backend (Redis, PostgreSQL, the feature server) is unreachable or timed out; retrying may help.",
    ),
    (
        ErrorKind::Conflict,
        "Conflict",
        "RuntimeError",
        "Someone changed it first (the registry moved on since the plan): plan again and retry.",
    ),
    (
        ErrorKind::PermissionDenied,
        "PermissionDenied",
        "PermissionError",
        "The feature server refused the token: missing, unknown, or without the scope.",
    ),
    (
        ErrorKind::Config,
        "ConfigError",
        "ValueError",
        "The project's configuration is invalid.",
    ),
    (
        ErrorKind::Internal,
        "InternalError",
        "RuntimeError",
        "A bug or corrupt state inside Quiver.",
    ),
];

static TYPES: PyOnceLock<Vec<(ErrorKind, Py<PyType>)>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<(ErrorKind, Py<PyType>)>> {
    TYPES.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let make_type = builtins.getattr("type")?;
        let base = py.get_type::<QuiverError>();
        CLASSES
            .iter()
            .map(|(kind, name, builtin, doc)| {
                let dict = PyDict::new(py);
                dict.set_item("__module__", "quiver")?;
                dict.set_item("__doc__", *doc)?;
                let bases =
                    PyTuple::new(py, [base.clone().into_any(), builtins.getattr(*builtin)?])?;
                let class = make_type
                    .call1((*name, bases, dict))?
                    .cast_into::<PyType>()?;
                Ok((*kind, class.unbind()))
            })
            .collect()
    })
}

/// The exception for an error kind and message.
pub fn exception(py: Python<'_>, kind: ErrorKind, message: String) -> PyErr {
    match types(py) {
        Ok(types) => match types.iter().find(|(k, _)| *k == kind) {
            Some((_, class)) => PyErr::from_type(class.bind(py).clone(), message),
            None => QuiverError::new_err(message),
        },
        Err(e) => e,
    }
}

/// Why a call failed, decided without the GIL.
pub enum Failure {
    /// A Quiver error kind and its message.
    Kind(ErrorKind, String),
    /// An exception already made (argument checks: `ValueError`, `TypeError`).
    Py(PyErr),
}

impl Failure {
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Kind(kind, message) => exception(py, kind, message),
            Failure::Py(e) => e,
        }
    }

    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::Kind(ErrorKind::Internal, message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure::Kind(ErrorKind::Unavailable, message.into())
    }
}

impl From<quiver::Error> for Failure {
    fn from(e: quiver::Error) -> Failure {
        Failure::Kind(e.kind(), e.to_string())
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Failure {
        Failure::Py(e)
    }
}

/// The server's `{"error": {"kind", "message"}}` kind.
pub fn server_kind(kind: &str) -> ErrorKind {
    match kind {
        "invalid_argument" => ErrorKind::InvalidArgument,
        "not_found" => ErrorKind::NotFound,
        "failed_precondition" => ErrorKind::FailedPrecondition,
        "unavailable" => ErrorKind::Unavailable,
        "conflict" => ErrorKind::Conflict,
        "unauthenticated" | "permission_denied" => ErrorKind::PermissionDenied,
        "resource_exhausted" => ErrorKind::Unavailable,
        "config" => ErrorKind::Config,
        _ => ErrorKind::Internal,
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("QuiverError", py.get_type::<QuiverError>())?;
    for ((_, class), (_, name, _, _)) in types(py)?.iter().zip(CLASSES) {
        m.add(name, class.bind(py))?;
    }
    Ok(())
}
