//! Subqueries DataFusion cannot decorrelate, evaluated per row.
//!
//! DataFusion turns most subqueries into joins during optimization. Some forms survive —
//! a scalar subquery correlated by an inequality (`(SELECT count(*) FROM t1 x WHERE
//! x.c > t1.c)`), `IN (SELECT …)` or `EXISTS` in a select list — and its physical planner
//! rejects them. PostgreSQL runs those as *subplans*, re-executed for each outer row; so do
//! we: after optimization, each surviving subquery expression becomes a call to a
//! [`SubqueryUdf`] whose arguments are the outer columns the subquery references. For each
//! distinct tuple of outer values the UDF substitutes the values into the subquery's plan,
//! executes it to completion and caches the answer.
//!
//! Semantics follow PostgreSQL: a scalar subquery yields NULL for no rows and fails with
//! 21000 for more than one; `x IN (subquery)` is true if some row equals x, else NULL if x
//! or some row is NULL, else false; `EXISTS` is whether any row exists.
//!
//! Caveat: the nested plan runs synchronously inside the outer plan's execution, on its
//! own thread and single-threaded runtime (so tasks it spawns cannot starve behind the
//! blocked outer worker); it costs one plan and one thread per distinct outer tuple.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Subquery, TypeSignature, Volatility,
};
use datafusion::physical_plan::collect;
use parking_lot::Mutex;

use crate::error::{sqlstate, Error};

/// Replaces the subquery expressions left in an optimized plan by per-row evaluators.
pub fn rewrite(plan: LogicalPlan, state: &SessionState) -> DfResult<LogicalPlan> {
    let mut single = state.clone();
    single
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    let state = Arc::new(single);
    plan.transform_up(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| {
                let name = e.schema_name().to_string();
                let (kind, subquery, mut args) = match e {
                    Expr::ScalarSubquery(sq) => (Kind::Scalar, sq, Vec::new()),
                    Expr::InSubquery(InSubquery {
                        expr,
                        subquery,
                        negated,
                    }) => (Kind::In { negated }, subquery, vec![*expr]),
                    Expr::Exists(Exists { subquery, negated }) => {
                        (Kind::Exists { negated }, subquery, Vec::new())
                    }
                    other => return Ok(Transformed::no(other)),
                };
                let outer: Vec<Column> = subquery
                    .outer_ref_columns
                    .iter()
                    .filter_map(|e| match e {
                        Expr::OuterReferenceColumn(_, c) => Some(c.clone()),
                        _ => None,
                    })
                    .collect();
                args.extend(outer.iter().cloned().map(Expr::Column));
                let output = match kind {
                    Kind::Scalar => subquery.subquery.schema().field(0).data_type().clone(),
                    _ => DataType::Boolean,
                };
                let udf = SubqueryUdf {
                    id: next_id(),
                    name,
                    kind,
                    subquery,
                    outer,
                    output,
                    state: state.clone(),
                    signature: Signature::one_of(
                        vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                        Volatility::Volatile,
                    ),
                    cache: Mutex::new(HashMap::new()),
                };
                let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(udf)),
                    args,
                ));
                Ok(Transformed::yes(call))
            })
        })
    })
    .map(|t| t.data)
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Scalar,
    In { negated: bool },
    Exists { negated: bool },
}

struct SubqueryUdf {
    id: u64,
    /// The replaced expression's name, kept so the plan's schema does not change.
    name: String,
    kind: Kind,
    subquery: Subquery,
    outer: Vec<Column>,
    output: DataType,
    state: Arc<SessionState>,
    signature: Signature,
    /// Results by outer values (the IN operand is looked up in the cached rows).
    cache: Mutex<HashMap<Vec<ScalarValue>, Arc<Vec<RecordBatch>>>>,
}

impl std::fmt::Debug for SubqueryUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubqueryUdf({})", self.name)
    }
}

impl PartialEq for SubqueryUdf {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for SubqueryUdf {}

impl Hash for SubqueryUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

fn ext(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl SubqueryUdf {
    /// The subquery's rows for one tuple of outer values.
    fn rows(&self, outer: Vec<ScalarValue>) -> DfResult<Arc<Vec<RecordBatch>>> {
        if let Some(hit) = self.cache.lock().get(&outer) {
            return Ok(hit.clone());
        }
        let values: HashMap<&Column, &ScalarValue> = self.outer.iter().zip(&outer).collect();
        let plan = LogicalPlan::clone(&self.subquery.subquery)
            .transform_up_with_subqueries(|node| {
                node.map_expressions(|e| {
                    e.transform(|e| match e {
                        Expr::OuterReferenceColumn(field, col) => match values.get(&col) {
                            Some(v) => {
                                let v = v.cast_to(field.data_type())?;
                                Ok(Transformed::yes(Expr::Literal(v, None)))
                            }
                            None => Ok(Transformed::no(Expr::OuterReferenceColumn(field, col))),
                        },
                        other => Ok(Transformed::no(other)),
                    })
                })
            })?
            .data;
        // The outer plan runs on the runtime's workers, and this call blocks one of them.
        // The nested plan may spawn tasks (buffered sorts); were it driven on a blocked
        // worker, those tasks could wait forever for a free worker. It runs instead on a
        // thread of its own with a private single-threaded runtime.
        let state = self.state.clone();
        let batches = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    runtime.block_on(async move {
                        let physical = state.create_physical_plan(&plan).await?;
                        collect(physical, state.task_ctx()).await
                    })
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(DataFusionError::Execution(
                        "subquery evaluation panicked".into(),
                    ))
                })
        })?;
        let batches = Arc::new(batches);
        self.cache.lock().insert(outer, batches.clone());
        Ok(batches)
    }

    fn answer(
        &self,
        operand: Option<ScalarValue>,
        batches: &[RecordBatch],
    ) -> DfResult<ScalarValue> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        match self.kind {
            Kind::Exists { negated } => Ok(ScalarValue::Boolean(Some((rows > 0) != negated))),
            Kind::Scalar => {
                if rows > 1 {
                    return Err(ext(Error::new(
                        sqlstate::CARDINALITY_VIOLATION,
                        "more than one row returned by a subquery used as an expression",
                    )));
                }
                match batches.iter().find(|b| b.num_rows() > 0) {
                    Some(b) => ScalarValue::try_from_array(b.column(0), 0),
                    None => ScalarValue::try_from(&self.output),
                }
            }
            Kind::In { negated } => {
                let operand = operand.expect("IN has an operand");
                if rows == 0 {
                    return Ok(ScalarValue::Boolean(Some(negated)));
                }
                if operand.is_null() {
                    return Ok(ScalarValue::Boolean(None));
                }
                let mut saw_null = false;
                for b in batches {
                    let col: &ArrayRef = b.column(0);
                    for i in 0..col.len() {
                        let v = ScalarValue::try_from_array(col, i)?;
                        if v.is_null() {
                            saw_null = true;
                            continue;
                        }
                        let v = if v.data_type() == operand.data_type() {
                            v
                        } else {
                            match v.cast_to(&operand.data_type()) {
                                Ok(v) => v,
                                Err(_) => continue,
                            }
                        };
                        if v == operand {
                            return Ok(ScalarValue::Boolean(Some(!negated)));
                        }
                    }
                }
                if saw_null {
                    Ok(ScalarValue::Boolean(None))
                } else {
                    Ok(ScalarValue::Boolean(Some(negated)))
                }
            }
        }
    }
}

impl ScalarUDFImpl for SubqueryUdf {
    fn name(&self) -> &str {
        "__subquery"
    }

    fn display_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn schema_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<DfResult<_>>()?;
        let has_operand = matches!(self.kind, Kind::In { .. });
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let mut values = Vec::with_capacity(arrays.len());
            for a in &arrays {
                values.push(ScalarValue::try_from_array(a, row)?);
            }
            let operand = has_operand.then(|| values.remove(0));
            let batches = self.rows(values)?;
            out.push(self.answer(operand, &batches)?);
        }
        if out.is_empty() {
            let empty: ArrayRef = match self.output {
                DataType::Boolean => Arc::new(BooleanArray::from(Vec::<Option<bool>>::new())),
                ref t => datafusion::arrow::array::new_empty_array(t),
            };
            return Ok(ColumnarValue::Array(empty));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}
