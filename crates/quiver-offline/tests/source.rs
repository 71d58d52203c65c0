//! Reading sources end to end: small Parquet and CSV files written to a temporary directory and
//! read back through the public API, plus a property test against a brute-force oracle.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, LargeListBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, StructArray,
    TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
};
use arrow_schema::{DataType, Field as ArrowField};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;
use quiver_core::{EntityKey, Field, JoinKey, KeyValue, ScalarType, Source, SourceFormat, Value};
use quiver_offline::{
    LatestRows, OfflineError, ReadRequest, check_source, read_columns, read_latest,
    read_latest_with_batch_size,
};
use rust_decimal::Decimal;

const SEC: i64 = 1_000_000_000;

fn source(format: SourceFormat, created: bool) -> Source {
    Source {
        name: "users".into(),
        format,
        path: "unused".into(),
        timestamp_field: "ts".into(),
        created_timestamp_field: created.then(|| "created".into()),
        table: None,
        query: None,
        url: None,
        description: None,
        batch_source: None,
    }
}

fn key(name: &str, ty: ScalarType) -> JoinKey {
    JoinKey {
        name: name.into(),
        key_type: ty,
    }
}

fn field(name: &str, ty: &str) -> Field {
    Field {
        name: name.into(),
        value_type: ty.parse().unwrap(),
        expression: None,
        constraints: Default::default(),
        description: None,
    }
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

/// Writes `batches` as one Parquet file with small row groups, so reads cross group boundaries.
fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(3))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
}

fn ts_ns(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

fn int_key(v: i64) -> EntityKey {
    EntityKey::single(KeyValue::Int(v))
}

fn by_key(rows: &LatestRows) -> HashMap<EntityKey, (i64, Option<i64>, Vec<Value>)> {
    rows.rows
        .iter()
        .map(|(k, r)| (k.clone(), (r.event_ts, r.created_ts, r.values.clone())))
        .collect()
}

struct Req {
    path: std::path::PathBuf,
    source: Source,
    keys: Vec<JoinKey>,
    fields: Vec<Field>,
    start: Option<i64>,
    end: Option<i64>,
}

impl Req {
    fn new(path: &Path, source: Source, keys: Vec<JoinKey>, fields: Vec<Field>) -> Req {
        Req {
            path: path.to_path_buf(),
            source,
            keys,
            fields,
            start: None,
            end: None,
        }
    }

    fn get(&self) -> ReadRequest<'_> {
        ReadRequest {
            path: &self.path,
            source: &self.source,
            join_keys: &self.keys,
            fields: &self.fields,
            inputs: &[],
            start: self.start,
            end: self.end,
            sql: None,
        }
    }

    fn read(&self) -> Result<LatestRows, OfflineError> {
        read_latest(&self.get())
    }
}

#[test]
fn latest_row_per_entity_breaks_ties_by_created_then_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2, 2, 3])),
            ),
            (
                "ts",
                ts_ns(vec![
                    Some(10 * SEC),
                    Some(20 * SEC),
                    Some(20 * SEC),
                    Some(5 * SEC),
                    Some(5 * SEC),
                    Some(4 * SEC),
                    Some(SEC),
                ]),
            ),
            (
                "created",
                ts_ns(vec![
                    Some(1),
                    Some(9),
                    Some(3),
                    Some(7),
                    Some(7),
                    Some(100),
                    None,
                ]),
            ),
            (
                "age",
                Arc::new(Int64Array::from(vec![10, 11, 12, 20, 21, 22, 30])),
            ),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, true),
        vec![key("user_id", ScalarType::Int64)],
        vec![field("age", "int64")],
    );
    let rows = req.read().unwrap();
    let got = by_key(&rows);
    // User 1: the two rows at 20 s tie on event time; created 9 beats created 3.
    assert_eq!(
        got[&int_key(1)],
        (20 * SEC, Some(9), vec![Value::Int64(11)])
    );
    // User 2: full tie on (5 s, 7): the later row in the file wins.
    assert_eq!(got[&int_key(2)], (5 * SEC, Some(7), vec![Value::Int64(21)]));
    assert_eq!(got[&int_key(3)], (SEC, None, vec![Value::Int64(30)]));
    assert_eq!(rows.rows.len(), 3);
    // Keys come out in order of first appearance.
    let order: Vec<_> = rows.rows.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(order, vec![int_key(1), int_key(2), int_key(3)]);
    assert_eq!((rows.rows_scanned, rows.rows_in_window), (7, 7));

    // Batches of one row: the same answer when every tie crosses a batch boundary.
    assert_eq!(
        by_key(&read_latest_with_batch_size(&req.get(), 1).unwrap()),
        got
    );
}

#[test]
fn window_start_is_inclusive_and_end_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            ("user_id", Arc::new(Int64Array::from(vec![1, 1, 1, 2]))),
            (
                "ts",
                ts_ns(vec![
                    Some(9 * SEC),
                    Some(10 * SEC),
                    Some(20 * SEC),
                    Some(20 * SEC),
                ]),
            ),
            ("v", Arc::new(Int32Array::from(vec![9, 10, 20, 200]))),
        ])],
    );
    let mut req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![field("v", "int32")],
    );
    req.start = Some(10 * SEC);
    req.end = Some(20 * SEC);
    let rows = req.read().unwrap();
    assert_eq!(rows.rows.len(), 1, "user 2 has no row in the window");
    assert_eq!(rows.rows[0].1.values, vec![Value::Int32(10)]);
    assert_eq!(rows.rows[0].1.event_ts, 10 * SEC);
    assert_eq!((rows.rows_scanned, rows.rows_in_window), (4, 1));

    req.end = Some(20 * SEC + 1);
    let rows = req.read().unwrap();
    assert_eq!(by_key(&rows)[&int_key(1)].2, vec![Value::Int32(20)]);
    assert_eq!(by_key(&rows)[&int_key(2)].2, vec![Value::Int32(200)]);
}

#[test]
fn nulls_become_null_values_and_null_keys_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(3)])),
            ),
            (
                "ts",
                ts_ns(vec![Some(SEC), Some(2 * SEC), None, Some(3 * SEC)]),
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![
                    None,
                    Some("x"),
                    Some("y"),
                    Some("z"),
                ])),
            ),
            (
                "ok",
                Arc::new(BooleanArray::from(vec![Some(true), None, None, None])),
            ),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![field("name", "string"), field("ok", "bool")],
    );
    let rows = req.read().unwrap();
    let got = by_key(&rows);
    assert_eq!(got[&int_key(1)].2, vec![Value::Null, Value::Bool(true)]);
    assert_eq!(
        got[&int_key(3)].2,
        vec![Value::String("z".into()), Value::Null]
    );
    assert!(!got.contains_key(&int_key(2)), "null event time: skipped");
    assert_eq!(rows.rows_null_key, 1);
    assert_eq!(rows.rows_null_timestamp, 1);
    assert_eq!((rows.rows_scanned, rows.rows_in_window), (4, 2 + 1));
}

#[test]
fn safe_casts_widen_and_narrowing_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.parquet");
    let big = dir.path().join("big.parquet");
    let columns = |wide: i64| {
        batch(vec![
            ("user_id", Arc::new(Int32Array::from(vec![7])) as ArrayRef),
            ("ts", ts_ns(vec![Some(SEC)])),
            ("small", Arc::new(UInt8Array::from(vec![200]))),
            ("f", Arc::new(Float32Array::from(vec![0.5]))),
            ("wide", Arc::new(Int64Array::from(vec![wide]))),
        ])
    };
    write_parquet(&path, &[columns(-5)]);
    write_parquet(&big, &[columns(5_000_000_000)]);
    let fields = vec![
        field("small", "int64"),
        field("f", "float64"),
        field("small", "float32"),
        field("wide", "int32"),
        field("wide", "decimal"),
    ];
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        fields.clone(),
    );
    let rows = req.read().unwrap();
    assert_eq!(
        rows.rows[0].0,
        int_key(7),
        "int32 key column reads as an int key"
    );
    assert_eq!(
        rows.rows[0].1.values,
        vec![
            Value::Int64(200),
            Value::Float64(0.5),
            Value::Float32(200.0),
            Value::Int32(-5),
            Value::Decimal(Decimal::from(-5)),
        ]
    );
    let req = Req::new(
        &big,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        fields,
    );
    let err = req.read().unwrap_err().to_string();
    assert!(
        err.contains("column `wide`") && err.contains("5000000000") && err.contains("int32"),
        "{err}"
    );
    assert!(err.contains("big.parquet"), "{err}");
    // The types are compatible; only a value is out of range, which apply cannot see.
    check_source(&req.get()).unwrap();
}

#[test]
fn missing_column_error_names_it_and_lists_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            ("user_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("ts", ts_ns(vec![Some(SEC)])),
            ("age", Arc::new(Int32Array::from(vec![3]))),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![field("age", "int32"), field("country", "string")],
    );
    for err in [
        req.read().unwrap_err(),
        check_source(&req.get()).unwrap_err(),
    ] {
        assert!(matches!(err, OfflineError::MissingColumn { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("no column `country`"), "{text}");
        assert!(text.contains("`user_id`, `ts`, `age`"), "{text}");
        assert!(text.starts_with("source `users` ("), "{text}");
    }
}

#[test]
fn incompatible_type_error_says_what_was_found_and_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            (
                "user_id",
                Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
            ),
            ("ts", ts_ns(vec![Some(SEC)])),
            ("age", Arc::new(StringArray::from(vec!["12"]))),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::String)],
        vec![field("age", "int32")],
    );
    let err = req.read().unwrap_err();
    assert!(err.is_schema_mismatch());
    assert_eq!(
        err.to_string(),
        format!(
            "source `users` ({}): column `age` is Utf8 but feature view field is int32",
            path.display()
        )
    );
    let bad_key = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![],
    );
    let text = check_source(&bad_key.get()).unwrap_err().to_string();
    assert!(
        text.contains("column `user_id` is Utf8 but join key `user_id` is int64"),
        "{text}"
    );
    let mut ts_as_int = bad_key;
    ts_as_int.keys = vec![key("user_id", ScalarType::String)];
    ts_as_int.source.timestamp_field = "age".into();
    let text = ts_as_int.read().unwrap_err().to_string();
    assert!(
        text.contains("column `age` is Utf8 but a source timestamp"),
        "{text}"
    );
}

#[test]
fn decimals_and_timestamps_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    let dec = Decimal128Array::from(vec![Some(123_456_789_012_345_678_901_234_567i128), None])
        .with_precision_and_scale(38, 9)
        .unwrap();
    write_parquet(
        &path,
        &[batch(vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            // A naive second-resolution timestamp: taken as UTC.
            (
                "ts",
                Arc::new(TimestampSecondArray::from(vec![1_700_000_000, 1])),
            ),
            ("price", Arc::new(dec)),
            (
                "seen",
                Arc::new(TimestampNanosecondArray::from(vec![
                    1_700_000_000_123_456_789,
                    -1,
                ])),
            ),
            (
                "seen_us",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, 0])
                        .with_timezone("America/New_York"),
                ),
            ),
            ("day", Arc::new(Date32Array::from(vec![19_000, -1]))),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![
            field("price", "decimal"),
            field("seen", "timestamp"),
            field("seen_us", "timestamp"),
            field("day", "timestamp"),
            field("price", "float64"),
        ],
    );
    let got = by_key(&req.read().unwrap());
    let (event, _, values) = &got[&int_key(1)];
    assert_eq!(*event, 1_700_000_000 * SEC);
    assert_eq!(
        values[0],
        Value::Decimal(Decimal::from_str_exact("123456789012345678.901234567").unwrap())
    );
    assert_eq!(values[1], Value::Timestamp(1_700_000_000_123_456_789));
    assert_eq!(values[2], Value::Timestamp(1_700_000_000_123_456_000));
    assert_eq!(values[3], Value::Timestamp(19_000 * 86_400 * SEC));
    assert_eq!(
        values[4],
        Value::Float64(123_456_789_012_345_678.901_234_567)
    );
    let (event, _, values) = &got[&int_key(2)];
    assert_eq!(*event, SEC);
    assert_eq!(
        values[..4],
        [
            Value::Null,
            Value::Timestamp(-1),
            Value::Timestamp(0),
            Value::Timestamp(-86_400 * SEC)
        ]
    );
}

#[test]
fn string_and_multi_column_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.parquet");
    write_parquet(
        &path,
        &[batch(vec![
            (
                "country",
                Arc::new(StringViewArray::from(vec!["de", "de", "fr", "de"])) as ArrayRef,
            ),
            (
                "merchant",
                Arc::new(LargeStringArray::from(vec!["m1", "m2", "m1", "m1"])),
            ),
            ("store", Arc::new(Int32Array::from(vec![1, 1, 1, 2]))),
            ("ts", ts_ns(vec![Some(1), Some(2), Some(3), Some(4)])),
            ("v", Arc::new(Int64Array::from(vec![10, 20, 30, 40]))),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![
            key("country", ScalarType::String),
            key("merchant", ScalarType::String),
        ],
        vec![field("v", "int64")],
    );
    let got = by_key(&req.read().unwrap());
    let k = |a: &str, b: &str| EntityKey(vec![KeyValue::Str(a.into()), KeyValue::Str(b.into())]);
    assert_eq!(got.len(), 3);
    assert_eq!(got[&k("de", "m1")].2, vec![Value::Int64(40)]);
    assert_eq!(got[&k("de", "m2")].2, vec![Value::Int64(20)]);
    assert_eq!(got[&k("fr", "m1")].2, vec![Value::Int64(30)]);

    let mixed = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![
            key("country", ScalarType::String),
            key("store", ScalarType::Int64),
        ],
        vec![field("v", "int64")],
    );
    let got = by_key(&mixed.read().unwrap());
    let k = |a: &str, b: i64| EntityKey(vec![KeyValue::Str(a.into()), KeyValue::Int(b)]);
    assert_eq!(got[&k("de", 1)].2, vec![Value::Int64(20)]);
    assert_eq!(got[&k("de", 2)].2, vec![Value::Int64(40)]);
}

#[test]
fn lists_read_from_fixed_and_large_lists_and_other_columns_are_not_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.parquet");
    let mut fixed = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    fixed.values().append_slice(&[0.5, -1.0]);
    fixed.append(true);
    fixed.values().append_slice(&[0.0, 0.0]);
    fixed.append(false);
    let mut large = LargeListBuilder::new(Float32Builder::new());
    large.values().append_slice(&[1.0, 2.0, 3.0]);
    large.append(true);
    large.values().append_value(4.0);
    large.append(true);
    // A column Quiver has no type for: never needed, so it must not matter.
    let nested = StructArray::from(vec![(
        Arc::new(ArrowField::new("x", DataType::Int32, false)),
        Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
    )]);
    write_parquet(
        &path,
        &[batch(vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            ("ts", ts_ns(vec![Some(1), Some(2)])),
            ("emb", Arc::new(fixed.finish())),
            ("hist", Arc::new(large.finish())),
            ("nested", Arc::new(nested)),
        ])],
    );
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![
            field("emb", "list<float32>"),
            field("hist", "list<float64>"),
        ],
    );
    let got = by_key(&req.read().unwrap());
    assert_eq!(
        got[&int_key(1)].2,
        vec![
            Value::Float32List(vec![0.5, -1.0]),
            Value::Float64List(vec![1.0, 2.0, 3.0])
        ]
    );
    assert_eq!(
        got[&int_key(2)].2,
        vec![Value::Null, Value::Float64List(vec![4.0])]
    );
    let schema = read_columns(&path, SourceFormat::Parquet).unwrap();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["user_id", "ts", "emb", "hist", "nested"]);
}

#[test]
fn unreadable_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.parquet");
    std::fs::write(&path, b"not parquet at all").unwrap();
    let req = Req::new(
        &path,
        source(SourceFormat::Parquet, false),
        vec![key("user_id", ScalarType::Int64)],
        vec![],
    );
    let err = req.read().unwrap_err();
    assert!(matches!(err, OfflineError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.parquet"), "{err}");
    let missing = dir.path().join("nope.csv");
    let err = read_columns(&missing, SourceFormat::Csv).unwrap_err();
    assert!(err.to_string().starts_with("file `"), "{err}");
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

fn csv_req(path: &Path, fields: Vec<Field>) -> Req {
    Req::new(
        path,
        source(SourceFormat::Csv, true),
        vec![key("user_id", ScalarType::Int64)],
        fields,
    )
}

#[test]
fn csv_reads_typed_columns_with_both_timestamp_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.csv");
    std::fs::write(
        &path,
        "note,user_id,ts,created,age,price,score,active,seen\n\
         a,1,2026-01-01 00:00:00,2026-01-01T00:00:05Z,30,0.10,1.5,true,2026-01-01T01:00:00+01:00\n\
         b,1,2026-01-01T00:00:00Z,2026-01-01 00:00:04,31,0.20,2.5,false,\n\
         c,2,2026-01-02 12:00:00.5,,40,123456789.123456789,,,\n\
         d,,2026-01-03 00:00:00,,50,1,1,true,\n",
    )
    .unwrap();
    let req = csv_req(
        &path,
        vec![
            field("age", "int32"),
            field("price", "decimal"),
            field("score", "float64"),
            field("active", "bool"),
            field("seen", "timestamp"),
        ],
    );
    let rows = req.read().unwrap();
    let got = by_key(&rows);
    let jan1 = 1_767_225_600 * SEC;
    assert_eq!(
        got[&int_key(1)],
        (
            jan1,
            Some(jan1 + 5 * SEC),
            vec![
                Value::Int32(30),
                Value::Decimal(Decimal::from_str_exact("0.10").unwrap()),
                Value::Float64(1.5),
                Value::Bool(true),
                Value::Timestamp(jan1),
            ]
        )
    );
    assert_eq!(
        got[&int_key(2)],
        (
            jan1 + 86_400 * SEC + 12 * 3600 * SEC + SEC / 2,
            None,
            vec![
                Value::Int32(40),
                Value::Decimal(Decimal::from_str_exact("123456789.123456789").unwrap()),
                Value::Null,
                Value::Null,
                Value::Null,
            ]
        )
    );
    assert_eq!(rows.rows_null_key, 1);
    assert_eq!(rows.rows_scanned, 4);
    check_source(&req.get()).unwrap();
    let header = read_columns(&path, SourceFormat::Csv).unwrap();
    assert_eq!(header.fields().len(), 9);
    assert_eq!(header.field(0).name(), "note");
}

#[test]
fn csv_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "user_id,ts,created,age\n1,2026-01-01 00:00:00,,abc\n",
    )
    .unwrap();
    let err = csv_req(&path, vec![field("age", "int32")])
        .read()
        .unwrap_err();
    assert!(matches!(err, OfflineError::ReadData { .. }), "{err:?}");
    assert!(err.to_string().contains("abc"), "{err}");

    let err = csv_req(&path, vec![field("emb", "list<float32>")])
        .read()
        .unwrap_err();
    assert!(matches!(err, OfflineError::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("field `emb` is a list (list<float32>)"),
        "{err}"
    );

    let err = check_source(&csv_req(&path, vec![field("country", "string")]).get()).unwrap_err();
    assert!(
        err.to_string()
            .contains("no column `country`; available columns: `user_id`, `ts`, `created`, `age`"),
        "{err}"
    );

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let err = csv_req(&empty, vec![]).read().unwrap_err();
    assert!(err.to_string().contains("header"), "{err}");
}

// ---- property test: read_latest against a brute-force oracle ----

#[derive(Clone, Debug)]
struct Row {
    key: Option<i64>,
    ts: Option<i64>,
    created: Option<i64>,
    value: Option<i64>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.9, 0i64..5),
        prop::option::weighted(0.95, 0i64..8),
        prop::option::weighted(0.7, 0i64..3),
        prop::option::weighted(0.8, any::<i64>()),
    )
        .prop_map(|(key, ts, created, value)| Row {
            key,
            ts,
            created,
            value,
        })
}

/// The obvious quadratic answer: filter, then pick the max by (ts, created, file position).
fn oracle(
    rows: &[Row],
    start: Option<i64>,
    end: Option<i64>,
) -> HashMap<EntityKey, (i64, Option<i64>, Vec<Value>)> {
    let mut out = HashMap::new();
    for k in 0..5 {
        let best = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key == Some(k))
            .filter_map(|(i, r)| r.ts.map(|ts| (i, ts, r)))
            .filter(|(_, ts, _)| start.is_none_or(|s| *ts >= s) && end.is_none_or(|e| *ts < e))
            .max_by_key(|(i, ts, r)| (*ts, r.created.unwrap_or(i64::MIN), *i));
        if let Some((_, ts, r)) = best {
            let value = r.value.map_or(Value::Null, Value::Int64);
            out.insert(int_key(k), (ts, r.created, vec![value]));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn read_latest_matches_the_oracle(
        rows in prop::collection::vec(row(), 1..40),
        start in prop::option::of(0i64..8),
        end in prop::option::of(0i64..9),
        batch_size in 1usize..8,
        csv in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let format = if csv { SourceFormat::Csv } else { SourceFormat::Parquet };
        let path = dir.path().join(if csv { "p.csv" } else { "p.parquet" });
        if csv {
            let mut text = String::from("user_id,ts,created,v\n");
            let ts = |t: Option<i64>| t.map_or(String::new(), |t| format!("1970-01-01T00:00:0{t}Z"));
            for r in &rows {
                let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
                text.push_str(&format!("{},{},{},{}\n", opt(r.key), ts(r.ts), ts(r.created), opt(r.value)));
            }
            std::fs::write(&path, text).unwrap();
        } else {
            let secs = |f: fn(&Row) -> Option<i64>| ts_ns(rows.iter().map(|r| f(r).map(|t| t * SEC)).collect());
            write_parquet(&path, &[batch(vec![
                ("user_id", Arc::new(Int64Array::from(rows.iter().map(|r| r.key).collect::<Vec<_>>())) as ArrayRef),
                ("ts", secs(|r| r.ts)),
                ("created", secs(|r| r.created)),
                ("v", Arc::new(Int64Array::from(rows.iter().map(|r| r.value).collect::<Vec<_>>()))),
            ])]);
        }
        let mut req = Req::new(&path, source(format, true), vec![key("user_id", ScalarType::Int64)], vec![field("v", "int64")]);
        req.start = start.map(|s| s * SEC);
        req.end = end.map(|e| e * SEC);
        let got = read_latest_with_batch_size(&req.get(), batch_size).unwrap();
        // The oracle works in seconds; scale its timestamps to nanoseconds.
        let want: HashMap<_, _> = oracle(&rows, start, end)
            .into_iter()
            .map(|(k, (ts, c, v))| (k, (ts * SEC, c.map(|c| c * SEC), v)))
            .collect();
        prop_assert_eq!(by_key(&got), want);
        prop_assert_eq!(got.rows_scanned, rows.len() as u64);
        let in_window = rows.iter().filter(|r| r.ts.is_some_and(|t|
            start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e))).count() as u64;
        prop_assert_eq!(got.rows_in_window, in_window);
        prop_assert_eq!(got.rows_null_timestamp, rows.iter().filter(|r| r.ts.is_none()).count() as u64);
    }
}
