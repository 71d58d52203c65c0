//! Durations as users write them (`30d`, `12h`, `90m`, `1w`), parsed with `humantime` and printed
//! back in the shortest exact unit so a round trip through the registry is stable.

use std::time::Duration;

/// Parses `30d`, `1h 30m`, `45s`; a bare number is rejected so `ttl: 30` is not silently seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "duration `{text}` has no unit; write e.g. `{text}s`, `{text}h` or `{text}d`"
        ));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

/// Formats a duration in the largest unit that divides it exactly (`7d`, `36h`, `90s`). Weeks
/// are spelled in days, so a `7d` window keeps its name (`amount__sum__7d`).
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    // Below a second, the largest unit that keeps it exact: `0ms` for 500µs would read back as
    // zero.
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", d.as_micros())
        } else {
            format!("{}ns", d.as_nanos())
        };
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Serde helpers storing a duration as its formatted string.
pub mod serde_req {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers storing an optional duration as its formatted string.
pub mod serde_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for text in ["30d", "1w", "12h", "90s", "5m"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d, "{text}");
        }
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(format(Duration::from_secs(36 * 3600)), "36h");
    }

    /// Found by `quiver-fuzz definitions` (a `ttl: 1ns` came back from the registry as zero).
    #[test]
    fn sub_millisecond_durations_round_trip_exactly() {
        for d in [
            Duration::from_nanos(1),
            Duration::from_micros(500),
            Duration::from_nanos(1_500_000_001),
            Duration::from_millis(1_250),
        ] {
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_micros(500)), "500us");
        assert_eq!(format(Duration::from_millis(1_250)), "1250ms");
    }

    #[test]
    fn rejects_unitless_and_garbage() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }
}
