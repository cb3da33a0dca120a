//! One vote instance: the consensus that fixes one data center's vote on one commit
//! attempt (docs/protocol.md §5.1, Paxos Commit adapted).
//!
//! For a commit attempt T there are D instances (T, v), one per voting DC v. Every DC is
//! an acceptor of every instance. The voter v proposes its own vote at its own ballot
//! `(0, v)` without a Phase 1 (no lower ballot exists); any DC may later run a higher
//! ballot (recovery) with a Phase 1 on a quorum, and proposes the value of the highest
//! accepted ballot it heard of, or **Abort** if none (Gray & Lamport: a vote nobody
//! accepted may be cast as ABORT).
//!
//! The pieces are pure values with no IO: [`Acceptor`] (durable state of one acceptor),
//! [`Recovery`] (the proposer side of a recovery ballot) and [`Learner`] (counting
//! acceptances until the instance is chosen). The caller persists an acceptor's state
//! before sending any message that reveals it (§2.3).
//!
//! Invariant (checked by the model in `tests/instance_model.rs`): at most one value is chosen per
//! instance, whatever the message loss, duplication, reordering, crashes and concurrent
//! recoverers — under either learning rule ([`LearnRule`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A data center's index, `0..D`.
pub type DcId = u8;

/// A ballot: rounds ordered first, owners break ties. `(0, v)` is voter v's own ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u32,
    pub owner: DcId,
}

impl Ballot {
    /// The voter's own ballot of its instance.
    pub fn own(voter: DcId) -> Ballot {
        Ballot {
            round: 0,
            owner: voter,
        }
    }
}

/// A data center's vote on a commit attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Vote {
    Commit,
    Abort,
}

/// Smallest number of data centers that is a majority of `dcs`.
pub fn quorum(dcs: usize) -> usize {
    dcs / 2 + 1
}

/// Acceptor state of one instance at one data center (durable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acceptor {
    promised: Option<Ballot>,
    accepted: Option<(Ballot, Vote)>,
}

/// An acceptor's refusal: it has promised a higher ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub promised: Ballot,
}

impl Acceptor {
    /// Phase 1b: promise to accept nothing below `ballot`; returns what was accepted.
    pub fn prepare(&mut self, ballot: Ballot) -> Result<Option<(Ballot, Vote)>, Rejected> {
        match self.promised {
            Some(p) if p > ballot => Err(Rejected { promised: p }),
            _ => {
                self.promised = Some(ballot);
                Ok(self.accepted)
            }
        }
    }

    /// Phase 2b: accept `vote` at `ballot` unless a higher ballot was promised.
    pub fn accept(&mut self, ballot: Ballot, vote: Vote) -> Result<(), Rejected> {
        match self.promised {
            Some(p) if p > ballot => Err(Rejected { promised: p }),
            _ => {
                self.promised = Some(ballot);
                self.accepted = Some((ballot, vote));
                Ok(())
            }
        }
    }

    pub fn accepted(&self) -> Option<(Ballot, Vote)> {
        self.accepted
    }

    pub fn promised(&self) -> Option<Ballot> {
        self.promised
    }
}

/// The proposer of a recovery ballot for one instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recovery {
    ballot: Ballot,
    quorum: usize,
    promises: BTreeMap<DcId, Option<(Ballot, Vote)>>,
}

impl Recovery {
    /// A recovery at `ballot` (round ≥ 1) among `dcs` data centers.
    pub fn new(ballot: Ballot, dcs: usize) -> Recovery {
        debug_assert!(ballot.round > 0, "round 0 is the voter's own ballot");
        Recovery {
            ballot,
            quorum: quorum(dcs),
            promises: BTreeMap::new(),
        }
    }

    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// Records a promise; once a quorum promised, returns the vote to propose: the value
    /// of the highest accepted ballot among the promises, else Abort.
    pub fn on_promise(&mut self, from: DcId, accepted: Option<(Ballot, Vote)>) -> Option<Vote> {
        self.promises.insert(from, accepted);
        if self.promises.len() < self.quorum {
            return None;
        }
        Some(
            self.promises
                .values()
                .flatten()
                .max_by_key(|(b, _)| *b)
                .map_or(Vote::Abort, |(_, v)| *v),
        )
    }
}

/// Which acceptances a learner may count (docs/protocol.md §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LearnRule {
    /// Conservative (3 delays): the voter's acceptance at its own ballot is not counted;
    /// every other acceptance counts once reported by an `Accepted2b` (or the learner's
    /// own durable acceptance).
    Conservative,
    /// Owner-counting (2 delays for D = 3): every acceptance counts, the owner's implied
    /// by its `Vote2a` (it accepted durably before sending).
    OwnerCounting,
}

/// A learner of one instance (T, voter): counts acceptances per (ballot, vote).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Learner {
    voter: DcId,
    quorum: usize,
    rule: LearnRule,
    acceptances: BTreeMap<(Ballot, Vote), BTreeSet<DcId>>,
    chosen: Option<Vote>,
}

impl Learner {
    pub fn new(voter: DcId, dcs: usize, rule: LearnRule) -> Learner {
        Learner {
            voter,
            quorum: quorum(dcs),
            rule,
            acceptances: BTreeMap::new(),
            chosen: None,
        }
    }

    /// Acceptor `by` accepted `vote` at `ballot` (a received `Accepted2b`, the learner's
    /// own durable acceptance, or — owner-counting only — the owner's `Vote2a`). Returns
    /// the chosen vote once known.
    pub fn on_accepted(&mut self, by: DcId, ballot: Ballot, vote: Vote) -> Option<Vote> {
        // Only round 0, which the voter owns without any Phase 1: its acceptance at a
        // recovery or rejoin ballot of its own followed a Phase 1 and counts.
        // With one data center the voter is the only acceptor and the only possible
        // proposer: its own acceptance is the quorum (D = 1 degenerates to a local
        // decision, docs/protocol.md §1.4).
        let own_ballot_of_voter = by == self.voter && ballot == Ballot::own(self.voter);
        if self.rule == LearnRule::Conservative && own_ballot_of_voter && self.quorum > 1 {
            return self.chosen;
        }
        let set = self.acceptances.entry((ballot, vote)).or_default();
        set.insert(by);
        if set.len() >= self.quorum && self.chosen.is_none() {
            self.chosen = Some(vote);
        }
        self.chosen
    }

    pub fn chosen(&self) -> Option<Vote> {
        self.chosen
    }

    /// The DC whose vote this instance decides.
    pub fn voter(&self) -> DcId {
        self.voter
    }
}

/// The outcome of a commit attempt from its instances' chosen votes: COMMIT iff a
/// majority of data centers' votes are chosen Commit, ABORT iff a majority Abort.
pub fn decide(chosen: &[Option<Vote>]) -> Option<Vote> {
    let q = quorum(chosen.len());
    let count = |v: Vote| chosen.iter().filter(|c| **c == Some(v)).count();
    if count(Vote::Commit) >= q {
        Some(Vote::Commit)
    } else if count(Vote::Abort) >= q {
        Some(Vote::Abort)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u32, owner: DcId) -> Ballot {
        Ballot { round, owner }
    }

    #[test]
    fn acceptor_refuses_below_its_promise() {
        let mut a = Acceptor::default();
        a.accept(Ballot::own(1), Vote::Commit).unwrap();
        assert_eq!(a.prepare(b(1, 2)), Ok(Some((Ballot::own(1), Vote::Commit))));
        assert_eq!(
            a.accept(Ballot::own(1), Vote::Commit),
            Err(Rejected { promised: b(1, 2) })
        );
        assert_eq!(a.prepare(b(1, 0)), Err(Rejected { promised: b(1, 2) }));
        a.accept(b(1, 2), Vote::Commit).unwrap();
        assert_eq!(a.accepted(), Some((b(1, 2), Vote::Commit)));
    }

    #[test]
    fn recovery_adopts_the_highest_accepted_or_aborts() {
        let mut r = Recovery::new(b(2, 0), 3);
        assert_eq!(r.on_promise(0, None), None);
        assert_eq!(r.on_promise(1, None), Some(Vote::Abort));
        let mut r = Recovery::new(b(2, 0), 3);
        r.on_promise(0, Some((b(1, 2), Vote::Abort)));
        assert_eq!(
            r.on_promise(1, Some((Ballot::own(1), Vote::Commit))),
            Some(Vote::Abort)
        );
        let mut r = Recovery::new(b(1, 0), 5);
        r.on_promise(0, None);
        r.on_promise(3, Some((Ballot::own(1), Vote::Commit)));
        assert_eq!(r.on_promise(4, None), Some(Vote::Commit));
    }

    #[test]
    fn conservative_learner_ignores_the_voters_own_acceptance() {
        let mut l = Learner::new(1, 3, LearnRule::Conservative);
        assert_eq!(l.on_accepted(1, Ballot::own(1), Vote::Commit), None);
        assert_eq!(l.on_accepted(0, Ballot::own(1), Vote::Commit), None);
        assert_eq!(
            l.on_accepted(2, Ballot::own(1), Vote::Commit),
            Some(Vote::Commit)
        );
        let mut l = Learner::new(1, 3, LearnRule::OwnerCounting);
        l.on_accepted(1, Ballot::own(1), Vote::Commit);
        assert_eq!(
            l.on_accepted(0, Ballot::own(1), Vote::Commit),
            Some(Vote::Commit)
        );
    }

    #[test]
    fn a_single_data_center_learns_its_own_vote() {
        let mut l = Learner::new(0, 1, LearnRule::Conservative);
        assert_eq!(
            l.on_accepted(0, Ballot::own(0), Vote::Commit),
            Some(Vote::Commit)
        );
    }

    #[test]
    fn decide_needs_a_majority_either_way() {
        use Vote::*;
        assert_eq!(decide(&[Some(Commit), Some(Commit), None]), Some(Commit));
        assert_eq!(decide(&[Some(Commit), Some(Abort), None]), None);
        assert_eq!(
            decide(&[Some(Abort), Some(Abort), Some(Commit)]),
            Some(Abort)
        );
        assert_eq!(decide(&[Some(Commit)]), Some(Commit));
        assert_eq!(
            decide(&[Some(Commit), Some(Commit), Some(Abort), None, None]),
            None
        );
    }
}
