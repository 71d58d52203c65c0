//! Price time-series helpers per ticker (key id): N-period return, momentum and rolling
//! volatility.
//!
//! Rows are taken per key in `(time, created, row)` order, whatever their input order (created
//! times, when given, break ties between equal times as everywhere else: an absent one first), and "N periods
//! back" means N rows earlier in that order (periods are rows, not calendar time, as in pandas'
//! `pct_change(N)` / `diff(N)`). Outputs are one `Float64Array` in input row order:
//! - [`period_returns`]: `close_t / close_{t−N} − 1`;
//! - [`momentum`]: `close_t − close_{t−N}`;
//! - [`rolling_volatility`]: the sample standard deviation (n − 1) of the last N one-period log
//!   returns `ln(close_i / close_{i−1})`, not annualised.
//!
//! An output is null until a key has enough history (N earlier rows; N + 1 closes for the
//! volatility), when a close it needs is null or `NaN`, when a return's base close is zero, and
//! when a log return is undefined (a close ≤ 0). Rows keyed [`NULL_KEY`] get null. Missing values
//! are not skipped or filled: a gap in the history nulls exactly the outputs that need it, which is
//! what pandas' rolling `min_periods = N` gives.
//!
//! [`NULL_KEY`]: super::NULL_KEY

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array};

use super::group::{check_rows, group_by_key};
use super::stats::{Moments, SlidingAgg};
use super::window::EventValues;
use super::{ComputeError, Result, check_len};

/// `close_t / close_{t−N} − 1` per row; `periods` ≥ 1.
pub fn period_returns(
    keys: &[u32],
    times: &[i64],
    created: Option<&[Option<i64>]>,
    close: EventValues<'_>,
    periods: usize,
) -> Result<ArrayRef> {
    lagged(keys, times, created, close, periods, |now, then| {
        (then != 0.0).then(|| now / then - 1.0)
    })
}

/// `close_t − close_{t−N}` per row; `periods` ≥ 1.
pub fn momentum(
    keys: &[u32],
    times: &[i64],
    created: Option<&[Option<i64>]>,
    close: EventValues<'_>,
    periods: usize,
) -> Result<ArrayRef> {
    lagged(keys, times, created, close, periods, |now, then| {
        Some(now - then)
    })
}

/// Sample standard deviation of the last `periods` log returns per row; `periods` ≥ 2 (one
/// return has no sample deviation).
pub fn rolling_volatility(
    keys: &[u32],
    times: &[i64],
    created: Option<&[Option<i64>]>,
    close: EventValues<'_>,
    periods: usize,
) -> Result<ArrayRef> {
    if periods < 2 {
        return Err(ComputeError::InvalidArgument {
            message: format!("volatility needs at least 2 periods, got {periods}"),
        });
    }
    let series = Series::new(keys, times, created, close)?;
    let mut out = vec![None; keys.len()];
    let mut returns = Vec::new();
    let mut window = SlidingAgg::<Moments>::new();
    for g in 0..series.starts.len() - 1 {
        let rows = &series.rows[series.starts[g]..series.starts[g + 1]];
        // returns[i] is the log return into rows[i + 1]; NaN when undefined.
        returns.clear();
        returns.extend(rows.windows(2).map(|pair| {
            let (then, now) = (
                series.close[pair[0] as usize],
                series.close[pair[1] as usize],
            );
            if then > 0.0 && now > 0.0 {
                (now / then).ln()
            } else {
                f64::NAN
            }
        }));
        window.reset(0);
        let mut defined = 0;
        for (i, &r) in returns.iter().enumerate() {
            window.push(r);
            defined += usize::from(!r.is_nan());
            if i >= periods {
                window.pop(&returns);
                defined -= usize::from(!returns[i - periods].is_nan());
            }
            if defined == periods {
                out[rows[i + 1] as usize] = window.get().sample_std();
            }
        }
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// The shared shape of return and momentum: `f(close_t, close_{t−N})` when both are present.
fn lagged(
    keys: &[u32],
    times: &[i64],
    created: Option<&[Option<i64>]>,
    close: EventValues<'_>,
    periods: usize,
    f: impl Fn(f64, f64) -> Option<f64>,
) -> Result<ArrayRef> {
    if periods == 0 {
        return Err(ComputeError::InvalidArgument {
            message: "periods must be at least 1".into(),
        });
    }
    let series = Series::new(keys, times, created, close)?;
    let mut out = vec![None; keys.len()];
    for g in 0..series.starts.len() - 1 {
        let rows = &series.rows[series.starts[g]..series.starts[g + 1]];
        for (then, now) in rows.iter().zip(rows.iter().skip(periods)) {
            let (a, b) = (series.close[*now as usize], series.close[*then as usize]);
            if !a.is_nan() && !b.is_nan() {
                out[*now as usize] = f(a, b);
            }
        }
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// Rows grouped by key and time-sorted, with closes by input row (`NaN` = null).
struct Series {
    rows: Vec<u32>,
    starts: Vec<usize>,
    close: Vec<f64>,
}

impl Series {
    fn new(
        keys: &[u32],
        times: &[i64],
        created: Option<&[Option<i64>]>,
        close: EventValues<'_>,
    ) -> Result<Self> {
        check_len("times", times.len(), "keys", keys.len())?;
        if let Some(created) = created {
            check_len("created", created.len(), "keys", keys.len())?;
        }
        check_len("close", close.len(), "keys", keys.len())?;
        check_rows("keys", keys.len())?;
        let mut groups = group_by_key(keys);
        groups.sort_within_by_time(times, created);
        let close = (0..keys.len()).map(|r| close.get(r)).collect();
        Ok(Series {
            rows: groups.rows,
            starts: groups.starts,
            close,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::NULL_KEY;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    use super::*;

    fn floats(array: &ArrayRef) -> Vec<Option<f64>> {
        array.as_primitive::<Float64Type>().iter().collect()
    }

    #[test]
    fn returns_and_momentum_per_ticker_in_input_order() {
        // Ticker 0 closes 100, 110, 121 at times 1..3 given out of order; ticker 1 one row.
        let keys = [0, 1, 0, 0, NULL_KEY];
        let times = [3, 1, 1, 2, 1];
        let close = [Some(121.0), Some(50.0), Some(100.0), Some(110.0), Some(1.0)];
        let r1 = period_returns(&keys, &times, None, EventValues::Slice(&close), 1).unwrap();
        let got = floats(&r1);
        assert!((got[0].unwrap() - 0.1).abs() < 1e-12);
        assert!((got[3].unwrap() - 0.1).abs() < 1e-12);
        assert_eq!((got[1], got[2], got[4]), (None, None, None));
        let m2 = momentum(&keys, &times, None, EventValues::Slice(&close), 2).unwrap();
        assert_eq!(floats(&m2), vec![Some(21.0), None, None, None, None]);
    }

    #[test]
    fn created_times_order_rows_with_equal_times() {
        // Two closes at time 1: the first row was created later, so it is the later period.
        let keys = [0, 0, 0];
        let times = [1, 1, 0];
        let created = [Some(9), Some(3), None];
        let close = [Some(120.0), Some(110.0), Some(100.0)];
        let m1 = momentum(&keys, &times, Some(&created), EventValues::Slice(&close), 1).unwrap();
        assert_eq!(floats(&m1), vec![Some(10.0), Some(10.0), None]);
        let m2 = momentum(&keys, &times, Some(&created), EventValues::Slice(&close), 2).unwrap();
        assert_eq!(floats(&m2), vec![Some(20.0), None, None]);
        // Without created times the later row is the later period.
        let m2 = momentum(&keys, &times, None, EventValues::Slice(&close), 2).unwrap();
        assert_eq!(floats(&m2), vec![None, Some(10.0), None]);
    }

    #[test]
    fn volatility_is_sample_std_of_log_returns_and_nulls_gaps() {
        let close = [
            Some(100.0),
            Some(110.0),
            Some(99.0),
            Some(99.0),
            None,
            Some(120.0),
        ];
        let keys = [7; 6];
        let times = [0, 1, 2, 3, 4, 5];
        let vol = rolling_volatility(&keys, &times, None, EventValues::Slice(&close), 2).unwrap();
        let got = floats(&vol);
        let r = [(110.0f64 / 100.0).ln(), (99.0f64 / 110.0).ln(), 0.0];
        let std2 = |a: f64, b: f64| ((a - b).abs()) / 2f64.sqrt();
        assert_eq!((got[0], got[1]), (None, None));
        assert!((got[2].unwrap() - std2(r[0], r[1])).abs() < 1e-12);
        assert!((got[3].unwrap() - std2(r[1], r[2])).abs() < 1e-12);
        // The null close at time 4 leaves returns into rows 4 and 5 undefined.
        assert_eq!((got[4], got[5]), (None, None));
        assert!(rolling_volatility(&keys, &times, None, EventValues::Slice(&close), 1).is_err());
        assert!(momentum(&keys, &times, None, EventValues::Slice(&close), 0).is_err());
        assert!(momentum(&keys, &[], None, EventValues::Slice(&close), 1).is_err());
    }
}
