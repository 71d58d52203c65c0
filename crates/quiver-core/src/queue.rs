//! [`QueuePosition`]: where an entry sits in a record namespace's export queue.
//!
//! Every accepted record is appended to its namespace's queue; the exporter drains the queue in
//! order and the sink stores the position of the last entry it committed, atomically with the
//! rows. After a crash between "committed" and "acknowledged", the entries at or before that
//! position are acknowledged without being written again: exactly once in the sink.
//!
//! The form is a Redis stream id, `{ms}-{seq}` (milliseconds, sequence), ordered numerically; the
//! embedded store's queue uses `0-{seq}`.

use std::fmt;
use std::str::FromStr;

/// A queue entry's position. Ordered as the queue is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueuePosition {
    pub ms: u64,
    pub seq: u64,
}

impl QueuePosition {
    pub const fn new(ms: u64, seq: u64) -> Self {
        QueuePosition { ms, seq }
    }
}

impl fmt::Display for QueuePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for QueuePosition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a queue position (expected `MS-SEQ`, e.g. `1733356800000-0`)");
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(QueuePosition {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_orders_and_prints() {
        let a: QueuePosition = "1733356800000-2".parse().unwrap();
        let b: QueuePosition = "1733356800000-10".parse().unwrap();
        assert!(a < b, "the sequence compares as a number, not as text");
        assert_eq!(a.to_string(), "1733356800000-2");
        assert!("12".parse::<QueuePosition>().unwrap_err().contains("`12`"));
        assert!("a-1".parse::<QueuePosition>().is_err());
    }
}
