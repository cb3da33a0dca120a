//! Sequences for SERIAL and identity columns.
//!
//! Like PostgreSQL's, sequence values are not transactional: a value handed out is never
//! handed out again, even if the transaction that took it rolls back (gaps are allowed).
//! Values are reserved in blocks of [`SEQUENCE_BLOCK`] by a short transaction of their own
//! that advances the stored counter, so concurrent inserts do not serialize on the counter
//! key; the block is then served from memory. A restart skips the rest of the block.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use txn::TxnManager;

use crate::catalog::sequence_key;
use crate::error::{Error, Result};

/// Values reserved per storage round trip.
pub const SEQUENCE_BLOCK: i64 = 32;

#[derive(Default)]
pub struct SequenceCache {
    /// (table id, column) → (next value, end of reserved block).
    blocks: Mutex<HashMap<(u64, String), (i64, i64)>>,
}

impl SequenceCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next value of the column's sequence.
    pub async fn next(&self, txns: &Arc<TxnManager>, table_id: u64, column: &str) -> Result<i64> {
        let id = (table_id, column.to_string());
        {
            let mut blocks = self.blocks.lock();
            if let Some((next, end)) = blocks.get_mut(&id) {
                if *next < *end {
                    *next += 1;
                    return Ok(*next - 1);
                }
            }
        }
        let key = sequence_key(table_id, column);
        let (start, end) = loop {
            let txn = txns.begin();
            let current = match txn.get_for_update(&key).await {
                Ok(v) => v,
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            };
            let start = match current {
                Some(bytes) => i64::from_be_bytes(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| Error::internal("corrupt sequence"))?,
                ),
                None => 1,
            };
            let end = start + SEQUENCE_BLOCK;
            txn.put(&key, Some(end.to_be_bytes().to_vec())).await?;
            match txn.commit().await {
                Ok(_) => break (start, end),
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.blocks.lock().insert(id, (start + 1, end));
        Ok(start)
    }

    /// Forgets a table's cached blocks (DROP TABLE / TRUNCATE … RESTART IDENTITY).
    pub fn forget(&self, table_id: u64) {
        self.blocks.lock().retain(|(t, _), _| *t != table_id);
    }
}
