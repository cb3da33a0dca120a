//! PostgreSQL's numeric division and `avg`, and the per-value display scale they give.
//!
//! A PostgreSQL `numeric` value carries its own display scale (`dscale`). Division
//! picks the result's scale from the operands' leading digits (`select_div_scale`):
//! `rscale = 16 - 4·qweight`, where `qweight` estimates the quotient's weight in base
//! 10000 digits, and at least the operands' scales; the quotient is rounded there, half
//! away from zero. So `7.0/2` is `3.5000000000000000`, `avg(x)` over `1, 2` (which is
//! `sum/count` in PostgreSQL) `1.5000000000000000`, and over `1, 1` — first digits
//! equal, the estimate one lower — `1.00000000000000000000`.
//!
//! Arrow's `Decimal128` has one scale per column, so the scale cannot travel with the
//! value. Meridian splits it in two:
//!
//! 1. **Values** ([`rewrite`], on every freshly planned plan before analysis, subqueries
//!    included): a `/` with a numeric operand becomes `pg_numeric_div(a, b, S)`, and
//!    `avg` of an integer or numeric becomes `sum(x::numeric)` and `count(x)` in the
//!    aggregate and `pg_numeric_div(sum, count, S)` in a projection above it under the
//!    aggregate's old column name. `pg_numeric_div` returns PostgreSQL's value, held in a
//!    `Decimal128(38, S)` column (`S` = 20, less when the operands' integer digits need
//!    the room), and marks its field *dynamic* ([`DYNAMIC`] metadata).
//! 2. **Display** ([`expose_display_scales`], top-level queries only): each decimal
//!    output column is traced down through projections, filters, sorts, limits, windows
//!    and aliases to the expression that computed it. If that involves a dynamic value,
//!    the projection where it was computed gets a hidden column with its PostgreSQL
//!    scale (`pg_numeric_div_scale` with the same arguments; `+`/`-` take the larger
//!    scale, `*` the sum), carried up to a hidden output column `__meridian_dscale_<i>`.
//!    [`Display`] drops the hidden columns and gives column `i`'s values that scale.
//!
//! Invariants: the rewrites keep every expression's name, so parents' column references
//! stay valid; hidden columns only ever exist in plans whose rows go to a client.
//!
//! Caveats:
//! - A dynamic column whose origin cannot be traced (below `DISTINCT`, `UNION`, an
//!   aggregate such as `max(avg_col)`, …) prints normalized, as do unconstrained
//!   `numeric` columns read through DataFusion, whose stored scale does not travel.
//! - Scales above `S` (quotients below about 10⁻⁴ with 16 significant digits) are
//!   rounded at `S`; numerics hold at most 28 fractional digits (see `types`).
//! - A dynamic operand's own scale is taken as its normalized scale.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    cast as cast_expr, lit, when, Aggregate, BinaryExpr, ColumnarValue, Distinct, Expr,
    ExprSchemable, LogicalPlan, Operator, Projection, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, SubqueryAlias, Volatility,
};

use crate::error::{sqlstate, Error};
use crate::types::Datum;

/// Field metadata key marking a numeric column whose values each have their own scale.
pub const DYNAMIC: &str = "meridian.numeric_dscale";
/// Name prefix of the hidden display-scale columns of a top-level query.
const HIDDEN: &str = "__meridian_dscale_";
/// PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`.
const MIN_SIG_DIGITS: i32 = 16;
/// The largest column scale of a quotient.
const MAX_QUOTIENT_SCALE: i32 = 20;
/// The smallest, whatever the operands' integer digits.
const MIN_QUOTIENT_SCALE: i32 = 6;
/// Arrow's Decimal128 precision limit.
const MAX_PRECISION: i32 = 38;
/// Display scales beyond this are not representable (see `types`).
const MAX_DISPLAY_SCALE: i32 = 28;

/// Rewrites numeric `/` and `avg` in `plan` and its subqueries (see the module doc).
pub fn rewrite(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    if crate::arith::has_recursive_query(&plan) {
        return Ok(plan);
    }
    let mut changed = false;
    let plan = plan
        .transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Aggregate(agg) => {
                    let t = rewrite_avg(agg)?;
                    changed |= t.transformed;
                    t.data
                }
                other => other,
            };
            let t = divide_in_node(node)?;
            changed |= t.transformed;
            // A child's schema may have changed (avg is numeric now, not float).
            Ok(Transformed::new_transformed(
                if changed {
                    t.data.recompute_schema()?
                } else {
                    t.data
                },
                changed,
            ))
        })?
        .data;
    Ok(plan)
}

/// Rewrites the numeric divisions of one expression whose columns resolve in `schema`.
pub fn divide_expr(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    expr.transform_up(|e| match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) => {
            let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
                return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Divide,
                    right,
                })));
            };
            match quotient_scale(&lt, &rt) {
                Some(s) => Ok(Transformed::yes(div_call(*left, *right, s))),
                None => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Divide,
                    right,
                }))),
            }
        }
        other => Ok(Transformed::no(other)),
    })
}

fn divide_in_node(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let inputs = node.inputs();
    let schema = if inputs.is_empty() {
        node.schema().clone()
    } else {
        Arc::new(datafusion::logical_expr::utils::merge_schema(&inputs))
    };
    let names = NamePreserver::new(&node);
    node.map_expressions(|e| {
        let saved = names.save(&e);
        let t = divide_expr(e, &schema)?;
        Ok(if t.transformed {
            t.update_data(|e| saved.restore(e))
        } else {
            t
        })
    })
}

/// The column scale of `a / b` if PostgreSQL divides them as numerics (one operand
/// numeric, the other numeric or integer).
fn quotient_scale(a: &DataType, b: &DataType) -> Option<i32> {
    let (ai, _) = int_digits_and_scale(a)?;
    let (_, bs) = int_digits_and_scale(b)?;
    if !matches!(a, DataType::Decimal128(..)) && !matches!(b, DataType::Decimal128(..)) {
        return None;
    }
    // |a / b| < 10^(int digits of a + scale of b).
    Some((MAX_PRECISION - ai - bs).clamp(MIN_QUOTIENT_SCALE, MAX_QUOTIENT_SCALE))
}

/// Integer digits and scale of an integer or decimal type; an unconstrained numeric
/// (`Decimal128(38,10)`) is assumed to need 18 integer digits and no scale.
fn int_digits_and_scale(ty: &DataType) -> Option<(i32, i32)> {
    Some(match ty {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        DataType::Decimal128(38, 10) => (18, 0),
        DataType::Decimal128(p, s) => (i32::from(*p) - i32::from(*s), i32::from(*s).max(0)),
        _ => return None,
    })
}

fn div_call(a: Expr, b: Expr, scale: i32) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(NumericDiv::new(DivOutput::Value))),
        vec![a, b, lit(scale)],
    ))
}

fn div_scale_call(args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(NumericDiv::new(DivOutput::Scale))),
        args,
    ))
}

/// `avg(x)` of integers or numerics → `sum(x::numeric) / count(x)` as PostgreSQL
/// computes it; other aggregates are kept.
fn rewrite_avg(agg: Aggregate) -> DfResult<Transformed<LogicalPlan>> {
    let input_schema = agg.input.schema().clone();
    let mut aggr_expr = Vec::with_capacity(agg.aggr_expr.len());
    // Per aggregate: the quotient replacing it, if it was an avg.
    let mut quotients: Vec<Option<Expr>> = Vec::with_capacity(agg.aggr_expr.len());
    for (k, e) in agg.aggr_expr.iter().enumerate() {
        let Some((sum, count, scale)) = avg_parts(e, &input_schema) else {
            aggr_expr.push(e.clone());
            quotients.push(None);
            continue;
        };
        let sum_name = format!("__meridian_avg_sum_{k}");
        let count_name = format!("__meridian_avg_count_{k}");
        aggr_expr.push(sum.alias(&sum_name));
        aggr_expr.push(count.alias(&count_name));
        quotients.push(Some(div_call(
            Expr::Column(Column::from_name(sum_name)),
            Expr::Column(Column::from_name(count_name)),
            scale,
        )));
    }
    if quotients.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    }
    let old_schema = agg.schema.clone();
    let first_aggr = old_schema.fields().len() - agg.aggr_expr.len();
    let new_agg = Aggregate::try_new(agg.input, agg.group_expr, aggr_expr)?;
    let exprs = old_schema
        .iter()
        .enumerate()
        .map(|(j, (qualifier, field))| {
            match j.checked_sub(first_aggr).and_then(|k| quotients[k].clone()) {
                Some(q) => q.alias_qualified(qualifier.cloned(), field.name()),
                None => Expr::Column(Column::new(qualifier.cloned(), field.name())),
            }
        })
        .collect();
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(new_agg)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// `(sum, count, quotient scale)` replacing an `avg` of integers or numerics.
fn avg_parts(e: &Expr, schema: &DFSchema) -> Option<(Expr, Expr, i32)> {
    let Expr::AggregateFunction(f) = e else {
        return None;
    };
    if f.func.name() != "avg" || f.params.args.len() != 1 {
        return None;
    }
    let arg = &f.params.args[0];
    let ty = arg.get_type(schema).ok()?;
    let (digits, _) = int_digits_and_scale(&ty)?;
    let scale = match ty {
        DataType::Decimal128(_, s) => s.max(0),
        _ => 0,
    };
    let p = &f.params;
    let aggregate = |func, arg| {
        Expr::AggregateFunction(AggregateFunction::new_udf(
            func,
            vec![arg],
            p.distinct,
            p.filter.clone(),
            p.order_by.clone(),
            p.null_treatment,
        ))
    };
    let as_numeric = cast_expr(arg.clone(), DataType::Decimal128(38, scale));
    Some((
        aggregate(sum_udaf(), as_numeric),
        aggregate(count_udaf(), arg.clone()),
        (MAX_PRECISION - digits).clamp(MIN_QUOTIENT_SCALE, MAX_QUOTIENT_SCALE),
    ))
}

/// Whether a result field holds numerics with per-value scales: a quotient (the
/// metadata, which casts keep, names the quotient's column scale) or an unconstrained
/// numeric.
pub fn is_dynamic(field: &Field) -> bool {
    let quotient = field
        .metadata()
        .get(DYNAMIC)
        .and_then(|s| s.parse::<i8>().ok())
        .is_some_and(|s| *field.data_type() == DataType::Decimal128(38, s));
    quotient || *field.data_type() == DataType::Decimal128(38, 10)
}

/// Adds hidden display-scale columns to a top-level query's plan where its decimal
/// output columns have per-value scales; the plan is returned unchanged if none do or
/// the rewrite fails.
pub fn expose_display_scales(plan: LogicalPlan) -> LogicalPlan {
    match expose(plan.clone()) {
        Ok(Some(p)) => p,
        _ => plan,
    }
}

fn expose(plan: LogicalPlan) -> DfResult<Option<LogicalPlan>> {
    let visible = plan.schema().fields().len();
    let decimal: Vec<usize> = (0..visible)
        .filter(|&i| matches!(plan.schema().field(i).data_type(), DataType::Decimal128(..)))
        .collect();
    if decimal.is_empty() {
        return Ok(None);
    }
    let mut tracer = Tracer::default();
    let mut plan = plan;
    let mut exposed = Vec::new();
    for i in decimal {
        let (p, scale) = tracer.column(plan, i)?;
        plan = p;
        if let Some(scale) = scale {
            exposed.push((i, scale));
        }
    }
    if exposed.is_empty() {
        return Ok(None);
    }
    let schema = plan.schema().clone();
    let mut exprs: Vec<Expr> = (0..visible)
        .map(|j| Expr::Column(Column::from(schema.qualified_field(j))))
        .collect();
    for (i, scale) in exposed {
        exprs.push(scale.alias(format!("{HIDDEN}{i}")));
    }
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?)))
}

/// Finds the display scale of output columns, adding hidden columns on the way.
#[derive(Default)]
struct Tracer {
    next: usize,
}

impl Tracer {
    fn hidden_name(&mut self) -> String {
        self.next += 1;
        format!("__meridian_scale_{}", self.next)
    }

    /// The display scale of output column `i` of `plan` as an expression over the
    /// returned plan's output (which may have gained hidden columns), or None if the
    /// column's scale is static.
    fn column(&mut self, plan: LogicalPlan, i: usize) -> DfResult<(LogicalPlan, Option<Expr>)> {
        match plan {
            LogicalPlan::Projection(p) => {
                let e = p.expr[i].clone().unalias_nested().data;
                let (input, scale) = self.expr(&e, Arc::unwrap_or_clone(p.input))?;
                let Some(scale) = scale else {
                    return Ok((
                        LogicalPlan::Projection(Projection::try_new(p.expr, Arc::new(input))?),
                        None,
                    ));
                };
                let name = self.hidden_name();
                let mut exprs = p.expr;
                exprs.push(scale.alias(&name));
                let projection = Projection::try_new(exprs, Arc::new(input))?;
                Ok((
                    LogicalPlan::Projection(projection),
                    Some(Expr::Column(Column::from_name(name))),
                ))
            }
            LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => {
                let input = (*plan.inputs()[0]).clone();
                let (input, scale) = self.column(input, i)?;
                let exprs = plan.expressions();
                Ok((plan.with_new_exprs(exprs, vec![input])?, scale))
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let (input, scale) = self.column(Arc::unwrap_or_clone(input), i)?;
                Ok((LogicalPlan::Distinct(Distinct::All(Arc::new(input))), scale))
            }
            LogicalPlan::Window(ref w) if i < w.input.schema().fields().len() => {
                let (input, scale) = self.column(w.input.as_ref().clone(), i)?;
                let exprs = plan.expressions();
                Ok((plan.with_new_exprs(exprs, vec![input])?, scale))
            }
            LogicalPlan::SubqueryAlias(sa) => {
                let (input, scale) = self.column(Arc::unwrap_or_clone(sa.input), i)?;
                let alias = sa.alias;
                let scale = scale.map(|s| match s {
                    Expr::Column(c) => Expr::Column(Column::new(Some(alias.clone()), c.name)),
                    other => other,
                });
                let plan = SubqueryAlias::try_new(Arc::new(input), alias)?;
                Ok((LogicalPlan::SubqueryAlias(plan), scale))
            }
            other => Ok((other, None)),
        }
    }

    /// The display scale of `e` evaluated over `input`, if it involves a dynamic value.
    fn expr(&mut self, e: &Expr, input: LogicalPlan) -> DfResult<(LogicalPlan, Option<Expr>)> {
        match e {
            Expr::Column(c) => {
                let Some(i) = input.schema().maybe_index_of_column(c) else {
                    return Ok((input, None));
                };
                if !matches!(
                    input.schema().field(i).data_type(),
                    DataType::Decimal128(..)
                ) {
                    return Ok((input, None));
                }
                self.column(input, i)
            }
            Expr::ScalarFunction(f) if f.func.name() == DivOutput::Value.name() => {
                Ok((input, Some(div_scale_call(f.args.clone()))))
            }
            Expr::Negative(inner) => self.expr(inner, input),
            Expr::Alias(a) => self.expr(&a.expr, input),
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) =>
            {
                let (input, l) = self.expr(left, input)?;
                let (input, r) = self.expr(right, input)?;
                if l.is_none() && r.is_none() {
                    return Ok((input, None));
                }
                let schema = input.schema().clone();
                let l = l.unwrap_or_else(|| static_scale(left, &schema));
                let r = r.unwrap_or_else(|| static_scale(right, &schema));
                let scale = if *op == Operator::Multiply {
                    l + r
                } else {
                    when(l.clone().gt_eq(r.clone()), l).otherwise(r)?
                };
                Ok((input, Some(scale)))
            }
            _ => Ok((input, None)),
        }
    }
}

/// The scale of a value of `e`'s static type.
fn static_scale(e: &Expr, schema: &DFSchema) -> Expr {
    match e.get_type(schema) {
        Ok(DataType::Decimal128(_, s)) => lit(i32::from(s).max(0)),
        _ => lit(0i32),
    }
}

/// How a top-level query's result columns are turned into datums.
#[derive(Debug, Clone)]
pub struct Display {
    columns: Vec<ColumnDisplay>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnDisplay {
    AsIs,
    /// Per-value scale unknown: print the value normalized.
    Normalized,
    /// Per-value scale in the given (hidden) column.
    ScaleIn(usize),
}

impl Display {
    /// The display of a plan's result: visible columns first, hidden ones after.
    pub fn of(schema: &DFSchema) -> Display {
        let mut hidden: HashMap<usize, usize> = HashMap::new();
        let mut visible = 0;
        for (j, f) in schema.fields().iter().enumerate() {
            match f.name().strip_prefix(HIDDEN) {
                Some(i) => {
                    if let Ok(i) = i.parse() {
                        hidden.insert(i, j);
                    }
                }
                None => visible += 1,
            }
        }
        let columns = (0..visible)
            .map(|i| match hidden.get(&i) {
                Some(&j) => ColumnDisplay::ScaleIn(j),
                None if is_dynamic(schema.field(i)) => ColumnDisplay::Normalized,
                None => ColumnDisplay::AsIs,
            })
            .collect();
        Display { columns }
    }

    /// Number of columns the client sees.
    pub fn visible(&self) -> usize {
        self.columns.len()
    }

    /// Whether column `i`'s values carry their own scale (an unconstrained numeric).
    pub fn per_value_scale(&self, i: usize) -> bool {
        self.columns[i] != ColumnDisplay::AsIs
    }

    /// The visible datums of one row, each numeric at its display scale; `datum(j)`
    /// gives the row's datum of column `j`.
    pub fn row(
        &self,
        mut datum: impl FnMut(usize) -> Result<Datum, crate::types::TypeError>,
    ) -> Result<Vec<Datum>, crate::types::TypeError> {
        let mut row = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let d = datum(i)?;
            row.push(match (c, d) {
                (ColumnDisplay::AsIs, d) => d,
                (ColumnDisplay::Normalized, Datum::Numeric(n)) => Datum::Numeric(n.normalize()),
                (ColumnDisplay::ScaleIn(j), Datum::Numeric(n)) => match datum(*j)? {
                    Datum::Int4(s) => Datum::Numeric(with_scale(n, s)),
                    _ => Datum::Numeric(n.normalize()),
                },
                (_, d) => d,
            });
        }
        Ok(row)
    }
}

/// `n` shown with `scale` fractional digits (rounded half away from zero if fewer).
fn with_scale(n: rust_decimal::Decimal, scale: i32) -> rust_decimal::Decimal {
    let s = scale.clamp(0, MAX_DISPLAY_SCALE) as u32;
    let mut d = n.round_dp_with_strategy(s, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    d.rescale(s);
    d
}

/// What `pg_numeric_div` returns: the quotient, or its display scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DivOutput {
    Value,
    Scale,
}

impl DivOutput {
    fn name(self) -> &'static str {
        match self {
            DivOutput::Value => "pg_numeric_div",
            DivOutput::Scale => "pg_numeric_div_scale",
        }
    }
}

/// `pg_numeric_div(a, b, S)`: PostgreSQL's `a / b` in a `Decimal128(38, S)`, or with
/// [`DivOutput::Scale`] its display scale. `a` and `b` are integers or decimals.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDiv {
    output: DivOutput,
    signature: Signature,
}

impl NumericDiv {
    fn new(output: DivOutput) -> NumericDiv {
        NumericDiv {
            output,
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        self.output.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(
            "pg_numeric_div's type comes from return_field_from_args".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = match self.output {
            DivOutput::Scale => Field::new(self.name(), DataType::Int32, true),
            DivOutput::Value => {
                let scale = out_scale(args.scalar_arguments.get(2).copied().flatten())?;
                Field::new(self.name(), DataType::Decimal128(38, scale as i8), true)
                    .with_metadata(HashMap::from([(DYNAMIC.to_string(), scale.to_string())]))
            }
        };
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [a, b, s] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes three arguments",
                self.name()
            )));
        };
        let ColumnarValue::Scalar(s) = s else {
            return Err(DataFusionError::Internal(
                "pg_numeric_div's scale must be a constant".into(),
            ));
        };
        let out = out_scale(Some(s))?;
        let arrays = ColumnarValue::values_to_arrays(&[a.clone(), b.clone()])?;
        let a = Operand::of(&arrays[0], &args.arg_fields[0])?;
        let b = Operand::of(&arrays[1], &args.arg_fields[1])?;
        let n = arrays[0].len();
        let result: ArrayRef = match self.output {
            DivOutput::Value => {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(match (a.get(i), b.get(i)) {
                        (Some(x), Some(y)) => Some(divide(x, y, out)?),
                        _ => None,
                    });
                }
                Arc::new(Decimal128Array::from(values).with_precision_and_scale(38, out as i8)?)
            }
            DivOutput::Scale => Arc::new(Int32Array::from_iter((0..n).map(|i| {
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => Some(div_scale(x, y).min(out)),
                    _ => None,
                }
            }))),
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn out_scale(s: Option<&ScalarValue>) -> DfResult<i32> {
    match s {
        Some(ScalarValue::Int32(Some(s))) if (0..=MAX_PRECISION).contains(s) => Ok(*s),
        _ => Err(DataFusionError::Internal(
            "pg_numeric_div's scale must be an integer constant".into(),
        )),
    }
}

/// One operand column as unscaled i128s with their scale.
struct Operand {
    values: Decimal128Array,
    scale: i32,
    /// Whether each value's own scale is its normalized one (a dynamic numeric).
    dynamic: bool,
}

/// A decimal value `v · 10^-scale` with its display scale.
#[derive(Debug, Clone, Copy)]
struct Num {
    v: i128,
    scale: i32,
    dscale: i32,
}

impl Operand {
    fn of(array: &ArrayRef, field: &Field) -> DfResult<Operand> {
        let (values, scale) = match array.data_type() {
            DataType::Decimal128(_, s) => (array.clone(), i32::from(*s)),
            _ => (cast(array, &DataType::Decimal128(38, 0))?, 0),
        };
        Ok(Operand {
            values: values.as_primitive::<Decimal128Type>().clone(),
            scale,
            dynamic: is_dynamic(field),
        })
    }

    fn get(&self, i: usize) -> Option<Num> {
        if self.values.is_null(i) {
            return None;
        }
        let v = self.values.value(i);
        let dscale = if self.dynamic {
            normalized_scale(v, self.scale)
        } else {
            self.scale
        };
        Some(Num {
            v,
            scale: self.scale,
            dscale,
        })
    }
}

/// The scale of `v · 10^-scale` without trailing fractional zeros.
fn normalized_scale(v: i128, scale: i32) -> i32 {
    if v == 0 {
        return 0;
    }
    let mut v = v;
    let mut s = scale;
    while s > 0 && v % 10 == 0 {
        v /= 10;
        s -= 1;
    }
    s
}

/// Weight and first digit of `|x|` in PostgreSQL's base-10000 representation, whose
/// digit groups are aligned at the decimal point; `(0, 0)` for zero.
fn nbase_lead(x: Num) -> (i32, u32) {
    if x.v == 0 {
        return (0, 0);
    }
    let v = x.v.unsigned_abs();
    let digits = v.ilog10() as i32 + 1;
    // |x| is in [10^e, 10^(e+1)).
    let e = digits - 1 - x.scale;
    let weight = e.div_euclid(4);
    let shift = -x.scale - 4 * weight;
    let first = if shift >= 0 {
        v * 10u128.pow(shift as u32)
    } else {
        v / 10u128.pow((-shift) as u32)
    };
    (weight, first as u32)
}

/// PostgreSQL's `select_div_scale`: the scale of `a / b`.
fn div_scale(a: Num, b: Num) -> i32 {
    let (w1, d1) = nbase_lead(a);
    let (w2, d2) = nbase_lead(b);
    let mut qweight = w1 - w2;
    if d1 <= d2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - 4 * qweight)
        .max(a.dscale)
        .max(b.dscale)
        .clamp(0, 1000)
}

/// `a / b` rounded half away from zero at PostgreSQL's scale (at most `out`), as the
/// unscaled value of a `Decimal128(38, out)`.
fn divide(a: Num, b: Num, out: i32) -> DfResult<i128> {
    if b.v == 0 {
        return Err(external(Error::new(
            sqlstate::DIVISION_BY_ZERO,
            "division by zero",
        )));
    }
    let rscale = div_scale(a, b).min(out);
    // a/b · 10^rscale = A · 10^(sb - sa + rscale) / B.
    let e = b.scale - a.scale + rscale;
    let overflow = || {
        external(Error::new(
            sqlstate::NUMERIC_OUT_OF_RANGE,
            "value overflows numeric format",
        ))
    };
    let pow = |n: i32| {
        i256::from_i128(10)
            .checked_pow(n as u32)
            .ok_or_else(overflow)
    };
    let (num, den) = if e >= 0 {
        (
            i256::from_i128(a.v)
                .checked_mul(pow(e)?)
                .ok_or_else(overflow)?,
            i256::from_i128(b.v),
        )
    } else {
        (
            i256::from_i128(a.v),
            i256::from_i128(b.v)
                .checked_mul(pow(-e)?)
                .ok_or_else(overflow)?,
        )
    };
    let q = num.checked_div(den).ok_or_else(overflow)?;
    let r = num.checked_rem(den).ok_or_else(overflow)?;
    let twice = r
        .wrapping_abs()
        .checked_mul(i256::from_i128(2))
        .ok_or_else(overflow)?;
    let q = if twice >= den.wrapping_abs() {
        if num.is_negative() != den.is_negative() {
            q.wrapping_sub(i256::from_i128(1))
        } else {
            q.wrapping_add(i256::from_i128(1))
        }
    } else {
        q
    };
    let scaled = q.checked_mul(pow(out - rscale)?).ok_or_else(overflow)?;
    let limit = i256::from_i128(10).checked_pow(38).ok_or_else(overflow)?;
    if scaled.wrapping_abs() >= limit {
        return Err(overflow());
    }
    scaled.to_i128().ok_or_else(overflow)
}

fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: i128, scale: i32) -> Num {
        Num {
            v,
            scale,
            dscale: scale,
        }
    }

    fn shown(v: i128, out: i32, dscale: i32) -> String {
        let d = rust_decimal::Decimal::from_i128_with_scale(v, out as u32);
        with_scale(d, dscale).to_string()
    }

    fn pg_div(a: Num, b: Num) -> String {
        shown(divide(a, b, 20).unwrap(), 20, div_scale(a, b).min(20))
    }

    #[test]
    fn division_matches_postgresql() {
        // Expected strings are PostgreSQL 15's output.
        assert_eq!(pg_div(num(70, 1), num(2, 0)), "3.5000000000000000");
        assert_eq!(pg_div(num(3, 0), num(2, 0)), "1.5000000000000000");
        assert_eq!(pg_div(num(2, 0), num(2, 0)), "1.00000000000000000000");
        assert_eq!(pg_div(num(15, 1), num(12, 1)), "1.25000000000000000000");
        assert_eq!(pg_div(num(10, 0), num(3, 0)), "3.3333333333333333");
        assert_eq!(pg_div(num(20, 0), num(3, 0)), "6.6666666666666667");
        assert_eq!(pg_div(num(-20, 0), num(3, 0)), "-6.6666666666666667");
        assert_eq!(pg_div(num(1, 0), num(3, 0)), "0.33333333333333333333");
        assert_eq!(pg_div(num(300000, 0), num(2, 0)), "150000.000000000000");
        assert_eq!(pg_div(num(12000, 2), num(7, 0)), "17.1428571428571429");
        assert_eq!(pg_div(num(0, 0), num(5, 0)), "0.00000000000000000000");
    }

    #[test]
    fn division_by_zero_is_22012() {
        let e = divide(num(1, 0), num(0, 0), 20).unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
    }

    #[test]
    fn base_10000_digits() {
        assert_eq!(nbase_lead(num(5, 1)), (-1, 5000));
        assert_eq!(nbase_lead(num(15, 1)), (0, 1));
        assert_eq!(nbase_lead(num(12345, 0)), (1, 1));
        assert_eq!(nbase_lead(num(9999, 0)), (0, 9999));
        assert_eq!(nbase_lead(num(1, 5)), (-2, 1000));
    }

    #[test]
    fn normalized_scales() {
        assert_eq!(normalized_scale(1500, 3), 1);
        assert_eq!(normalized_scale(0, 3), 0);
        assert_eq!(normalized_scale(7, 0), 0);
    }
}
