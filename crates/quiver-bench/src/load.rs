//! A closed-loop load generator: `N` tasks, each with its own client, call back to back for a
//! warm-up and then a fixed measured duration; latencies go into one HdrHistogram per task,
//! merged at the end.
//!
//! Closed loop means a slow response delays the next request of that task, so the latencies are
//! those of a saturated system at concurrency `N`, not of a fixed arrival rate (no coordinated
//! omission correction: the figures answer "how fast at N in flight", which is what the targets
//! ask).

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms track (longer ones saturate at this value).
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// One client of a load run: `call` sends one request and checks its answer.
pub trait Worker: Send + 'static {
    fn call(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What a load run measured.
pub struct LoadResult {
    /// Successful requests started inside the measured window.
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Latencies of the successful requests, ns.
    pub histogram: Histogram<u64>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("valid histogram bounds")
}

/// Runs `workers` concurrently: each first makes one checked call (a failure aborts the run, so
/// a broken setup is not reported as a fast one), then calls until `warmup` has passed
/// (unrecorded) and then for `duration` (recorded).
pub async fn run<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let mut checked = Vec::with_capacity(workers.len());
    for mut w in workers {
        w.call().await?;
        checked.push(w);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let tasks: Vec<_> = checked
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut histogram = new_histogram();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = w.call().await;
                    if t0 < measure_from {
                        continue;
                    }
                    match result {
                        Ok(()) => {
                            let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            histogram.saturating_record(ns.max(1));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (histogram, errors, first_error)
            })
        })
        .collect();
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        first_error: None,
        seconds: duration.as_secs_f64(),
        histogram: new_histogram(),
    };
    for task in tasks {
        let (histogram, errors, first_error) = task.await?;
        result.histogram.add(&histogram)?;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
    }
    result.requests = result.histogram.len();
    Ok(result)
}

/// Deterministic pseudo-random entity ids in `0..entities` (SplitMix64), so every run asks for
/// the same keys and consecutive requests do not hit the same ones.
pub fn entity_ids(seed: u64, count: usize, entities: usize) -> Vec<i64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z % entities as u64) as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_are_deterministic_and_in_range() {
        let a = entity_ids(7, 1000, 10_000);
        assert_eq!(a, entity_ids(7, 1000, 10_000));
        assert!(a.iter().all(|&i| (0..10_000).contains(&i)));
        assert_ne!(a, entity_ids(8, 1000, 10_000));
    }
}
