//! Integer arithmetic typed and checked as PostgreSQL's.
//!
//! Two differences from DataFusion, both fixed by plan rewrites:
//!
//! * **Literal types.** PostgreSQL types an integer literal that fits in 32 bits as
//!   `integer`, so `int_col + 1` is `integer` and `2147483647 + 1` overflows; DataFusion
//!   types every integer literal `bigint`. [`narrow_literals`] runs on the freshly planned
//!   (not yet analyzed) plan and makes such literals `Int32`; type coercion then gives
//!   PostgreSQL's result types. It leaves alone `LIMIT`/`OFFSET` (DataFusion wants `Int64`
//!   there), `VALUES` rows (their schema is fixed when planned), `count(*)`'s marker and
//!   plans with a recursive CTE (its work table's type is fixed when planned).
//! * **Overflow.** DataFusion's `+`, `-` and `*` on integers wrap around; PostgreSQL
//!   fails the statement with SQLSTATE 22003 (`integer out of range`). DataFusion's
//!   physical `BinaryExpr` can check overflow, but its planner never asks it to, and
//!   physical plans offer no generic way to rewrite their expressions. So the analyzer
//!   rule [`CheckedArithmetic`] (after type coercion, before optimization — constant
//!   folding of an overflowing expression then fails at run time, as in PostgreSQL)
//!   turns every integer `+`/`-`/`*` into a call to [`CheckedArith`], which runs Arrow's
//!   checked kernels. Expressions keep their names ([`NamePreserver`]), so the plan's
//!   schema does not change.
//! * **`round(double precision)`** rounds ties to even in PostgreSQL (`rint`), away from
//!   zero in DataFusion; the same rule calls [`RoundHalfEven`] instead.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

use crate::error::{sqlstate, Error};

/// Types integer literals that fit in 32 bits as `Int32`, in `plan` and its subqueries.
pub fn narrow_literals(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    if has_recursive_query(&plan) {
        return Ok(plan);
    }
    rewrite_plan(
        plan,
        |node| (!matches!(node, LogicalPlan::Limit(_) | LogicalPlan::Values(_))).then_some(()),
        |(), e| narrow_expr(e),
    )
}

/// Whether `plan` has a recursive CTE, whose work table keeps the types its static
/// term had when planned (so rewrites that change types must leave such plans alone).
pub(crate) fn has_recursive_query(plan: &LogicalPlan) -> bool {
    let mut recursive = false;
    let _ = plan.apply_with_subqueries(|n| {
        recursive |= matches!(n, LogicalPlan::RecursiveQuery(_));
        Ok(if recursive {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    recursive
}

/// Types the integer literals of one expression that fit in 32 bits as `Int32`.
pub fn narrow_expr(expr: Expr) -> DfResult<Transformed<Expr>> {
    expr.transform_down(|e| match e {
        Expr::AggregateFunction(ref f) if f.func.name() == "count" => {
            Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
        }
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) => Ok(match i32::try_from(v) {
            Ok(narrow) => Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(narrow)), meta)),
            Err(_) => Transformed::no(Expr::Literal(ScalarValue::Int64(Some(v)), meta)),
        }),
        other => Ok(Transformed::no(other)),
    })
}

/// The analyzer rule that makes integer arithmetic raise on overflow.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        checked_plan(plan)
    }

    fn name(&self) -> &str {
        "pg_checked_arithmetic"
    }
}

/// Rewrites every integer `+`, `-`, `*` in `plan` (and its subqueries) to checked calls.
fn checked_plan(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    rewrite_plan(
        plan,
        |node| Some(expression_schema(node)),
        |schema, e| checked_expr(e, schema),
    )
}

/// Applies `rewrite` to every expression of every node of `plan` and its subqueries for
/// which `prepare` gives a context, keeping expression names (so parents' column
/// references stay valid).
fn rewrite_plan<C>(
    plan: LogicalPlan,
    prepare: impl Fn(&LogicalPlan) -> Option<C>,
    rewrite: impl Fn(&C, Expr) -> DfResult<Transformed<Expr>>,
) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let Some(context) = prepare(&node) else {
            return Ok(Transformed::no(node));
        };
        let names = NamePreserver::new(&node);
        let rewritten = node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = rewrite(&context, e)?;
            Ok(if t.transformed {
                t.update_data(|e| saved.restore(e))
            } else {
                t
            })
        })?;
        if rewritten.transformed {
            rewritten.map_data(LogicalPlan::recompute_schema)
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}

/// Rewrites one expression whose columns resolve in `schema`. Operands of different
/// integer types (before type coercion) are widened to the wider one.
pub fn checked_expr(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    expr.transform_up(|e| {
        if let Some(arg) = float_round_arg(&e, schema) {
            return Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(RoundHalfEven {
                        signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
                    })),
                    vec![arg],
                ),
            )));
        }
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        let Some(checked_op) = CheckedOp::of(*op) else {
            return Ok(Transformed::no(e));
        };
        let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
            return Ok(Transformed::no(e));
        };
        let (Some(lw), Some(rw)) = (int_width(&lt), int_width(&rt)) else {
            return Ok(Transformed::no(e));
        };
        let ty = if lw >= rw { lt } else { rt };
        let widen = |operand: &Expr, width: u8| {
            if width == int_width(&ty).unwrap_or(width) {
                operand.clone()
            } else {
                operand
                    .clone()
                    .cast_to(&ty, schema)
                    .unwrap_or_else(|_| operand.clone())
            }
        };
        let args = vec![widen(left, lw), widen(right, rw)];
        let udf = CheckedArith {
            op: checked_op,
            signature: Signature::exact(vec![ty.clone(), ty], Volatility::Immutable),
        };
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(udf)), args),
        )))
    })
}

/// The argument of `round(double precision)` (one argument).
fn float_round_arg(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    let [arg] = f.args.as_slice() else {
        return None;
    };
    (f.name() == "round" && arg.get_type(schema).ok()? == DataType::Float64).then(|| arg.clone())
}

/// PostgreSQL's `round(double precision)`: the platform's `rint`, ties to even
/// (DataFusion's `round` rounds ties away from zero, which is right for numeric).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundHalfEven {
    signature: Signature,
}

impl ScalarUDFImpl for RoundHalfEven {
    fn name(&self) -> &str {
        "pg_round_float8"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Float64Array};
        use datafusion::arrow::datatypes::Float64Type;
        match args.args.as_slice() {
            [ColumnarValue::Scalar(ScalarValue::Float64(v))] => Ok(ColumnarValue::Scalar(
                ScalarValue::Float64(v.map(f64::round_ties_even)),
            )),
            [ColumnarValue::Array(a)] => {
                let rounded: Float64Array =
                    a.as_primitive::<Float64Type>().unary(f64::round_ties_even);
                Ok(ColumnarValue::Array(Arc::new(rounded)))
            }
            _ => Err(DataFusionError::Internal(
                "round(double precision) takes one double".into(),
            )),
        }
    }
}

fn int_width(ty: &DataType) -> Option<u8> {
    match ty {
        DataType::Int16 => Some(2),
        DataType::Int32 => Some(4),
        DataType::Int64 => Some(8),
        _ => None,
    }
}

/// The schema a node's expressions are evaluated against.
fn expression_schema(plan: &LogicalPlan) -> DFSchemaRef {
    let inputs = plan.inputs();
    if inputs.is_empty() {
        plan.schema().clone()
    } else {
        Arc::new(merge_schema(&inputs))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CheckedOp {
    Add,
    Sub,
    Mul,
}

impl CheckedOp {
    fn of(op: Operator) -> Option<CheckedOp> {
        match op {
            Operator::Plus => Some(CheckedOp::Add),
            Operator::Minus => Some(CheckedOp::Sub),
            Operator::Multiply => Some(CheckedOp::Mul),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CheckedOp::Add => "pg_int_add",
            CheckedOp::Sub => "pg_int_sub",
            CheckedOp::Mul => "pg_int_mul",
        }
    }
}

/// `a op b` on two integers of one type, failing with 22003 instead of wrapping.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArith {
    op: CheckedOp,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedArith {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::compute::kernels::numeric::{add, mul, sub};
        let [a, b] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.op.name()
            )));
        };
        let ty = a.data_type();
        let result = match self.op {
            CheckedOp::Add => apply(a, b, add),
            CheckedOp::Sub => apply(a, b, sub),
            CheckedOp::Mul => apply(a, b, mul),
        };
        result.map_err(|e| match e {
            DataFusionError::ArrowError(err, _)
                if matches!(*err, ArrowError::ArithmeticOverflow(_)) =>
            {
                let what = match ty {
                    DataType::Int16 => "smallint",
                    DataType::Int32 => "integer",
                    _ => "bigint",
                };
                DataFusionError::External(Box::new(Error::new(
                    sqlstate::NUMERIC_OUT_OF_RANGE,
                    format!("{what} out of range"),
                )))
            }
            other => other,
        })
    }
}
