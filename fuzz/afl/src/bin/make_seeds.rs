//! Writes the seed corpora `in/record_decoder/` and `in/entity_key/` (run from `fuzz/afl`):
//! small records encoded by quiver-core itself for the fixed schemas, a few hand-written
//! MessagePack forms the encoder never writes (32- and 64-bit timestamps, `f64` for a float32,
//! narrow integers), and key texts. Each seed is checked against its target before it is written.

use std::fs;
use std::path::Path;

use quiver_afl::{SCHEMA_EMPTY, SCHEMA_LISTS, SCHEMA_MIXED, SCHEMA_SCALARS, schema_single};
use quiver_core::{Codec, Record, RecordCodec, ScalarType, Value};
use rust_decimal::Decimal;

fn main() {
    let root = Path::new("in");
    let rec = root.join("record_decoder");
    let key = root.join("entity_key");
    fs::create_dir_all(&rec).expect("mkdir in/record_decoder");
    fs::create_dir_all(&key).expect("mkdir in/entity_key");

    let plain = |codec| RecordCodec {
        codec,
        compression_threshold: usize::MAX,
        zstd_level: 1,
    };
    let zstd = |codec| RecordCodec {
        codec,
        compression_threshold: 0,
        zstd_level: 1,
    };
    let dec = |s: &str| Decimal::from_str_exact(s).expect("a decimal");

    let scalars = Record {
        event_ts: 1_700_000_000_123_456_789,
        created_ts: Some(1_700_000_001_000_000_000),
        values: vec![
            Value::Int32(-7),
            Value::Int64(1 << 40),
            Value::Float32(0.1),
            Value::Float64(-2.5e-300),
            Value::Bool(true),
            Value::String("naïve:{x}".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::Timestamp(-1),
            Value::Decimal(dec("-12.50")),
        ],
    };
    let lists = Record {
        event_ts: -5_000_000_001,
        created_ts: None,
        values: vec![
            Value::Int32List(vec![i32::MIN, 0, 300]),
            Value::Int64List(vec![i64::MAX, -33]),
            Value::Float32List(vec![1.5, f32::NAN]),
            Value::Float64List(vec![f64::INFINITY, -0.0]),
            Value::BoolList(vec![false, true]),
            Value::StringList(vec![String::new(), "a".into()]),
            Value::BytesList(vec![vec![], vec![7]]),
            Value::TimestampList(vec![0, 1_000_000_001]),
            Value::DecimalList(vec![dec("0.000000000000000000000000001"), dec("1000")]),
        ],
    };
    let mixed = Record {
        event_ts: 0,
        created_ts: Some(0),
        values: vec![
            Value::Int64(42),
            Value::Float32List(vec![0.25; 16]),
            Value::String("ab".repeat(24)),
            Value::Timestamp(1_700_000_000_000_000_000),
            Value::DecimalList(vec![dec("3.14")]),
            Value::Null,
            Value::Float64List(vec![]),
            Value::Bytes(vec![9; 8]),
        ],
    };
    let empty = Record {
        event_ts: 1,
        created_ts: None,
        values: vec![],
    };

    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let schemas = quiver_afl::schemas();
    let mut add = |name: &str, pick: u8, codec: RecordCodec, record: &Record| {
        let types = &schemas[pick as usize];
        let mut bytes = vec![pick];
        bytes.extend(codec.encode(record, types).expect("a seed encodes"));
        seeds.push((name.to_string(), bytes));
    };
    add(
        "empty-msgpack",
        SCHEMA_EMPTY,
        plain(Codec::MessagePack),
        &empty,
    );
    add(
        "scalars-msgpack",
        SCHEMA_SCALARS,
        plain(Codec::MessagePack),
        &scalars,
    );
    add("scalars-json", SCHEMA_SCALARS, plain(Codec::Json), &scalars);
    add(
        "lists-msgpack",
        SCHEMA_LISTS,
        plain(Codec::MessagePack),
        &lists,
    );
    add("lists-json", SCHEMA_LISTS, plain(Codec::Json), &lists);
    add(
        "mixed-msgpack-zstd",
        SCHEMA_MIXED,
        zstd(Codec::MessagePack),
        &mixed,
    );
    add("mixed-json-zstd", SCHEMA_MIXED, zstd(Codec::Json), &mixed);
    let ts = Record {
        event_ts: 7,
        created_ts: Some(8),
        values: vec![Value::Timestamp(1_600_000_000_500_000_000)],
    };
    add(
        "timestamp-msgpack",
        schema_single(ScalarType::Timestamp),
        plain(Codec::MessagePack),
        &ts,
    );

    // MessagePack forms quiver-core reads but never writes.
    let header = {
        let mut h = plain(Codec::MessagePack)
            .encode(&empty, &[])
            .expect("a header");
        h.truncate(quiver_core::record::HEADER_LEN);
        h
    };
    let raw = |pick: u8, payload: &[u8]| {
        let mut b = vec![pick];
        b.extend(&header);
        b.extend(payload);
        b
    };
    let ts_single = schema_single(ScalarType::Timestamp);
    // timestamp 32: fixext4, type -1, u32 seconds
    seeds.push((
        "timestamp32".into(),
        raw(ts_single, &[0x91, 0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00]),
    ));
    // timestamp 64: fixext8, type -1, 30-bit nanos << 34 | 34-bit seconds
    seeds.push((
        "timestamp64".into(),
        raw(
            ts_single,
            &[
                0x91, 0xd7, 0xff, 0x00, 0x00, 0x00, 0x04, 0x65, 0x53, 0xf1, 0x00,
            ],
        ),
    ));
    // float32 field sent as f64; list<float32> as an array of numbers rather than bin
    seeds.push((
        "float32-as-f64".into(),
        raw(
            schema_single(ScalarType::Float32),
            &[0x91, 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
        ),
    ));
    seeds.push((
        "f32list-as-array".into(),
        raw(
            schema_single(ScalarType::Float32) + 9,
            &[0x91, 0x93, 0x01, 0xca, 0x3f, 0x80, 0x00, 0x00, 0xd0, 0x80],
        ),
    ));
    // int64 list of every integer marker
    seeds.push((
        "int-markers".into(),
        raw(
            schema_single(ScalarType::Int64) + 9,
            &[
                0x91, 0x9a, 0x05, 0xe0, 0xcc, 0xff, 0xcd, 0x01, 0x00, 0xce, 0x00, 0x01, 0x00, 0x00,
                0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x80, 0xd1, 0x80, 0x00,
                0xd2, 0x80, 0x00, 0x00, 0x00, 0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            ],
        ),
    ));

    for (name, bytes) in &seeds {
        let types = &schemas[bytes[0] as usize];
        if let Err(e) = RecordCodec::decode(&bytes[1..], types) {
            panic!("seed {name} does not decode: {e}");
        }
        quiver_afl::record_decoder(bytes);
        fs::write(rec.join(name), bytes).expect("write a seed");
    }

    let texts: &[(&str, &str)] = &[
        ("int", "42"),
        ("int-min", "-9223372036854775808"),
        ("int-over", "9223372036854775808"),
        ("float", "42.0"),
        ("plus", "+7"),
        ("json-string", "\"user:1 {tag}\""),
        ("json-key", "[42,\"a:b c\",-1]"),
        ("json-escapes", "[\"\\u00e9\\n%3A#\",\"\\ud83d\\ude00\"]"),
        ("lines", "a\n42\n\nb%20c"),
        (
            "long",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:::::::::::::::::::::::::::::::::::::",
        ),
        ("naive", "naïve*?[x]"),
        ("null", "null"),
    ];
    for (name, text) in texts {
        quiver_afl::entity_key(text.as_bytes());
        fs::write(key.join(name), text).expect("write a seed");
    }
    println!(
        "wrote {} record seeds and {} key seeds",
        seeds.len(),
        texts.len()
    );
}
