//! Statement execution: the planner's entry point for the SQL layer.
//!
//! ```text
//!   Statement ──▶ prepare(): classify, describe (parameter types, result columns)
//!                  ├─ point fast path (exec::point): SELECT/UPDATE/DELETE by full primary
//!                  │   key, single-row INSERT — no DataFusion planning at all
//!                  ├─ queries (exec::query): DataFusion over KvTable providers
//!                  ├─ DML (exec::dml): our own planning; rows to change come from a
//!                  │   DataFusion *query* (so WHERE with IN/EXISTS subqueries is exact),
//!                  │   writes go through table::{insert,update,delete}_row
//!                  └─ DDL (exec::ddl): catalog changes in the same transaction
//! ```
//!
//! Transaction control (BEGIN/COMMIT/…) and session settings belong to the SQL layer;
//! every call here runs inside a transaction the caller owns.

pub mod copy;
pub mod ddl;
pub mod dml;
pub mod eval;
pub mod names;
pub mod point;
pub mod query;

use std::pin::Pin;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    ObjectName, SetExpr, Statement, TableFactor, TableWithJoins, With,
};
use futures::Stream;
use txn::{Txn, TxnManager};

use crate::catalog::{Catalog, CatalogCache};
use crate::context::QueryEngine;
use crate::error::{Error, Result};
use crate::sequence::SequenceCache;
use crate::types::{Datum, SqlType};

/// A result column.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    pub ty: SqlType,
}

/// Rows streamed in chunks.
pub type RowStream = Pin<Box<dyn Stream<Item = Result<Vec<Vec<Datum>>>> + Send>>;

/// What a statement returns.
pub enum Output {
    Rows {
        columns: Vec<OutputColumn>,
        rows: RowStream,
        /// Command tag verb: "SELECT", or "INSERT 0"/"UPDATE"/"DELETE" for RETURNING.
        tag: String,
    },
    /// A command tag such as `INSERT 0 3`, `CREATE TABLE`.
    Command(String),
    /// A command tag preceded by a NOTICE (e.g. `DROP TABLE IF EXISTS` of a missing table).
    Notice { tag: String, message: String },
}

/// A statement analysed once and executed many times.
pub struct Prepared {
    pub statement: Statement,
    pub param_types: Vec<SqlType>,
    /// Result columns, None for statements without rows.
    pub columns: Option<Vec<OutputColumn>>,
    pub(crate) point: Option<point::PointPlan>,
    pub catalog_version: u64,
}

/// Node-wide planner state.
pub struct Planner {
    pub txns: Arc<TxnManager>,
    pub(crate) catalogs: CatalogCache,
    pub(crate) query: QueryEngine,
    pub(crate) sequences: SequenceCache,
}

impl Planner {
    pub fn new(txns: Arc<TxnManager>, memory_limit_bytes: usize) -> Arc<Planner> {
        Arc::new(Planner {
            txns,
            catalogs: CatalogCache::new(),
            query: QueryEngine::new(memory_limit_bytes),
            sequences: SequenceCache::new(),
        })
    }

    pub fn catalog(&self, txn: &Txn) -> Result<Arc<Catalog>> {
        self.catalogs.read(txn)
    }

    /// Analyses a statement: parameter types, result columns, fast path.
    pub async fn prepare(&self, txn: &Arc<Txn>, statement: Statement) -> Result<Prepared> {
        let catalog = self.catalog(txn)?;
        check_supported(&statement)?;
        if let Some((with, dml)) = dml_with_cte(&statement) {
            let (param_types, columns) =
                dml::describe(self, txn, &catalog, dml, Some(with)).await?;
            return Ok(Prepared {
                statement,
                param_types,
                columns,
                point: None,
                catalog_version: catalog.version,
            });
        }
        if let Some(plan) = point::plan(&catalog, &statement)? {
            return Ok(Prepared {
                param_types: plan.param_types(),
                columns: plan.columns(),
                point: Some(plan),
                statement,
                catalog_version: catalog.version,
            });
        }
        let (param_types, columns) = match &statement {
            Statement::Query(q) => {
                let (params, cols) = query::describe(self, txn, &catalog, q).await?;
                (params, Some(cols))
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                dml::describe(self, txn, &catalog, &statement, None).await?
            }
            _ => (Vec::new(), None),
        };
        Ok(Prepared {
            statement,
            param_types,
            columns,
            point: None,
            catalog_version: catalog.version,
        })
    }

    /// Opens `COPY … FROM STDIN` in `txn`; the wire layer feeds it the client's data.
    pub fn copy_in(&self, txn: &Arc<Txn>, statement: &Statement) -> Result<copy::CopyIn> {
        let catalog = self.catalog(txn)?;
        copy::CopyIn::open(self, txn, &catalog, statement)
    }

    /// Executes a prepared statement with parameter values.
    pub async fn execute(
        &self,
        txn: &Arc<Txn>,
        prepared: &Prepared,
        params: &[Datum],
    ) -> Result<Output> {
        let catalog = self.catalog(txn)?;
        if let Some(plan) = &prepared.point {
            if catalog.version == prepared.catalog_version {
                return point::execute(self, txn, &catalog, plan, params).await;
            }
            // The catalog changed since PREPARE: analyse again.
            let again = Box::pin(self.prepare(txn, prepared.statement.clone())).await?;
            return Box::pin(self.execute(txn, &again, params)).await;
        }
        if let Some((with, dml)) = dml_with_cte(&prepared.statement) {
            return dml::execute(self, txn, &catalog, dml, params, Some(with)).await;
        }
        match &prepared.statement {
            Statement::Query(q) => query::execute(self, txn, &catalog, q, params).await,
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                dml::execute(self, txn, &catalog, &prepared.statement, params, None).await
            }
            // COPY FROM STDIN runs through the wire layer's COPY protocol ([`Planner::copy_in`]).
            Statement::Copy { .. } => Err(Error::unsupported("COPY TO STDOUT")),
            Statement::Vacuum(v) => maintenance(&catalog, v.table_name.as_ref(), "VACUUM"),
            Statement::Analyze(a) => maintenance(&catalog, a.table_name.as_ref(), "ANALYZE"),
            other => ddl::execute(self, txn, &catalog, other).await,
        }
    }
}

/// VACUUM and ANALYZE (which tools such as `pgbench -i` run) have nothing to do here:
/// the planner keeps no statistics, and old MVCC versions are the store's to reclaim
/// (not built yet; see docs/architecture.md). They check that the table exists.
fn maintenance(catalog: &Catalog, table: Option<&ObjectName>, tag: &str) -> Result<Output> {
    if let Some(name) = table {
        catalog.table(&names::object_name(name)?)?;
    }
    Ok(Output::Command(tag.to_string()))
}

/// `WITH … INSERT/UPDATE/DELETE`: the CTEs and the DML statement.
fn dml_with_cte(statement: &Statement) -> Option<(&With, &Statement)> {
    let Statement::Query(q) = statement else {
        return None;
    };
    let with = q.with.as_ref()?;
    match q.body.as_ref() {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => Some((with, s)),
        _ => None,
    }
}

/// Rejects statements we do not support, naming the feature (0A000).
fn check_supported(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::AlterTable(_)
        | Statement::Truncate(_)
        | Statement::Vacuum(_)
        | Statement::Analyze(_)
        | Statement::Copy { .. }
        | Statement::Drop { .. } => Ok(()),
        other => Err(Error::unsupported(statement_name(other))),
    }
}

/// The statement's kind as PostgreSQL would name it in a message.
pub fn statement_name(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    match upper.first().map(String::as_str) {
        Some("CREATE") | Some("DROP") | Some("ALTER") | Some("SHOW") => upper.join(" "),
        Some(first) => first.to_string(),
        None => "statement".to_string(),
    }
}

/// The single table a DML statement targets.
pub(crate) fn table_name_of(t: &TableWithJoins) -> Result<(String, Option<String>)> {
    if !t.joins.is_empty() {
        return Err(Error::unsupported("joins in the target of UPDATE"));
    }
    match &t.relation {
        TableFactor::Table { name, alias, .. } => Ok((
            names::object_name(name)?,
            alias.as_ref().map(|a| names::ident(&a.name)),
        )),
        _ => Err(Error::unsupported("this kind of target table")),
    }
}
