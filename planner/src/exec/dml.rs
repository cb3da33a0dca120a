//! INSERT, UPDATE and DELETE, planned by our own code.
//!
//! DataFusion's own DML (`delete_from`/`update` on a TableProvider) hands the provider no
//! filter when WHERE holds an IN/EXISTS subquery and so changes every row
//! (apache/datafusion#24654). We never use it. Instead the rows a statement changes come
//! from a DataFusion **query** we generate — `SELECT t.*, <SET expressions> FROM
//! __dml__t AS t [FROM/USING …] WHERE <condition>` — whose semantics, subqueries included,
//! are those of any SELECT. The hidden key column tells us which row each result is. We
//! then lock each row (wound-wait), re-read it, apply the change and keep every index
//! consistent through [`crate::table`].
//!
//! Constraints are checked per row: types (assignment casts), NOT NULL, CHECK (compiled
//! once per statement), primary key and UNIQUE (under the locks). RETURNING is evaluated
//! over the affected rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, Insert, OnConflictAction, OnInsert, Query, SelectItem,
    SetExpr, Statement, TableObject, TableWithJoins, UpdateTableFromKind, With,
};
use futures::stream;
use txn::Txn;

use crate::catalog::{Catalog, TableDef};
use crate::context::DML_PREFIX;
use crate::error::{sqlstate, Error, Result};
use crate::exec::eval::{Relation, RowEvaluator, Simple};
use crate::exec::names::{expr_name, ident, object_name};
use crate::exec::{query, table_name_of, Output, OutputColumn, Planner};
use crate::provider::KEY_COLUMN;
use crate::table::{decode_stored_row, delete_row, insert_row, update_row, InsertOutcome};
use crate::types::{Datum, SqlType};

/// Parameter types and RETURNING columns of a DML statement.
pub(crate) async fn describe(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    statement: &Statement,
    with: Option<&With>,
) -> Result<(Vec<SqlType>, Option<Vec<OutputColumn>>)> {
    let (table, alias, returning) = target(catalog, statement)?;
    let mut types: Vec<SqlType> = Vec::new();
    match statement {
        Statement::Insert(ins) => {
            let columns = insert_columns(&table, ins)?;
            if let Some(SetExpr::Values(values)) = ins.source.as_ref().map(|q| q.body.as_ref()) {
                for row in &values.rows {
                    for (i, e) in row.content.iter().enumerate() {
                        note_param(&mut types, e, columns.get(i).map(|&c| &table.columns[c].ty));
                    }
                }
            } else if let Some(source) = &ins.source {
                let source = with_cte(source, with);
                let (_, plan) = query::plan(engine, txn, catalog, Statement::Query(source)).await?;
                merge(&mut types, query::param_types(&plan)?);
            }
        }
        Statement::Update(_) | Statement::Delete(_) => {
            let (sql, assigned) = source_query(&table, &alias, statement, with)?;
            let parsed = query::parse_query(&sql)?;
            let (_, plan) =
                query::plan(engine, txn, catalog, Statement::Query(Box::new(parsed))).await?;
            merge(&mut types, query::param_types(&plan)?);
            for (col, e) in &assigned {
                note_param(&mut types, e, Some(&table.columns[*col].ty));
            }
        }
        _ => {}
    }
    let columns = match returning {
        Some(items) => {
            let state = engine.query.session(catalog.clone(), txn.clone());
            Some(returning_columns(&state, &table, &alias, &items)?.1)
        }
        None => None,
    };
    Ok((types, columns))
}

fn note_param(types: &mut Vec<SqlType>, e: &Expr, ty: Option<&SqlType>) {
    if let Some(Simple::Param(n)) = Simple::compile(e, &|_| None) {
        if types.len() <= n {
            types.resize(n + 1, SqlType::Text);
        }
        if let Some(ty) = ty {
            types[n] = ty.clone();
        }
    }
}

fn merge(types: &mut Vec<SqlType>, more: Vec<SqlType>) {
    if types.len() < more.len() {
        types.resize(more.len(), SqlType::Text);
    }
    for (i, t) in more.into_iter().enumerate() {
        if t != SqlType::Text {
            types[i] = t;
        }
    }
}

type Target = (Arc<TableDef>, String, Option<Vec<SelectItem>>);

fn target(catalog: &Catalog, statement: &Statement) -> Result<Target> {
    let (name, alias, returning) = match statement {
        Statement::Insert(ins) => {
            let TableObject::TableName(name) = &ins.table else {
                return Err(Error::unsupported("INSERT into a table function"));
            };
            let alias = ins.table_alias.as_ref().map(|a| ident(&a.alias));
            (object_name(name)?, alias, ins.returning.clone())
        }
        Statement::Update(up) => {
            let (name, alias) = table_name_of(&up.table)?;
            (name, alias, up.returning.clone())
        }
        Statement::Delete(del) => {
            let tables = match &del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let first: &TableWithJoins = tables
                .first()
                .ok_or_else(|| Error::new(sqlstate::SYNTAX_ERROR, "DELETE needs a table"))?;
            if tables.len() > 1 {
                return Err(Error::unsupported("DELETE from several tables"));
            }
            let (name, alias) = table_name_of(first)?;
            (name, alias, del.returning.clone())
        }
        _ => return Err(Error::internal("not DML")),
    };
    if catalog.views.contains_key(&name) {
        return Err(Error::new(
            sqlstate::WRONG_OBJECT_TYPE,
            format!("cannot change view \"{name}\""),
        ));
    }
    let table = catalog.table(&name)?.clone();
    let alias = alias.unwrap_or_else(|| table.name.clone());
    Ok((table, alias, returning))
}

pub(crate) async fn execute(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    statement: &Statement,
    params: &[Datum],
    with: Option<&With>,
) -> Result<Output> {
    let (table, alias, returning) = target(catalog, statement)?;
    let state = engine.query.session(catalog.clone(), txn.clone());
    let mut ctx = WriteContext::new(&state, &table)?;
    let (verb, affected) = match statement {
        Statement::Insert(ins) => {
            let mut ins = ins.clone();
            if let Some(source) = &ins.source {
                ins.source = Some(with_cte(source, with));
            }
            let n = insert(engine, txn, catalog, &table, &alias, &ins, params, &mut ctx).await?;
            ("INSERT 0", n)
        }
        Statement::Update(_) => (
            "UPDATE",
            update(
                engine, txn, catalog, &table, &alias, statement, params, with, &mut ctx,
            )
            .await?,
        ),
        Statement::Delete(_) => (
            "DELETE",
            delete(
                engine, txn, catalog, &table, &alias, statement, params, with, &mut ctx,
            )
            .await?,
        ),
        _ => return Err(Error::internal("not DML")),
    };
    txn.check_active()?;
    match returning {
        None => Ok(Output::Command(format!("{verb} {affected}"))),
        Some(items) => {
            let (exprs, columns) = returning_columns(&state, &table, &alias, &items)?;
            let evaluator = RowEvaluator::new(
                &state,
                &exprs,
                &[Relation {
                    qualifier: alias.clone(),
                    table: &table,
                }],
            )?;
            let rows = evaluator.eval(&ctx.returned)?;
            Ok(Output::Rows {
                columns,
                rows: Box::pin(stream::iter(vec![Ok(rows)])),
                tag: verb.to_string(),
            })
        }
    }
}

/// Per-statement state: CHECK evaluator and the rows to return.
pub(crate) struct WriteContext {
    checks: Option<RowEvaluator>,
    returned: Vec<Vec<Datum>>,
}

impl WriteContext {
    pub(crate) fn new(
        state: &datafusion::execution::session_state::SessionState,
        table: &TableDef,
    ) -> Result<Self> {
        let checks = if table.checks.is_empty() {
            None
        } else {
            let exprs = table
                .checks
                .iter()
                .map(|c| parse_expr(&c.expr))
                .collect::<Result<Vec<_>>>()?;
            Some(RowEvaluator::new(
                state,
                &exprs,
                &[Relation {
                    qualifier: table.name.clone(),
                    table,
                }],
            )?)
        };
        Ok(WriteContext {
            checks,
            returned: Vec::new(),
        })
    }

    /// NOT NULL and CHECK constraints of a new row version.
    pub(crate) fn check(&self, table: &TableDef, row: &[Datum]) -> Result<()> {
        for (col, value) in table.columns.iter().zip(row) {
            if !col.nullable && value.is_null() {
                return Err(Error::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                        col.name, table.name
                    ),
                ));
            }
        }
        if let Some(checks) = &self.checks {
            let results = checks.eval(&[row.to_vec()])?;
            for (check, result) in table.checks.iter().zip(&results[0]) {
                if matches!(result, Datum::Bool(false)) {
                    return Err(Error::new(
                        sqlstate::CHECK_VIOLATION,
                        format!(
                            "new row for relation \"{}\" violates check constraint \"{}\"",
                            table.name, check.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An INSERT source with the statement's CTEs attached.
fn with_cte(source: &Query, with: Option<&With>) -> Box<Query> {
    let mut source = source.clone();
    if let (Some(w), None) = (with, &source.with) {
        source.with = Some(w.clone());
    }
    Box::new(source)
}

/// Parses one SQL expression (stored defaults and checks).
pub(crate) fn parse_expr(sql: &str) -> Result<Expr> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::internal(format!("stored expression {sql:?}: {e}")))
}

fn insert_columns(table: &TableDef, ins: &Insert) -> Result<Vec<usize>> {
    if ins.columns.is_empty() {
        return Ok((0..table.columns.len()).collect());
    }
    let mut seen = HashSet::new();
    ins.columns
        .iter()
        .map(|c| {
            let name = object_name(c)?;
            let pos = table.column(&name)?;
            if !seen.insert(pos) {
                return Err(Error::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" specified more than once"),
                ));
            }
            Ok(pos)
        })
        .collect()
}

fn is_default_marker(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Source rows of an INSERT: Some(value) per target column, None = DEFAULT.
async fn insert_source(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    ins: &Insert,
    width: usize,
    params: &[Datum],
) -> Result<Vec<Vec<Option<Datum>>>> {
    let Some(source) = &ins.source else {
        return Ok(vec![vec![None; width]]);
    };
    let simple_values = match source.body.as_ref() {
        SetExpr::Values(values)
            if source.order_by.is_none()
                && source.limit_clause.is_none()
                && source.with.is_none() =>
        {
            Some(values)
        }
        _ => None,
    };
    let rows: Vec<Vec<Option<Datum>>> = if let Some(values) = simple_values {
        let mut rows = Vec::with_capacity(values.rows.len());
        let state = engine.query.session(catalog.clone(), txn.clone());
        for row in &values.rows {
            let row = &row.content;
            let mut out = Vec::with_capacity(row.len());
            for e in row {
                if is_default_marker(e) {
                    out.push(None);
                } else if let Some(simple) = Simple::compile(e, &|_| None) {
                    out.push(Some(simple.eval(params, &[])?));
                } else {
                    let evaluator = RowEvaluator::new(&state, std::slice::from_ref(e), &[])?;
                    let value = evaluator.eval(&[vec![]])?.remove(0).remove(0);
                    out.push(Some(value));
                }
            }
            rows.push(out);
        }
        rows
    } else {
        let (state, plan) =
            query::plan(engine, txn, catalog, Statement::Query(source.clone())).await?;
        let rows = query::collect(query::run(&state, plan, params).await?).await?;
        rows.into_iter()
            .map(|r| r.into_iter().map(Some).collect())
            .collect()
    };
    for row in &rows {
        if row.len() > width {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "INSERT has more expressions than target columns",
            ));
        }
        if row.len() < width {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "INSERT has more target columns than expressions",
            ));
        }
    }
    Ok(rows)
}

/// Fills a full row from the provided values and column defaults.
pub(crate) async fn complete_row(
    engine: &Planner,
    txn: &Arc<Txn>,
    state: Option<&datafusion::execution::session_state::SessionState>,
    table: &TableDef,
    columns: &[usize],
    values: Vec<Option<Datum>>,
) -> Result<Vec<Datum>> {
    let mut row: Vec<Option<Datum>> = vec![None; table.columns.len()];
    for (&col, value) in columns.iter().zip(values) {
        if let Some(v) = value {
            let def = &table.columns[col];
            if def.identity_always {
                return Err(Error::new(
                    "428C9",
                    format!(
                        "cannot insert a non-DEFAULT value into column \"{}\"",
                        def.name
                    ),
                )
                .with_detail(format!(
                    "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
                    def.name
                )));
            }
            row[col] = Some(v.coerce(&def.ty).map_err(|e| e.with_column(&def.name))?);
        }
    }
    let mut out = Vec::with_capacity(row.len());
    for (col, value) in row.into_iter().enumerate() {
        let value = match value {
            Some(v) => v,
            None => column_default(engine, txn, state, table, col).await?,
        };
        out.push(value);
    }
    Ok(out)
}

/// A new hidden row id for a table without a primary key (None for other tables).
pub(crate) async fn next_rowid(engine: &Planner, table: &TableDef) -> Result<Option<i64>> {
    if !table.has_hidden_rowid() {
        return Ok(None);
    }
    Ok(Some(
        engine
            .sequences
            .next(&engine.txns, table.id, "__rowid")
            .await?,
    ))
}

/// The value a column gets when none is given: its sequence, its DEFAULT, or NULL.
pub(crate) async fn column_default(
    engine: &Planner,
    txn: &Arc<Txn>,
    state: Option<&datafusion::execution::session_state::SessionState>,
    table: &TableDef,
    col: usize,
) -> Result<Datum> {
    let def = &table.columns[col];
    if def.sequence {
        return Ok(Datum::Int8(
            engine
                .sequences
                .next(&engine.txns, table.id, &def.name)
                .await?,
        )
        .coerce(&def.ty)?);
    }
    let Some(sql) = &def.default else {
        return Ok(Datum::Null);
    };
    let e = parse_expr(sql)?;
    let v = match Simple::compile(&e, &|_| None) {
        Some(simple) => simple.eval(&[], &[])?,
        None => {
            let state = match state {
                Some(s) => s.clone(),
                None => engine
                    .query
                    .session(Arc::new(Catalog::default()), txn.clone()),
            };
            RowEvaluator::new(&state, &[e], &[])?
                .eval(&[vec![]])?
                .remove(0)
                .remove(0)
        }
    };
    Ok(v.coerce(&def.ty).map_err(|e| e.with_column(&def.name))?)
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    table: &Arc<TableDef>,
    alias: &str,
    ins: &Insert,
    params: &[Datum],
    ctx: &mut WriteContext,
) -> Result<u64> {
    let columns = insert_columns(table, ins)?;
    let source = insert_source(engine, txn, catalog, ins, columns.len(), params).await?;
    let state = engine.query.session(catalog.clone(), txn.clone());
    let on_conflict = match &ins.on {
        None => None,
        Some(OnInsert::OnConflict(c)) => Some(c),
        Some(_) => return Err(Error::unsupported("ON DUPLICATE KEY UPDATE")),
    };
    let upsert = match on_conflict.map(|c| &c.action) {
        Some(OnConflictAction::DoUpdate(up)) => {
            let mut exprs = Vec::new();
            let mut targets = Vec::new();
            for a in &up.assignments {
                for col in assignment_columns(table, &a.target)? {
                    targets.push(col);
                    exprs.push(a.value.clone());
                }
            }
            if let Some(w) = &up.selection {
                exprs.push(w.clone());
            }
            let evaluator = RowEvaluator::new(
                &state,
                &exprs,
                &[
                    Relation {
                        qualifier: alias.to_string(),
                        table,
                    },
                    Relation {
                        qualifier: "excluded".into(),
                        table,
                    },
                ],
            )?;
            Some((evaluator, targets, up.selection.is_some()))
        }
        _ => None,
    };
    let mut count = 0;
    // None: ON CONFLICT without a target (any unique constraint).
    let arbiters = on_conflict
        .and_then(|c| c.conflict_target.as_ref())
        .map(|target| conflict_constraints(table, target))
        .transpose()?;
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    for values in source {
        let row = complete_row(engine, txn, Some(&state), table, &columns, values).await?;
        ctx.check(table, &row)?;
        let rowid = next_rowid(engine, table).await?;
        match insert_row(txn, table, &row, rowid).await? {
            InsertOutcome::Inserted => {
                count += 1;
                touched.insert(crate::table::row_key(table, &row, rowid));
                ctx.returned.push(row);
            }
            InsertOutcome::Conflict {
                existing_key,
                constraint,
                detail,
            } => {
                let arbiter = on_conflict.is_some()
                    && arbiters.as_ref().is_none_or(|a| a.contains(&constraint));
                if !arbiter {
                    return Err(Error::new(
                        sqlstate::UNIQUE_VIOLATION,
                        format!("duplicate key value violates unique constraint \"{constraint}\""),
                    )
                    .with_detail(detail));
                }
                let Some((evaluator, targets, has_where)) = &upsert else {
                    continue; // DO NOTHING
                };
                if !touched.insert(existing_key.clone()) {
                    return Err(Error::new(
                        sqlstate::CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    )
                    .with_detail("Ensure that no rows proposed for insertion within the same command have duplicate constrained values."));
                }
                let stored = txn
                    .get_for_update(&existing_key)
                    .await?
                    .ok_or_else(|| Error::internal("conflicting row vanished"))?;
                let old = decode_stored_row(table, &stored)?;
                let mut input = old.clone();
                input.extend(row.iter().cloned());
                let mut results = evaluator.eval(&[input])?.remove(0);
                if *has_where {
                    let cond = results.pop().expect("where result");
                    if !matches!(cond, Datum::Bool(true)) {
                        continue;
                    }
                }
                let mut new = old.clone();
                for (&col, value) in targets.iter().zip(results) {
                    let def = &table.columns[col];
                    new[col] = value
                        .coerce(&def.ty)
                        .map_err(|e| e.with_column(&def.name))?;
                }
                ctx.check(table, &new)?;
                update_row(txn, table, &existing_key, &old, &new).await?;
                count += 1;
                ctx.returned.push(new);
            }
        }
    }
    Ok(count)
}

/// The unique constraints (primary key or unique index names) an ON CONFLICT target
/// designates; the target must name at least one (PostgreSQL 42P10 / 42704). Resolved
/// once per statement; a conflict on any other constraint is still a 23505.
fn conflict_constraints(
    table: &TableDef,
    target: &datafusion::sql::sqlparser::ast::ConflictTarget,
) -> Result<HashSet<String>> {
    use datafusion::sql::sqlparser::ast::ConflictTarget;
    let mut unique: Vec<(&str, Vec<usize>)> = table
        .indexes
        .iter()
        .filter(|i| i.unique)
        .map(|i| (i.name.as_str(), i.columns.clone()))
        .collect();
    if !table.primary_key.is_empty() {
        unique.push((table.primary_key_name.as_str(), table.primary_key.clone()));
    }
    for (_, columns) in &mut unique {
        columns.sort_unstable();
    }
    let found: HashSet<String> = match target {
        ConflictTarget::Columns(cols) => {
            let mut wanted: Vec<usize> = cols
                .iter()
                .map(|c| table.column(&ident(c)))
                .collect::<Result<_>>()?;
            wanted.sort_unstable();
            unique
                .into_iter()
                .filter(|(_, c)| *c == wanted)
                .map(|(n, _)| n.to_string())
                .collect()
        }
        ConflictTarget::OnConstraint(name) => {
            let name = object_name(name)?;
            if !unique.iter().any(|(n, _)| *n == name) {
                return Err(Error::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    ),
                ));
            }
            HashSet::from([name])
        }
    };
    if found.is_empty() {
        return Err(Error::new(
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        ));
    }
    Ok(found)
}

fn assignment_columns(table: &TableDef, target: &AssignmentTarget) -> Result<Vec<usize>> {
    match target {
        AssignmentTarget::ColumnName(name) => {
            let col = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(ident)
                .ok_or_else(|| Error::unsupported("this assignment target"))?;
            Ok(vec![table.column(&col)?])
        }
        AssignmentTarget::Tuple(_) => Err(Error::unsupported("multiple-column assignment")),
    }
}

/// The source query of an UPDATE or DELETE, and the assigned (column, expression) pairs.
fn source_query(
    table: &TableDef,
    alias: &str,
    statement: &Statement,
    with: Option<&With>,
) -> Result<(String, Vec<(usize, Expr)>)> {
    let mut assigned = Vec::new();
    let (extra_from, selection) = match statement {
        Statement::Update(up) => {
            for a in &up.assignments {
                for col in assignment_columns(table, &a.target)? {
                    if assigned.iter().any(|(c, _)| *c == col) {
                        return Err(Error::new(
                            sqlstate::SYNTAX_ERROR,
                            format!(
                                "multiple assignments to same column \"{}\"",
                                table.columns[col].name
                            ),
                        ));
                    }
                    assigned.push((col, a.value.clone()));
                }
            }
            let from = match &up.from {
                Some(UpdateTableFromKind::AfterSet(t))
                | Some(UpdateTableFromKind::BeforeSet(t)) => t.clone(),
                None => Vec::new(),
            };
            (from, up.selection.clone())
        }
        Statement::Delete(del) => (del.using.clone().unwrap_or_default(), del.selection.clone()),
        _ => return Err(Error::internal("not UPDATE/DELETE")),
    };
    let mut sql = match with {
        Some(w) => format!("{w} SELECT \"{alias}\".*"),
        None => format!("SELECT \"{alias}\".*"),
    };
    for (_, e) in &assigned {
        sql.push_str(&format!(", {e}"));
    }
    sql.push_str(&format!(
        " FROM \"{DML_PREFIX}{}\" AS \"{alias}\"",
        table.name
    ));
    for t in &extra_from {
        sql.push_str(&format!(", {t}"));
    }
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    Ok((sql, assigned))
}

/// Runs the source query: (row key, stored row, assigned values) per target row, deduplicated.
async fn source_rows(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    table: &TableDef,
    sql: &str,
    params: &[Datum],
) -> Result<Vec<(Vec<u8>, Vec<Datum>)>> {
    let q = query::parse_query(sql)?;
    let (state, plan) = query::plan(engine, txn, catalog, Statement::Query(Box::new(q))).await?;
    debug_assert_eq!(plan.schema().field(0).name(), KEY_COLUMN);
    let rows = query::collect(query::run(&state, plan, params).await?).await?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        let Datum::Bytea(key) = row.remove(0) else {
            return Err(Error::internal("row key column missing"));
        };
        if seen.insert(key.clone()) {
            // Drop the row's own columns; keep the assigned values.
            let assigned = row.split_off(table.columns.len());
            out.push((key, assigned));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn update(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    table: &Arc<TableDef>,
    alias: &str,
    statement: &Statement,
    params: &[Datum],
    with: Option<&With>,
    ctx: &mut WriteContext,
) -> Result<u64> {
    let (sql, assigned) = source_query(table, alias, statement, with)?;
    let rows = source_rows(engine, txn, catalog, table, &sql, params).await?;
    let mut count = 0;
    for (key, values) in rows {
        let Some(stored) = txn.get_for_update(&key).await? else {
            continue;
        };
        let old = decode_stored_row(table, &stored)?;
        let mut new = old.clone();
        for ((col, _), value) in assigned.iter().zip(values) {
            let def = &table.columns[*col];
            if def.identity_always {
                return Err(Error::new(
                    "428C9",
                    format!("column \"{}\" can only be updated to DEFAULT", def.name),
                ));
            }
            new[*col] = value
                .coerce(&def.ty)
                .map_err(|e| e.with_column(&def.name))?;
        }
        ctx.check(table, &new)?;
        update_row(txn, table, &key, &old, &new).await?;
        count += 1;
        ctx.returned.push(new);
    }
    Ok(count)
}

#[allow(clippy::too_many_arguments)]
async fn delete(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    table: &Arc<TableDef>,
    alias: &str,
    statement: &Statement,
    params: &[Datum],
    with: Option<&With>,
    ctx: &mut WriteContext,
) -> Result<u64> {
    let (sql, _) = source_query(table, alias, statement, with)?;
    let rows = source_rows(engine, txn, catalog, table, &sql, params).await?;
    let mut count = 0;
    for (key, _) in rows {
        let Some(stored) = txn.get_for_update(&key).await? else {
            continue;
        };
        let old = decode_stored_row(table, &stored)?;
        delete_row(txn, table, &key, &old).await?;
        count += 1;
        ctx.returned.push(old);
    }
    Ok(count)
}

/// RETURNING items as expressions, with their output columns.
fn returning_columns(
    state: &datafusion::execution::session_state::SessionState,
    table: &TableDef,
    alias: &str,
    items: &[SelectItem],
) -> Result<(Vec<Expr>, Vec<OutputColumn>)> {
    let mut exprs = Vec::new();
    let mut names = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => {
                names.push(expr_name(e));
                exprs.push(e.clone());
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                names.push(ident(alias));
                exprs.push(expr.clone());
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for c in &table.columns {
                    names.push(c.name.clone());
                    exprs.push(Expr::Identifier(
                        datafusion::sql::sqlparser::ast::Ident::with_quote('"', c.name.clone()),
                    ));
                }
            }
            _ => return Err(Error::unsupported("this RETURNING item")),
        }
    }
    let evaluator = RowEvaluator::new(
        state,
        &exprs,
        &[Relation {
            qualifier: alias.to_string(),
            table,
        }],
    )?;
    let types = evaluator.output_types()?;
    let columns = names
        .into_iter()
        .zip(types)
        .map(|(name, ty)| OutputColumn { name, ty })
        .collect();
    Ok((exprs, columns))
}
