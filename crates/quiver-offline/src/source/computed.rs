//! Fields computed by expressions (`expression: amount * 100`), evaluated on every batch a
//! source read produces, before the rows are planned: every reader (materialize, `build`,
//! training sets, the offline fallback, `apply`'s check) sees the computed column under the
//! field's name, as if the file held it. The expression reads the row's raw columns converted to
//! their declared types (the view's plain fields and `inputs`), exactly as `/push` does with
//! pushed JSON, so online and offline compute the same value ([`quiver_core::expr`]).
//!
//! A column of the source that has an expression field's name is replaced: the expression is
//! the definition.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field as ArrowField, Schema, SchemaRef};
use quiver_core::expr::Expr;
use quiver_core::{Field, ScalarType, Value, ValueType};

use super::convert::{self, Plan, PlanOptions};
use super::{Need, Opened, ReadRequest, Role};
use crate::error::{OfflineError, Result};
use crate::store::arrow_type;

/// The columns a request reads from the source itself: its needs without the computed fields,
/// plus the declared `inputs` the expressions read.
pub(super) fn raw_needs<'a>(req: &ReadRequest<'a>, needs: &[Need<'a>]) -> Vec<Need<'a>> {
    if !req.fields.iter().any(|f| f.expression.is_some()) {
        return needs.to_vec();
    }
    needs
        .iter()
        .filter(|n| !matches!(n.role, Role::Field(f) if f.expression.is_some()))
        .copied()
        .chain(req.inputs.iter().map(|f| Need {
            column: &f.name,
            role: Role::Field(f),
        }))
        .collect()
}

/// One computed field.
struct Output {
    field: Field,
    expr: Expr,
    /// Per expression column, its index in [`Computed::inputs`].
    args: Vec<usize>,
    target: ScalarType,
}

/// The computation of a request's expression fields over batches of one schema.
pub(super) struct Computed {
    /// Distinct raw columns read, with how each converts to its declared type.
    inputs: Vec<(String, Plan)>,
    outputs: Vec<Output>,
    schema: SchemaRef,
}

impl Computed {
    /// `None` when no field of the request has an expression. Errors name the missing or
    /// mistyped raw column.
    pub(super) fn new(
        req: &ReadRequest<'_>,
        origin: &str,
        schema: &Schema,
        options: PlanOptions,
    ) -> Result<Option<Computed>> {
        let mut inputs: Vec<(String, Plan)> = Vec::new();
        let mut outputs = Vec::new();
        for field in req.fields {
            let Some(text) = &field.expression else {
                continue;
            };
            let expr = Expr::parse(text).map_err(|e| OfflineError::Unsupported {
                origin: origin.to_string(),
                message: format!("field `{}`: expression `{text}`: {e}", field.name),
            })?;
            let ValueType::Scalar(target) = field.value_type else {
                return Err(OfflineError::Unsupported {
                    origin: origin.to_string(),
                    message: format!(
                        "field `{}` is {}; expressions compute scalars",
                        field.name, field.value_type
                    ),
                });
            };
            let mut args = Vec::new();
            for column in expr.columns() {
                if let Some(i) = inputs.iter().position(|(c, _)| c == column) {
                    args.push(i);
                    continue;
                }
                let declared = req
                    .fields
                    .iter()
                    .filter(|f| f.expression.is_none())
                    .chain(req.inputs)
                    .find(|f| &f.name == column)
                    .ok_or_else(|| OfflineError::Unsupported {
                        origin: origin.to_string(),
                        message: format!(
                            "field `{}`: expression `{text}` reads `{column}`, which is neither a plain field nor an input of the view",
                            field.name
                        ),
                    })?;
                let found =
                    schema
                        .field_with_name(column)
                        .map_err(|_| OfflineError::MissingColumn {
                            origin: origin.to_string(),
                            column: format!(
                                "{column}` (read by the expression of field `{}`",
                                field.name
                            ),
                            available: super::available(schema),
                        })?;
                let plan = convert::plan(found.data_type(), declared.value_type, options)
                    .ok_or_else(|| OfflineError::IncompatibleType {
                        origin: origin.to_string(),
                        column: column.clone(),
                        found: found.data_type().to_string(),
                        expected: format!(
                            "the expression of field `{}` reads it as {}",
                            field.name, declared.value_type
                        ),
                    })?;
                inputs.push((column.clone(), plan));
                args.push(inputs.len() - 1);
            }
            outputs.push(Output {
                field: field.clone(),
                expr,
                args,
                target,
            });
        }
        if outputs.is_empty() {
            return Ok(None);
        }
        let computed: Vec<&str> = outputs.iter().map(|o| o.field.name.as_str()).collect();
        let fields: Vec<ArrowField> = schema
            .fields()
            .iter()
            .filter(|f| !computed.contains(&f.name().as_str()))
            .map(|f| f.as_ref().clone())
            .chain(
                outputs
                    .iter()
                    .map(|o| ArrowField::new(&o.field.name, arrow_type(o.field.value_type), true)),
            )
            .collect();
        Ok(Some(Computed {
            inputs,
            outputs,
            schema: Arc::new(Schema::new(fields)),
        }))
    }

    /// The schema of the batches [`Computed::apply`] returns.
    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// `batch` with the computed columns; `first_row` numbers its rows in messages.
    fn apply(
        &self,
        batch: &RecordBatch,
        first_row: u64,
    ) -> std::result::Result<RecordBatch, ArrowError> {
        let fail = |m: String| ArrowError::ComputeError(m);
        let prepared = self
            .inputs
            .iter()
            .map(|(column, plan)| {
                let array = batch
                    .column_by_name(column)
                    .ok_or_else(|| fail(format!("column `{column}` was not read")))?;
                plan.prepare(array)
                    .map_err(|e| fail(format!("column `{column}`: {e}")))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.outputs.len());
        let mut args: Vec<Value> = Vec::new();
        for out in &self.outputs {
            let mut builder = Builder::new(out.target, rows);
            for row in 0..rows {
                args.clear();
                for &i in &out.args {
                    args.push(prepared[i].value(row).map_err(|e| {
                        fail(format!(
                            "row {}: column `{}`: {e}",
                            first_row + row as u64 + 1,
                            self.inputs[i].0
                        ))
                    })?);
                }
                let value = out.expr.eval(&args, out.target).map_err(|e| {
                    fail(format!(
                        "row {}: field `{}`: expression `{}`: {e}",
                        first_row + row as u64 + 1,
                        out.field.name,
                        out.expr.text()
                    ))
                })?;
                builder.push(value);
            }
            columns.push(builder.finish());
        }
        let computed: Vec<&str> = self.outputs.iter().map(|o| o.field.name.as_str()).collect();
        let mut all: Vec<ArrayRef> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| !computed.contains(&f.name().as_str()))
            .map(|(_, c)| c.clone())
            .collect();
        all.extend(columns);
        RecordBatch::try_new(self.schema.clone(), all)
    }

    /// The opened source with the computed columns added to each batch.
    pub(super) fn wrap(self, opened: Opened) -> Opened {
        let schema = self.schema();
        let mut seen = 0u64;
        let batches = opened.batches.map(move |batch| {
            let batch = batch?;
            let out = self.apply(&batch, seen);
            seen += batch.num_rows() as u64;
            out
        });
        Opened {
            schema,
            batches: Box::new(batches),
            options: opened.options,
        }
    }
}

/// An Arrow builder for one computed column.
enum Builder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Builder {
    fn new(target: ScalarType, rows: usize) -> Builder {
        match target {
            ScalarType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            ScalarType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            ScalarType::Float32 => Builder::Float32(Float32Builder::with_capacity(rows)),
            ScalarType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            ScalarType::String => Builder::Str(StringBuilder::with_capacity(rows, rows * 8)),
            _ => Builder::Float64(Float64Builder::with_capacity(rows)),
        }
    }

    /// Appends a value [`Expr::eval`] converted to this builder's type (anything else: null).
    fn push(&mut self, value: Value) {
        match (self, value) {
            (Builder::Int32(b), Value::Int32(v)) => b.append_value(v),
            (Builder::Int64(b), Value::Int64(v)) => b.append_value(v),
            (Builder::Float32(b), Value::Float32(v)) => b.append_value(v),
            (Builder::Float64(b), Value::Float64(v)) => b.append_value(v),
            (Builder::Bool(b), Value::Bool(v)) => b.append_value(v),
            (Builder::Str(b), Value::String(v)) => b.append_value(v),
            (Builder::Int32(b), _) => b.append_null(),
            (Builder::Int64(b), _) => b.append_null(),
            (Builder::Float32(b), _) => b.append_null(),
            (Builder::Float64(b), _) => b.append_null(),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Str(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Float32(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(b.finish()),
        }
    }
}
