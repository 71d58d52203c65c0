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
//! - `last`: the value of the latest event holding one, null when there are none. Events with
//!   equal times are ordered by [`Events::created`] when given (an absent created time first),
//!   then by row: the later created time, then the later row, is the later event, the rule of
//!   the as-of join and of `materialize`.
//!
//! Queries keyed [`NULL_KEY`] and keys without events get the empty-window answers; events keyed
//! [`NULL_KEY`] belong to no window. Query and event order are arbitrary; outputs follow the
//! query order, one array per [`WindowSpec`].
//!
//! Method: events and queries are grouped by key (radix) and sorted by time inside each key; then
//! one pass per key moves a shared window end (events `≤ t` enter) and, per distinct window
//! length, a window start (events `≤ t − w` leave), so every event enters and leaves once per
//! window length. Functions update in O(1) amortized per event (see `stats.rs` for the numerics):
//! a count, a two-stack sum, two-stack moments for `std`, monotonic deques for `min`/`max` and the
//! last non-null position for `last`; only what the requested functions need is maintained. Keys
//! are split between cores. Answers are written in the pass's (grouped) order and permuted back
//! to query order once at the end (see `evaluate`).
//!
//! [`NULL_KEY`]: super::NULL_KEY

use std::sync::Arc;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};

use super::group::{Groups, check_rows, group_by_key, run_parallel, split_groups, worker_count};
use super::stats::{ExtremeDeque, Moments, SlidingAgg, Sum};
use super::{ComputeError, Result, check_len};

/// The aggregation functions are the definitions' own ([`quiver_core::definitions::AggFunction`]),
/// so a view's `functions: [...]` reach the operator without a translation table.
pub use quiver_core::definitions::AggFunction;

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

/// The events aggregated over: one key id, event time (ns) and value per row, and optionally a
/// created time (ns) per row that orders events with equal event times.
#[derive(Clone, Copy, Debug)]
pub struct Events<'a> {
    pub keys: &'a [u32],
    pub times: &'a [i64],
    pub values: EventValues<'a>,
    /// Breaks ties between equal event times (`None` in a row: before any created time).
    pub created: Option<&'a [Option<i64>]>,
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
    if let Some(created) = events.created {
        check_len(
            "event created times",
            created.len(),
            "event keys",
            events.keys.len(),
        )?;
    }
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
        groups.sort_within_by_time(events.times, events.created);
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
        groups.sort_within_by_time(times, None);
        let times = groups.rows.iter().map(|&r| times[r as usize]).collect();
        Timeline {
            groups,
            times,
            values: Vec::new(),
        }
    }
}

/// The running state of one distinct window length inside one key's pass.
struct WindowState {
    window: i64,
    /// The specs with this window length.
    specs: Vec<Slot>,
    /// Record slot of this window's non-null count.
    count_slot: usize,
    sum: Option<SlidingAgg<Sum>>,
    moments: Option<SlidingAgg<Moments>>,
    min: Option<ExtremeDeque<false>>,
    max: Option<ExtremeDeque<true>>,
    start: usize,
    count: usize,
    /// The latest position with a non-null value that entered.
    latest: Option<usize>,
}

impl WindowState {
    fn reset(&mut self, first: usize) {
        self.start = first;
        self.count = 0;
        self.latest = None;
        if let Some(s) = &mut self.sum {
            s.reset(first);
        }
        if let Some(m) = &mut self.moments {
            m.reset(first);
        }
        if let Some(d) = &mut self.min {
            d.reset();
        }
        if let Some(d) = &mut self.max {
            d.reset();
        }
    }

    fn push(&mut self, position: usize, values: &[f64]) {
        let v = values[position];
        if !v.is_nan() {
            self.count += 1;
            self.latest = Some(position);
        }
        if let Some(s) = &mut self.sum {
            s.push(v);
        }
        if let Some(m) = &mut self.moments {
            m.push(v);
        }
        if let Some(d) = &mut self.min {
            d.push(position, values);
        }
        if let Some(d) = &mut self.max {
            d.push(position, values);
        }
    }

    /// Lets the events at or before `t − window` leave.
    fn advance_start(&mut self, t: i64, end: usize, times: &[i64], values: &[f64]) {
        // `t − w` below i64::MIN means no event can have left yet.
        let Some(leave_at) = t.checked_sub(self.window) else {
            return;
        };
        while self.start < end && times[self.start] <= leave_at {
            if !values[self.start].is_nan() {
                self.count -= 1;
            }
            if let Some(s) = &mut self.sum {
                s.pop(values);
            }
            if let Some(m) = &mut self.moments {
                m.pop(values);
            }
            if let Some(d) = &mut self.min {
                d.pop(self.start);
            }
            if let Some(d) = &mut self.max {
                d.pop(self.start);
            }
            self.start += 1;
        }
    }

    /// Writes the count and every function's answer (meaningful only where the count makes it
    /// non-null, see [`assemble`]) into `record`.
    fn write(&self, record: &mut [f64], values: &[f64]) {
        record[self.count_slot] = self.count as f64;
        if self.count == 0 {
            return; // the zeros already there are the answers
        }
        let sum = || self.sum.as_ref().map_or(0.0, SlidingAgg::get);
        for &(_, function, slot) in &self.specs {
            record[slot] = match function {
                AggFunction::Count => continue,
                AggFunction::Sum => sum(),
                AggFunction::Mean => sum() / self.count as f64,
                AggFunction::Std => self
                    .moments
                    .as_ref()
                    .and_then(|m| m.get().sample_std())
                    .unwrap_or(0.0),
                AggFunction::Min => self.min.as_ref().and_then(|d| d.get(values)).unwrap_or(0.0),
                AggFunction::Max => self.max.as_ref().and_then(|d| d.get(values)).unwrap_or(0.0),
                AggFunction::Last => self.latest.map_or(0.0, |p| values[p]),
            };
        }
    }
}

/// A spec placed in the records: `(spec index, function, record slot)`.
type Slot = (usize, AggFunction, usize);

/// The layout of the per-query records: for each distinct window length its count slot, then
/// one slot per spec of that length.
struct Layout {
    width: usize,
    /// Per distinct window length: the length, its count slot and its specs.
    windows: Vec<(i64, usize, Vec<Slot>)>,
}

impl Layout {
    fn new(specs: &[WindowSpec]) -> Self {
        let mut windows: Vec<(i64, Vec<(usize, AggFunction)>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match windows.iter_mut().find(|(w, _)| *w == spec.window_ns) {
                Some((_, members)) => members.push((i, spec.function)),
                None => windows.push((spec.window_ns, vec![(i, spec.function)])),
            }
        }
        let mut width = 0;
        let windows = windows
            .into_iter()
            .map(|(window, members)| {
                let count_slot = width;
                width += 1;
                let members = members
                    .into_iter()
                    .map(|(i, f)| {
                        width += 1;
                        (i, f, width - 1)
                    })
                    .collect();
                (window, count_slot, members)
            })
            .collect();
        Layout { width, windows }
    }

    fn states(&self) -> Vec<WindowState> {
        self.windows
            .iter()
            .map(|(window, count_slot, specs)| {
                let has = |f: &[AggFunction]| specs.iter().any(|(_, g, _)| f.contains(g));
                WindowState {
                    window: *window,
                    specs: specs.clone(),
                    count_slot: *count_slot,
                    sum: has(&[AggFunction::Sum, AggFunction::Mean]).then(SlidingAgg::new),
                    moments: has(&[AggFunction::Std]).then(SlidingAgg::new),
                    min: has(&[AggFunction::Min]).then(ExtremeDeque::new),
                    max: has(&[AggFunction::Max]).then(ExtremeDeque::new),
                    start: 0,
                    count: 0,
                    latest: None,
                }
            })
            .collect()
    }
}

/// Computes every spec for every query.
///
/// Answers go first into one record of `layout.width` floats per query, in grouped order (the
/// order the pass runs in), then [`assemble`] reads each record once, in query order, into the
/// output columns. Writing each answer straight to its column in query order instead made every
/// answer a cache and TLB miss (over 10 s at 10M queries × 20 specs); a record is read with one
/// or a few adjacent cache lines.
fn evaluate(
    events: &Timeline,
    queries: &Timeline,
    rows: usize,
    specs: &[WindowSpec],
) -> Vec<ArrayRef> {
    let layout = Layout::new(specs);
    let width = layout.width;
    // For each query group, the event group of the same key (both key lists ascend).
    let mut matches = Vec::with_capacity(queries.groups.len());
    let mut e = 0;
    for &key in &queries.groups.keys {
        while e < events.groups.len() && events.groups.keys[e] < key {
            e += 1;
        }
        matches.push((e < events.groups.len() && events.groups.keys[e] == key).then_some(e));
    }

    // Zeros are the empty-window record (count 0, sum 0); keys without events keep it.
    let mut records = vec![0.0; width * queries.times.len()];
    let chunks = split_groups(&queries.groups.starts, worker_count(queries.times.len()));
    let mut pieces = Vec::with_capacity(chunks.len());
    let mut rest: &mut [f64] = &mut records;
    for chunk in chunks {
        let len = (queries.groups.starts[chunk.end] - queries.groups.starts[chunk.start]) * width;
        let (piece, tail) = rest.split_at_mut(len);
        pieces.push((chunk, piece));
        rest = tail;
    }
    run_parallel(pieces, |(chunk, piece)| {
        let mut states = layout.states();
        let base = queries.groups.starts[chunk.start];
        for g in chunk {
            let Some(e) = matches[g] else {
                continue;
            };
            let (first, last_event) = (events.groups.starts[e], events.groups.starts[e + 1]);
            for state in &mut states {
                state.reset(first);
            }
            let mut end = first;
            for q in queries.groups.starts[g]..queries.groups.starts[g + 1] {
                let t = queries.times[q];
                while end < last_event && events.times[end] <= t {
                    for state in &mut states {
                        state.push(end, &events.values);
                    }
                    end += 1;
                }
                let record = &mut piece[(q - base) * width..(q - base + 1) * width];
                for state in &mut states {
                    state.advance_start(t, end, &events.times, &events.values);
                    state.write(record, &events.values);
                }
            }
        }
    });
    assemble(&records, &layout, &queries.groups.rows, rows)
}

/// Permutes grouped-order records into one column per spec in query order. Nulls follow from
/// the window's count alone: `mean`, `min`, `max` and `last` need one value, `std` two; `sum` and
/// `count` are never null.
fn assemble(records: &[f64], layout: &Layout, grouped_rows: &[u32], rows: usize) -> Vec<ArrayRef> {
    let width = layout.width;
    // Where each query row's record is; `u32::MAX` for null keys, which are in no group.
    let mut position = vec![u32::MAX; rows];
    for (i, &row) in grouped_rows.iter().enumerate() {
        position[row as usize] = i as u32;
    }
    let empty = vec![0.0; width];
    // Column-major copy of the records, in query order, split into row ranges per worker.
    let mut columns: Vec<Vec<f64>> = (0..width).map(|_| vec![0.0; rows]).collect();
    let workers = worker_count(rows);
    let bounds: Vec<usize> = (0..=workers).map(|w| rows * w / workers).collect();
    let mut pieces: Vec<(usize, Vec<&mut [f64]>)> =
        (0..workers).map(|w| (bounds[w], Vec::new())).collect();
    for column in &mut columns {
        let mut rest: &mut [f64] = column;
        for (w, piece) in pieces.iter_mut().enumerate() {
            let (head, tail) = rest.split_at_mut(bounds[w + 1] - bounds[w]);
            piece.1.push(head);
            rest = tail;
        }
    }
    run_parallel(pieces, |(first_row, mut slots)| {
        let len = slots.first().map_or(0, |s| s.len());
        for i in 0..len {
            let record = match position[first_row + i] {
                u32::MAX => empty.as_slice(),
                p => &records[p as usize * width..(p as usize + 1) * width],
            };
            for (slot, &value) in slots.iter_mut().zip(record) {
                slot[i] = value;
            }
        }
    });

    let mut arrays: Vec<Option<ArrayRef>> = Vec::new();
    let mut columns: Vec<Option<Vec<f64>>> = columns.into_iter().map(Some).collect();
    for (_, count_slot, specs) in &layout.windows {
        let counts = columns[*count_slot].take().unwrap_or_default();
        for &(spec, function, slot) in specs {
            // Counts are held as f64 in the records; exact far beyond any window's size.
            let min_count = match function {
                AggFunction::Count | AggFunction::Sum => 0.0,
                AggFunction::Std => 2.0,
                AggFunction::Mean | AggFunction::Min | AggFunction::Max | AggFunction::Last => 1.0,
            };
            let array: ArrayRef = if function == AggFunction::Count {
                Arc::new(counts.iter().map(|&c| c as i64).collect::<Int64Array>())
            } else {
                let values = columns[slot].take().unwrap_or_default();
                let nulls = (min_count > 0.0 && counts.iter().any(|&c| c < min_count)).then(|| {
                    let mut valid = BooleanBufferBuilder::new(rows);
                    for &c in &counts {
                        valid.append(c >= min_count);
                    }
                    valid.finish().into()
                });
                Arc::new(Float64Array::new(values.into(), nulls))
            };
            if arrays.len() <= spec {
                arrays.resize(spec + 1, None);
            }
            arrays[spec] = Some(array);
        }
    }
    arrays.into_iter().flatten().collect()
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
            created: None,
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
            created: None,
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
    fn created_times_order_equal_event_times_for_last() {
        // Two events at t = 0: the first row was created later, so it is the latest event.
        let values = [Some(10.0), Some(20.0), Some(30.0), Some(40.0)];
        let created = [Some(2), Some(1), None, Some(5)];
        let events = Events {
            keys: &[0, 0, 1, 1],
            times: &[0, 0, 0, 0],
            values: EventValues::Slice(&values),
            created: Some(&created),
        };
        let spec = WindowSpec {
            function: AggFunction::Last,
            window_ns: DAY,
        };
        let out = aggregate_windows(&events, &[0, 1], &[DAY / 2, DAY / 2], &[spec]).unwrap();
        // Key 1: an absent created time sorts before a present one.
        assert_eq!(floats(&out[0]), vec![Some(10.0), Some(40.0)]);
        let at_events = aggregate_at_events(&events, &[spec]).unwrap();
        assert_eq!(
            floats(&at_events[0]),
            vec![Some(10.0), Some(10.0), Some(40.0), Some(40.0)]
        );
        // Without created times the later row wins.
        let plain = Events {
            created: None,
            ..events
        };
        let out = aggregate_windows(&plain, &[0], &[DAY / 2], &[spec]).unwrap();
        assert_eq!(floats(&out[0]), vec![Some(20.0)]);
        let short = [None];
        let bad = Events {
            created: Some(&short),
            ..events
        };
        assert!(aggregate_windows(&bad, &[0], &[0], &[spec]).is_err());
    }

    #[test]
    fn parses_names_and_rejects_bad_windows() {
        assert_eq!("AVG".parse::<AggFunction>().unwrap(), AggFunction::Mean);
        assert_eq!("stddev".parse::<AggFunction>().unwrap(), AggFunction::Std);
        for f in AggFunction::ALL {
            assert_eq!(f.name().parse::<AggFunction>().unwrap(), f);
        }
        assert!("median".parse::<AggFunction>().is_err());
        let events = Events {
            keys: &[],
            times: &[],
            values: EventValues::Slice(&[]),
            created: None,
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
