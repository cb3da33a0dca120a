//! DDL: catalog changes inside the statement's transaction.
//!
//! Every DDL statement first locks and bumps the catalog version ([`CatalogWriter::begin`]),
//! so DDL statements serialize with each other and concurrent transactions that planned
//! against the old catalog fail validation. Dropping a table deletes its rows and index
//! entries in the same transaction; adding an index back-fills it from the rows.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, ColumnOption, CreateIndex, CreateTable, CreateView, Expr, ObjectType,
    RenameTableNameKind, Statement, TableConstraint,
};
use txn::Txn;

use crate::catalog::{Catalog, CatalogWriter, CheckDef, ColumnDef, IndexDef, TableDef, ViewDef};
use crate::error::{sqlstate, Error, Result};
use crate::exec::names::{ident, object_name};
use crate::exec::{query, Output, Planner};
use crate::table::{backfill_index, delete_prefix};
use crate::types::SqlType;

pub(crate) async fn execute(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    statement: &Statement,
) -> Result<Output> {
    match statement {
        Statement::CreateTable(ct) => create_table(engine, txn, catalog, ct).await,
        Statement::CreateIndex(ci) => create_index(txn, catalog, ci).await,
        Statement::CreateView(cv) => create_view(engine, txn, catalog, cv).await,
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            drop(
                engine,
                txn,
                catalog,
                *object_type,
                *if_exists,
                *cascade,
                names,
            )
            .await
        }
        Statement::Truncate(t) => {
            let writer = CatalogWriter::begin(txn).await?;
            let _ = &writer;
            for target in &t.table_names {
                let table = catalog.table(&object_name(&target.name)?)?;
                delete_prefix(txn, &table.index_prefix(crate::catalog::PRIMARY_INDEX)).await?;
                for index in &table.indexes {
                    delete_prefix(txn, &table.index_prefix(index.id)).await?;
                }
            }
            Ok(Output::Command("TRUNCATE TABLE".into()))
        }
        Statement::AlterTable(at) => alter_table(engine, txn, catalog, at).await,
        _ => Err(Error::unsupported(super::statement_name(statement))),
    }
}

fn already_exists(kind: &str, name: &str) -> Error {
    let code = if kind == "relation" {
        sqlstate::DUPLICATE_TABLE
    } else {
        sqlstate::DUPLICATE_OBJECT
    };
    Error::new(code, format!("{kind} \"{name}\" already exists"))
}

fn column_def(
    c: &datafusion::sql::sqlparser::ast::ColumnDef,
) -> Result<(ColumnDef, bool, bool, Option<String>)> {
    let name = ident(&c.name);
    let type_text = c.data_type.to_string().to_lowercase();
    let (ty, serial) = match type_text.as_str() {
        "serial" | "serial4" => (SqlType::Int4, true),
        "bigserial" | "serial8" => (SqlType::Int8, true),
        "smallserial" | "serial2" => (SqlType::Int2, true),
        _ => (
            SqlType::from_ast(&c.data_type).map_err(|e| e.with_column(&name))?,
            false,
        ),
    };
    let mut col = ColumnDef {
        name,
        ty,
        nullable: !serial,
        default: None,
        sequence: serial,
        identity_always: false,
    };
    let (mut primary, mut unique, mut check) = (false, false, None);
    for opt in &c.options {
        match &opt.option {
            ColumnOption::Null => col.nullable = true,
            ColumnOption::NotNull => col.nullable = false,
            ColumnOption::Default(e) => col.default = Some(e.to_string()),
            ColumnOption::PrimaryKey(_) => {
                primary = true;
                col.nullable = false;
            }
            ColumnOption::Unique(_) => unique = true,
            ColumnOption::Check(c) => check = Some(c.expr.to_string()),
            ColumnOption::Identity(_) | ColumnOption::Generated { .. } => {
                let text = opt.option.to_string().to_uppercase();
                if !text.contains("IDENTITY") {
                    return Err(Error::unsupported("generated columns"));
                }
                col.sequence = true;
                col.nullable = false;
                col.identity_always = text.contains("ALWAYS");
            }
            ColumnOption::ForeignKey(_) => {
                return Err(Error::unsupported("FOREIGN KEY constraints"))
            }
            other => return Err(Error::unsupported(format!("column option {other}"))),
        }
    }
    Ok((col, primary, unique, check))
}

async fn create_table(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    ct: &CreateTable,
) -> Result<Output> {
    let name = object_name(&ct.name)?;
    if ct.temporary {
        return Err(Error::unsupported("temporary tables"));
    }
    if catalog.relation_exists(&name) {
        if ct.if_not_exists {
            return Ok(Output::Notice {
                tag: "CREATE TABLE".into(),
                message: format!("relation \"{name}\" already exists, skipping"),
            });
        }
        return Err(already_exists("relation", &name));
    }
    let writer = CatalogWriter::begin(txn).await?;
    let mut table = TableDef {
        id: writer.next_id().await?,
        name: name.clone(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        primary_key_name: format!("{name}_pkey"),
        indexes: Vec::new(),
        checks: Vec::new(),
        next_index_id: 1,
    };
    if let Some(q) = &ct.query {
        return create_table_as(engine, txn, catalog, &writer, table, q).await;
    }
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for c in &ct.columns {
        let (col, primary, unique, check) = column_def(c)?;
        if table.column_index(&col.name).is_some() {
            return Err(Error::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{}\" specified more than once", col.name),
            ));
        }
        let pos = table.columns.len();
        if primary {
            if !table.primary_key.is_empty() {
                return Err(multiple_pk(&name));
            }
            table.primary_key = vec![pos];
        }
        if unique {
            uniques.push((None, vec![pos]));
        }
        if let Some(expr) = check {
            table.checks.push(CheckDef {
                name: format!("{name}_{}_check", col.name),
                expr,
            });
        }
        table.columns.push(col);
    }
    for constraint in &ct.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if !table.primary_key.is_empty() {
                    return Err(multiple_pk(&name));
                }
                table.primary_key = index_columns(&table, &pk.columns)?;
                for &c in &table.primary_key {
                    table.columns[c].nullable = false;
                }
                if let Some(n) = &pk.name {
                    table.primary_key_name = ident(n);
                }
            }
            TableConstraint::Unique(u) => {
                uniques.push((
                    u.name.as_ref().map(ident),
                    index_columns(&table, &u.columns)?,
                ));
            }
            TableConstraint::Check(c) => {
                let n = table.checks.len();
                table.checks.push(CheckDef {
                    name: c.name.as_ref().map(ident).unwrap_or_else(|| {
                        if n == 0 {
                            format!("{name}_check")
                        } else {
                            format!("{name}_check{n}")
                        }
                    }),
                    expr: c.expr.to_string(),
                });
            }
            TableConstraint::ForeignKey(_) => {
                return Err(Error::unsupported("FOREIGN KEY constraints"))
            }
            other => return Err(Error::unsupported(format!("table constraint {other}"))),
        }
    }
    for (constraint, columns) in uniques {
        unique_index(&mut table, constraint, columns);
    }
    writer.put_table(&table).await?;
    Ok(Output::Command("CREATE TABLE".into()))
}

/// `CREATE TABLE t AS SELECT …`: columns named and typed by the query, rows copied, no
/// primary key (a hidden row id), as in PostgreSQL.
async fn create_table_as(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    writer: &CatalogWriter<'_>,
    mut table: TableDef,
    q: &datafusion::sql::sqlparser::ast::Query,
) -> Result<Output> {
    let (state, plan) =
        query::plan(engine, txn, catalog, Statement::Query(Box::new(q.clone()))).await?;
    for col in query::columns(&plan, Some(q)) {
        if table.column_index(&col.name).is_some() {
            return Err(Error::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{}\" specified more than once", col.name),
            ));
        }
        table.columns.push(ColumnDef {
            name: col.name,
            ty: col.ty,
            nullable: true,
            default: None,
            sequence: false,
            identity_always: false,
        });
    }
    writer.put_table(&table).await?;
    let rows = query::collect(query::run(&state, plan, &[]).await?).await?;
    let count = rows.len();
    for row in rows {
        let row: Vec<_> = row
            .into_iter()
            .zip(&table.columns)
            .map(|(d, c)| d.coerce(&c.ty))
            .collect::<std::result::Result<_, _>>()?;
        let rowid = super::dml::next_rowid(engine, &table).await?;
        crate::table::insert_row_or_fail(txn, &table, &row, rowid).await?;
    }
    Ok(Output::Command(format!("SELECT {count}")))
}

/// Adds a UNIQUE constraint's index to `table` (named as PostgreSQL would by default).
fn unique_index(table: &mut TableDef, name: Option<String>, columns: Vec<usize>) -> IndexDef {
    let names: Vec<&str> = columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    let name = name.unwrap_or_else(|| format!("{}_{}_key", table.name, names.join("_")));
    let index = IndexDef {
        id: table.next_index_id,
        name,
        columns,
        unique: true,
    };
    table.next_index_id += 1;
    table.indexes.push(index.clone());
    index
}

fn multiple_pk(table: &str) -> Error {
    Error::new(
        sqlstate::INVALID_TABLE_DEFINITION,
        format!("multiple primary keys for table \"{table}\" are not allowed"),
    )
}

fn index_columns(
    table: &TableDef,
    columns: &[datafusion::sql::sqlparser::ast::IndexColumn],
) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => {
                let name = ident(i);
                table.column_index(&name).ok_or_else(|| {
                    Error::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{name}\" named in key does not exist"),
                    )
                })
            }
            other => Err(Error::unsupported(format!("index on expression {other}"))),
        })
        .collect()
}

async fn create_index(txn: &Arc<Txn>, catalog: &Catalog, ci: &CreateIndex) -> Result<Output> {
    let table_name = object_name(&ci.table_name)?;
    let mut table = (**catalog.table(&table_name)?).clone();
    if ci.predicate.is_some() {
        return Err(Error::unsupported("partial indexes"));
    }
    let columns = index_columns(&table, &ci.columns)?;
    let name = match &ci.name {
        Some(n) => object_name(n)?,
        None => {
            let names: Vec<&str> = columns
                .iter()
                .map(|&c| table.columns[c].name.as_str())
                .collect();
            format!("{}_{}_idx", table.name, names.join("_"))
        }
    };
    let exists = catalog.relation_exists(&name)
        || catalog
            .tables
            .values()
            .any(|t| t.indexes.iter().any(|i| i.name == name) || t.primary_key_name == name);
    if exists {
        if ci.if_not_exists {
            return Ok(Output::Notice {
                tag: "CREATE INDEX".into(),
                message: format!("relation \"{name}\" already exists, skipping"),
            });
        }
        return Err(already_exists("relation", &name));
    }
    let writer = CatalogWriter::begin(txn).await?;
    let index = IndexDef {
        id: table.next_index_id,
        name,
        columns,
        unique: ci.unique,
    };
    table.next_index_id += 1;
    backfill_index(txn, &table, &index).await?;
    table.indexes.push(index);
    writer.put_table(&table).await?;
    Ok(Output::Command("CREATE INDEX".into()))
}

async fn create_view(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Arc<Catalog>,
    cv: &CreateView,
) -> Result<Output> {
    if cv.materialized {
        return Err(Error::unsupported("materialized views"));
    }
    let name = object_name(&cv.name)?;
    if catalog.tables.contains_key(&name) || (catalog.views.contains_key(&name) && !cv.or_replace) {
        if cv.if_not_exists {
            return Ok(Output::Command("CREATE VIEW".into()));
        }
        return Err(already_exists("relation", &name));
    }
    // Plan it now so a broken view is rejected at creation.
    let (params, _) = query::describe(engine, txn, catalog, &cv.query).await?;
    if !params.is_empty() {
        return Err(Error::new(
            sqlstate::SYNTAX_ERROR,
            "views cannot have parameters",
        ));
    }
    let writer = CatalogWriter::begin(txn).await?;
    writer
        .put_view(&ViewDef {
            name,
            sql: cv.query.to_string(),
            columns: cv.columns.iter().map(|c| ident(&c.name)).collect(),
        })
        .await?;
    Ok(Output::Command("CREATE VIEW".into()))
}

async fn drop(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Catalog,
    object_type: ObjectType,
    if_exists: bool,
    cascade: bool,
    names: &[datafusion::sql::sqlparser::ast::ObjectName],
) -> Result<Output> {
    let tag = match object_type {
        ObjectType::Table => "DROP TABLE",
        ObjectType::View => "DROP VIEW",
        ObjectType::Index => "DROP INDEX",
        other => return Err(Error::unsupported(format!("DROP {other}"))),
    };
    let writer = CatalogWriter::begin(txn).await?;
    let mut notices = Vec::new();
    for name in names {
        let name = object_name(name)?;
        match object_type {
            ObjectType::Table => {
                match catalog.tables.get(&name) {
                    Some(table) => {
                        for view in dependent_views(catalog, &name) {
                            if !cascade {
                                return Err(Error::new(
                                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                                format!("cannot drop table {name} because other objects depend on it"),
                            )
                            .with_detail(format!("view {view} depends on table {name}")));
                            }
                            writer.delete_view(&view).await?;
                            notices.push(format!("drop cascades to view {view}"));
                        }
                        delete_prefix(txn, &table.table_prefix()).await?;
                        writer.delete_table(&name).await?;
                        engine.sequences.forget(table.id);
                    }
                    None if if_exists => {
                        notices.push(format!("table \"{name}\" does not exist, skipping"))
                    }
                    None => return Err(missing("table", &name)),
                }
            }
            ObjectType::View => match catalog.views.get(&name) {
                Some(_) => writer.delete_view(&name).await?,
                None if if_exists => {
                    notices.push(format!("view \"{name}\" does not exist, skipping"))
                }
                None => return Err(missing("view", &name)),
            },
            _ => {
                let owner = catalog
                    .tables
                    .values()
                    .find(|t| t.indexes.iter().any(|i| i.name == name));
                match owner {
                    Some(table) => {
                        let mut table = (**table).clone();
                        let pos = table
                            .indexes
                            .iter()
                            .position(|i| i.name == name)
                            .expect("found");
                        let index = table.indexes.remove(pos);
                        delete_prefix(txn, &table.index_prefix(index.id)).await?;
                        writer.put_table(&table).await?;
                    }
                    None if if_exists => {
                        notices.push(format!("index \"{name}\" does not exist, skipping"))
                    }
                    None => return Err(missing("index", &name)),
                }
            }
        }
    }
    if notices.is_empty() {
        Ok(Output::Command(tag.into()))
    } else {
        Ok(Output::Notice {
            tag: tag.into(),
            message: notices.join("\n"),
        })
    }
}

/// Views whose definition reads `table`.
fn dependent_views(catalog: &Catalog, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for view in catalog.views.values() {
        let Ok(q) = query::parse_query(&view.sql) else {
            continue;
        };
        let mut uses = false;
        let _ = datafusion::sql::sqlparser::ast::visit_relations(&q, |rel| {
            if object_name(rel).is_ok_and(|n| n == table) {
                uses = true;
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        if uses {
            out.push(view.name.clone());
        }
    }
    out
}

fn missing(kind: &str, name: &str) -> Error {
    let code = if kind == "index" {
        sqlstate::UNDEFINED_OBJECT
    } else {
        sqlstate::UNDEFINED_TABLE
    };
    Error::new(code, format!("{kind} \"{name}\" does not exist"))
}

async fn alter_table(
    engine: &Planner,
    txn: &Arc<Txn>,
    catalog: &Catalog,
    at: &datafusion::sql::sqlparser::ast::AlterTable,
) -> Result<Output> {
    let name = object_name(&at.name)?;
    let Some(existing) = catalog.tables.get(&name) else {
        if at.if_exists {
            return Ok(Output::Notice {
                tag: "ALTER TABLE".into(),
                message: format!("relation \"{name}\" does not exist, skipping"),
            });
        }
        return Err(missing("relation", &name));
    };
    let mut table = (**existing).clone();
    let writer = CatalogWriter::begin(txn).await?;
    for op in &at.operations {
        match op {
            AlterTableOperation::AddColumn {
                column_def,
                if_not_exists,
                ..
            } => {
                let (col, primary, unique, check) = self::column_def(column_def)?;
                if table.column_index(&col.name).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(Error::new(
                        sqlstate::DUPLICATE_COLUMN,
                        format!(
                            "column \"{}\" of relation \"{name}\" already exists",
                            col.name
                        ),
                    ));
                }
                if primary || unique || check.is_some() {
                    return Err(Error::unsupported(
                        "ADD COLUMN with a PRIMARY KEY, UNIQUE or CHECK constraint",
                    ));
                }
                let added = col.name.clone();
                let fill = col.sequence || col.default.is_some() || !col.nullable;
                table.columns.push(col);
                if fill {
                    backfill_column(engine, txn, &table, &added).await?;
                }
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for column in column_names {
                    let col_name = ident(column);
                    let Some(pos) = table.column_index(&col_name) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(Error::new(
                            sqlstate::UNDEFINED_COLUMN,
                            format!("column \"{col_name}\" of relation \"{name}\" does not exist"),
                        ));
                    };
                    if table.primary_key.contains(&pos)
                        || table.indexes.iter().any(|i| i.columns.contains(&pos))
                    {
                        return Err(Error::unsupported("dropping a key or indexed column"));
                    }
                    drop_column(txn, &mut table, pos).await?;
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (ident(old_column_name), ident(new_column_name));
                let pos = table.column(&old)?;
                if table.column_index(&new).is_some() {
                    return Err(Error::new(
                        sqlstate::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{name}\" already exists"),
                    ));
                }
                table.columns[pos].name = new.clone();
                for check in &mut table.checks {
                    check.expr = rename_identifier(&check.expr, &old, &new)?;
                }
            }
            AlterTableOperation::RenameTable { table_name } => {
                let (RenameTableNameKind::To(new) | RenameTableNameKind::As(new)) = table_name;
                let new = object_name(new)?;
                if catalog.relation_exists(&new) {
                    return Err(already_exists("relation", &new));
                }
                writer.delete_table(&table.name).await?;
                table.name = new;
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(pk),
                ..
            } => {
                if !table.primary_key.is_empty() {
                    return Err(multiple_pk(&name));
                }
                let old = table.clone();
                table.primary_key = index_columns(&table, &pk.columns)?;
                for &c in &table.primary_key {
                    table.columns[c].nullable = false;
                }
                table.primary_key_name = pk
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| format!("{name}_pkey"));
                crate::table::rekey_rows(txn, &old, &table).await?;
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Unique(u),
                ..
            } => {
                let columns = index_columns(&table, &u.columns)?;
                let index = unique_index(&mut table, u.name.as_ref().map(ident), columns);
                crate::table::backfill_index(txn, &table, &index).await?;
            }
            other => return Err(Error::unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    writer.put_table(&table).await?;
    Ok(Output::Command("ALTER TABLE".into()))
}

fn references_column(e: &Expr, column: &str) -> bool {
    use datafusion::sql::sqlparser::ast::Visit;
    let mut found = false;
    let _ = e.visit(&mut ColumnFinder {
        column,
        found: &mut found,
    });
    found
}

struct ColumnFinder<'a> {
    column: &'a str,
    found: &'a mut bool,
}

impl datafusion::sql::sqlparser::ast::Visitor for ColumnFinder<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
        if let Expr::Identifier(i) = e {
            if ident(i) == self.column {
                *self.found = true;
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Fills a column just added to a table with rows: each row gets the column's default
/// (or sequence value); NOT NULL is checked.
async fn backfill_column(
    engine: &Planner,
    txn: &Arc<Txn>,
    table: &TableDef,
    column: &str,
) -> Result<()> {
    let pos = table.column(column)?;
    let rows = crate::table::stored_rows(txn, table)?;
    for (key, value) in rows {
        let mut row = crate::table::decode_stored_row(table, &value)?;
        row[pos] = super::dml::column_default(engine, txn, None, table, pos).await?;
        if row[pos].is_null() && !table.columns[pos].nullable {
            return Err(Error::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "column \"{column}\" of relation \"{}\" contains null values",
                    table.name
                ),
            ));
        }
        txn.put(&key, Some(crate::types::encode_row(&row))).await?;
    }
    Ok(())
}

/// Renames column references in a stored expression.
fn rename_identifier(sql: &str, old: &str, new: &str) -> Result<String> {
    use datafusion::sql::sqlparser::ast::{Ident, VisitMut, VisitorMut};
    struct Renamer<'a> {
        old: &'a str,
        new: &'a str,
    }
    impl VisitorMut for Renamer<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Identifier(i) = e {
                if ident(i) == self.old {
                    *i = Ident::with_quote('"', self.new);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut e = super::dml::parse_expr(sql)?;
    let _ = e.visit(&mut Renamer { old, new });
    Ok(e.to_string())
}

/// Removes a column: rewrites every row without it and renumbers index column positions.
async fn drop_column(txn: &Arc<Txn>, table: &mut TableDef, pos: usize) -> Result<()> {
    let rows = crate::table::stored_rows(txn, table)?;
    for (key, value) in rows {
        let mut row = crate::table::decode_stored_row(table, &value)?;
        row.remove(pos);
        txn.put(&key, Some(crate::types::encode_row(&row))).await?;
    }
    let dropped = table.columns.remove(pos).name;
    let shift = |c: &mut usize| {
        if *c > pos {
            *c -= 1;
        }
    };
    table.primary_key.iter_mut().for_each(shift);
    for index in &mut table.indexes {
        index.columns.iter_mut().for_each(shift);
    }
    // PostgreSQL drops the CHECK constraints that reference a dropped column.
    table.checks.retain(|c| {
        let expr = super::dml::parse_expr(&c.expr);
        !expr.is_ok_and(|e| references_column(&e, &dropped))
    });
    Ok(())
}
