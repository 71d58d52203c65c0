//! AFL++ targets over quiver-core's byte-level decoders. The binaries in `src/bin` are
//! `afl::fuzz!` wrappers around [`record_decoder`] and [`entity_key`]; the functions live here so
//! a crashing input can also be replayed by anything that links this crate.
//!
//! A panic (a failed assertion included) is a finding: AFL sees the process abort.

use quiver_core::entity_key::MAX_READABLE_SUFFIX;
use quiver_core::record::{HEADER_LEN, may_replace, peek_timestamps};
use quiver_core::{Codec, EntityKey, KeyValue, Record, RecordCodec, ScalarType, ValueType};

// ---------------------------------------------------------------------------------------------
// Record decoder
// ---------------------------------------------------------------------------------------------

const S: [ScalarType; 9] = ScalarType::ALL;

/// The fixed schemas the first input byte picks from (`byte % len`): empty, every scalar, every
/// list, each of the 18 types alone, and a mixed one.
pub fn schemas() -> Vec<Vec<ValueType>> {
    let mut out = vec![
        vec![],
        S.iter().map(|s| ValueType::Scalar(*s)).collect(),
        S.iter().map(|s| ValueType::List(*s)).collect(),
    ];
    for s in S {
        out.push(vec![ValueType::Scalar(s)]);
    }
    for s in S {
        out.push(vec![ValueType::List(s)]);
    }
    out.push(vec![
        ValueType::Scalar(ScalarType::Int64),
        ValueType::List(ScalarType::Float32),
        ValueType::Scalar(ScalarType::String),
        ValueType::Scalar(ScalarType::Timestamp),
        ValueType::List(ScalarType::Decimal),
        ValueType::Scalar(ScalarType::Bool),
        ValueType::List(ScalarType::Float64),
        ValueType::Scalar(ScalarType::Bytes),
    ]);
    out
}

/// Index of the empty, all-scalars, all-lists and mixed schemas in [`schemas`].
pub const SCHEMA_EMPTY: u8 = 0;
pub const SCHEMA_SCALARS: u8 = 1;
pub const SCHEMA_LISTS: u8 = 2;
/// The schema of the single scalar `s` (`ScalarType::ALL` order); add 9 for `list<s>`.
pub fn schema_single(s: ScalarType) -> u8 {
    3 + S.iter().position(|x| *x == s).expect("a scalar type") as u8
}
pub const SCHEMA_MIXED: u8 = 21;

/// Every writer setting: both codecs, compressed (threshold 0, kept only when smaller) or not.
pub fn writers() -> [RecordCodec; 4] {
    let w = |codec, compression_threshold| RecordCodec {
        codec,
        compression_threshold,
        zstd_level: 1,
    };
    [
        w(Codec::MessagePack, usize::MAX),
        w(Codec::MessagePack, 0),
        w(Codec::Json, usize::MAX),
        w(Codec::Json, 0),
    ]
}

/// Byte 0 picks a schema; the rest is an encoded record. Decoding must return; whatever decodes
/// must agree with the header and re-encode (every codec, compressed or not) to a record that
/// decodes to the same values.
pub fn record_decoder(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    static SCHEMAS: std::sync::OnceLock<Vec<Vec<ValueType>>> = std::sync::OnceLock::new();
    let schemas = SCHEMAS.get_or_init(schemas);
    let types = &schemas[pick as usize % schemas.len()];

    // The header: timestamps readable iff the header is there; "newer wins" on the raw bytes
    // agrees with (event, created) order.
    let peeked = peek_timestamps(bytes);
    assert_eq!(
        peeked.is_ok(),
        bytes.len() >= HEADER_LEN,
        "peek_timestamps on {} bytes: {peeked:?}",
        bytes.len()
    );
    assert!(may_replace(bytes, bytes), "a record may replace itself");
    if let Ok((event, created)) = peeked {
        let mine = (event, created.unwrap_or(i64::MIN));
        for (e, c) in [
            (0, None),
            (i64::MIN, None),
            (i64::MAX, Some(i64::MAX)),
            (-1, Some(0)),
            (event, Some(0)),
            (event, created),
        ] {
            let other = Record {
                event_ts: e,
                created_ts: c,
                values: vec![],
            };
            let other_bytes = RecordCodec::default()
                .encode(&other, &[])
                .expect("an empty record encodes");
            let theirs = other.order_key();
            assert_eq!(
                may_replace(bytes, &other_bytes),
                mine >= theirs,
                "may_replace({mine:?} over {theirs:?})"
            );
            assert_eq!(
                may_replace(&other_bytes, bytes),
                theirs >= mine,
                "may_replace({theirs:?} over {mine:?})"
            );
        }
    } else {
        assert!(may_replace(bytes, b"0123456789abcdefgh"));
    }

    let Ok(record) = RecordCodec::decode(bytes, types) else {
        return;
    };
    assert_eq!(
        peeked.as_ref().ok(),
        Some(&(record.event_ts, record.created_ts)),
        "decode and peek_timestamps disagree"
    );
    assert_eq!(record.values.len(), types.len(), "arity");
    for (v, ty) in record.values.iter().zip(types) {
        if let Some(actual) = v.value_type() {
            assert_eq!(actual, *ty, "decoded {v:?} for a {ty} field");
        }
    }
    for writer in writers() {
        let again = writer.encode(&record, types).unwrap_or_else(|e| {
            panic!("a decoded record does not re-encode with {writer:?}: {e}: {record:?}")
        });
        assert_eq!(
            again[1..HEADER_LEN],
            bytes[1..HEADER_LEN],
            "re-encoding changed the header timestamps"
        );
        let back = RecordCodec::decode(&again, types).unwrap_or_else(|e| {
            panic!("a record re-encoded with {writer:?} does not decode: {e}: {record:?}")
        });
        assert!(
            same(&back, &record),
            "re-encode with {writer:?}:\n  decoded   {record:?}\n  round trip {back:?}"
        );
    }
}

/// Equality that counts every NaN as equal (Debug prints them all as `NaN`) and tells -0.0 apart
/// (and a decimal's scale: `1.50` is not `1.5`).
pub fn same(a: &Record, b: &Record) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

// ---------------------------------------------------------------------------------------------
// Entity keys
// ---------------------------------------------------------------------------------------------

/// The input as text (lossy UTF-8): parsed as a key of every type, as JSON into
/// `KeyValue::from_json` and `EntityKey` serde, and split into a multi-part key for
/// `storage_suffix`. Every key that comes out must round-trip; every suffix must be the escaped
/// values (and unescape back to them) or, exactly when that is too long, `#` + 32 hex digits.
pub fn entity_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    for ty in S {
        let key_type = matches!(
            ty,
            ScalarType::Int64 | ScalarType::Int32 | ScalarType::String
        );
        match KeyValue::parse(text, ty) {
            Ok(v) => {
                assert!(!key_type || v.fits(ty), "parse({text:?}, {ty:?}) = {v:?}");
                match (&v, ty) {
                    (KeyValue::Int(n), ScalarType::Int64 | ScalarType::Int32) => {
                        assert_eq!(text.parse::<i64>().ok(), Some(*n), "parse({text:?})")
                    }
                    (KeyValue::Str(s), _) => assert_eq!(s, text, "parse({text:?}, {ty:?})"),
                    _ => panic!("parse({text:?}, {ty:?}) = {v:?}"),
                }
                round_trip(&v);
                check_suffix(&EntityKey::single(v));
            }
            Err(e) => assert!(
                matches!(ty, ScalarType::Int64 | ScalarType::Int32) && text.parse::<i64>().is_err(),
                "parse({text:?}, {ty:?}) failed: {e}"
            ),
        }
    }

    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        for ty in S {
            let key_type = matches!(
                ty,
                ScalarType::Int64 | ScalarType::Int32 | ScalarType::String
            );
            if let Ok(v) = KeyValue::from_json(&json, ty) {
                assert!(!key_type || v.fits(ty), "from_json({json}, {ty:?}) = {v:?}");
                match &v {
                    KeyValue::Int(n) => assert_eq!(json.as_i64(), Some(*n), "from_json({json})"),
                    KeyValue::Str(s) => {
                        assert_eq!(json.as_str(), Some(s.as_str()), "from_json({json})")
                    }
                }
                round_trip(&v);
            }
        }
    }

    if let Ok(key) = serde_json::from_str::<EntityKey>(text) {
        serde_round_trip(&key);
        check_suffix(&key);
    }

    // Lines as a multi-part key: all strings, and with integer-looking lines as integers.
    let lines: Vec<&str> = text.split('\n').take(6).collect();
    let strings = EntityKey(lines.iter().map(|l| KeyValue::Str(l.to_string())).collect());
    let mixed = EntityKey(
        lines
            .iter()
            .map(|l| match l.parse::<i64>() {
                Ok(n) => KeyValue::Int(n),
                Err(_) => KeyValue::Str(l.to_string()),
            })
            .collect(),
    );
    for key in [&strings, &mixed] {
        serde_round_trip(key);
        check_suffix(key);
    }
}

/// A key value survives JSON (`to_json` -> `from_json`) and command-line text (`parse`) for each
/// type it can be.
fn round_trip(v: &KeyValue) {
    let types: &[ScalarType] = match v {
        KeyValue::Int(_) => &[ScalarType::Int64, ScalarType::Int32],
        KeyValue::Str(_) => &[ScalarType::String],
    };
    for ty in types {
        let back = KeyValue::from_json(&v.to_json(), *ty);
        assert_eq!(back.as_ref(), Ok(v), "from_json(to_json({v:?}), {ty:?})");
        let text = match v {
            KeyValue::Int(n) => n.to_string(),
            KeyValue::Str(s) => s.clone(),
        };
        assert_eq!(
            KeyValue::parse(&text, *ty).as_ref(),
            Ok(v),
            "parse({text:?}, {ty:?})"
        );
    }
}

fn serde_round_trip(key: &EntityKey) {
    let text = serde_json::to_string(key).expect("a key serializes");
    let back: EntityKey = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("key {key:?} does not read back from `{text}`: {e}"));
    assert_eq!(&back, key, "serde round trip through `{text}`");
}

/// The escaped form the suffix must have (`%XX` for every byte but `[A-Za-z0-9._-]`, values
/// joined by `:`), written independently of quiver-core.
pub fn expected_suffix(key: &EntityKey) -> String {
    let parts: Vec<String> = key
        .0
        .iter()
        .map(|v| match v {
            KeyValue::Int(n) => n.to_string(),
            KeyValue::Str(s) => s
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
        })
        .collect();
    parts.join(":")
}

/// A readable suffix is the escaped key and unescapes back to its values (so no two keys of the
/// same types share one); a suffix is hashed exactly when the escaped form is too long.
fn check_suffix(key: &EntityKey) {
    let suffix = key.storage_suffix();
    let expected = expected_suffix(key);
    if expected.len() > MAX_READABLE_SUFFIX {
        let hash = suffix.strip_prefix('#').unwrap_or_else(|| {
            panic!("{}-byte key {key:?} not hashed: `{suffix}`", expected.len())
        });
        assert!(
            hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "hashed suffix `{suffix}`"
        );
        return;
    }
    assert_eq!(suffix, expected, "suffix of {key:?}");
    assert!(!suffix.starts_with('#'), "readable suffix starts with #");
    let parts: Vec<&str> = suffix.split(':').collect();
    assert_eq!(
        parts.len(),
        key.0.len().max(1),
        "suffix `{suffix}` of {key:?}"
    );
    for (part, v) in parts.iter().zip(&key.0) {
        let want = match v {
            KeyValue::Int(n) => n.to_string().into_bytes(),
            KeyValue::Str(s) => s.clone().into_bytes(),
        };
        assert_eq!(unescape(part), Some(want), "suffix part `{part}` of {v:?}");
    }
}

/// The inverse of the store's escaping.
fn unescape(part: &str) -> Option<Vec<u8>> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = part.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}
