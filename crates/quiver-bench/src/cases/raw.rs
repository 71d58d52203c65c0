//! The physical limit: `GET` (one key) and `MGET` (100 keys) of the very values Quiver stored,
//! with a raw `redis` client, one multiplexed connection per task, at the same concurrency as
//! the serving cases. Nothing is decoded beyond the RESP reply.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;

use super::{load_point, request_ids, view_keys};
use crate::cli::Args;
use crate::load::Worker;
use crate::report::{LoadRow, ReadPath, SHAPES};
use crate::setup::{RedisTarget, ServingSetup};

struct RawWorker {
    conn: MultiplexedConnection,
    /// Key lists, one per request; one key means `GET`.
    requests: Arc<[Vec<String>]>,
    next: usize,
}

impl Worker for RawWorker {
    async fn call(&mut self) -> anyhow::Result<()> {
        let keys = &self.requests[self.next % self.requests.len()];
        self.next += 1;
        if let [key] = keys.as_slice() {
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut self.conn)
                .await?;
            anyhow::ensure!(value.is_some(), "key `{key}` is missing");
        } else {
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut self.conn)
                .await?;
            anyhow::ensure!(
                values.iter().all(Option::is_some),
                "a key of the MGET is missing"
            );
        }
        Ok(())
    }
}

/// `GET`/`MGET` for every shape at every concurrency.
pub async fn run(
    redis: &RedisTarget,
    serving: &ServingSetup,
    args: &Args,
) -> anyhow::Result<Vec<LoadRow>> {
    let mut loads = Vec::new();
    for shape in SHAPES {
        let keys = view_keys(serving, shape);
        let requests: Arc<[Vec<String>]> = request_ids(shape)
            .into_iter()
            .map(|ids| ids.iter().map(|&i| keys[i as usize].clone()).collect())
            .collect();
        for &concurrency in &args.concurrency {
            let mut workers = Vec::with_capacity(concurrency);
            for i in 0..concurrency {
                workers.push(RawWorker {
                    conn: redis.connect().await?,
                    requests: requests.clone(),
                    next: i * 37,
                });
            }
            loads.push(load_point(ReadPath::Raw, shape, workers, args).await?);
        }
    }
    Ok(loads)
}
