//! Stored record payloads: [`Envelope::from_bytes`] (plain JSON, or zstd-compressed JSON when
//! the first byte is zstd's).
//!
//! An envelope around an arbitrary JSON record must read back from both forms; mutated bytes
//! and garbage behind the zstd magic number must answer `Ok` or `Err`.

use arbitrary::{Result, Unstructured};
use quiver::records::Envelope;

use crate::input::{Json, any_json, edge_i64, mutate, odd_string, one_in};

/// Fuzz target: see the module docs.
pub fn envelope(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    if one_in(u, 8)? {
        let mut bytes: Vec<u8> = u.arbitrary()?;
        if u.arbitrary()? {
            bytes.splice(0..0, [0x28, 0xb5, 0x2f, 0xfd]);
        }
        let _ = Envelope::from_bytes(&bytes);
        return Ok(());
    }
    let n = u.int_in_range(0usize..=5)?;
    let fields: Vec<(String, Json)> = (0..n)
        .map(|_| Ok((odd_string(u)?, any_json(u, 2)?)))
        .collect::<Result<_>>()?;
    let record = match serde_json::from_str(&Json::Object(fields).to_text()) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let envelope = Envelope {
        id: odd_string(u)?,
        accepted_at: edge_i64(u)?,
        time: edge_i64(u)?,
        record,
    };
    let compressed = u.arbitrary()?;
    let mut bytes = if compressed {
        envelope.to_compressed_bytes()
    } else {
        envelope.to_bytes()
    };
    let back = Envelope::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("an envelope does not read back ({compressed}): {e}"));
    assert_eq!(back, envelope, "round trip (compressed: {compressed})");
    crate::stats::count("envelope", "round trip");
    mutate(u, &mut bytes)?;
    let read = Envelope::from_bytes(&bytes);
    crate::stats::count(
        "envelope",
        if read.is_ok() {
            "mutated: reads"
        } else {
            "mutated: rejected"
        },
    );
    Ok(())
}
