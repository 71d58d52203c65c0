//! Inputs found by the AFL++ targets in `fuzz/afl` (see its README), kept as plain tests.

use quiver_core::record::HEADER_LEN;
use quiver_core::{Codec, Record, RecordCodec, ScalarType, Value, ValueType};

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn json() -> RecordCodec {
    RecordCodec {
        codec: Codec::Json,
        ..RecordCodec::default()
    }
}

/// `record_decoder` (schema `float32`): a MessagePack record holding `-f32::MAX` decodes, but
/// re-encoded with the JSON codec it no longer does: `-3.4028235e38 is outside float32's range`.
/// The JSON form is the shortest decimal for the f32 (`-340282350000000000000000000000000000000`),
/// which as an f64 is just beyond `f32::MAX as f64`, and the range check compares the f64.
#[test]
fn float32_max_survives_the_json_codec() {
    // AFL input: byte 0 picks the schema [float32]; then the record (header, fixarray(1), f32).
    let input = unhex("05 10 8000000000000000 8000000000000000 91 ca ff7fffff");
    let bytes = &input[1..];
    assert_eq!(bytes.len(), HEADER_LEN + 6);
    let types = [ValueType::Scalar(ScalarType::Float32)];
    let record = RecordCodec::decode(bytes, &types).expect("the MessagePack record decodes");
    assert_eq!(record.values, [Value::Float32(f32::MIN)]);
    let again = json().encode(&record, &types).expect("re-encodes as JSON");
    let back = RecordCodec::decode(&again, &types);
    assert_eq!(
        back.ok().as_ref(),
        Some(&record),
        "JSON round trip of -f32::MAX"
    );
}

/// The same for both signs, scalars and lists, at the codec and at `Value`'s JSON form (what the
/// HTTP API serves and accepts).
#[test]
fn float32_extremes_round_trip_through_json() {
    let types = [
        ValueType::Scalar(ScalarType::Float32),
        ValueType::Scalar(ScalarType::Float32),
        ValueType::List(ScalarType::Float32),
    ];
    let record = Record {
        event_ts: 0,
        created_ts: None,
        values: vec![
            Value::Float32(f32::MAX),
            Value::Float32(f32::MIN),
            Value::Float32List(vec![f32::MAX, f32::MIN, 1.0]),
        ],
    };
    let bytes = json().encode(&record, &types).unwrap();
    assert_eq!(
        RecordCodec::decode(&bytes, &types).ok().as_ref(),
        Some(&record)
    );
    for (v, ty) in record.values.iter().zip(types) {
        assert_eq!(Value::from_json(&v.to_json(), ty).as_ref(), Ok(v), "{v:?}");
    }
    // Values that do round to infinity as an f32 are still refused.
    let over = serde_json::json!(3.5e38);
    assert!(Value::from_json(&over, types[0]).is_err());
}
