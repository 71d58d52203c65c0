//! Sliding-window building blocks over a time-sorted run of values, where `NaN` marks a missing
//! value (callers map nulls to `NaN`; see `window.rs` for why that is also the NaN semantics).
//!
//! Sums and moments use a two-stack sliding aggregation rather than a running total with
//! subtraction: a running `sum += x; ...; sum -= x` keeps the rounding error of every value that
//! ever passed through the window (a 1e15 that left still spoils a window of small values), while
//! here every answer combines only values still inside the window, so the error is that of an
//! ordinary sum of the window. Cost stays O(1) amortized: each value is lifted once when it
//! enters and combined once more when the back stack is flipped into the front one. Moments
//! combine with Chan et al.'s pairwise update, which is stable where `Σx² − (Σx)²/n` cancels.
//!
//! Min and max use a monotonic deque of positions: O(1) amortized per value, exact.

/// An associative combination over window values.
pub(crate) trait Monoid {
    type Agg: Copy;
    const IDENTITY: Self::Agg;
    /// The aggregate of one value (`NaN` = missing = the identity).
    fn lift(value: f64) -> Self::Agg;
    /// `a` covers earlier positions than `b`.
    fn combine(a: Self::Agg, b: Self::Agg) -> Self::Agg;
}

/// Plain floating-point sum.
pub(crate) struct Sum;

impl Monoid for Sum {
    type Agg = f64;
    const IDENTITY: f64 = 0.0;

    fn lift(value: f64) -> f64 {
        if value.is_nan() { 0.0 } else { value }
    }

    fn combine(a: f64, b: f64) -> f64 {
        a + b
    }
}

/// Count, mean and sum of squared deviations from the mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Moments {
    pub n: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// Sample standard deviation (n − 1), `None` below two values.
    pub fn sample_std(self) -> Option<f64> {
        (self.n >= 2.0).then(|| (self.m2 / (self.n - 1.0)).sqrt())
    }
}

impl Monoid for Moments {
    type Agg = Moments;
    const IDENTITY: Moments = Moments {
        n: 0.0,
        mean: 0.0,
        m2: 0.0,
    };

    fn lift(value: f64) -> Moments {
        if value.is_nan() {
            Self::IDENTITY
        } else {
            Moments {
                n: 1.0,
                mean: value,
                m2: 0.0,
            }
        }
    }

    fn combine(a: Moments, b: Moments) -> Moments {
        if a.n == 0.0 {
            return b;
        }
        if b.n == 0.0 {
            return a;
        }
        let n = a.n + b.n;
        let delta = b.mean - a.mean;
        Moments {
            n,
            mean: a.mean + delta * (b.n / n),
            m2: a.m2 + b.m2 + delta * delta * (a.n * b.n / n),
        }
    }
}

/// A two-stack sliding aggregation over positions `start..end` of a caller-held value slice.
/// Positions enter at `end` and leave at `start`, in order (a FIFO window).
pub(crate) struct SlidingAgg<M: Monoid> {
    /// `front[i - base]` aggregates positions `i..mid`, for `i` in `start..mid`.
    front: Vec<M::Agg>,
    base: usize,
    start: usize,
    mid: usize,
    end: usize,
    /// Aggregates positions `mid..end`.
    back: M::Agg,
}

impl<M: Monoid> SlidingAgg<M> {
    pub fn new() -> Self {
        Self {
            front: Vec::new(),
            base: 0,
            start: 0,
            mid: 0,
            end: 0,
            back: M::IDENTITY,
        }
    }

    /// Empties the window and places it at position `at`.
    pub fn reset(&mut self, at: usize) {
        self.front.clear();
        self.base = at;
        self.start = at;
        self.mid = at;
        self.end = at;
        self.back = M::IDENTITY;
    }

    /// Appends position `end` holding `value`.
    pub fn push(&mut self, value: f64) {
        self.end += 1;
        self.back = M::combine(self.back, M::lift(value));
    }

    /// Removes position `start`; `values` is the slice positions index.
    pub fn pop(&mut self, values: &[f64]) {
        debug_assert!(self.start < self.end, "pop from an empty window");
        if self.start == self.mid {
            self.flip(values);
        }
        self.start += 1;
    }

    /// Moves the back stack into the front, computing suffix aggregates.
    fn flip(&mut self, values: &[f64]) {
        let needed = self.end - self.base;
        if self.front.len() < needed {
            self.front.resize(needed, M::IDENTITY);
        }
        let mut acc = M::IDENTITY;
        for i in (self.start..self.end).rev() {
            acc = M::combine(M::lift(values[i]), acc);
            self.front[i - self.base] = acc;
        }
        self.mid = self.end;
        self.back = M::IDENTITY;
    }

    /// The aggregate of the window.
    pub fn get(&self) -> M::Agg {
        if self.start < self.mid {
            M::combine(self.front[self.start - self.base], self.back)
        } else {
            self.back
        }
    }
}

/// A monotonic deque giving the minimum (or, with `MAX`, the maximum) of a FIFO window of
/// positions, skipping missing (`NaN`) values.
pub(crate) struct ExtremeDeque<const MAX: bool> {
    /// Positions with strictly improving values from `head` to the end; one slot per position
    /// ever pushed since the last reset, so no ring-buffer arithmetic is needed.
    positions: Vec<usize>,
    head: usize,
}

impl<const MAX: bool> ExtremeDeque<MAX> {
    pub fn new() -> Self {
        Self {
            positions: Vec::new(),
            head: 0,
        }
    }

    pub fn reset(&mut self) {
        self.positions.clear();
        self.head = 0;
    }

    pub fn push(&mut self, position: usize, values: &[f64]) {
        let value = values[position];
        if value.is_nan() {
            return;
        }
        // A later value at least as good makes earlier ones unreachable as the extreme.
        while self.positions.len() > self.head {
            let last = values[self.positions[self.positions.len() - 1]];
            let dominated = if MAX { last <= value } else { last >= value };
            if !dominated {
                break;
            }
            self.positions.pop();
        }
        self.positions.push(position);
    }

    /// Called when `position` leaves the window (positions leave in ascending order).
    pub fn pop(&mut self, position: usize) {
        if self.head < self.positions.len() && self.positions[self.head] == position {
            self.head += 1;
        }
    }

    pub fn get(&self, values: &[f64]) -> Option<f64> {
        self.positions.get(self.head).map(|&p| values[p])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_sum_forgets_large_values_that_left() {
        let values = [1e15, 1.0, 2.0, f64::NAN, 3.0];
        let mut agg = SlidingAgg::<Sum>::new();
        agg.reset(0);
        agg.push(values[0]);
        agg.push(values[1]);
        agg.pop(&values);
        assert_eq!(agg.get(), 1.0);
        for &v in &values[2..] {
            agg.push(v);
        }
        assert_eq!(agg.get(), 6.0);
        agg.pop(&values);
        assert_eq!(agg.get(), 5.0);
    }

    #[test]
    fn moments_match_two_pass_std() {
        let values = [100.000_001, 100.000_002, 99.999_999, 100.0, 100.000_003];
        let mut agg = SlidingAgg::<Moments>::new();
        agg.reset(0);
        for &v in &values {
            agg.push(v);
        }
        agg.pop(&values);
        let window = &values[1..];
        let mean = window.iter().sum::<f64>() / 4.0;
        let var = window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
        let std = agg.get().sample_std().unwrap();
        assert!((std - var.sqrt()).abs() < 1e-12, "{std} vs {}", var.sqrt());
        assert_eq!(Moments::lift(1.0).sample_std(), None);
    }

    #[test]
    fn deque_tracks_min_and_max_with_missing_values() {
        let values = [3.0, f64::NAN, 1.0, 2.0, 1.0, 5.0];
        let mut min = ExtremeDeque::<false>::new();
        let mut max = ExtremeDeque::<true>::new();
        let mut seen = Vec::new();
        for p in 0..values.len() {
            min.push(p, &values);
            max.push(p, &values);
            if p >= 3 {
                min.pop(p - 3);
                max.pop(p - 3);
            }
            seen.push((min.get(&values), max.get(&values)));
        }
        assert_eq!(seen[0], (Some(3.0), Some(3.0)));
        assert_eq!(seen[3], (Some(1.0), Some(2.0)));
        assert_eq!(seen[5], (Some(1.0), Some(5.0)));
        min.reset();
        assert_eq!(min.get(&values), None);
    }
}
