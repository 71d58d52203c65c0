//! The fuzz targets: each takes raw bytes, builds a structured input from them and panics only
//! when Quiver misbehaves (a panic inside Quiver, a broken round trip, a 5xx for bad input).

mod definitions;
mod entity_key;
mod envelope;
mod http;
mod record;

pub use definitions::definitions;
pub use entity_key::entity_key;
pub use envelope::envelope;
pub use http::{get_online_features, write_to_online_store};
pub use record::record_decoder;

/// A target: its name (as the runner and crash files spell it) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `quiver-fuzz all` runs them.
pub const TARGETS: &[Target] = &[
    ("record_decoder", record_decoder),
    ("entity_key", entity_key),
    ("envelope", envelope),
    ("definitions", definitions),
    ("get_online_features", get_online_features),
    ("write_to_online_store", write_to_online_store),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|(n, _)| *n == name)
}
