//! [`RecordStore`] for [`RedisStore`]: records as strings with `PX`, the export queue as a
//! Stream with a consumer group, dead letters as a second Stream.
//!
//! Keys under a namespace's prefix `P` (`{key_prefix}:{project}:records:{ns}`):
//! - `P:r:{id}`: the cached record (`SET … PX ttl`);
//! - `P:queue`: the export queue, consumer group `exporters`; every entry has the fields `id`
//!   and `p` (the payload);
//! - `P:dead`: dead letters, fields `pos`, `reason`, `p`.
//!
//! `put` is one `MULTI`/`EXEC` of every `SET` and `XADD`, so a record is either cached and
//! queued or neither. Exported entries are `XACK`ed and `XDEL`eted together; the queue is never
//! trimmed, so nothing unexported is ever dropped, whatever the TTL of the cached copies.

use std::time::Duration;

use async_trait::async_trait;
use quiver_core::QueuePosition;
use redis::Value;

use super::RedisStore;
use super::lock::ttl_ms;
use crate::error::{OnlineError, Result};
use crate::records::{DeadLetter, PutRecord, QueueEntry, QueueStats, RecordSpace, RecordStore};

/// The consumer group every exporter joins.
pub const GROUP: &str = "exporters";

fn record_key(space: &RecordSpace, id: &str) -> String {
    format!("{}:r:{id}", space.key_prefix)
}

fn queue_key(space: &RecordSpace) -> String {
    format!("{}:queue", space.key_prefix)
}

fn dead_key(space: &RecordSpace) -> String {
    format!("{}:dead", space.key_prefix)
}

fn bad_reply(what: &str, v: &Value) -> OnlineError {
    OnlineError::Backend {
        store: "redis",
        message: format!("unexpected reply to {what}: {v:?} (this is a bug in Quiver)"),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn position(v: &Value, what: &str) -> Result<QueuePosition> {
    text(v)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad_reply(what, v))
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        Value::Set(a) => Some(a),
        _ => None,
    }
}

/// A stream entry's fields as (name, value) pairs.
type Fields = Vec<(String, Vec<u8>)>;

/// The fields of one stream entry `[id, [field, value, ...]]`.
fn entry_fields(v: &Value, what: &str) -> Result<(QueuePosition, Fields)> {
    let parts = items(v).ok_or_else(|| bad_reply(what, v))?;
    let [id, fields] = parts else {
        return Err(bad_reply(what, v));
    };
    let pos = position(id, what)?;
    let mut out = Vec::new();
    if let Some(fields) = items(fields) {
        for pair in fields.chunks(2) {
            if let [Value::BulkString(k), Value::BulkString(val)] = pair {
                out.push((String::from_utf8_lossy(k).into_owned(), val.clone()));
            }
        }
    }
    Ok((pos, out))
}

fn field(fields: &mut Fields, name: &str) -> Option<Vec<u8>> {
    let i = fields.iter().position(|(k, _)| k == name)?;
    Some(fields.swap_remove(i).1)
}

/// Queue entries from a list of stream entries (nil entries, deleted meanwhile, are skipped).
fn queue_entries(list: &Value, what: &str) -> Result<Vec<QueueEntry>> {
    let Some(list) = items(list) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        if matches!(e, Value::Nil) {
            continue;
        }
        let (position, mut fields) = entry_fields(e, what)?;
        let payload = field(&mut fields, "p").ok_or_else(|| bad_reply(what, e))?;
        out.push(QueueEntry { position, payload });
    }
    Ok(out)
}

impl RedisStore {
    /// The store on the namespace's logical database (this one when it has none of its own).
    async fn on(&self, space: &RecordSpace) -> Result<RedisStore> {
        let Some(db) = space.db else {
            return Ok(self.clone());
        };
        if self.shared.cluster {
            return Err(OnlineError::Config(format!(
                "records namespace `{}`: `db: {db}` cannot be used on Redis Cluster, which has only database 0; leave `db` out (the namespace's keys share one hash slot)",
                space.name
            )));
        }
        let mut dbs = self.shared.dbs.lock().await;
        if let Some(store) = dbs.get(&db) {
            return Ok(store.clone());
        }
        let mut config = self.shared.config.clone();
        config.connections = 1;
        let store = RedisStore::connect_db(&config, Some(db)).await?;
        dbs.insert(db, store.clone());
        Ok(store)
    }

    async fn query(&self, what: &str, cmd: &redis::Cmd) -> Result<Value> {
        self.shared
            .run(
                what,
                |mut conn| async move { cmd.query_async(&mut conn).await },
            )
            .await
    }

    async fn query_pipe(&self, what: &str, pipe: &redis::Pipeline) -> Result<Value> {
        self.shared
            .run(
                what,
                |mut conn| async move { pipe.query_async(&mut conn).await },
            )
            .await
    }

    /// Creates the consumer group (and the stream) if missing.
    async fn ensure_group(&self, space: &RecordSpace) -> Result<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(queue_key(space))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.query("xgroup create", &cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl RecordStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn put(&self, space: &RecordSpace, records: &[PutRecord]) -> Result<Vec<QueuePosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.on(space).await?;
        let queue = queue_key(space);
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut xadds = Vec::with_capacity(records.len());
        let mut n = 0usize;
        for r in records {
            let cached = if space.cache { 1 + r.aliases.len() } else { 0 };
            for id in std::iter::once(&r.id).chain(&r.aliases).take(cached) {
                let set = pipe
                    .cmd("SET")
                    .arg(record_key(space, id))
                    .arg(&r.payload[..]);
                if let Some(ttl) = space.ttl {
                    set.arg("PX").arg(ttl_ms(ttl));
                }
                n += 1;
            }
            pipe.cmd("XADD")
                .arg(&queue)
                .arg("*")
                .arg("id")
                .arg(&r.id)
                .arg("p")
                .arg(&r.payload[..]);
            xadds.push(n);
            n += 1;
        }
        let reply = store.query_pipe("put records", &pipe).await?;
        let replies = items(&reply).ok_or_else(|| bad_reply("MULTI/EXEC", &reply))?;
        xadds
            .into_iter()
            .map(|i| {
                let v = replies
                    .get(i)
                    .ok_or_else(|| bad_reply("MULTI/EXEC", &reply))?;
                position(v, "XADD")
            })
            .collect()
    }

    async fn get(&self, space: &RecordSpace, id: &str) -> Result<Option<Vec<u8>>> {
        let store = self.on(space).await?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(record_key(space, id));
        match store.query("get record", &cmd).await? {
            Value::Nil => Ok(None),
            Value::BulkString(b) => Ok(Some(b)),
            other => Err(bad_reply("GET", &other)),
        }
    }

    async fn delete(&self, space: &RecordSpace, id: &str) -> Result<bool> {
        let store = self.on(space).await?;
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(record_key(space, id));
        match store.query("delete record", &cmd).await? {
            Value::Int(n) => Ok(n > 0),
            other => Err(bad_reply("UNLINK", &other)),
        }
    }

    async fn claim(
        &self,
        space: &RecordSpace,
        consumer: &str,
        count: usize,
        min_idle: Duration,
    ) -> Result<Vec<QueueEntry>> {
        let store = self.on(space).await?;
        store.ensure_group(space).await?;
        let queue = queue_key(space);
        let count = count.max(1);
        // Entries another exporter took and never acknowledged come first, so the queue drains
        // in order after a crash.
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&queue)
            .arg(GROUP)
            .arg(consumer)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg("0-0")
            .arg("COUNT")
            .arg(count);
        let reply = store.query("xautoclaim", &cmd).await?;
        let parts = items(&reply).ok_or_else(|| bad_reply("XAUTOCLAIM", &reply))?;
        let claimed = match parts.get(1) {
            Some(list) => queue_entries(list, "XAUTOCLAIM")?,
            None => return Err(bad_reply("XAUTOCLAIM", &reply)),
        };
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&queue)
            .arg(">");
        let reply = store.query("xreadgroup", &cmd).await?;
        let streams: Vec<&Value> = match &reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(a) => a.iter().collect(),
            Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
            other => return Err(bad_reply("XREADGROUP", other)),
        };
        let mut out = Vec::new();
        for s in streams {
            // RESP2: [name, entries]; RESP3 map value: entries.
            let list = match items(s) {
                Some([Value::BulkString(_), list]) => list,
                _ => s,
            };
            out.extend(queue_entries(list, "XREADGROUP")?);
        }
        Ok(out)
    }

    async fn ack(&self, space: &RecordSpace, positions: &[QueuePosition]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let store = self.on(space).await?;
        let queue = queue_key(space);
        let ids: Vec<String> = positions.iter().map(ToString::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XACK").arg(&queue).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(&queue).arg(&ids).ignore();
        store.query_pipe("ack", &pipe).await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        space: &RecordSpace,
        entries: &[(QueueEntry, String)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let store = self.on(space).await?;
        let queue = queue_key(space);
        let dead = dead_key(space);
        let now = crate::now_ns() / 1_000_000;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut ids = Vec::with_capacity(entries.len());
        for (e, reason) in entries {
            pipe.cmd("XADD")
                .arg(&dead)
                .arg("*")
                .arg("pos")
                .arg(e.position.to_string())
                .arg("reason")
                .arg(reason)
                .arg("at")
                .arg(now)
                .arg("p")
                .arg(&e.payload[..])
                .ignore();
            ids.push(e.position.to_string());
        }
        pipe.cmd("XACK").arg(&queue).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(&queue).arg(&ids).ignore();
        store.query_pipe("dead letter", &pipe).await?;
        Ok(())
    }

    async fn dead_letters(&self, space: &RecordSpace, limit: usize) -> Result<Vec<DeadLetter>> {
        let store = self.on(space).await?;
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(dead_key(space))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1));
        let reply = store.query("xrange dead letters", &cmd).await?;
        let list = items(&reply).unwrap_or_default();
        let mut out = Vec::with_capacity(list.len());
        for e in list {
            let (_, mut fields) = entry_fields(e, "XRANGE")?;
            let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
            let position = text(field(&mut fields, "pos"))
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad_reply("XRANGE", e))?;
            out.push(DeadLetter {
                position,
                reason: text(field(&mut fields, "reason")).unwrap_or_default(),
                at_ms: text(field(&mut fields, "at"))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
                payload: field(&mut fields, "p").ok_or_else(|| bad_reply("XRANGE", e))?,
            });
        }
        Ok(out)
    }

    async fn replay_dead_letters(&self, space: &RecordSpace) -> Result<u64> {
        let store = self.on(space).await?;
        let dead = dead_key(space);
        let queue = queue_key(space);
        let mut replayed = 0u64;
        loop {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&dead).arg("-").arg("+").arg("COUNT").arg(1000);
            let reply = store.query("xrange dead letters", &cmd).await?;
            let list = items(&reply).unwrap_or_default();
            if list.is_empty() {
                return Ok(replayed);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut dead_ids = Vec::with_capacity(list.len());
            for e in list {
                let (id, mut fields) = entry_fields(e, "XRANGE")?;
                let payload = field(&mut fields, "p").ok_or_else(|| bad_reply("XRANGE", e))?;
                pipe.cmd("XADD")
                    .arg(&queue)
                    .arg("*")
                    .arg("p")
                    .arg(payload)
                    .ignore();
                dead_ids.push(id.to_string());
            }
            pipe.cmd("XDEL").arg(&dead).arg(&dead_ids).ignore();
            store.query_pipe("replay dead letters", &pipe).await?;
            replayed += dead_ids.len() as u64;
        }
    }

    async fn stats(&self, space: &RecordSpace) -> Result<QueueStats> {
        let store = self.on(space).await?;
        store.ensure_group(space).await?;
        let queue = queue_key(space);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&queue);
        pipe.cmd("XPENDING").arg(&queue).arg(GROUP);
        pipe.cmd("XRANGE")
            .arg(&queue)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        pipe.cmd("XLEN").arg(dead_key(space));
        let reply = store.query_pipe("queue stats", &pipe).await?;
        let parts = items(&reply).ok_or_else(|| bad_reply("queue stats", &reply))?;
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let pending = parts
            .get(1)
            .and_then(items)
            .and_then(|p| p.first())
            .cloned();
        let oldest_ms = parts
            .get(2)
            .and_then(items)
            .and_then(|l| l.first())
            .and_then(|e| entry_fields(e, "XRANGE").ok())
            .map(|(p, _)| p.ms);
        Ok(QueueStats {
            length: int(parts.first()),
            pending: int(pending.as_ref()),
            oldest_ms,
            dead_letters: int(parts.get(3)),
        })
    }
}
