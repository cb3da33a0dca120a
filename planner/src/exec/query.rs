//! Queries through DataFusion.
//!
//! A query is rewritten (views expanded into derived tables), planned by DataFusion's SQL
//! planner against a session whose tables read through the transaction, optimized,
//! executed as a stream, and converted batch by batch into rows of [`Datum`]s. Parameters
//! (`$1`) stay placeholders in the logical plan and are bound per execution.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, Fetch, Ident, LimitClause, Query, SelectItem, SetExpr, Statement, TableAlias,
    TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::StreamExt;
use txn::Txn;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::exec::names::{output_names, resolve_names};
use crate::exec::{Output, OutputColumn, Planner, RowStream};
use crate::numeric_scale::{expose_display_scales, Display};
use crate::types::{array_datum, datum_to_scalar, Datum, SqlType};

/// Plans a query: returns the session (to execute with) and the logical plan.
pub(crate) async fn plan(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    statement: Statement,
) -> Result<(SessionState, LogicalPlan)> {
    let mut statement = statement;
    expand_views(&mut statement, catalog)?;
    postgres_rewrites(&mut statement);
    let state = engine.query.session(catalog.clone(), txn.clone());
    let plan = state
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await?;
    let plan = crate::arith::narrow_literals(plan)?;
    Ok((state, crate::numeric_scale::rewrite(plan)?))
}

/// Parameter types of a plan, `$1` first; unknown ones are text.
pub(crate) fn param_types(plan: &LogicalPlan) -> Result<Vec<SqlType>> {
    let types = plan.get_parameter_types()?;
    let mut numbered: Vec<(usize, SqlType)> = Vec::new();
    for (name, ty) in types {
        let n: usize = name
            .trim_start_matches('$')
            .parse()
            .map_err(|_| Error::unsupported(format!("parameter {name}")))?;
        numbered.push((n, ty.map_or(SqlType::Text, |t| SqlType::from_arrow(&t))));
    }
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map_or(0, |(n, _)| *n);
    let mut out = vec![SqlType::Text; count];
    for (n, ty) in numbered {
        out[n - 1] = ty;
    }
    Ok(out)
}

/// Result columns of a planned query, named the PostgreSQL way (hidden display-scale
/// columns left out; numerics with per-value scales are unconstrained `numeric`).
pub(crate) fn columns(plan: &LogicalPlan, q: Option<&Query>) -> Vec<OutputColumn> {
    let schema = plan.schema();
    let display = Display::of(schema);
    let fields = &schema.fields()[..display.visible()];
    let planned: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
    let names = resolve_names(q.and_then(output_names), &planned);
    fields
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (f, name))| OutputColumn {
            name,
            ty: if display.per_value_scale(i) {
                SqlType::Numeric {
                    precision: None,
                    scale: None,
                }
            } else {
                SqlType::from_arrow(f.data_type())
            },
        })
        .collect()
}

/// Plans a query whose rows go to the client: with PostgreSQL's per-value numeric
/// display scales exposed (see [`crate::numeric_scale`]).
async fn plan_output(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    q: &Query,
) -> Result<(SessionState, LogicalPlan)> {
    let (state, plan) = plan(engine, txn, catalog, Statement::Query(Box::new(q.clone()))).await?;
    Ok((state, expose_display_scales(plan)))
}

pub(crate) async fn describe(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    q: &Query,
) -> Result<(Vec<SqlType>, Vec<OutputColumn>)> {
    let (_, plan) = plan_output(engine, txn, catalog, q).await?;
    Ok((param_types(&plan)?, columns(&plan, Some(q))))
}

pub(crate) async fn execute(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    q: &Query,
    params: &[Datum],
) -> Result<Output> {
    let (state, plan) = plan_output(engine, txn, catalog, q).await?;
    let columns = columns(&plan, Some(q));
    let rows = run(&state, plan, params).await?;
    Ok(Output::Rows {
        columns,
        rows,
        tag: "SELECT".into(),
    })
}

/// Binds parameters, optimizes, executes; streams rows.
pub(crate) async fn run(
    state: &SessionState,
    plan: LogicalPlan,
    params: &[Datum],
) -> Result<RowStream> {
    let display = Display::of(plan.schema());
    let plan = bind(plan, params)?;
    let optimized = state.optimize(&plan)?;
    let planned = crate::subquery::rewrite(optimized, state)?;
    let physical = state
        .query_planner()
        .create_physical_plan(&planned, state)
        .await?;
    let stream = execute_stream(physical, state.task_ctx())?;
    Ok(Box::pin(stream.map(move |batch| {
        let batch = batch?;
        batch_rows(&batch, &display)
    })))
}

/// Binds `$n` placeholders to values typed as the plan expects.
pub(crate) fn bind(plan: LogicalPlan, params: &[Datum]) -> Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan);
    }
    let types = param_types(&plan)?;
    let values = params
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ty = types.get(i).cloned().unwrap_or(SqlType::Text);
            let d = d.clone().coerce(&ty)?;
            Ok(datum_to_scalar(&d, &ty))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.with_param_values(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))?)
}

/// Converts a batch into rows of its visible columns.
fn batch_rows(batch: &RecordBatch, display: &Display) -> Result<Vec<Vec<Datum>>> {
    let columns = batch.columns();
    (0..batch.num_rows())
        .map(|row| Ok(display.row(|j| array_datum(&columns[j], row))?))
        .collect()
}

/// Collects a whole stream (for DML sources; bounded by the transaction's write limit).
pub(crate) async fn collect(mut rows: RowStream) -> Result<Vec<Vec<Datum>>> {
    let mut out = Vec::new();
    while let Some(chunk) = rows.next().await {
        out.extend(chunk?);
    }
    Ok(out)
}

/// Replaces references to views with their defining queries as derived tables.
fn expand_views(statement: &mut Statement, catalog: &Catalog) -> Result<()> {
    if catalog.views.is_empty() {
        return Ok(());
    }
    struct Expander<'a> {
        catalog: &'a Catalog,
        depth: usize,
        error: Option<Error>,
    }
    impl VisitorMut for Expander<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let Ok(table) = super::names::object_name(name) else {
                return ControlFlow::Continue(());
            };
            let Some(view) = self.catalog.views.get(&table) else {
                return ControlFlow::Continue(());
            };
            if self.depth > 32 {
                self.error = Some(Error::unsupported("views nested more than 32 deep"));
                return ControlFlow::Break(());
            }
            let mut query = match parse_query(&view.sql) {
                Ok(q) => q,
                Err(e) => {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
            };
            self.depth += 1;
            let _ = query.visit(self);
            self.depth -= 1;
            let alias = alias.clone().unwrap_or(TableAlias {
                explicit: false,
                name: Ident::new(table),
                columns: vec![],
                at: None,
            });
            let alias = if alias.columns.is_empty() && !view.columns.is_empty() {
                TableAlias {
                    columns: view
                        .columns
                        .iter()
                        .map(|c| TableAliasColumnDef {
                            name: Ident::with_quote('"', c.clone()),
                            data_type: None,
                        })
                        .collect(),
                    ..alias
                }
            } else {
                alias
            };
            *factor = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(query),
                alias: Some(alias),
                sample: None,
            };
            ControlFlow::Continue(())
        }
    }
    let mut expander = Expander {
        catalog,
        depth: 0,
        error: None,
    };
    let _ = statement.visit(&mut expander);
    match expander.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rewrites that give DataFusion PostgreSQL's semantics:
/// * a set-returning function aliased as a table (`generate_series(1, 3) AS g`) names its
///   column after the alias, so `SELECT g` works;
/// * duplicate output names (`SELECT 1 AS a, 2 AS a`, legal in PostgreSQL) get internal
///   aliases; the names clients see are computed from the original statement.
fn postgres_rewrites(statement: &mut Statement) {
    struct Rewriter;
    impl VisitorMut for Rewriter {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                args: Some(_),
                alias: Some(alias),
                ..
            } = factor
            {
                if alias.columns.is_empty() {
                    alias.columns.push(TableAliasColumnDef {
                        name: alias.name.clone(),
                        data_type: None,
                    });
                }
            }
            ControlFlow::Continue(())
        }

        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(n) = varchar_cast_length(expr) {
                // An explicit cast to varchar(n) truncates (DataFusion ignores n).
                let Expr::Cast { expr: inner, .. } = &*expr else {
                    return ControlFlow::Continue(());
                };
                let sql = format!("CAST(substr(CAST({inner} AS TEXT), 1, {n}) AS VARCHAR)");
                if let Ok(rewritten) = crate::exec::dml::parse_expr(&sql) {
                    *expr = rewritten;
                }
                return ControlFlow::Continue(());
            }
            let (left, op, subquery, all) = match expr {
                Expr::AllOp {
                    left,
                    compare_op,
                    right,
                } => (left, compare_op, right, true),
                Expr::AnyOp {
                    left,
                    compare_op,
                    right,
                    ..
                } => (left, compare_op, right, false),
                _ => return ControlFlow::Continue(()),
            };
            let Expr::Subquery(q) = subquery.as_ref() else {
                return ControlFlow::Continue(());
            };
            // PostgreSQL's ALL/ANY over a subquery, with its NULL semantics, as a
            // (possibly correlated) scalar subquery.
            let rows =
                |cond: &str| format!("EXISTS (SELECT 1 FROM ({q}) AS __sub (__v) WHERE {cond})");
            let cmp = format!("({left} {op} __v)");
            let sql = if all {
                format!(
                    "(CASE WHEN {} THEN false WHEN {} THEN NULL ELSE true END)",
                    rows(&format!("NOT {cmp}")),
                    rows(&format!("{cmp} IS NULL"))
                )
            } else {
                format!(
                    "(CASE WHEN {} THEN true WHEN {} THEN NULL ELSE false END)",
                    rows(&cmp),
                    rows(&format!("{cmp} IS NULL"))
                )
            };
            if let Ok(rewritten) = crate::exec::dml::parse_expr(&sql) {
                *expr = rewritten;
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            // FETCH FIRST n ROWS ONLY is LIMIT n.
            if let Some(Fetch {
                quantity: Some(n),
                percent: false,
                with_ties: false,
            }) = &query.fetch
            {
                let n = n.clone();
                match &mut query.limit_clause {
                    None => {
                        query.limit_clause = Some(LimitClause::LimitOffset {
                            limit: Some(n),
                            offset: None,
                            limit_by: vec![],
                        })
                    }
                    Some(LimitClause::LimitOffset {
                        limit: limit @ None,
                        ..
                    }) => *limit = Some(n),
                    Some(_) => return ControlFlow::Continue(()),
                }
                query.fetch = None;
            }
            if let SetExpr::Select(select) = query.body.as_mut() {
                merge_outer_using_columns(select);
                // `SELECT generate_series(a, b)` returns rows in PostgreSQL; DataFusion's
                // scalar generate_series returns one list: unnest it.
                for item in select.projection.iter_mut() {
                    let (expr, alias) = match item {
                        SelectItem::UnnamedExpr(e) => (e, None),
                        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                        _ => continue,
                    };
                    if !is_set_returning_call(expr) {
                        continue;
                    }
                    let Ok(unnested) = crate::exec::dml::parse_expr(&format!("unnest({expr})"))
                    else {
                        continue;
                    };
                    let alias = alias
                        .unwrap_or_else(|| Ident::with_quote('"', super::names::expr_name(expr)));
                    *item = SelectItem::ExprWithAlias {
                        expr: unnested,
                        alias,
                    };
                }
                let mut seen = std::collections::HashSet::new();
                for (i, item) in select.projection.iter_mut().enumerate() {
                    let (expr, name) = match item {
                        SelectItem::UnnamedExpr(e) => (e.clone(), super::names::expr_name(e)),
                        SelectItem::ExprWithAlias { expr, alias } => {
                            (expr.clone(), super::names::ident(alias))
                        }
                        _ => continue,
                    };
                    if !seen.insert(name.clone())
                        || (name == "?column?" && matches!(item, SelectItem::UnnamedExpr(_)))
                    {
                        *item = SelectItem::ExprWithAlias {
                            expr,
                            alias: Ident::with_quote('"', format!("{name}__{i}")),
                        };
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Rewriter);
}

/// `a RIGHT|FULL JOIN b USING (k)`: PostgreSQL's merged column `k` is
/// `COALESCE(a.k, b.k)`; DataFusion resolves `k` to `a.k` (NULL for rows only in b). The
/// unqualified `k` in the select list, WHERE, GROUP BY and HAVING is rewritten, for a
/// single join of two named relations (`*` keeps DataFusion's expansion).
fn merge_outer_using_columns(select: &mut datafusion::sql::sqlparser::ast::Select) {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, JoinConstraint, JoinOperator};
    let [from] = select.from.as_slice() else {
        return;
    };
    let [join] = from.joins.as_slice() else {
        return;
    };
    let (JoinOperator::FullOuter(JoinConstraint::Using(columns))
    | JoinOperator::RightOuter(JoinConstraint::Using(columns))
    | JoinOperator::Right(JoinConstraint::Using(columns))) = &join.join_operator
    else {
        return;
    };
    let qualifier = |t: &TableFactor| match t {
        TableFactor::Table { name, alias, .. } => Some(match alias {
            Some(a) => a.name.to_string(),
            None => name.to_string(),
        }),
        _ => None,
    };
    let (Some(left), Some(right)) = (qualifier(&from.relation), qualifier(&join.relation)) else {
        return;
    };
    let merged: Vec<String> = columns
        .iter()
        .filter_map(|c| {
            c.0.last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
        })
        .collect();
    struct Merge<'a> {
        merged: &'a [String],
        left: &'a str,
        right: &'a str,
    }
    impl VisitorMut for Merge<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(i) = e {
                let name = super::names::ident(i);
                if self.merged.contains(&name) {
                    let sql = format!("COALESCE({}.{i}, {}.{i})", self.left, self.right);
                    if let Ok(c) = crate::exec::dml::parse_expr(&sql) {
                        *e = c;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut merge = Merge {
        merged: &merged,
        left: &left,
        right: &right,
    };
    for item in select.projection.iter_mut() {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = super::names::expr_name(e);
                let mut rewritten = e.clone();
                let _ = rewritten.visit(&mut merge);
                if rewritten != *e {
                    *item = SelectItem::ExprWithAlias {
                        expr: rewritten,
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
            SelectItem::ExprWithAlias { expr, .. } => {
                let _ = expr.visit(&mut merge);
            }
            _ => {}
        }
    }
    if let Some(w) = &mut select.selection {
        let _ = w.visit(&mut merge);
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        for e in exprs {
            let _ = e.visit(&mut merge);
        }
    }
    if let Some(h) = &mut select.having {
        let _ = h.visit(&mut merge);
    }
}

/// `n` of a `CAST(… AS varchar(n))`.
fn varchar_cast_length(e: &Expr) -> Option<u64> {
    use datafusion::sql::sqlparser::ast::{CharacterLength, DataType};
    let Expr::Cast { data_type, .. } = e else {
        return None;
    };
    match data_type {
        DataType::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
            Some(*length)
        }
        _ => None,
    }
}

/// A call of a function that returns a set in PostgreSQL but a list in DataFusion.
fn is_set_returning_call(e: &Expr) -> bool {
    let Expr::Function(f) = e else {
        return false;
    };
    f.over.is_none()
        && f.name.0.len() == 1
        && f.name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series"))
}

/// Parses one query.
pub(crate) fn parse_query(sql: &str) -> Result<Query> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| Error::new(crate::error::sqlstate::SYNTAX_ERROR, e.to_string()))?;
    match statements.into_iter().next() {
        Some(Statement::Query(q)) => Ok(*q),
        _ => Err(Error::internal(format!("not a query: {sql}"))),
    }
}
