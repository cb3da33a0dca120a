//! RocksDB engine: the node's on-disk store.
//!
//! One default column family holds every raw key (see the keyspace map in
//! [`crate::keycode`]). Memory is bounded and set by [`RocksOptions`]:
//!
//! - one LRU block cache of `block_cache_bytes`, which also holds index and filter blocks
//!   (`cache_index_and_filter_blocks`), so table metadata does not grow outside the cache;
//! - at most `max_write_buffers` memtables of `write_buffer_bytes` each.
//!
//! Writes go through one `WriteBatch` (atomic) with `WriteOptions::set_sync(sync)`:
//! `sync=true` is write + fdatasync of the WAL. Data blocks are LZ4-compressed.
//!
//! Caveats: scans copy keys and values out of RocksDB (no zero-copy iteration through the
//! `Engine` trait); a scan sees the latest data, not a snapshot across calls.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, Options, ReadOptions, WriteOptions, DB,
};

use crate::engine::{Engine, ExportSink, WriteBatch};
use crate::error::Result;

const MIB: usize = 1024 * 1024;

/// Memory bounds of a [`RocksEngine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksOptions {
    /// Capacity of the LRU block cache (data, index and filter blocks).
    pub block_cache_bytes: usize,
    /// Size of one memtable.
    pub write_buffer_bytes: usize,
    /// Memtables kept in memory before writes stall on a flush.
    pub max_write_buffers: i32,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 256 * MIB,
            // Small memtables: a node's memory swings by what its memtables hold between
            // flushes (64 MiB ones made RSS swing by a third in the soak); the writes
            // here are small protocol records and rows.
            write_buffer_bytes: 16 * MIB,
            max_write_buffers: 2,
        }
    }
}

/// An [`Engine`] backed by a RocksDB database directory.
pub struct RocksEngine {
    db: DB,
    /// Kept alive with the engine; the options hold a reference too.
    _block_cache: Cache,
}

impl RocksEngine {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path, opts: &RocksOptions) -> Result<RocksEngine> {
        assert!(
            opts.max_write_buffers >= 1,
            "need at least one write buffer"
        );
        let block_cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&block_cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.set_block_based_table_factory(&table);
        db_opts.set_write_buffer_size(opts.write_buffer_bytes);
        db_opts.set_max_write_buffer_number(opts.max_write_buffers);
        db_opts.set_compression_type(DBCompressionType::Lz4);

        let db = DB::open(&db_opts, path)?;
        tracing::info!(path = %path.display(), ?opts, "opened rocksdb engine");
        Ok(RocksEngine {
            db,
            _block_cache: block_cache,
        })
    }
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Engine for RocksEngine {
    fn estimated_keys(&self) -> Option<u64> {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
    }

    fn memory_bytes(&self) -> Option<u64> {
        let property = |name: &str| self.db.property_int_value(name).ok().flatten();
        Some(
            [
                "rocksdb.cur-size-all-mem-tables",
                "rocksdb.block-cache-usage",
                "rocksdb.estimate-table-readers-mem",
            ]
            .into_iter()
            .filter_map(property)
            .sum(),
        )
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_pinned(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let mut read_opts = ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end);
        }
        let mut iter = self.db.raw_iterator_opt(read_opts);
        iter.seek(start);
        let mut rows = Vec::new();
        while rows.len() < limit {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                break;
            };
            rows.push((key.to_vec(), value.to_vec()));
            iter.next();
        }
        iter.status()?;
        Ok(rows)
    }

    fn export(&self, start: &[u8], end: &[u8], sink: &mut ExportSink<'_>) -> Result<()> {
        let snapshot = self.db.snapshot();
        let mut read_opts = ReadOptions::default();
        read_opts.set_iterate_upper_bound(end);
        let mut iter = snapshot.raw_iterator_opt(read_opts);
        iter.seek(start);
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            sink(key, value)?;
            iter.next();
        }
        iter.status()?;
        Ok(())
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for (key, value) in &batch.ops {
            match value {
                Some(value) => rocks_batch.put(key, value),
                None => rocks_batch.delete(key),
            }
        }
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(sync);
        self.db.write_opt(rocks_batch, &write_opts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::check_engine_contract;

    #[test]
    fn meets_engine_contract() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
        check_engine_contract(&engine);
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RocksOptions {
            block_cache_bytes: 8 * MIB,
            write_buffer_bytes: 4 * MIB,
            max_write_buffers: 2,
        };
        {
            let engine = RocksEngine::open(dir.path(), &opts).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(b"k", b"v");
            engine.write(&batch, true).unwrap();
        }
        let engine = RocksEngine::open(dir.path(), &opts).unwrap();
        assert_eq!(engine.get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
