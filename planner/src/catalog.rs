//! The SQL catalog: schemas of tables, views and indexes, stored in the KV store itself and
//! changed transactionally.
//!
//! Keyspace (user keys, see `kv::keycode` for the whole map):
//!
//! ```text
//!   0x01 'v'                  catalog version (u64 BE): bumped by every DDL
//!   0x01 'n'                  next table/index id (u64 BE)
//!   0x01 't' <name>           TableDef as JSON
//!   0x01 'w' <name>           ViewDef as JSON
//!   0x01 'q' <table id> <col> sequence (SERIAL / identity) next value (i64 BE)
//!   0x02 <table id> <index id> <key columns>   rows (index 0) and index entries
//! ```
//!
//! Every statement reads the catalog version key through its transaction (a snapshot read
//! recorded for validation) and takes the [`Catalog`] snapshot for that version from a
//! node-wide cache, loading it by a scan of `0x01 't'`/`0x01 'w'` on a miss. A DDL
//! statement locks and bumps the version key, so a transaction that planned against an
//! older catalog fails validation (40001) instead of writing rows a dropped or altered table
//! no longer describes.
//!
//! Names are folded to lower case unless quoted (as PostgreSQL does); one schema, `public`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kv::keycode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use txn::Txn;

use crate::error::{sqlstate, Error, Result};
use crate::types::SqlType;

pub const CATALOG_PREFIX: u8 = 0x01;
pub const TABLE_DATA_PREFIX: u8 = 0x02;
/// The index id of a table's rows.
pub const PRIMARY_INDEX: u32 = 0;

/// A column.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// Default expression as SQL text.
    pub default: Option<String>,
    /// SERIAL or GENERATED … AS IDENTITY: defaults to the column's sequence.
    pub sequence: bool,
    /// GENERATED ALWAYS AS IDENTITY: explicit values are rejected.
    pub identity_always: bool,
}

/// A secondary index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexDef {
    pub id: u32,
    pub name: String,
    /// Positions in `TableDef::columns`.
    pub columns: Vec<usize>,
    pub unique: bool,
}

/// A CHECK constraint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckDef {
    pub name: String,
    /// Boolean expression as SQL text over the table's columns.
    pub expr: String,
}

/// A table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    pub id: u64,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary-key columns; empty = hidden row id.
    pub primary_key: Vec<usize>,
    /// Name of the primary key constraint (for error messages).
    pub primary_key_name: String,
    pub indexes: Vec<IndexDef>,
    pub checks: Vec<CheckDef>,
    /// Next index id to assign.
    pub next_index_id: u32,
}

impl TableDef {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column position or 42703.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.column_index(name).ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    self.name
                ),
            )
        })
    }

    pub fn has_hidden_rowid(&self) -> bool {
        self.primary_key.is_empty()
    }

    /// Key prefix of the rows (index 0) or of one index.
    pub fn index_prefix(&self, index_id: u32) -> Vec<u8> {
        let mut key = vec![TABLE_DATA_PREFIX];
        keycode::encode_u64(&mut key, self.id);
        keycode::encode_u32(&mut key, index_id);
        key
    }

    /// Key prefix covering all rows and index entries of the table.
    pub fn table_prefix(&self) -> Vec<u8> {
        let mut key = vec![TABLE_DATA_PREFIX];
        keycode::encode_u64(&mut key, self.id);
        key
    }
}

/// A view: a stored query.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewDef {
    pub name: String,
    pub sql: String,
    /// Column names given in `CREATE VIEW v (a, b)`.
    pub columns: Vec<String>,
}

/// The catalog as of one catalog version.
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: u64,
    pub tables: BTreeMap<String, Arc<TableDef>>,
    pub views: BTreeMap<String, Arc<ViewDef>>,
}

impl Catalog {
    pub fn table(&self, name: &str) -> Result<&Arc<TableDef>> {
        self.tables.get(name).ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })
    }

    pub fn relation_exists(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name)
    }
}

pub fn version_key() -> Vec<u8> {
    vec![CATALOG_PREFIX, b'v']
}

fn next_id_key() -> Vec<u8> {
    vec![CATALOG_PREFIX, b'n']
}

pub fn table_key(name: &str) -> Vec<u8> {
    let mut key = vec![CATALOG_PREFIX, b't'];
    keycode::encode_str(&mut key, name);
    key
}

pub fn view_key(name: &str) -> Vec<u8> {
    let mut key = vec![CATALOG_PREFIX, b'w'];
    keycode::encode_str(&mut key, name);
    key
}

pub fn sequence_key(table_id: u64, column: &str) -> Vec<u8> {
    let mut key = vec![CATALOG_PREFIX, b'q'];
    keycode::encode_u64(&mut key, table_id);
    keycode::encode_str(&mut key, column);
    key
}

fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::internal("corrupt catalog counter"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Node-wide cache of catalog snapshots by version.
#[derive(Default)]
pub struct CatalogCache {
    latest: Mutex<Option<Arc<Catalog>>>,
}

impl CatalogCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The catalog as seen by `txn` (its snapshot, or its own uncommitted DDL).
    pub fn read(&self, txn: &Txn) -> Result<Arc<Catalog>> {
        let version = match txn.get(&version_key())? {
            Some(bytes) => decode_u64(&bytes)?,
            None => 0,
        };
        if let Some(cached) = self.latest.lock().as_ref() {
            if cached.version == version && !txn_changed_catalog(txn) {
                return Ok(cached.clone());
            }
        }
        let catalog = Arc::new(load(txn, version)?);
        if !txn_changed_catalog(txn) {
            let mut latest = self.latest.lock();
            if latest.as_ref().is_none_or(|c| c.version <= version) {
                *latest = Some(catalog.clone());
            }
        }
        Ok(catalog)
    }
}

/// Whether `txn` holds uncommitted catalog changes (then its view must not be cached).
fn txn_changed_catalog(txn: &Txn) -> bool {
    txn.has_write_in(&[CATALOG_PREFIX], &[CATALOG_PREFIX + 1])
}

fn load(txn: &Txn, version: u64) -> Result<Catalog> {
    let mut catalog = Catalog {
        version,
        ..Catalog::default()
    };
    for (_, value) in scan_all(txn, &[CATALOG_PREFIX, b't'], &[CATALOG_PREFIX, b'u'])? {
        let table: TableDef = serde_json::from_slice(&value)
            .map_err(|e| Error::internal(format!("corrupt table descriptor: {e}")))?;
        catalog.tables.insert(table.name.clone(), Arc::new(table));
    }
    for (_, value) in scan_all(txn, &[CATALOG_PREFIX, b'w'], &[CATALOG_PREFIX, b'x'])? {
        let view: ViewDef = serde_json::from_slice(&value)
            .map_err(|e| Error::internal(format!("corrupt view descriptor: {e}")))?;
        catalog.views.insert(view.name.clone(), Arc::new(view));
    }
    Ok(catalog)
}

/// Scans a whole key range through the transaction.
pub fn scan_all(txn: &Txn, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut rows = Vec::new();
    let mut from = start.to_vec();
    loop {
        let chunk = txn.scan(&from, Some(end), 1024)?;
        rows.extend(chunk.rows);
        match chunk.resume {
            Some(next) => from = next,
            None => return Ok(rows),
        }
    }
}

/// Catalog changes made by DDL statements, inside the statement's transaction.
pub struct CatalogWriter<'a> {
    txn: &'a Txn,
}

impl<'a> CatalogWriter<'a> {
    /// Locks the catalog version (serializing DDL) and bumps it.
    pub async fn begin(txn: &'a Txn) -> Result<CatalogWriter<'a>> {
        let current = match txn.get_for_update(&version_key()).await? {
            Some(bytes) => decode_u64(&bytes)?,
            None => 0,
        };
        txn.put(&version_key(), Some((current + 1).to_be_bytes().to_vec()))
            .await?;
        Ok(CatalogWriter { txn })
    }

    /// A fresh id for a table.
    pub async fn next_id(&self) -> Result<u64> {
        let next = match self.txn.get_for_update(&next_id_key()).await? {
            Some(bytes) => decode_u64(&bytes)?,
            None => 1,
        };
        self.txn
            .put(&next_id_key(), Some((next + 1).to_be_bytes().to_vec()))
            .await?;
        Ok(next)
    }

    pub async fn put_table(&self, table: &TableDef) -> Result<()> {
        let json = serde_json::to_vec(table).map_err(|e| Error::internal(e.to_string()))?;
        self.txn.put(&table_key(&table.name), Some(json)).await?;
        Ok(())
    }

    pub async fn delete_table(&self, name: &str) -> Result<()> {
        self.txn.put(&table_key(name), None).await?;
        Ok(())
    }

    pub async fn put_view(&self, view: &ViewDef) -> Result<()> {
        let json = serde_json::to_vec(view).map_err(|e| Error::internal(e.to_string()))?;
        self.txn.put(&view_key(&view.name), Some(json)).await?;
        Ok(())
    }

    pub async fn delete_view(&self, name: &str) -> Result<()> {
        self.txn.put(&view_key(name), None).await?;
        Ok(())
    }
}
