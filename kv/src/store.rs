//! The node's storage facade: one engine, its MVCC view, its shards, its committer.
//!
//! ```text
//!   Store ─┬─ engine: Arc<dyn Engine>      (RocksEngine on a node, MemoryEngine in tests)
//!          ├─ mvcc: MvccStore              reads at a version
//!          ├─ shards: ShardMap             loaded or bootstrapped at open
//!          └─ committer: GroupCommitter    every commit goes through it, synced
//! ```
//!
//! Opening checks the on-disk format version (written on first open) so a node never
//! runs on bytes laid out by an incompatible build.
//!
//! Caveat: the store does not order commits; callers (the transaction layer) submit
//! commits in version order, which the committer preserves.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::committer::GroupCommitter;
use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::mvcc::MvccStore;
use crate::shard::ShardMap;
use crate::Version;

/// Layout version of everything this crate persists; bump on incompatible changes.
pub const FORMAT_VERSION: u64 = 1;
const FORMAT_VERSION_KEY: &str = "format_version";

/// The storage of one node.
pub struct Store {
    engine: Arc<dyn Engine>,
    mvcc: MvccStore,
    shards: ShardMap,
    committer: GroupCommitter,
}

impl Store {
    /// Opens the store on `engine`: checks (or writes) the format version, loads or
    /// bootstraps the shard map, and starts the group committer.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Store> {
        let committer = GroupCommitter::start(engine.clone());
        Store::open_with(engine, committer)
    }

    /// Opens the store with a stepped committer (the simulator decides when syncs
    /// complete; see [`GroupCommitter::stepped`]).
    pub fn open_stepped(engine: Arc<dyn Engine>) -> Result<Store> {
        let committer = GroupCommitter::stepped(engine.clone());
        Store::open_with(engine, committer)
    }

    fn open_with(engine: Arc<dyn Engine>, committer: GroupCommitter) -> Result<Store> {
        check_format_version(&*engine)?;
        let shards = ShardMap::load_or_bootstrap(&*engine)?;
        let mvcc = MvccStore::new(engine.clone());
        Ok(Store {
            engine,
            mvcc,
            shards,
            committer,
        })
    }

    pub fn mvcc(&self) -> &MvccStore {
        &self.mvcc
    }

    pub fn shards(&self) -> &ShardMap {
        &self.shards
    }

    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Install `writes` at `version` durably (through the group committer). Returns the
    /// receiver; callers await it.
    pub fn commit(
        &self,
        version: Version,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> oneshot::Receiver<Result<()>> {
        self.committer.submit(self.mvcc.batch_for(version, &writes))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("shards", &self.shards)
            .field("committer", &self.committer)
            .finish_non_exhaustive()
    }
}

fn check_format_version(engine: &dyn Engine) -> Result<()> {
    let key = Key::Meta(FORMAT_VERSION_KEY).encode();
    match engine.get(&key)? {
        Some(raw) if raw == FORMAT_VERSION.to_be_bytes() => Ok(()),
        Some(raw) => Err(Error::Corruption(format!(
            "unsupported storage format version {raw:02x?}, this build reads {FORMAT_VERSION}"
        ))),
        None => {
            let mut batch = WriteBatch::new();
            batch.put(key, FORMAT_VERSION.to_be_bytes());
            engine.write(&batch, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEngine;
    use crate::mvcc::Versioned;
    use crate::rocks::{RocksEngine, RocksOptions};

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_shareable_across_tasks() {
        assert_send_sync::<Store>();
    }

    #[tokio::test]
    async fn commits_are_durable_and_visible() {
        let engine = Arc::new(MemoryEngine::new());
        let store = Store::open(engine.clone()).unwrap();
        let writes = vec![
            (b"\x02row".to_vec(), Some(b"v".to_vec())),
            (b"\x01cat".to_vec(), Some(b"t".to_vec())),
        ];
        store.commit(5, writes).await.unwrap().unwrap();
        store
            .commit(6, vec![(b"\x02row".to_vec(), None)])
            .await
            .unwrap()
            .unwrap();
        engine.crash();

        let mvcc = store.mvcc();
        assert_eq!(mvcc.last_committed_version().unwrap(), 6);
        assert_eq!(
            mvcc.get(b"\x02row", 5).unwrap(),
            Some(Versioned {
                version: 5,
                value: Some(b"v".to_vec())
            })
        );
        assert_eq!(mvcc.scan(b"", None, 6, 10).unwrap().len(), 1);
        assert_eq!(store.shards().shard_for(b"\x01cat").id, 1);
        assert_eq!(store.committer().stats().batches, 2);
        assert!(Arc::ptr_eq(store.engine(), &(engine as Arc<dyn Engine>)));
    }

    #[tokio::test]
    async fn reopen_on_rocks_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
            Store::open(Arc::new(engine)).unwrap()
        };
        let shards = {
            let store = open();
            store
                .commit(9, vec![(b"\x02k".to_vec(), Some(b"v".to_vec()))])
                .await
                .unwrap()
                .unwrap();
            store.shards().clone()
        };
        let store = open();
        assert_eq!(store.shards(), &shards);
        assert_eq!(store.mvcc().last_committed_version().unwrap(), 9);
        assert_eq!(store.mvcc().latest(b"\x02k").unwrap().unwrap().version, 9);
    }

    #[test]
    fn foreign_format_version_is_refused() {
        let engine = Arc::new(MemoryEngine::new());
        let mut batch = WriteBatch::new();
        batch.put(Key::Meta(FORMAT_VERSION_KEY).encode(), 99u64.to_be_bytes());
        engine.write(&batch, true).unwrap();
        assert!(matches!(Store::open(engine), Err(Error::Corruption(_))));
    }
}
