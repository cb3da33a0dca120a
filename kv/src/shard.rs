//! Shards: contiguous ranges of the user keyspace.
//!
//! The user keyspace is split into shards, each a range `[start, end)` of user keys
//! (MVCC level, before version encoding). Replication and placement work per shard. The
//! descriptors live in the store itself, as JSON under `b's' + u64 shard id`, so a node
//! finds its shard layout on restart.
//!
//! Invariant (checked on load): the shards, sorted by `start`, tile the whole keyspace —
//! the first starts at the empty key, each ends where the next starts, the last is
//! unbounded — so every user key belongs to exactly one shard.
//!
//! Bootstrap layout (written with sync=true on first open):
//!
//! ```text
//!   shard 1  [ "",   0x02 )   system: SQL catalog (0x01 'c' ...)
//!   shard 2  [ 0x02, ∞    )   table rows and index entries
//! ```
//!
//! Caveats: no split or merge yet; the map is loaded once and is immutable.

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::keys::{self, Key};

/// Shard of the SQL catalog and other system data.
pub const SYSTEM_SHARD_ID: u64 = 1;
/// Shard of table data at bootstrap.
pub const TABLE_SHARD_ID: u64 = 2;
/// First user key of table data (see the keyspace map in [`crate::keycode`]).
pub const TABLE_DATA_PREFIX: u8 = 0x02;

/// A shard: the user-key range `[start, end)`; `end` None is unbounded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShardDescriptor {
    pub id: u64,
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl ShardDescriptor {
    /// Whether `user_key` lies in this shard's range.
    pub fn contains(&self, user_key: &[u8]) -> bool {
        self.start.as_slice() <= user_key && self.end.as_deref().is_none_or(|end| user_key < end)
    }
}

/// The node's shards, sorted by start key, tiling the keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardDescriptor>,
}

impl ShardMap {
    /// Loads the descriptors stored in `engine`; on a fresh store, writes and returns the
    /// bootstrap layout.
    pub fn load_or_bootstrap(engine: &dyn Engine) -> Result<ShardMap> {
        let (start, end) = keys::shard_span();
        let stored = engine.scan(&start, Some(&end), usize::MAX)?;
        if stored.is_empty() {
            let map = ShardMap::bootstrap_layout();
            let mut batch = WriteBatch::new();
            for shard in &map.shards {
                batch.put(Key::Shard(shard.id).encode(), serde_json::to_vec(shard)?);
            }
            engine.write(&batch, true)?;
            tracing::info!(shards = map.shards.len(), "bootstrapped shard map");
            return Ok(map);
        }
        let mut shards = Vec::with_capacity(stored.len());
        for (raw_key, raw_value) in stored {
            let shard: ShardDescriptor = serde_json::from_slice(&raw_value)?;
            if raw_key != Key::Shard(shard.id).encode() {
                return Err(Error::Corruption(format!(
                    "shard {} stored under key {raw_key:02x?}",
                    shard.id
                )));
            }
            shards.push(shard);
        }
        ShardMap::from_descriptors(shards)
    }

    /// Builds a map from descriptors in any order, checking that they tile the keyspace.
    pub fn from_descriptors(mut shards: Vec<ShardDescriptor>) -> Result<ShardMap> {
        shards.sort_by(|a, b| a.start.cmp(&b.start));
        check_tiling(&shards).map_err(|why| Error::Corruption(format!("shard map: {why}")))?;
        Ok(ShardMap { shards })
    }

    /// The shard whose range holds `user_key`.
    pub fn shard_for(&self, user_key: &[u8]) -> &ShardDescriptor {
        // The first shard starts at "", so at least one start is <= user_key.
        let index = self
            .shards
            .partition_point(|s| s.start.as_slice() <= user_key)
            - 1;
        let shard = &self.shards[index];
        debug_assert!(shard.contains(user_key));
        shard
    }

    /// All shards, sorted by start key.
    pub fn shards(&self) -> &[ShardDescriptor] {
        &self.shards
    }

    fn bootstrap_layout() -> ShardMap {
        let table_start = vec![TABLE_DATA_PREFIX];
        ShardMap::from_descriptors(vec![
            ShardDescriptor {
                id: SYSTEM_SHARD_ID,
                start: Vec::new(),
                end: Some(table_start.clone()),
            },
            ShardDescriptor {
                id: TABLE_SHARD_ID,
                start: table_start,
                end: None,
            },
        ])
        .expect("bootstrap layout tiles the keyspace")
    }
}

/// Checks that sorted `shards` tile the keyspace with unique ids.
fn check_tiling(shards: &[ShardDescriptor]) -> std::result::Result<(), String> {
    let first = shards.first().ok_or("no shards")?;
    if !first.start.is_empty() {
        return Err(format!(
            "first shard {} starts at {:02x?}",
            first.id, first.start
        ));
    }
    for pair in shards.windows(2) {
        if pair[0].end.as_ref() != Some(&pair[1].start) {
            return Err(format!(
                "gap or overlap between shards {} and {}",
                pair[0].id, pair[1].id
            ));
        }
    }
    let last = shards.last().expect("non-empty");
    if last.end.is_some() {
        return Err(format!("last shard {} is bounded", last.id));
    }
    let mut ids: Vec<u64> = shards.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err("duplicate shard ids".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEngine;
    use crate::rocks::{RocksEngine, RocksOptions};

    #[test]
    fn bootstrap_writes_default_shards_durably() {
        let engine = MemoryEngine::new();
        let map = ShardMap::load_or_bootstrap(&engine).unwrap();
        assert_eq!(map.shards().len(), 2);
        assert_eq!(map.shard_for(b"").id, SYSTEM_SHARD_ID);
        assert_eq!(map.shard_for(&[0x01, b'c', 7]).id, SYSTEM_SHARD_ID);
        assert_eq!(map.shard_for(&[0x01, 0xFF, 0xFF]).id, SYSTEM_SHARD_ID);
        assert_eq!(map.shard_for(&[0x02]).id, TABLE_SHARD_ID);
        assert_eq!(map.shard_for(&[0xFF; 9]).id, TABLE_SHARD_ID);

        engine.crash(); // bootstrap was synced
        assert_eq!(ShardMap::load_or_bootstrap(&engine).unwrap(), map);
    }

    #[test]
    fn shard_map_survives_rocks_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
            ShardMap::load_or_bootstrap(&engine).unwrap()
        };
        let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
        assert_eq!(ShardMap::load_or_bootstrap(&engine).unwrap(), first);
    }

    #[test]
    fn loading_keeps_stored_layout_and_sorts_by_start() {
        let engine = MemoryEngine::new();
        let shards = [
            ShardDescriptor {
                id: 7,
                start: b"m".to_vec(),
                end: None,
            },
            ShardDescriptor {
                id: 3,
                start: Vec::new(),
                end: Some(b"m".to_vec()),
            },
        ];
        let mut batch = WriteBatch::new();
        for shard in &shards {
            batch.put(
                Key::Shard(shard.id).encode(),
                serde_json::to_vec(shard).unwrap(),
            );
        }
        engine.write(&batch, true).unwrap();
        let map = ShardMap::load_or_bootstrap(&engine).unwrap();
        assert_eq!(
            map.shards().iter().map(|s| s.id).collect::<Vec<_>>(),
            [3, 7]
        );
        assert_eq!(map.shard_for(b"l\xff").id, 3);
        assert_eq!(map.shard_for(b"m").id, 7);
    }

    #[test]
    fn broken_layouts_are_corruption() {
        let shard = |id, start: &[u8], end: Option<&[u8]>| ShardDescriptor {
            id,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
        };
        let broken = [
            vec![],
            vec![shard(1, b"a", None)],
            vec![shard(1, b"", Some(b"m")), shard(2, b"n", None)],
            vec![shard(1, b"", Some(b"m")), shard(2, b"m", Some(b"z"))],
            vec![shard(1, b"", Some(b"m")), shard(1, b"m", None)],
        ];
        for shards in broken {
            let result = ShardMap::from_descriptors(shards.clone());
            assert!(matches!(result, Err(Error::Corruption(_))), "{shards:?}");
        }
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(Key::Shard(1).encode(), b"not json".to_vec());
        engine.write(&batch, true).unwrap();
        assert!(matches!(
            ShardMap::load_or_bootstrap(&engine),
            Err(Error::Corruption(_))
        ));
    }
}
