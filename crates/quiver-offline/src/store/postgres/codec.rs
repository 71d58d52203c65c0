//! PostgreSQL binary encodings of Quiver's values, for binary COPY and query parameters, and the
//! decodings of what `SELECT` returns.
//!
//! `timestamptz` and `numeric` are coded here rather than through chrono or rust_decimal: the
//! store works in Arrow's i64 nanoseconds and i128 decimal mantissas, and `numeric(38, 10)`
//! holds more digits than rust_decimal's 28.
//!
//! Precision: PostgreSQL keeps microseconds, so nanoseconds are truncated (towards the past) on
//! the way in and come back as whole microseconds.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const NUMERIC_NEG: u16 = 0x4000;

/// One value on its way to PostgreSQL, borrowed from an Arrow array where it can be.
#[derive(Debug)]
pub(crate) enum Cell<'a> {
    Null,
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// Nanoseconds since the Unix epoch, truncated to microseconds on the wire.
    Timestamp(i64),
    /// Microseconds since the Unix epoch (query bounds, already rounded the way the caller needs).
    Micros(i64),
    /// An Arrow decimal: `value × 10^-scale`.
    Numeric {
        value: i128,
        scale: i8,
    },
    List(Vec<Cell<'a>>),
}

/// Nanoseconds to microseconds, rounding towards the past (what PostgreSQL stores).
pub(super) fn floor_micros(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

/// Nanoseconds to microseconds, rounding towards the future (exclusive upper bounds).
pub(super) fn ceil_micros(ns: i64) -> i64 {
    let floor = ns.div_euclid(1000);
    if ns.rem_euclid(1000) == 0 {
        floor
    } else {
        floor + 1
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        // Scalars go through the checked path so an Arrow/column type mismatch (a bug) is an
        // error, not silently misread bytes.
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::I32(v) => v.to_sql_checked(ty, out),
            Cell::I64(v) => v.to_sql_checked(ty, out),
            Cell::F32(v) => v.to_sql_checked(ty, out),
            Cell::F64(v) => v.to_sql_checked(ty, out),
            Cell::Bool(v) => v.to_sql_checked(ty, out),
            Cell::Text(v) => v.to_sql_checked(ty, out),
            Cell::Bytes(v) => v.to_sql_checked(ty, out),
            Cell::Timestamp(ns) => encode_timestamp(floor_micros(*ns), ty, out),
            Cell::Micros(us) => encode_timestamp(*us, ty, out),
            Cell::Numeric { value, scale } => {
                if *ty != Type::NUMERIC {
                    return Err(format!("cannot write a decimal to a `{ty}` column").into());
                }
                encode_numeric(*value, *scale, out)?;
                Ok(IsNull::No)
            }
            Cell::List(items) => items.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks its own type in `to_sql`.
        true
    }

    to_sql_checked!();
}

fn encode_timestamp(unix_micros: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    if *ty != Type::TIMESTAMPTZ && *ty != Type::TIMESTAMP {
        return Err(format!("cannot write a timestamp to a `{ty}` column").into());
    }
    out.put_i64(unix_micros - PG_EPOCH_MICROS);
    Ok(IsNull::No)
}

/// Writes `value × 10^-scale` in PostgreSQL's binary numeric format: digit count, weight (of
/// the first base-10000 digit), sign, display scale, then the base-10000 digits.
pub(super) fn encode_numeric(value: i128, scale: i8, out: &mut BytesMut) -> Result<(), BoxError> {
    // Decimal digits of |value|, then place the decimal point `scale` digits from the right
    // (a negative scale appends zeros instead).
    let mut digits = value.unsigned_abs().to_string();
    let scale = if scale < 0 {
        digits.extend(std::iter::repeat_n('0', usize::from(scale.unsigned_abs())));
        0
    } else {
        usize::from(scale.unsigned_abs())
    };
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    // Pad both sides to whole base-10000 digits: the integer part on the left, the fraction
    // on the right.
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let groups = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
            .collect()
    };
    let int_groups = groups(&int_padded);
    let mut all = int_groups.clone();
    all.extend(groups(&frac_padded));
    let mut weight = i16::try_from(int_groups.len())? - 1;
    let leading = all.iter().take_while(|d| **d == 0).count();
    all.drain(..leading);
    weight -= i16::try_from(leading)?;
    while all.last() == Some(&0) {
        all.pop();
    }
    if all.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(all.len())?);
    out.put_i16(weight);
    out.put_u16(if value < 0 && !all.is_empty() {
        NUMERIC_NEG
    } else {
        0
    });
    out.put_u16(u16::try_from(scale)?);
    for d in all {
        out.put_i16(d);
    }
    Ok(())
}

/// A `timestamptz` read back, in nanoseconds since the Unix epoch.
pub(super) struct PgTimestamp(pub i64);

impl<'a> FromSql<'a> for PgTimestamp {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgTimestamp, BoxError> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| "timestamp is not 8 bytes".to_string())?;
        let pg_micros = i64::from_be_bytes(bytes);
        pg_micros
            .checked_add(PG_EPOCH_MICROS)
            .and_then(|us| us.checked_mul(1000))
            .map(PgTimestamp)
            .ok_or_else(|| {
                "timestamp is infinite or outside the nanosecond range (years 1677-2262)".into()
            })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
}

/// A `numeric` read back: sign, weight and base-10000 digits.
pub(super) struct PgNumeric {
    negative: bool,
    weight: i16,
    digits: Vec<i16>,
}

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgNumeric, BoxError> {
        let word = |i: usize| -> Result<[u8; 2], BoxError> {
            raw.get(i * 2..i * 2 + 2)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| "numeric value is truncated".into())
        };
        let ndigits = usize::try_from(i16::from_be_bytes(word(0)?))
            .map_err(|_| "numeric value has a negative digit count".to_string())?;
        let weight = i16::from_be_bytes(word(1)?);
        let sign = u16::from_be_bytes(word(2)?);
        if sign != 0 && sign != NUMERIC_NEG {
            return Err("numeric value is NaN or infinite".into());
        }
        let digits = (0..ndigits)
            .map(|i| word(4 + i).map(i16::from_be_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PgNumeric {
            negative: sign == NUMERIC_NEG,
            weight,
            digits,
        })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl PgNumeric {
    /// The Arrow decimal mantissa at `scale`; an error if the value has more decimal places or
    /// does not fit 128 bits.
    pub(super) fn to_mantissa(&self, scale: i8) -> Result<i128, String> {
        let overflow = || "numeric value does not fit a 128-bit decimal".to_string();
        let mut value: i128 = 0;
        for (i, digit) in self.digits.iter().enumerate() {
            let digit = i128::from(*digit);
            let index = i32::try_from(i).map_err(|_| overflow())?;
            // This digit is worth digit × 10^(4 × (weight - i)), i.e. digit × 10^exp units
            // of 10^-scale.
            let exp = 4 * (i32::from(self.weight) - index) + i32::from(scale);
            let term = if exp >= 0 {
                let factor = 10i128
                    .checked_pow(u32::try_from(exp).map_err(|_| overflow())?)
                    .ok_or_else(overflow)?;
                digit.checked_mul(factor).ok_or_else(overflow)?
            } else {
                let divisor = 10i128.checked_pow(exp.unsigned_abs()).unwrap_or(i128::MAX);
                if digit % divisor != 0 {
                    return Err(format!(
                        "numeric value has more than {scale} decimal places"
                    ));
                }
                digit / divisor
            };
            value = value.checked_add(term).ok_or_else(overflow)?;
        }
        Ok(if self.negative { -value } else { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: i128, scale: i8) -> i128 {
        let mut buf = BytesMut::new();
        encode_numeric(value, scale, &mut buf).unwrap();
        PgNumeric::from_sql(&Type::NUMERIC, &buf)
            .unwrap()
            .to_mantissa(scale)
            .unwrap()
    }

    #[test]
    fn numeric_round_trips_at_scale_10() {
        for v in [
            0,
            1,
            -1,
            12_345_678_901,
            -10_000_000_000,
            99_999_999_999_999_999_999_999_999_999_999_999_999,
            -99_999_999_999_999_999_999_999_999_999_999_999_999,
            5_000,
        ] {
            assert_eq!(round_trip(v, 10), v);
        }
        assert_eq!(round_trip(123, 0), 123);
        assert_eq!(round_trip(123, 3), 123);
    }

    #[test]
    fn numeric_wire_format_matches_postgres() {
        // 12.5 at scale 10: digits [12, 5000], weight 0, positive, dscale 10.
        let mut buf = BytesMut::new();
        encode_numeric(125_000_000_000, 10, &mut buf).unwrap();
        assert_eq!(
            buf.as_ref(),
            &[0, 2, 0, 0, 0, 0, 0, 10, 0, 12, 0x13, 0x88][..]
        );
    }

    #[test]
    fn numeric_rejects_lost_precision() {
        // 0.00005 read at scale 4.
        let n = PgNumeric {
            negative: false,
            weight: -2,
            digits: vec![5000],
        };
        assert!(n.to_mantissa(4).is_err());
        assert_eq!(n.to_mantissa(5).unwrap(), 5);
    }

    #[test]
    fn micros_round_both_ways() {
        assert_eq!(floor_micros(1_999), 1);
        assert_eq!(ceil_micros(1_001), 2);
        assert_eq!(ceil_micros(2_000), 2);
        assert_eq!(floor_micros(-1), -1);
        assert_eq!(ceil_micros(-1), 0);
    }

    #[test]
    fn timestamps_decode_from_the_2000_epoch() {
        let t = PgTimestamp::from_sql(&Type::TIMESTAMPTZ, &0i64.to_be_bytes()).unwrap();
        assert_eq!(t.0, 946_684_800_000_000_000);
        assert!(PgTimestamp::from_sql(&Type::TIMESTAMPTZ, &i64::MAX.to_be_bytes()).is_err());
    }
}
