//! [`RecordStore`] for [`EmbeddedStore`]: each namespace in tables of its own.
//!
//! - `records:{ns}`: id → expiry + payload (the `entry` framing; expired records are hidden at
//!   read and removed by the store's sweep);
//! - `queue:{ns}`: sequence → queued time (8 bytes, ms) + payload; positions are `0-{seq}`;
//! - `dead:{ns}`: sequence → dead-letter time, position, reason and payload;
//! - `queue_seq`: `{ns}` and `dead:{ns}` → the last sequence used, so positions keep growing
//!   after the queue drains (the sink compares them with what it committed).
//!
//! Every call is one redb transaction (fsynced on commit). One process owns the file, and the
//! facade runs one exporter per namespace at a time, so `claim` hands out the head of the queue.

use std::time::Duration;

use async_trait::async_trait;
use quiver_core::QueuePosition;
use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::entry::{frame, is_expired, is_live, now_ms, unframe};
use super::store::{EmbeddedStore, Shared};
use crate::error::{OnlineError, Result};
use crate::records::{DeadLetter, PutRecord, QueueEntry, QueueStats, RecordSpace, RecordStore};

const SEQ: TableDefinition<'_, &str, u64> = TableDefinition::new("queue_seq");
const RECORDS_PREFIX: &str = "records:";

fn records_name(space: &RecordSpace) -> String {
    format!("{RECORDS_PREFIX}{}", space.name)
}
fn queue_name(space: &RecordSpace) -> String {
    format!("queue:{}", space.name)
}
fn dead_name(space: &RecordSpace) -> String {
    format!("dead:{}", space.name)
}

fn position(seq: u64) -> QueuePosition {
    QueuePosition::new(0, seq)
}

fn corrupt(what: &str) -> OnlineError {
    OnlineError::Backend {
        store: "embedded",
        message: format!("a stored {what} is too short to parse (the file is damaged)"),
    }
}

/// Reserves `n` sequence numbers under `counter`; returns the first.
fn reserve(txn: &WriteTransaction, counter: &str, n: u64) -> std::result::Result<u64, redb::Error> {
    let mut seq = txn.open_table(SEQ)?;
    let last = seq.get(counter)?.map_or(0, |v| v.value());
    seq.insert(counter, last + n)?;
    Ok(last + 1)
}

/// Deletes expired records of every namespace (the store's sweep calls it in its transaction).
pub(super) fn sweep(txn: &WriteTransaction, now: u64) -> std::result::Result<u64, redb::Error> {
    let names: Vec<String> = txn
        .list_tables()?
        .map(|h| h.name().to_string())
        .filter(|n| n.starts_with(RECORDS_PREFIX))
        .collect();
    let mut removed = 0;
    for name in names {
        let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(&name);
        let mut table = txn.open_table(def)?;
        for item in table.extract_if(|_, value| is_expired(value, now))? {
            item?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A dead letter's stored form: at (8) + position ms (8) + position seq (8) + reason length (4)
/// + reason + payload.
fn encode_dead(at_ms: u64, pos: QueuePosition, reason: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + reason.len() + payload.len());
    out.extend_from_slice(&at_ms.to_be_bytes());
    out.extend_from_slice(&pos.ms.to_be_bytes());
    out.extend_from_slice(&pos.seq.to_be_bytes());
    out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_dead(v: &[u8]) -> Option<DeadLetter> {
    let u64_at = |i: usize| Some(u64::from_be_bytes(v.get(i..i + 8)?.try_into().ok()?));
    let len = u32::from_be_bytes(v.get(24..28)?.try_into().ok()?) as usize;
    Some(DeadLetter {
        at_ms: u64_at(0)?,
        position: QueuePosition::new(u64_at(8)?, u64_at(16)?),
        reason: String::from_utf8_lossy(v.get(28..28 + len)?).into_owned(),
        payload: v.get(28 + len..)?.to_vec(),
    })
}

/// The first `limit` (at least 1) entries of the sequence-keyed table `name`, decoded; none if
/// the table does not exist yet.
fn head<T>(
    shared: &Shared,
    name: &str,
    limit: usize,
    decode: impl Fn(u64, &[u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let err = |e: redb::Error| shared.err(e);
    let txn = shared.db.begin_read().map_err(|e| err(e.into()))?;
    let table = match txn.open_table(TableDefinition::<u64, &[u8]>::new(name)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(err(e.into())),
    };
    let mut out = Vec::new();
    for item in table.iter().map_err(|e| err(e.into()))?.take(limit.max(1)) {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        out.push(decode(k.value(), v.value())?);
    }
    Ok(out)
}

#[async_trait]
impl RecordStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn put(&self, space: &RecordSpace, records: &[PutRecord]) -> Result<Vec<QueuePosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let space = space.clone();
        let records = records.to_vec();
        self.blocking(move |shared| {
            let run = || -> std::result::Result<Vec<QueuePosition>, redb::Error> {
                let now = now_ms();
                let expires = space.ttl.map_or(0, |t| {
                    now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
                });
                let txn = shared.db.begin_write()?;
                let first = reserve(&txn, &space.name, records.len() as u64)?;
                let mut out = Vec::with_capacity(records.len());
                {
                    let rname = records_name(&space);
                    let qname = queue_name(&space);
                    let mut cache = txn.open_table(TableDefinition::<&str, &[u8]>::new(&rname))?;
                    let mut queue = txn.open_table(TableDefinition::<u64, &[u8]>::new(&qname))?;
                    for (i, r) in records.iter().enumerate() {
                        if space.cache {
                            let value = frame(expires, &r.payload);
                            for id in std::iter::once(&r.id).chain(&r.aliases) {
                                cache.insert(id.as_str(), value.as_slice())?;
                            }
                        }
                        let seq = first + i as u64;
                        queue.insert(seq, frame(now, &r.payload).as_slice())?;
                        out.push(position(seq));
                    }
                }
                txn.commit()?;
                Ok(out)
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }

    async fn get(&self, space: &RecordSpace, id: &str) -> Result<Option<Vec<u8>>> {
        let name = records_name(space);
        let id = id.to_string();
        self.blocking(move |shared| {
            let run = || -> std::result::Result<Option<Vec<u8>>, redb::Error> {
                let txn = shared.db.begin_read()?;
                let table = match txn.open_table(TableDefinition::<&str, &[u8]>::new(&name)) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let Some(v) = table.get(id.as_str())? else {
                    return Ok(None);
                };
                Ok(unframe(v.value())
                    .filter(|(expiry, _)| is_live(*expiry, now_ms()))
                    .map(|(_, payload)| payload.to_vec()))
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }

    async fn delete(&self, space: &RecordSpace, id: &str) -> Result<bool> {
        let name = records_name(space);
        let id = id.to_string();
        self.blocking(move |shared| {
            let run = || -> std::result::Result<bool, redb::Error> {
                let txn = shared.db.begin_write()?;
                let existed = {
                    let mut table = txn.open_table(TableDefinition::<&str, &[u8]>::new(&name))?;
                    let removed = table.remove(id.as_str())?;
                    removed.is_some_and(|v| {
                        unframe(v.value()).is_some_and(|(e, _)| is_live(e, now_ms()))
                    })
                };
                txn.commit()?;
                Ok(existed)
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }

    async fn claim(
        &self,
        space: &RecordSpace,
        _consumer: &str,
        count: usize,
        _min_idle: Duration,
    ) -> Result<Vec<QueueEntry>> {
        let name = queue_name(space);
        self.blocking(move |shared| {
            head(shared, &name, count, |seq, value| {
                let (_, payload) = unframe(value).ok_or_else(|| corrupt("queue entry"))?;
                Ok(QueueEntry {
                    position: position(seq),
                    payload: payload.to_vec(),
                })
            })
        })
        .await
    }

    async fn ack(&self, space: &RecordSpace, positions: &[QueuePosition]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let name = queue_name(space);
        let seqs: Vec<u64> = positions.iter().map(|p| p.seq).collect();
        self.blocking(move |shared| {
            let run = || -> std::result::Result<(), redb::Error> {
                let txn = shared.db.begin_write()?;
                {
                    let mut table = txn.open_table(TableDefinition::<u64, &[u8]>::new(&name))?;
                    for seq in seqs {
                        table.remove(seq)?;
                    }
                }
                txn.commit()?;
                Ok(())
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }

    async fn dead_letter(
        &self,
        space: &RecordSpace,
        entries: &[(QueueEntry, String)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (qname, dname) = (queue_name(space), dead_name(space));
        let entries = entries.to_vec();
        self.blocking(move |shared| {
            let run = || -> std::result::Result<(), redb::Error> {
                let now = now_ms();
                let txn = shared.db.begin_write()?;
                let first = reserve(&txn, &dname, entries.len() as u64)?;
                {
                    let mut queue = txn.open_table(TableDefinition::<u64, &[u8]>::new(&qname))?;
                    let mut dead = txn.open_table(TableDefinition::<u64, &[u8]>::new(&dname))?;
                    for (i, (e, reason)) in entries.iter().enumerate() {
                        let value = encode_dead(now, e.position, reason, &e.payload);
                        dead.insert(first + i as u64, value.as_slice())?;
                        queue.remove(e.position.seq)?;
                    }
                }
                txn.commit()?;
                Ok(())
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }

    async fn dead_letters(&self, space: &RecordSpace, limit: usize) -> Result<Vec<DeadLetter>> {
        let name = dead_name(space);
        self.blocking(move |shared| {
            head(shared, &name, limit, |_, value| {
                decode_dead(value).ok_or_else(|| corrupt("dead letter"))
            })
        })
        .await
    }

    async fn replay_dead_letters(&self, space: &RecordSpace) -> Result<u64> {
        let (qname, dname, counter) = (queue_name(space), dead_name(space), space.name.clone());
        self.blocking(move |shared| {
            let run = || -> std::result::Result<u64, OnlineError> {
                let err = |e: redb::Error| shared.err(e);
                let now = now_ms();
                let txn = shared.db.begin_write().map_err(|e| err(e.into()))?;
                let mut letters = Vec::new();
                {
                    let mut dead = txn
                        .open_table(TableDefinition::<u64, &[u8]>::new(&dname))
                        .map_err(|e| err(e.into()))?;
                    for item in dead.extract_if(|_, _| true).map_err(|e| err(e.into()))? {
                        let (_, v) = item.map_err(|e| err(e.into()))?;
                        letters.push(decode_dead(v.value()).ok_or_else(|| corrupt("dead letter"))?);
                    }
                }
                let n = letters.len() as u64;
                if n > 0 {
                    let first = reserve(&txn, &counter, n).map_err(err)?;
                    let mut queue = txn
                        .open_table(TableDefinition::<u64, &[u8]>::new(&qname))
                        .map_err(|e| err(e.into()))?;
                    for (i, l) in letters.iter().enumerate() {
                        queue
                            .insert(first + i as u64, frame(now, &l.payload).as_slice())
                            .map_err(|e| err(e.into()))?;
                    }
                }
                txn.commit().map_err(|e| err(e.into()))?;
                Ok(n)
            };
            run()
        })
        .await
    }

    async fn stats(&self, space: &RecordSpace) -> Result<QueueStats> {
        let (qname, dname) = (queue_name(space), dead_name(space));
        self.blocking(move |shared| {
            let run = || -> std::result::Result<QueueStats, redb::Error> {
                let txn = shared.db.begin_read()?;
                let mut stats = QueueStats::default();
                match txn.open_table(TableDefinition::<u64, &[u8]>::new(&qname)) {
                    Ok(queue) => {
                        stats.length = queue.len()?;
                        if let Some((_, v)) = queue.first()? {
                            stats.oldest_ms = unframe(v.value()).map(|(at, _)| at);
                        }
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                match txn.open_table(TableDefinition::<u64, &[u8]>::new(&dname)) {
                    Ok(dead) => stats.dead_letters = dead.len()?,
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(stats)
            };
            run().map_err(|e| shared.err(e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_round_trip() {
        let v = encode_dead(7, QueuePosition::new(1, 2), "sink refused", b"{\"a\":1}");
        let d = decode_dead(&v).unwrap();
        assert_eq!(d.at_ms, 7);
        assert_eq!(d.position, QueuePosition::new(1, 2));
        assert_eq!(d.reason, "sink refused");
        assert_eq!(d.payload, b"{\"a\":1}");
        assert!(decode_dead(&v[..20]).is_none());
    }
}
