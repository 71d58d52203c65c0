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
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
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

    #[test]
    fn rejects_unitless_and_garbage() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }
}
