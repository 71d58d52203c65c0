//! The point-in-time (as-of) join: for each entity row, the feature row Feast would pick.
//!
//! Semantics (Feast's): for entity row `(k, t)`, the match is the feature row with key `k` and
//! the latest event time `≤ t`; with a TTL, also `≥ t − ttl` (both bounds inclusive). Feature
//! rows with equal event times are ordered by created time, an absent created time sorting before
//! any present one, and then by row index, the later row winning (the row appended last is the
//! correction). Entity rows keyed [`NULL_KEY`] get no match, and feature rows keyed [`NULL_KEY`]
//! are never matched. The result is one `Option<u32>` feature-row index per entity row, in the
//! entity rows' original order; [`take_columns`] turns it into feature columns with nulls for
//! `None`.
//!
//! Method: both sides are grouped by key with a radix sort (linear), then each key is merged on
//! its own. A key's feature rows are sorted by `(event, created, row)` only when the key has more
//! than a few entity rows, each of which then binary-searches; with few entity rows a linear scan
//! is cheaper than sorting, and keys no entity row asks for are never sorted at all. Total cost is
//! `O(n + m + Σ m_k log m_k)` at worst, never `O(n · m)`. Large inputs use every core: the two
//! sides are grouped concurrently and the keys are split between threads.
//!
//! [`NULL_KEY`]: super::NULL_KEY

use arrow_array::{ArrayRef, UInt32Array};
use arrow_select::take::take;

use super::group::{Groups, check_rows, group_by_key, run_parallel, split_groups, worker_count};
use super::{ComputeError, Result, check_len};

/// Up to this many entity rows for one key, scanning the key's feature rows once per entity row
/// beats sorting them.
const SCAN_MAX_ENTITY_ROWS: usize = 4;

/// Joins each entity row `(left_keys[i], left_times[i])` to the index of its feature row among
/// `right_*`, as described in the module docs. `right_created`, when given, has one entry per
/// feature row (`None` = no created time); `ttl_ns` must not be negative.
pub fn asof_join(
    left_keys: &[u32],
    left_times: &[i64],
    right_keys: &[u32],
    right_times: &[i64],
    right_created: Option<&[Option<i64>]>,
    ttl_ns: Option<i64>,
) -> Result<Vec<Option<u32>>> {
    check_len("left_times", left_times.len(), "left_keys", left_keys.len())?;
    check_len(
        "right_times",
        right_times.len(),
        "right_keys",
        right_keys.len(),
    )?;
    if let Some(created) = right_created {
        check_len(
            "right_created",
            created.len(),
            "right_keys",
            right_keys.len(),
        )?;
    }
    check_rows("left_keys", left_keys.len())?;
    check_rows("right_keys", right_keys.len())?;
    if let Some(ttl) = ttl_ns
        && ttl < 0
    {
        return Err(ComputeError::InvalidArgument {
            message: format!("ttl must not be negative, got {ttl} ns"),
        });
    }

    let (left, right) = if worker_count(left_keys.len() + right_keys.len()) > 1 {
        std::thread::scope(|s| {
            let left = s.spawn(|| group_by_key(left_keys));
            let right = group_by_key(right_keys);
            match left.join() {
                Ok(left) => (left, right),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    } else {
        (group_by_key(left_keys), group_by_key(right_keys))
    };

    let side = RightSide {
        groups: &right,
        times: right_times,
        created: right_created,
        ttl: ttl_ns,
    };
    let chunks = split_groups(&left.starts, worker_count(left.rows.len()));
    // Each worker answers its left groups in grouped order; scattering back to row order after
    // the join keeps workers from sharing the output.
    let answers = run_parallel(chunks, |chunk| side.join_groups(&left, chunk, left_times));
    let mut out = vec![None; left_keys.len()];
    // Chunks are contiguous from the first group, so answers line up with `left.rows` in order.
    for (&row, found) in left.rows.iter().zip(answers.into_iter().flatten()) {
        out[row as usize] = found;
    }
    Ok(out)
}

/// Gathers `indices` from each column, with a null wherever the index is `None` (an entity row
/// without a feature row).
pub fn take_columns(columns: &[ArrayRef], indices: &[Option<u32>]) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from(indices.to_vec());
    columns
        .iter()
        .map(|column| {
            take(column.as_ref(), &indices, None).map_err(|e| ComputeError::Internal {
                message: format!("gathering joined feature rows: {e}"),
            })
        })
        .collect()
}

/// The feature side, grouped, with what the merge needs to compare rows.
struct RightSide<'a> {
    groups: &'a Groups,
    times: &'a [i64],
    created: Option<&'a [Option<i64>]>,
    ttl: Option<i64>,
}

impl RightSide<'_> {
    /// Answers the left groups `chunk`, in grouped order.
    fn join_groups(
        &self,
        left: &Groups,
        chunk: std::ops::Range<usize>,
        left_times: &[i64],
    ) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(left.starts[chunk.end] - left.starts[chunk.start]);
        let Some(&first_key) = chunk.clone().next().map(|g| &left.keys[g]) else {
            return out;
        };
        let mut r = self.groups.keys.partition_point(|&k| k < first_key);
        let mut sorted: Vec<(i64, Option<i64>, u32)> = Vec::new();
        for g in chunk {
            let key = left.keys[g];
            let entity_rows = left.rows_of(g);
            while r < self.groups.len() && self.groups.keys[r] < key {
                r += 1;
            }
            if r == self.groups.len() || self.groups.keys[r] != key {
                out.extend(std::iter::repeat_n(None, entity_rows.len()));
                continue;
            }
            let feature_rows = self.groups.rows_of(r);
            if entity_rows.len() <= SCAN_MAX_ENTITY_ROWS {
                for &row in entity_rows {
                    out.push(self.scan(feature_rows, left_times[row as usize]));
                }
                continue;
            }
            sorted.clear();
            sorted.extend(feature_rows.iter().map(|&f| self.rank(f)));
            sorted.sort_unstable();
            for &row in entity_rows {
                let t = left_times[row as usize];
                let after = sorted.partition_point(|&(time, _, _)| time <= t);
                out.push(
                    after
                        .checked_sub(1)
                        .map(|i| sorted[i])
                        .filter(|&(time, _, _)| self.fresh(time, t))
                        .map(|(_, _, f)| f),
                );
            }
        }
        out
    }

    /// The tie-breaking order: event time, then created time (absent first), then row.
    fn rank(&self, row: u32) -> (i64, Option<i64>, u32) {
        let created = self.created.and_then(|c| c[row as usize]);
        (self.times[row as usize], created, row)
    }

    /// The best feature row at or before `t` by one pass over the key's rows.
    fn scan(&self, feature_rows: &[u32], t: i64) -> Option<u32> {
        let mut best: Option<(i64, Option<i64>, u32)> = None;
        for &f in feature_rows {
            if self.times[f as usize] <= t {
                let rank = self.rank(f);
                if best.is_none_or(|b| rank > b) {
                    best = Some(rank);
                }
            }
        }
        best.filter(|&(time, _, _)| self.fresh(time, t))
            .map(|(_, _, f)| f)
    }

    /// Whether a feature row at `time ≤ t` is within the TTL of an entity row at `t`.
    fn fresh(&self, time: i64, t: i64) -> bool {
        // i128: `t − time` overflows i64 for timestamps far apart.
        self.ttl
            .is_none_or(|ttl| i128::from(t) - i128::from(time) <= i128::from(ttl))
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::NULL_KEY;
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};

    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    #[test]
    fn picks_latest_at_or_before_within_ttl() {
        // Feature rows for key 0 at days 1, 3, 3 (created 5 vs absent), 7; key 1 at day 2.
        let right_keys = [0, 0, 0, 0, 1];
        let right_times = [DAY, 3 * DAY, 3 * DAY, 7 * DAY, 2 * DAY];
        let created = [None, Some(5), None, None, None];
        let left_keys = [0, 0, 0, 1, 2, NULL_KEY, 0];
        let left_times = [0, 3 * DAY, 6 * DAY, 9 * DAY, 9 * DAY, 9 * DAY, 7 * DAY];
        let got = asof_join(
            &left_keys,
            &left_times,
            &right_keys,
            &right_times,
            Some(&created),
            None,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![None, Some(1), Some(1), Some(4), None, None, Some(3)]
        );

        // TTL of 3 days, inclusive: day 6 still sees day 3, day 9 no longer sees day 2 of key 1
        // but day 5 would.
        let got = asof_join(
            &[0, 1, 1],
            &[6 * DAY, 9 * DAY, 5 * DAY],
            &right_keys,
            &right_times,
            Some(&created),
            Some(3 * DAY),
        )
        .unwrap();
        assert_eq!(got, vec![Some(1), None, Some(4)]);
    }

    #[test]
    fn ties_without_created_go_to_the_later_row_on_both_paths() {
        let right_keys = [0, 0, 0];
        let right_times = [5, 5, 4];
        // One entity row takes the scan path, six take the sorted path.
        for n in [1, 6] {
            let got = asof_join(
                &vec![0; n],
                &vec![5; n],
                &right_keys,
                &right_times,
                None,
                None,
            )
            .unwrap();
            assert_eq!(got, vec![Some(1); n]);
        }
    }

    #[test]
    fn empty_inputs_and_bad_arguments() {
        assert_eq!(asof_join(&[], &[], &[], &[], None, None).unwrap(), vec![]);
        assert_eq!(
            asof_join(&[0], &[1], &[], &[], None, None).unwrap(),
            vec![None]
        );
        assert!(matches!(
            asof_join(&[0], &[], &[], &[], None, None),
            Err(ComputeError::LengthMismatch { .. })
        ));
        assert!(asof_join(&[0], &[1], &[0], &[1], Some(&[]), None).is_err());
        assert!(asof_join(&[0], &[1], &[0], &[1], None, Some(-1)).is_err());
        // Extreme timestamps must not overflow the TTL check.
        let got = asof_join(&[0], &[i64::MAX], &[0], &[i64::MIN], None, Some(i64::MAX)).unwrap();
        assert_eq!(got, vec![None]);
    }

    #[test]
    fn take_columns_fills_nulls_for_missing_matches() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![10, 20, 30])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
        ];
        let out = take_columns(&columns, &[Some(2), None, Some(0)]).unwrap();
        let ints = out[0].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ints, &Int64Array::from(vec![Some(30), None, Some(10)]));
        assert_eq!(out[1].null_count(), 1);
    }
}
