//! [`Locks`] for [`RedisStore`]: locks shared by every process using the same Redis.
//!
//! Taking a lock is `SET {prefix}:lock:{name} token NX PX ttl`: atomic, and the key expires by
//! itself if the holder dies. Releasing runs a compare-and-delete script, so a holder whose lease
//! ran out cannot delete the lock its successor took. Single node only: this is not Redlock,
//! and a failover that loses the key lets a second holder in (acceptable for stampede
//! protection, where two holders only means duplicated work).

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::error::Result;
use crate::lock::{LockToken, Locks, check_args};

impl RedisStore {
    /// The key of lock `name`: `{prefix}:lock:{name}`.
    pub fn lock_key(&self, name: &str) -> String {
        format!("{}:lock:{name}", self.shared.key_prefix)
    }
}

/// The TTL in ms for `PX`: at least 1 (a sub-millisecond TTL still expires, and `PX 0` is an
/// error), at most what Redis accepts.
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i64::MAX as u64 / 2)
}

#[async_trait]
impl Locks for RedisStore {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        check_args(name, ttl)?;
        let key = self.lock_key(name);
        let token = LockToken::random();
        // `SET ... NX` replies OK when it set the key and nil when the key exists. If the reply
        // is lost and the call retried, the retry sees our own key and says "held": the lock
        // then stays unused until its TTL, which is safe.
        let reply: Option<String> = self
            .shared
            .run("lock", |mut conn| {
                let (key, token) = (&key, &token);
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(token.as_str())
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms(ttl))
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(reply.map(|_| token))
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        let key = self.lock_key(name);
        let shared = &self.shared;
        let deleted: i64 = shared
            .run("unlock", |mut conn| {
                let key = &key;
                async move {
                    // `invoke_async` sends EVALSHA and loads the script if the server lacks it
                    // (first use, or after a restart).
                    shared
                        .unlock_script
                        .key(key)
                        .arg(token.as_str())
                        .invoke_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        check_args(name, ttl)?;
        let key = self.lock_key(name);
        let shared = &self.shared;
        let renewed: i64 = shared
            .run("extend lock", |mut conn| {
                let key = &key;
                async move {
                    shared
                        .extend_script
                        .key(key)
                        .arg(token.as_str())
                        .arg(ttl_ms(ttl))
                        .invoke_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(renewed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_positive_milliseconds() {
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
        assert!(ttl_ms(Duration::MAX) > 0);
    }
}
