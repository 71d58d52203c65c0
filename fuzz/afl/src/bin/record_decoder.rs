//! AFL++ target: byte 0 picks a schema, the rest is fed to `RecordCodec::decode`,
//! `peek_timestamps` and `may_replace` (see `quiver_afl::record_decoder`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        quiver_afl::record_decoder(data);
    });
}
