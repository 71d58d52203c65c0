//! [`Faulty`]: a decorator that injects faults into any online store on demand and counts the
//! calls that reach it, for tests of what sits above a store ([`crate::Resilient`], serving's
//! fallback). Public, not `cfg(test)`, so other crates' tests can use it; it does nothing unless
//! told to.
//!
//! Faults apply to every call that reaches it (read, write, delete_table, ping), in this order:
//! the call is counted, waits the configured delay, then fails if told to, else goes to the
//! wrapped store. Clones share the faults and counters, so a test keeps one clone to steer the
//! store it handed to the code under test.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quiver_core::{EntityKey, Record};

use crate::error::{OnlineError, Result};
use crate::lock::{LockToken, Locks};
use crate::{OnlineStoreRead, OnlineStoreWrite, ViewTable, WriteSummary};

/// Calls that reached a [`Faulty`] store (including the ones it failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `read` and `read_by` calls.
    pub reads: u64,
    /// `write` and `delete_table` calls.
    pub writes: u64,
    pub pings: u64,
    /// `try_lock` and `unlock` calls.
    pub locks: u64,
    /// Calls failed by an injected fault.
    pub injected_failures: u64,
}

#[derive(Debug, Default)]
struct Faults {
    fail_all: AtomicBool,
    fail_next: AtomicUsize,
    delay: Mutex<Option<Duration>>,
    reads: AtomicU64,
    writes: AtomicU64,
    pings: AtomicU64,
    locks: AtomicU64,
    injected: AtomicU64,
}

/// A store wrapper that fails or delays calls on demand (see the module docs).
#[derive(Clone, Debug)]
pub struct Faulty<S> {
    inner: S,
    faults: Arc<Faults>,
}

/// Which counter a call adds to.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    Ping,
    Lock,
}

impl<S> Faulty<S> {
    /// Wraps `inner` with no faults.
    pub fn new(inner: S) -> Self {
        Faulty {
            inner,
            faults: Arc::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Every call fails with `Unavailable` (as if the server were down) until set back to false.
    pub fn fail_all(&self, on: bool) {
        self.faults.fail_all.store(on, Ordering::SeqCst);
    }

    /// The next `n` calls fail with `Unavailable`, then calls go through again.
    pub fn fail_next(&self, n: usize) {
        self.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every call first waits `delay` (as if the server were stalled); `None` stops delaying.
    pub fn delay(&self, delay: Option<Duration>) {
        *self.delay_slot() = delay;
    }

    /// Removes every fault (counters are kept).
    pub fn heal(&self) {
        self.fail_all(false);
        self.fail_next(0);
        self.delay(None);
    }

    pub fn calls(&self) -> CallCounts {
        let f = &self.faults;
        CallCounts {
            reads: f.reads.load(Ordering::SeqCst),
            writes: f.writes.load(Ordering::SeqCst),
            pings: f.pings.load(Ordering::SeqCst),
            locks: f.locks.load(Ordering::SeqCst),
            injected_failures: f.injected.load(Ordering::SeqCst),
        }
    }

    fn delay_slot(&self) -> std::sync::MutexGuard<'_, Option<Duration>> {
        // The slot is a plain value: a poisoned lock still holds a valid one.
        self.faults.delay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the call, waits the delay, and returns the injected failure, if any.
    async fn enter(&self, kind: Kind, store: &'static str, op: &str) -> Result<()> {
        let f = &self.faults;
        let counter = match kind {
            Kind::Read => &f.reads,
            Kind::Write => &f.writes,
            Kind::Ping => &f.pings,
            Kind::Lock => &f.locks,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay_slot();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let take_one = f
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if take_one || f.fail_all.load(Ordering::SeqCst) {
            f.injected.fetch_add(1, Ordering::SeqCst);
            return Err(OnlineError::Unavailable {
                store,
                message: format!("`{op}` failed by an injected fault (Faulty)"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl<S: OnlineStoreRead> OnlineStoreRead for Faulty<S> {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        self.enter(Kind::Read, self.inner.kind(), "read").await?;
        self.inner.read(table, keys).await
    }

    async fn ping(&self) -> Result<Duration> {
        self.enter(Kind::Ping, self.inner.kind(), "ping").await?;
        self.inner.ping().await
    }

    fn records(&self) -> Option<std::sync::Arc<dyn crate::RecordStore>> {
        self.inner.records()
    }

    async fn memory(&self) -> Result<Option<crate::MemoryUsage>> {
        self.inner.memory().await
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<crate::TableSize>> {
        self.inner.table_sizes(project).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn shared_locks(&self) -> Option<&dyn crate::Locks> {
        self.inner.shared_locks()
    }

    fn resilience(&self) -> Option<crate::resilient::ResilienceState> {
        self.inner.resilience()
    }
}

#[async_trait]
impl<S: OnlineStoreRead + OnlineStoreWrite> OnlineStoreWrite for Faulty<S> {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        self.enter(Kind::Write, self.inner.kind(), "write").await?;
        self.inner.write(table, rows).await
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        self.enter(Kind::Write, self.inner.kind(), "delete_table")
            .await?;
        self.inner.delete_table(table).await
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        self.enter(Kind::Write, self.inner.kind(), "delete").await?;
        self.inner.delete(table, keys).await
    }
}

#[async_trait]
impl<S: Locks> Locks for Faulty<S> {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        self.enter(Kind::Lock, "locks", "try_lock").await?;
        self.inner.try_lock(name, ttl).await
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        self.enter(Kind::Lock, "locks", "unlock").await?;
        self.inner.unlock(name, token).await
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        self.enter(Kind::Lock, "locks", "extend").await?;
        self.inner.extend(name, token, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use quiver_core::RecordCodec;

    fn table() -> ViewTable {
        ViewTable {
            project: "p".into(),
            view: "v".into(),
            version: 1,
            types: Vec::new().into(),
            ttl: None,
        }
    }

    #[tokio::test]
    async fn fails_the_next_calls_then_heals_and_counts_everything() {
        let store = Faulty::new(MemoryStore::new(RecordCodec::default()));
        let steer = store.clone();
        steer.fail_next(2);
        assert!(store.read(&table(), &[]).await.is_err());
        assert!(store.ping().await.is_err());
        assert!(store.read(&table(), &[]).await.is_ok());
        steer.fail_all(true);
        let err = store.write(&table(), &[]).await.unwrap_err().to_string();
        assert!(err.contains("injected fault"), "{err}");
        steer.heal();
        assert!(store.write(&table(), &[]).await.is_ok());
        assert_eq!(
            steer.calls(),
            CallCounts {
                reads: 2,
                writes: 2,
                pings: 1,
                locks: 0,
                injected_failures: 3,
            }
        );
    }
}
