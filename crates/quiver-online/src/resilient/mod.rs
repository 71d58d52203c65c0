//! [`Resilient`]: a decorator that makes any online store answer in bounded time and fail fast
//! while it is down, so serving can fall back to another layer within its request deadline.
//!
//! Layout:
//! - this file: [`Resilient`], the trait implementations (timeouts, read retries, breaker).
//! - `breaker`: the circuit breaker state machine, [`BreakerState`] and its counters.
//! - `config`: [`ResilienceConfig`], the settings, with defaults.
//!
//! What it does to each call:
//! - Every call is bounded: reads and pings by `timeout` per attempt, writes and `delete_table`
//!   by `write_timeout`. A call that runs out of time fails as `Unavailable`; its future is
//!   dropped, which cancels it.
//! - Reads that fail for availability (unavailable, timed out) are retried up to `retries`
//!   times with exponential backoff and jitter, but never past the caller's deadline
//!   ([`OnlineStoreRead::read_by`]): an attempt gets at most the time left, and a retry whose
//!   backoff alone would reach the deadline is not made. Other errors (a corrupt record, a
//!   refused configuration) are returned at once: trying again cannot change them.
//! - One circuit breaker per wrapped store counts availability failures only (including the
//!   cause of a [`OnlineError::PartialWrite`]); while it is open every call fails at once with
//!   `Unavailable` naming the breaker, without touching the store. A timeout counts whether the
//!   configured timeout or the caller's deadline cut the call short: either way the store did
//!   not answer in the time serving had (so deadlines far below the store's normal latency will
//!   open the breaker, which is the honest answer to "can this store serve in time?").
//!
//! This is a decorator rather than code in each backend so the same policy covers every backend
//! (and stacks with [`crate::Faulty`] in tests), the pattern of Neon's `GenericRemoteStorage`.

mod breaker;
mod config;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quiver_core::{EntityKey, Record};
use tokio::time::Instant;

pub use breaker::{BreakerCounters, BreakerSnapshot, BreakerState};
pub use config::ResilienceConfig;

use self::breaker::{Breaker, Ticket};
use crate::error::{OnlineError, Result};
use crate::lock::{LockToken, Locks};
use crate::{OnlineStoreRead, OnlineStoreWrite, ViewTable, WriteSummary};

/// The state of a [`Resilient`] store for metrics: the breaker, and what retries and timeouts did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResilienceState {
    pub breaker: BreakerSnapshot,
    /// Read retries made (each is one more call to the store).
    pub retries: u64,
    /// Calls cut short by `timeout`, `write_timeout` or the caller's deadline.
    pub timeouts: u64,
}

/// An online store wrapped with timeouts, read retries and a circuit breaker (see the module
/// docs). Share it (`Arc`) rather than wrapping one store twice: the breaker is per wrapper.
#[derive(Debug)]
pub struct Resilient<S> {
    inner: S,
    store: &'static str,
    config: ResilienceConfig,
    breaker: Breaker,
    retries: AtomicU64,
    timeouts: AtomicU64,
}

/// Why an attempt did not return a value.
enum CallError {
    /// The breaker failed it without calling the store.
    Rejected(OnlineError),
    /// The store failed, or did not answer in time.
    Failed(OnlineError),
}

impl From<CallError> for OnlineError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rejected(e) | CallError::Failed(e) => e,
        }
    }
}

/// Whether an error says the store could not be reached or did not answer in time: what the
/// breaker counts and reads retry. Every other error is an answer from a working store.
pub fn is_availability_failure(e: &OnlineError) -> bool {
    matches!(e.cause(), OnlineError::Unavailable { .. })
}

/// An admitted call; if it is dropped before [`Pending::finish`] (the caller's future was
/// cancelled), the breaker hears that the call was abandoned, so a probe slot is never lost.
struct Pending<'a> {
    breaker: &'a Breaker,
    ticket: Option<Ticket>,
}

impl Pending<'_> {
    fn finish(mut self, error: Option<&OnlineError>) {
        if let Some(ticket) = self.ticket.take() {
            let failure = error.filter(|e| is_availability_failure(e));
            self.breaker
                .record(ticket, failure, std::time::Instant::now());
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.abandon(ticket);
        }
    }
}

impl<S: OnlineStoreRead> Resilient<S> {
    /// Wraps `inner`; fails with `Config` if `config` is invalid.
    pub fn new(inner: S, config: ResilienceConfig) -> Result<Self> {
        config.validate()?;
        let store = inner.kind();
        Ok(Resilient {
            breaker: Breaker::new(store, config.breaker_failures, config.breaker_cooldown),
            inner,
            store,
            config,
            retries: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        })
    }
}

impl<S> Resilient<S> {
    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn config(&self) -> &ResilienceConfig {
        &self.config
    }

    /// Breaker state and counters, for metrics and `/health`.
    pub fn state(&self) -> ResilienceState {
        ResilienceState {
            breaker: self.breaker.snapshot(),
            retries: self.retries.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }

    /// One call through the breaker, bounded by `limit`. `by_deadline`: the limit is the time
    /// left before the caller's deadline rather than the configured timeout (for the message).
    async fn call<T, Fut>(
        &self,
        op: &str,
        limit: Duration,
        by_deadline: bool,
        call: impl FnOnce() -> Fut,
    ) -> std::result::Result<T, CallError>
    where
        Fut: Future<Output = Result<T>>,
    {
        let ticket = self
            .breaker
            .admit(std::time::Instant::now())
            .map_err(CallError::Rejected)?;
        let pending = Pending {
            breaker: &self.breaker,
            ticket: Some(ticket),
        };
        let result = match tokio::time::timeout(limit, call()).await {
            Ok(result) => result,
            Err(_) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(self.timed_out(op, limit, by_deadline))
            }
        };
        pending.finish(result.as_ref().err());
        result.map_err(CallError::Failed)
    }

    fn timed_out(&self, op: &str, limit: Duration, by_deadline: bool) -> OnlineError {
        let message = if by_deadline {
            format!("`{op}` did not answer before the caller's deadline ({limit:?} were left)")
        } else {
            format!("`{op}` did not answer within {limit:?} (the resilience timeout)")
        };
        OnlineError::Unavailable {
            store: self.store,
            message,
        }
    }

    /// How long an attempt may take: the timeout, or less if the deadline is nearer.
    fn attempt_limit(&self, deadline: Option<Instant>) -> (Duration, bool) {
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left < self.config.timeout {
                    (left, true)
                } else {
                    (self.config.timeout, false)
                }
            }
            None => (self.config.timeout, false),
        }
    }

    /// Reads with retries; `deadline`: when the caller stops waiting, if it said.
    async fn read_within(
        &self,
        table: &ViewTable,
        keys: &[EntityKey],
        deadline: Option<Instant>,
    ) -> Result<Vec<Option<Record>>>
    where
        S: OnlineStoreRead,
    {
        let mut retry = 0;
        loop {
            let (limit, by_deadline) = self.attempt_limit(deadline);
            if limit.is_zero() {
                return Err(crate::deadline_passed(self.store, "read"));
            }
            let error = match self
                .call("read", limit, by_deadline, || self.inner.read(table, keys))
                .await
            {
                Ok(records) => return Ok(records),
                Err(CallError::Failed(e)) if is_availability_failure(&e) => e,
                Err(e) => return Err(e.into()),
            };
            if retry >= self.config.retries {
                return Err(error);
            }
            let wait = backoff(self.config.backoff_base, retry);
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                // No time for the wait, let alone the attempt: the caller gets the real error
                // now rather than a deadline error later.
                return Err(error);
            }
            tracing::debug!(store = self.store, retry = retry + 1, ?wait, error = %error, "retrying a read");
            tokio::time::sleep(wait).await;
            self.retries.fetch_add(1, Ordering::Relaxed);
            retry += 1;
        }
    }

    /// A call that is never retried here, bounded by `limit`.
    async fn once<T, Fut>(&self, op: &str, limit: Duration, call: impl FnOnce() -> Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        self.call(op, limit, false, call).await.map_err(Into::into)
    }
}

/// The wait before retry number `retry + 1`: `base * 2^retry`, drawn between half and all of it
/// ("equal jitter": spread out, but never much shorter than planned).
fn backoff(base: Duration, retry: u32) -> Duration {
    let full = base.saturating_mul(1u32 << retry.min(16));
    let half = full / 2;
    let nanos = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::random_range(0..=nanos))
}

#[async_trait]
impl<S: OnlineStoreRead> OnlineStoreRead for Resilient<S> {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        self.read_within(table, keys, None).await
    }

    async fn read_by(
        &self,
        table: &ViewTable,
        keys: &[EntityKey],
        deadline: Instant,
    ) -> Result<Vec<Option<Record>>> {
        self.read_within(table, keys, Some(deadline)).await
    }

    async fn ping(&self) -> Result<Duration> {
        self.once("ping", self.config.timeout, || self.inner.ping())
            .await
    }

    fn records(&self) -> Option<std::sync::Arc<dyn crate::RecordStore>> {
        self.inner.records()
    }

    async fn memory(&self) -> Result<Option<crate::MemoryUsage>> {
        self.inner.memory().await
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<crate::TableSize>> {
        self.once("table_sizes", self.config.write_timeout, || {
            self.inner.table_sizes(project)
        })
        .await
    }

    fn kind(&self) -> &'static str {
        self.store
    }

    // The inner store's: a lock call is one short command, bounded by the store's own
    // command timeout.
    fn shared_locks(&self) -> Option<&dyn crate::Locks> {
        self.inner.shared_locks()
    }

    fn resilience(&self) -> Option<ResilienceState> {
        Some(self.state())
    }
}

// Writes are not retried here. They are idempotent (newer wins, so writing the same rows twice
// stores the same result), but a write is a batch that may take seconds: whether another attempt
// fits, and whether to retry only the unconfirmed rows of a `PartialWrite`, is the caller's
// decision (materialization retries batches itself).
#[async_trait]
impl<S: OnlineStoreRead + OnlineStoreWrite> OnlineStoreWrite for Resilient<S> {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        self.once("write", self.config.write_timeout, || {
            self.inner.write(table, rows)
        })
        .await
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        self.once("delete_table", self.config.write_timeout, || {
            self.inner.delete_table(table)
        })
        .await
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        self.once("delete", self.config.write_timeout, || {
            self.inner.delete(table, keys)
        })
        .await
    }
}

// Lock calls are bounded and guarded like reads, but never retried: a `try_lock` that timed out
// may have taken the lock, and trying again would then report it as held by someone else.
#[async_trait]
impl<S: Locks> Locks for Resilient<S> {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        self.once("try_lock", self.config.timeout, || {
            self.inner.try_lock(name, ttl)
        })
        .await
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        self.once("unlock", self.config.timeout, || {
            self.inner.unlock(name, token)
        })
        .await
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        self.once("extend", self.config.timeout, || {
            self.inner.extend(name, token, ttl)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let base = Duration::from_millis(10);
        for _ in 0..100 {
            let first = backoff(base, 0);
            assert!(
                first >= Duration::from_millis(5) && first <= base,
                "{first:?}"
            );
            let second = backoff(base, 1);
            assert!(
                second >= Duration::from_millis(10) && second <= Duration::from_millis(20),
                "{second:?}"
            );
        }
        // Huge retry numbers saturate instead of overflowing.
        assert!(backoff(Duration::from_secs(u64::MAX / 2), 40) > Duration::ZERO);
    }

    #[test]
    fn only_availability_failures_count() {
        let down = OnlineError::Unavailable {
            store: "redis",
            message: "refused".into(),
        };
        assert!(!is_availability_failure(&OnlineError::Config("x".into())));
        assert!(!is_availability_failure(&OnlineError::Unsupported("x")));
        let partial = OnlineError::PartialWrite {
            confirmed: 1,
            total: 2,
            source: Box::new(down),
        };
        assert!(is_availability_failure(&partial));
    }
}
