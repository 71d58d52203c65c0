//! Entity keys and their storage encoding.
//!
//! An entity key is the tuple of join-key values in the view's join-key order. Online stores
//! address a record by `{prefix}` + [`EntityKey::storage_suffix`]: the values, escaped and joined by
//! `:`, so `redis-cli --scan` shows `quiver:shop:user_profile:v1:42`. Keys whose escaped form would
//! exceed [`MAX_READABLE_SUFFIX`] bytes are replaced by `#` and a 128-bit hash; `#` never appears in
//! an escaped value, so the two forms cannot collide.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::{ScalarType, Value};

/// Longest readable key suffix; longer keys are hashed.
pub const MAX_READABLE_SUFFIX: usize = 128;

/// One join-key value. Join keys are int64 or string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    Int(i64),
    Str(String),
}

impl KeyValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Int(v) => serde_json::Value::from(*v),
            KeyValue::Str(s) => serde_json::Value::String(s.clone()),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::Int(v) => Value::Int64(*v),
            KeyValue::Str(s) => Value::String(s.clone()),
        }
    }

    /// Parses a JSON value as a key of type `ty` (int64 or string). Integral floats are not
    /// accepted for int keys: `42.0` is a client bug worth reporting.
    pub fn from_json(json: &serde_json::Value, ty: ScalarType) -> Result<KeyValue, String> {
        match (ty, json) {
            (ScalarType::Int64 | ScalarType::Int32, serde_json::Value::Number(n)) => n
                .as_i64()
                .map(KeyValue::Int)
                .ok_or_else(|| format!("expected an integer, got `{n}`")),
            (ScalarType::String, serde_json::Value::String(s)) => Ok(KeyValue::Str(s.clone())),
            (ScalarType::Int64 | ScalarType::Int32, other) => {
                Err(format!("expected an integer, got `{other}`"))
            }
            (_, other) => Err(format!("expected a string, got `{other}`")),
        }
    }

    /// Whether this value can be a key of type `ty` (strings for string keys, integers for
    /// the others).
    pub fn fits(&self, ty: ScalarType) -> bool {
        match self {
            KeyValue::Str(_) => ty == ScalarType::String,
            KeyValue::Int(_) => ty != ScalarType::String,
        }
    }

    /// Parses command-line text as a key of type `ty`.
    pub fn parse(text: &str, ty: ScalarType) -> Result<KeyValue, String> {
        match ty {
            ScalarType::Int64 | ScalarType::Int32 => text
                .parse()
                .map(KeyValue::Int)
                .map_err(|_| format!("expected an integer, got `{text}`")),
            _ => Ok(KeyValue::Str(text.to_string())),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The join-key values of one entity, in the view's join-key order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityKey(pub Vec<KeyValue>);

impl EntityKey {
    pub fn single(value: KeyValue) -> Self {
        EntityKey(vec![value])
    }

    /// The readable, escaped suffix of the record's storage key (see the module docs).
    pub fn storage_suffix(&self) -> String {
        let mut out = String::new();
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            match v {
                KeyValue::Int(n) => out.push_str(&n.to_string()),
                KeyValue::Str(s) => escape_into(s, &mut out),
            }
        }
        if out.len() > MAX_READABLE_SUFFIX {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            for v in &self.0 {
                match v {
                    KeyValue::Int(n) => {
                        hasher.update(b"i");
                        hasher.update(&n.to_le_bytes());
                    }
                    KeyValue::Str(s) => {
                        hasher.update(b"s");
                        hasher.update(&(s.len() as u64).to_le_bytes());
                        hasher.update(s.as_bytes());
                    }
                }
            }
            format!("#{:032x}", hasher.digest128())
        } else {
            out
        }
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// Percent-escapes everything but `[A-Za-z0-9._-]`, so values cannot forge the `:` separator, the
/// `#` hash marker, Redis Cluster hash tags (`{}`), or glob characters in `--scan` patterns. A view
/// fixes its key types, so ints and strings never share a key space and need no type marker.
fn escape_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suffix_is_readable() {
        let key = EntityKey(vec![KeyValue::Int(42), KeyValue::Str("a:b c".into())]);
        assert_eq!(key.storage_suffix(), "42:a%3Ab%20c");
    }

    #[test]
    fn long_keys_are_hashed() {
        let key = EntityKey::single(KeyValue::Str("x".repeat(500)));
        let suffix = key.storage_suffix();
        assert!(suffix.starts_with('#') && suffix.len() == 33, "{suffix}");
    }

    proptest! {
        #[test]
        fn distinct_keys_have_distinct_suffixes(
            a in proptest::collection::vec(".{0,80}", 1..3),
            b in proptest::collection::vec(".{0,80}", 1..3),
        ) {
            let ka = EntityKey(a.iter().cloned().map(KeyValue::Str).collect());
            let kb = EntityKey(b.iter().cloned().map(KeyValue::Str).collect());
            prop_assert_eq!(ka == kb, ka.storage_suffix() == kb.storage_suffix());
        }

        #[test]
        fn suffix_has_no_separator_inside_values(s in ".{0,60}") {
            let suffix = EntityKey::single(KeyValue::Str(s)).storage_suffix();
            let clean = !suffix.contains(':') && !suffix.contains('{') && !suffix.contains('*');
            prop_assert!(clean, "suffix {suffix:?}");
        }
    }
}
