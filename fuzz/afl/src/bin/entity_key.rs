//! AFL++ target: the input as text into `KeyValue::parse`, `KeyValue::from_json`, `EntityKey`
//! serde and `EntityKey::storage_suffix` (see `quiver_afl::entity_key`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        quiver_afl::entity_key(data);
    });
}
