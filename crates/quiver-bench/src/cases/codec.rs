//! Record codec: MessagePack vs JSON, encode and decode, for 50 float32 features and a 384-dim
//! float32 vector, with compression off (the codecs themselves). A plain timing loop, the in-run
//! summary of the criterion bench `cargo bench -p quiver-core --bench codec`.

use std::hint::black_box;
use std::time::Instant;

use quiver::core::{Codec, Record, RecordCodec, Value, ValueType};

use crate::report::{CodecRow, VECTOR_PAYLOAD};

fn cases() -> anyhow::Result<Vec<(&'static str, Record, Vec<ValueType>)>> {
    let event_ts = 1_763_000_000_000_000_000;
    let floats = Record {
        event_ts,
        created_ts: None,
        values: (0..50)
            .map(|i| Value::Float32(i as f32 * 0.377_31 - 9.123_4))
            .collect(),
    };
    let vector = Record {
        event_ts,
        created_ts: None,
        values: vec![Value::Float32List(
            (0..384)
                .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
                .collect(),
        )],
    };
    let float32: ValueType = "float32".parse().map_err(anyhow::Error::msg)?;
    let list: ValueType = "list<float32>".parse().map_err(anyhow::Error::msg)?;
    Ok(vec![
        ("50 × float32", floats, vec![float32; 50]),
        (VECTOR_PAYLOAD, vector, vec![list]),
    ])
}

/// Mean ns per call of `f` over `iterations` calls (after a short warm-up).
fn time_ns(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn measure(iterations: u32) -> anyhow::Result<Vec<CodecRow>> {
    let mut rows = Vec::new();
    for (payload, record, types) in cases()? {
        for (codec_name, codec) in [("msgpack", Codec::MessagePack), ("json", Codec::Json)] {
            let writer = RecordCodec {
                codec,
                compression_threshold: usize::MAX,
                zstd_level: 1,
            };
            let bytes = writer.encode(&record, &types)?;
            anyhow::ensure!(
                RecordCodec::decode(&bytes, &types)? == record,
                "{payload}/{codec_name} does not round-trip (this is a bug in the codec)"
            );
            let encode_ns = time_ns(iterations, || {
                black_box(writer.encode(black_box(&record), &types).ok());
            });
            let decode_ns = time_ns(iterations, || {
                black_box(RecordCodec::decode(black_box(&bytes), &types).ok());
            });
            rows.push(CodecRow {
                payload,
                codec: codec_name,
                bytes: bytes.len(),
                encode_ns,
                decode_ns,
            });
        }
    }
    Ok(rows)
}

pub async fn run(quick: bool) -> anyhow::Result<Vec<CodecRow>> {
    let iterations = if quick { 20_000 } else { 200_000 };
    let rows = tokio::task::spawn_blocking(move || measure(iterations)).await??;
    for r in &rows {
        eprintln!(
            "  {} {}: {} B, encode {:.0} ns, decode {:.0} ns",
            r.payload, r.codec, r.bytes, r.encode_ns, r.decode_ns
        );
    }
    Ok(rows)
}
