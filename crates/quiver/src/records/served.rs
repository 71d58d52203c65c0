//! Served-feature logging: what `get_online_features` answered through a feature service with
//! `logging`, as records of the built-in `served_features` namespace (exported like any other).
//!
//! Serving never waits on the log: an answer is handed to a bounded buffer and a background
//! task writes the buffer in batches (up to [`BATCH`] records or every [`FLUSH_EVERY`], one
//! store call per batch, which is one `MULTI`/`EXEC` on Redis), each record zstd-compressed
//! (a 50-feature answer is ~5 KB of JSON: Redis appends a fraction of that to its AOF). A write that fails is retried
//! with backoff while new answers keep buffering; when the buffer is full (the store has been
//! down for a while), answers are still served and the dropped log records are counted
//! ([`ServedLog::dropped`], `quiver_served_log_dropped_total`). A crash loses at most what the
//! buffer held (its last few milliseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quiver_online::RecordStore;
use quiver_online::records::{PutRecord, RecordSpace};
use tokio::sync::{mpsc, oneshot};

use super::namespace::Envelope;

/// Records per store call.
pub const BATCH: usize = 1000;
/// Most time a record waits in the buffer before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// Records the buffer holds; beyond it, log records are dropped (and counted).
pub const CAPACITY: usize = 100_000;

/// A log record still to be built: serving hands over its data, the writer task builds the
/// JSON, so the request path pays a clone and a channel send.
pub type Pending = Box<dyn FnOnce() -> Envelope + Send>;

enum Msg {
    Log(Pending),
    Flush(oneshot::Sender<()>),
}

/// The buffer and its writer task.
pub struct ServedLog {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl ServedLog {
    /// Starts the writer on the current Tokio runtime.
    pub fn start(store: Arc<dyn RecordStore>, space: RecordSpace) -> ServedLog {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let written = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(store, space, rx, written.clone()));
        ServedLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            written,
        }
    }

    /// Hands a log record (built by the writer) to the writer; never waits.
    pub fn log(&self, build: Pending) {
        if self.tx.try_send(Msg::Log(build)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything logged before this call is written (or failed to be).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Log records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Log records written to the store.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

async fn writer(
    store: Arc<dyn RecordStore>,
    space: RecordSpace,
    mut rx: mpsc::Receiver<Msg>,
    written: Arc<AtomicU64>,
) {
    let mut batch: Vec<PutRecord> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open || !batch.is_empty() {
        if batch.is_empty() && open {
            match rx.recv().await {
                Some(msg) => take(msg, &mut batch, &mut waiting),
                None => open = false,
            }
        }
        // Gather what arrives within the flush interval, up to a batch.
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while open && batch.len() < BATCH && waiting.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => take(msg, &mut batch, &mut waiting),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let mut backoff = Duration::from_millis(50);
            loop {
                match store.put(&space, &batch).await {
                    Ok(_) => {
                        written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        batch.clear();
                        break;
                    }
                    // Nothing more to wait for: give up on this batch rather than hang.
                    Err(e) if !open => {
                        tracing::error!(error = %e, records = batch.len(), "served-feature log lost at shutdown");
                        batch.clear();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, records = batch.len(), "served-feature log write failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

fn take(msg: Msg, batch: &mut Vec<PutRecord>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Log(build) => {
            let e = build();
            batch.push(PutRecord {
                payload: e.to_compressed_bytes(),
                id: e.id,
                aliases: Vec::new(),
            })
        }
        Msg::Flush(done) => waiting.push(done),
    }
}
