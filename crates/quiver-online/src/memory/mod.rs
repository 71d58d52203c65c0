//! The in-memory reference store: a map from storage key to encoded record and expiry. It stores
//! the same bytes as every other backend, so it exercises the record format too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quiver_core::record::may_replace;
use quiver_core::{EntityKey, Record, RecordCodec};

use crate::error::{OnlineError, Result};
use crate::lock::{LocalLocks, LockToken, Locks};
use crate::{OnlineStoreRead, OnlineStoreWrite, ViewTable, WriteSummary};

const PREFIX: &str = "quiver";

type Map = HashMap<String, (Vec<u8>, Option<Instant>)>;

/// In-memory online store. Clones (and [`MemoryStore::with_codec`]) share the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    // A std mutex: critical sections are short and never span an `.await`.
    data: Arc<Mutex<Map>>,
    codec: RecordCodec,
    /// Shared by clones, like the data.
    locks: LocalLocks,
}

impl MemoryStore {
    pub fn new(codec: RecordCodec) -> Self {
        MemoryStore {
            data: Arc::default(),
            codec,
            locks: LocalLocks::new(),
        }
    }

    /// A handle on the same data that writes with another codec.
    pub fn with_codec(&self, codec: RecordCodec) -> Self {
        MemoryStore {
            data: self.data.clone(),
            codec,
            locks: self.locks.clone(),
        }
    }

    /// Raw stored bytes of a key (tests inspect the header).
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().get(key).map(|(v, _)| v.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is a
        // single insert/get), so a poisoned lock is still safe to use.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Locks for MemoryStore {
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>> {
        self.locks.try_lock_now(name, ttl)
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool> {
        Ok(self.locks.unlock_now(name, token))
    }

    async fn extend(&self, name: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        self.locks.extend_now(name, token, ttl)
    }
}

#[async_trait]
impl OnlineStoreRead for MemoryStore {
    async fn read(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<Vec<Option<Record>>> {
        let now = Instant::now();
        let map = self.lock();
        keys.iter()
            .map(|k| {
                let key = table.key(PREFIX, k);
                match map.get(&key) {
                    Some((_, Some(exp))) if *exp <= now => Ok(None),
                    Some((bytes, _)) => RecordCodec::decode(bytes, &table.types)
                        .map(Some)
                        .map_err(|source| OnlineError::Corrupt { key, source }),
                    None => Ok(None),
                }
            })
            .collect()
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        drop(self.lock());
        Ok(start.elapsed())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn table_sizes(&self, project: &str) -> Result<Vec<crate::TableSize>> {
        let project_prefix = format!("{PREFIX}:{project}:");
        let now = Instant::now();
        let mut sizes = Vec::new();
        for (key, (value, exp)) in self.lock().iter() {
            if exp.is_some_and(|e| e <= now) {
                continue;
            }
            if let Some((view, version)) = crate::parse_table_key(key, &project_prefix) {
                crate::count_key(&mut sizes, view, version, (key.len() + value.len()) as u64);
            }
        }
        Ok(sizes)
    }
}

#[async_trait]
impl OnlineStoreWrite for MemoryStore {
    async fn write(&self, table: &ViewTable, rows: &[(EntityKey, Record)]) -> Result<WriteSummary> {
        let encoded = rows
            .iter()
            .map(|(k, r)| {
                Ok((
                    table.key(PREFIX, k),
                    self.codec
                        .encode(r, &table.types)
                        .map_err(OnlineError::Encode)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let now = Instant::now();
        let expiry = table.ttl.map(|t| now + t);
        let mut summary = WriteSummary::default();
        let mut map = self.lock();
        for (key, bytes) in encoded {
            let live_old = map
                .get(&key)
                .filter(|(_, exp)| exp.is_none_or(|e| e > now))
                .map(|(old, _)| old);
            if live_old.is_some_and(|old| !may_replace(&bytes, old)) {
                summary.skipped_older += 1;
            } else {
                map.insert(key, (bytes, expiry));
                summary.written += 1;
            }
        }
        Ok(summary)
    }

    async fn delete_table(&self, table: &ViewTable) -> Result<u64> {
        let prefix = table.key_prefix(PREFIX);
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| !k.starts_with(&prefix));
        Ok((before - map.len()) as u64)
    }

    async fn delete(&self, table: &ViewTable, keys: &[EntityKey]) -> Result<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        let mut removed = 0;
        for key in keys {
            if let Some((_, exp)) = map.remove(&table.key(PREFIX, key))
                && exp.is_none_or(|e| e > now)
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
