//! Vote floors and the complete point (docs/protocol.md §7.6).
//!
//! Every DC q keeps a floor F_q and votes ABORT on any record with a version ≤ F_q
//! (rule C0, applied by the participant). It raises F_q as its clock advances and
//! announces `Closed { floor: F_q, voted_upto: m_q }`, where m_q[e] is the highest
//! attempt number of origin e that q voted COMMIT on with a version ≤ F_q. Because a
//! COMMIT vote is always above the voter's floor at the time, m_q is final for F_q.
//!
//! DC d's **complete point** A_d is the largest c such that f+1 DCs q announced
//! F_q ≥ c with m_q[e] ≤ prefix_d[e] for every origin e, where prefix_d[e] is the
//! longest run of e's attempts 1..n whose outcomes d knows (and whose committed writes
//! it has applied). Every committed transaction with version ≤ A_d is then applied at
//! d: its f+1 COMMIT voters intersect those f+1 DCs in some q, which voted before its
//! floor passed the version and so counted the attempt in m_q. A_d only grows.
//!
//! Gaps: an origin numbers its attempts without holes, so a DC that hears of (e, n)
//! but not of some earlier (e, m) knows (e, m) exists; the participant recovers it like
//! any undecided attempt (Abort if no quorum member voted on it), which closes the gap.
//!
//! This module is bookkeeping only; the participant decides when floors move and feeds
//! it votes, announcements and outcomes.

use std::collections::BTreeMap;

use kv::Version;

use crate::instance::{quorum, DcId};
use crate::record::{Outcome, TxnKey};

/// One DC's announcement of its floor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Closed {
    /// F_q: q votes ABORT on every record at or below this version.
    pub floor: Version,
    /// m_q, indexed by origin: the highest attempt of that origin q voted COMMIT on
    /// with a version ≤ `floor` (0 if none).
    pub voted_upto: Vec<u64>,
}

/// The complete-point bookkeeping of one DC.
#[derive(Debug)]
pub(crate) struct CompletePoint {
    me: DcId,
    /// Latest announcement per DC (this DC's own included).
    announced: Vec<Option<Closed>>,
    /// Per origin: outcomes of attempts 1..=prefix are all known here.
    prefix: Vec<u64>,
    /// Per origin: the highest attempt number heard of.
    known: Vec<u64>,
    /// This DC's own m: COMMIT votes at or below its floor.
    voted_upto: Vec<u64>,
    /// This DC's COMMIT votes above its floor, by version.
    unfloored: BTreeMap<Version, TxnKey>,
    complete: Version,
}

impl CompletePoint {
    /// The bookkeeping of DC `me` of `dcs`, where `retired[e]` attempts of origin e are
    /// decided and applied already (missing entries: none).
    /// `fence[e]`: attempts of e numbered below it may have been voted COMMIT by a
    /// previous incarnation of this DC (§7.7), so this DC's announcements count them
    /// as voted: a DC that counts its floor must know their outcomes first.
    pub(crate) fn new(dcs: usize, me: DcId, retired: &[u64], fence: &[u64]) -> CompletePoint {
        let prefix: Vec<u64> = (0..dcs)
            .map(|e| retired.get(e).copied().unwrap_or(0))
            .collect();
        let voted_upto: Vec<u64> = (0..dcs)
            .map(|e| fence.get(e).map_or(0, |f| f.saturating_sub(1)))
            .collect();
        CompletePoint {
            me,
            announced: vec![None; dcs],
            known: prefix
                .iter()
                .zip(&voted_upto)
                .map(|(p, m)| (*p).max(*m))
                .collect(),
            prefix,
            voted_upto,
            unfloored: BTreeMap::new(),
            complete: 0,
        }
    }

    /// A_d: every committed transaction with a version at or below it is applied here.
    pub(crate) fn complete(&self) -> Version {
        self.complete
    }

    /// This DC voted COMMIT on `key` at `version` (above its floor, by C0).
    pub(crate) fn voted_commit(&mut self, key: TxnKey, version: Version, floor: Version) {
        if version <= floor {
            self.count_voted(key);
        } else {
            self.unfloored.insert(version, key);
        }
    }

    fn count_voted(&mut self, key: TxnKey) {
        let m = &mut self.voted_upto[usize::from(key.origin)];
        *m = (*m).max(key.seq);
    }

    /// The floor is now `floor`: this DC's announcement, also counted here.
    pub(crate) fn raise(&mut self, floor: Version) -> Closed {
        let above = self.unfloored.split_off(&(floor + 1));
        let below = std::mem::replace(&mut self.unfloored, above);
        for key in below.into_values() {
            self.count_voted(key);
        }
        let closed = Closed {
            floor,
            voted_upto: self.voted_upto.clone(),
        };
        self.announced[usize::from(self.me)] = Some(closed.clone());
        closed
    }

    /// DC `from` announced its floor. Ignores stale or malformed announcements.
    pub(crate) fn announced(&mut self, from: DcId, closed: Closed) {
        let dcs = self.prefix.len();
        let Some(slot) = self.announced.get_mut(usize::from(from)) else {
            return;
        };
        if closed.voted_upto.len() != dcs || slot.as_ref().is_some_and(|c| c.floor > closed.floor) {
            return;
        }
        for (known, m) in self.known.iter_mut().zip(&closed.voted_upto) {
            *known = (*known).max(*m);
        }
        *slot = Some(closed);
    }

    /// Per origin: the outcomes of attempts 1..=n are all known here.
    pub(crate) fn prefix(&self, origin: DcId) -> u64 {
        self.prefix[usize::from(origin)]
    }

    /// The highest attempt number of `origin` heard of.
    pub(crate) fn known(&self, origin: DcId) -> u64 {
        self.known.get(usize::from(origin)).copied().unwrap_or(0)
    }

    /// The highest floor DC `dc` announced (0: none heard).
    pub(crate) fn announced_floor(&self, dc: DcId) -> Version {
        self.announced
            .get(usize::from(dc))
            .and_then(|c| c.as_ref())
            .map_or(0, |c| c.floor)
    }

    /// Some message named `key`: the origin's attempts up to it exist.
    pub(crate) fn heard_of(&mut self, key: TxnKey) {
        self.heard_of_new(key);
    }

    /// As [`CompletePoint::heard_of`]; true if `key` is beyond every attempt of its origin
    /// heard of before.
    pub(crate) fn heard_of_new(&mut self, key: TxnKey) -> bool {
        match self.known.get_mut(usize::from(key.origin)) {
            Some(known) if *known < key.seq => {
                *known = key.seq;
                true
            }
            _ => false,
        }
    }

    /// Attempts known to exist whose outcome is not known here (the gaps in front of
    /// each prefix), for the participant to track and, if need be, recover.
    pub(crate) fn missing(&self) -> Vec<TxnKey> {
        let mut keys = Vec::new();
        for (origin, (&prefix, &known)) in self.prefix.iter().zip(&self.known).enumerate() {
            let origin = origin as DcId;
            keys.extend((prefix + 1..=known).map(|seq| TxnKey { origin, seq }));
        }
        keys
    }

    /// Advances the prefixes over known outcomes and recomputes A_d; returns the new
    /// complete point if it moved. The caller guarantees that every committed outcome
    /// in `outcomes` is applied no later than the step that publishes the result.
    pub(crate) fn advance(&mut self, outcomes: &BTreeMap<TxnKey, Outcome>) -> Option<Version> {
        for (origin, prefix) in self.prefix.iter_mut().enumerate() {
            let origin = origin as DcId;
            while outcomes.contains_key(&TxnKey {
                origin,
                seq: *prefix + 1,
            }) {
                *prefix += 1;
            }
        }
        let mut floors: Vec<Version> = self
            .announced
            .iter()
            .flatten()
            .filter(|c| c.voted_upto.iter().zip(&self.prefix).all(|(m, p)| m <= p))
            .map(|c| c.floor)
            .collect();
        let needed = quorum(self.prefix.len());
        if floors.len() < needed {
            return None;
        }
        floors.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = floors[needed - 1];
        (candidate > self.complete).then(|| {
            self.complete = candidate;
            candidate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(origin: DcId, seq: u64) -> TxnKey {
        TxnKey { origin, seq }
    }

    #[test]
    fn a_floor_counts_only_once_the_votes_below_it_are_resolved_here() {
        let mut h = CompletePoint::new(3, 0, &[], &[]);
        let mut outcomes = BTreeMap::new();
        for (k, version) in [(key(1, 1), 100), (key(1, 2), 300)] {
            h.heard_of(k);
            h.voted_commit(k, version, 0);
        }
        // Own floor 200 covers (1,1) but not (1,2).
        assert_eq!(h.raise(200).voted_upto, vec![0, 1, 0]);
        h.announced(
            2,
            Closed {
                floor: 250,
                voted_upto: vec![0, 0, 0],
            },
        );
        // (1,1) unresolved: only DC 2 qualifies, a quorum needs 2.
        assert_eq!(h.advance(&outcomes), None);
        assert_eq!(h.missing(), vec![key(1, 1), key(1, 2)]);
        outcomes.insert(key(1, 1), Outcome::Committed { version: 100 });
        assert_eq!(h.advance(&outcomes), Some(200));
        assert_eq!(h.complete(), 200);
        // A stale announcement is ignored; the point never goes back.
        h.announced(
            2,
            Closed {
                floor: 10,
                voted_upto: vec![0, 0, 0],
            },
        );
        assert_eq!(h.advance(&outcomes), None);
        assert_eq!(h.complete(), 200);
    }

    #[test]
    fn announced_votes_reveal_gaps() {
        let mut h = CompletePoint::new(3, 0, &[], &[]);
        h.heard_of(key(2, 3));
        h.announced(
            1,
            Closed {
                floor: 5,
                voted_upto: vec![0, 2, 4],
            },
        );
        assert_eq!(
            h.missing(),
            vec![
                key(1, 1),
                key(1, 2),
                key(2, 1),
                key(2, 2),
                key(2, 3),
                key(2, 4)
            ]
        );
        // Malformed (wrong width) announcements are dropped.
        h.announced(
            2,
            Closed {
                floor: 9,
                voted_upto: vec![7],
            },
        );
        assert_eq!(h.missing().len(), 6);
    }
}
