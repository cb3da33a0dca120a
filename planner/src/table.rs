//! Rows and index entries of one table in the KV store, and the writes that keep them
//! consistent.
//!
//! ```text
//!   row:          0x02 <table id> <0>        <pk datums…>            → encode_row(all columns)
//!   hidden rowid: 0x02 <table id> <0>        <rowid i64>             → encode_row(all columns)
//!   index entry:  0x02 <table id> <index id> <indexed datums…> [pk]  → pk suffix
//! ```
//!
//! The "pk suffix" is the row key without its table/index prefix. A unique index stores
//! the suffix in the value and keeps the key free of it, so two rows with equal indexed
//! values collide on one key; when an indexed value is NULL the entry is non-unique (NULLs
//! are distinct in PostgreSQL) and the suffix is appended to the key.
//!
//! Invariant: after every statement, each row has exactly one entry in each index and
//! each index entry points at a live row. All writes go through [`insert_row`],
//! [`update_row`] and [`delete_row`], which lock what they touch (wound-wait) and check
//! uniqueness under those locks.

use kv::keycode::Decoder;
use txn::Txn;

use crate::catalog::{IndexDef, TableDef, PRIMARY_INDEX};
use crate::error::{sqlstate, Error, Result};
use crate::types::{decode_key_datum, decode_row, encode_key_datum, encode_row, Datum};

/// The key of a row.
pub fn row_key(table: &TableDef, row: &[Datum], rowid: Option<i64>) -> Vec<u8> {
    let mut key = table.index_prefix(PRIMARY_INDEX);
    if table.has_hidden_rowid() {
        let id = rowid.expect("a table without primary key needs a row id");
        kv::keycode::encode_i64(&mut key, id);
    } else {
        for &col in &table.primary_key {
            encode_key_datum(&mut key, &row[col]);
        }
    }
    key
}

/// The primary-key datums from a row key (for messages).
pub fn decode_pk(table: &TableDef, key: &[u8]) -> Result<Vec<Datum>> {
    let prefix = table.index_prefix(PRIMARY_INDEX).len();
    let mut dec = Decoder::new(&key[prefix..]);
    table
        .primary_key
        .iter()
        .map(|&c| Ok(decode_key_datum(&mut dec, &table.columns[c].ty)?))
        .collect()
}

/// Decodes a stored row, filling columns added after it was written with NULL.
pub fn decode_stored_row(table: &TableDef, bytes: &[u8]) -> Result<Vec<Datum>> {
    let mut row = decode_row(bytes)?;
    row.resize(table.columns.len(), Datum::Null);
    Ok(row)
}

fn index_entry(
    table: &TableDef,
    index: &IndexDef,
    row: &[Datum],
    row_key: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let suffix = row_key[table.index_prefix(PRIMARY_INDEX).len()..].to_vec();
    let mut key = table.index_prefix(index.id);
    let mut any_null = false;
    for &col in &index.columns {
        any_null |= row[col].is_null();
        encode_key_datum(&mut key, &row[col]);
    }
    if !index.unique || any_null {
        key.extend_from_slice(&suffix);
    }
    (key, suffix)
}

/// Whether the entry is the unique-checked form (key without the row suffix).
fn is_unique_entry(index: &IndexDef, row: &[Datum]) -> bool {
    index.unique && index.columns.iter().all(|&c| !row[c].is_null())
}

fn describe_key(table: &TableDef, columns: &[usize], row: &[Datum]) -> String {
    let names: Vec<&str> = columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    let values: Vec<String> = columns
        .iter()
        .map(|&c| row[c].to_pg_text(&table.columns[c].ty))
        .collect();
    format!(
        "Key ({})=({}) already exists.",
        names.join(", "),
        values.join(", ")
    )
}

fn unique_violation(constraint: &str, detail: String) -> Error {
    Error::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("duplicate key value violates unique constraint \"{constraint}\""),
    )
    .with_detail(detail)
}

/// A uniqueness conflict found by [`insert_row`]: the key of the existing row.
pub enum InsertOutcome {
    Inserted,
    Conflict {
        existing_key: Vec<u8>,
        constraint: String,
        detail: String,
    },
}

/// Inserts a row (already coerced and checked). On a primary-key or unique-index conflict
/// returns the conflicting row's key instead of writing (the caller raises 23505 or
/// applies ON CONFLICT).
pub async fn insert_row(
    txn: &Txn,
    table: &TableDef,
    row: &[Datum],
    rowid: Option<i64>,
) -> Result<InsertOutcome> {
    let key = row_key(table, row, rowid);
    if txn.get_for_update(&key).await?.is_some() {
        return Ok(InsertOutcome::Conflict {
            existing_key: key,
            constraint: table.primary_key_name.clone(),
            detail: describe_key(table, &table.primary_key, row),
        });
    }
    for index in &table.indexes {
        let (ikey, suffix) = index_entry(table, index, row, &key);
        if is_unique_entry(index, row) {
            if let Some(existing) = txn.get_for_update(&ikey).await? {
                let mut existing_key = table.index_prefix(PRIMARY_INDEX);
                existing_key.extend_from_slice(&existing);
                return Ok(InsertOutcome::Conflict {
                    existing_key,
                    constraint: index.name.clone(),
                    detail: describe_key(table, &index.columns, row),
                });
            }
        }
        txn.put(&ikey, Some(suffix)).await?;
    }
    txn.put(&key, Some(encode_row(row))).await?;
    Ok(InsertOutcome::Inserted)
}

/// Inserts or fails with 23505.
pub async fn insert_row_or_fail(
    txn: &Txn,
    table: &TableDef,
    row: &[Datum],
    rowid: Option<i64>,
) -> Result<()> {
    match insert_row(txn, table, row, rowid).await? {
        InsertOutcome::Inserted => Ok(()),
        InsertOutcome::Conflict {
            constraint, detail, ..
        } => Err(unique_violation(&constraint, detail)),
    }
}

/// Replaces the row at `old_key` (whose stored value was `old`) by `new`.
pub async fn update_row(
    txn: &Txn,
    table: &TableDef,
    old_key: &[u8],
    old: &[Datum],
    new: &[Datum],
) -> Result<()> {
    let new_key = if table.has_hidden_rowid() {
        old_key.to_vec()
    } else {
        row_key(table, new, None)
    };
    if new_key != old_key {
        if txn.get_for_update(&new_key).await?.is_some() {
            return Err(unique_violation(
                &table.primary_key_name,
                describe_key(table, &table.primary_key, new),
            ));
        }
        txn.put(old_key, None).await?;
    }
    for index in &table.indexes {
        let (old_ikey, _) = index_entry(table, index, old, old_key);
        let (new_ikey, suffix) = index_entry(table, index, new, &new_key);
        if old_ikey == new_ikey && new_key == old_key {
            continue;
        }
        if old_ikey != new_ikey {
            txn.put(&old_ikey, None).await?;
            if is_unique_entry(index, new) && txn.get_for_update(&new_ikey).await?.is_some() {
                return Err(unique_violation(
                    &index.name,
                    describe_key(table, &index.columns, new),
                ));
            }
        }
        txn.put(&new_ikey, Some(suffix)).await?;
    }
    txn.put(&new_key, Some(encode_row(new))).await?;
    Ok(())
}

/// Deletes the row at `key` whose stored value was `old`, with its index entries.
pub async fn delete_row(txn: &Txn, table: &TableDef, key: &[u8], old: &[Datum]) -> Result<()> {
    for index in &table.indexes {
        let (ikey, _) = index_entry(table, index, old, key);
        txn.put(&ikey, None).await?;
    }
    txn.put(key, None).await?;
    Ok(())
}

/// Writes the index entries of every existing row (CREATE INDEX on a filled table).
pub async fn backfill_index(txn: &Txn, table: &TableDef, index: &IndexDef) -> Result<()> {
    let prefix = table.index_prefix(PRIMARY_INDEX);
    let end = kv::keycode::prefix_end(&prefix);
    let mut from = prefix.clone();
    loop {
        let chunk = txn.scan(&from, end.as_deref(), 1024)?;
        for (key, value) in &chunk.rows {
            let row = decode_stored_row(table, value)?;
            let (ikey, suffix) = index_entry(table, index, &row, key);
            if is_unique_entry(index, &row) && txn.get_for_update(&ikey).await?.is_some() {
                return Err(Error::new(
                    sqlstate::UNIQUE_VIOLATION,
                    format!("could not create unique index \"{}\"", index.name),
                )
                .with_detail(
                    describe_key(table, &index.columns, &row)
                        .replace("already exists", "is duplicated"),
                ));
            }
            txn.put(&ikey, Some(suffix)).await?;
        }
        match chunk.resume {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
}

/// Every stored row of a table as (row key, encoded row), read into memory: for
/// statements that rewrite rows under the prefix they read (ALTER TABLE).
pub fn stored_rows(txn: &Txn, table: &TableDef) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let prefix = table.index_prefix(PRIMARY_INDEX);
    crate::catalog::scan_all(
        txn,
        &prefix,
        &kv::keycode::prefix_end(&prefix).unwrap_or_default(),
    )
}

/// Moves every row of `old` (keyed by a hidden row id) to its key under `new`'s primary
/// key (ALTER TABLE … ADD PRIMARY KEY) and rebuilds the indexes, whose entries point at
/// row keys. Fails with 23502 for a NULL key column and 23505 for a duplicate key; the
/// statement's transaction then rolls back, so the table is unchanged.
pub async fn rekey_rows(txn: &Txn, old: &TableDef, new: &TableDef) -> Result<()> {
    // All rows first: the new keys share the prefix being scanned.
    let rows = stored_rows(txn, old)?;
    for index in &old.indexes {
        delete_prefix(txn, &old.index_prefix(index.id)).await?;
    }
    let mut moved = Vec::with_capacity(rows.len());
    let mut keys = std::collections::HashSet::with_capacity(rows.len());
    for (key, value) in rows {
        let row = decode_stored_row(old, &value)?;
        if let Some(&c) = new.primary_key.iter().find(|&&c| row[c].is_null()) {
            return Err(Error::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    new.columns[c].name, new.name
                ),
            ));
        }
        let new_key = row_key(new, &row, None);
        if !keys.insert(new_key.clone()) {
            return Err(Error::new(
                sqlstate::UNIQUE_VIOLATION,
                format!("could not create unique index \"{}\"", new.primary_key_name),
            )
            .with_detail(
                describe_key(new, &new.primary_key, &row)
                    .replace("already exists", "is duplicated"),
            ));
        }
        txn.put(&key, None).await?;
        moved.push((new_key, value));
    }
    // Deletes before puts: a row id key may equal some new key byte for byte.
    for (key, value) in moved {
        txn.put(&key, Some(value)).await?;
    }
    for index in &new.indexes {
        backfill_index(txn, new, index).await?;
    }
    Ok(())
}

/// Deletes every key with the given prefix (DROP TABLE / TRUNCATE / DROP INDEX).
pub async fn delete_prefix(txn: &Txn, prefix: &[u8]) -> Result<u64> {
    let end = kv::keycode::prefix_end(prefix);
    let mut from = prefix.to_vec();
    let mut n = 0;
    loop {
        let chunk = txn.scan(&from, end.as_deref(), 1024)?;
        for (key, _) in &chunk.rows {
            txn.put(key, None).await?;
            n += 1;
        }
        match chunk.resume {
            Some(next) => from = next,
            None => return Ok(n),
        }
    }
}
