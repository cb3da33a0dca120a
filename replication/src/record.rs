//! The commit record, its identity and its outcome (docs/protocol.md §1.2, §3.2): what
//! the origin ships, what every DC checks and keeps, and what every DC agrees on.

use kv::Version;
use serde::{Deserialize, Serialize};

use crate::DcId;

/// A transaction's identity and wound-wait priority: its begin timestamp, a
/// [`crate::DcClock`] value (smaller is older).
pub type TxnId = u64;

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

    /// The key of a one-key span ([`ReadSpan::point`]).
    pub fn as_point(&self) -> Option<&[u8]> {
        let end = self.end.as_deref()?;
        (end.len() == self.start.len() + 1 && end.ends_with(&[0]) && end.starts_with(&self.start))
            .then_some(self.start.as_slice())
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// Written keys with their new values (None deletes).
pub type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// One commit attempt: the origin and the origin's consecutive attempt number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnKey {
    pub origin: DcId,
    pub seq: u64,
}

/// "The transaction saw, for every key in `span`, the newest committed version ≤ `lo`
/// and nothing newer."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEntry {
    pub span: ReadSpan,
    pub lo: Version,
}

/// Everything a data center needs to check and apply a commit attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: TxnKey,
    /// Wound-wait priority: smaller is older.
    pub txn: TxnId,
    /// The commit version, chosen once by the origin.
    pub version: Version,
    pub reads: Vec<ReadEntry>,
    /// Key → new value (None deletes).
    pub writes: Writes,
}

/// An attempt's agreed outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Committed { version: Version },
    Aborted,
}
