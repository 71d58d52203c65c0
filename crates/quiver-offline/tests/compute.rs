//! The compute operators against brute-force references: every fast path is compared with an
//! O(n · m) oracle written for obviousness, on random inputs built to hit the edges (many equal
//! timestamps, null values and keys, keys without history, query times exactly on window and TTL
//! boundaries, empty inputs), plus a couple of large inputs that take the multi-core paths.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use proptest::prelude::*;
use quiver_offline::compute::{
    AggFunction, EventValues, Events, KeyInterner, NULL_KEY, WindowSpec, aggregate_at_events,
    aggregate_windows, asof_join, momentum, period_returns, rolling_volatility, take_columns,
};

// ---------------------------------------------------------------------------------------------
// Oracles

fn asof_oracle(
    left_keys: &[u32],
    left_times: &[i64],
    right_keys: &[u32],
    right_times: &[i64],
    created: Option<&[Option<i64>]>,
    ttl: Option<i64>,
) -> Vec<Option<u32>> {
    (0..left_keys.len())
        .map(|i| {
            let (k, t) = (left_keys[i], left_times[i]);
            if k == NULL_KEY {
                return None;
            }
            (0..right_keys.len())
                .filter(|&j| right_keys[j] == k && right_times[j] <= t)
                .filter(|&j| {
                    ttl.is_none_or(|ttl| i128::from(t) - i128::from(right_times[j]) <= ttl.into())
                })
                .max_by_key(|&j| (right_times[j], created.and_then(|c| c[j]), j))
                .map(|j| j as u32)
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Answer {
    Float(Option<f64>),
    Count(i64),
}

/// The window's non-null values in (time, row) order, then each function by its definition.
fn window_oracle(
    keys: &[u32],
    times: &[i64],
    values: &[Option<f64>],
    key: u32,
    t: i64,
    spec: WindowSpec,
) -> (Answer, Vec<f64>) {
    let mut rows: Vec<usize> = (0..keys.len())
        .filter(|&j| key != NULL_KEY && keys[j] == key)
        .filter(|&j| {
            i128::from(times[j]) <= i128::from(t)
                && i128::from(times[j]) > i128::from(t) - i128::from(spec.window_ns)
        })
        .filter(|&j| values[j].is_some_and(|v| !v.is_nan()))
        .collect();
    rows.sort_by_key(|&j| (times[j], j));
    let vals: Vec<f64> = rows
        .iter()
        .map(|&j| values[j].unwrap_or(f64::NAN))
        .collect();
    let n = vals.len();
    let sum: f64 = vals.iter().sum();
    let answer = match spec.function {
        AggFunction::Sum => Answer::Float(Some(sum)),
        AggFunction::Count => Answer::Count(n as i64),
        AggFunction::Mean => Answer::Float((n > 0).then(|| sum / n as f64)),
        AggFunction::Min => Answer::Float(vals.iter().copied().reduce(f64::min)),
        AggFunction::Max => Answer::Float(vals.iter().copied().reduce(f64::max)),
        AggFunction::Last => Answer::Float(vals.last().copied()),
        AggFunction::Std => Answer::Float((n >= 2).then(|| {
            let mean = sum / n as f64;
            (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        })),
    };
    (answer, vals)
}

fn answers(array: &ArrayRef) -> Vec<Answer> {
    if let Some(ints) = array.as_primitive_opt::<Int64Type>() {
        assert_eq!(ints.null_count(), 0, "counts are never null");
        ints.values().iter().map(|&c| Answer::Count(c)).collect()
    } else {
        array
            .as_primitive::<Float64Type>()
            .iter()
            .map(Answer::Float)
            .collect()
    }
}

/// Exact for count, min, max and last; within rounding of the window's magnitude otherwise.
fn assert_close(got: &Answer, want: &Answer, window: &[f64], function: AggFunction, what: &str) {
    let scale = match function {
        AggFunction::Sum => window.iter().map(|v| v.abs()).sum::<f64>(),
        _ => window.iter().fold(0.0f64, |m, v| m.max(v.abs())),
    };
    match (got, want, function) {
        (
            Answer::Float(Some(a)),
            Answer::Float(Some(b)),
            AggFunction::Sum | AggFunction::Mean | AggFunction::Std,
        ) => {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + scale),
                "{what}: {function:?} got {a}, want {b} (window {window:?})"
            );
        }
        _ => assert_eq!(got, want, "{what}: {function:?} (window {window:?})"),
    }
}

fn check_windows(
    (keys, times, values): (&[u32], &[i64], &[Option<f64>]),
    query_keys: &[u32],
    query_times: &[i64],
    specs: &[WindowSpec],
    got: &[ArrayRef],
    sample: impl Iterator<Item = usize>,
) {
    assert_eq!(got.len(), specs.len());
    let got: Vec<Vec<Answer>> = got.iter().map(answers).collect();
    for q in sample {
        for (s, spec) in specs.iter().enumerate() {
            let (want, window) =
                window_oracle(keys, times, values, query_keys[q], query_times[q], *spec);
            let what = format!("query {q} (key {}, t {})", query_keys[q], query_times[q]);
            assert_close(&got[s][q], &want, &window, spec.function, &what);
        }
    }
}

fn all_specs(windows: &[i64]) -> Vec<WindowSpec> {
    windows
        .iter()
        .flat_map(|&window_ns| {
            AggFunction::ALL.map(|function| WindowSpec {
                function,
                window_ns,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Strategies: few keys and a narrow time range, so ties, duplicates and exact boundaries are
// common rather than rare.

fn key(keys: u32) -> impl Strategy<Value = u32> {
    prop_oneof![9 => 0..keys, 1 => Just(NULL_KEY)]
}

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(f64::NAN)),
        4 => (-5i32..5).prop_map(|v| Some(f64::from(v))),
        4 => (-1e3f64..1e3).prop_map(Some),
        1 => prop_oneof![Just(1e12), Just(-1e12), Just(3e15)].prop_map(Some),
    ]
}

fn created() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 2 => (0i64..3).prop_map(Some)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn asof_matches_oracle(
        right in prop::collection::vec((key(6), 0i64..20, created()), 0..80),
        left in prop::collection::vec((key(8), -2i64..24), 0..60),
        with_created in any::<bool>(),
        ttl in prop::option::of(0i64..8),
    ) {
        let (rk, rt): (Vec<u32>, Vec<i64>) = right.iter().map(|r| (r.0, r.1)).unzip();
        let rc: Vec<Option<i64>> = right.iter().map(|r| r.2).collect();
        let (lk, lt): (Vec<u32>, Vec<i64>) = left.iter().copied().unzip();
        let created = with_created.then_some(rc.as_slice());
        let got = asof_join(&lk, &lt, &rk, &rt, created, ttl).unwrap();
        prop_assert_eq!(got, asof_oracle(&lk, &lt, &rk, &rt, created, ttl));
    }

    #[test]
    fn windows_match_oracle(
        events in prop::collection::vec((key(4), 0i64..30, value()), 0..80),
        queries in prop::collection::vec((key(6), -5i64..40), 0..40),
        windows in prop::collection::vec(1i64..12, 1..3),
    ) {
        let keys: Vec<u32> = events.iter().map(|e| e.0).collect();
        let times: Vec<i64> = events.iter().map(|e| e.1).collect();
        let values: Vec<Option<f64>> = events.iter().map(|e| e.2).collect();
        let (qk, qt): (Vec<u32>, Vec<i64>) = queries.iter().copied().unzip();
        let specs = all_specs(&windows);
        let ev = Events { keys: &keys, times: &times, values: EventValues::Slice(&values), created: None };
        let got = aggregate_windows(&ev, &qk, &qt, &specs).unwrap();
        check_windows((&keys, &times, &values), &qk, &qt, &specs, &got, 0..qk.len());

        // At events, through the Arrow input: the same operator with queries = events.
        let arrow_values = Float64Array::from(values.clone());
        let ev = Events { keys: &keys, times: &times, values: EventValues::Arrow(&arrow_values), created: None };
        let got = aggregate_at_events(&ev, &specs).unwrap();
        check_windows((&keys, &times, &values), &keys, &times, &specs, &got, 0..keys.len());
    }

    #[test]
    fn timeseries_match_oracle(
        rows in prop::collection::vec(
            (key(3), 0i64..15, prop_oneof![1 => Just(None), 1 => Just(Some(0.0)), 8 => (1.0f64..200.0).prop_map(Some)]),
            0..60,
        ),
        periods in 1usize..5,
    ) {
        let keys: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let close: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
        let values = EventValues::Slice(&close);
        let ret = period_returns(&keys, &times, None, values, periods).unwrap();
        let mom = momentum(&keys, &times, None, values, periods).unwrap();
        let vol = (periods >= 2).then(|| rolling_volatility(&keys, &times, None, values, periods).unwrap());
        for i in 0..keys.len() {
            let (want_ret, want_mom, want_vol) = timeseries_oracle(&keys, &times, &close, i, periods);
            let got_ret = ret.as_primitive::<Float64Type>();
            let got_mom = mom.as_primitive::<Float64Type>();
            prop_assert_eq!(got_ret.is_valid(i).then(|| got_ret.value(i)), want_ret);
            prop_assert_eq!(got_mom.is_valid(i).then(|| got_mom.value(i)), want_mom);
            if let Some(vol) = &vol {
                let vol = vol.as_primitive::<Float64Type>();
                match (vol.is_valid(i).then(|| vol.value(i)), want_vol) {
                    (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{} vs {}", a, b),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }
    }
}

/// Return, momentum and volatility of row `i` from its key's history.
fn timeseries_oracle(
    keys: &[u32],
    times: &[i64],
    close: &[Option<f64>],
    i: usize,
    n: usize,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    if keys[i] == NULL_KEY {
        return (None, None, None);
    }
    let mut history: Vec<usize> = (0..keys.len()).filter(|&j| keys[j] == keys[i]).collect();
    history.sort_by_key(|&j| (times[j], j));
    let p = history.iter().position(|&j| j == i).unwrap_or(0);
    let at = |k: usize| close[history[k]];
    let lagged = |f: &dyn Fn(f64, f64) -> Option<f64>| {
        (p >= n)
            .then(|| at(p).zip(at(p - n)))
            .flatten()
            .and_then(|(a, b)| f(a, b))
    };
    let ret = lagged(&|a, b| (b != 0.0).then(|| a / b - 1.0));
    let mom = lagged(&|a, b| Some(a - b));
    let vol = (n >= 2 && p >= n)
        .then(|| {
            let returns: Option<Vec<f64>> = (p + 1 - n..=p)
                .map(|k| match (at(k - 1), at(k)) {
                    (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some((b / a).ln()),
                    _ => None,
                })
                .collect();
            returns.map(|r| {
                let mean = r.iter().sum::<f64>() / n as f64;
                (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            })
        })
        .flatten();
    (ret, mom, vol)
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases and large inputs

const DAY: i64 = 86_400_000_000_000;

#[test]
fn interned_string_keys_join_end_to_end() {
    let mut interner = KeyInterner::new();
    let feature_keys: ArrayRef = Arc::new(StringArray::from(vec!["u1", "u2", "u1", "u1"]));
    let entity_keys: ArrayRef = Arc::new(StringArray::from(vec![
        Some("u1"),
        Some("u3"),
        None,
        Some("u2"),
        Some("u1"),
    ]));
    let rk = interner.intern(&[feature_keys]).unwrap();
    let lk = interner.intern(&[entity_keys]).unwrap();
    assert_eq!(lk[2], NULL_KEY);
    let rt = [DAY, DAY, 5 * DAY, 9 * DAY];
    let lt = [6 * DAY, 6 * DAY, 6 * DAY, 2 * DAY, 30 * DAY];
    let matched = asof_join(&lk, &lt, &rk, &rt, None, Some(7 * DAY)).unwrap();
    // u1 at day 6 → day 5; u3 never seen; null key; u2 at day 2 → day 1; u1 at day 30 → day 9
    // is 21 days old, beyond the 7-day TTL.
    assert_eq!(matched, vec![Some(2), None, None, Some(1), None]);
    let amount: ArrayRef = Arc::new(Int64Array::from(vec![10, 20, 30, 40]));
    let joined = take_columns(&[amount], &matched).unwrap();
    assert_eq!(
        joined[0].as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(30), None, None, Some(20), None])
    );
}

#[test]
fn seven_day_sum_of_daily_amounts() {
    // One user spends `day` on each day 1..=10; the 7-day sum at day 10 covers days 4..=10.
    let days: Vec<i64> = (1..=10).collect();
    let keys = vec![0u32; days.len()];
    let times: Vec<i64> = days.iter().map(|d| d * DAY).collect();
    let values: Vec<Option<f64>> = days.iter().map(|&d| Some(d as f64)).collect();
    let events = Events {
        keys: &keys,
        times: &times,
        values: EventValues::Slice(&values),
        created: None,
    };
    let spec = |function| WindowSpec {
        function,
        window_ns: 7 * DAY,
    };
    let out = aggregate_windows(
        &events,
        &[0, 0, 0],
        &[10 * DAY, 10 * DAY - 1, 3 * DAY],
        &[spec(AggFunction::Sum), spec(AggFunction::Count)],
    )
    .unwrap();
    let sums: Vec<Option<f64>> = out[0].as_primitive::<Float64Type>().iter().collect();
    assert_eq!(sums, vec![Some(49.0), Some(42.0), Some(6.0)]);
    assert_eq!(
        out[1].as_primitive::<Int64Type>().values().to_vec(),
        vec![7, 7, 3]
    );
}

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn large_asof_join_matches_oracle_on_a_sample() {
    // Large enough for both cores; 3k keys so some keys have many entity rows (sorted path) and
    // others few (scan path).
    let mut rng = Lcg(7);
    let (n, m) = (120_000, 300_000);
    let rk: Vec<u32> = (0..m).map(|_| rng.below(3_000) as u32).collect();
    let rt: Vec<i64> = (0..m).map(|_| rng.below(1_000) as i64).collect();
    let rc: Vec<Option<i64>> = (0..m)
        .map(|_| (rng.below(3) > 0).then(|| rng.below(4) as i64))
        .collect();
    let lk: Vec<u32> = (0..n).map(|_| rng.below(3_100) as u32).collect();
    let lt: Vec<i64> = (0..n).map(|_| rng.below(1_100) as i64).collect();
    let got = asof_join(&lk, &lt, &rk, &rt, Some(&rc), Some(50)).unwrap();
    for i in (0..n).step_by(600) {
        let want = asof_oracle(&lk[i..=i], &lt[i..=i], &rk, &rt, Some(&rc), Some(50));
        assert_eq!(got[i], want[0], "entity row {i}");
    }
}

#[test]
fn large_window_aggregation_matches_oracle_on_a_sample() {
    let mut rng = Lcg(11);
    let n = 250_000;
    let keys: Vec<u32> = (0..n).map(|_| rng.below(2_000) as u32).collect();
    let times: Vec<i64> = (0..n).map(|_| rng.below(5_000) as i64).collect();
    let values: Vec<Option<f64>> = (0..n)
        .map(|_| (rng.below(10) > 0).then(|| rng.below(10_000) as f64 / 7.0))
        .collect();
    let specs = all_specs(&[10, 100, 1_000]);
    let events = Events {
        keys: &keys,
        times: &times,
        values: EventValues::Slice(&values),
        created: None,
    };
    let got = aggregate_at_events(&events, &specs).unwrap();
    check_windows(
        (&keys, &times, &values),
        &keys,
        &times,
        &specs,
        &got,
        (0..n).step_by(2_500),
    );
}
