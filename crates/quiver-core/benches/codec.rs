//! Record codec: MessagePack vs JSON, encode and decode, for 50 float32 features and one
//! 384-dim float32 vector. Run: `cargo bench -p quiver-core --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use quiver_core::{Codec, Record, RecordCodec, Value, ValueType};

fn cases() -> Vec<(&'static str, Record, Vec<ValueType>)> {
    let floats = Record {
        event_ts: 1_763_000_000_000_000_000,
        created_ts: None,
        values: (0..50)
            .map(|i| Value::Float32(i as f32 * 0.37 + 0.001))
            .collect(),
    };
    let float_types = vec!["float32".parse().unwrap(); 50];
    let vector = Record {
        event_ts: 1_763_000_000_000_000_000,
        created_ts: None,
        values: vec![Value::Float32List(
            (0..384)
                .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
                .collect(),
        )],
    };
    let vector_types = vec!["list<float32>".parse().unwrap()];
    vec![
        ("50xf32", floats, float_types),
        ("384-dim", vector, vector_types),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_codec");
    for (name, record, types) in cases() {
        for (codec_name, codec) in [("msgpack", Codec::MessagePack), ("json", Codec::Json)] {
            // Compression off: this measures the codecs themselves (a 384-dim vector is over
            // the default 1 KiB threshold, and random floats do not compress).
            let c = RecordCodec {
                codec,
                compression_threshold: usize::MAX,
                zstd_level: 1,
            };
            let bytes = c.encode(&record, &types).unwrap();
            eprintln!("{name}/{codec_name}: {} bytes", bytes.len());
            group.bench_function(format!("encode/{name}/{codec_name}"), |b| {
                b.iter(|| c.encode(black_box(&record), &types).unwrap())
            });
            group.bench_function(format!("decode/{name}/{codec_name}"), |b| {
                b.iter(|| RecordCodec::decode(black_box(&bytes), &types).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
