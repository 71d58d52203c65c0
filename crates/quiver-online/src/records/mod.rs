//! Record namespaces: records cached with a TTL, and a durable export queue per namespace.
//!
//! A record is opaque bytes (the facade writes JSON) under an id. [`RecordStore::put`] caches
//! each record under its id *and* appends it to the namespace's queue in one atomic step, so a
//! record that was accepted is always exported, even when its cached copy expires or is deleted
//! first. The exporter [`claim`](RecordStore::claim)s entries, commits them to the offline
//! store, then [`ack`](RecordStore::ack)s them (which removes them from the queue); entries
//! that can never be exported are moved to a dead-letter list with the reason.
//!
//! Backends:
//! - Redis: the record under `{space}:r:{id}` (`SET … PX ttl`), the queue a Stream
//!   `{space}:queue` with the consumer group `exporters` (a crashed exporter's pending entries
//!   are taken over with `XAUTOCLAIM`; acknowledged entries are `XDEL`eted, unacknowledged ones
//!   are never trimmed), dead letters the Stream `{space}:dead`. `put` is one `MULTI`/`EXEC`.
//!   Durable as Redis is configured: `appendonly yes` with `appendfsync always` loses nothing
//!   acknowledged.
//! - Embedded: tables of their own per namespace (`records:{ns}`, `queue:{ns}`, `dead:{ns}`)
//!   written in one redb transaction (fsynced on commit). One process owns the file, so one
//!   exporter drains it; `claim` hands out the head of the queue.

use std::time::Duration;

use async_trait::async_trait;
use quiver_core::QueuePosition;

use crate::error::Result;

/// Where a namespace's records live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpace {
    /// The namespace's name (errors and embedded table names).
    pub name: String,
    /// Every Redis key of the namespace starts with it: `{prefix}:{project}:records:{name}`.
    pub key_prefix: String,
    /// Cached records expire this long after they were written; `None`: never.
    pub ttl: Option<Duration>,
    /// Redis: a logical database of its own; `None`: the store's.
    pub db: Option<u32>,
    /// Keep a cached copy readable by id (`get`). `false`: records are only queued for export
    /// (served-feature logs: written once, read only in the offline store).
    pub cache: bool,
}

/// One record to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRecord {
    pub id: String,
    pub payload: Vec<u8>,
    /// More ids the same payload is cached under (not queued again): e.g. the latest
    /// prediction of a model for an entity. The last write wins.
    pub aliases: Vec<String>,
}

/// An entry of the export queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub position: QueuePosition,
    pub payload: Vec<u8>,
}

/// An entry that could not be exported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its position in the queue it came from.
    pub position: QueuePosition,
    pub payload: Vec<u8>,
    pub reason: String,
    /// When it was dead-lettered, ms since the epoch.
    pub at_ms: u64,
}

/// The state of a namespace's queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries not yet exported (including those handed to an exporter).
    pub length: u64,
    /// Entries handed to an exporter and not yet acknowledged.
    pub pending: u64,
    /// When the oldest unexported entry was queued, ms since the epoch.
    pub oldest_ms: Option<u64>,
    pub dead_letters: u64,
}

impl QueueStats {
    /// How long the oldest unexported entry has waited, in seconds (`None`: the queue is empty).
    pub fn oldest_age_seconds(&self) -> Option<f64> {
        let now_ms = crate::now_ns() / 1_000_000;
        self.oldest_ms
            .map(|o| (now_ms - o as i64).max(0) as f64 / 1e3)
    }
}

/// Cached records and their export queue.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// `redis` or `embedded`.
    fn kind(&self) -> &'static str;

    /// Caches every record (replacing one with the same id) and queues it for export, all or
    /// nothing: `Ok` means every record is cached and queued; an error before the backend
    /// answered means none is (`Unavailable` after a request was sent may hide a write that
    /// happened; retrying the same records is safe in the sink, which upserts by id). Returns
    /// each record's queue position, in order.
    async fn put(&self, space: &RecordSpace, records: &[PutRecord]) -> Result<Vec<QueuePosition>>;

    /// The cached record, or `None` (never written, expired or deleted).
    async fn get(&self, space: &RecordSpace, id: &str) -> Result<Option<Vec<u8>>>;

    /// Deletes the cached record; returns whether it existed. Its queued copy is still exported
    /// (it was accepted).
    async fn delete(&self, space: &RecordSpace, id: &str) -> Result<bool>;

    /// Up to `count` entries for `consumer`, oldest first: first entries another exporter took
    /// and left unacknowledged for `min_idle` (it crashed), then new ones.
    async fn claim(
        &self,
        space: &RecordSpace,
        consumer: &str,
        count: usize,
        min_idle: Duration,
    ) -> Result<Vec<QueueEntry>>;

    /// Removes exported entries from the queue.
    async fn ack(&self, space: &RecordSpace, positions: &[QueuePosition]) -> Result<()>;

    /// Moves entries to the dead-letter list with a reason, removing them from the queue.
    async fn dead_letter(
        &self,
        space: &RecordSpace,
        entries: &[(QueueEntry, String)],
    ) -> Result<()>;

    /// The first `limit` dead letters, oldest first.
    async fn dead_letters(&self, space: &RecordSpace, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Queues every dead letter again (at the end of the queue) and clears the list; returns how
    /// many.
    async fn replay_dead_letters(&self, space: &RecordSpace) -> Result<u64>;

    async fn stats(&self, space: &RecordSpace) -> Result<QueueStats>;
}

/// Checks a record id: non-empty, at most 512 bytes, no control characters.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("a record id must not be empty".into());
    }
    if id.len() > 512 {
        return Err(format!("record id is {} bytes; at most 512", id.len()));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("record id {id:?} contains a control character"));
    }
    Ok(())
}
