//! The storage engine trait: an ordered, atomic, durable byte map.
//!
//! Everything above (MVCC, shards, meta) is built from three calls: point `get`, bounded
//! ascending `scan`, and an atomic `write` of a [`WriteBatch`]. Two implementations:
//! [`crate::memory::MemoryEngine`] (tests, simulator; can simulate a crash) and
//! [`crate::rocks::RocksEngine`] (disk).
//!
//! Durability contract: `write(batch, sync=true)` returns only once the batch, and every
//! write before it, survives a machine crash. `sync=false` writes are visible at once but
//! may be lost by a crash. A batch is all-or-nothing in both cases.

use crate::error::Result;

/// An ordered list of puts (`Some`) and deletes (`None`), applied atomically in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends every operation of `other` after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }

    /// Bytes of keys and values, the measure used to bound merged batches.
    pub fn size_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// Receives the pairs of an [`Engine::export`], one at a time.
pub type ExportSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// An ordered key/value store with atomic batches. Keys compare bytewise.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Keys in [start, end) ascending (end None = unbounded), at most `limit` pairs.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Atomic. With sync=true returns only once the batch is durable (fdatasync).
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()>;

    /// Every pair in [start, end), ascending, as of one moment (a consistent copy: each
    /// batch written is in it whole or not at all, whatever is written meanwhile), handed
    /// to `sink` one at a time; stops at the first error `sink` returns. What a state
    /// transfer copies (docs/protocol.md §7.7).
    fn export(&self, start: &[u8], end: &[u8], sink: &mut ExportSink<'_>) -> Result<()>;

    /// An estimate of the number of keys held (deleted ones may still count until
    /// compacted), for monitoring; None if the engine cannot tell cheaply.
    fn estimated_keys(&self) -> Option<u64> {
        None
    }

    /// Bytes the engine holds in memory (memtables, block cache, table readers), for
    /// monitoring; None if the engine cannot tell cheaply.
    fn memory_bytes(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Contract checks shared by every engine implementation.
    pub(crate) fn check_engine_contract(engine: &dyn Engine) {
        let mut batch = WriteBatch::new();
        batch.put(b"b", b"2");
        batch.put(b"a", b"1");
        batch.put(b"c", b"3");
        batch.put(b"d", b"x");
        batch.delete(b"d");
        batch.put(b"a", b"1'");
        engine.write(&batch, true).unwrap();

        assert_eq!(engine.get(b"a").unwrap(), Some(b"1'".to_vec()));
        assert_eq!(engine.get(b"d").unwrap(), None, "later op in a batch wins");
        let keys =
            |rows: Vec<(Vec<u8>, Vec<u8>)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(engine.scan(b"", None, usize::MAX).unwrap()),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            keys(engine.scan(b"a\x00", Some(b"c"), 10).unwrap()),
            vec![b"b".to_vec()]
        );
        assert_eq!(engine.scan(b"a", None, 2).unwrap().len(), 2);
        assert!(engine.scan(b"a", None, 0).unwrap().is_empty());
        assert!(engine.scan(b"c", Some(b"c"), 10).unwrap().is_empty());

        // An export is one moment: a batch written while it runs is not in it.
        let mut exported = Vec::new();
        engine
            .export(b"a", b"c\x00", &mut |k, v| {
                if exported.is_empty() {
                    let mut later = WriteBatch::new();
                    later.put(b"a\x01", b"new");
                    later.delete(b"c");
                    engine.write(&later, false)?;
                }
                exported.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            exported,
            vec![
                (b"a".to_vec(), b"1'".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        assert_eq!(engine.get(b"a\x01").unwrap(), Some(b"new".to_vec()));
    }

    #[test]
    fn batch_bookkeeping() {
        let mut a = WriteBatch::new();
        assert!(a.is_empty());
        a.put(b"k", b"vv");
        let mut b = WriteBatch::new();
        b.delete(b"x");
        a.extend(b);
        assert_eq!(a.len(), 2);
        assert_eq!(a.size_bytes(), 4);
        assert_eq!(a.ops[1], (b"x".to_vec(), None));
    }
}
