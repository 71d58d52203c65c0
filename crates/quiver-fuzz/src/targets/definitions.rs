//! The definitions loader: [`serialize::parse`] of each `features/*.yaml` text, then
//! [`Definitions::build_and_validate`] over the files that parsed (what `quiver apply` runs before
//! it checks sources).
//!
//! Files come from a grammar of entities, sources, feature views (fields, aggregations, time
//! series, fallbacks, tags) and feature services, over the example project's names with fields
//! mutated (odd types, durations, constraints, references to nothing, YAML quirks), sometimes with
//! the text itself mutated. Parsing and validation must answer `Ok` or an error; valid
//! definitions must survive the registry's JSON round trip.

use arbitrary::{Result, Unstructured};
use quiver_core::Definitions;
use quiver_core::definitions::serialize;

use crate::input::{mutate, odd_string, one_in, word};

const ENTITIES: &[&str] = &["user", "merchant", "_private"];
const SOURCES: &[&str] = &["users", "merchants", "transactions"];
const VIEWS: &[&str] = &["user_profile", "user_spend", "merchant_stats", "prices"];
const SERVICES: &[&str] = &["basics", "fraud_model", "x1"];
const COLUMNS: &[&str] = &[
    "user_id",
    "merchant",
    "age",
    "country",
    "score",
    "amount",
    "close",
    "embedding",
    "updated_at",
    "ts",
    "event_timestamp",
    "created",
];
const TYPES: &[&str] = &[
    "int32",
    "int64",
    "float32",
    "float64",
    "bool",
    "string",
    "bytes",
    "timestamp",
    "decimal",
    "list<float32>",
    "list<float64>",
    "list<int64>",
    "list<string>",
    "list<timestamp>",
    "list<decimal>",
    "list<list<int64>>",
    "list<>",
    "list<",
    "LIST<INT64>",
    "vector",
    "int",
];
const DURATIONS: &[&str] = &[
    "1d",
    "7d",
    "30d",
    "1h",
    "90m",
    "0s",
    "1ns",
    "-1d",
    "1.5d",
    "99999999999999999999d",
    "18446744073709551615s",
    "584942417355y",
    "1y",
    "1 day",
    "d",
];
const FUNCTIONS: &[&str] = &[
    "sum", "mean", "count", "min", "max", "std", "last", "median", "SUM",
];

/// Fuzz target: see the module docs.
pub fn definitions(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1usize..=3)?;
    let mut files = Vec::new();
    for i in 0..n {
        let mut text = file(u)?;
        if one_in(u, 6)? {
            let mut bytes = text.into_bytes();
            mutate(u, &mut bytes)?;
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        match serialize::parse(&text) {
            Ok(parsed) => files.push((format!("features/f{i}.yaml"), parsed)),
            Err(e) if std::env::var_os("QUIVER_FUZZ_DETAIL").is_some() => {
                let e: String = e.chars().take(50).collect();
                crate::stats::count("definitions", format!("does not parse: {e}"));
            }
            Err(_) => crate::stats::count("definitions", "file does not parse"),
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    match Definitions::build_and_validate(&files) {
        Ok(defs) => {
            let views = defs.feature_views.len();
            crate::stats::count("definitions", format!("valid, {views} views"));
            check_valid(&defs);
        }
        Err(e) if std::env::var_os("QUIVER_FUZZ_DETAIL").is_some() => {
            let e: String = e.to_string().chars().take(60).collect();
            crate::stats::count("definitions", format!("invalid: {e}"));
        }
        Err(_) => crate::stats::count("definitions", "invalid"),
    }
    Ok(())
}

/// What the rest of Quiver does with valid definitions must work: the registry's JSON form reads
/// back, and every view has a schema.
fn check_valid(defs: &Definitions) {
    let json = serde_json::to_string(defs).expect("definitions serialize");
    let back: Definitions = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("valid definitions do not read back from the registry: {e}"));
    // Compared as JSON, the registry's form (non-finite constraint bounds are refused at
    // validation, so nothing is written as `null` that was not absent).
    assert_eq!(
        serde_json::to_string(&back).expect("definitions serialize"),
        json,
        "registry round trip"
    );
    for view in defs.feature_views.values() {
        let _ = view.value_types();
        let _ = view.schema_fingerprint();
    }
}

fn file(u: &mut Unstructured<'_>) -> Result<String> {
    let mut out = String::new();
    if u.ratio(2, 3)? {
        section(u, &mut out, "entities", entity)?;
    }
    if u.ratio(2, 3)? {
        section(u, &mut out, "sources", source)?;
    }
    section(u, &mut out, "feature_views", view)?;
    if one_in(u, 2)? {
        section(u, &mut out, "feature_services", service)?;
    }
    if one_in(u, 20)? {
        out.push_str(u.choose(&[
            "unknown_section: []\n",
            "entities: &a [{name: e, join_keys: [k]}]\n",
            "sources: *a\n",
            "--- \n",
            "...\n",
            "feature_views: !!binary aGVsbG8=\n",
            "? [complex, key]\n: value\n",
            "entities:\n  - name: dup\n    name: dup\n    join_keys: [k]\n",
        ])?);
    }
    Ok(out)
}

type Item = fn(&mut Unstructured<'_>, &mut String) -> Result<()>;

fn section(u: &mut Unstructured<'_>, out: &mut String, name: &str, item: Item) -> Result<()> {
    out.push_str(name);
    out.push_str(":\n");
    let n = u.int_in_range(1usize..=2)? - usize::from(one_in(u, 10)?);
    for _ in 0..n {
        out.push_str("  - ");
        item(u, out)?;
        out.push('\n');
    }
    Ok(())
}

/// A scalar: a plain word when it is one, else JSON-quoted; sometimes deliberately plain.
fn scalar(u: &mut Unstructured<'_>, text: &str) -> Result<String> {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    if plain || one_in(u, 20)? {
        Ok(text.to_string())
    } else {
        Ok(serde_json::Value::String(text.to_string()).to_string())
    }
}

/// One of the first `good` entries of `vocab` seven times in eight, else any entry.
fn mostly(u: &mut Unstructured<'_>, vocab: &[&str], good: usize) -> Result<String> {
    let pool = if one_in(u, 8)? {
        vocab
    } else {
        &vocab[..good.min(vocab.len())]
    };
    Ok(u.choose(pool)?.to_string())
}

fn pick(u: &mut Unstructured<'_>, vocab: &[&str]) -> Result<String> {
    let w = word(u, vocab)?;
    scalar(u, &w)
}

fn list(u: &mut Unstructured<'_>, vocab: &[&str], max: usize) -> Result<String> {
    let n = u.int_in_range(1..=max.max(1))? - usize::from(one_in(u, 20)?);
    let items = (0..n).map(|_| pick(u, vocab)).collect::<Result<Vec<_>>>()?;
    Ok(format!("[{}]", items.join(", ")))
}

/// `{k: v, ...}` from the fields present; sometimes with a field dropped or an unknown one.
fn object(u: &mut Unstructured<'_>, fields: Vec<(&str, String)>) -> Result<String> {
    let mut parts = Vec::new();
    for (k, v) in fields {
        if one_in(u, 60)? {
            continue;
        }
        parts.push(format!("{k}: {v}"));
    }
    if one_in(u, 30)? {
        parts.push(format!("{}: 1", pick(u, &["tll", "typ", "name"])?));
    }
    Ok(format!("{{{}}}", parts.join(", ")))
}

fn entity(u: &mut Unstructured<'_>, out: &mut String) -> Result<()> {
    let mut fields = vec![
        ("name", pick(u, ENTITIES)?),
        ("join_keys", list(u, &["user_id", "merchant"], 2)?),
    ];
    if u.arbitrary()? {
        fields.push((
            "key_type",
            mostly(u, &["int64", "string", "int32", "int", "str", "float64"], 2)?,
        ));
    }
    out.push_str(&object(u, fields)?);
    Ok(())
}

fn source(u: &mut Unstructured<'_>, out: &mut String) -> Result<()> {
    let mut fields = vec![
        ("name", pick(u, SOURCES)?),
        (
            "path",
            pick(
                u,
                &[
                    "data/users.csv",
                    "data/users.parquet",
                    "data/x.json",
                    "/abs/path.csv",
                    "../up.parquet",
                    "data/noext",
                ],
            )?,
        ),
        ("timestamp_field", pick(u, COLUMNS)?),
    ];
    if one_in(u, 3)? {
        fields.push((
            "type",
            mostly(u, &["parquet", "csv", "postgres", "json", "PARQUET"], 3)?,
        ));
    }
    if one_in(u, 10)? {
        fields.push(("table", pick(u, &["public.users", "users", ""])?));
    }
    if one_in(u, 10)? {
        fields.push(("query", pick(u, &["SELECT * FROM users", ""])?));
    }
    if one_in(u, 10)? {
        fields.push((
            "url",
            pick(u, &["postgres://u@h/db", "env:PG_URL", "env:", ""])?,
        ));
    }
    if one_in(u, 4)? {
        fields.push(("created_timestamp_field", pick(u, COLUMNS)?));
    }
    out.push_str(&object(u, fields)?);
    Ok(())
}

fn number(u: &mut Unstructured<'_>) -> Result<String> {
    mostly(
        u,
        &[
            "0", "1", "-1", "130", "0.5", "1e308", "-1e308", ".nan", ".inf", "-.inf", "1e400", "x",
            "null", "[]",
        ],
        5,
    )
}

fn field(u: &mut Unstructured<'_>) -> Result<String> {
    let mut fields = vec![("name", pick(u, COLUMNS)?), ("type", mostly(u, TYPES, 15)?)];
    if one_in(u, 3)? {
        fields.push(("min", number(u)?));
    }
    if one_in(u, 3)? {
        fields.push(("max", number(u)?));
    }
    if one_in(u, 4)? {
        fields.push(("not_null", mostly(u, &["true", "false", "yes", "1"], 2)?));
    }
    if one_in(u, 4)? {
        let n = u.int_in_range(0usize..=3)?;
        let items = (0..n)
            .map(|_| {
                Ok(u.choose(&[
                    "US",
                    "1",
                    "1.5",
                    "true",
                    "null",
                    "[1]",
                    "{a: 1}",
                    "2026-01-01",
                ])?
                .to_string())
            })
            .collect::<Result<Vec<_>>>()?;
        fields.push(("one_of", format!("[{}]", items.join(", "))));
    }
    if one_in(u, 4)? {
        fields.push((
            "dim",
            mostly(u, &["3", "16", "0", "-1", "18446744073709551616", "1.5"], 2)?,
        ));
    }
    object(u, fields)
}

fn view(u: &mut Unstructured<'_>, out: &mut String) -> Result<()> {
    let mut fields = vec![
        ("name", pick(u, VIEWS)?),
        ("entities", list(u, ENTITIES, 2)?),
        ("source", pick(u, SOURCES)?),
    ];
    if u.arbitrary()? {
        fields.push(("ttl", mostly(u, DURATIONS, 6)?));
    }
    if one_in(u, 5)? {
        fields.push(("retention", mostly(u, DURATIONS, 6)?));
    }
    if one_in(u, 10)? {
        fields.push((
            "sql",
            pick(
                u,
                &["SELECT * FROM source", "SELEC", "SELECT user_id FROM users"],
            )?,
        ));
    }
    if u.ratio(3, 4)? {
        let n = u.int_in_range(0usize..=4)?;
        let items = (0..n).map(|_| field(u)).collect::<Result<Vec<_>>>()?;
        fields.push(("fields", format!("[{}]", items.join(", "))));
    }
    if one_in(u, 4)? {
        let agg = vec![
            ("column", pick(u, COLUMNS)?),
            ("functions", list(u, &FUNCTIONS[..7], 3)?),
            ("windows", list(u, &DURATIONS[..6], 3)?),
        ];
        let agg = object(u, agg)?;
        fields.push(("aggregations", format!("[{agg}]")));
    }
    if one_in(u, 5)? {
        let mut periods = || -> Result<String> {
            let n = u.int_in_range(0usize..=3)?;
            let items = (0..n)
                .map(|_| {
                    mostly(
                        u,
                        &["2", "5", "20", "1", "0", "4294967295", "4294967296", "-1"],
                        3,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(format!("[{}]", items.join(", ")))
        };
        let ts = format!(
            "{{column: {}, returns: {}, volatility: {}, momentum: {}}}",
            "close",
            periods()?,
            periods()?,
            periods()?
        );
        fields.push(("time_series", format!("[{ts}]")));
    }
    if one_in(u, 6)? {
        fields.push((
            "fallback",
            mostly(
                u,
                &[
                    "none",
                    "{layer: offline, on: [unavailable, miss]}",
                    "{layer: offline}",
                    "offline",
                    "{layer: offline, on: []}",
                    "{layer: none, on: [miss]}",
                    "{layer: nowhere}",
                    "{layer: offline, on: [sometimes]}",
                ],
                3,
            )?,
        ));
    }
    if one_in(u, 8)? {
        fields.push((
            "tags",
            format!("{{{}: {}}}", pick(u, &["team"])?, pick(u, &["risk"])?),
        ));
    }
    out.push_str(&object(u, fields)?);
    Ok(())
}

fn service(u: &mut Unstructured<'_>, out: &mut String) -> Result<()> {
    let refs: &[&str] = &[
        "user_profile:age",
        "user_profile:country",
        "user_profile",
        "user_spend:amount__sum__7d",
        "user_spend:amount__sum__9d",
        "prices:close__return__1",
        "user_profile:",
        ":age",
        "a:b:c",
    ];
    let mut fields = vec![
        ("name", pick(u, SERVICES)?),
        ("features", list(u, refs, 4)?),
    ];
    if one_in(u, 4)? {
        fields.push(("logging", format!("{{sample_rate: {}}}", number(u)?)));
    }
    if one_in(u, 10)? {
        let text = odd_string(u)?;
        fields.push(("description", scalar(u, &text)?));
    }
    out.push_str(&object(u, fields)?);
    Ok(())
}
