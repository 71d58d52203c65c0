//! The circuit breaker of one wrapped store.
//!
//! Closed: calls go through; `threshold` consecutive availability failures open it. Open: calls
//! fail at once (no network) until `cooldown` has passed; then the next call is let through as
//! the one probe (half-open) while every other call still fails at once. The probe's success
//! closes the breaker, its failure re-opens it for another cool-down.
//!
//! The state machine is pure: every method takes `now`, so it is tested without sleeping.
//! Each transition starts a new epoch; an outcome reported for a ticket of an older epoch (a slow
//! call that started before the breaker opened) is counted but moves nothing, so one late answer
//! cannot close a breaker that a probe has not yet tested.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::error::OnlineError;

/// Where the breaker is, for metrics and `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down has passed.
    Open,
    /// One probe call is allowed (or in flight); its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`: a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Totals since the breaker was created (monotonic counters for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerCounters {
    /// Calls let through to the store (probes included).
    pub admitted: u64,
    /// Calls the store answered (an error that is not about availability, such as a corrupt
    /// record, is an answer).
    pub answered: u64,
    /// Calls that failed for availability: unavailable or timed out.
    pub failed: u64,
    /// Calls failed at once because the breaker was open (or a probe was in flight).
    pub rejected: u64,
    /// Times the breaker opened (from closed, or again after a failed probe).
    pub opened: u64,
}

/// The breaker's state and counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    /// Availability failures in a row (what opens a closed breaker).
    pub consecutive_failures: u32,
    /// When the breaker last opened, while it is open or half-open.
    pub open_since: Option<SystemTime>,
    pub counters: BreakerCounters,
}

/// Permission for one call; hand it back to [`Breaker::record`] or [`Breaker::abandon`].
#[derive(Debug)]
pub(crate) struct Ticket {
    epoch: u64,
    probe: bool,
}

/// Why the breaker is not closed, kept for the fail-fast message.
#[derive(Clone, Debug)]
struct Opened {
    at: Instant,
    at_wall: SystemTime,
    reason: String,
}

#[derive(Debug)]
enum State {
    Closed,
    Open(Opened),
    HalfOpen { opened: Opened, probing: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    epoch: u64,
    consecutive_failures: u32,
    counters: BreakerCounters,
}

/// A circuit breaker (see the module docs). Thread-safe; the lock is never held across an
/// `.await` (every method is synchronous), so a std mutex is the right one.
#[derive(Debug)]
pub(crate) struct Breaker {
    store: &'static str,
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub(crate) fn new(store: &'static str, threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            store,
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: State::Closed,
                epoch: 0,
                consecutive_failures: 0,
                counters: BreakerCounters::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update leaves `Inner` consistent before anything can panic, so a poisoned lock
        // still holds a valid state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a call through, or fails it at once with `Unavailable` saying why.
    pub(crate) fn admit(&self, now: Instant) -> Result<Ticket, OnlineError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        self.half_open_if_cooled(inner, now);
        let probe = match &mut inner.state {
            State::Closed => false,
            State::HalfOpen { probing, .. } if !*probing => {
                *probing = true;
                true
            }
            State::Open(_) | State::HalfOpen { .. } => {
                inner.counters.rejected += 1;
                return Err(self.rejection(&inner.state, now));
            }
        };
        inner.counters.admitted += 1;
        Ok(Ticket {
            epoch: inner.epoch,
            probe,
        })
    }

    /// Reports how an admitted call ended: `Err` with the error if it failed for availability,
    /// `Ok` if the store answered (even with an error that is not about availability).
    pub(crate) fn record(&self, ticket: Ticket, failure: Option<&OnlineError>, now: Instant) {
        let mut inner = self.lock();
        match failure {
            None => inner.counters.answered += 1,
            Some(_) => inner.counters.failed += 1,
        }
        if ticket.epoch != inner.epoch {
            return;
        }
        match (failure, ticket.probe) {
            (None, false) => inner.consecutive_failures = 0,
            (None, true) => {
                inner.consecutive_failures = 0;
                self.enter(&mut inner, State::Closed);
                tracing::info!(
                    store = self.store,
                    "circuit breaker closed: probe succeeded"
                );
            }
            (Some(e), false) => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                if inner.consecutive_failures >= self.threshold {
                    let reason = format!(
                        "after {} consecutive availability failures, the last: {e}",
                        inner.consecutive_failures
                    );
                    self.open(&mut inner, now, reason);
                }
            }
            (Some(e), true) => {
                let reason = format!("after a failed probe: {e}");
                self.open(&mut inner, now, reason);
            }
        }
    }

    /// The call was dropped before it ended (its caller gave up). A probe's slot is freed so the
    /// next call probes instead; anything else changes nothing.
    pub(crate) fn abandon(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if ticket.probe
            && ticket.epoch == inner.epoch
            && let State::HalfOpen { probing, .. } = &mut inner.state
        {
            *probing = false;
        }
    }

    pub(crate) fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.lock();
        let (state, open_since) = match &inner.state {
            State::Closed => (BreakerState::Closed, None),
            State::Open(o) => (BreakerState::Open, Some(o.at_wall)),
            State::HalfOpen { opened, .. } => (BreakerState::HalfOpen, Some(opened.at_wall)),
        };
        BreakerSnapshot {
            state,
            consecutive_failures: inner.consecutive_failures,
            open_since,
            counters: inner.counters,
        }
    }

    /// An open breaker whose cool-down has passed becomes half-open, with its probe slot free.
    fn half_open_if_cooled(&self, inner: &mut Inner, now: Instant) {
        let cooled = matches!(&inner.state,
            State::Open(o) if now.saturating_duration_since(o.at) >= self.cooldown);
        if cooled && let State::Open(opened) = std::mem::replace(&mut inner.state, State::Closed) {
            self.enter(
                inner,
                State::HalfOpen {
                    opened,
                    probing: false,
                },
            );
            tracing::info!(store = self.store, "circuit breaker half-open: probing");
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant, reason: String) {
        tracing::warn!(
            store = self.store,
            cooldown = ?self.cooldown,
            reason = %reason,
            "circuit breaker opened: calls fail fast until a probe succeeds"
        );
        inner.counters.opened += 1;
        self.enter(
            inner,
            State::Open(Opened {
                at: now,
                at_wall: SystemTime::now(),
                reason,
            }),
        );
    }

    fn enter(&self, inner: &mut Inner, state: State) {
        inner.state = state;
        inner.epoch += 1;
    }

    fn rejection(&self, state: &State, now: Instant) -> OnlineError {
        let message = match state {
            State::Open(o) => format!(
                "circuit breaker open since {} ({:?} ago) {}; calls fail fast until a probe \
                 after the {:?} cool-down",
                humantime::format_rfc3339_millis(o.at_wall),
                now.saturating_duration_since(o.at),
                o.reason,
                self.cooldown,
            ),
            State::HalfOpen { opened, .. } => format!(
                "circuit breaker half-open (open since {}, {}); one probe call is in flight and \
                 others fail fast until it succeeds",
                humantime::format_rfc3339_millis(opened.at_wall),
                opened.reason,
            ),
            State::Closed => {
                "circuit breaker rejected a call while closed (this is a bug in Quiver)".into()
            }
        };
        OnlineError::Unavailable {
            store: self.store,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> OnlineError {
        OnlineError::Unavailable {
            store: "test",
            message: "connection refused".into(),
        }
    }

    fn fail(b: &Breaker, now: Instant) {
        let t = b.admit(now).unwrap();
        b.record(t, Some(&down()), now);
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new("test", 3, Duration::from_secs(1));
        let now = Instant::now();
        fail(&b, now);
        fail(&b, now);
        let t = b.admit(now).unwrap();
        b.record(t, None, now);
        assert_eq!(b.snapshot().consecutive_failures, 0);
        for _ in 0..3 {
            fail(&b, now);
        }
        let snap = b.snapshot();
        assert_eq!(snap.state, BreakerState::Open);
        assert_eq!(snap.counters.opened, 1);
        let err = b.admit(now).unwrap_err().to_string();
        assert!(err.contains("circuit breaker open since"), "{err}");
        assert!(err.contains("connection refused"), "{err}");
        assert_eq!(b.snapshot().counters.rejected, 1);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let b = Breaker::new("test", 1, Duration::from_secs(1));
        let t0 = Instant::now();
        fail(&b, t0);
        assert!(b.admit(t0 + Duration::from_millis(999)).is_err());
        let later = t0 + Duration::from_secs(1);
        let probe = b.admit(later).unwrap();
        assert_eq!(b.snapshot().state, BreakerState::HalfOpen);
        let err = b.admit(later).unwrap_err().to_string();
        assert!(err.contains("probe call is in flight"), "{err}");
        // A failed probe re-opens for a whole new cool-down.
        b.record(probe, Some(&down()), later);
        assert_eq!(b.snapshot().state, BreakerState::Open);
        assert!(b.admit(later + Duration::from_millis(500)).is_err());
        let again = later + Duration::from_secs(1);
        let probe = b.admit(again).unwrap();
        b.record(probe, None, again);
        assert_eq!(b.snapshot().state, BreakerState::Closed);
        assert!(b.admit(again).is_ok());
    }

    #[test]
    fn late_outcomes_and_abandoned_probes_do_not_wedge_it() {
        let b = Breaker::new("test", 1, Duration::ZERO);
        let now = Instant::now();
        let slow = b.admit(now).unwrap();
        fail(&b, now);
        assert_eq!(b.snapshot().state, BreakerState::Open);
        // The slow call from before the breaker opened answers now: not a probe, changes nothing.
        b.record(slow, None, now);
        assert_eq!(b.snapshot().state, BreakerState::Open);
        let probe = b.admit(now).unwrap();
        b.abandon(probe);
        // The abandoned probe's slot is free again.
        let probe = b.admit(now).unwrap();
        b.record(probe, None, now);
        assert_eq!(b.snapshot().state, BreakerState::Closed);
    }
}
