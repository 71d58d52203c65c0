//! Point-in-time join: Quiver's as-of operator against DuckDB's `ASOF JOIN` on the same Parquet
//! files, in the same run.
//!
//! ```sh
//! pip install duckdb
//! cargo run --release -p quiver-offline --example join_vs_duckdb -- 1000000 10000000 1000000
//! cargo run --release -p quiver-offline --example join_vs_duckdb -- 5000000 5000000 1000000
//! ```
//! Arguments: entity rows, feature rows, distinct keys (defaults 1M, 10M, 1M). Both sides read
//! the Parquet files, join (latest feature row at or before each entity row, per key) and
//! materialize the result in memory; times are wall-clock, best of 3.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use quiver_offline::compute::{KeyInterner, asof_join, take_columns};

const SPAN_NS: i64 = 90 * 86_400 * 1_000_000_000;

/// A tiny deterministic generator (SplitMix64) so the data does not depend on a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn write(path: &Path, batch: &RecordBatch) {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    for start in (0..batch.num_rows()).step_by(1 << 20) {
        let len = (batch.num_rows() - start).min(1 << 20);
        w.write(&batch.slice(start, len)).unwrap();
    }
    w.close().unwrap();
}

fn generate(dir: &Path, left: usize, right: usize, keys: u64) {
    let mut rng = Rng(42);
    let mut gen_side = |rows: usize, features: bool| {
        let ids: Vec<i64> = (0..rows).map(|_| (rng.next() % keys) as i64).collect();
        let ts: Vec<i64> = (0..rows)
            .map(|_| (rng.next() % SPAN_NS as u64) as i64)
            .collect();
        let mut fields = vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", ts_type(), false),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
        ];
        if features {
            for f in ["f1", "f2", "f3"] {
                fields.push(Field::new(f, DataType::Float64, true));
                cols.push(Arc::new(Float64Array::from(
                    (0..rows)
                        .map(|_| (rng.next() % 10_000) as f64 / 100.0)
                        .collect::<Vec<_>>(),
                )));
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    let entities = gen_side(left, false);
    write(&dir.join("entities.parquet"), &entities);
    let features = gen_side(right, true);
    write(&dir.join("features.parquet"), &features);
}

fn read(path: &Path) -> RecordBatch {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).unwrap(),
    )
    .unwrap()
    .with_batch_size(1 << 16)
    .build()
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn quiver_join(dir: &Path) -> (f64, usize) {
    let start = Instant::now();
    let (entities, features) = std::thread::scope(|s| {
        let e = s.spawn(|| read(&dir.join("entities.parquet")));
        let f = read(&dir.join("features.parquet"));
        (e.join().unwrap(), f)
    });
    let read = start.elapsed().as_secs_f64();
    let mut interner = KeyInterner::new();
    let right_keys = interner.intern(&[features.column(0).clone()]).unwrap();
    let left_keys = interner.intern(&[entities.column(0).clone()]).unwrap();
    let interned = start.elapsed().as_secs_f64();
    let times = |b: &RecordBatch| {
        b.column(1)
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec()
    };
    let matched = asof_join(
        &left_keys,
        &times(&entities),
        &right_keys,
        &times(&features),
        None,
        None,
    )
    .unwrap();
    let joined = start.elapsed().as_secs_f64();
    let out = take_columns(&features.columns()[2..], &matched).unwrap();
    eprintln!(
        "quiver phases: read parquet {read:.3}s, intern keys {:.3}s, as-of join {:.3}s, take {:.3}s",
        interned - read,
        joined - interned,
        start.elapsed().as_secs_f64() - joined
    );
    let found = matched.iter().filter(|m| m.is_some()).count();
    assert_eq!(out[0].len(), entities.num_rows());
    (start.elapsed().as_secs_f64(), found)
}

fn duckdb_join(dir: &Path) -> Option<(f64, usize)> {
    let script = format!(
        r#"
import duckdb, time
con = duckdb.connect()
t = time.perf_counter()
con.execute("""CREATE TEMP TABLE out AS SELECT e.user_id, e.event_timestamp, f.f1, f.f2, f.f3
  FROM read_parquet('{dir}/entities.parquet') e
  ASOF LEFT JOIN read_parquet('{dir}/features.parquet') f
  ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp""")
elapsed = time.perf_counter() - t
found = con.execute("SELECT count(f1) FROM out").fetchone()[0]
print(elapsed, found)
"#,
        dir = dir.display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let left = args.first().copied().unwrap_or(1_000_000);
    let right = args.get(1).copied().unwrap_or(10_000_000);
    let keys = args.get(2).copied().unwrap_or(1_000_000) as u64;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    generate(dir.path(), left, right, keys);
    eprintln!(
        "generated {left} x {right} rows ({keys} keys) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let best = |f: &dyn Fn() -> Option<(f64, usize)>| {
        (0..3)
            .filter_map(|_| f())
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let q = best(&|| Some(quiver_join(dir.path()))).unwrap();
    let d = best(&|| duckdb_join(dir.path()));
    println!(
        "| case | Quiver (s) | DuckDB (s) | DuckDB / Quiver | matched rows (Quiver / DuckDB) |"
    );
    println!("|---|---|---|---|---|");
    match d {
        Some(d) => println!(
            "| {left} x {right}, {keys} keys | {:.3} | {:.3} | {:.2} | {} / {} |",
            q.0,
            d.0,
            d.0 / q.0,
            q.1,
            d.1
        ),
        None => println!(
            "| {left} x {right}, {keys} keys | {:.3} | (duckdb not installed: pip install duckdb) | - | {} / - |",
            q.0, q.1
        ),
    }
}
