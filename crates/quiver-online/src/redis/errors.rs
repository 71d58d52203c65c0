//! Mapping Redis client errors to [`OnlineError`].
//!
//! Connection failures, timeouts and a server that is loading, read-only or down are
//! `Unavailable` (the server may fall back to the offline store); anything else the server
//! answers is a `Backend` error. Messages name the server by its redacted URL, and any
//! occurrence of the password is scrubbed from the client's own text as well, in case a future
//! client version echoes connection details.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::config::redact_url;
use crate::error::OnlineError;

/// What every error message says about the server, without secrets.
#[derive(Clone)]
pub(super) struct Target {
    redacted_url: String,
    password: Option<String>,
}

impl Target {
    pub(super) fn new(url: &str) -> Self {
        Target {
            redacted_url: redact_url(url),
            password: password_of(url).filter(|p| !p.is_empty()),
        }
    }

    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(p) => text.replace(p.as_str(), "***"),
            None => text,
        }
    }

    /// The server did not answer within `timeout`.
    pub(super) fn timeout(&self, op: &str, timeout: std::time::Duration) -> OnlineError {
        OnlineError::Unavailable {
            store: "redis",
            message: format!(
                "`{op}` on `{}` timed out after {timeout:?}",
                self.redacted_url
            ),
        }
    }

    /// "`op` on `url`: error", with the password scrubbed.
    pub(super) fn message(&self, op: &str, e: &RedisError) -> String {
        self.scrub(format!("`{op}` on `{}`: {e}", self.redacted_url))
    }

    /// Maps a client error from operation `op`.
    pub(super) fn error(&self, op: &str, e: &RedisError) -> OnlineError {
        let message = self.message(op, e);
        // Checked first: the client also classes a failed AUTH as "reconnect", but no
        // reconnect fixes wrong credentials.
        if e.kind() == ErrorKind::AuthenticationFailed {
            OnlineError::Config(message)
        } else if is_unavailable(e) {
            OnlineError::Unavailable {
                store: "redis",
                message,
            }
        } else {
            OnlineError::Backend {
                store: "redis",
                message,
            }
        }
    }
}

/// Errors that mean "cannot be served right now", as opposed to a wrong request.
pub(super) fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// Whether retrying the same command at once may succeed: the connection broke (the first
/// command after an idle disconnect fails this way) but did not time out.
pub(super) fn is_retryable(e: &RedisError) -> bool {
    !e.is_timeout()
        && e.kind() != ErrorKind::AuthenticationFailed
        && (e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_io_error())
}

fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let creds = &rest[..rest.rfind('@')?];
    creds.split_once(':').map(|(_, p)| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_the_password() {
        let t = Target::new("redis://app:s3cret@127.0.0.1:6379/2");
        let e = RedisError::from((ErrorKind::Io, "boom", "s3cret leaked".to_string()));
        let msg = t.error("mget", &e).to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("redis://app:***@127.0.0.1:6379/2"), "{msg}");
        assert!(matches!(
            t.error("mget", &e),
            OnlineError::Unavailable { .. }
        ));
        assert_eq!(password_of("redis://127.0.0.1"), None);
        assert_eq!(password_of("rediss://:pw@h"), Some("pw".into()));
    }
}
