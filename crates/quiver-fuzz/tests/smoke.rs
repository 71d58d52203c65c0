//! CI smoke: every fuzz target over a few thousand seeded inputs, failing on any panic. The long
//! runs (ten million inputs per target) are `cargo run --release -p quiver-fuzz -- all`; see
//! `docs/fuzzing.md`.

use quiver_fuzz::runner::{Options, run};
use quiver_fuzz::targets::TARGETS;

/// Inputs per target: a smoke, well under 20 s in the debug profile.
fn inputs(target: &str) -> u64 {
    match target {
        "get_online_features" | "write_to_online_store" | "definitions" => 1_500,
        _ => 3_000,
    }
}

#[test]
fn every_target_survives_seeded_inputs() {
    let mut failures = Vec::new();
    for t in TARGETS {
        let options = Options {
            inputs: inputs(t.0),
            seed: 11,
            crash_dir: None,
            ..Options::default()
        };
        let summary = run(*t, &options);
        println!("{summary}");
        if summary.panics > 0 {
            failures.push(summary.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
