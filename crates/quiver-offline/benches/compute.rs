//! Throughput of the offline engine's hot paths at the sizes `quiver build` meets in practice:
//! the point-in-time join (1M entity rows × 10M feature rows over 1M keys) and rolling windows
//! (10M events over 100k keys, 4 window lengths × 5 functions, evaluated at every event).
//!
//! Inputs come from a SplitMix64 stream rather than `rand`, so setup takes well under a second
//! and the data are the same on every run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quiver_offline::compute::{
    AggFunction, EventValues, Events, WindowSpec, aggregate_at_events, asof_join,
};

const DAY: i64 = 86_400_000_000_000;
const YEAR: i64 = 365 * DAY;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn asof(c: &mut Criterion) {
    const LEFT: usize = 1_000_000;
    const RIGHT: usize = 10_000_000;
    const KEYS: u64 = 1_000_000;
    let mut rng = SplitMix(1);
    let right_keys: Vec<u32> = (0..RIGHT).map(|_| rng.below(KEYS) as u32).collect();
    let right_times: Vec<i64> = (0..RIGHT).map(|_| rng.below(YEAR as u64) as i64).collect();
    let left_keys: Vec<u32> = (0..LEFT).map(|_| rng.below(KEYS) as u32).collect();
    let left_times: Vec<i64> = (0..LEFT).map(|_| rng.below(YEAR as u64) as i64).collect();

    let mut group = c.benchmark_group("asof_join");
    group.throughput(Throughput::Elements((LEFT + RIGHT) as u64));
    group.bench_function("1M_left_x_10M_right_1M_keys_ttl_30d", |b| {
        b.iter(|| {
            asof_join(
                &left_keys,
                &left_times,
                &right_keys,
                &right_times,
                None,
                Some(30 * DAY),
            )
            .expect("valid input")
        })
    });
    group.finish();
}

fn windows(c: &mut Criterion) {
    const EVENTS: usize = 10_000_000;
    const KEYS: u64 = 100_000;
    let mut rng = SplitMix(2);
    let keys: Vec<u32> = (0..EVENTS).map(|_| rng.below(KEYS) as u32).collect();
    let times: Vec<i64> = (0..EVENTS).map(|_| rng.below(YEAR as u64) as i64).collect();
    let values: Vec<Option<f64>> = (0..EVENTS)
        .map(|_| {
            let x = rng.next();
            // About 1% nulls, amounts up to 1000.00.
            (!x.is_multiple_of(100)).then(|| (x >> 40) as f64 / 16_777.216)
        })
        .collect();
    let events = Events {
        keys: &keys,
        times: &times,
        values: EventValues::Slice(&values),
        created: None,
    };
    let functions = [
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Count,
        AggFunction::Max,
        AggFunction::Std,
    ];
    let specs: Vec<WindowSpec> = [DAY, 7 * DAY, 30 * DAY, 90 * DAY]
        .into_iter()
        .flat_map(|window_ns| {
            functions.map(|function| WindowSpec {
                function,
                window_ns,
            })
        })
        .collect();

    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("10M_events_100k_keys_4_windows_x_5_functions", |b| {
        b.iter(|| aggregate_at_events(&events, &specs).expect("valid input"))
    });
    group.finish();
}

criterion_group!(benches, asof, windows);
criterion_main!(benches);
