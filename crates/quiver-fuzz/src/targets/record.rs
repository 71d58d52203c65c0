//! The online record decoder ([`RecordCodec::decode`], [`peek_timestamps`], [`may_replace`]).
//!
//! Most inputs are a well-typed record encoded with a random codec, compression and threshold:
//! it must decode to itself. The bytes are then mutated (or replaced by garbage, or decoded
//! against another schema): decoding must return `Ok` or `Err`, and whatever decodes must encode
//! again and decode to the same values.

use arbitrary::{Result, Unstructured};
use quiver_core::record::{may_replace, peek_timestamps};
use quiver_core::{Codec, Record, RecordCodec, ScalarType, Value, ValueType};
use rust_decimal::Decimal;

use crate::input::{edge_i64, mutate, odd_string, one_in};

const SCALARS: [ScalarType; 9] = [
    ScalarType::Int32,
    ScalarType::Int64,
    ScalarType::Float32,
    ScalarType::Float64,
    ScalarType::Bool,
    ScalarType::String,
    ScalarType::Bytes,
    ScalarType::Timestamp,
    ScalarType::Decimal,
];

/// Fuzz target: see the module docs.
pub fn record_decoder(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let types = value_types(u)?;
    if one_in(u, 8)? {
        // Garbage after a valid-looking header byte.
        let mut bytes: Vec<u8> = u.arbitrary()?;
        if let Some(b) = bytes.first_mut() {
            *b = *u.choose(&[0x10, 0x11, 0x14, 0x15, 0x18, 0x12, *b])?;
        }
        check_decode(&bytes, &types);
        return Ok(());
    }
    let record = Record {
        event_ts: edge_i64(u)?,
        created_ts: if u.arbitrary()? {
            Some(edge_i64(u)?)
        } else {
            None
        },
        values: types.iter().map(|t| value(u, *t)).collect::<Result<_>>()?,
    };
    let codec = RecordCodec {
        codec: if u.arbitrary()? {
            Codec::MessagePack
        } else {
            Codec::Json
        },
        compression_threshold: *u.choose(&[0, 16, 1024, usize::MAX])?,
        zstd_level: u.int_in_range(-3..=3)?,
    };
    let bytes = codec
        .encode(&record, &types)
        .unwrap_or_else(|e| panic!("a well-typed record does not encode: {e}"));
    let back = RecordCodec::decode(&bytes, &types)
        .unwrap_or_else(|e| panic!("an encoded record does not decode: {e}"));
    let mut expected = record.clone();
    if expected.created_ts == Some(i64::MIN) {
        // i64::MIN is the header's "no created timestamp".
        expected.created_ts = None;
    }
    assert!(same(&back, &expected), "round trip: {record:?} -> {back:?}");
    crate::stats::count("record_decoder", "round trip");

    let mut mutated = bytes;
    mutate(u, &mut mutated)?;
    let schema = if one_in(u, 4)? {
        value_types(u)?
    } else {
        types
    };
    check_decode(&mutated, &schema);
    Ok(())
}

/// Decoding returns (it does not panic); what decodes re-encodes to the same values.
fn check_decode(bytes: &[u8], types: &[ValueType]) {
    let _ = peek_timestamps(bytes);
    let _ = may_replace(bytes, bytes);
    let decoded = RecordCodec::decode(bytes, types);
    crate::stats::count(
        "record_decoder",
        if decoded.is_ok() {
            "mutated: decodes"
        } else {
            "mutated: rejected"
        },
    );
    if let Ok(record) = decoded {
        let again = RecordCodec::default()
            .encode(&record, types)
            .unwrap_or_else(|e| panic!("a decoded record does not re-encode: {e}: {record:?}"));
        let back = RecordCodec::decode(&again, types)
            .unwrap_or_else(|e| panic!("a re-encoded record does not decode: {e}"));
        assert!(same(&back, &record), "re-encode: {record:?} -> {back:?}");
    }
}

/// Equality that counts every NaN as equal (Debug prints them all as `NaN`) and tells -0.0 apart.
fn same(a: &Record, b: &Record) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn value_types(u: &mut Unstructured<'_>) -> Result<Vec<ValueType>> {
    let n = u.int_in_range(0usize..=6)?;
    (0..n)
        .map(|_| {
            let s = *u.choose(&SCALARS)?;
            Ok(if one_in(u, 3)? {
                ValueType::List(s)
            } else {
                ValueType::Scalar(s)
            })
        })
        .collect()
}

fn value(u: &mut Unstructured<'_>, ty: ValueType) -> Result<Value> {
    if one_in(u, 8)? {
        return Ok(Value::Null);
    }
    match ty {
        ValueType::Scalar(s) => scalar(u, s),
        ValueType::List(s) => {
            let n = if one_in(u, 16)? {
                u.int_in_range(0usize..=600)?
            } else {
                u.int_in_range(0usize..=5)?
            };
            let items = (0..n).map(|_| scalar(u, s)).collect::<Result<Vec<_>>>()?;
            Ok(Value::list_from_scalars(s, items))
        }
    }
}

fn scalar(u: &mut Unstructured<'_>, s: ScalarType) -> Result<Value> {
    Ok(match s {
        ScalarType::Int32 => Value::Int32(u.arbitrary()?),
        ScalarType::Int64 => Value::Int64(edge_i64(u)?),
        ScalarType::Float32 => Value::Float32(f32::from_bits(u.arbitrary()?)),
        ScalarType::Float64 => Value::Float64(f64::from_bits(u.arbitrary()?)),
        ScalarType::Bool => Value::Bool(u.arbitrary()?),
        ScalarType::String => Value::String(odd_string(u)?),
        ScalarType::Bytes => Value::Bytes(u.arbitrary()?),
        ScalarType::Timestamp => Value::Timestamp(edge_i64(u)?),
        ScalarType::Decimal => {
            let mantissa: i128 = u.arbitrary::<i128>()? >> u.int_in_range(32u32..=127)?;
            let scale = u.int_in_range(0u32..=28)?;
            Value::Decimal(Decimal::try_from_i128_with_scale(mantissa, scale).unwrap_or_default())
        }
    })
}
