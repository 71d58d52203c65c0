//! Outcome counters, so a run says how far its inputs got (answered 200, rejected with which
//! kind, parsed, validated), not only that nothing panicked.

use std::collections::BTreeMap;
use std::sync::Mutex;

static COUNTS: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());

/// Counts one `outcome` of `target`.
pub fn count(target: &'static str, outcome: impl Into<String>) {
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *counts.entry((target, outcome.into())).or_default() += 1;
}

/// `target`'s outcomes, most frequent first.
pub fn outcomes(target: &str) -> Vec<(String, u64)> {
    let counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<(String, u64)> = counts
        .iter()
        .filter(|((t, _), _)| *t == target)
        .map(|((_, o), n)| (o.clone(), *n))
        .collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}
