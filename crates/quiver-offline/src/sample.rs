//! The quickstart's sample data: two zstd Parquet files a new project can build features from.
//!
//! - `users.parquet`: one row per profile snapshot, 1-3 per user, so reading the latest row per
//!   user matters. Columns: `user_id` int64, `age` int32 (18-89), `country` string (8 ISO codes),
//!   `signup_days` int32 (days since signup as of the snapshot), `embedding` FixedSizeList of 16
//!   float32 (unit length, drifting between snapshots), `updated_at` Timestamp(µs, UTC) within
//!   the 60 days before `now`.
//! - `transactions.parquet`: `transaction_id` int64 (1.., in time order), `user_id` int64,
//!   `amount` float64 (log-normal, > 0, whole cents), `merchant_category` string (10 categories),
//!   `event_time` Timestamp(µs, UTC) within the 90 days before `now`, sorted by `event_time`.
//!
//! The same seed and `now` give the same files (for one version of `rand`), so docs and tests
//! can quote numbers. Every timestamp is strictly before `now`, so reading up to `now` sees all.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{OfflineError, Result};

/// Users in the quickstart data.
pub const QUICKSTART_USERS: usize = 10_000;
/// Transactions in the quickstart data.
pub const QUICKSTART_TRANSACTIONS: usize = 300_000;
/// Length of the `embedding` vectors.
pub const EMBEDDING_DIM: i32 = 16;
/// Rows per written record batch (and at most per row group).
const BATCH_ROWS: usize = 64 * 1024;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
const COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA"];
/// Categories with relative weights, so per-category aggregates differ visibly.
const CATEGORIES: [(&str, u32); 10] = [
    ("grocery", 24),
    ("restaurants", 16),
    ("fuel", 10),
    ("online_retail", 14),
    ("electronics", 5),
    ("travel", 4),
    ("entertainment", 8),
    ("health", 6),
    ("apparel", 8),
    ("utilities", 5),
];

/// What [`write_sample`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSummary {
    pub users_path: PathBuf,
    pub transactions_path: PathBuf,
    /// Distinct users.
    pub users: usize,
    /// Rows of `users.parquet` (snapshots).
    pub user_rows: usize,
    /// Rows of `transactions.parquet`.
    pub transactions: usize,
}

/// Writes the quickstart's `users.parquet` and `transactions.parquet` into `data_dir` (created if
/// missing): [`QUICKSTART_USERS`] users and [`QUICKSTART_TRANSACTIONS`] transactions.
/// `now_ns` is nanoseconds since the epoch; all timestamps fall before it.
pub fn write_quickstart_data(data_dir: &Path, now_ns: i64, seed: u64) -> Result<SampleSummary> {
    write_sample(
        data_dir,
        now_ns,
        seed,
        QUICKSTART_USERS,
        QUICKSTART_TRANSACTIONS,
    )
}

/// [`write_quickstart_data`] with chosen sizes (`users` >= 1 when `transactions` > 0).
pub fn write_sample(
    data_dir: &Path,
    now_ns: i64,
    seed: u64,
    users: usize,
    transactions: usize,
) -> Result<SampleSummary> {
    std::fs::create_dir_all(data_dir).map_err(|e| OfflineError::Write {
        path: data_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    if users == 0 && transactions > 0 {
        return Err(OfflineError::Write {
            path: data_dir.join("transactions.parquet"),
            message: "transactions need at least one user".into(),
        });
    }
    let now_us = now_ns.div_euclid(1_000);
    let mut rng = StdRng::seed_from_u64(seed);

    let users_path = data_dir.join("users.parquet");
    let user_batch = user_rows(&mut rng, now_us, users)?;
    let user_rows = user_batch.num_rows();
    write_parquet(&users_path, &user_batch)?;

    let transactions_path = data_dir.join("transactions.parquet");
    let tx_batch = transaction_rows(&mut rng, now_us, users, transactions)?;
    write_parquet(&transactions_path, &tx_batch)?;

    Ok(SampleSummary {
        users_path,
        transactions_path,
        users,
        user_rows,
        transactions,
    })
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn embedding_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, false))
}

/// The schema of `users.parquet`.
pub fn users_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("age", DataType::Int32, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("signup_days", DataType::Int32, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(embedding_item(), EMBEDDING_DIM),
            false,
        ),
        Field::new("updated_at", utc_micros(), false),
    ]))
}

/// The schema of `transactions.parquet`.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("merchant_category", DataType::Utf8, false),
        Field::new("event_time", utc_micros(), false),
    ]))
}

/// A standard normal sample (Box-Muller; `rand_distr` is not worth a dependency for this).
fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn batch_error(e: impl std::fmt::Display) -> OfflineError {
    OfflineError::Write {
        path: PathBuf::from("<sample batch>"),
        message: format!("building a sample batch failed (this is a bug in Quiver): {e}"),
    }
}

fn user_rows(rng: &mut StdRng, now_us: i64, users: usize) -> Result<RecordBatch> {
    let dim = EMBEDDING_DIM as usize;
    let (mut ids, mut ages, mut countries, mut signup_days, mut embeddings, mut updated) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for user in 1..=users as i64 {
        let age = rng.random_range(18..90);
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let signup_us = now_us - rng.random_range(61 * MICROS_PER_DAY..5 * 365 * MICROS_PER_DAY);
        let mut base: Vec<f32> = (0..dim).map(|_| normal(rng) as f32).collect();
        normalize(&mut base);
        let snapshots = rng.random_range(1..=3);
        let mut times: Vec<i64> = (0..snapshots)
            .map(|_| now_us - rng.random_range(1..=60 * MICROS_PER_DAY))
            .collect();
        times.sort_unstable();
        for t in times {
            ids.push(user);
            ages.push(age);
            countries.push(country);
            signup_days.push(((t - signup_us) / MICROS_PER_DAY) as i32);
            // Each snapshot drifts a little from the user's base vector.
            let mut v: Vec<f32> = base.iter().map(|x| x + 0.1 * normal(rng) as f32).collect();
            normalize(&mut v);
            embeddings.extend(v);
            updated.push(t);
        }
    }
    let embedding = FixedSizeListArray::try_new(
        embedding_item(),
        EMBEDDING_DIM,
        Arc::new(Float32Array::from(embeddings)),
        None,
    )
    .map_err(batch_error)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from(ages)),
        Arc::new(StringArray::from(countries)),
        Arc::new(Int32Array::from(signup_days)),
        Arc::new(embedding),
        Arc::new(TimestampMicrosecondArray::from(updated).with_timezone("UTC")),
    ];
    RecordBatch::try_new(users_schema(), columns).map_err(batch_error)
}

fn transaction_rows(
    rng: &mut StdRng,
    now_us: i64,
    users: usize,
    transactions: usize,
) -> Result<RecordBatch> {
    let total_weight: u32 = CATEGORIES.iter().map(|(_, w)| w).sum();
    let mut times: Vec<i64> = (0..transactions)
        .map(|_| now_us - rng.random_range(1..=90 * MICROS_PER_DAY))
        .collect();
    times.sort_unstable();
    let mut user_ids = Vec::with_capacity(transactions);
    let mut amounts = Vec::with_capacity(transactions);
    let mut categories = Vec::with_capacity(transactions);
    for _ in 0..transactions {
        user_ids.push(rng.random_range(1..=users as i64));
        // Log-normal around e^3.2 ≈ $25 with a long tail, in whole cents, at least one cent.
        let amount = (3.2 + 0.9 * normal(rng)).exp();
        amounts.push(((amount * 100.0).round() / 100.0).max(0.01));
        let mut pick = rng.random_range(0..total_weight);
        let category = CATEGORIES
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map_or(CATEGORIES[0].0, |(name, _)| name);
        categories.push(category);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=transactions as i64)),
        Arc::new(Int64Array::from(user_ids)),
        Arc::new(Float64Array::from(amounts)),
        Arc::new(StringArray::from(categories)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
    ];
    RecordBatch::try_new(transactions_schema(), columns).map_err(batch_error)
}

/// Writes `batch` as zstd Parquet in slices of [`BATCH_ROWS`], via a temporary file renamed into
/// place so a reader never sees half a file.
fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| OfflineError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("parquet.tmp");
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| fail(&e))?,
        ))
        .set_max_row_group_row_count(Some(BATCH_ROWS * 4))
        .build();
    let file = File::create(&tmp).map_err(|e| fail(&e))?;
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| fail(&e))?;
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = BATCH_ROWS.min(batch.num_rows() - offset);
        writer
            .write(&batch.slice(offset, len))
            .map_err(|e| fail(&e))?;
        offset += len;
    }
    writer.close().map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_look_standard() {
        let mut rng = StdRng::seed_from_u64(7);
        let xs: Vec<f64> = (0..20_000).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn user_batches_have_one_to_three_snapshots_each() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = 1_800_000_000_000_000;
        let batch = user_rows(&mut rng, now, 200).unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let mut counts = std::collections::HashMap::new();
        for id in ids.values() {
            *counts.entry(*id).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 200);
        assert!(counts.values().all(|c| (1..=3).contains(c)));
        assert!(counts.values().any(|c| *c > 1), "some users need history");
    }
}
