//! Record export throughput: commits of record batches into each sink, as the exporter makes
//! them.
//!
//! ```text
//! cargo run --release -p quiver-offline --example record_export -- [RECORDS] [BATCH] [ROUNDS]
//! ```
//! (defaults: 100000 records in batches of 10000, 3 rounds per sink). Each round commits the
//! records into a fresh namespace, one `commit` per batch with an advancing position, and
//! prints records per second over the commits alone (building the batches is the exporter's
//! cost, not the sink's). Records are ~200 bytes: an id, two times, three declared fields and a
//! JSON payload of ~150 bytes.
//!
//! Parquet writes under a temporary directory on the working directory's disk (fsync is real);
//! PostgreSQL is a local throwaway server from `quiver-test-utils` (which runs with
//! `fsync=off`: commits are not flushed to disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::TimestampNanosecondArray;
use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use quiver_core::{QueuePosition, ScalarType, ValueType};
use quiver_offline::records::{RecordSink, RecordTable};
use quiver_offline::store::{ParquetOfflineStore, PostgresConfig, PostgresOfflineStore};
use quiver_test_utils::PostgresServer;

/// 2026-11-03T00:00:00Z.
const D0: i64 = 20_760 * 86_400 * 1_000_000_000;

fn table(namespace: &str) -> RecordTable {
    RecordTable::new(
        "bench",
        namespace,
        "tx_id",
        &[
            ("amount".to_string(), ValueType::Scalar(ScalarType::Float64)),
            (
                "merchant".to_string(),
                ValueType::Scalar(ScalarType::String),
            ),
            ("items".to_string(), ValueType::Scalar(ScalarType::Int32)),
        ],
    )
}

/// Records `start..start + n`: ~0.1 s apart in event time, accepted 5 ms after.
fn batch(table: &RecordTable, start: usize, n: usize) -> RecordBatch {
    let range = start..start + n;
    let ids: Vec<String> = range.clone().map(|i| format!("tx-{i:010}")).collect();
    let events: Vec<i64> = range.clone().map(|i| D0 + i as i64 * 100_000_000).collect();
    let merchants: Vec<String> = range
        .clone()
        .map(|i| format!("merchant-{}", i % 997))
        .collect();
    let payloads: Vec<String> = range
        .clone()
        .map(|i| {
            format!(
                "{{\"tx_id\":\"tx-{i:010}\",\"user_id\":{},\"amount\":{}.{:02},\"currency\":\"EUR\",\
                 \"merchant\":\"merchant-{}\",\"items\":{},\"channel\":\"web\",\"country\":\"DE\"}}",
                i % 100_003,
                i % 5000,
                i % 100,
                i % 997,
                i % 7 + 1
            )
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(TimestampNanosecondArray::from(events.clone()).with_timezone("UTC")),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(events.iter().map(|t| t + 5_000_000))
                .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(
            range
                .clone()
                .map(|i| (i % 5000) as f64 + (i % 100) as f64 / 100.0),
        )),
        Arc::new(StringArray::from(merchants)),
        Arc::new(Int32Array::from_iter_values(
            range.map(|i| (i % 7 + 1) as i32),
        )),
        Arc::new(StringArray::from(payloads)),
    ];
    RecordBatch::try_new(table.schema.clone(), columns).expect("valid batch")
}

/// Commits every batch into a fresh namespace; returns the time spent in `commit`.
async fn round(sink: &dyn RecordSink, namespace: &str, batches: &[RecordBatch]) -> Duration {
    let table = table(namespace);
    let mut spent = Duration::ZERO;
    for (i, b) in batches.iter().enumerate() {
        let through = QueuePosition::new(1_733_356_800_000, (i as u64 + 1) * b.num_rows() as u64);
        let started = Instant::now();
        let written = sink
            .commit(&table, std::slice::from_ref(b), through)
            .await
            .unwrap_or_else(|e| panic!("commit: {e}"));
        spent += started.elapsed();
        assert_eq!(written, b.num_rows() as u64);
    }
    let stored: usize = sink
        .read_all(&table)
        .await
        .unwrap_or_else(|e| panic!("read_all: {e}"))
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(
        stored,
        batches.iter().map(RecordBatch::num_rows).sum::<usize>()
    );
    spent
}

async fn measure(sink: &dyn RecordSink, batches: &[RecordBatch], rounds: usize) {
    let records: usize = batches.iter().map(RecordBatch::num_rows).sum();
    for r in 0..rounds {
        let spent = round(sink, &format!("round{r}"), batches).await;
        println!(
            "{:<8} round {r}: {records} records in {} commits: {:>7.1} ms, {:>9.0} records/s",
            sink.kind(),
            batches.len(),
            spent.as_secs_f64() * 1e3,
            records as f64 / spent.as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments: RECORDS BATCH ROUNDS"))
        .collect();
    let records = args.first().copied().unwrap_or(100_000);
    let batch_size = args.get(1).copied().unwrap_or(10_000).max(1);
    let rounds = args.get(2).copied().unwrap_or(3);

    let layout = table("layout");
    let batches: Vec<RecordBatch> = (0..records)
        .step_by(batch_size)
        .map(|start| batch(&layout, start, batch_size.min(records - start)))
        .collect();
    let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    println!(
        "{records} records, batches of {batch_size}, ~{} bytes per record in Arrow",
        bytes / records.max(1)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir_in(".").expect("temporary directory");
        let parquet = ParquetOfflineStore::new(dir.path().join("offline"));
        measure(&parquet, &batches, rounds).await;

        let server = PostgresServer::start();
        let postgres = PostgresOfflineStore::connect(&PostgresConfig::new(server.url()))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        measure(&postgres, &batches, rounds).await;
    });
}
