//! DataFusion reads tables through the session's transaction.
//!
//! [`KvTable`] is a `TableProvider` over one [`TableDef`] bound to one [`Txn`]: its scans
//! are the transaction's snapshot scans (recorded for commit-time validation), so every
//! SELECT, subquery and DML source query sees the transaction's own writes and a consistent
//! snapshot. Filters are pushed down as *inexact* (DataFusion re-applies them): equality on
//! a prefix of the primary key (and one range on the next key column) narrows the key
//! range; equality on all columns of a secondary index becomes an index lookup; `IN` lists
//! on the leading key column become several point ranges. Everything else is a full scan
//! of the table's rows.
//!
//! Results stream: the scan reads [`SCAN_CHUNK_ROWS`] keys at a time and emits Arrow
//! batches, so a query over millions of rows never holds them all.
//!
//! With `with_key`, the provider adds a leading binary column [`KEY_COLUMN`] holding each
//! row's KV key; DML statements use it to find the rows they change.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use futures::stream;
use kv::keycode;
use txn::Txn;

use crate::catalog::{TableDef, PRIMARY_INDEX};
use crate::error::Error;
use crate::table::decode_stored_row;
use crate::types::{datums_to_array, encode_key_datum, scalar_to_datum, Datum, SqlType};

/// Name of the hidden key column of DML source scans.
pub const KEY_COLUMN: &str = "__meridian_key";
/// Keys read per storage call.
pub const SCAN_CHUNK_ROWS: usize = 1024;
/// Rows per Arrow batch.
pub const BATCH_ROWS: usize = 4096;

/// A table read through a transaction.
pub struct KvTable {
    table: Arc<TableDef>,
    txn: Arc<Txn>,
    schema: SchemaRef,
    with_key: bool,
}

impl fmt::Debug for KvTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KvTable({})", self.table.name)
    }
}

/// The Arrow schema of a table's visible columns (plus the key column if asked).
pub fn table_schema(table: &TableDef, with_key: bool) -> SchemaRef {
    let mut fields = Vec::with_capacity(table.columns.len() + 1);
    if with_key {
        fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
    }
    for col in &table.columns {
        fields.push(Field::new(&col.name, col.ty.arrow_type(), col.nullable));
    }
    Arc::new(Schema::new(fields))
}

impl KvTable {
    pub fn new(table: Arc<TableDef>, txn: Arc<Txn>, with_key: bool) -> Self {
        let schema = table_schema(&table, with_key);
        KvTable {
            table,
            txn,
            schema,
            with_key,
        }
    }

    /// Table column position of a schema column name (None for the key column).
    fn column_of(&self, name: &str) -> Option<usize> {
        self.table.column_index(name)
    }
}

#[async_trait]
impl TableProvider for KvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&projection)?);
        let access = self.access_path(filters);
        let partition = Arc::new(KvScan {
            table: self.table.clone(),
            txn: self.txn.clone(),
            schema: projected.clone(),
            projection,
            with_key: self.with_key,
            access,
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            projected,
            vec![partition],
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// How a scan finds its rows.
#[derive(Debug, Clone)]
enum Access {
    /// Row-key ranges `[start, end)` in ascending order.
    Ranges(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// Index key prefixes whose entries point at rows.
    Index {
        index_id: u32,
        prefixes: Vec<Vec<u8>>,
    },
}

impl KvTable {
    fn access_path(&self, filters: &[Expr]) -> Access {
        let mut eq: Vec<Vec<Datum>> = vec![Vec::new(); self.table.columns.len()];
        let mut lower: Vec<Option<(Datum, bool)>> = vec![None; self.table.columns.len()];
        let mut upper: Vec<Option<(Datum, bool)>> = vec![None; self.table.columns.len()];
        for f in split_conjunction(filters) {
            self.collect_bounds(f, &mut eq, &mut lower, &mut upper);
        }
        let prefix = self.table.index_prefix(PRIMARY_INDEX);
        let whole = vec![(prefix.clone(), keycode::prefix_end(&prefix))];
        if !self.table.has_hidden_rowid() {
            let pk = &self.table.primary_key;
            // Leading key columns fixed by equality (single value), then IN lists on the first.
            let mut keys: Vec<Vec<u8>> = vec![prefix.clone()];
            let mut fixed = 0;
            for &col in pk {
                let values = &eq[col];
                if values.is_empty() || (fixed > 0 && values.len() > 1) {
                    break;
                }
                let mut next = Vec::new();
                for key in &keys {
                    for v in values {
                        let mut k = key.clone();
                        encode_key_datum(&mut k, v);
                        next.push(k);
                    }
                }
                keys = next;
                fixed += 1;
            }
            if fixed > 0 {
                keys.sort();
                keys.dedup();
                if fixed == pk.len() {
                    // Full keys: exact points.
                    return Access::Ranges(
                        keys.into_iter()
                            .map(|k| {
                                let mut end = k.clone();
                                end.push(0);
                                (k, Some(end))
                            })
                            .collect(),
                    );
                }
                return Access::Ranges(
                    keys.into_iter()
                        .map(|k| {
                            let end = keycode::prefix_end(&k);
                            (k, end)
                        })
                        .collect(),
                );
            }
            // A range on the first key column.
            let first = pk[0];
            if lower[first].is_some() || upper[first].is_some() {
                let start = match &lower[first] {
                    Some((v, _)) => {
                        let mut k = prefix.clone();
                        encode_key_datum(&mut k, v);
                        k
                    }
                    None => prefix.clone(),
                };
                let end = match &upper[first] {
                    Some((v, _)) => {
                        let mut k = prefix.clone();
                        encode_key_datum(&mut k, v);
                        keycode::prefix_end(&k)
                    }
                    None => keycode::prefix_end(&prefix),
                };
                return Access::Ranges(vec![(start, end)]);
            }
        }
        for index in &self.table.indexes {
            if index.columns.iter().all(|&c| eq[c].len() == 1) {
                let mut key = self.table.index_prefix(index.id);
                for &c in &index.columns {
                    encode_key_datum(&mut key, &eq[c][0]);
                }
                return Access::Index {
                    index_id: index.id,
                    prefixes: vec![key],
                };
            }
        }
        Access::Ranges(whole)
    }

    fn collect_bounds(
        &self,
        f: &Expr,
        eq: &mut [Vec<Datum>],
        lower: &mut [Option<(Datum, bool)>],
        upper: &mut [Option<(Datum, bool)>],
    ) {
        match f {
            Expr::BinaryExpr(b) => {
                let (col, lit, op) = match (column_name(&b.left), literal(&b.right)) {
                    (Some(c), Some(l)) => (c, l, b.op),
                    _ => match (literal(&b.left), column_name(&b.right)) {
                        (Some(l), Some(c)) => match b.op.swap() {
                            Some(op) => (c, l, op),
                            None => return,
                        },
                        _ => return,
                    },
                };
                let Some(pos) = self.column_of(col) else {
                    return;
                };
                let Some(d) = self.key_datum(pos, lit) else {
                    return;
                };
                match op {
                    Operator::Eq => eq[pos] = vec![d],
                    Operator::Gt | Operator::GtEq => lower[pos] = Some((d, op == Operator::GtEq)),
                    Operator::Lt | Operator::LtEq => upper[pos] = Some((d, op == Operator::LtEq)),
                    _ => {}
                }
            }
            Expr::InList(list) if !list.negated => {
                let Some(col) = column_name(&list.expr) else {
                    return;
                };
                let Some(pos) = self.column_of(col) else {
                    return;
                };
                let mut values = Vec::new();
                for e in &list.list {
                    match literal(e).and_then(|l| self.key_datum(pos, l)) {
                        Some(d) => values.push(d),
                        None => return,
                    }
                }
                if !values.is_empty() && values.len() <= 1024 {
                    eq[pos] = values;
                }
            }
            _ => {}
        }
    }

    /// A literal converted exactly to the column's type, if it can be.
    fn key_datum(&self, pos: usize, lit: &ScalarValue) -> Option<Datum> {
        let ty = &self.table.columns[pos].ty;
        let d = scalar_to_datum(lit).ok()?;
        if d.is_null() {
            return None;
        }
        let coerced = d.clone().coerce(ty).ok()?;
        // Only exact conversions narrow the range (5.5 must not match integer 6).
        (coerced.cmp_sql(&d) == std::cmp::Ordering::Equal).then_some(coerced)
    }
}

fn split_conjunction(filters: &[Expr]) -> Vec<&Expr> {
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        if let Expr::BinaryExpr(b) = e {
            if b.op == Operator::And {
                walk(&b.left, out);
                walk(&b.right, out);
                return;
            }
        }
        out.push(e);
    }
    let mut out = Vec::new();
    for f in filters {
        walk(f, &mut out);
    }
    out
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// One scan partition: produces batches of the projected columns.
struct KvScan {
    table: Arc<TableDef>,
    txn: Arc<Txn>,
    schema: SchemaRef,
    /// Positions in the provider schema (key column first when `with_key`).
    projection: Vec<usize>,
    with_key: bool,
    access: Access,
}

impl fmt::Debug for KvScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KvScan({}, {:?})", self.table.name, self.access)
    }
}

/// Where a running scan is.
struct Cursor {
    ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Index lookups resolve to row keys first.
    index: Option<(u32, Vec<Vec<u8>>)>,
    done: bool,
}

impl PartitionStream for KvScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (ranges, index) = match &self.access {
            Access::Ranges(r) => (r.iter().rev().cloned().collect(), None),
            Access::Index { index_id, prefixes } => {
                (Vec::new(), Some((*index_id, prefixes.clone())))
            }
        };
        let cursor = Cursor {
            ranges,
            index,
            done: false,
        };
        let scan = KvScanState {
            table: self.table.clone(),
            txn: self.txn.clone(),
            schema: self.schema.clone(),
            projection: self.projection.clone(),
            with_key: self.with_key,
        };
        let stream = stream::try_unfold((scan, cursor), |(scan, mut cursor)| async move {
            if cursor.done {
                return Ok(None);
            }
            let batch = scan.next_batch(&mut cursor)?;
            match batch {
                Some(b) => Ok(Some((b, (scan, cursor)))),
                None => Ok(None),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

struct KvScanState {
    table: Arc<TableDef>,
    txn: Arc<Txn>,
    schema: SchemaRef,
    projection: Vec<usize>,
    with_key: bool,
}

impl KvScanState {
    fn next_batch(&self, cursor: &mut Cursor) -> DfResult<Option<RecordBatch>> {
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some((index_id, prefixes)) = cursor.index.take() {
            let _ = index_id;
            for prefix in prefixes {
                let end = keycode::prefix_end(&prefix);
                let mut from = prefix.clone();
                loop {
                    let chunk = self
                        .txn
                        .scan(&from, end.as_deref(), SCAN_CHUNK_ROWS)
                        .map_err(ext)?;
                    for (_, suffix) in chunk.rows {
                        let mut key = self.table.index_prefix(PRIMARY_INDEX);
                        key.extend_from_slice(&suffix);
                        let mut end = key.clone();
                        end.push(0);
                        cursor.ranges.push((key, Some(end)));
                    }
                    match chunk.resume {
                        Some(next) => from = next,
                        None => break,
                    }
                }
            }
            cursor.ranges.sort_by(|a, b| b.0.cmp(&a.0));
        }
        while rows.len() < BATCH_ROWS {
            let Some((start, end)) = cursor.ranges.pop() else {
                cursor.done = true;
                break;
            };
            let want = (BATCH_ROWS - rows.len()).min(SCAN_CHUNK_ROWS);
            let chunk = self.txn.scan(&start, end.as_deref(), want).map_err(ext)?;
            rows.extend(chunk.rows);
            if let Some(next) = chunk.resume {
                cursor.ranges.push((next, end));
            }
        }
        if rows.is_empty() {
            self.txn.check_active().map_err(ext)?;
            return Ok(None);
        }
        self.to_batch(rows).map(Some)
    }

    fn to_batch(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> DfResult<RecordBatch> {
        let decoded: Vec<Vec<Datum>> = rows
            .iter()
            .map(|(_, v)| decode_stored_row(&self.table, v))
            .collect::<Result<_, Error>>()
            .map_err(ext)?;
        let offset = usize::from(self.with_key);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &p in &self.projection {
            if self.with_key && p == 0 {
                let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
                columns.push(Arc::new(BinaryArray::from_vec(keys)));
                continue;
            }
            let col = p - offset;
            let is_char = matches!(self.table.columns[col].ty, SqlType::Char(_));
            let values: Vec<Datum> = decoded
                .iter()
                .map(|r| match &r[col] {
                    // character(n) compares and computes without its padding (PostgreSQL's
                    // bpchar semantics); queries see the value without trailing blanks.
                    Datum::Text(t) if is_char => Datum::Text(t.trim_end_matches(' ').to_string()),
                    d => d.clone(),
                })
                .collect();
            let array = datums_to_array(&values, &self.table.columns[col].ty).map_err(ext)?;
            columns.push(array);
        }
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

fn ext<E: Into<Error>>(e: E) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}
