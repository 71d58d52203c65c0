//! Turns parsed definition files into [`Definitions`], checking names, types, constraints and
//! every cross-reference. All problems are reported at once, each naming file, object and field.

use std::collections::BTreeMap;

use super::serialize::{DefinitionsFile, FeatureViewDef, FieldDef};
use super::{
    AggFunction, Constraints, Definitions, Entity, FallbackDef, FeatureRef, FeatureService,
    FeatureView, Field, JoinKey, SeriesKind, Source, SourceFormat, Transform,
};
use crate::error::CoreError;
use crate::value::{ScalarType, Value, ValueType};

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

struct Ctx {
    errors: Vec<String>,
}

impl Ctx {
    fn err(&mut self, file: &str, msg: String) {
        self.errors.push(format!("{file}: {msg}"));
    }

    fn name(&mut self, file: &str, what: &str, name: &str) {
        if !valid_name(name) {
            self.err(
                file,
                format!(
                    "{what} name `{name}` is invalid: use letters, digits and `_`, starting with a letter"
                ),
            );
        }
    }
}

/// Registers `name` in `seen`, reporting a duplicate with both files.
fn unique(
    ctx: &mut Ctx,
    seen: &mut BTreeMap<String, String>,
    file: &str,
    what: &str,
    name: &str,
) -> bool {
    if let Some(first) = seen.get(name) {
        ctx.err(
            file,
            format!("{what} `{name}` is defined twice (first in {first})"),
        );
        false
    } else {
        seen.insert(name.to_string(), file.to_string());
        true
    }
}

impl Definitions {
    /// Builds validated definitions from `(file name, parsed file)` pairs.
    pub fn build_and_validate(
        files: &[(String, DefinitionsFile)],
    ) -> Result<Definitions, CoreError> {
        let mut ctx = Ctx { errors: Vec::new() };
        let mut defs = Definitions::default();
        let mut origin: BTreeMap<&'static str, BTreeMap<String, String>> = BTreeMap::new();
        // Push sources: (file, name, batch source, description), resolved after every source.
        let mut pushes: Vec<(String, String, String, Option<String>)> = Vec::new();

        for (file, f) in files {
            for e in &f.entities {
                let what = format!("entity `{}`", e.name);
                ctx.name(file, "entity", &e.name);
                if !unique(
                    &mut ctx,
                    origin.entry("entity").or_default(),
                    file,
                    "entity",
                    &e.name,
                ) {
                    continue;
                }
                let key_type = match e.key_type.as_deref().unwrap_or("int64") {
                    "int64" | "int" | "int32" => ScalarType::Int64,
                    "string" | "str" => ScalarType::String,
                    other => {
                        ctx.err(
                            file,
                            format!("{what}: field `key_type`: `{other}` is not supported; use `int64` or `string`"),
                        );
                        ScalarType::Int64
                    }
                };
                if e.join_keys.is_empty() {
                    ctx.err(file, format!("{what}: field `join_keys` is empty"));
                }
                for k in &e.join_keys {
                    ctx.name(file, &format!("{what}: join key"), k);
                }
                defs.entities.insert(
                    e.name.clone(),
                    Entity {
                        name: e.name.clone(),
                        join_keys: e
                            .join_keys
                            .iter()
                            .map(|k| JoinKey {
                                name: k.clone(),
                                key_type,
                            })
                            .collect(),
                        description: e.description.clone(),
                    },
                );
            }
            for s in &f.sources {
                let what = format!("source `{}`", s.name);
                ctx.name(file, "source", &s.name);
                if !unique(
                    &mut ctx,
                    origin.entry("source").or_default(),
                    file,
                    "source",
                    &s.name,
                ) {
                    continue;
                }
                let kind = s.kind.clone().unwrap_or_else(|| {
                    if s.path.to_ascii_lowercase().ends_with(".csv") {
                        "csv".into()
                    } else {
                        "parquet".into()
                    }
                });
                if kind == "push" {
                    if s.batch_source
                        .as_deref()
                        .is_none_or(|b| b.trim().is_empty())
                    {
                        ctx.err(
                            file,
                            format!("{what}: field `batch_source` is required for `type: push` (the source pushed rows are appended to)"),
                        );
                    }
                    if !s.path.is_empty()
                        || s.table.is_some()
                        || s.query.is_some()
                        || s.url.is_some()
                    {
                        ctx.err(
                            file,
                            format!("{what}: a push source has no `path`, `table`, `query` or `url`; its `batch_source` has them"),
                        );
                    }
                    if !s.timestamp_field.is_empty() || s.created_timestamp_field.is_some() {
                        ctx.err(
                            file,
                            format!(
                                "{what}: a push source uses its batch source's `timestamp_field`"
                            ),
                        );
                    }
                    // Resolved against its batch source once every source is known.
                    pushes.push((
                        file.clone(),
                        s.name.clone(),
                        s.batch_source.clone().unwrap_or_default(),
                        s.description.clone(),
                    ));
                    continue;
                }
                if s.batch_source.is_some() {
                    ctx.err(
                        file,
                        format!("{what}: field `batch_source` applies only to `type: push`"),
                    );
                }
                let format = match kind.as_str() {
                    "parquet" => SourceFormat::Parquet,
                    "csv" => SourceFormat::Csv,
                    "postgres" | "postgresql" => SourceFormat::Postgres,
                    other => {
                        ctx.err(
                            file,
                            format!("{what}: field `type`: `{other}` is not supported; use `parquet`, `csv`, `postgres` or `push`"),
                        );
                        SourceFormat::Parquet
                    }
                };
                match format {
                    SourceFormat::Postgres => {
                        if s.table.is_some() == s.query.is_some() {
                            ctx.err(
                                file,
                                format!("{what}: give exactly one of `table` or `query`"),
                            );
                        }
                        if !s.path.is_empty() {
                            ctx.err(
                                file,
                                format!("{what}: field `path` does not apply to a postgres source"),
                            );
                        }
                    }
                    _ => {
                        if s.path.trim().is_empty() {
                            ctx.err(file, format!("{what}: field `path` is empty"));
                        }
                        if s.table.is_some() || s.query.is_some() || s.url.is_some() {
                            ctx.err(file, format!("{what}: `table`, `query` and `url` apply only to `type: postgres`"));
                        }
                    }
                }
                if s.timestamp_field.trim().is_empty() {
                    ctx.err(file, format!("{what}: field `timestamp_field` is empty"));
                }
                defs.sources.insert(
                    s.name.clone(),
                    Source {
                        name: s.name.clone(),
                        format,
                        path: s.path.clone(),
                        table: s.table.clone(),
                        query: s.query.clone(),
                        url: s.url.clone(),
                        timestamp_field: s.timestamp_field.clone(),
                        created_timestamp_field: s.created_timestamp_field.clone(),
                        description: s.description.clone(),
                        batch_source: None,
                    },
                );
            }
        }
        // Push sources read like their batch source: they carry its location and columns.
        for (file, name, batch, description) in pushes {
            match defs.sources.get(&batch) {
                Some(b) if !b.is_push() => {
                    let source = Source {
                        name: name.clone(),
                        description,
                        batch_source: Some(batch.clone()),
                        ..b.clone()
                    };
                    defs.sources.insert(name, source);
                }
                Some(_) => ctx.err(
                    &file,
                    format!(
                        "source `{name}`: field `batch_source`: `{batch}` is a push source itself"
                    ),
                ),
                None if batch.trim().is_empty() => {}
                None => ctx.err(
                    &file,
                    format!(
                        "source `{name}`: field `batch_source`: unknown source `{batch}`{}",
                        known(defs.sources.keys())
                    ),
                ),
            }
        }

        for (file, f) in files {
            for v in &f.feature_views {
                let what = format!("feature view `{}`", v.name);
                ctx.name(file, "feature view", &v.name);
                if !unique(
                    &mut ctx,
                    origin.entry("view").or_default(),
                    file,
                    "feature view",
                    &v.name,
                ) {
                    continue;
                }
                let mut join_keys: Vec<JoinKey> = Vec::new();
                if v.entities.is_empty() {
                    ctx.err(file, format!("{what}: field `entities` is empty"));
                }
                for e in &v.entities {
                    match defs.entities.get(e) {
                        Some(entity) => join_keys.extend(entity.join_keys.iter().cloned()),
                        None => ctx.err(
                            file,
                            format!(
                                "{what}: field `entities`: unknown entity `{e}`{}",
                                known(defs.entities.keys())
                            ),
                        ),
                    }
                }
                let source = defs.sources.get(&v.source);
                if source.is_none() {
                    ctx.err(
                        file,
                        format!(
                            "{what}: field `source`: unknown source `{}`{}",
                            v.source,
                            known(defs.sources.keys())
                        ),
                    );
                }
                let ttl = match v.ttl.as_deref().map(crate::duration::parse).transpose() {
                    Ok(ttl) => ttl,
                    Err(e) => {
                        ctx.err(file, format!("{what}: field `ttl`: {e}"));
                        None
                    }
                };
                let retention = match v
                    .retention
                    .as_deref()
                    .map(crate::duration::parse)
                    .transpose()
                {
                    Ok(r) => r,
                    Err(e) => {
                        ctx.err(file, format!("{what}: field `retention`: {e}"));
                        None
                    }
                };
                let derived = !v.aggregations.is_empty() || !v.time_series.is_empty();
                let sql = v.sql.as_deref().map(str::trim).map(str::to_string);
                if sql.as_deref() == Some("") {
                    ctx.err(file, format!("{what}: field `sql` is empty (give a query such as `SELECT ... FROM source`, or leave `sql` out)"));
                }
                if sql.is_some()
                    && let Some(s) = source
                    && s.format == SourceFormat::Postgres
                {
                    ctx.err(file, format!("{what}: field `sql`: source `{}` is a postgres source; put the SQL in the source's `query` instead (PostgreSQL runs it)", s.name));
                }
                if v.fields.is_empty() && !derived {
                    ctx.err(file, format!("{what}: field `fields` is empty (give `fields`, `aggregations` or `time_series`)"));
                }
                if !v.fields.is_empty() && derived {
                    ctx.err(file, format!("{what}: give either `fields` (read from the source) or `aggregations`/`time_series` (computed), not both; split them into two views"));
                }
                let mut fields: Vec<Field> = Vec::new();
                let mut transforms: Vec<Transform> = Vec::new();
                for (field, transform) in derived_features(&mut ctx, file, &what, v) {
                    if fields.iter().any(|f| f.name == field.name) {
                        ctx.err(
                            file,
                            format!("{what}: feature `{}` is declared twice", field.name),
                        );
                        continue;
                    }
                    fields.push(field);
                    transforms.push(transform);
                }
                for fd in &v.fields {
                    let fwhat = format!("{what}: field `{}`", fd.name);
                    ctx.name(file, &format!("{what}: feature"), &fd.name);
                    if fields.iter().any(|f| f.name == fd.name) {
                        ctx.err(file, format!("{fwhat} is declared twice"));
                        continue;
                    }
                    if join_keys.iter().any(|k| k.name == fd.name) {
                        ctx.err(file, format!("{fwhat} has the name of a join key"));
                    }
                    if let Some(s) = source
                        && (s.timestamp_field == fd.name
                            || s.created_timestamp_field.as_deref() == Some(fd.name.as_str()))
                    {
                        ctx.err(file, format!("{fwhat} is the source's timestamp column, which Quiver keeps as the event time"));
                    }
                    match build_field(fd) {
                        Ok(field) => fields.push(field),
                        Err(e) => ctx.err(file, format!("{fwhat}: {e}")),
                    }
                }
                let inputs = view_inputs(&mut ctx, file, &what, v, &fields, &join_keys);
                check_expressions(&mut ctx, file, &what, &fields, &inputs, derived);
                let fallback = match v.fallback.as_ref().map(FallbackDef::policy).transpose() {
                    Ok(f) => f,
                    Err(e) => {
                        ctx.err(file, format!("{what}: field `fallback`: {e}"));
                        None
                    }
                };
                let freshness_max_age = match v
                    .freshness
                    .as_ref()
                    .map(|f| crate::duration::parse(&f.max_age))
                    .transpose()
                {
                    Ok(Some(d)) if d.is_zero() => {
                        ctx.err(
                            file,
                            format!("{what}: field `freshness.max_age` must be longer than zero"),
                        );
                        None
                    }
                    Ok(d) => d,
                    Err(e) => {
                        ctx.err(file, format!("{what}: field `freshness.max_age`: {e}"));
                        None
                    }
                };
                if let Some(c) = v.cost_per_computation
                    && !(c.is_finite() && c >= 0.0)
                {
                    ctx.err(
                        file,
                        format!(
                            "{what}: field `cost_per_computation` must be a number ≥ 0, got {c}"
                        ),
                    );
                }
                if v.max_versions == Some(0) {
                    ctx.err(
                        file,
                        format!(
                            "{what}: field `max_versions` must be at least 1 (the active version)"
                        ),
                    );
                }
                defs.feature_views.insert(
                    v.name.clone(),
                    FeatureView {
                        name: v.name.clone(),
                        entities: v.entities.clone(),
                        join_keys,
                        source: v.source.clone(),
                        ttl,
                        retention,
                        fields,
                        inputs,
                        sql,
                        transforms,
                        description: v.description.clone(),
                        tags: v.tags.clone(),
                        fallback,
                        freshness_max_age,
                        cost_per_computation: v
                            .cost_per_computation
                            .filter(|c| c.is_finite() && *c >= 0.0),
                        max_versions: v.max_versions.filter(|n| *n > 0),
                    },
                );
            }
        }

        for (file, f) in files {
            for s in &f.feature_services {
                let what = format!("feature service `{}`", s.name);
                ctx.name(file, "feature service", &s.name);
                if !unique(
                    &mut ctx,
                    origin.entry("service").or_default(),
                    file,
                    "feature service",
                    &s.name,
                ) {
                    continue;
                }
                let mut features = Vec::new();
                if s.features.is_empty() {
                    ctx.err(file, format!("{what}: field `features` is empty"));
                }
                for text in &s.features {
                    let (view_part, feature) = match text.split_once(':') {
                        Some((v, f)) => (v, Some(f)),
                        None => (text.as_str(), None),
                    };
                    let (view_name, version) = match super::split_version(view_part) {
                        Ok(split) => split,
                        Err(e) => {
                            ctx.err(file, format!("{what}: field `features`: {e}"));
                            continue;
                        }
                    };
                    if let Some(version) = version {
                        // A pinned version's schema is the registry's (checked at apply): only
                        // name the view here.
                        match feature {
                            Some(feat) if !feat.is_empty() => {
                                features.push(FeatureRef {
                                    view: view_name.to_string(),
                                    feature: feat.to_string(),
                                    version: Some(version),
                                })
                            }
                            _ => ctx.err(
                                file,
                                format!("{what}: field `features`: `{text}`: name each feature of a pinned version (`{view_part}:feature`)"),
                            ),
                        }
                        continue;
                    }
                    let Some(view) = defs.feature_views.get(view_name) else {
                        ctx.err(
                            file,
                            format!("{what}: field `features`: unknown feature view `{view_name}` in `{text}`"),
                        );
                        continue;
                    };
                    match feature {
                        None => features.extend(
                            view.fields.iter().map(|f| FeatureRef::new(&view.name, &f.name)),
                        ),
                        Some(feat) if view.field_index(feat).is_some() => {
                            features.push(FeatureRef::new(&view.name, feat))
                        }
                        Some(feat) => ctx.err(
                            file,
                            format!("{what}: field `features`: feature view `{view_name}` has no feature `{feat}`"),
                        ),
                    }
                }
                if let Some(l) = &s.logging
                    && !(l.sample_rate > 0.0 && l.sample_rate <= 1.0)
                {
                    ctx.err(
                        file,
                        format!(
                            "{what}: field `logging.sample_rate`: {} is not in (0, 1]",
                            l.sample_rate
                        ),
                    );
                }
                defs.feature_services.insert(
                    s.name.clone(),
                    FeatureService {
                        name: s.name.clone(),
                        features,
                        description: s.description.clone(),
                        logging: s.logging,
                    },
                );
            }
        }

        if ctx.errors.is_empty() {
            Ok(defs)
        } else {
            Err(CoreError::Definitions(ctx.errors))
        }
    }
}

/// The features of `aggregations` and `time_series`, with how each is computed.
fn derived_features(
    ctx: &mut Ctx,
    file: &str,
    what: &str,
    v: &FeatureViewDef,
) -> Vec<(Field, Transform)> {
    let mut out = Vec::new();
    let field = |name: String, value_type: ValueType| Field {
        name,
        value_type,
        expression: None,
        constraints: Constraints::default(),
        description: None,
    };
    for (i, a) in v.aggregations.iter().enumerate() {
        let awhat = format!("{what}: field `aggregations[{i}]`");
        ctx.name(file, &format!("{awhat}: column"), &a.column);
        if a.functions.is_empty() || a.windows.is_empty() {
            ctx.err(
                file,
                format!("{awhat}: `functions` and `windows` must not be empty"),
            );
        }
        let mut windows = Vec::new();
        for w in &a.windows {
            match crate::duration::parse(w) {
                Ok(d) if d.is_zero() => ctx.err(file, format!("{awhat}: window `{w}` is zero")),
                Ok(d) => windows.push(d),
                Err(e) => ctx.err(file, format!("{awhat}: `windows`: {e}")),
            }
        }
        for f in &a.functions {
            let Some(function) = AggFunction::parse(f) else {
                let names: Vec<&str> = AggFunction::ALL.iter().map(|f| f.name()).collect();
                ctx.err(
                    file,
                    format!(
                        "{awhat}: unknown function `{f}`; expected one of {}",
                        names.join(", ")
                    ),
                );
                continue;
            };
            for window in &windows {
                let name = format!(
                    "{}__{}__{}",
                    a.column,
                    function.name(),
                    crate::duration::format(*window)
                );
                let ty = if function == AggFunction::Count {
                    ScalarType::Int64
                } else {
                    ScalarType::Float64
                };
                out.push((
                    field(name, ValueType::Scalar(ty)),
                    Transform::Window {
                        column: a.column.clone(),
                        function,
                        window: *window,
                    },
                ));
            }
        }
    }
    for (i, t) in v.time_series.iter().enumerate() {
        let twhat = format!("{what}: field `time_series[{i}]`");
        ctx.name(file, &format!("{twhat}: column"), &t.column);
        for (kind, periods) in [
            (SeriesKind::Return, &t.returns),
            (SeriesKind::Volatility, &t.volatility),
            (SeriesKind::Momentum, &t.momentum),
        ] {
            for &n in periods {
                let min = if kind == SeriesKind::Volatility { 2 } else { 1 };
                if n < min {
                    ctx.err(
                        file,
                        format!(
                            "{twhat}: `{}` period {n} must be at least {min}",
                            kind.name()
                        ),
                    );
                    continue;
                }
                out.push((
                    field(
                        format!("{}__{}__{n}", t.column, kind.name()),
                        ValueType::Scalar(ScalarType::Float64),
                    ),
                    Transform::Series {
                        column: t.column.clone(),
                        series: kind,
                        periods: n,
                    },
                ));
            }
        }
        if t.returns.is_empty() && t.volatility.is_empty() && t.momentum.is_empty() {
            ctx.err(
                file,
                format!("{twhat}: give at least one of `returns`, `volatility`, `momentum`"),
            );
        }
    }
    out
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", names.join(", "))
    }
}

/// A view's `inputs:` (raw columns its expressions read), typed; each problem is reported.
fn view_inputs(
    ctx: &mut Ctx,
    file: &str,
    what: &str,
    v: &FeatureViewDef,
    fields: &[Field],
    join_keys: &[JoinKey],
) -> Vec<Field> {
    let mut inputs: Vec<Field> = Vec::new();
    for input in &v.inputs {
        let iwhat = format!("{what}: input `{}`", input.name);
        if inputs.iter().any(|i| i.name == input.name) {
            ctx.err(file, format!("{iwhat} is declared twice"));
            continue;
        }
        if fields.iter().any(|f| f.name == input.name) {
            ctx.err(file, format!("{iwhat} is also a field; a plain field is read as it is and expressions may use it, so leave it out of `inputs`"));
            continue;
        }
        if join_keys.iter().any(|k| k.name == input.name) {
            ctx.err(
                file,
                format!("{iwhat} is a join key; expressions read feature columns"),
            );
            continue;
        }
        match input.dtype.parse::<ValueType>() {
            Ok(ValueType::Scalar(s)) if crate::expr::ExprType::of(s).is_some() => inputs.push(Field {
                name: input.name.clone(),
                value_type: ValueType::Scalar(s),
                expression: None,
                constraints: Constraints::default(),
                description: None,
            }),
            Ok(other) => ctx.err(file, format!("{iwhat}: field `type`: expressions read int32, int64, float32, float64, string or bool columns, not {other}")),
            Err(e) => ctx.err(file, format!("{iwhat}: field `type`: {e}")),
        }
    }
    inputs
}

/// Parses and type-checks every field's `expression` against the view's plain fields and
/// inputs; the error names the field and quotes the expression.
fn check_expressions(
    ctx: &mut Ctx,
    file: &str,
    what: &str,
    fields: &[Field],
    inputs: &[Field],
    derived: bool,
) {
    for f in fields {
        let Some(text) = &f.expression else { continue };
        let fwhat = format!("{what}: field `{}`: expression `{text}`", f.name);
        if derived {
            ctx.err(file, format!("{fwhat}: expressions apply to plain views, not to views with `aggregations` or `time_series`"));
            continue;
        }
        let expr = match crate::expr::Expr::parse(text) {
            Ok(e) => e,
            Err(e) => {
                ctx.err(file, format!("{fwhat}: {e}"));
                continue;
            }
        };
        let column_type = |name: &str| -> Option<ScalarType> {
            fields
                .iter()
                .filter(|g| g.expression.is_none())
                .chain(inputs)
                .find(|g| g.name == name)
                .map(|g| g.value_type.scalar())
                .filter(|_| {
                    !fields
                        .iter()
                        .chain(inputs)
                        .any(|g| g.name == name && g.value_type.is_list())
                })
        };
        if let Some(c) = expr.columns().iter().find(|c| {
            fields
                .iter()
                .any(|g| &g.name == *c && g.expression.is_some())
        }) {
            ctx.err(file, format!("{fwhat}: column `{c}` is another computed field; expressions read source columns (repeat its expression instead)"));
            continue;
        }
        if let Some(c) = expr.columns().iter().find(|c| column_type(c).is_none()) {
            let mut known: Vec<String> = fields
                .iter()
                .filter(|g| g.expression.is_none())
                .chain(inputs)
                .map(|g| format!("`{}`", g.name))
                .collect();
            known.sort();
            ctx.err(file, format!("{fwhat}: unknown column `{c}`; an expression reads the view's plain fields and the columns declared in `inputs: [{{name: {c}, type: ...}}]` (declared: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") }));
            continue;
        }
        match expr.check(column_type) {
            Ok(t) if f.value_type.is_list() => {
                let _ = t;
                ctx.err(
                    file,
                    format!(
                        "{fwhat}: the field is {}; expressions compute scalars",
                        f.value_type
                    ),
                );
            }
            Ok(t) if !t.fits(f.value_type.scalar()) => ctx.err(
                file,
                format!(
                    "{fwhat}: the result is {}, the field is {}; write `cast(... as {})`",
                    t.name(),
                    f.value_type,
                    f.value_type
                ),
            ),
            Ok(_) => {}
            Err(e) => ctx.err(file, format!("{fwhat}: {e}")),
        }
    }
}

fn build_field(fd: &FieldDef) -> Result<Field, String> {
    let value_type: ValueType = fd.dtype.parse().map_err(|e| format!("field `type`: {e}"))?;
    let numeric = value_type.scalar().is_numeric() && value_type.scalar() != ScalarType::Decimal
        || value_type == ValueType::Scalar(ScalarType::Decimal);
    if (fd.min.is_some() || fd.max.is_some()) && !numeric {
        return Err(format!("`min`/`max` apply to numbers, not {value_type}"));
    }
    // A NaN bound would disable the check silently (every comparison is false), and neither NaN
    // nor an infinity survives the registry's JSON (both are written as `null`).
    for (name, bound) in [("min", fd.min), ("max", fd.max)] {
        if let Some(b) = bound
            && !b.is_finite()
        {
            return Err(format!("`{name}` must be a finite number, got {b}"));
        }
    }
    if let (Some(min), Some(max)) = (fd.min, fd.max)
        && min > max
    {
        return Err(format!("`min` {min} is greater than `max` {max}"));
    }
    if fd.dim.is_some() && !value_type.is_list() {
        return Err(format!("`dim` applies to lists, not {value_type}"));
    }
    let one_of = match &fd.one_of {
        None => None,
        Some(values) => {
            let mut out = Vec::new();
            for v in values {
                let json = serde_json::to_value(v).map_err(|e| format!("`one_of`: {e}"))?;
                let parsed = Value::from_json(&json, value_type)
                    .map_err(|e| format!("`one_of` value {json}: {e}"))?;
                out.push(parsed.to_json());
            }
            Some(out)
        }
    };
    Ok(Field {
        name: fd.name.clone(),
        value_type,
        expression: fd.expression.as_deref().map(str::trim).map(str::to_string),
        constraints: Constraints {
            min: fd.min,
            max: fd.max,
            not_null: fd.not_null,
            one_of,
            dim: fd.dim,
        },
        description: fd.description.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::serialize::parse;
    use super::*;

    const GOOD: &str = r#"
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: users
    path: data/users.parquet
    timestamp_field: updated_at
feature_views:
  - name: user_profile
    entities: [user]
    source: users
    ttl: 30d
    fields:
      - {name: age, type: int32, min: 0, max: 130}
      - {name: country, type: string, one_of: [US, DE]}
      - {name: embedding, type: "list<float32>", dim: 16}
feature_services:
  - name: basics
    features: ["user_profile:age", "user_profile:country"]
  - name: everything
    features: [user_profile]
"#;

    fn build(text: &str) -> Result<Definitions, CoreError> {
        let file = parse(text).map_err(|e| CoreError::Definition {
            file: "t.yaml".into(),
            message: e,
        })?;
        Definitions::build_and_validate(&[("t.yaml".to_string(), file)])
    }

    #[test]
    fn builds_valid_definitions() {
        let d = build(GOOD).unwrap();
        let v = &d.feature_views["user_profile"];
        assert_eq!(v.join_keys[0].name, "user_id");
        assert_eq!(v.ttl, Some(std::time::Duration::from_secs(30 * 86400)));
        assert_eq!(d.feature_services["basics"].features.len(), 2);
        assert_eq!(d.feature_services["everything"].features.len(), 3);
        assert_eq!(v.fields[2].constraints.dim, Some(16));
    }

    #[test]
    fn service_logging_sample_rate() {
        let logged = GOOD.replace(
            "  - name: everything\n",
            "  - name: everything\n    logging: {sample_rate: 0.25}\n",
        );
        let d = build(&logged).unwrap();
        assert_eq!(
            d.feature_services["everything"]
                .logging
                .map(|l| l.sample_rate),
            Some(0.25)
        );
        assert_eq!(d.feature_services["basics"].logging, None);
        let err = build(&logged.replace("0.25", "1.5"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("feature service `everything`: field `logging.sample_rate`: 1.5"),
            "{err}"
        );
    }

    #[test]
    fn reports_every_problem_with_file_object_and_field() {
        let bad = GOOD
            .replace("ttl: 30d", "ttl: 30")
            .replace("source: users\n    ttl", "source: userz\n    ttl")
            .replace("type: int32", "type: int33")
            .replace("user_profile:country", "user_profile:nation");
        let err = build(&bad).unwrap_err().to_string();
        for expected in [
            "t.yaml: feature view `user_profile`: field `ttl`: duration `30` has no unit",
            "feature view `user_profile`: field `source`: unknown source `userz`",
            "feature view `user_profile`: field `age`: field `type`: unknown type `int33`",
            "feature service `basics`: field `features`: feature view `user_profile` has no feature `nation`",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = build(&GOOD.replace("ttl: 30d", "tll: 30d"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tll`"), "{err}");
    }

    #[test]
    fn fingerprint_tracks_schema_only() {
        let a = build(GOOD).unwrap().feature_views["user_profile"].clone();
        let b = build(&GOOD.replace("ttl: 30d", "ttl: 7d"))
            .unwrap()
            .feature_views["user_profile"]
            .clone();
        let c = build(&GOOD.replace("type: int32", "type: int64"))
            .unwrap()
            .feature_views["user_profile"]
            .clone();
        assert_eq!(a.schema_fingerprint(), b.schema_fingerprint());
        assert_ne!(a.schema_fingerprint(), c.schema_fingerprint());
    }

    const EXPR: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: tx, path: tx.parquet, timestamp_field: event_time}]
feature_views:
  - name: orders
    entities: [user]
    source: tx
    inputs: [{name: amount, type: float64}]
    fields:
      - {name: qty, type: int32}
      - {name: total, type: float64, expression: "amount * qty"}
"#;

    #[test]
    fn expression_fields_read_plain_fields_and_inputs() {
        let v = build(EXPR).unwrap().feature_views["orders"].clone();
        assert_eq!(v.fields[1].expression.as_deref(), Some("amount * qty"));
        assert!(v.has_expressions() && !v.is_derived());
        let read: Vec<String> = v.read_fields().into_iter().map(|f| f.name).collect();
        assert_eq!(read, ["qty", "amount"]);
        assert_eq!(v.source_columns(), ["qty", "amount"]);
        // A changed expression is a new version: older online values were computed otherwise.
        let changed = build(&EXPR.replace("amount * qty", "amount + qty"))
            .unwrap()
            .feature_views["orders"]
            .clone();
        assert_ne!(v.schema_fingerprint(), changed.schema_fingerprint());
        // Views without expressions keep their fingerprints.
        let plain = build(GOOD).unwrap().feature_views["user_profile"].clone();
        let mut copy = plain.clone();
        copy.inputs.clear();
        assert_eq!(plain.schema_fingerprint(), copy.schema_fingerprint());
    }

    #[test]
    fn expression_errors_name_view_field_and_expression() {
        let err = |text: String| build(&text).unwrap_err().to_string();
        let e = err(EXPR.replace("amount * qty", "amount * qty * price"));
        assert!(
            e.contains("feature view `orders`: field `total`: expression `amount * qty * price`: unknown column `price`"),
            "{e}"
        );
        let e = err(EXPR.replace(
            "{name: amount, type: float64}",
            "{name: amount, type: timestamp}",
        ));
        assert!(e.contains("input `amount`: field `type`"), "{e}");
        let e = err(EXPR.replace(
            "amount * qty\"",
            "amount * qty\"}\n      - {name: t2, type: float64, expression: \"total + 1\"",
        ));
        assert!(
            e.contains("column `total` is another computed field"),
            "{e}"
        );
        let agg = format!(
            "{}\n    inputs: [{{name: x, type: float64}}]\n    fields: [{{name: y, type: float64, expression: x}}]\n",
            AGG.trim_end()
                .replace(
                    "    time_series:\n      - {column: amount, returns: [1], volatility: [20]}",
                    ""
                )
                .trim_end()
        );
        let e = err(agg);
        assert!(e.contains("give either `fields`"), "{e}");
    }

    const AGG: &str = r#"
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: tx, path: tx.parquet, timestamp_field: event_time}]
feature_views:
  - name: user_spend
    entities: [user]
    source: tx
    aggregations:
      - {column: amount, functions: [sum, count, std], windows: [1h, 7d]}
    time_series:
      - {column: amount, returns: [1], volatility: [20]}
"#;

    #[test]
    fn aggregations_generate_named_features() {
        let d = build(AGG).unwrap();
        let v = &d.feature_views["user_spend"];
        let names: Vec<&str> = v.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "amount__sum__1h",
                "amount__sum__7d",
                "amount__count__1h",
                "amount__count__7d",
                "amount__std__1h",
                "amount__std__7d",
                "amount__return__1",
                "amount__volatility__20",
            ]
        );
        assert_eq!(v.fields[2].value_type.to_string(), "int64");
        assert_eq!(v.transforms.len(), v.fields.len());
        assert!(v.is_derived());
        assert_eq!(v.source_columns(), vec!["amount".to_string()]);
    }

    #[test]
    fn aggregation_errors_name_the_problem() {
        let err = build(&AGG.replace("std]", "median]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `aggregations[0]`: unknown function `median`"),
            "{err}"
        );
        let err = build(&AGG.replace("7d]", "7 parsecs]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`windows`"), "{err}");
        let err = build(&AGG.replace(
            "    time_series:",
            "    fields: [{name: a, type: int64}]\n    time_series:",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn rejects_bad_constraints() {
        let err = build(&GOOD.replace("one_of: [US, DE]", "one_of: [US, DE], dim: 3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `country`: `dim` applies to lists"),
            "{err}"
        );
        let err = build(&GOOD.replace("min: 0, max: 130", "min: 10, max: 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`min` 10 is greater than `max` 1"), "{err}");
    }

    /// Found by `quiver-fuzz definitions`: a `.nan` bound was accepted (and checked nothing),
    /// and the registry stored it as `null`.
    #[test]
    fn rejects_bounds_that_are_not_finite() {
        for (bounds, message) in [
            (
                "min: .nan, max: 130",
                "`min` must be a finite number, got NaN",
            ),
            (
                "min: 0, max: .inf",
                "`max` must be a finite number, got inf",
            ),
            (
                "min: -.inf, max: 130",
                "`min` must be a finite number, got -inf",
            ),
        ] {
            let err = build(&GOOD.replace("min: 0, max: 130", bounds))
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{bounds}: {err}");
            assert!(err.contains("field `age`"), "{bounds}: {err}");
        }
    }
}
