//! [`Namespace`]: a record namespace resolved from its configuration: how records are checked
//! on write, the envelope they are stored in, and the Arrow rows they are exported as.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Field as ArrowField;
use quiver_core::{ScalarType, Value, ValueType};
use quiver_offline::records::RecordTable;
use quiver_offline::store::{EVENT_TIMESTAMP, arrow_type};
use quiver_online::records::RecordSpace;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::config::{Isolation, NamespaceConfig};

pub use quiver_offline::records::{ACCEPTED_AT, PAYLOAD};

/// A namespace, ready to check and export records.
#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: String,
    pub id_field: String,
    pub time_field: Option<String>,
    /// Declared fields (not the id), in name order.
    pub fields: Vec<(String, ValueType)>,
    pub required: Vec<String>,
    /// Where its online keys live.
    pub space: RecordSpace,
    /// Its table in the offline store.
    pub table: RecordTable,
}

/// What is stored and queued for one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// When Quiver accepted it, ns since the epoch.
    pub accepted_at: i64,
    /// The record's time (its `time_field`, else `accepted_at`), ns since the epoch.
    pub time: i64,
    pub record: Map<String, Json>,
}

/// The first byte of a zstd frame (magic number `28 B5 2F FD`, little-endian); JSON never
/// starts with it.
const ZSTD_FIRST_BYTE: u8 = 0x28;

impl Envelope {
    /// JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// zstd-compressed JSON (level 1), for large records written often (served-feature logs):
    /// a fraction of the bytes Redis must append to its AOF and keep in the queue.
    pub fn to_compressed_bytes(&self) -> Vec<u8> {
        let json = self.to_bytes();
        zstd::bulk::compress(&json, 1).unwrap_or(json)
    }

    /// Reads either form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, String> {
        let unreadable = |e: &dyn std::fmt::Display| format!("stored record is not readable: {e}");
        if bytes.first() == Some(&ZSTD_FIRST_BYTE) {
            let json = zstd::stream::decode_all(bytes).map_err(|e| unreadable(&e))?;
            return serde_json::from_slice(&json).map_err(|e| unreadable(&e));
        }
        serde_json::from_slice(bytes).map_err(|e| unreadable(&e))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Namespace {
    /// Resolves a namespace of `project`; `key_prefix` is the online store's (`quiver`).
    pub fn resolve(
        project: &str,
        key_prefix: &str,
        config: &NamespaceConfig,
    ) -> Result<Namespace, String> {
        let at = format!("records namespace `{}`", config.name);
        if !valid_name(&config.name) {
            return Err(format!(
                "{at}: the name must be 1-64 letters, digits, `_` or `-`"
            ));
        }
        if config.id_field.is_empty() {
            return Err(format!("{at}: field `id_field` must not be empty"));
        }
        let mut fields = Vec::new();
        for (name, ty) in &config.fields {
            if name == &config.id_field {
                continue;
            }
            if [EVENT_TIMESTAMP, ACCEPTED_AT, PAYLOAD].contains(&name.as_str()) {
                return Err(format!(
                    "{at}: field `{name}` is reserved for the exported table; rename it"
                ));
            }
            let ty: ValueType = ty
                .parse()
                .map_err(|e| format!("{at}: field `{name}`: {e}"))?;
            fields.push((name.clone(), ty));
        }
        for r in &config.required {
            if r != &config.id_field && !config.fields.contains_key(r) {
                return Err(format!(
                    "{at}: required field `{r}` is not declared in `fields`"
                ));
            }
        }
        if let Some(t) = &config.time_field
            && let Some((_, ty)) = fields.iter().find(|(n, _)| n == t)
            && *ty != ValueType::Scalar(ScalarType::Timestamp)
        {
            return Err(format!(
                "{at}: `time_field` `{t}` is declared as {ty}; it must be a timestamp"
            ));
        }
        // The namespace in braces is a Redis hash tag: every key of a namespace (records and
        // queue) maps to one Cluster slot, so one MULTI/EXEC can write them together.
        let (key_prefix, db) = match &config.isolation {
            None => (
                format!("{key_prefix}:{project}:records:{{{}}}", config.name),
                None,
            ),
            Some(Isolation::Db { db }) => (
                format!("{key_prefix}:{project}:records:{{{}}}", config.name),
                Some(*db),
            ),
            Some(Isolation::Prefix { prefix }) => (format!("{prefix}:{{{}}}", config.name), None),
        };
        let table = RecordTable::new(project, &config.name, &config.id_field, &fields);
        Ok(Namespace {
            name: config.name.clone(),
            id_field: config.id_field.clone(),
            time_field: config.time_field.clone(),
            fields,
            required: config.required.clone(),
            space: RecordSpace {
                name: config.name.clone(),
                key_prefix,
                ttl: config.ttl,
                db,
                cache: config.cache,
            },
            table,
        })
    }

    /// Checks one record and wraps it for storage. `path_id` is the id from the URL (it must
    /// agree with the record's id field when both are given); errors name the field.
    pub fn accept(
        &self,
        path_id: Option<&str>,
        record: Json,
        now_ns: i64,
    ) -> Result<Envelope, String> {
        let Json::Object(mut record) = record else {
            return Err(format!(
                "a record of namespace `{}` must be a JSON object",
                self.name
            ));
        };
        let body_id = match record.get(&self.id_field) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(format!(
                    "field `{}` (the record id) must be a string or an integer, not {other}",
                    self.id_field
                ));
            }
        };
        let id = match (path_id, body_id) {
            (Some(p), Some(b)) if p != b => {
                return Err(format!(
                    "field `{}` is `{b}` but the URL names record `{p}`",
                    self.id_field
                ));
            }
            (Some(p), _) => p.to_string(),
            (None, Some(b)) => b,
            (None, None) => {
                return Err(format!(
                    "field `{}` (the record id) is missing",
                    self.id_field
                ));
            }
        };
        quiver_online::records::check_id(&id)
            .map_err(|e| format!("field `{}`: {e}", self.id_field))?;
        record
            .entry(self.id_field.clone())
            .or_insert_with(|| Json::String(id.clone()));
        for r in &self.required {
            if record.get(r).is_none_or(Json::is_null) {
                return Err(format!("field `{r}` is required"));
            }
        }
        let mut time = now_ns;
        for (name, ty) in &self.fields {
            let Some(v) = record.get(name) else { continue };
            let value = Value::from_json(v, *ty).map_err(|e| format!("field `{name}`: {e}"))?;
            if self.time_field.as_deref() == Some(name.as_str())
                && let Value::Timestamp(t) = value
            {
                time = t;
            }
        }
        if let Some(t) = &self.time_field
            && !self.fields.iter().any(|(n, _)| n == t)
            && let Some(v) = record.get(t).filter(|v| !v.is_null())
        {
            match Value::from_json(v, ValueType::Scalar(ScalarType::Timestamp)) {
                Ok(Value::Timestamp(ns)) => time = ns,
                Ok(_) => {}
                Err(e) => return Err(format!("field `{t}` (the record time): {e}")),
            }
        }
        Ok(Envelope {
            id,
            accepted_at: now_ns,
            time,
            record,
        })
    }

    /// The exported rows of `envelopes`, with exactly [`RecordTable::schema`]. A record whose
    /// stored field no longer fits its declared type (the namespace changed since it was
    /// accepted) is returned by index with the reason, and left out.
    pub fn to_batch(
        &self,
        envelopes: &[Envelope],
    ) -> Result<(RecordBatch, Vec<(usize, String)>), String> {
        let mut rejected = Vec::new();
        let mut parsed: Vec<Vec<Value>> = Vec::with_capacity(envelopes.len());
        let mut kept = Vec::with_capacity(envelopes.len());
        'rows: for (i, e) in envelopes.iter().enumerate() {
            let mut row = Vec::with_capacity(self.fields.len());
            for (name, ty) in &self.fields {
                match e.record.get(name).map(|v| Value::from_json(v, *ty)) {
                    None => row.push(Value::Null),
                    Some(Ok(v)) => row.push(v),
                    Some(Err(reason)) => {
                        rejected.push((i, format!("field `{name}`: {reason}")));
                        continue 'rows;
                    }
                }
            }
            parsed.push(row);
            kept.push(e);
        }
        let ts = |f: &dyn Fn(&Envelope) -> i64| -> ArrayRef {
            let mut b = TimestampNanosecondBuilder::with_capacity(kept.len()).with_timezone("UTC");
            for e in &kept {
                b.append_value(f(e));
            }
            Arc::new(b.finish())
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.fields.len() + 4);
        let mut ids = StringBuilder::new();
        for e in &kept {
            ids.append_value(&e.id);
        }
        columns.push(Arc::new(ids.finish()));
        columns.push(ts(&|e| e.time));
        columns.push(ts(&|e| e.accepted_at));
        for (c, (_, ty)) in self.fields.iter().enumerate() {
            columns.push(column(parsed.iter().map(|row| &row[c]), *ty, kept.len()));
        }
        let mut payload = StringBuilder::new();
        for e in &kept {
            payload.append_value(serde_json::to_string(&e.record).unwrap_or_default());
        }
        columns.push(Arc::new(payload.finish()));
        let batch = RecordBatch::try_new(self.table.schema.clone(), columns)
            .map_err(|e| format!("namespace `{}`: building the export batch: {e}", self.name))?;
        Ok((batch, rejected))
    }
}

fn decimal_units(d: &rust_decimal::Decimal) -> Option<i128> {
    let mut d = *d;
    d.rescale(10);
    (d.scale() == 10).then(|| d.mantissa())
}

/// One Arrow column of `values` (each `Null` or of type `ty`).
fn column<'a>(values: impl Iterator<Item = &'a Value>, ty: ValueType, n: usize) -> ArrayRef {
    macro_rules! scalar {
        ($builder:expr, $variant:ident, $conv:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    Value::$variant(x) => b.append_option($conv(x)),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    macro_rules! list {
        ($inner:expr, $variant:ident, $conv:expr, $item:expr) => {{
            let mut b = ListBuilder::new($inner)
                .with_field(Arc::new(ArrowField::new("item", $item, false)));
            for v in values {
                match v {
                    Value::$variant(xs) => {
                        for x in xs {
                            match $conv(x) {
                                Some(x) => b.values().append_value(x),
                                None => b.values().append_null(),
                            }
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let ts = || TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let dec = || {
        Decimal128Builder::with_capacity(n)
            .with_precision_and_scale(38, 10)
            .unwrap_or_else(|_| Decimal128Builder::with_capacity(n))
    };
    let scalar_dt = |s: ScalarType| arrow_type(ValueType::Scalar(s));
    match ty {
        ValueType::Scalar(s) => match s {
            ScalarType::Int32 => scalar!(Int32Builder::with_capacity(n), Int32, |x: &i32| Some(*x)),
            ScalarType::Int64 => scalar!(Int64Builder::with_capacity(n), Int64, |x: &i64| Some(*x)),
            ScalarType::Float32 => {
                scalar!(Float32Builder::with_capacity(n), Float32, |x: &f32| Some(
                    *x
                ))
            }
            ScalarType::Float64 => {
                scalar!(Float64Builder::with_capacity(n), Float64, |x: &f64| Some(
                    *x
                ))
            }
            ScalarType::Bool => {
                scalar!(BooleanBuilder::with_capacity(n), Bool, |x: &bool| Some(*x))
            }
            ScalarType::String => {
                scalar!(StringBuilder::new(), String, |x: &String| Some(x.clone()))
            }
            ScalarType::Bytes => {
                scalar!(BinaryBuilder::new(), Bytes, |x: &Vec<u8>| Some(x.clone()))
            }
            ScalarType::Timestamp => scalar!(ts(), Timestamp, |x: &i64| Some(*x)),
            ScalarType::Decimal => scalar!(dec(), Decimal, decimal_units),
        },
        ValueType::List(s) => match s {
            ScalarType::Int32 => list!(
                Int32Builder::new(),
                Int32List,
                |x: &i32| Some(*x),
                scalar_dt(s)
            ),
            ScalarType::Int64 => list!(
                Int64Builder::new(),
                Int64List,
                |x: &i64| Some(*x),
                scalar_dt(s)
            ),
            ScalarType::Float32 => list!(
                Float32Builder::new(),
                Float32List,
                |x: &f32| Some(*x),
                scalar_dt(s)
            ),
            ScalarType::Float64 => list!(
                Float64Builder::new(),
                Float64List,
                |x: &f64| Some(*x),
                scalar_dt(s)
            ),
            ScalarType::Bool => list!(
                BooleanBuilder::new(),
                BoolList,
                |x: &bool| Some(*x),
                scalar_dt(s)
            ),
            ScalarType::String => list!(
                StringBuilder::new(),
                StringList,
                |x: &String| Some(x.clone()),
                scalar_dt(s)
            ),
            ScalarType::Bytes => list!(
                BinaryBuilder::new(),
                BytesList,
                |x: &Vec<u8>| Some(x.clone()),
                scalar_dt(s)
            ),
            ScalarType::Timestamp => list!(ts(), TimestampList, |x: &i64| Some(*x), scalar_dt(s)),
            ScalarType::Decimal => list!(dec(), DecimalList, decimal_units, scalar_dt(s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        let cfg: NamespaceConfig = serde_yaml_ng::from_str(
            "name: tx\nid_field: tx_id\ntime_field: ts\nfields: {amount: float32, ts: timestamp, tags: list<string>}\nrequired: [amount]\n",
        )
        .unwrap();
        Namespace::resolve("shop", "quiver", &cfg).unwrap()
    }

    #[test]
    fn accept_checks_fields_and_ids() {
        let ns = ns();
        let e = ns
            .accept(
                Some("t1"),
                serde_json::json!({"amount": 1.5, "ts": "2026-12-01T00:00:00Z", "note": "x"}),
                7,
            )
            .unwrap();
        assert_eq!(e.id, "t1");
        assert_eq!(e.record["tx_id"], "t1");
        assert_eq!(e.time, 1_796_083_200_000_000_000);
        assert_eq!(e.accepted_at, 7);
        let err = ns
            .accept(Some("t1"), serde_json::json!({"amount": 1e39}), 0)
            .unwrap_err();
        assert!(err.starts_with("field `amount`"), "{err}");
        let err = ns.accept(Some("t1"), serde_json::json!({}), 0).unwrap_err();
        assert_eq!(err, "field `amount` is required");
        let err = ns
            .accept(
                Some("t1"),
                serde_json::json!({"tx_id": "t2", "amount": 1}),
                0,
            )
            .unwrap_err();
        assert!(err.contains("`t2`") && err.contains("`t1`"), "{err}");
        let err = ns
            .accept(None, serde_json::json!({"amount": 1}), 0)
            .unwrap_err();
        assert!(err.contains("`tx_id`"), "{err}");
        assert_eq!(
            ns.accept(None, serde_json::json!({"tx_id": 42, "amount": 1}), 0)
                .unwrap()
                .id,
            "42"
        );
    }

    #[test]
    fn envelopes_read_back_plain_or_compressed() {
        let e = ns()
            .accept(
                Some("t1"),
                serde_json::json!({"amount": 1.5, "note": "x".repeat(500)}),
                7,
            )
            .unwrap();
        let compressed = e.to_compressed_bytes();
        assert!(
            compressed.len() < e.to_bytes().len() / 4,
            "{}",
            compressed.len()
        );
        assert_eq!(Envelope::from_bytes(&compressed).unwrap(), e);
        assert_eq!(Envelope::from_bytes(&e.to_bytes()).unwrap(), e);
        assert!(
            Envelope::from_bytes(b"\x28garbage")
                .unwrap_err()
                .contains("not readable")
        );
    }

    #[test]
    fn exported_rows_have_the_table_schema() {
        let ns = ns();
        let a = ns
            .accept(
                Some("a"),
                serde_json::json!({"amount": 2, "tags": ["x", "y"]}),
                5,
            )
            .unwrap();
        let mut b = ns
            .accept(Some("b"), serde_json::json!({"amount": 3}), 6)
            .unwrap();
        // Stored before a definition change: no longer fits.
        b.record.insert("amount".into(), serde_json::json!("many"));
        let (batch, rejected) = ns.to_batch(&[a, b]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 1);
        assert_eq!(batch.schema(), ns.table.schema);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cfg: NamespaceConfig =
            serde_yaml_ng::from_str("name: tx\nfields: {payload: string}\n").unwrap();
        let err = Namespace::resolve("shop", "quiver", &cfg).unwrap_err();
        assert!(err.contains("`payload` is reserved"), "{err}");
        let cfg: NamespaceConfig = serde_yaml_ng::from_str("name: tx\nrequired: [x]\n").unwrap();
        assert!(
            Namespace::resolve("shop", "quiver", &cfg)
                .unwrap_err()
                .contains("`x`")
        );
    }
}
