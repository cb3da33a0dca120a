//! Multi-version store over any [`Engine`].
//!
//! Each commit installs its writes at one [`Version`]; a reader at version `at` sees, for
//! every user key, the newest version `<= at`. Versions are kept as separate raw keys:
//!
//! ```text
//!   b'v' + encode_bytes(user_key) + BE(!version)  ─▶  0x00            (tombstone)
//!                                                      0x01 + value    (live row)
//!
//!   user key "k", versions 9, 5, 2 (raw order):  v k\0\0 !9 │ v k\0\0 !5 │ v k\0\0 !2 │ v k\0\0\0\xff ...
//!                                                 ◀─────── version run of "k" ───────▶
//! ```
//!
//! `!version` sorts the newest version first, so "newest version `<= at`" is a single seek
//! to `Key::Version(user_key, at)`. Because the bytes encoding is prefix-free, each user
//! key's versions form one contiguous *run*, and runs are ordered like user keys — even
//! when one user key is a prefix of another.
//!
//! Scans walk the raw keys in bounded chunks of `Engine::scan` (16 entries, doubling up to
//! 1024 while chunks are consumed whole). Within a run the first
//! version `<= at` decides the key (emitted, or hidden if a tombstone); the rest of the run
//! is skipped. After [`SKIPS_BEFORE_SEEK`] skipped entries in one run the scan re-seeks
//! (past the run, or to the first version `<= at`), so a key with thousands of old
//! versions costs a few engine calls, not thousands of entries.
//!
//! Invariants: version 0 means "nothing" and is never written. [`MvccStore::batch_for`]
//! also records the commit version in the meta key `last_committed_version`.
//!
//! Old versions are collected below a GC horizon ([`gc`]).
//!
//! Caveats:
//! - `last_committed_version` is whatever the last applied batch wrote: callers must apply
//!   commits in version order (the group committer preserves submission order).
//! - Reads are not snapshot-isolated against concurrent writes at versions `<= at`; the
//!   transaction layer must only read at versions that are already fully applied.

use std::sync::Arc;

use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::keys::{self, Key};
use crate::Version;

/// Skipped entries within one version run before a scan re-seeks instead of iterating.
pub const SKIPS_BEFORE_SEEK: usize = 8;
/// Bounds of the number of raw entries fetched by one `Engine::scan` call during a scan:
/// small after a seek (the rest of a chunk may be wasted), doubling while chunks are
/// consumed whole.
const SCAN_CHUNK_MIN: usize = 16;
const SCAN_CHUNK_MAX: usize = 1024;

const TOMBSTONE: u8 = 0x00;
const LIVE: u8 = 0x01;
const LAST_COMMITTED_VERSION: &str = "last_committed_version";

/// One committed version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: Version,
    /// `None` is a tombstone (the key was deleted at `version`).
    pub value: Option<Vec<u8>>,
}

/// A live row returned by [`MvccStore::scan`]: (user key, version, value).
pub type Row = (Vec<u8>, Version, Vec<u8>);

/// The multi-version view of an engine.
#[derive(Clone)]
pub struct MvccStore {
    engine: Arc<dyn Engine>,
}

impl MvccStore {
    pub fn new(engine: Arc<dyn Engine>) -> MvccStore {
        MvccStore { engine }
    }

    /// Newest version of key with version <= at (tombstones included as value None).
    pub fn get(&self, key: &[u8], at: Version) -> Result<Option<Versioned>> {
        let seek = Key::Version(key, at).encode();
        let run_end = keys::version_run_end(key);
        let Some((raw_key, raw_value)) = self.engine.scan(&seek, Some(&run_end), 1)?.pop() else {
            return Ok(None);
        };
        let (user_key, version) = keys::decode_version_key(&raw_key)?;
        assert_eq!(user_key, key, "seek within the run must stay in the run");
        assert!(version <= at, "seek to !at must skip newer versions");
        Ok(Some(Versioned {
            version,
            value: decode_value(&raw_value)?,
        }))
    }

    /// Newest committed version of key regardless of `at` (for validation), tombstones
    /// included.
    pub fn latest(&self, key: &[u8]) -> Result<Option<Versioned>> {
        self.get(key, Version::MAX)
    }

    /// Live rows in [start, end): for each user key the newest version <= at, skipping keys
    /// whose newest such version is a tombstone. Ascending by user key; at most `limit`
    /// rows. To resume after a full page, call again with `start = last_key + [0x00]`.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        at: Version,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        let raw_end = match end {
            Some(end) => keys::version_run_prefix(end),
            None => keys::version_span().1,
        };
        let mut cursor = Key::Version(start, at).encode();
        let mut run = Run::default();
        // Grows while chunks are consumed whole, shrinks back after a seek.
        let mut chunk_len_max = SCAN_CHUNK_MIN;
        while rows.len() < limit && cursor < raw_end {
            let wanted = (limit - rows.len()).saturating_mul(2);
            let chunk_len = wanted.clamp(SCAN_CHUNK_MIN, chunk_len_max);
            let chunk = self.engine.scan(&cursor, Some(&raw_end), chunk_len)?;
            let mut seek = None;
            for (raw_key, raw_value) in &chunk {
                let (key, version) = keys::decode_version_key(raw_key)?;
                if key != run.key {
                    run = Run {
                        key,
                        decided: false,
                        skipped: 0,
                    };
                }
                if run.decided || version > at {
                    run.skipped += 1;
                    if run.skipped >= SKIPS_BEFORE_SEEK {
                        seek = Some(run.seek_target(at));
                        run.skipped = 0;
                        break;
                    }
                    continue;
                }
                run.decided = true;
                if let Some(value) = decode_value(raw_value)? {
                    rows.push((run.key.clone(), version, value));
                    if rows.len() == limit {
                        break;
                    }
                }
            }
            cursor = match (seek, chunk.last()) {
                (Some(seek), _) => {
                    chunk_len_max = SCAN_CHUNK_MIN;
                    seek
                }
                (None, Some((last, _))) if chunk.len() == chunk_len => {
                    chunk_len_max = (chunk_len_max * 2).min(SCAN_CHUNK_MAX);
                    successor(last)
                }
                _ => break, // the engine has nothing more in range
            };
        }
        debug_assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        Ok(rows)
    }

    /// The engine batch that installs `writes` at `version` (also updates meta last
    /// committed version = version).
    pub fn batch_for(&self, version: Version, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> WriteBatch {
        assert!(version > 0, "version 0 means nothing and is never written");
        let mut batch = WriteBatch::new();
        for (key, value) in writes {
            batch.put(
                Key::Version(key, version).encode(),
                encode_value(value.as_deref()),
            );
        }
        batch.put(
            Key::Meta(LAST_COMMITTED_VERSION).encode(),
            version.to_be_bytes(),
        );
        batch
    }

    /// The key under which every commit batch records its version (each batch of
    /// [`Self::batch_for`] puts it, big-endian): what the simulator watches to see
    /// versions applied, writes or none.
    pub fn last_committed_key() -> Vec<u8> {
        Key::Meta(LAST_COMMITTED_VERSION).encode()
    }

    /// The version recorded by the last applied commit batch; 0 if none.
    pub fn last_committed_version(&self) -> Result<Version> {
        match self
            .engine
            .get(&Key::Meta(LAST_COMMITTED_VERSION).encode())?
        {
            None => Ok(0),
            Some(raw) => raw
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| Error::Corruption(format!("last committed version: {raw:02x?}"))),
        }
    }
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore").finish_non_exhaustive()
    }
}

/// Scan state for the version run of the user key being walked.
#[derive(Default)]
struct Run {
    key: Vec<u8>,
    /// A version `<= at` was seen: the rest of the run is older and irrelevant.
    decided: bool,
    /// Entries of this run skipped since the last seek.
    skipped: usize,
}

impl Run {
    /// Where to continue instead of iterating the rest of this run.
    fn seek_target(&self, at: Version) -> Vec<u8> {
        if self.decided {
            keys::version_run_end(&self.key)
        } else {
            Key::Version(&self.key, at).encode()
        }
    }
}

/// The smallest raw key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0x00);
    next
}

fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![TOMBSTONE],
        Some(value) => {
            let mut buf = Vec::with_capacity(value.len() + 1);
            buf.push(LIVE);
            buf.extend_from_slice(value);
            buf
        }
    }
}

fn decode_value(raw: &[u8]) -> Result<Option<Vec<u8>>> {
    match raw.split_first() {
        Some((&TOMBSTONE, [])) => Ok(None),
        Some((&LIVE, value)) => Ok(Some(value.to_vec())),
        _ => Err(Error::Corruption(format!("mvcc value: {raw:02x?}"))),
    }
}

pub mod gc;
#[cfg(test)]
mod tests;
