//! Seeded, structure-aware fuzzing of Quiver's input decoders (issue 11).
//!
//! Each target is a function over raw bytes that never returns an error: the bytes drive an
//! [`arbitrary::Unstructured`] which builds a mostly near-valid input (a record that starts with a
//! valid header, then mutated; a JSON body from the test project's names plus garbage; a YAML file
//! from the definitions grammar), feeds it to the real decoder and asserts what must hold (round
//! trips equal, errors instead of panics, 4xx instead of 5xx). A panic is a finding.
//!
//! Layout:
//! - [`targets`]: one module per target, and [`targets::TARGETS`], the list the runner knows.
//! - [`input`]: shared generators (JSON text with raw numbers and repeated keys, mutations).
//! - [`stats`]: outcome counters (how far inputs got).
//! - [`runner`]: the seeded loop: inputs from a seeded RNG, `catch_unwind`, crash files, a summary.
//!
//! The binary (`quiver-fuzz <target|all> --inputs N --seed S`) is a thin wrapper over
//! [`runner::run`]; `tests/smoke.rs` runs every target briefly in CI. The same functions are the
//! bodies of the AFL targets in `afl/` when coverage-guided fuzzing is available
//! (see `docs/fuzzing.md`).

pub mod input;
pub mod runner;
pub mod stats;
pub mod targets;

pub use targets::{
    TARGETS, definitions, entity_key, envelope, get_online_features, record_decoder,
    write_to_online_store,
};
