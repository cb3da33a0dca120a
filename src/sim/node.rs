//! One simulated data center's protocol node, whichever protocol runs: Meridian's
//! participant or the 2PC baseline. The world drives both through this one shape.

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;
use replication::{
    participant, DcId, DurableEntry, Envelope, Outcome, Participant, ReadEntry, Reply, TxnKey,
    Vote, Writes,
};

use super::twopc;
use super::world::RunConfig;

/// Which protocol a run simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Meridian,
    TwoPc,
}

pub enum Node {
    Meridian(Box<Participant>),
    TwoPc(Box<twopc::Node>),
}

/// A message on the simulated network.
#[derive(Clone, Debug)]
pub enum Wire {
    Meridian(Envelope),
    TwoPc {
        from: DcId,
        to: DcId,
        depth: u32,
        msg: twopc::Msg,
    },
}

impl Wire {
    pub fn from(&self) -> DcId {
        match self {
            Wire::Meridian(e) => e.from,
            Wire::TwoPc { from, .. } => *from,
        }
    }

    pub fn to(&self) -> DcId {
        match self {
            Wire::Meridian(e) => e.to,
            Wire::TwoPc { to, .. } => *to,
        }
    }
}

/// A step's effects (the same contract for both protocols: release in order, after
/// the step's sync).
#[derive(Debug, Default)]
pub struct Step {
    pub send: Vec<Wire>,
    pub apply: Vec<(Version, Writes)>,
    pub replies: Vec<Reply>,
    pub durable_changed: bool,
    /// Meridian's complete point, when it moved (§7.6).
    pub complete: Option<Version>,
    /// Outcomes the step persisted (Meridian; COMMIT = Some(version)), so agreement
    /// is checked on every outcome ever decided, retired ones included.
    pub outcomes: Vec<(TxnKey, Option<Version>)>,
}

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
        match (cfg.protocol, durable) {
            (Protocol::Meridian, d) => {
                let d = match d {
                    Some(DurableState::Meridian(d)) => d,
                    _ => replication::Durable::default(),
                };
                let (p, out) = Participant::restart(participant_config(cfg, me), d, now);
                (Node::Meridian(Box::new(p)), meridian_step(out))
            }
            (Protocol::TwoPc, d) => {
                let d = match d {
                    Some(DurableState::TwoPc(d)) => d,
                    _ => twopc::Durable::default(),
                };
                let (n, out) =
                    twopc::Node::restart(me, cfg.dcs, retransmit(cfg), clock_bound(cfg), d, now);
                (Node::TwoPc(Box::new(n)), twopc_step(me, out))
            }
        }
    }

    pub fn begin(&mut self, now: u64) -> u64 {
        match self {
            Node::Meridian(p) => p.begin(now),
            Node::TwoPc(n) => n.begin(now),
        }
    }

    pub fn commit(
        &mut self,
        now: u64,
        client: u64,
        txn: u64,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> Step {
        match self {
            Node::Meridian(p) => meridian_step(p.commit(now, client, txn, reads, writes)),
            Node::TwoPc(n) => {
                let me = n.me();
                twopc_step(me, n.commit(now, client, reads, writes))
            }
        }
    }

    pub fn receive(&mut self, now: u64, wire: Wire) -> Step {
        match (self, wire) {
            (Node::Meridian(p), Wire::Meridian(env)) => meridian_step(p.receive(now, env)),
            (
                Node::TwoPc(n),
                Wire::TwoPc {
                    from, depth, msg, ..
                },
            ) => {
                let me = n.me();
                twopc_step(me, n.receive(now, from, depth, msg))
            }
            _ => Step::default(),
        }
    }

    pub fn tick(&mut self, now: u64) -> Step {
        match self {
            Node::Meridian(p) => meridian_step(p.tick(now)),
            Node::TwoPc(n) => {
                let me = n.me();
                twopc_step(me, n.tick(now))
            }
        }
    }

    pub fn durable(&self) -> DurableState {
        match self {
            Node::Meridian(p) => DurableState::Meridian(p.durable().clone()),
            Node::TwoPc(n) => DurableState::TwoPc(n.durable().clone()),
        }
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

pub fn participant_config(cfg: &RunConfig, me: DcId) -> participant::Config {
    let wan = cfg.wan_delay_us.max(1_000);
    participant::Config {
        dcs: cfg.dcs,
        me,
        learn: cfg.learn,
        retransmit_us: retransmit(cfg),
        recovery_us: 12 * wan,
        stagger_us: 6 * wan,
        clock_bound_us: clock_bound(cfg),
        // Above the largest one-way delay (50% margin over the 10% jitter) plus ε.
        floor_lag_us: wan * 3 / 2 + clock_bound(cfg) + 1_000,
        closed_period_us: (wan / 5).max(1_000),
    }
}

/// ε for commit wait: the simulated clocks' skew bound.
fn clock_bound(cfg: &RunConfig) -> u64 {
    cfg.clock_skew_us
}

fn retransmit(cfg: &RunConfig) -> u64 {
    8 * cfg.wan_delay_us.max(1_000)
}

fn meridian_step(out: replication::Output) -> Step {
    Step {
        send: out.send.into_iter().map(Wire::Meridian).collect(),
        apply: out.apply,
        replies: out.replies,
        durable_changed: !out.persist.is_empty(),
        complete: out.complete,
        outcomes: out
            .persist
            .iter()
            .filter_map(|e| match e {
                DurableEntry::Outcome(k, Outcome::Committed { version }) => {
                    Some((*k, Some(*version)))
                }
                DurableEntry::Outcome(k, Outcome::Aborted) => Some((*k, None)),
                _ => None,
            })
            .collect(),
    }
}

fn twopc_step(me: DcId, out: twopc::Output) -> Step {
    Step {
        send: out
            .send
            .into_iter()
            .map(|(to, depth, msg)| Wire::TwoPc {
                from: me,
                to,
                depth,
                msg,
            })
            .collect(),
        apply: out.apply,
        replies: out.replies,
        durable_changed: out.durable_changed,
        complete: None,
        outcomes: Vec::new(),
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
