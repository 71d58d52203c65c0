//! [`ResilienceConfig`]: how long a call may take, how reads retry, and when the breaker opens.
//!
//! Meant to sit under `online_store:` in `quiver.yaml` (not wired there yet):
//!
//! ```yaml
//! resilience:
//!   timeout: 250ms          # per read attempt and per ping
//!   write_timeout: 30s      # per write or delete_table call (a whole materialization batch)
//!   retries: 2              # read retries after the first attempt (0: none)
//!   backoff_base: 10ms      # first retry waits 5–10ms, the second 10–20ms, ... (factor 2, jitter)
//!   breaker_failures: 5     # consecutive availability failures that open the breaker
//!   breaker_cooldown: 1s    # how long it stays open before one probe call may go through
//! ```
//!
//! Durations use the same spelling as the rest of the file (`250ms`, `1s`, `2m`); a bare number
//! is refused so `timeout: 250` is not silently seconds.

use std::time::Duration;

use quiver_core::duration::serde_req;
use serde::{Deserialize, Serialize};

use crate::error::{OnlineError, Result};

/// More retries than this cannot fit any sensible request deadline; likely a typo.
const MAX_RETRIES: u32 = 10;

/// Timeouts, read retries and circuit breaker settings of a [`super::Resilient`] store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Longest a read attempt or a ping may take before it fails as `Unavailable`.
    #[serde(with = "serde_req")]
    pub timeout: Duration,
    /// Longest a write or `delete_table` call may take. Separate from `timeout` because one
    /// write is a whole batch (thousands of rows in several round trips), not a serving lookup.
    #[serde(with = "serde_req")]
    pub write_timeout: Duration,
    /// Read retries after the first attempt, for availability failures only. Writes are never
    /// retried by the decorator.
    pub retries: u32,
    /// Backoff before the first retry; each later retry waits twice as long. The actual wait is
    /// drawn between half and all of it (jitter), so clients that failed together do not retry
    /// in lockstep.
    #[serde(with = "serde_req")]
    pub backoff_base: Duration,
    /// Consecutive availability failures (unavailable, timed out) that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls at once before letting one probe call through.
    #[serde(with = "serde_req")]
    pub breaker_cooldown: Duration,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            timeout: Duration::from_millis(250),
            write_timeout: Duration::from_secs(30),
            retries: 2,
            backoff_base: Duration::from_millis(10),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

impl ResilienceConfig {
    /// Refuses settings that would make every call fail or never let the breaker open.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, why: &str| {
            Err(OnlineError::Config(format!(
                "field `online_store.resilience.{field}`: {why}"
            )))
        };
        if self.timeout.is_zero() {
            return invalid(
                "timeout",
                "must be greater than 0 (every read would time out)",
            );
        }
        if self.write_timeout.is_zero() {
            return invalid(
                "write_timeout",
                "must be greater than 0 (every write would time out)",
            );
        }
        if self.retries > MAX_RETRIES {
            return invalid(
                "retries",
                &format!(
                    "{} is more than {MAX_RETRIES}; retries must fit a request deadline",
                    self.retries
                ),
            );
        }
        if self.breaker_failures == 0 {
            return invalid(
                "breaker_failures",
                "must be at least 1 (0 would open the breaker before any call)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_fills_defaults() {
        let cfg: ResilienceConfig =
            serde_json::from_str(r#"{"timeout":"80ms","breaker_cooldown":"2s"}"#).unwrap();
        assert_eq!(cfg.timeout, Duration::from_millis(80));
        assert_eq!(cfg.breaker_cooldown, Duration::from_secs(2));
        assert_eq!(cfg.retries, ResilienceConfig::default().retries);
        assert!(cfg.validate().is_ok());
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            serde_json::from_str::<ResilienceConfig>(&json).unwrap(),
            cfg
        );
    }

    #[test]
    fn refuses_unknown_fields_bare_numbers_and_useless_values() {
        assert!(serde_json::from_str::<ResilienceConfig>(r#"{"timout":"1s"}"#).is_err());
        assert!(serde_json::from_str::<ResilienceConfig>(r#"{"timeout":"250"}"#).is_err());
        let zero = ResilienceConfig {
            breaker_failures: 0,
            ..ResilienceConfig::default()
        };
        let msg = zero.validate().unwrap_err().to_string();
        assert!(msg.contains("breaker_failures"), "{msg}");
        let no_time = ResilienceConfig {
            timeout: Duration::ZERO,
            ..ResilienceConfig::default()
        };
        assert!(no_time.validate().is_err());
    }
}
