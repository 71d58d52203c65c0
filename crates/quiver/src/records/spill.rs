//! The spill file: records accepted while the record store is unavailable, kept in a local
//! append-only file and replayed in order when it is back (`records.spill: {path: ...}`).
//!
//! One line per accepted call: `{"namespace": ..., "records": [{"id", "payload", "aliases"}]}`,
//! appended and fsynced before the caller is answered, so a spilled record is as durable as the
//! local disk. While the file holds anything, new records are appended behind it (never
//! written around it), so a namespace's queue receives records in the order they were
//! accepted (while the file is empty, puts go to the store concurrently without a lock; only
//! when it holds records do they pass through it one at a time). Replay puts each line's records into the store, in order, then rewrites the file
//! without the lines that made it (atomically: a temporary file renamed over it); a crash in
//! between replays those lines again, which the sink absorbs (PostgreSQL upserts by id;
//! Parquet receives the duplicate entry — documented).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use quiver_online::RecordStore;
use quiver_online::records::{PutRecord, RecordSpace};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize)]
struct Line {
    namespace: String,
    records: Vec<SpilledRecord>,
}

#[derive(Serialize, Deserialize)]
struct SpilledRecord {
    id: String,
    /// The stored envelope (JSON text).
    payload: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
}

/// The spill file of this process.
pub struct Spill {
    path: PathBuf,
    /// Held while appending or replaying; `true` when the file may hold lines.
    state: tokio::sync::Mutex<bool>,
    /// A copy of the state readable without the lock: while the file is empty, puts go
    /// straight to the store concurrently and take the lock only when the store fails.
    pending: std::sync::atomic::AtomicBool,
}

impl Spill {
    pub fn new(path: PathBuf) -> Spill {
        let pending = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        Spill {
            path,
            state: tokio::sync::Mutex::new(pending),
            pending: std::sync::atomic::AtomicBool::new(pending),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(&self.path, e)
    }

    /// Appends one call's records and fsyncs.
    async fn append(&self, namespace: &str, records: &[PutRecord]) -> Result<()> {
        let line = Line {
            namespace: namespace.to_string(),
            records: records
                .iter()
                .map(|r| SpilledRecord {
                    id: r.id.clone(),
                    payload: String::from_utf8_lossy(&r.payload).into_owned(),
                    aliases: r.aliases.clone(),
                })
                .collect(),
        };
        let mut text = serde_json::to_string(&line)
            .map_err(|e| Error::Internal(format!("spill line: {e}")))?;
        text.push('\n');
        let path = self.path.clone();
        blocking(&self.path, move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })
        .await
    }

    /// Puts `records` into the store, or, if the store is unavailable or the file already holds
    /// records, appends them to the file. Returns whether they were spilled.
    pub async fn put_or_spill(
        &self,
        store: &dyn RecordStore,
        namespaces: &(dyn Fn(&str) -> Option<RecordSpace> + Send + Sync),
        space: &RecordSpace,
        records: &[PutRecord],
    ) -> Result<Option<Vec<quiver_core::QueuePosition>>> {
        use std::sync::atomic::Ordering;
        // The common case, the file empty: no lock (puts in flight when an outage starts are
        // concurrent with the first spilled ones, so either order is theirs).
        let mut tried = false;
        if !self.pending.load(Ordering::Acquire) {
            match store.put(space, records).await {
                Ok(positions) => return Ok(Some(positions)),
                Err(e) => {
                    let e = Error::from(e);
                    if e.kind() != crate::ErrorKind::Unavailable {
                        return Err(e);
                    }
                    tried = true;
                }
            }
        }
        let mut pending = self.state.lock().await;
        if *pending {
            *pending = self.replay_locked(store, namespaces).await?;
            self.pending.store(*pending, Ordering::Release);
        }
        if !*pending && !tried {
            match store.put(space, records).await {
                Ok(positions) => return Ok(Some(positions)),
                Err(e) => {
                    let e = Error::from(e);
                    if e.kind() != crate::ErrorKind::Unavailable {
                        return Err(e);
                    }
                    tracing::warn!(namespace = %space.name, records = records.len(), path = %self.path.display(), error = %e, "record store unavailable; spilling to the local file");
                }
            }
        }
        if tried {
            tracing::warn!(namespace = %space.name, records = records.len(), path = %self.path.display(), "record store unavailable; spilling to the local file");
        }
        self.append(&space.name, records).await?;
        *pending = true;
        self.pending.store(true, Ordering::Release);
        Ok(None)
    }

    /// Replays the file into the store; returns how many records were replayed and whether
    /// lines remain.
    pub async fn replay(
        &self,
        store: &dyn RecordStore,
        namespaces: &(dyn Fn(&str) -> Option<RecordSpace> + Send + Sync),
    ) -> Result<bool> {
        let mut pending = self.state.lock().await;
        if *pending {
            *pending = self.replay_locked(store, namespaces).await?;
            self.pending
                .store(*pending, std::sync::atomic::Ordering::Release);
        }
        Ok(*pending)
    }

    /// Replays with the lock held; returns whether lines remain (the store failed again).
    async fn replay_locked(
        &self,
        store: &dyn RecordStore,
        namespaces: &(dyn Fn(&str) -> Option<RecordSpace> + Send + Sync),
    ) -> Result<bool> {
        let lines = match std::fs::File::open(&self.path) {
            Ok(f) => std::io::BufReader::new(f)
                .lines()
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| self.io(e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io(e)),
        };
        let mut done = 0;
        for (i, text) in lines.iter().enumerate() {
            if text.trim().is_empty() {
                done = i + 1;
                continue;
            }
            let line: Line = serde_json::from_str(text).map_err(|e| {
                Error::Internal(format!(
                    "spill file `{}` line {}: {e}; move the file aside to continue",
                    self.path.display(),
                    i + 1
                ))
            })?;
            let Some(space) = namespaces(&line.namespace) else {
                return Err(Error::Config(format!(
                    "spill file `{}` line {} holds records of namespace `{}`, which is no longer declared; declare it again to replay them",
                    self.path.display(),
                    i + 1,
                    line.namespace
                )));
            };
            let records: Vec<PutRecord> = line
                .records
                .into_iter()
                .map(|r| PutRecord {
                    id: r.id,
                    payload: r.payload.into_bytes(),
                    aliases: r.aliases,
                })
                .collect();
            if let Err(e) = store.put(&space, &records).await {
                tracing::warn!(error = %e, "replaying the spill file stopped; will retry");
                break;
            }
            done = i + 1;
        }
        if done == 0 {
            return Ok(!lines.is_empty());
        }
        let rest = &lines[done..];
        let (path, rest_text) = (self.path.clone(), rest.to_vec());
        blocking(&self.path, move || {
            let tmp = path.with_extension("spill-tmp");
            let mut f = std::fs::File::create(&tmp)?;
            for l in &rest_text {
                writeln!(f, "{l}")?;
            }
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await?;
        tracing::info!(
            replayed_lines = done,
            remaining = rest.len(),
            "spill file replayed"
        );
        Ok(!rest.is_empty())
    }
}

/// Runs file I/O on the blocking pool; errors name the spill file.
async fn blocking(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<()> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::io(path, e)),
        Err(e) => Err(Error::Internal(format!("spill file task failed: {e}"))),
    }
}
