//! What the checkers read of a simulated DC's durable state, whichever protocol ran
//! (Meridian on the production stack, the 2PC baseline on its model), and the 2PC
//! baseline's node as its world drives it.

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;
use replication::{DcId, Outcome, ReadEntry, Reply, TxnKey, Vote, Writes};

use super::twopc;
use super::world::RunConfig;

/// Which protocol a run simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Meridian,
    TwoPc,
}

/// The 2PC baseline's node (Meridian's simulated DCs run the production stack,
/// [`super::cluster`]).
pub struct Node(Box<twopc::Node>);

/// A message on the simulated network.
#[derive(Clone, Debug)]
pub struct Wire {
    pub from: DcId,
    pub to: DcId,
    pub depth: u32,
    pub msg: twopc::Msg,
}

/// A step's effects: released in order, after the step's sync.
#[derive(Debug, Default)]
pub struct Step {
    pub send: Vec<Wire>,
    pub apply: Vec<(Version, Writes)>,
    pub replies: Vec<Reply>,
    pub durable_changed: bool,
}

/// A simulated DC's durable state, as the checkers read it.
#[derive(Clone, Debug)]
pub enum DurableState {
    Meridian(replication::Durable),
    TwoPc(twopc::Durable),
}

impl Node {
    pub fn start(
        cfg: &RunConfig,
        me: DcId,
        durable: Option<DurableState>,
        now: u64,
    ) -> (Node, Step) {
        let d = match durable {
            Some(DurableState::TwoPc(d)) => d,
            _ => twopc::Durable::default(),
        };
        let (n, out) =
            twopc::Node::restart(me, cfg.dcs, retransmit(cfg), cfg.clock_skew_us, d, now);
        (Node(Box::new(n)), step(me, out))
    }

    pub fn commit(&mut self, now: u64, client: u64, reads: Vec<ReadEntry>, writes: Writes) -> Step {
        let me = self.0.me();
        step(me, self.0.commit(now, client, reads, writes))
    }

    pub fn receive(&mut self, now: u64, wire: Wire) -> Step {
        let me = self.0.me();
        step(me, self.0.receive(now, wire.from, wire.depth, wire.msg))
    }

    pub fn tick(&mut self, now: u64) -> Step {
        let me = self.0.me();
        step(me, self.0.tick(now))
    }

    pub fn durable(&self) -> DurableState {
        DurableState::TwoPc(self.0.durable().clone())
    }
}

impl DurableState {
    /// Whether this DC's durable state backs `txn`'s acknowledged COMMIT: Meridian — it
    /// voted COMMIT and holds the record, or retired the attempt (every DC then holds
    /// its outcome durably); 2PC — it holds the decision entry of the coordinator's log.
    pub fn backs_commit(&self, txn: TxnKey, coordinator: DcId) -> bool {
        match self {
            DurableState::Meridian(d) => {
                d.is_retired(txn)
                    || (d.own_votes().get(&txn) == Some(&Vote::Commit)
                        && d.records().contains_key(&txn))
            }
            DurableState::TwoPc(d) => d.holds_decision(coordinator, txn),
        }
    }

    /// Every outcome this DC holds per attempt (COMMIT = Some(version)).
    pub fn outcomes(&self) -> Vec<(TxnKey, Option<Version>)> {
        match self {
            DurableState::Meridian(d) => d
                .outcomes()
                .iter()
                .map(|(k, o)| {
                    (
                        *k,
                        match o {
                            Outcome::Committed { version } => Some(*version),
                            Outcome::Aborted => None,
                        },
                    )
                })
                .collect(),
            DurableState::TwoPc(d) => d.outcome_entries(),
        }
    }

    /// Attempts that must have an outcome here once everything settled, and are missing
    /// one: Meridian — known here but undecided; 2PC — prepared in a log this DC leads,
    /// or coordinated here, without an outcome.
    pub fn undecided(&self) -> BTreeSet<TxnKey> {
        match self {
            DurableState::Meridian(d) => d
                .known()
                .into_iter()
                .filter(|k| !d.outcomes().contains_key(k))
                .collect(),
            DurableState::TwoPc(d) => d.undecided(),
        }
    }

    /// Attempts known here (for "decided everywhere": Meridian only).
    pub fn known(&self) -> BTreeSet<TxnKey> {
        match self {
            DurableState::Meridian(d) => d.known(),
            DurableState::TwoPc(_) => BTreeSet::new(),
        }
    }

    /// Whether the outcome of `txn` is held here (or was, before it was retired).
    pub fn has_outcome(&self, txn: TxnKey) -> bool {
        match self {
            DurableState::Meridian(d) => d.outcomes().contains_key(&txn) || d.is_retired(txn),
            DurableState::TwoPc(_) => true,
        }
    }

    /// A one-line description of `txn`'s state here (for stuck reports).
    pub fn describe(&self, txn: TxnKey) -> String {
        match self {
            DurableState::Meridian(d) => format!(
                "outcome {:?}, own vote {:?}, record {}",
                d.outcomes().get(&txn),
                d.own_votes().get(&txn),
                d.records().contains_key(&txn)
            ),
            DurableState::TwoPc(d) => d.describe(txn),
        }
    }
}

fn retransmit(cfg: &RunConfig) -> u64 {
    8 * cfg.wan_delay_us.max(1_000)
}

fn step(me: DcId, out: twopc::Output) -> Step {
    Step {
        send: out
            .send
            .into_iter()
            .map(|(to, depth, msg)| Wire {
                from: me,
                to,
                depth,
                msg,
            })
            .collect(),
        apply: out.apply,
        replies: out.replies,
        durable_changed: out.durable_changed,
    }
}

/// Outcomes per attempt across DCs, for the agreement check.
pub fn collect_outcomes(
    durable: &[DurableState],
) -> BTreeMap<TxnKey, Vec<(usize, Option<Version>)>> {
    let mut all: BTreeMap<TxnKey, Vec<(usize, Option<Version>)>> = BTreeMap::new();
    for (dc, d) in durable.iter().enumerate() {
        for (k, o) in d.outcomes() {
            all.entry(k).or_default().push((dc, o));
        }
    }
    all
}
