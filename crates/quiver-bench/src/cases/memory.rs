//! Redis memory per entity for 50 float32 features, next to the 200 bytes of raw float data:
//! `MEMORY USAGE` and `STRLEN` on sampled keys of `f50`, and the `used_memory` growth measured
//! while the set-up wrote them.

use crate::report::MemoryRow;
use crate::setup::{RedisTarget, SERVE_ENTITIES, ServingSetup};

/// Keys sampled for `MEMORY USAGE` / `STRLEN`.
const SAMPLES: usize = 200;

pub async fn run(redis: &RedisTarget, serving: &ServingSetup) -> anyhow::Result<MemoryRow> {
    let mut conn = redis.connect().await?;
    let step = (serving.f50_keys.len() / SAMPLES).max(1);
    let sample: Vec<&String> = serving
        .f50_keys
        .iter()
        .step_by(step)
        .take(SAMPLES)
        .collect();
    let (mut usage, mut value, mut key) = (0u64, 0u64, 0u64);
    for k in &sample {
        // SAMPLES 0: count every nested element exactly (a string has none; it is cheap).
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k.as_str())
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await?;
        usage += bytes.ok_or_else(|| anyhow::anyhow!("key `{k}` is missing"))?;
        let len: u64 = redis::cmd("STRLEN")
            .arg(k.as_str())
            .query_async(&mut conn)
            .await?;
        value += len;
        key += k.len() as u64;
    }
    let n = sample.len().max(1) as f64;
    Ok(MemoryRow {
        raw_float_bytes: 50 * 4,
        value_bytes: value as f64 / n,
        key_bytes: key as f64 / n,
        memory_usage: usage as f64 / n,
        used_memory_per_entity: serving.f50_used_memory_delta as f64 / SERVE_ENTITIES as f64,
        entities: SERVE_ENTITIES,
    })
}
