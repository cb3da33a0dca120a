//! In-memory engine: a `BTreeMap` under a lock, with a simulated crash.
//!
//! Used by unit tests and by the deterministic simulator. Besides the live map it keeps
//! what a disk would hold after a power loss:
//!
//! ```text
//!   write(b, sync=false) ──▶ live += b ; unsynced.push(b)
//!   write(b, sync=true)  ──▶ live += b ; durable += unsynced ++ b ; unsynced = []
//!   crash()              ──▶ live = durable ; unsynced = []
//! ```
//!
//! A synced write makes every earlier write durable too, as an fdatasync of RocksDB's
//! write-ahead log does. `durable` is maintained incrementally, so a sync costs the size of
//! the batches it covers, not of the whole map.
//!
//! Caveats: a crash loses unsynced batches whole; real disks may also tear or reorder
//! them, which this engine does not model. Memory is twice the data size.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use crate::engine::{Engine, ExportSink, WriteBatch};
use crate::error::Result;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct State {
    live: Map,
    durable: Map,
    unsynced: Vec<WriteBatch>,
}

/// An [`Engine`] held in memory.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    state: RwLock<State>,
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    /// Simulates a power loss: forgets every write made with `sync=false` since the last
    /// synced write.
    pub fn crash(&self) {
        let mut state = self.state.write();
        state.live = state.durable.clone();
        state.unsynced.clear();
    }

    /// A copy of what a crash would leave (a backup of the disk, as of now).
    pub fn snapshot(&self) -> MemoryEngine {
        let durable = self.state.read().durable.clone();
        MemoryEngine {
            state: RwLock::new(State {
                live: durable.clone(),
                durable,
                unsynced: Vec::new(),
            }),
        }
    }

    /// Number of batches a crash would lose now.
    pub fn unsynced_batches(&self) -> usize {
        self.state.read().unsynced.len()
    }
}

fn apply(map: &mut Map, batch: &WriteBatch) {
    for (key, value) in &batch.ops {
        match value {
            Some(value) => map.insert(key.clone(), value.clone()),
            None => map.remove(key),
        };
    }
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.state.read().live.get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let state = self.state.read();
        Ok(state
            .live
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn export(&self, start: &[u8], end: &[u8], sink: &mut ExportSink<'_>) -> Result<()> {
        if end <= start {
            return Ok(());
        }
        // A copy of the map (cheap next to the transfer it feeds) is the moment.
        let live = self.state.read().live.clone();
        for (k, v) in live.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))) {
            sink(k, v)?;
        }
        Ok(())
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut state = self.state.write();
        apply(&mut state.live, batch);
        if sync {
            let State {
                durable, unsynced, ..
            } = &mut *state;
            for earlier in unsynced.drain(..) {
                apply(durable, &earlier);
            }
            apply(durable, batch);
        } else {
            state.unsynced.push(batch.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::check_engine_contract;

    fn put(engine: &MemoryEngine, key: &[u8], value: &[u8], sync: bool) {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        engine.write(&batch, sync).unwrap();
    }

    #[test]
    fn meets_engine_contract() {
        check_engine_contract(&MemoryEngine::new());
    }

    #[test]
    fn crash_drops_only_unsynced_writes() {
        let engine = MemoryEngine::new();
        put(&engine, b"a", b"1", false);
        put(&engine, b"b", b"1", true); // makes "a" durable too
        put(&engine, b"a", b"2", false);
        let mut delete = WriteBatch::new();
        delete.delete(b"b");
        engine.write(&delete, false).unwrap();
        put(&engine, b"c", b"1", false);
        assert_eq!(engine.unsynced_batches(), 3);
        assert_eq!(engine.get(b"c").unwrap(), Some(b"1".to_vec()));

        engine.crash();
        assert_eq!(engine.unsynced_batches(), 0);
        assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(b"b").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(b"c").unwrap(), None);

        // Life goes on after a crash, and a second crash keeps what was synced.
        put(&engine, b"d", b"1", true);
        put(&engine, b"e", b"1", false);
        engine.crash();
        assert_eq!(engine.get(b"d").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(b"e").unwrap(), None);
        assert_eq!(engine.scan(b"", None, 10).unwrap().len(), 3);
    }
}
