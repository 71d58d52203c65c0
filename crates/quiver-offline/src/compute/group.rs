//! Grouping rows by key id, the first step of every operator, and splitting the groups between
//! cores.
//!
//! Rows are grouped with an LSD radix sort of packed `(key << 32) | row` words: linear in the row
//! count whatever the key cardinality, stable (rows of one key stay in ascending row order, which
//! the tie-breaking rules of the operators rely on), and about ten times faster than a comparison
//! sort at 10M rows. Digits are 11 bits, so 2048 bucket cursors stay in L1/L2 while scattering.
//! Key ids need not be dense; sparse ids only cost more passes (at most three).

use std::ops::Range;

use super::keys::NULL_KEY;
use super::{ComputeError, Result};

const DIGIT_BITS: u32 = 11;
const BUCKETS: usize = 1 << DIGIT_BITS;

/// Below this many rows a second thread costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 200_000;

/// Rows grouped by key id.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Row indices, grouped by ascending key id; within a group, ascending row index unless
    /// [`Groups::sort_within_by_time`] reordered them. Rows keyed [`NULL_KEY`] are left out.
    pub rows: Vec<u32>,
    /// `starts[g]..starts[g + 1]` is group `g`'s range in `rows` (one more entry than groups).
    pub starts: Vec<usize>,
    /// The key id of each group, strictly ascending.
    pub keys: Vec<u32>,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The rows of group `g`.
    pub fn rows_of(&self, g: usize) -> &[u32] {
        &self.rows[self.starts[g]..self.starts[g + 1]]
    }

    /// Sorts each group's rows by `(times[row], row)`, or `(times[row], created[row], row)` when
    /// created times are given (an absent created time sorts before any present one), using
    /// both cores on large inputs. The order is the tie rule of every operator: on equal event
    /// times the later created time, then the later row, is the later event.
    pub fn sort_within_by_time(&mut self, times: &[i64], created: Option<&[Option<i64>]>) {
        let chunks = split_groups(&self.starts, worker_count(self.rows.len()));
        let starts = &self.starts;
        // Chunks are contiguous in `rows`, so each worker gets its own disjoint slice.
        let mut rest: &mut [u32] = &mut self.rows;
        let mut pieces = Vec::with_capacity(chunks.len());
        let mut offset = 0;
        for chunk in &chunks {
            let end = starts[chunk.end];
            let (piece, tail) = rest.split_at_mut(end - offset);
            pieces.push((chunk.clone(), piece, offset));
            rest = tail;
            offset = end;
        }
        let sort_piece = |(chunk, piece, base): (Range<usize>, &mut [u32], usize)| {
            // Sorting gathered (time, row) pairs reads each time once instead of on every
            // comparison (each a likely cache miss); the row makes the order total, so equal
            // times keep ascending row order (the later row sorts last).
            // Created times join the sort key only when given, so the common case stays a
            // 12-byte pair.
            let mut scratch: Vec<(i64, u32)> = Vec::new();
            let mut with_created: Vec<(i64, Option<i64>, u32)> = Vec::new();
            for g in chunk {
                let group = &mut piece[starts[g] - base..starts[g + 1] - base];
                if let Some(created) = created {
                    with_created.clear();
                    with_created.extend(
                        group
                            .iter()
                            .map(|&r| (times[r as usize], created[r as usize], r)),
                    );
                    with_created.sort_unstable();
                    for (slot, &(_, _, r)) in group.iter_mut().zip(&with_created) {
                        *slot = r;
                    }
                    continue;
                }
                scratch.clear();
                scratch.extend(group.iter().map(|&r| (times[r as usize], r)));
                scratch.sort_unstable();
                for (slot, &(_, r)) in group.iter_mut().zip(&scratch) {
                    *slot = r;
                }
            }
        };
        run_parallel(pieces, sort_piece);
    }
}

/// Checks that row indices fit the `u32` the operators store them in.
pub(crate) fn check_rows(column: &'static str, len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(ComputeError::InvalidArgument {
            message: format!(
                "`{column}` has {len} rows; at most {} are supported",
                u32::MAX
            ),
        });
    }
    Ok(())
}

/// Groups rows by key id (see the module docs). `keys.len()` must fit in `u32`.
pub(crate) fn group_by_key(keys: &[u32]) -> Groups {
    let mut words: Vec<u64> = Vec::with_capacity(keys.len());
    let mut max_key = 0u32;
    for (row, &key) in keys.iter().enumerate() {
        if key != NULL_KEY {
            max_key = max_key.max(key);
            words.push((u64::from(key) << 32) | row as u64);
        }
    }
    let key_bits = 32 - max_key.leading_zeros();
    let passes = key_bits.div_ceil(DIGIT_BITS);
    if passes > 0 && words.len() > 1 {
        // One read computes every pass's histogram.
        let mut counts = vec![[0usize; BUCKETS]; passes as usize];
        for &w in &words {
            for (p, count) in counts.iter_mut().enumerate() {
                count[digit(w, p as u32)] += 1;
            }
        }
        let mut scratch = vec![0u64; words.len()];
        for (p, count) in counts.iter().enumerate() {
            // A pass where every word has the same digit would copy without reordering.
            if count.contains(&words.len()) {
                continue;
            }
            let mut cursor = [0usize; BUCKETS];
            let mut sum = 0;
            for (c, &n) in cursor.iter_mut().zip(count.iter()) {
                *c = sum;
                sum += n;
            }
            for &w in &words {
                let d = digit(w, p as u32);
                scratch[cursor[d]] = w;
                cursor[d] += 1;
            }
            std::mem::swap(&mut words, &mut scratch);
        }
    }
    let mut groups = Groups {
        rows: Vec::with_capacity(words.len()),
        starts: Vec::new(),
        keys: Vec::new(),
    };
    let mut previous = None;
    for (i, &w) in words.iter().enumerate() {
        let key = (w >> 32) as u32;
        if previous != Some(key) {
            groups.starts.push(i);
            groups.keys.push(key);
            previous = Some(key);
        }
        groups.rows.push(w as u32);
    }
    groups.starts.push(words.len());
    groups
}

fn digit(word: u64, pass: u32) -> usize {
    ((word >> (32 + pass * DIGIT_BITS)) as usize) & (BUCKETS - 1)
}

/// How many workers to use for `rows` rows of work: one for small inputs, else every core.
pub(crate) fn worker_count(rows: usize) -> usize {
    if rows < PARALLEL_MIN_ROWS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Splits groups (given by their `starts`) into at most `parts` contiguous ranges of group
/// indices holding about the same number of rows.
pub(crate) fn split_groups(starts: &[usize], parts: usize) -> Vec<Range<usize>> {
    let groups = starts.len().saturating_sub(1);
    let total = starts.last().copied().unwrap_or(0);
    let parts = parts.clamp(1, groups.max(1));
    let mut ranges = Vec::with_capacity(parts);
    let mut first = 0;
    for part in 1..=parts {
        let last = if part == parts {
            groups
        } else {
            let target = total * part / parts;
            starts.partition_point(|&s| s < target).clamp(first, groups)
        };
        ranges.push(first..last);
        first = last;
    }
    ranges
}

/// Runs `work` on each item, on scoped threads when there is more than one, and returns the
/// results in item order. The calling thread takes the first item itself.
pub(crate) fn run_parallel<T, R, F>(items: Vec<T>, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    if items.len() <= 1 {
        return items.into_iter().map(&work).collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let mut items = items.into_iter();
        let first = items.next();
        let handles: Vec<_> = items.map(|item| scope.spawn(move || work(item))).collect();
        let mut results = Vec::with_capacity(handles.len() + 1);
        results.extend(first.map(work));
        for handle in handles {
            match handle.join() {
                Ok(result) => results.push(result),
                // A worker only panics on a bug; re-raise it on the caller's thread.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(keys: &[u32]) -> Vec<(u32, Vec<u32>)> {
        let mut map = std::collections::BTreeMap::<u32, Vec<u32>>::new();
        for (row, &k) in keys.iter().enumerate() {
            if k != NULL_KEY {
                map.entry(k).or_default().push(row as u32);
            }
        }
        map.into_iter().collect()
    }

    fn flatten(groups: &Groups) -> Vec<(u32, Vec<u32>)> {
        (0..groups.len())
            .map(|g| (groups.keys[g], groups.rows_of(g).to_vec()))
            .collect()
    }

    #[test]
    fn groups_match_a_btree_for_dense_sparse_and_null_keys() {
        let cases: Vec<Vec<u32>> = vec![
            vec![],
            vec![NULL_KEY, NULL_KEY],
            vec![0, 0, 0],
            vec![3, 1, 3, 0, NULL_KEY, 1],
            vec![u32::MAX - 1, 5, 1 << 22, 5, 0, 1 << 22, 70_000],
            (0..5000u32).map(|i| (i * 7919) % 613).collect(),
        ];
        for keys in cases {
            assert_eq!(flatten(&group_by_key(&keys)), naive(&keys), "{keys:?}");
        }
    }

    #[test]
    fn sort_within_orders_by_time_then_row() {
        let keys = [1, 0, 1, 1, 0];
        let times = [5, 2, 5, 1, 2];
        let mut groups = group_by_key(&keys);
        groups.sort_within_by_time(&times, None);
        assert_eq!(groups.rows, vec![1, 4, 3, 0, 2]);
    }

    #[test]
    fn split_groups_covers_every_group_once() {
        let starts = vec![0, 10, 11, 12, 40, 41];
        for parts in 1..8 {
            let ranges = split_groups(&starts, parts);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(5));
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
        assert_eq!(split_groups(&[0], 2), vec![0..0]);
    }
}
