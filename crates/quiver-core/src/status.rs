//! Per-value serving statuses, with Feast's names.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// The status of one served value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureStatus {
    /// A value fresher than the view's TTL.
    Present,
    /// No record for this entity (never written, or expired from the store).
    NotFound,
    /// A record exists but this feature's value is null.
    NullValue,
    /// A record exists but its event time is older than the view's TTL.
    OutsideMaxAge,
}

impl FeatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Present => "PRESENT",
            FeatureStatus::NotFound => "NOT_FOUND",
            FeatureStatus::NullValue => "NULL_VALUE",
            FeatureStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// Whether a record's event time is within `ttl` of `now_ns` (no TTL: always fresh).
pub fn is_fresh(record: &Record, ttl: Option<Duration>, now_ns: i64) -> bool {
    match ttl {
        None => true,
        Some(ttl) => {
            let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
            now_ns.saturating_sub(record.event_ts) <= ttl_ns
        }
    }
}

/// The status of field `index` of `record` (None: not found).
pub fn status_of(
    record: Option<&Record>,
    index: usize,
    ttl: Option<Duration>,
    now_ns: i64,
) -> FeatureStatus {
    match record {
        None => FeatureStatus::NotFound,
        Some(r) if !is_fresh(r, ttl, now_ns) => FeatureStatus::OutsideMaxAge,
        Some(r) if r.values.get(index).is_none_or(|v| v.is_null()) => FeatureStatus::NullValue,
        Some(_) => FeatureStatus::Present,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn statuses() {
        let r = Record {
            event_ts: 1_000,
            created_ts: None,
            values: vec![Value::Int64(1), Value::Null],
        };
        let ttl = Some(Duration::from_nanos(500));
        assert_eq!(status_of(None, 0, ttl, 1_200), FeatureStatus::NotFound);
        assert_eq!(status_of(Some(&r), 0, ttl, 1_200), FeatureStatus::Present);
        assert_eq!(status_of(Some(&r), 1, ttl, 1_200), FeatureStatus::NullValue);
        assert_eq!(
            status_of(Some(&r), 0, ttl, 1_501),
            FeatureStatus::OutsideMaxAge
        );
        assert_eq!(
            status_of(Some(&r), 0, None, i64::MAX),
            FeatureStatus::Present
        );
    }
}
