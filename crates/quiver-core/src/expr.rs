//! Write-time transform expressions: a feature computed from the raw columns of its row,
//! `amount * 100`, `lower(country)`, `coalesce(tip, 0) / amount > 0.2`.
//!
//! The same evaluator runs on both sides of the feature store, so training sees the values
//! serving computed: `/push` evaluates a view's expressions on the pushed rows before it writes
//! them online, and the offline engine evaluates them on every source row it reads
//! (materialize, `build`, training sets, the offline fallback). Raw columns are typed by their
//! declaration (the view's `inputs:` or its plain fields), never by how a value happened to be
//! written (a JSON `3` pushed for a `float64` input is `3.0` on both sides).
//!
//! The language is small and typed; [`Expr::parse`] and [`Expr::check`] run at `apply`, so a
//! misspelt column or a type error is refused with the expression named before any row is read.
//! - Literals: integers (`42`), floats (`0.5`, `1e3`), strings (`'fr'` or `"fr"`), `true`,
//!   `false`, `null`; columns by name.
//! - Arithmetic `+ - * / %`: integers stay integers (an overflow is an error), a float operand
//!   makes a float. `/` always divides as floats. Dividing by zero (`/` or `%`) gives null.
//! - Comparisons `= == != <> < <= > >=` between numbers, strings or bools give a bool.
//! - Logic `and`, `or`, `not` with SQL's three-valued rules (`null or true` is `true`).
//! - Functions: `length(s)` (characters), `lower(s)`, `upper(s)`, `trim(s)`, `concat(s, ...)`
//!   (nulls skipped), `abs(x)`, `coalesce(a, b, ...)` (the first non-null), and
//!   `cast(x as int32|int64|float32|float64|string|bool)` (a string that does not parse is an
//!   error; a float cast to an integer truncates toward zero).
//! - Null propagates: any operator or function (except `coalesce`, `concat` and the logic
//!   rules) with a null operand gives null.
//!
//! A hand-written parser: the grammar is a dozen rules, and the SQL parsers on crates.io bring
//! dialects, statements and an AST far larger than what is accepted here, whose error messages
//! would name SQL constructs this language does not have.

use crate::value::{ScalarType, Value};

/// The types an expression computes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExprType {
    Bool,
    Int,
    Float,
    Str,
    /// The `null` literal: fits every type.
    Null,
}

impl ExprType {
    /// The expression type of a declared column type; `None` for types expressions do not read
    /// (lists, bytes, timestamps, decimals).
    pub fn of(scalar: ScalarType) -> Option<ExprType> {
        Some(match scalar {
            ScalarType::Int32 | ScalarType::Int64 => ExprType::Int,
            ScalarType::Float32 | ScalarType::Float64 => ExprType::Float,
            ScalarType::Bool => ExprType::Bool,
            ScalarType::String => ExprType::Str,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ExprType::Bool => "bool",
            ExprType::Int => "an integer",
            ExprType::Float => "a float",
            ExprType::Str => "a string",
            ExprType::Null => "null",
        }
    }

    /// Whether a result of this type can be stored in a field of type `field` without a cast
    /// (integers widen to floats).
    pub fn fits(self, field: ScalarType) -> bool {
        match (self, ExprType::of(field)) {
            (ExprType::Null, Some(_)) => true,
            (ExprType::Int, Some(ExprType::Float)) => true,
            (t, Some(f)) => t == f,
            (_, None) => false,
        }
    }

    fn numeric(self) -> bool {
        matches!(self, ExprType::Int | ExprType::Float | ExprType::Null)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Length,
    Lower,
    Upper,
    Trim,
    Concat,
    Abs,
    Coalesce,
}

impl Func {
    fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "length" | "len" => Func::Length,
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "trim" => Func::Trim,
            "concat" => Func::Concat,
            "abs" => Func::Abs,
            "coalesce" => Func::Coalesce,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Length => "length",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Trim => "trim",
            Func::Concat => "concat",
            Func::Abs => "abs",
            Func::Coalesce => "coalesce",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Lit(Scalar),
    /// An index into [`Expr::columns`].
    Column(usize),
    Neg(Box<Node>),
    Not(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    Cast(Box<Node>, ScalarType),
}

/// A value while an expression computes.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A parsed expression: the columns it reads, in order of first appearance, and its tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    text: String,
    columns: Vec<String>,
    root: Node,
}

impl Expr {
    /// Parses `text`; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            columns: Vec::new(),
        };
        let root = parser.or()?;
        if let Some((tok, at)) = parser.tokens.get(parser.pos) {
            return Err(format!(
                "unexpected {} at character {}",
                tok.describe(),
                at + 1
            ));
        }
        Ok(Expr {
            text: text.to_string(),
            columns: parser.columns,
            root,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The columns it reads; [`Expr::eval`] takes their values in this order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The type of the result, given each column's declared type (`None`: no such column); the
    /// error names the column, operator or function at fault.
    pub fn check(
        &self,
        column_type: impl Fn(&str) -> Option<ScalarType>,
    ) -> Result<ExprType, String> {
        let mut types = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let Some(scalar) = column_type(c) else {
                return Err(format!("unknown column `{c}`"));
            };
            let Some(t) = ExprType::of(scalar) else {
                return Err(format!(
                    "column `{c}` is {}; expressions read int32, int64, float32, float64, string and bool columns",
                    scalar.name()
                ));
            };
            types.push(t);
        }
        type_of(&self.root, &types)
    }

    /// Evaluates the expression on one row (`values` aligned with [`Expr::columns`]) and
    /// converts the result to `target`. Errors: an integer overflow, a cast that does not
    /// parse, a result out of the target's range.
    pub fn eval(&self, values: &[Value], target: ScalarType) -> Result<Value, String> {
        let result = eval(&self.root, values)?;
        to_value(result, target)
    }
}

fn to_value(s: Scalar, target: ScalarType) -> Result<Value, String> {
    Ok(match (s, target) {
        (Scalar::Null, _) => Value::Null,
        (Scalar::Int(i), ScalarType::Int64) => Value::Int64(i),
        (Scalar::Int(i), ScalarType::Int32) => {
            Value::Int32(i32::try_from(i).map_err(|_| format!("{i} is out of the int32 range"))?)
        }
        (Scalar::Int(i), ScalarType::Float64) => Value::Float64(i as f64),
        (Scalar::Int(i), ScalarType::Float32) => Value::Float32(i as f32),
        (Scalar::Float(f), ScalarType::Float64) => Value::Float64(f),
        (Scalar::Float(f), ScalarType::Float32) => {
            let narrow = f as f32;
            if f.is_finite() && !narrow.is_finite() {
                return Err(format!("{f} is out of the float32 range"));
            }
            Value::Float32(narrow)
        }
        (Scalar::Bool(b), ScalarType::Bool) => Value::Bool(b),
        (Scalar::Str(s), ScalarType::String) => Value::String(s),
        (s, t) => {
            return Err(format!(
                "the result {} does not fit a {} field",
                s.type_of().name(),
                t.name()
            ));
        }
    })
}

impl Scalar {
    fn type_of(&self) -> ExprType {
        match self {
            Scalar::Null => ExprType::Null,
            Scalar::Bool(_) => ExprType::Bool,
            Scalar::Int(_) => ExprType::Int,
            Scalar::Float(_) => ExprType::Float,
            Scalar::Str(_) => ExprType::Str,
        }
    }

    fn from_value(v: &Value) -> Result<Scalar, String> {
        Ok(match v {
            Value::Null => Scalar::Null,
            Value::Int32(i) => Scalar::Int(i64::from(*i)),
            Value::Int64(i) => Scalar::Int(*i),
            Value::Float32(f) => Scalar::Float(f64::from(*f)),
            Value::Float64(f) => Scalar::Float(*f),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::String(s) => Scalar::Str(s.clone()),
            other => {
                return Err(format!(
                    "expressions do not read {} values",
                    other
                        .value_type()
                        .map_or_else(|| "such".to_string(), |t| t.to_string())
                ));
            }
        })
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }
}

fn type_of(node: &Node, columns: &[ExprType]) -> Result<ExprType, String> {
    let ty = |n: &Node| type_of(n, columns);
    Ok(match node {
        Node::Lit(s) => s.type_of(),
        Node::Column(i) => columns[*i],
        Node::Neg(inner) => {
            let t = ty(inner)?;
            if !t.numeric() {
                return Err(format!("unary `-` needs a number, got {}", t.name()));
            }
            t
        }
        Node::Not(inner) => {
            let t = ty(inner)?;
            if !matches!(t, ExprType::Bool | ExprType::Null) {
                return Err(format!("`not` needs a bool, got {}", t.name()));
            }
            ExprType::Bool
        }
        Node::Bin(op, l, r) => {
            let (a, b) = (ty(l)?, ty(r)?);
            let sym = op.symbol();
            match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Rem => {
                    if !a.numeric() || !b.numeric() {
                        let hint =
                            if *op == BinOp::Add && (a == ExprType::Str || b == ExprType::Str) {
                                " (join strings with `concat(a, b)`)"
                            } else {
                                ""
                            };
                        return Err(format!(
                            "`{sym}` needs numbers, got {} and {}{hint}",
                            a.name(),
                            b.name()
                        ));
                    }
                    if a == ExprType::Float || b == ExprType::Float {
                        ExprType::Float
                    } else if a == ExprType::Null && b == ExprType::Null {
                        ExprType::Null
                    } else {
                        ExprType::Int
                    }
                }
                BinOp::Div => {
                    if !a.numeric() || !b.numeric() {
                        return Err(format!(
                            "`/` needs numbers, got {} and {}",
                            a.name(),
                            b.name()
                        ));
                    }
                    ExprType::Float
                }
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    let comparable = a == ExprType::Null
                        || b == ExprType::Null
                        || a == b
                        || (a.numeric() && b.numeric());
                    if !comparable {
                        return Err(format!(
                            "`{sym}` compares {} with {}; cast one side",
                            a.name(),
                            b.name()
                        ));
                    }
                    ExprType::Bool
                }
                BinOp::And | BinOp::Or => {
                    for t in [a, b] {
                        if !matches!(t, ExprType::Bool | ExprType::Null) {
                            return Err(format!("`{sym}` needs bools, got {}", t.name()));
                        }
                    }
                    ExprType::Bool
                }
            }
        }
        Node::Call(f, args) => {
            let types = args.iter().map(ty).collect::<Result<Vec<_>, _>>()?;
            let name = f.name();
            let one = |want: &str| -> Result<ExprType, String> {
                if types.len() != 1 {
                    return Err(format!(
                        "`{name}` takes one argument ({want}), got {}",
                        types.len()
                    ));
                }
                Ok(types[0])
            };
            match f {
                Func::Length | Func::Lower | Func::Upper | Func::Trim => {
                    let t = one("a string")?;
                    if !matches!(t, ExprType::Str | ExprType::Null) {
                        return Err(format!("`{name}` needs a string, got {}", t.name()));
                    }
                    if *f == Func::Length {
                        ExprType::Int
                    } else {
                        ExprType::Str
                    }
                }
                Func::Abs => {
                    let t = one("a number")?;
                    if !t.numeric() {
                        return Err(format!("`abs` needs a number, got {}", t.name()));
                    }
                    t
                }
                Func::Concat => {
                    if types.is_empty() {
                        return Err("`concat` needs at least one argument".into());
                    }
                    if let Some(t) = types
                        .iter()
                        .find(|t| !matches!(t, ExprType::Str | ExprType::Null))
                    {
                        return Err(format!(
                            "`concat` joins strings, got {}; write `cast(x as string)`",
                            t.name()
                        ));
                    }
                    ExprType::Str
                }
                Func::Coalesce => {
                    if types.is_empty() {
                        return Err("`coalesce` needs at least one argument".into());
                    }
                    let mut out = ExprType::Null;
                    for t in &types {
                        out = match (out, *t) {
                            (o, ExprType::Null) => o,
                            (ExprType::Null, t) => t,
                            (o, t) if o == t => o,
                            (ExprType::Int, ExprType::Float) | (ExprType::Float, ExprType::Int) => {
                                ExprType::Float
                            }
                            (o, t) => {
                                return Err(format!(
                                    "`coalesce` mixes {} and {}; cast one of them",
                                    o.name(),
                                    t.name()
                                ));
                            }
                        };
                    }
                    out
                }
            }
        }
        Node::Cast(inner, target) => {
            let from = ty(inner)?;
            let to = ExprType::of(*target).ok_or_else(|| {
                format!(
                    "`cast` to {} is not supported (int32, int64, float32, float64, string, bool)",
                    target.name()
                )
            })?;
            let ok = match (from, to) {
                (ExprType::Null, _) | (_, ExprType::Str) => true,
                (ExprType::Str, _) => true,
                (a, b) if a.numeric() && b.numeric() => true,
                (ExprType::Bool, ExprType::Int) | (ExprType::Int, ExprType::Bool) => true,
                (a, b) => a == b,
            };
            if !ok {
                return Err(format!("cannot cast {} to {}", from.name(), target.name()));
            }
            to
        }
    })
}

fn eval(node: &Node, row: &[Value]) -> Result<Scalar, String> {
    Ok(match node {
        Node::Lit(s) => s.clone(),
        Node::Column(i) => Scalar::from_value(row.get(*i).unwrap_or(&Value::Null))?,
        Node::Neg(inner) => match eval(inner, row)? {
            Scalar::Int(i) => Scalar::Int(
                i.checked_neg()
                    .ok_or_else(|| format!("integer overflow negating {i}"))?,
            ),
            Scalar::Float(f) => Scalar::Float(-f),
            _ => Scalar::Null,
        },
        Node::Not(inner) => match eval(inner, row)? {
            Scalar::Bool(b) => Scalar::Bool(!b),
            _ => Scalar::Null,
        },
        Node::Bin(BinOp::And, l, r) => {
            let (a, b) = (eval(l, row)?, eval(r, row)?);
            match (a, b) {
                (Scalar::Bool(false), _) | (_, Scalar::Bool(false)) => Scalar::Bool(false),
                (Scalar::Bool(true), Scalar::Bool(true)) => Scalar::Bool(true),
                _ => Scalar::Null,
            }
        }
        Node::Bin(BinOp::Or, l, r) => {
            let (a, b) = (eval(l, row)?, eval(r, row)?);
            match (a, b) {
                (Scalar::Bool(true), _) | (_, Scalar::Bool(true)) => Scalar::Bool(true),
                (Scalar::Bool(false), Scalar::Bool(false)) => Scalar::Bool(false),
                _ => Scalar::Null,
            }
        }
        Node::Bin(op, l, r) => {
            let (a, b) = (eval(l, row)?, eval(r, row)?);
            if a == Scalar::Null || b == Scalar::Null {
                return Ok(Scalar::Null);
            }
            binary(*op, a, b)?
        }
        Node::Call(f, args) => {
            let values = args
                .iter()
                .map(|a| eval(a, row))
                .collect::<Result<Vec<_>, _>>()?;
            call(*f, values)?
        }
        Node::Cast(inner, target) => cast(eval(inner, row)?, *target)?,
    })
}

fn binary(op: BinOp, a: Scalar, b: Scalar) -> Result<Scalar, String> {
    use std::cmp::Ordering;
    let overflow = |x: i64, y: i64| format!("integer overflow: {x} {} {y}", op.symbol());
    Ok(match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Rem => match (&a, &b) {
            (Scalar::Int(x), Scalar::Int(y)) => {
                let (x, y) = (*x, *y);
                let r = match op {
                    BinOp::Add => x.checked_add(y),
                    BinOp::Sub => x.checked_sub(y),
                    BinOp::Mul => x.checked_mul(y),
                    _ if y == 0 => return Ok(Scalar::Null),
                    _ => x.checked_rem(y),
                };
                Scalar::Int(r.ok_or_else(|| overflow(x, y))?)
            }
            _ => {
                let (x, y) = (
                    a.as_f64().unwrap_or(f64::NAN),
                    b.as_f64().unwrap_or(f64::NAN),
                );
                Scalar::Float(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    _ if y == 0.0 => return Ok(Scalar::Null),
                    _ => x % y,
                })
            }
        },
        BinOp::Div => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if y == 0.0 {
                Scalar::Null
            } else {
                Scalar::Float(x / y)
            }
        }
        _ => {
            let ord = match (&a, &b) {
                (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
                (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
                (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(y)),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x.partial_cmp(&y),
                    _ => None,
                },
            };
            // NaN compares unequal to everything, as in IEEE 754.
            let Some(ord) = ord else {
                return Ok(Scalar::Bool(op == BinOp::Ne));
            };
            Scalar::Bool(match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::Ne => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
    })
}

fn call(f: Func, args: Vec<Scalar>) -> Result<Scalar, String> {
    match f {
        Func::Coalesce => {
            let first = args.into_iter().find(|a| *a != Scalar::Null);
            // Mixed int/float arguments give a float (the checked type), whichever answers.
            return Ok(first.unwrap_or(Scalar::Null));
        }
        Func::Concat => {
            let mut out = String::new();
            for a in args {
                if let Scalar::Str(s) = a {
                    out.push_str(&s);
                }
            }
            return Ok(Scalar::Str(out));
        }
        _ => {}
    }
    let arg = args.into_iter().next().unwrap_or(Scalar::Null);
    Ok(match (f, arg) {
        (_, Scalar::Null) => Scalar::Null,
        (Func::Length, Scalar::Str(s)) => Scalar::Int(s.chars().count() as i64),
        (Func::Lower, Scalar::Str(s)) => Scalar::Str(s.to_lowercase()),
        (Func::Upper, Scalar::Str(s)) => Scalar::Str(s.to_uppercase()),
        (Func::Trim, Scalar::Str(s)) => Scalar::Str(s.trim().to_string()),
        (Func::Abs, Scalar::Int(i)) => Scalar::Int(
            i.checked_abs()
                .ok_or_else(|| format!("integer overflow: abs({i})"))?,
        ),
        (Func::Abs, Scalar::Float(x)) => Scalar::Float(x.abs()),
        (f, a) => {
            return Err(format!(
                "`{}` does not take {}",
                f.name(),
                a.type_of().name()
            ));
        }
    })
}

fn cast(value: Scalar, target: ScalarType) -> Result<Scalar, String> {
    let to_int = |f: f64| -> Result<i64, String> {
        let t = f.trunc();
        // i64::MAX as f64 rounds up to 2^63, which does not fit: compare against 2^63.
        if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
            return Err(format!("cast: {f} does not fit an integer"));
        }
        Ok(t as i64)
    };
    let out = match (value, ExprType::of(target)) {
        (Scalar::Null, _) => Scalar::Null,
        (v, Some(ExprType::Str)) => Scalar::Str(match v {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => unreachable!("handled above"),
        }),
        (Scalar::Str(s), Some(ExprType::Int)) => Scalar::Int(
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("cast: `{s}` is not an integer"))?,
        ),
        (Scalar::Str(s), Some(ExprType::Float)) => Scalar::Float(
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("cast: `{s}` is not a number"))?,
        ),
        (Scalar::Str(s), Some(ExprType::Bool)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => Scalar::Bool(true),
            "false" | "f" | "0" | "no" => Scalar::Bool(false),
            _ => return Err(format!("cast: `{s}` is not a bool")),
        },
        (Scalar::Int(i), Some(ExprType::Float)) => Scalar::Float(i as f64),
        (Scalar::Float(f), Some(ExprType::Int)) => Scalar::Int(to_int(f)?),
        (Scalar::Bool(b), Some(ExprType::Int)) => Scalar::Int(i64::from(b)),
        (Scalar::Int(i), Some(ExprType::Bool)) => Scalar::Bool(i != 0),
        (v, Some(t)) if v.type_of() == t => v,
        (v, _) => {
            return Err(format!(
                "cannot cast {} to {}",
                v.type_of().name(),
                target.name()
            ));
        }
    };
    // Narrow targets keep their range: `cast(x as int32)` of a larger value is an error, and
    // `cast(x as float32)` rounds as a float32 field would store it.
    Ok(match (out, target) {
        (Scalar::Int(i), ScalarType::Int32) if i32::try_from(i).is_err() => {
            return Err(format!("cast: {i} is out of the int32 range"));
        }
        (Scalar::Float(f), ScalarType::Float32) => Scalar::Float(f64::from(f as f32)),
        (v, _) => v,
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Int(i) => format!("number `{i}`"),
            Token::Float(f) => format!("number `{f}`"),
            Token::Str(s) => format!("string '{s}'"),
            Token::Ident(s) => format!("`{s}`"),
            Token::Op(o) => format!("`{o}`"),
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

const OPS: [&str; 16] = [
    "==", "!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "!", "&&", "||",
];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pos = text[..at].chars().count();
        match c {
            '(' => out.push((Token::LParen, pos)),
            ')' => out.push((Token::RParen, pos)),
            ',' => out.push((Token::Comma, pos)),
            '\'' | '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(format!(
                                "the string starting at character {} is not closed",
                                pos + 1
                            ));
                        }
                        // A doubled quote is a quote (SQL's escape).
                        Some((_, q)) if *q == c => {
                            if chars.get(j + 1).map(|(_, n)| *n) == Some(c) {
                                s.push(c);
                                j += 2;
                                continue;
                            }
                            break;
                        }
                        Some((_, ch)) => s.push(*ch),
                    }
                    j += 1;
                }
                out.push((Token::Str(s), pos));
                i = j + 1;
                continue;
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit())) =>
            {
                let mut j = i;
                let mut float = false;
                while let Some((_, d)) = chars.get(j) {
                    if d.is_ascii_digit() || *d == '_' {
                        j += 1;
                    } else if *d == '.' && !float {
                        float = true;
                        j += 1;
                    } else if (*d == 'e' || *d == 'E')
                        && chars
                            .get(j + 1)
                            .is_some_and(|(_, n)| n.is_ascii_digit() || *n == '-' || *n == '+')
                    {
                        float = true;
                        j += 2;
                    } else {
                        break;
                    }
                }
                let end = chars.get(j).map_or(text.len(), |(b, _)| *b);
                let lit: String = text[at..end].chars().filter(|c| *c != '_').collect();
                let tok = if float {
                    Token::Float(
                        lit.parse()
                            .map_err(|_| format!("`{lit}` is not a number"))?,
                    )
                } else {
                    Token::Int(
                        lit.parse()
                            .map_err(|_| format!("`{lit}` does not fit a 64-bit integer"))?,
                    )
                };
                out.push((tok, pos));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while chars
                    .get(j)
                    .is_some_and(|(_, d)| d.is_alphanumeric() || *d == '_')
                {
                    j += 1;
                }
                let end = chars.get(j).map_or(text.len(), |(b, _)| *b);
                out.push((Token::Ident(text[at..end].to_string()), pos));
                i = j;
                continue;
            }
            '`' => {
                // A quoted column name: `my column`.
                let mut j = i + 1;
                while chars.get(j).is_some_and(|(_, d)| *d != '`') {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!(
                        "the quoted name starting at character {} is not closed",
                        pos + 1
                    ));
                }
                let name: String = chars[i + 1..j].iter().map(|(_, c)| *c).collect();
                out.push((Token::Ident(format!("`{name}")), pos));
                i = j + 1;
                continue;
            }
            _ => {
                let rest = &text[at..];
                let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) else {
                    return Err(format!("unexpected `{c}` at character {}", pos + 1));
                };
                out.push((Token::Op(op), pos));
                i += op.chars().count();
                continue;
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    columns: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn op(&self, ops: &[&str]) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Op(o)) if ops.contains(o) => Some(o),
            _ => None,
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.tokens.get(self.pos) {
            Some((t, at)) => format!(
                "expected {wanted} at character {}, found {}",
                at + 1,
                t.describe()
            ),
            None => format!("expected {wanted}, found the end of the expression"),
        }
    }

    fn expect(&mut self, tok: &Token, wanted: &str) -> Result<(), String> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut left = self.and()?;
        while self.keyword("or") || self.op(&["||"]).is_some() {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Bin(BinOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut left = self.not()?;
        while self.keyword("and") || self.op(&["&&"]).is_some() {
            self.pos += 1;
            let right = self.not()?;
            left = Node::Bin(BinOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, String> {
        if self.keyword("not") || self.op(&["!"]).is_some() {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, String> {
        let left = self.additive()?;
        let Some(op) = self.op(&["==", "!=", "<>", "<=", ">=", "=", "<", ">"]) else {
            return Ok(left);
        };
        self.pos += 1;
        let right = self.additive()?;
        let op = match op {
            "=" | "==" => BinOp::Eq,
            "!=" | "<>" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            _ => BinOp::Ge,
        };
        Ok(Node::Bin(op, Box::new(left), Box::new(right)))
    }

    fn additive(&mut self) -> Result<Node, String> {
        let mut left = self.multiplicative()?;
        while let Some(op) = self.op(&["+", "-"]) {
            self.pos += 1;
            let right = self.multiplicative()?;
            let op = if op == "+" { BinOp::Add } else { BinOp::Sub };
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Node, String> {
        let mut left = self.unary()?;
        while let Some(op) = self.op(&["*", "/", "%"]) {
            self.pos += 1;
            let right = self.unary()?;
            let op = match op {
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                _ => BinOp::Rem,
            };
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.op(&["-"]).is_some() {
            self.pos += 1;
            return Ok(match self.unary()? {
                Node::Lit(Scalar::Int(i)) => Node::Lit(Scalar::Int(-i)),
                Node::Lit(Scalar::Float(f)) => Node::Lit(Scalar::Float(-f)),
                other => Node::Neg(Box::new(other)),
            });
        }
        if self.op(&["+"]).is_some() {
            self.pos += 1;
            return self.unary();
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, String> {
        let Some((tok, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.unexpected("a value"));
        };
        self.pos += 1;
        Ok(match tok {
            Token::Int(i) => Node::Lit(Scalar::Int(i)),
            Token::Float(f) => Node::Lit(Scalar::Float(f)),
            Token::Str(s) => Node::Lit(Scalar::Str(s)),
            Token::LParen => {
                let inner = self.or()?;
                self.expect(&Token::RParen, "`)`")?;
                inner
            }
            Token::Ident(name) if name.starts_with('`') => self.column(&name[1..]),
            Token::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => return Ok(Node::Lit(Scalar::Bool(true))),
                    "false" => return Ok(Node::Lit(Scalar::Bool(false))),
                    "null" => return Ok(Node::Lit(Scalar::Null)),
                    _ => {}
                }
                if self.peek() != Some(&Token::LParen) {
                    if matches!(lower.as_str(), "and" | "or" | "not" | "as") {
                        self.pos -= 1;
                        return Err(self.unexpected("a value"));
                    }
                    return Ok(self.column(&name));
                }
                self.pos += 1;
                if lower == "cast" {
                    let inner = self.or()?;
                    if !self.keyword("as") {
                        return Err(self.unexpected("`as` and a type (`cast(x as int64)`)"));
                    }
                    self.pos += 1;
                    let ty = match self.tokens.get(self.pos) {
                        Some((Token::Ident(t), _)) => t.clone(),
                        _ => return Err(self.unexpected("a type")),
                    };
                    self.pos += 1;
                    let target = match ty.parse::<crate::value::ValueType>() {
                        Ok(crate::value::ValueType::Scalar(s)) if ExprType::of(s).is_some() => s,
                        _ => {
                            return Err(format!(
                                "`cast(... as {ty})`: the type must be one of int32, int64, float32, float64, string, bool"
                            ));
                        }
                    };
                    self.expect(&Token::RParen, "`)`")?;
                    return Ok(Node::Cast(Box::new(inner), target));
                }
                let func = Func::parse(&lower).ok_or_else(|| {
                    format!(
                        "unknown function `{name}` (functions: length, lower, upper, trim, concat, abs, coalesce, cast)"
                    )
                })?;
                let mut args = Vec::new();
                if self.peek() != Some(&Token::RParen) {
                    loop {
                        args.push(self.or()?);
                        if self.peek() == Some(&Token::Comma) {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                self.expect(&Token::RParen, "`,` or `)`")?;
                Node::Call(func, args)
            }
            other => {
                self.pos -= 1;
                return Err(self.unexpected(&format!("a value, not {}", other.describe())));
            }
        })
    }

    fn column(&mut self, name: &str) -> Node {
        let index = match self.columns.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.columns.push(name.to_string());
                self.columns.len() - 1
            }
        };
        Node::Column(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(name: &str) -> Option<ScalarType> {
        Some(match name {
            "amount" => ScalarType::Float64,
            "qty" => ScalarType::Int64,
            "small" => ScalarType::Int32,
            "country" => ScalarType::String,
            "vip" => ScalarType::Bool,
            "seen" => ScalarType::Timestamp,
            _ => return None,
        })
    }

    /// Parses, checks and evaluates with the columns given by name.
    fn run(text: &str, row: &[(&str, Value)], target: ScalarType) -> Result<Value, String> {
        let expr = Expr::parse(text)?;
        let ty = expr.check(types)?;
        assert!(ty.fits(target), "{text} is {ty:?}, not {target:?}");
        let values: Vec<Value> = expr
            .columns()
            .iter()
            .map(|c| {
                row.iter()
                    .find(|(n, _)| n == c)
                    .map_or(Value::Null, |(_, v)| v.clone())
            })
            .collect();
        expr.eval(&values, target)
    }

    #[test]
    fn arithmetic_keeps_integers_and_divides_as_floats() {
        let row = [("qty", Value::Int64(7)), ("amount", Value::Float64(2.5))];
        assert_eq!(
            run("qty * 2 + 1", &row, ScalarType::Int64),
            Ok(Value::Int64(15))
        );
        assert_eq!(
            run("qty / 2", &row, ScalarType::Float64),
            Ok(Value::Float64(3.5))
        );
        assert_eq!(run("qty % 4", &row, ScalarType::Int64), Ok(Value::Int64(3)));
        assert_eq!(
            run("amount * qty - 0.5", &row, ScalarType::Float64),
            Ok(Value::Float64(17.0))
        );
        assert_eq!(run("-qty", &row, ScalarType::Int64), Ok(Value::Int64(-7)));
        // Precedence: * before +, parentheses first.
        assert_eq!(
            run("1 + 2 * 3", &row, ScalarType::Int64),
            Ok(Value::Int64(7))
        );
        assert_eq!(
            run("(1 + 2) * 3", &row, ScalarType::Int64),
            Ok(Value::Int64(9))
        );
        // An integer result widens into a float field.
        assert_eq!(
            run("qty + 1", &row, ScalarType::Float32),
            Ok(Value::Float32(8.0))
        );
    }

    #[test]
    fn division_by_zero_is_null_and_overflow_is_an_error() {
        let row = [
            ("qty", Value::Int64(i64::MAX)),
            ("amount", Value::Float64(0.0)),
        ];
        assert_eq!(
            run("1 / amount", &row, ScalarType::Float64),
            Ok(Value::Null)
        );
        assert_eq!(run("qty % 0", &row, ScalarType::Int64), Ok(Value::Null));
        let err = run("qty + 1", &row, ScalarType::Int64).unwrap_err();
        assert!(err.contains("integer overflow"), "{err}");
        let err = run("cast(qty as int32)", &row, ScalarType::Int32).unwrap_err();
        assert!(err.contains("int32 range"), "{err}");
    }

    #[test]
    fn strings_comparisons_and_logic() {
        let row = [
            ("country", Value::String(" Fr ".into())),
            ("amount", Value::Float64(120.0)),
            ("vip", Value::Null),
        ];
        assert_eq!(
            run("upper(trim(country))", &row, ScalarType::String),
            Ok(Value::String("FR".into()))
        );
        assert_eq!(
            run("length(country)", &row, ScalarType::Int64),
            Ok(Value::Int64(4))
        );
        assert_eq!(
            run(
                "amount >= 100 and lower(trim(country)) = 'fr'",
                &row,
                ScalarType::Bool
            ),
            Ok(Value::Bool(true))
        );
        // Three-valued logic: null or true is true, null and true is null.
        assert_eq!(
            run("vip or amount > 1", &row, ScalarType::Bool),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            run("vip and amount > 1", &row, ScalarType::Bool),
            Ok(Value::Null)
        );
        assert_eq!(run("not vip", &row, ScalarType::Bool), Ok(Value::Null));
        assert_eq!(
            run(
                "concat('c:', trim(country), null)",
                &row,
                ScalarType::String
            ),
            Ok(Value::String("c:Fr".into()))
        );
        assert_eq!(
            run("'it''s'", &row, ScalarType::String),
            Ok(Value::String("it's".into()))
        );
    }

    #[test]
    fn null_propagates_and_coalesce_replaces_it() {
        let row = [("amount", Value::Null), ("qty", Value::Int64(2))];
        assert_eq!(
            run("amount * 2", &row, ScalarType::Float64),
            Ok(Value::Null)
        );
        assert_eq!(
            run("coalesce(amount, qty)", &row, ScalarType::Float64),
            Ok(Value::Float64(2.0))
        );
        assert_eq!(run("amount > 1", &row, ScalarType::Bool), Ok(Value::Null));
    }

    #[test]
    fn casts() {
        let row = [
            ("country", Value::String("42".into())),
            ("amount", Value::Float64(-2.7)),
            ("vip", Value::Bool(true)),
        ];
        assert_eq!(
            run("cast(country as int64) + 1", &row, ScalarType::Int64),
            Ok(Value::Int64(43))
        );
        assert_eq!(
            run("cast(amount as int64)", &row, ScalarType::Int64),
            Ok(Value::Int64(-2))
        );
        assert_eq!(
            run("cast(vip as int32)", &row, ScalarType::Int32),
            Ok(Value::Int32(1))
        );
        assert_eq!(
            run("cast(amount as string)", &row, ScalarType::String),
            Ok(Value::String("-2.7".into()))
        );
        let bad = [("country", Value::String("fr".into()))];
        let err = run("cast(country as int64)", &bad, ScalarType::Int64).unwrap_err();
        assert!(err.contains("`fr` is not an integer"), "{err}");
    }

    #[test]
    fn type_errors_name_the_problem() {
        let check = |text: &str| Expr::parse(text).and_then(|e| e.check(types)).unwrap_err();
        assert!(check("country + 1").contains("`+` needs numbers"));
        assert!(check("country + 'x'").contains("concat"));
        assert!(check("amount = 'x'").contains("compares a float with a string"));
        assert!(check("lower(amount)").contains("`lower` needs a string"));
        assert!(check("missing * 2").contains("unknown column `missing`"));
        assert!(check("seen").contains("column `seen` is timestamp"));
        assert!(check("amount and vip").contains("`and` needs bools"));
        assert!(check("coalesce(country, 1)").contains("mixes a string and an integer"));
        assert!(check("length(country, country)").contains("takes one argument"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let parse = |text: &str| Expr::parse(text).unwrap_err();
        assert!(
            parse("amount *").contains("found the end"),
            "{}",
            parse("amount *")
        );
        assert!(parse("(amount").contains("expected `)`"));
        assert!(parse("amount $ 2").contains("unexpected `$` at character 8"));
        assert!(parse("foo(amount)").contains("unknown function `foo`"));
        assert!(parse("cast(amount int64)").contains("`as`"));
        assert!(parse("cast(amount as date)").contains("int32, int64"));
        assert!(parse("'open").contains("not closed"));
        assert!(parse("amount amount").contains("unexpected `amount`"));
        assert!(parse("").contains("expected a value"));
    }

    #[test]
    fn columns_in_order_of_appearance() {
        let e = Expr::parse("a + b * a - `c d`").unwrap();
        assert_eq!(e.columns(), ["a", "b", "c d"]);
        assert_eq!(e.text(), "a + b * a - `c d`");
    }

    #[test]
    fn results_fit_their_fields() {
        assert!(ExprType::Int.fits(ScalarType::Float64));
        assert!(!ExprType::Float.fits(ScalarType::Int64));
        assert!(!ExprType::Str.fits(ScalarType::Bool));
        assert!(ExprType::Null.fits(ScalarType::String));
        assert!(!ExprType::Int.fits(ScalarType::Timestamp));
    }
}
