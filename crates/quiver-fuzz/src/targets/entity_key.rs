//! Entity keys: [`KeyValue::from_json`], [`KeyValue::parse`], the serde form of [`EntityKey`]
//! and [`EntityKey::storage_suffix`].
//!
//! Keys of each kind (edge integers, escaped and long strings) must round-trip through JSON,
//! command-line text and serde; a readable storage suffix must unescape back to the key (so two
//! keys never share a suffix), and a long one must be the `#` + 128-bit hash form. Arbitrary JSON
//! and text must parse to `Ok` or `Err` for every key type.

use arbitrary::{Result, Unstructured};
use quiver_core::entity_key::MAX_READABLE_SUFFIX;
use quiver_core::{EntityKey, KeyValue, ScalarType};

use crate::input::{any_json, edge_i64, odd_string};

const KEY_TYPES: [ScalarType; 5] = [
    ScalarType::Int64,
    ScalarType::Int32,
    ScalarType::String,
    ScalarType::Float64,
    ScalarType::Timestamp,
];

/// Fuzz target: see the module docs.
pub fn entity_key(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1usize..=4)?;
    let key = EntityKey(
        (0..n)
            .map(|_| {
                Ok(if u.arbitrary()? {
                    KeyValue::Int(edge_i64(u)?)
                } else {
                    KeyValue::Str(odd_string(u)?)
                })
            })
            .collect::<Result<_>>()?,
    );
    for v in &key.0 {
        round_trip(v);
    }
    let text = serde_json::to_string(&key).expect("a key serializes");
    let back: EntityKey = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("key {key:?} does not read back from `{text}`: {e}"));
    assert_eq!(back, key, "serde round trip through `{text}`");
    check_suffix(&key);
    crate::stats::count("entity_key", "key round trips");

    // Garbage in: every key type answers Ok or Err.
    let json = serde_json::from_str::<serde_json::Value>(&any_json(u, 2)?.to_text());
    let text = odd_string(u)?;
    for ty in KEY_TYPES {
        // Join keys are int64 or string; other types are asked only to answer.
        let key_type = matches!(
            ty,
            ScalarType::Int64 | ScalarType::Int32 | ScalarType::String
        );
        if let Ok(j) = &json
            && let Ok(v) = KeyValue::from_json(j, ty)
        {
            assert!(!key_type || v.fits(ty), "from_json({j}, {ty:?}) = {v:?}");
        }
        if let Ok(v) = KeyValue::parse(&text, ty) {
            assert!(!key_type || v.fits(ty), "parse({text:?}, {ty:?}) = {v:?}");
        }
    }
    Ok(())
}

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
            "parse({text:?})"
        );
    }
}

/// A readable suffix unescapes to the key's values; a long one is the hash form.
fn check_suffix(key: &EntityKey) {
    let suffix = key.storage_suffix();
    if let Some(hash) = suffix.strip_prefix('#') {
        crate::stats::count("entity_key", "hashed suffix");
        assert!(
            hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "hashed suffix `{suffix}`"
        );
        return;
    }
    assert!(
        suffix.len() <= MAX_READABLE_SUFFIX,
        "readable suffix of {} bytes",
        suffix.len()
    );
    let parts: Vec<&str> = suffix.split(':').collect();
    assert_eq!(parts.len(), key.0.len(), "suffix `{suffix}` of {key:?}");
    for (part, v) in parts.iter().zip(&key.0) {
        let expected = match v {
            KeyValue::Int(n) => n.to_string().into_bytes(),
            KeyValue::Str(s) => s.clone().into_bytes(),
        };
        assert_eq!(
            unescape(part),
            Some(expected),
            "suffix part `{part}` of {v:?}"
        );
    }
}

/// The inverse of the store's escaping (`%XX` for every byte but `[A-Za-z0-9._-]`).
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
