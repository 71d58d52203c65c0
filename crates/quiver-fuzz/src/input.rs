//! Generators shared by the targets: picks from a vocabulary with some garbage mixed in, byte
//! mutations, and JSON written as text, so a body can hold what `serde_json::Value` cannot
//! (numbers such as `1e400` or `18446744073709551616`, repeated keys).

use arbitrary::{Result, Unstructured};

/// True one time in `n`; false once the input is used up (`Unstructured::ratio` is then always
/// true, which would turn every rare mutation on at the end of each input).
pub fn one_in(u: &mut Unstructured<'_>, n: u8) -> Result<bool> {
    if u.is_empty() {
        return Ok(false);
    }
    u.ratio(1, n)
}

/// One of `vocab` most of the time, else an arbitrary (often odd) string.
pub fn word(u: &mut Unstructured<'_>, vocab: &[&str]) -> Result<String> {
    if vocab.is_empty() || one_in(u, 12)? {
        return odd_string(u);
    }
    Ok(u.choose(vocab)?.to_string())
}

/// Strings that stress escaping, length limits and parsers.
pub fn odd_string(u: &mut Unstructured<'_>) -> Result<String> {
    const ODD: &[&str] = &[
        "",
        " ",
        ":",
        "a:b",
        "::",
        "%",
        "%3A",
        "#",
        "{tag}",
        "*",
        "\0",
        "\u{1F600}",
        "naïve",
        "\u{202E}rtl",
        "\\",
        "\"",
        "'",
        "\n",
        "-1",
        "0",
        "1e400",
        "NaN",
        "null",
        "true",
        "~",
        "&anchor",
        "*alias",
        "!!binary",
        "list<",
        "<>",
    ];
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.choose(ODD)?.to_string(),
        1 => String::from_utf8_lossy(&u.arbitrary::<Vec<u8>>()?).into_owned(),
        2 => {
            let unit = u.choose(ODD)?.to_string();
            let n = u.int_in_range(0usize..=300)?;
            unit.repeat(n.max(1))
        }
        _ => {
            let s: String = u.arbitrary()?;
            s.chars().take(24).collect()
        }
    })
}

/// Integers at and around the edges of every width.
pub fn edge_i64(u: &mut Unstructured<'_>) -> Result<i64> {
    const EDGES: &[i64] = &[
        0,
        1,
        -1,
        42,
        i8::MAX as i64,
        i16::MAX as i64,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        u32::MAX as i64,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        1_700_000_000_000_000_000,
        -5_000_000_001,
    ];
    if one_in(u, 2)? {
        Ok(*u.choose(EDGES)?)
    } else {
        u.arbitrary()
    }
}

/// Mutates `bytes` in place a few times: flips, overwrites, inserts, deletes, truncates.
pub fn mutate(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Result<()> {
    let rounds = u.int_in_range(1u8..=4)?;
    for _ in 0..rounds {
        let len = bytes.len();
        match u.int_in_range(0u8..=6)? {
            0 if len > 0 => {
                let i = u.choose_index(len)?;
                bytes[i] ^= 1 << u.int_in_range(0u8..=7)?;
            }
            1 if len > 0 => {
                let i = u.choose_index(len)?;
                bytes[i] = *u.choose(&[0x00, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xd4, 0xdb, b'"'])?;
            }
            2 => {
                let i = u.int_in_range(0..=len)?;
                let extra: Vec<u8> = u.arbitrary()?;
                bytes.splice(i..i, extra.into_iter().take(16));
            }
            3 if len > 0 => {
                let i = u.choose_index(len)?;
                let n = u.int_in_range(1..=(len - i).min(16))?;
                bytes.drain(i..i + n);
            }
            4 => {
                let keep = u.int_in_range(0..=len)?;
                bytes.truncate(keep);
            }
            5 if len >= 4 => {
                // A length-like field set to something absurd.
                let i = u.int_in_range(0..=len - 4)?;
                let big = *u.choose(&[u32::MAX, 0x7fff_ffff, 0x0001_0000, 0xffff])?;
                bytes[i..i + 4].copy_from_slice(&big.to_be_bytes());
            }
            _ => {}
        }
    }
    Ok(())
}

/// JSON as text. `Raw` is written as it is (numbers JSON allows but `f64`/`i64` do not hold);
/// objects may repeat keys.
#[derive(Clone, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Raw(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn int(v: i64) -> Json {
        Json::Raw(v.to_string())
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Raw(r) => out.push_str(r),
            Json::Str(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Number literals JSON allows, many of which no Rust number type holds.
pub fn number(u: &mut Unstructured<'_>) -> Result<Json> {
    const ODD: &[&str] = &[
        "1e400",
        "-1e400",
        "18446744073709551616",
        "9223372036854775808",
        "-9223372036854775809",
        "1.0",
        "42.0",
        "-0",
        "-0.0",
        "0.1",
        "1e-400",
        "123456789012345678901234567890",
        "2147483648",
        "-2147483649",
        "3.4028236e38",
        "1E2",
    ];
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Json::Raw(u.choose(ODD)?.to_string()),
        1 => Json::int(edge_i64(u)?),
        2 => {
            let x: f64 = u.arbitrary()?;
            match serde_json::Number::from_f64(x) {
                Some(n) => Json::Raw(n.to_string()),
                None => Json::Raw("0.5".into()),
            }
        }
        _ => Json::int(u.int_in_range(-3i64..=100)?),
    })
}

/// Any JSON value, nested up to `depth`.
pub fn any_json(u: &mut Unstructured<'_>, depth: u8) -> Result<Json> {
    let top = if depth == 0 { 3 } else { 5 };
    Ok(match u.int_in_range(0u8..=top)? {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Json::Str(odd_string(u)?),
        4 => {
            let n = u.int_in_range(0usize..=4)?;
            Json::Array(
                (0..n)
                    .map(|_| any_json(u, depth - 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0usize..=3)?;
            Json::Object(
                (0..n)
                    .map(|_| Ok((odd_string(u)?, any_json(u, depth - 1)?)))
                    .collect::<Result<_>>()?,
            )
        }
    })
}

/// Timestamps as clients write them, and as they should not.
pub fn timestamp_text(u: &mut Unstructured<'_>) -> Result<String> {
    const TS: &[&str] = &[
        "2026-01-01T00:00:00Z",
        "2026-01-31T12:00:00.123456789Z",
        "2026-01-31T12:00:00+05:30",
        "2026-01-31T12:00:00",
        "2026-01-31 12:00:00",
        "2026-01-31",
        "1970-01-01T00:00:00Z",
        "1677-09-21T00:12:43.145224192Z",
        "1677-09-21T00:12:43.145224191Z",
        "2262-04-11T23:47:16.854775807Z",
        "2262-04-11T23:47:16.854775808Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "+275760-09-13T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:59:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.9999999999999Z",
        "",
        "now",
        "1700000000",
    ];
    if one_in(u, 8)? {
        odd_string(u)
    } else {
        Ok(u.choose(TS)?.to_string())
    }
}
