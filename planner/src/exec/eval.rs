//! Expression evaluation outside of queries.
//!
//! Two evaluators:
//!
//! * [`Simple`]: literals, parameters, column references and `+ - *` on them, compiled from
//!   the AST and evaluated directly on [`Datum`]s. This is what the point fast path and
//!   plain `INSERT … VALUES` use; it costs microseconds.
//! * [`RowEvaluator`]: any scalar SQL expression over the columns of one or more relations
//!   (CHECK constraints, DEFAULTs, RETURNING, ON CONFLICT DO UPDATE), compiled once per
//!   statement into DataFusion physical expressions and evaluated over Arrow batches of
//!   rows, so PostgreSQL-compatible semantics come from the same engine as queries.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{DFSchema, TableReference};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, Expr, ExprWithAlias, UnaryOperator, Value, ValueWithSpan,
};
use rust_decimal::Decimal;

use crate::catalog::TableDef;
use crate::error::{sqlstate, Error, Result};
use crate::types::{array_datum, datums_to_array, Datum, SqlType};

/// A small expression evaluated without DataFusion.
#[derive(Clone, Debug)]
pub enum Simple {
    Const(Datum),
    Param(usize),
    Column(usize),
    Cast(Box<Simple>, SqlType),
    Neg(Box<Simple>),
    Arith(Box<Simple>, ArithOp, Box<Simple>),
}

#[derive(Clone, Copy, Debug)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
}

/// A literal as a datum: integers are int4 if they fit, else int8, else numeric;
/// decimals are numeric; strings are untyped text (coerced on assignment).
pub fn literal(v: &Value) -> Option<Datum> {
    match v {
        Value::Number(s, _) => {
            if let Ok(i) = s.parse::<i64>() {
                Some(match i32::try_from(i) {
                    Ok(i) => Datum::Int4(i),
                    Err(_) => Datum::Int8(i),
                })
            } else if let Ok(d) = s.parse::<Decimal>() {
                Some(Datum::Numeric(d))
            } else if let Ok(d) = Decimal::from_scientific(s) {
                Some(Datum::Numeric(d))
            } else {
                // Beyond numeric's range here (e.g. 1.5e300): as PostgreSQL would store it
                // in a float column.
                s.parse::<f64>().ok().map(Datum::Float8)
            }
        }
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
            Some(Datum::Text(s.clone()))
        }
        Value::Boolean(b) => Some(Datum::Bool(*b)),
        Value::Null => Some(Datum::Null),
        _ => None,
    }
}

impl Simple {
    /// Compiles an expression; `column` resolves a name to a position (None: no columns).
    pub fn compile(e: &Expr, column: &dyn Fn(&str) -> Option<usize>) -> Option<Simple> {
        match e {
            Expr::Value(ValueWithSpan { value, .. }) => match value {
                Value::Placeholder(p) => {
                    let n: usize = p.strip_prefix('$')?.parse().ok()?;
                    (n >= 1).then_some(Simple::Param(n - 1))
                }
                v => literal(v).map(Simple::Const),
            },
            Expr::Identifier(i) => column(&super::names::ident(i)).map(Simple::Column),
            Expr::Nested(inner) => Simple::compile(inner, column),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match Simple::compile(expr, column)? {
                Simple::Const(Datum::Int4(i)) => Some(Simple::Const(Datum::Int4(-i))),
                Simple::Const(Datum::Int8(i)) => Some(Simple::Const(Datum::Int8(-i))),
                Simple::Const(Datum::Numeric(d)) => Some(Simple::Const(Datum::Numeric(-d))),
                other => Some(Simple::Neg(Box::new(other))),
            },
            Expr::UnaryOp {
                op: UnaryOperator::Plus,
                expr,
            } => Simple::compile(expr, column),
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => ArithOp::Add,
                    BinaryOperator::Minus => ArithOp::Sub,
                    BinaryOperator::Multiply => ArithOp::Mul,
                    _ => return None,
                };
                Some(Simple::Arith(
                    Box::new(Simple::compile(left, column)?),
                    op,
                    Box::new(Simple::compile(right, column)?),
                ))
            }
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                format: None,
                ..
            } => {
                let ty = SqlType::from_ast(data_type).ok()?;
                Some(Simple::Cast(Box::new(Simple::compile(expr, column)?), ty))
            }
            _ => None,
        }
    }

    /// Parameter positions referenced, with the type context they appear in (if any).
    pub fn params(&self, out: &mut Vec<usize>) {
        match self {
            Simple::Param(n) => out.push(*n),
            Simple::Cast(e, _) | Simple::Neg(e) => e.params(out),
            Simple::Arith(a, _, b) => {
                a.params(out);
                b.params(out);
            }
            Simple::Const(_) | Simple::Column(_) => {}
        }
    }

    pub fn eval(&self, params: &[Datum], row: &[Datum]) -> Result<Datum> {
        Ok(match self {
            Simple::Const(d) => d.clone(),
            Simple::Param(n) => params.get(*n).cloned().ok_or_else(|| {
                Error::new(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("there is no parameter ${}", n + 1),
                )
            })?,
            Simple::Column(c) => row[*c].clone(),
            Simple::Cast(e, ty) => e.eval(params, row)?.coerce(ty)?,
            Simple::Neg(e) => arith(Datum::Int4(0), ArithOp::Sub, e.eval(params, row)?)?,
            Simple::Arith(a, op, b) => arith(a.eval(params, row)?, *op, b.eval(params, row)?)?,
        })
    }
}

fn out_of_range(what: &str) -> Error {
    Error::new(
        sqlstate::NUMERIC_OUT_OF_RANGE,
        format!("{what} out of range"),
    )
}

/// Arithmetic with PostgreSQL's promotion: int4 < int8 < numeric < float8.
fn arith(a: Datum, op: ArithOp, b: Datum) -> Result<Datum> {
    use Datum::*;
    if a.is_null() || b.is_null() {
        return Ok(Null);
    }
    let rank = |d: &Datum| match d {
        Int2(_) | Int4(_) => 0,
        Int8(_) => 1,
        Numeric(_) | Text(_) => 2,
        Float4(_) | Float8(_) => 3,
        _ => 4,
    };
    let r = rank(&a).max(rank(&b));
    Ok(match r {
        0 => {
            let (x, y) = (as_i64(&a)?, as_i64(&b)?);
            let v = int_op(x, op, y).ok_or_else(|| out_of_range("integer"))?;
            Int4(i32::try_from(v).map_err(|_| out_of_range("integer"))?)
        }
        1 => Int8(int_op(as_i64(&a)?, op, as_i64(&b)?).ok_or_else(|| out_of_range("bigint"))?),
        2 => {
            let (x, y) = (as_decimal(a)?, as_decimal(b)?);
            Numeric(
                match op {
                    ArithOp::Add => x.checked_add(y),
                    ArithOp::Sub => x.checked_sub(y),
                    ArithOp::Mul => x.checked_mul(y),
                }
                .ok_or_else(|| out_of_range("numeric"))?,
            )
        }
        3 => {
            let (x, y) = (as_f64(a)?, as_f64(b)?);
            Float8(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
            })
        }
        _ => {
            return Err(Error::new(
                sqlstate::UNDEFINED_FUNCTION,
                "operator does not exist for these types",
            ))
        }
    })
}

fn int_op(x: i64, op: ArithOp, y: i64) -> Option<i64> {
    match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
    }
}

fn as_i64(d: &Datum) -> Result<i64> {
    match d {
        Datum::Int2(v) => Ok(i64::from(*v)),
        Datum::Int4(v) => Ok(i64::from(*v)),
        Datum::Int8(v) => Ok(*v),
        _ => Err(Error::internal("not an integer")),
    }
}

fn as_decimal(d: Datum) -> Result<Decimal> {
    match d.coerce(&SqlType::Numeric {
        precision: None,
        scale: None,
    })? {
        Datum::Numeric(v) => Ok(v),
        _ => Err(Error::internal("not numeric")),
    }
}

fn as_f64(d: Datum) -> Result<f64> {
    match d.coerce(&SqlType::Float8)? {
        Datum::Float8(v) => Ok(v),
        _ => Err(Error::internal("not a float")),
    }
}

/// One relation whose columns an expression may reference.
pub struct Relation<'a> {
    pub qualifier: String,
    pub table: &'a TableDef,
}

/// SQL expressions compiled once and evaluated over rows of concatenated relations.
pub struct RowEvaluator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: Arc<Schema>,
    types: Vec<SqlType>,
}

impl RowEvaluator {
    pub fn new(
        state: &SessionState,
        exprs: &[Expr],
        relations: &[Relation<'_>],
    ) -> Result<RowEvaluator> {
        let mut qualified: Vec<(Option<TableReference>, Arc<Field>)> = Vec::new();
        let mut types = Vec::new();
        for rel in relations {
            for col in &rel.table.columns {
                qualified.push((
                    Some(TableReference::bare(rel.qualifier.clone())),
                    Arc::new(Field::new(&col.name, col.ty.arrow_type(), true)),
                ));
                types.push(col.ty.clone());
            }
        }
        let df_schema = DFSchema::new_with_metadata(qualified, Default::default())?;
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .with_config_options(state.config_options().clone())
                .with_current_time()
                .build(),
        );
        let mut compiled = Vec::with_capacity(exprs.len());
        for e in exprs {
            let logical = state.create_logical_expr_from_sql_expr(
                ExprWithAlias {
                    expr: e.clone(),
                    alias: None,
                },
                &df_schema,
            )?;
            // As a query's expressions would be: PostgreSQL integer typing and overflow
            // checks, then constant folding, which also fixes `now()` for the statement.
            let logical = crate::arith::narrow_expr(logical)?.data;
            let logical = crate::numeric_scale::divide_expr(logical, &df_schema)?.data;
            let logical = simplifier.coerce(logical, &df_schema)?;
            let logical = crate::arith::checked_expr(logical, &df_schema)?.data;
            let logical = simplifier.simplify(logical)?;
            compiled.push(state.create_physical_expr(logical, &df_schema)?);
        }
        Ok(RowEvaluator {
            exprs: compiled,
            schema: Arc::new(df_schema.as_arrow().clone()),
            types,
        })
    }

    /// Result types of the expressions.
    pub fn output_types(&self) -> Result<Vec<SqlType>> {
        self.exprs
            .iter()
            .map(|e| Ok(SqlType::from_arrow(&e.data_type(&self.schema)?)))
            .collect()
    }

    /// Evaluates every expression on every row (each row is the concatenation of the
    /// relations' columns). Returns one output row per input row.
    pub fn eval(&self, rows: &[Vec<Datum>]) -> Result<Vec<Vec<Datum>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut columns = Vec::with_capacity(self.types.len());
        for (i, ty) in self.types.iter().enumerate() {
            let values: Vec<Datum> = rows.iter().map(|r| r[i].clone()).collect();
            columns.push(datums_to_array(&values, ty)?);
        }
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        let mut out = vec![Vec::with_capacity(self.exprs.len()); rows.len()];
        for e in &self.exprs {
            let array = e.evaluate(&batch)?.into_array(rows.len())?;
            for (i, row) in out.iter_mut().enumerate() {
                row.push(array_datum(&array, i)?);
            }
        }
        Ok(out)
    }
}
