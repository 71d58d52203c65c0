//! The value stored under each key: an 8-byte big-endian expiry (ms since the epoch, 0 = never)
//! followed by the record bytes every backend shares.
//!
//! The expiry sits in front rather than in a second table so a read is a single B-tree lookup,
//! and the sweep can decide from the value alone.

const EXPIRY_LEN: usize = 8;

/// Frames `record` with its expiry time.
pub(super) fn frame(expires_at_ms: u64, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXPIRY_LEN + record.len());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(record);
    out
}

/// Splits a stored value into its expiry and record bytes; `None` if it is too short to hold an
/// expiry (not written by this store).
pub(super) fn unframe(value: &[u8]) -> Option<(u64, &[u8])> {
    let (expiry, record) = value.split_at_checked(EXPIRY_LEN)?;
    let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
    Some((expiry, record))
}

/// Whether a value with this expiry is still served at `now_ms`.
pub(super) fn is_live(expires_at_ms: u64, now_ms: u64) -> bool {
    expires_at_ms == 0 || expires_at_ms > now_ms
}

/// Whether a stored value is expired at `now_ms`. Values too short to parse count as expired so
/// the sweep clears them out.
pub(super) fn is_expired(value: &[u8], now_ms: u64) -> bool {
    unframe(value).is_none_or(|(expiry, _)| !is_live(expiry, now_ms))
}

/// Now, in ms since the epoch (the clock expiry uses).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let v = frame(1234, b"record");
        assert_eq!(unframe(&v), Some((1234, &b"record"[..])));
        assert_eq!(unframe(&frame(0, b"")), Some((0, &b""[..])));
        assert_eq!(unframe(b"short"), None);
    }

    #[test]
    fn expiry() {
        assert!(is_live(0, u64::MAX), "0 never expires");
        assert!(is_live(101, 100));
        assert!(!is_live(100, 100));
        assert!(is_expired(&frame(50, b"x"), 100));
        assert!(!is_expired(&frame(0, b"x"), 100));
        assert!(is_expired(b"bad", 0));
    }
}
