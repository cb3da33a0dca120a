//! Exhaustive model check (stateright) of the vote instances, learners and recovery of
//! docs/protocol.md §5 and §7.2, driving the real `replication::instance` code.
//!
//! The model: D = 3 data centers, one or two commit attempts, every DC a voter (the
//! origin votes COMMIT; the others COMMIT or ABORT, nondeterministically — a conflict is
//! just an ABORT vote), an acceptor and a learner of every instance. Messages live in a
//! set that is never emptied: any message may be delivered to any DC at any time, any
//! number of times, or never (loss, duplication, reordering). Bounded faults: `crashes`
//! crash/restart of a DC (losing its recoveries in progress, keeping its acceptors,
//! own votes and ballot counter, which are synced before anything is sent), and
//! `recoveries` recovery ballots started by any DC for any instance (so two recoverers
//! can race each other and the voter).
//!
//! Learners only observe, so they are not part of the state: every acceptance is a fact
//! on the network (an `Accepted2b`, or the proposer's own acceptance implied by its
//! `Vote2a`), and a value is *learnable* for an instance if a learner counting those
//! facts by the rule under test ([`Learner`]) finds a quorum for it. Properties, for each
//! learning rule: at most one value is learnable per instance; the outcomes decidable
//! from any mix of learnable values agree; COMMIT only if a majority of DCs voted COMMIT;
//! and (non-vacuity) both outcomes are reachable.

use std::collections::BTreeSet;

use replication::instance::{decide, Acceptor, Ballot, DcId, LearnRule, Learner, Recovery, Vote};
use stateright::{Checker, Model, Property};

const D: usize = 3;

#[derive(Clone)]
struct VoteModel {
    txns: usize,
    /// The instances modelled (by voter); the others' voters stay silent.
    voters: Vec<DcId>,
    rule: LearnRule,
    crashes: usize,
    recoveries: usize,
    /// A deliberate bug: the ballot counter is volatile, so a DC reuses ballots after a
    /// crash (breaks precondition (a) of docs/protocol.md §8.3). Shows the checker bites.
    reuse_ballots: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Msg {
    Vote2a {
        txn: u8,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
    },
    Accepted2b {
        txn: u8,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
        by: DcId,
    },
    Prepare1a {
        txn: u8,
        voter: DcId,
        ballot: Ballot,
    },
    Promise1b {
        txn: u8,
        voter: DcId,
        ballot: Ballot,
        accepted: Option<(Ballot, Vote)>,
        by: DcId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Dc {
    up: bool,
    // Durable.
    acceptors: Vec<Vec<Acceptor>>,
    own_vote: Vec<Option<Vote>>,
    next_round: u32,
    // Volatile: recovery proposers and the instance each one is for.
    recoveries: Vec<(Recovery, u8, DcId)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    dcs: Vec<Dc>,
    network: BTreeSet<Msg>,
    crashes: usize,
    recoveries: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Vote { dc: DcId, txn: u8, vote: Vote },
    Deliver { msg: Msg, to: DcId },
    Recover { dc: DcId, txn: u8, voter: DcId },
    Crash { dc: DcId },
    Restart { dc: DcId },
}

impl State {
    /// DC `at` proposes `vote` at `ballot` for (txn, voter): it accepts first (durably),
    /// then sends; a refused proposal sends nothing (false).
    fn propose(&mut self, at: DcId, txn: u8, voter: DcId, ballot: Ballot, vote: Vote) -> bool {
        let acceptor = &mut self.dcs[at as usize].acceptors[txn as usize][voter as usize];
        if acceptor.accept(ballot, vote).is_err() {
            return false;
        }
        self.network.insert(Msg::Vote2a {
            txn,
            voter,
            ballot,
            vote,
        });
        true
    }
}

impl VoteModel {
    /// The values a learner could learn as chosen for instance (txn, voter).
    fn learnable(&self, s: &State, txn: u8, voter: DcId) -> BTreeSet<Vote> {
        let mut out = BTreeSet::new();
        for value in [Vote::Commit, Vote::Abort] {
            let mut learner = Learner::new(voter, D, self.rule);
            for msg in &s.network {
                let (t, v, ballot, vote, by) = match *msg {
                    Msg::Accepted2b {
                        txn,
                        voter,
                        ballot,
                        vote,
                        by,
                    } => (txn, voter, ballot, vote, by),
                    // The proposer accepted before sending; the conservative rule still
                    // ignores the voter's acceptance at its own ballot (Learner does).
                    Msg::Vote2a {
                        txn,
                        voter,
                        ballot,
                        vote,
                    } => (txn, voter, ballot, vote, ballot.owner),
                    _ => continue,
                };
                if t == txn && v == voter && vote == value {
                    learner.on_accepted(by, ballot, vote);
                }
            }
            if learner.chosen() == Some(value) {
                out.insert(value);
            }
        }
        out
    }

    /// Outcomes some learner could decide for `txn`, from any mix of learnable values.
    fn decidable(&self, s: &State, txn: u8) -> BTreeSet<Vote> {
        let options: Vec<Vec<Option<Vote>>> = (0..D as DcId)
            .map(|v| {
                let mut o = vec![None];
                o.extend(self.learnable(s, txn, v).into_iter().map(Some));
                o
            })
            .collect();
        let mut out = BTreeSet::new();
        for a in &options[0] {
            for b in &options[1] {
                for c in &options[2] {
                    if let Some(outcome) = decide(&[*a, *b, *c]) {
                        out.insert(outcome);
                    }
                }
            }
        }
        out
    }

    fn majority_voted_commit(s: &State, txn: u8) -> bool {
        s.dcs
            .iter()
            .filter(|d| d.own_vote[txn as usize] == Some(Vote::Commit))
            .count()
            > D / 2
    }
}

impl Model for VoteModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let dc = Dc {
            up: true,
            acceptors: vec![vec![Acceptor::default(); D]; self.txns],
            own_vote: vec![None; self.txns],
            next_round: 1,
            recoveries: Vec::new(),
        };
        vec![State {
            dcs: vec![dc; D],
            network: BTreeSet::new(),
            crashes: 0,
            recoveries: 0,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (i, dc) in state.dcs.iter().enumerate() {
            let id = i as DcId;
            if !dc.up {
                actions.push(Action::Restart { dc: id });
                continue;
            }
            if state.crashes < self.crashes {
                actions.push(Action::Crash { dc: id });
            }
            for txn in 0..self.txns as u8 {
                if dc.own_vote[txn as usize].is_none() && self.voters.contains(&id) {
                    // The origin (DC 0) ships only what it votes to commit.
                    actions.push(Action::Vote {
                        dc: id,
                        txn,
                        vote: Vote::Commit,
                    });
                    if id != 0 {
                        actions.push(Action::Vote {
                            dc: id,
                            txn,
                            vote: Vote::Abort,
                        });
                    }
                }
                if state.recoveries < self.recoveries {
                    for &voter in &self.voters {
                        actions.push(Action::Recover { dc: id, txn, voter });
                    }
                }
            }
            for msg in &state.network {
                // Learners only observe (see `learnable`); promises go to their proposer.
                let useful = match msg {
                    Msg::Accepted2b { .. } => false,
                    Msg::Promise1b { ballot, .. } => ballot.owner == id,
                    Msg::Vote2a { ballot, .. } => ballot.owner != id,
                    Msg::Prepare1a { .. } => true,
                };
                if useful {
                    actions.push(Action::Deliver {
                        msg: msg.clone(),
                        to: id,
                    });
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Crash { dc } => {
                let d = &mut s.dcs[dc as usize];
                d.up = false;
                d.recoveries.clear();
                if self.reuse_ballots {
                    d.next_round = 1;
                }
                s.crashes += 1;
            }
            Action::Restart { dc } => s.dcs[dc as usize].up = true,
            Action::Vote { dc, txn, vote } => {
                // A voter whose instance a recoverer already took over has no vote left.
                if s.propose(dc, txn, dc, Ballot::own(dc), vote) {
                    s.dcs[dc as usize].own_vote[txn as usize] = Some(vote);
                }
            }
            Action::Recover { dc, txn, voter } => {
                let d = &mut s.dcs[dc as usize];
                let ballot = Ballot {
                    round: d.next_round,
                    owner: dc,
                };
                d.next_round += 1; // durable: a ballot is never reused, even after a crash
                d.recoveries.push((Recovery::new(ballot, D), txn, voter));
                s.recoveries += 1;
                s.network.insert(Msg::Prepare1a { txn, voter, ballot });
            }
            Action::Deliver { msg, to } => match msg {
                Msg::Vote2a {
                    txn,
                    voter,
                    ballot,
                    vote,
                } => {
                    let acceptor = &mut s.dcs[to as usize].acceptors[txn as usize][voter as usize];
                    if acceptor.accept(ballot, vote).is_err() {
                        return None;
                    }
                    s.network.insert(Msg::Accepted2b {
                        txn,
                        voter,
                        ballot,
                        vote,
                        by: to,
                    });
                }
                Msg::Accepted2b { .. } => return None,
                Msg::Prepare1a { txn, voter, ballot } => {
                    let acceptor = &mut s.dcs[to as usize].acceptors[txn as usize][voter as usize];
                    let Ok(accepted) = acceptor.prepare(ballot) else {
                        return None;
                    };
                    s.network.insert(Msg::Promise1b {
                        txn,
                        voter,
                        ballot,
                        accepted,
                        by: to,
                    });
                }
                Msg::Promise1b {
                    txn,
                    voter,
                    ballot,
                    accepted,
                    by,
                } => {
                    let d = &mut s.dcs[to as usize];
                    let i = d
                        .recoveries
                        .iter()
                        .position(|(r, _, _)| r.ballot() == ballot)?;
                    debug_assert_eq!((d.recoveries[i].1, d.recoveries[i].2), (txn, voter));
                    if let Some(vote) = d.recoveries[i].0.on_promise(by, accepted) {
                        // One proposal per ballot.
                        d.recoveries.remove(i);
                        s.propose(to, txn, voter, ballot, vote);
                    }
                }
            },
        }
        (s != *last).then_some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("one value learnable per instance", |m: &Self, s: &State| {
                (0..m.txns as u8).all(|t| (0..D as DcId).all(|v| m.learnable(s, t, v).len() <= 1))
            }),
            Property::always("one outcome per attempt", |m: &Self, s: &State| {
                (0..m.txns as u8).all(|t| m.decidable(s, t).len() <= 1)
            }),
            Property::always(
                "commit only if a majority voted commit",
                |m: &Self, s: &State| {
                    (0..m.txns as u8).all(|t| {
                        !m.decidable(s, t).contains(&Vote::Commit)
                            || Self::majority_voted_commit(s, t)
                    })
                },
            ),
            Property::sometimes("a commit vote is learnable", |m: &Self, s: &State| {
                (0..D as DcId).any(|v| m.learnable(s, 0, v).contains(&Vote::Commit))
            }),
            Property::sometimes("an abort vote is learnable", |m: &Self, s: &State| {
                (0..D as DcId).any(|v| m.learnable(s, 0, v).contains(&Vote::Abort))
            }),
        ];
        if self.voters.len() == D {
            properties.push(Property::sometimes(
                "an attempt commits",
                |m: &Self, s: &State| {
                    (0..m.txns as u8).any(|t| m.decidable(s, t).contains(&Vote::Commit))
                },
            ));
            properties.push(Property::sometimes(
                "an attempt aborts",
                |m: &Self, s: &State| {
                    (0..m.txns as u8).any(|t| m.decidable(s, t).contains(&Vote::Abort))
                },
            ));
        }
        properties
    }
}

fn check(model: VoteModel) -> usize {
    let checker = model.checker().threads(2).spawn_bfs().join();
    checker.assert_properties();
    checker.unique_state_count()
}

/// One instance, exhaustively: its voter votes (either way) or stays silent, and two
/// recovery ballots from any DCs (the voter's own included, as after a rejoin) race it
/// and each other, under message loss, duplication and reordering and a crash.
fn one_instance(rule: LearnRule) -> usize {
    check(VoteModel {
        txns: 1,
        voters: vec![1],
        rule,
        crashes: 1,
        recoveries: 2,
        reuse_ballots: false,
    })
}

/// A whole attempt: all three instances (the origin votes COMMIT, the others either
/// way) with one recovery ballot, so outcomes are decided from mixes of instances.
fn whole_attempt(rule: LearnRule) -> usize {
    check(VoteModel {
        txns: 1,
        voters: vec![0, 1, 2],
        rule,
        crashes: 0,
        recoveries: 1,
        reuse_ballots: false,
    })
}

#[test]
fn conservative_rule_is_safe() {
    let one = one_instance(LearnRule::Conservative);
    let whole = whole_attempt(LearnRule::Conservative);
    eprintln!(
        "conservative rule: one instance {one} states, whole attempt {whole} states; all safe"
    );
}

#[test]
fn owner_counting_rule_is_safe() {
    let one = one_instance(LearnRule::OwnerCounting);
    let whole = whole_attempt(LearnRule::OwnerCounting);
    eprintln!(
        "owner-counting rule: one instance {one} states, whole attempt {whole} states; all safe"
    );
}

#[test]
fn reusing_a_ballot_after_a_crash_is_caught() {
    let model = VoteModel {
        txns: 1,
        voters: vec![1],
        rule: LearnRule::OwnerCounting,
        crashes: 1,
        recoveries: 2,
        reuse_ballots: true,
    };
    let checker = model.checker().threads(2).spawn_bfs().join();
    let path = checker
        .discovery("one value learnable per instance")
        .expect("two values chosen at a reused ballot");
    eprintln!(
        "counterexample with ballot reuse: {:?}",
        path.into_actions()
    );
}
