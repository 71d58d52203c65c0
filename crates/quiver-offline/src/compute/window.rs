//! Rolling-window aggregations per entity key, the `{column}__{function}__{window}` features.
//!
//! Semantics: for a query `(k, t)` and a window `w`, the window holds the events of key `k` with
//! event time in `(t − w, t]`: an event exactly `w` before the query has left, an event at the
//! query time counts. Null values are ignored by every function (they still occupy their event),
//! and `NaN` is treated as null, as pandas (where Feast computes these) does. On the non-null
//! values of the window:
//! - `sum`: their sum, `0.0` when there are none;
//! - `count`: how many there are (an `Int64` column), `0` when none;
//! - `mean`, `min`, `max`: null when there are none;
//! - `std`: the sample standard deviation (divisor n − 1), null below two values;
//! - `last`: the value of the latest event holding one (ties on event time: the later row), null
//!   when there are none.
//!
//! Queries keyed [`NULL_KEY`] and keys without events get the empty-window answers; events keyed
//! [`NULL_KEY`] belong to no window. Query and event order are arbitrary; outputs follow the
//! query order, one array per [`WindowSpec`].
//!
//! Method: events and queries are grouped by key (radix) and sorted by time inside each key; then
//! for each distinct window length one pass per key moves two pointers, the window's end (events
//! `≤ t` enter) and its start (events `≤ t − w` leave), so every event enters and leaves once per
//! window. Functions update in O(1) amortized per event (see `stats.rs` for the numerics): a
//! count, a two-stack sum, two-stack moments for `std`, monotonic deques for `min`/`max` and the
//! last non-null position for `last`. Only what the requested functions need is maintained.
//! Distinct window lengths are computed on separate cores.
//!
//! [`NULL_KEY`]: super::NULL_KEY

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};

use super::group::{Groups, check_rows, group_by_key, run_parallel, worker_count};
use super::stats::{ExtremeDeque, Moments, SlidingAgg, Sum};
use super::{ComputeError, Result, check_len};

/// An aggregation over a window's non-null values; see the module docs for each one's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunction {
    Sum,
    Mean,
    Count,
    Min,
    Max,
    Std,
    Last,
}

impl AggFunction {
    pub const ALL: [AggFunction; 7] = [
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Count,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::Std,
        AggFunction::Last,
    ];

    /// The canonical name, as used in feature names (`amount__sum__7d`).
    pub fn name(self) -> &'static str {
        match self {
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Count => "count",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::Std => "std",
            AggFunction::Last => "last",
        }
    }
}

impl FromStr for AggFunction {
    type Err = ComputeError;

    /// Accepts the canonical names plus `avg` and `stddev`, in any case.
    fn from_str(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "sum" => AggFunction::Sum,
            "mean" | "avg" => AggFunction::Mean,
            "count" => AggFunction::Count,
            "min" => AggFunction::Min,
            "max" => AggFunction::Max,
            "std" | "stddev" => AggFunction::Std,
            "last" => AggFunction::Last,
            _ => {
                return Err(ComputeError::UnknownFunction {
                    name: name.to_string(),
                });
            }
        })
    }
}

/// One output column: `function` over windows of `window_ns` nanoseconds (must be positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    pub function: AggFunction,
    pub window_ns: i64,
}

/// Event values, straight from Arrow or as plain options.
#[derive(Clone, Copy, Debug)]
pub enum EventValues<'a> {
    Arrow(&'a Float64Array),
    Slice(&'a [Option<f64>]),
}

impl EventValues<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            EventValues::Arrow(a) => a.len(),
            EventValues::Slice(s) => s.len(),
        }
    }

    /// The value of `row`, `NaN` for null (the internal "missing" mark).
    pub(crate) fn get(&self, row: usize) -> f64 {
        match self {
            EventValues::Arrow(a) if a.is_null(row) => f64::NAN,
            EventValues::Arrow(a) => a.value(row),
            EventValues::Slice(s) => s[row].unwrap_or(f64::NAN),
        }
    }
}

impl<'a> From<&'a Float64Array> for EventValues<'a> {
    fn from(array: &'a Float64Array) -> Self {
        EventValues::Arrow(array)
    }
}

impl<'a> From<&'a [Option<f64>]> for EventValues<'a> {
    fn from(values: &'a [Option<f64>]) -> Self {
        EventValues::Slice(values)
    }
}

/// The events aggregated over: one key id, event time (ns) and value per row.
#[derive(Clone, Copy, Debug)]
pub struct Events<'a> {
    pub keys: &'a [u32],
    pub times: &'a [i64],
    pub values: EventValues<'a>,
}

/// Evaluates every spec at each query `(query_keys[i], query_times[i])`; returns one array per
/// spec (`Float64Array`, or `Int64Array` for `count`), each in query order.
pub fn aggregate_windows(
    events: &Events<'_>,
    query_keys: &[u32],
    query_times: &[i64],
    specs: &[WindowSpec],
) -> Result<Vec<ArrayRef>> {
    check_events(events, specs)?;
    check_len(
        "query_times",
        query_times.len(),
        "query_keys",
        query_keys.len(),
    )?;
    check_rows("query_keys", query_keys.len())?;
    let big = worker_count(events.keys.len() + query_keys.len()) > 1;
    let (sorted, queries) = if big {
        std::thread::scope(|s| {
            let queries = s.spawn(|| Timeline::queries(query_keys, query_times));
            let sorted = Timeline::events(events);
            match queries.join() {
                Ok(queries) => (sorted, queries),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    } else {
        (
            Timeline::events(events),
            Timeline::queries(query_keys, query_times),
        )
    };
    Ok(evaluate(&sorted, &queries, query_keys.len(), specs))
}

/// Evaluates every spec at each event's own key and time (what `quiver build` writes per event
/// row); the same as [`aggregate_windows`] with the events as queries, sorting only once.
pub fn aggregate_at_events(events: &Events<'_>, specs: &[WindowSpec]) -> Result<Vec<ArrayRef>> {
    check_events(events, specs)?;
    let sorted = Timeline::events(events);
    Ok(evaluate(&sorted, &sorted, events.keys.len(), specs))
}

fn check_events(events: &Events<'_>, specs: &[WindowSpec]) -> Result<()> {
    check_len(
        "event times",
        events.times.len(),
        "event keys",
        events.keys.len(),
    )?;
    check_len(
        "event values",
        events.values.len(),
        "event keys",
        events.keys.len(),
    )?;
    check_rows("event keys", events.keys.len())?;
    if let Some(spec) = specs.iter().find(|s| s.window_ns <= 0) {
        return Err(ComputeError::InvalidArgument {
            message: format!(
                "window of `{}` must be positive, got {} ns",
                spec.function.name(),
                spec.window_ns
            ),
        });
    }
    Ok(())
}

/// Rows grouped by key and sorted by `(time, row)` inside each key, with times (and, for events,
/// values) gathered into that order so the passes read memory sequentially.
struct Timeline {
    groups: Groups,
    times: Vec<i64>,
    values: Vec<f64>,
}

impl Timeline {
    fn events(events: &Events<'_>) -> Self {
        let mut groups = group_by_key(events.keys);
        groups.sort_within_by_time(events.times);
        let times = groups
            .rows
            .iter()
            .map(|&r| events.times[r as usize])
            .collect();
        let values = groups
            .rows
            .iter()
            .map(|&r| events.values.get(r as usize))
            .collect();
        Timeline {
            groups,
            times,
            values,
        }
    }

    fn queries(keys: &[u32], times: &[i64]) -> Self {
        let mut groups = group_by_key(keys);
        groups.sort_within_by_time(times);
        let times = groups.rows.iter().map(|&r| times[r as usize]).collect();
        Timeline {
            groups,
            times,
            values: Vec::new(),
        }
    }
}

/// Which running state a window length needs for its specs.
#[derive(Clone, Copy, Default)]
struct Needs {
    sum: bool,
    moments: bool,
    min: bool,
    max: bool,
}

/// One spec's output column, indexed by query row.
enum Output {
    Float {
        values: Vec<f64>,
        valid: BooleanBufferBuilder,
    },
    Count(Vec<i64>),
}

impl Output {
    fn new(function: AggFunction, rows: usize) -> Self {
        match function {
            AggFunction::Count => Output::Count(vec![0; rows]),
            function => {
                let mut valid = BooleanBufferBuilder::new(rows);
                // Sums of empty windows are 0, not null; every other float starts null.
                valid.append_n(rows, function == AggFunction::Sum);
                Output::Float {
                    values: vec![0.0; rows],
                    valid,
                }
            }
        }
    }

    fn into_array(self) -> ArrayRef {
        match self {
            Output::Count(counts) => Arc::new(Int64Array::from(counts)),
            Output::Float { values, mut valid } => {
                let valid = valid.finish();
                let nulls = (valid.count_set_bits() < valid.len()).then(|| valid.into());
                Arc::new(Float64Array::new(values.into(), nulls))
            }
        }
    }
}

/// Computes all specs, one distinct window length per task, tasks spread over the cores.
fn evaluate(
    events: &Timeline,
    queries: &Timeline,
    rows: usize,
    specs: &[WindowSpec],
) -> Vec<ArrayRef> {
    let mut windows: Vec<(i64, Vec<usize>)> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match windows.iter_mut().find(|(w, _)| *w == spec.window_ns) {
            Some((_, members)) => members.push(i),
            None => windows.push((spec.window_ns, vec![i])),
        }
    }
    // For each query group, the event group of the same key (both key lists ascend).
    let mut matches = Vec::with_capacity(queries.groups.len());
    let mut e = 0;
    for &key in &queries.groups.keys {
        while e < events.groups.len() && events.groups.keys[e] < key {
            e += 1;
        }
        matches.push((e < events.groups.len() && events.groups.keys[e] == key).then_some(e));
    }
    let workers = worker_count(events.times.len() + queries.times.len()).min(windows.len());
    let mut tasks: Vec<Vec<(i64, Vec<usize>)>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
    for (i, window) in windows.into_iter().enumerate() {
        tasks[i % workers.max(1)].push(window);
    }
    let done = run_parallel(tasks, |task| {
        task.into_iter()
            .flat_map(|(window, members)| {
                let mut outputs: Vec<Output> = members
                    .iter()
                    .map(|&i| Output::new(specs[i].function, rows))
                    .collect();
                let functions: Vec<AggFunction> =
                    members.iter().map(|&i| specs[i].function).collect();
                one_window(events, queries, &matches, window, &functions, &mut outputs);
                members.into_iter().zip(outputs).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    let mut arrays: Vec<Option<ArrayRef>> = vec![None; specs.len()];
    for (i, output) in done.into_iter().flatten() {
        arrays[i] = Some(output.into_array());
    }
    arrays.into_iter().flatten().collect()
}

/// The two-pointer pass of one window length over every key, writing `outputs[j]` for
/// `functions[j]`.
fn one_window(
    events: &Timeline,
    queries: &Timeline,
    matches: &[Option<usize>],
    window: i64,
    functions: &[AggFunction],
    outputs: &mut [Output],
) {
    let mut needs = Needs::default();
    for f in functions {
        match f {
            AggFunction::Sum | AggFunction::Mean => needs.sum = true,
            AggFunction::Std => needs.moments = true,
            AggFunction::Min => needs.min = true,
            AggFunction::Max => needs.max = true,
            AggFunction::Count | AggFunction::Last => {}
        }
    }
    let values = &events.values;
    let mut sum = SlidingAgg::<Sum>::new();
    let mut moments = SlidingAgg::<Moments>::new();
    let mut min = ExtremeDeque::<false>::new();
    let mut max = ExtremeDeque::<true>::new();
    for (g, matched) in matches.iter().enumerate() {
        let Some(e) = *matched else {
            continue; // no events: the outputs' initial values are the empty-window answers
        };
        let (first, last_event) = (events.groups.starts[e], events.groups.starts[e + 1]);
        sum.reset(first);
        moments.reset(first);
        min.reset();
        max.reset();
        let (mut start, mut end) = (first, first);
        let mut count = 0i64;
        let mut latest: Option<usize> = None;
        for q in queries.groups.starts[g]..queries.groups.starts[g + 1] {
            let t = queries.times[q];
            while end < last_event && events.times[end] <= t {
                let v = values[end];
                if !v.is_nan() {
                    count += 1;
                    latest = Some(end);
                }
                if needs.sum {
                    sum.push(v);
                }
                if needs.moments {
                    moments.push(v);
                }
                if needs.min {
                    min.push(end, values);
                }
                if needs.max {
                    max.push(end, values);
                }
                end += 1;
            }
            // `t − w` below i64::MIN means no event can have left yet.
            if let Some(leave_at) = t.checked_sub(window) {
                while start < end && events.times[start] <= leave_at {
                    if !values[start].is_nan() {
                        count -= 1;
                    }
                    if needs.sum {
                        sum.pop(values);
                    }
                    if needs.moments {
                        moments.pop(values);
                    }
                    if needs.min {
                        min.pop(start);
                    }
                    if needs.max {
                        max.pop(start);
                    }
                    start += 1;
                }
            }
            let row = queries.groups.rows[q] as usize;
            for (function, output) in functions.iter().zip(outputs.iter_mut()) {
                let answer = match function {
                    AggFunction::Count => {
                        if let Output::Count(counts) = output {
                            counts[row] = count;
                        }
                        continue;
                    }
                    AggFunction::Sum => Some(sum.get()),
                    AggFunction::Mean => (count > 0).then(|| sum.get() / count as f64),
                    AggFunction::Std => moments.get().sample_std(),
                    AggFunction::Min => min.get(values),
                    AggFunction::Max => max.get(values),
                    AggFunction::Last => latest.filter(|&p| p >= start).map(|p| values[p]),
                };
                if let (Output::Float { values, valid }, Some(v)) = (output, answer) {
                    values[row] = v;
                    valid.set_bit(row, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::NULL_KEY;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    fn floats(array: &ArrayRef) -> Vec<Option<f64>> {
        array.as_primitive::<Float64Type>().iter().collect()
    }

    #[test]
    fn seven_day_window_excludes_its_start_and_includes_its_end() {
        // Key 0: 10 on day 0, 20 on day 3, null on day 5, 40 on day 7.
        let values = [Some(10.0), Some(20.0), None, Some(40.0)];
        let events = Events {
            keys: &[0, 0, 0, 0],
            times: &[0, 3 * DAY, 5 * DAY, 7 * DAY],
            values: EventValues::Slice(&values),
        };
        let specs: Vec<WindowSpec> = AggFunction::ALL
            .iter()
            .map(|&function| WindowSpec {
                function,
                window_ns: 7 * DAY,
            })
            .collect();
        // Day 7: (0, 7] holds 20, null, 40 (day 0 is exactly 7 days back and has left).
        // Day 6: (-1, 6] holds 10, 20, null. Key 1 has no events; NULL_KEY matches nothing.
        let out = aggregate_windows(
            &events,
            &[0, 0, 1, NULL_KEY],
            &[7 * DAY, 6 * DAY, DAY, DAY],
            &specs,
        )
        .unwrap();
        let std = (200.0f64).sqrt();
        assert_eq!(
            floats(&out[0]),
            vec![Some(60.0), Some(30.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(floats(&out[1]), vec![Some(30.0), Some(15.0), None, None]);
        assert_eq!(
            out[2].as_primitive::<Int64Type>().values().to_vec(),
            vec![2, 2, 0, 0]
        );
        assert_eq!(floats(&out[3]), vec![Some(20.0), Some(10.0), None, None]);
        assert_eq!(floats(&out[4]), vec![Some(40.0), Some(20.0), None, None]);
        let got_std = floats(&out[5]);
        assert!((got_std[0].unwrap() - std).abs() < 1e-12);
        assert!((got_std[1].unwrap() - (50.0f64).sqrt()).abs() < 1e-12);
        assert_eq!(got_std[2], None);
        // Last skips the null on day 5 but the day-7 event is in the first window.
        assert_eq!(floats(&out[6]), vec![Some(40.0), Some(20.0), None, None]);
    }

    #[test]
    fn at_events_uses_each_events_own_time_and_later_rows_win_ties() {
        let values = Float64Array::from(vec![Some(1.0), Some(2.0), Some(3.0), Some(f64::NAN)]);
        let events = Events {
            keys: &[5, 5, 5, 5],
            times: &[10, 10, 20, 20],
            values: EventValues::from(&values),
        };
        let specs = [
            WindowSpec {
                function: AggFunction::Last,
                window_ns: 10,
            },
            WindowSpec {
                function: AggFunction::Count,
                window_ns: 10,
            },
            WindowSpec {
                function: AggFunction::Sum,
                window_ns: 11,
            },
        ];
        let out = aggregate_at_events(&events, &specs).unwrap();
        // At t = 10 both day-10 rows are in; at t = 20, (10, 20] drops them. NaN is ignored.
        assert_eq!(
            floats(&out[0]),
            vec![Some(2.0), Some(2.0), Some(3.0), Some(3.0)]
        );
        assert_eq!(
            out[1].as_primitive::<Int64Type>().values().to_vec(),
            vec![2, 2, 1, 1]
        );
        assert_eq!(
            floats(&out[2]),
            vec![Some(3.0), Some(3.0), Some(6.0), Some(6.0)]
        );
    }

    #[test]
    fn parses_names_and_rejects_bad_windows() {
        assert_eq!("AVG".parse::<AggFunction>().unwrap(), AggFunction::Mean);
        assert_eq!("stddev".parse::<AggFunction>().unwrap(), AggFunction::Std);
        for f in AggFunction::ALL {
            assert_eq!(f.name().parse::<AggFunction>().unwrap(), f);
        }
        assert!(matches!(
            "median".parse::<AggFunction>(),
            Err(ComputeError::UnknownFunction { .. })
        ));
        let events = Events {
            keys: &[],
            times: &[],
            values: EventValues::Slice(&[]),
        };
        let spec = WindowSpec {
            function: AggFunction::Sum,
            window_ns: 0,
        };
        assert!(aggregate_at_events(&events, &[spec]).is_err());
        let out = aggregate_windows(
            &events,
            &[],
            &[],
            &[WindowSpec {
                window_ns: 1,
                ..spec
            }],
        )
        .unwrap();
        assert_eq!(out[0].len(), 0);
        assert!(aggregate_windows(&events, &[1], &[], &[]).is_err());
    }
}
