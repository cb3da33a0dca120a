//! Commit-time validation: the pure core that decides a data center's vote.
//!
//! Point writes and `FOR UPDATE` reads are protected by locks, but plain reads are not: a
//! transaction reads a consistent snapshot (its read version) and records *what it
//! examined* as key spans. Before it may commit, nothing may have been committed inside
//! those spans after its read version — otherwise its reads are stale and committing would
//! break serializability (this is Consus's re-validation: "vote ABORT if a read key now has
//! a newer version", extended from keys to ranges so phantoms are caught too).
//!
//! [`RecentWrites`] remembers, for every key written by a recent commit, the newest commit
//! version. "Recent" means newer than the oldest read version of any live transaction:
//! older entries can never cause a conflict and are pruned. Entries are added when a commit
//! is *decided*, before it is durable, so a later validation sees every earlier decision —
//! decisions and validations are totally ordered by the sequencer in
//! [`crate::manager`].
//!
//! Invariant: if `validate(spans, read_version)` returns `Ok`, no commit decided so far wrote
//! a key inside `spans` at a version above `read_version`.

use std::collections::BTreeMap;
use std::ops::Bound;

use kv::Version;

/// A span of keys a transaction examined: `[start, end)`; `end` None = unbounded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadSpan {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl ReadSpan {
    /// The span holding exactly one key.
    pub fn point(key: &[u8]) -> ReadSpan {
        let mut end = key.to_vec();
        end.push(0);
        ReadSpan {
            start: key.to_vec(),
            end: Some(end),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// A conflict found by validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: Vec<u8>,
    pub version: Version,
}

/// Keys written by recently decided commits, with their newest version.
#[derive(Default, Debug)]
pub struct RecentWrites {
    versions: BTreeMap<Vec<u8>, Version>,
    /// Versions in decision order, for pruning: (version, keys).
    log: Vec<(Version, Vec<Vec<u8>>)>,
}

impl RecentWrites {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the keys a commit at `version` writes. Commits may arrive out of version
    /// order (a DC applies cross-DC outcomes in the order it learns them): each key keeps
    /// its newest version.
    pub fn record(&mut self, version: Version, keys: Vec<Vec<u8>>) {
        for key in &keys {
            let newest = self.versions.entry(key.clone()).or_insert(version);
            *newest = (*newest).max(version);
        }
        let at = self.log.partition_point(|(v, _)| *v <= version);
        self.log.insert(at, (version, keys));
    }

    /// Checks that nothing in `spans` was written above `read_version`, ignoring the keys in
    /// `own` (the transaction's own writes are not yet recorded, so this is only a guard).
    pub fn validate(&self, spans: &[ReadSpan], read_version: Version) -> Result<(), Conflict> {
        for span in spans {
            let end = match &span.end {
                Some(end) => Bound::Excluded(end.clone()),
                None => Bound::Unbounded,
            };
            let range = self
                .versions
                .range((Bound::Included(span.start.clone()), end));
            for (key, &version) in range {
                if version > read_version {
                    return Err(Conflict {
                        key: key.clone(),
                        version,
                    });
                }
            }
        }
        Ok(())
    }

    /// Forgets commits at or below `horizon` (the oldest live read version).
    pub fn prune(&mut self, horizon: Version) {
        let cut = self.log.partition_point(|(v, _)| *v <= horizon);
        for (version, keys) in self.log.drain(..cut) {
            for key in keys {
                if self.versions.get(&key) == Some(&version) {
                    self.versions.remove(&key);
                }
            }
        }
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(a: &[u8], b: Option<&[u8]>) -> ReadSpan {
        ReadSpan {
            start: a.to_vec(),
            end: b.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn conflicts_only_inside_spans_and_above_read_version() {
        let mut w = RecentWrites::new();
        w.record(10, vec![b"b".to_vec()]);
        w.record(20, vec![b"d".to_vec()]);
        assert!(w.validate(&[span(b"a", Some(b"c"))], 10).is_ok());
        assert_eq!(
            w.validate(&[span(b"a", Some(b"c"))], 9),
            Err(Conflict {
                key: b"b".to_vec(),
                version: 10
            })
        );
        assert!(w.validate(&[span(b"c", Some(b"d"))], 0).is_ok());
        assert!(w.validate(&[span(b"c", None)], 15).is_err());
        assert!(w.validate(&[ReadSpan::point(b"d")], 19).is_err());
        assert!(w.validate(&[ReadSpan::point(b"dd")], 0).is_ok());
    }

    #[test]
    fn prune_keeps_newer_versions_of_rewritten_keys() {
        let mut w = RecentWrites::new();
        w.record(10, vec![b"k".to_vec(), b"x".to_vec()]);
        w.record(20, vec![b"k".to_vec()]);
        w.prune(10);
        assert_eq!(w.len(), 1);
        assert!(w.validate(&[ReadSpan::point(b"k")], 15).is_err());
        w.prune(20);
        assert!(w.is_empty());
    }

    #[test]
    fn commits_recorded_out_of_version_order_keep_the_newest_per_key() {
        let mut w = RecentWrites::new();
        w.record(30, vec![b"k".to_vec()]);
        w.record(20, vec![b"k".to_vec(), b"j".to_vec()]);
        assert_eq!(
            w.validate(&[ReadSpan::point(b"k")], 25),
            Err(Conflict {
                key: b"k".to_vec(),
                version: 30
            })
        );
        assert!(w.validate(&[ReadSpan::point(b"j")], 15).is_err());
        // Pruning at 20 forgets j (newest 20) but not k (newest 30).
        w.prune(20);
        assert_eq!(w.len(), 1);
        assert!(w.validate(&[ReadSpan::point(b"k")], 25).is_err());
    }
}
