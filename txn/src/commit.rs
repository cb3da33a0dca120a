//! The commit decision: commit records, votes and the outcome rule.
//!
//! This is the shape of the cross-data-center commit protocol (docs/protocol.md, BRIEF §3)
//! in its single-DC case. A transaction that executed at its origin becomes a
//! [`CommitRecord`]: what it read (spans and the version it read them at) and what it
//! writes. Each data center validates the record and casts a [`Vote`]; the outcome is
//! COMMIT iff a majority of the data centers voted COMMIT ([`decide`]). With one data
//! center the majority is that DC's own vote, so validation decides alone.
//!
//! Commit versions: the version a commit installs is chosen above everything the
//! transaction read or overwrote (the Consus prototype used begin timestamps and could hide
//! a write below an existing version). Here versions come from the sequencer's hybrid clock,
//! which is above every version already decided, so the rule holds by construction and is
//! asserted.

use kv::Version;

use crate::locks::TxnId;
use crate::validation::ReadSpan;

/// Everything a data center needs to validate and apply a transaction.
#[derive(Clone, Debug)]
pub struct CommitRecord {
    pub txn: TxnId,
    /// The snapshot version the transaction's unlocked reads saw.
    pub read_version: Version,
    /// What the transaction examined under that snapshot.
    pub reads: Vec<ReadSpan>,
    /// Key → new value (None deletes).
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// One data center's vote on a commit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Validation passed; the DC proposes this commit version.
    Commit { version: Version },
    /// A read is stale (a newer version exists in a read span).
    Abort { reason: String },
}

/// The agreed outcome of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed { version: Version },
    Aborted { reason: String },
}

/// The commit rule: COMMIT iff a majority of `dcs` data centers voted COMMIT; ABORT as soon
/// as a commit majority is impossible; None while undecided. The commit version is the
/// highest proposed, so it is above everything any voter saw.
pub fn decide(votes: &[Vote], dcs: usize) -> Option<Outcome> {
    assert!(
        dcs % 2 == 1,
        "the number of data centers must be odd, got {dcs}"
    );
    assert!(votes.len() <= dcs, "more votes than data centers");
    let majority = dcs / 2 + 1;
    let commits: Vec<Version> = votes
        .iter()
        .filter_map(|v| match v {
            Vote::Commit { version } => Some(*version),
            Vote::Abort { .. } => None,
        })
        .collect();
    let aborts = votes.len() - commits.len();
    if commits.len() >= majority {
        let version = commits.into_iter().max().expect("a majority is not empty");
        return Some(Outcome::Committed { version });
    }
    if aborts > dcs - majority {
        let reason = votes
            .iter()
            .find_map(|v| match v {
                Vote::Abort { reason } => Some(reason.clone()),
                Vote::Commit { .. } => None,
            })
            .unwrap_or_default();
        return Some(Outcome::Aborted { reason });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(v: Version) -> Vote {
        Vote::Commit { version: v }
    }
    fn abort() -> Vote {
        Vote::Abort {
            reason: "stale read".into(),
        }
    }

    #[test]
    fn single_dc_decides_alone() {
        assert_eq!(
            decide(&[commit(7)], 1),
            Some(Outcome::Committed { version: 7 })
        );
        assert!(matches!(
            decide(&[abort()], 1),
            Some(Outcome::Aborted { .. })
        ));
        assert_eq!(decide(&[], 1), None);
    }

    #[test]
    fn majority_of_three() {
        assert_eq!(decide(&[commit(3)], 3), None);
        assert_eq!(
            decide(&[commit(3), abort(), commit(5)], 3),
            Some(Outcome::Committed { version: 5 })
        );
        assert_eq!(decide(&[commit(3), abort()], 3), None);
        assert!(matches!(
            decide(&[abort(), abort()], 3),
            Some(Outcome::Aborted { .. })
        ));
    }
}
