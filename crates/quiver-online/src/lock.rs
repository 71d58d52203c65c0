//! [`Locks`]: short-lived named locks, for stampede protection (one process recomputes or reloads
//! a value while the others wait or serve what they have).
//!
//! A lock is advisory and leased: it frees itself `ttl` after it was taken even if its holder
//! crashed, and only the holder's [`LockToken`] releases it earlier. There is no renewal and no
//! fencing: a holder whose work outlasts the TTL may find the lock taken by someone else, so the
//! TTL should comfortably exceed the work it guards, and the guarded work must stay correct (if
//! wasteful) when two holders overlap. Store writes are newer-wins, so they do.
//!
//! Redis implements it across processes (`SET NX PX`, compare-and-delete script, see
//! [`crate::redis`]); [`LocalLocks`] implements it in one process, for the memory and embedded
//! stores (an embedded file is opened by one process only, so in-process locks are enough).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{OnlineError, Result};

/// Proof of holding a lock: a random 128-bit value, in hex. Only the token that took a lock
/// releases it, so a holder whose lease expired cannot release the next holder's lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockToken(String);

impl LockToken {
    /// A fresh unpredictable token (OS-seeded thread RNG).
    pub fn random() -> Self {
        LockToken(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Named, leased locks (see the module docs).
#[async_trait]
pub trait Locks: Send + Sync {
    /// Takes the lock `name` for `ttl` if nobody holds it: `Some(token)` if taken, `None` if held
    /// by someone else (including an earlier call of this process). Never waits for the lock.
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>>;

    /// Releases `name` if `token` still holds it. `false`: it did not (the lease expired,
    /// perhaps someone else holds it now, or it was already released); nothing changed.
    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool>;

    /// Renews `name`'s lease to `ttl` from now if `token` still holds it: a holder whose work
    /// may outlast one lease renews it periodically, so a crashed holder's lock frees itself
    /// within one (short) lease. `false`: the lease had expired; the caller no longer holds it.
    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool>;
}

/// Refuses arguments no backend can honour: an empty name, or a TTL of zero (a lock that is
/// already expired when taken).
pub(crate) fn check_args(name: &str, ttl: Duration) -> Result<()> {
    if name.is_empty() {
        return Err(OnlineError::Config("a lock name must not be empty".into()));
    }
    if ttl.is_zero() {
        return Err(OnlineError::Config(format!(
            "lock `{name}`: the TTL must be greater than 0"
        )));
    }
    Ok(())
}

/// In-process locks. Clones share the locks.
#[derive(Clone, Debug, Default)]
pub struct LocalLocks {
    // A std mutex: each operation is one map lookup, never held across an `.await`.
    held: Arc<Mutex<HashMap<String, (LockToken, Instant)>>>,
}

impl LocalLocks {
    pub fn new() -> Self {
        LocalLocks::default()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, (LockToken, Instant)>> {
        // Every operation is a single insert, remove or lookup: a poisoned map is still valid.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Synchronous [`Locks::try_lock`].
    pub fn try_lock_now(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        check_args(name, ttl)?;
        let now = Instant::now();
        let mut held = self.held();
        if held.get(name).is_some_and(|(_, expires)| *expires > now) {
            return Ok(None);
        }
        // Expired entries are dropped when their name is taken again; between two takes an
        // entry is one small string, so no sweep is needed.
        let token = LockToken::random();
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        held.insert(name.to_string(), (token.clone(), expires));
        Ok(Some(token))
    }

    /// Synchronous [`Locks::extend`].
    pub fn extend_now(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        check_args(name, ttl)?;
        let now = Instant::now();
        let mut held = self.held();
        match held.get_mut(name) {
            Some((t, expires)) if t == token && *expires > now => {
                *expires = now
                    .checked_add(ttl)
                    .unwrap_or(now + Duration::from_secs(86_400 * 365));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Synchronous [`Locks::unlock`].
    pub fn unlock_now(&self, name: &str, token: &LockToken) -> bool {
        let mut held = self.held();
        let owned = held
            .get(name)
            .is_some_and(|(t, expires)| t == token && *expires > Instant::now());
        if owned {
            held.remove(name);
        }
        owned
    }
}

#[async_trait]
impl Locks for LocalLocks {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        self.try_lock_now(name, ttl)
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        Ok(self.unlock_now(name, token))
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        self.extend_now(name, token, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_only_the_owner_releases() {
        let locks = LocalLocks::new();
        let ttl = Duration::from_secs(60);
        let token = locks.try_lock_now("refresh", ttl).unwrap().unwrap();
        assert_eq!(locks.try_lock_now("refresh", ttl).unwrap(), None);
        assert!(locks.try_lock_now("other", ttl).unwrap().is_some());
        assert!(!locks.unlock_now("refresh", &LockToken::random()));
        assert_eq!(locks.try_lock_now("refresh", ttl).unwrap(), None);
        assert!(locks.unlock_now("refresh", &token));
        assert!(!locks.unlock_now("refresh", &token));
        assert!(locks.try_lock_now("refresh", ttl).unwrap().is_some());
    }

    #[test]
    fn an_expired_lease_frees_the_lock_and_its_token_is_void() {
        let locks = LocalLocks::new();
        let old = locks
            .try_lock_now("refresh", Duration::from_millis(1))
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let new = locks
            .try_lock_now("refresh", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_ne!(old, new);
        assert!(!locks.unlock_now("refresh", &old));
        assert!(locks.unlock_now("refresh", &new));
    }

    #[test]
    fn only_the_holder_extends_a_live_lease() {
        let locks = LocalLocks::new();
        let token = locks
            .try_lock_now("export", Duration::from_millis(30))
            .unwrap()
            .unwrap();
        assert!(
            locks
                .extend_now("export", &token, Duration::from_secs(60))
                .unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            locks
                .try_lock_now("export", Duration::from_secs(1))
                .unwrap(),
            None,
            "the extended lease outlives the first"
        );
        assert!(
            !locks
                .extend_now("export", &LockToken::random(), Duration::from_secs(1))
                .unwrap()
        );
        let short = locks
            .try_lock_now("other", Duration::from_millis(1))
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !locks
                .extend_now("other", &short, Duration::from_secs(1))
                .unwrap(),
            "expired"
        );
    }

    #[test]
    fn refuses_empty_names_and_zero_ttls() {
        let locks = LocalLocks::new();
        assert!(locks.try_lock_now("", Duration::from_secs(1)).is_err());
        let err = locks.try_lock_now("x", Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("lock `x`"), "{err}");
        assert_eq!(LockToken::random().as_str().len(), 32);
    }
}
