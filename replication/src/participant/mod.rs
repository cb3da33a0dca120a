//! The participant: one data center's side of the cross-DC commit protocol
//! (docs/protocol.md §5–§7), as a deterministic state machine.
//!
//! Files by role: [`origin`](self::origin) (E0, shipping), [`voter`](self::voter) (C0–C2,
//! own vote), [`acceptor`](self::acceptor) (Phase 2 and recovery's Phase 1),
//! [`learner`](self::learner) (deciding, applying, pushing outcomes),
//! [`recovery`](self::recovery) (§7.2), [`floor`](self::floor) (§7.6); this file holds
//! the state, the entry points and the helpers they share.
//!
//! Inputs are a local commit request ([`Participant::commit`]), a message from another
//! DC ([`Participant::receive`]) and the passage of time ([`Participant::tick`]); each
//! returns an [`Output`]: messages to send, committed writes to apply, and replies to
//! local clients. Nothing here touches a clock, socket, disk or thread: the caller
//! passes the time and carries the output out. The simulator (`meridian sim`) and,
//! later, the node runtime drive this same code.
//!
//! Roles (all played by every DC, §2.1): the **origin** checks its own transaction,
//! chooses its version, numbers it and ships the [`Record`] with its own vote; every
//! **voter** checks the record against its committed and prepared state
//! ([`check`](check::check)) and votes as owner of its own vote instance; every
//! **acceptor** accepts votes (Paxos Commit, [`replication::Acceptor`]); every
//! **learner** counts acceptances under the configured [`LearnRule`] and decides
//! COMMIT iff a majority of instances chose Commit; a **recoverer** finishes an
//! attempt whose outcome it has not learned after a ranked timeout with a higher ballot
//! (§7.2).
//!
//! Durability: [`Durable`] is what survives a crash (records, own votes, acceptor
//! state, outcomes, sequence and clock high-water). The caller must make the durable
//! state of a step stable before releasing that step's messages (§2.3): the
//! simulator holds messages until the step's simulated sync completes, and a crash
//! reverts to the last synced [`Durable`]. Everything else (learners, waits, timers,
//! the committed index) is rebuilt by [`Participant::restart`].
//!
//! Invariants (checked by the simulator after every run): one outcome per attempt at
//! every DC; COMMIT only with a majority of COMMIT votes, each cast by a voter that
//! found the record admissible; no wait cycle (a remote record waits only for older
//! prepared transactions, §6).
//!
//! Vote floors and the complete point (§7.6, [`crate::complete`]): the participant raises its
//! floor behind its clock (never past a record waiting to be voted on), votes ABORT on
//! records at or below it (C0), announces it in `Closed`, and publishes A_d in
//! [`Output::complete`] — a snapshot version at which every committed transaction is
//! applied here. Attempts heard of out of order are tracked and, if nobody delivers
//! their outcome, recovered, so each origin's prefix has no permanent gap.
//!
//! Not built yet (docs/protocol.md §11): fencing of a dead voter (§7.3; a dead DC's
//! instances go through per-attempt recovery instead), range catch-up requests (§7.5;
//! outcomes are pushed until every DC acknowledges them instead), garbage collection,
//! read-only checks (§5.8), leases (§5.7).

mod acceptor;
mod floor;
mod learner;
mod origin;
mod recovery;
mod voter;

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;

use crate::check::{self, Checker, CommittedIndex, Verdict};
use crate::clock::DcClock;
use crate::complete::{Closed, CompletePoint};
use crate::durable::{Durable, DurableEntry, RejoinFacts, Slot};
use crate::instance::{decide, quorum, Acceptor, Ballot, DcId, LearnRule, Learner, Recovery, Vote};
use crate::msg::{Envelope, Msg};
use crate::record::{Outcome, ReadEntry, Record, TxnId, TxnKey, Writes};

/// Tunables, all in microseconds of the caller's clock.
#[derive(Clone, Debug)]
pub struct Config {
    pub dcs: usize,
    pub me: DcId,
    pub learn: LearnRule,
    /// τ_retx: resend what an undecided attempt is waiting on.
    pub retransmit_us: u64,
    /// τ_rec: start recovering an attempt after this long without progress.
    pub recovery_us: u64,
    /// τ_stagger: added per rank, so the lowest-ranked live DC recovers first.
    pub stagger_us: u64,
    /// ε: clock offset bound; a commit is acknowledged once the clock passes its
    /// version by this much (commit wait, §5.6).
    pub clock_bound_us: u64,
    /// L_floor: the vote floor trails the clock by this much (§7.6). Records that take
    /// longer to arrive are voted ABORT; must exceed the one-way delay plus ε.
    pub floor_lag_us: u64,
    /// How often the floor is raised and announced (`Closed`).
    pub closed_period_us: u64,
}

impl Config {
    /// A data center alone: every attempt is decided in the step that takes it, with no
    /// messages, no commit wait and no timers that matter.
    pub fn single() -> Config {
        Config {
            dcs: 1,
            me: 0,
            learn: LearnRule::OwnerCounting,
            retransmit_us: 1_000_000,
            recovery_us: 1_000_000,
            stagger_us: 1_000_000,
            clock_bound_us: 0,
            floor_lag_us: 0,
            closed_period_us: 1_000_000,
        }
    }
}

/// Counts of what a participant holds (see [`Participant::gauges`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Attempts with volatile state.
    pub attempts: usize,
    /// Of those, the ones `tick` visits (the others wait only for a push that is not
    /// due yet).
    pub active: usize,
    /// Attempts this DC voted COMMIT on whose outcome it does not know.
    pub prepared: usize,
    /// Remote records waiting for older prepared attempts (E3).
    pub waiting: usize,
    /// Local commits parked behind prepared attempts (E0).
    pub local_waiting: usize,
    /// Attempts this DC is recovering.
    pub recovering: usize,
    /// Keys and reads in the committed index C1–C3 check against.
    pub committed_index: usize,
    /// Records held durably (not yet retired).
    pub records: usize,
    pub floor: Version,
    pub complete: Version,
}

/// How far past now + ε a record's version may be before it counts as issued by a clock
/// that is off (§1.2): room for the HLC's microsecond steps past observed values.
pub const FUTURE_SLACK_US: u64 = 1_000;

/// A local client's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub client: u64,
    pub result: ClientResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResult {
    Committed {
        key: TxnKey,
        version: Version,
        /// WAN delays on the causal chain to the outcome at the origin.
        wan_delays: u32,
    },
    /// SQLSTATE 40001 in SQL terms: retryable.
    Aborted { reason: String },
}

/// What a step asks the caller to do. The caller releases outputs of one participant
/// **in order**, and an output only once the durable state of its step and of every
/// earlier step is synced (a later step may resend what an earlier one decided).
#[derive(Debug, Default)]
pub struct Output {
    pub send: Vec<Envelope>,
    /// Committed writes to install at their version (idempotent).
    pub apply: Vec<(Version, Writes)>,
    pub replies: Vec<Reply>,
    /// The changed durable state, for a runtime to write and sync before it releases
    /// the messages.
    pub persist: Vec<DurableEntry>,
    /// The complete point moved (§7.6): once this output's writes are applied, a
    /// snapshot at this version holds every committed transaction at or below it.
    pub complete: Option<Version>,
    /// Storage keys of retired slots ([`DurableEntry::slot_key`]) to delete, in the
    /// same batch as `persist`.
    pub forget: Vec<Vec<u8>>,
}

/// A commit request waiting at its origin before it is shipped (rule E0).
#[derive(Clone, Debug)]
struct LocalCommit {
    client: u64,
    txn: TxnId,
    reads: Vec<ReadEntry>,
    writes: Writes,
}

/// log2 of the longest wait between two pushes of an outcome, in τ_retx (16 τ_retx).
const PUSH_BACKOFF_MAX_LOG2: u32 = 4;

/// Volatile per-attempt state.
#[derive(Debug)]
struct Attempt {
    /// One per vote instance while undecided; empty once the outcome is known here.
    learners: Vec<Learner>,
    depth: u32,
    /// Highest ballot seen for the attempt: a higher one is progress.
    max_ballot: Option<Ballot>,
    /// When the attempt last made progress here (became known, or a higher ballot).
    progress_at: u64,
    retransmit_at: u64,
    /// Pushes of a decided outcome back off: each waits twice the previous, up to
    /// 2^[`PUSH_BACKOFF_MAX_LOG2`] × τ_retx, so a DC down for long does not cost a message per
    /// decided attempt per τ_retx (it also catches up by itself, §7.5).
    pushes: u32,
    recovery: Option<RecoveryRound>,
    /// DCs known to have the outcome.
    informed: BTreeSet<DcId>,
    /// The local client to answer, and the outcome once learned (commit wait).
    client: Option<u64>,
    committed_unacked: Option<Version>,
}

#[derive(Debug)]
struct RecoveryRound {
    ballot: Ballot,
    started_at: u64,
    /// Per voter whose value is not yet proposed.
    proposers: BTreeMap<DcId, Recovery>,
}

/// One data center's participant.
#[derive(Debug)]
pub struct Participant {
    cfg: Config,
    durable: Durable,
    attempts: BTreeMap<TxnKey, Attempt>,
    /// The attempts `tick` visits: every attempt not parked (it may list some gone).
    active: BTreeSet<TxnKey>,
    /// Decided attempts with nothing to do until their next push (no client waiting,
    /// some DC not informed yet), by when that push is due: `tick` leaves them alone
    /// until then, so a DC down for minutes — thousands of attempts waiting for its
    /// acknowledgement — does not make every tick walk them all. Any other use of an
    /// attempt ([`Self::attempt`]) makes it active again.
    parked: BTreeSet<(u64, TxnKey)>,
    committed: CommittedIndex,
    /// Attempts this DC voted COMMIT on whose outcome it does not know.
    prepared: BTreeSet<TxnKey>,
    /// Remote records waiting for older prepared attempts.
    waiting: BTreeSet<TxnKey>,
    /// Local commits waiting for prepared attempts (not shipped yet).
    local_waiting: Vec<LocalCommit>,
    complete_point: CompletePoint,
    /// Per origin: decided attempts above the retired ones whose outcome every DC
    /// holds durably; retired once they extend the retired prefix (see `retire_settled`).
    settled: Vec<BTreeSet<u64>>,
    /// When the floor is next raised and announced.
    closed_at: u64,
    /// Per origin, the first fenced attempt (below `Durable::fence`) whose outcome is
    /// not known here yet; all at or past the fence: this DC may vote again (§7.7).
    fence_pending: Vec<u64>,
    /// DCs evicted here (out of contact longer than this DC keeps history for them,
    /// docs/protocol.md §7.8): counted as holding every outcome, so nothing waits for
    /// their acknowledgement to be retired, until one is rebuilt ([`Self::peer_rejoined`]).
    evicted: BTreeSet<DcId>,
    /// DCs not heard from lately (the caller's judgement): an attempt whose outcome
    /// waits only for their votes is recovered without waiting for τ_rec.
    suspected: BTreeSet<DcId>,
    /// The oldest snapshot a local transaction may still read at (None: unknown); with
    /// one data center it bounds the committed index (see [`Participant::set_read_horizon`]).
    read_horizon: Option<Version>,
    now: u64,
}

impl Participant {
    /// A fresh participant with nothing durable.
    pub fn new(cfg: Config) -> Participant {
        Participant::restart(cfg, Durable::default(), 0).0
    }

    /// Takes new timers (τ_retx, τ_rec, τ_stagger, L_floor, ε, the `Closed` period)
    /// from `cfg`, e.g. after the WAN delay changed; the cluster's shape and learning
    /// rule stay. Safe at any time: the floor never moves back (a longer L_floor only
    /// holds it until the clock catches up), and timers only decide when things happen.
    pub fn set_timers(&mut self, cfg: &Config) {
        self.cfg.retransmit_us = cfg.retransmit_us;
        self.cfg.recovery_us = cfg.recovery_us;
        self.cfg.stagger_us = cfg.stagger_us;
        self.cfg.clock_bound_us = cfg.clock_bound_us;
        self.cfg.floor_lag_us = cfg.floor_lag_us;
        self.cfg.closed_period_us = cfg.closed_period_us;
    }

    /// Rebuilds the volatile state from `durable` after a crash (§7.4).
    pub fn restart(cfg: Config, durable: Durable, now: u64) -> (Participant, Output) {
        let complete_point = CompletePoint::new(cfg.dcs, cfg.me, &durable.retired, &durable.fence);
        let mut p = Participant {
            durable,
            attempts: BTreeMap::new(),
            active: BTreeSet::new(),
            parked: BTreeSet::new(),
            committed: CommittedIndex::default(),
            prepared: BTreeSet::new(),
            waiting: BTreeSet::new(),
            local_waiting: Vec::new(),
            complete_point,
            settled: vec![BTreeSet::new(); cfg.dcs],
            fence_pending: vec![1; cfg.dcs],
            evicted: BTreeSet::new(),
            suspected: BTreeSet::new(),
            closed_at: now,
            read_horizon: None,
            now,
            cfg,
        };
        let mut out = Output::default();
        for (key, outcome) in &p.durable.outcomes {
            if let (Outcome::Committed { version }, Some(record)) =
                (outcome, p.durable.records.get(key))
            {
                p.committed.add(record);
                out.apply.push((*version, record.writes.clone()));
            }
        }
        for (key, version) in &p.durable.retired_writes {
            p.committed.add_version(key, *version);
        }
        p.committed.prune(p.durable.floor);
        for key in p.durable.known() {
            // Decided attempts too: which DCs know their outcome was volatile, so the
            // outcome is pushed again until acknowledged (a stand-in for the gapless
            // catch-up of §7.5).
            p.attempt(key);
            if p.durable.outcomes.contains_key(&key) {
                continue;
            }
            match p.durable.own_votes.get(&key) {
                Some(Vote::Commit) => {
                    p.prepared.insert(key);
                }
                Some(Vote::Abort) => {}
                None if p.durable.records.contains_key(&key) && !p.durable.is_fenced(key) => {
                    p.waiting.insert(key);
                }
                None => {}
            }
        }
        for (key, vote) in &p.durable.own_votes {
            if let (Vote::Commit, Some(record)) = (vote, p.durable.records.get(key)) {
                p.complete_point
                    .voted_commit(*key, record.version, p.durable.floor);
            }
            p.complete_point.heard_of(*key);
        }
        for key in p.durable.known() {
            p.complete_point.heard_of(key);
        }
        p.track_missing();
        p.recheck_waiting(&mut out);
        let out = p.finish_step(out);
        (p, out)
    }

    /// The oldest version a local transaction may still read at: every live snapshot
    /// is at or above it, and so is every later one. With one data center every record
    /// is local, so the committed index then forgets keys whose newest version is at
    /// or below both it and the floor (a locked read's version is the key's newest,
    /// held under its lock until the commit is applied). Ignored with several data
    /// centers, whose records carry other DCs' snapshots.
    pub fn set_read_horizon(&mut self, horizon: Version) {
        self.read_horizon = Some(horizon);
    }

    /// DC `dc` is rejoining by state transfer (docs/protocol.md §7.7): from now on this
    /// DC pushes every outcome it holds to `dc` again until `dc` acknowledges it (what
    /// `dc` acknowledged before was lost with its directory, and is not retired here
    /// until the new directory holds it), and tells it the facts it needs to fence what
    /// its previous incarnation may have promised. The returned output must be durable
    /// before the facts leave this DC (the fence is this DC's `next_seq`, persisted in it).
    pub fn peer_rejoined(&mut self, now: u64, dc: DcId) -> (Output, RejoinFacts) {
        self.now = now;
        self.evicted.remove(&dc);
        let retransmit = self.cfg.retransmit_us;
        for a in self.attempts.values_mut() {
            if a.informed.remove(&dc) {
                a.pushes = 0;
                a.retransmit_at = now + retransmit;
            }
        }
        self.active.extend(self.attempts.keys());
        self.durable.mark(Slot::Meta);
        let facts = RejoinFacts {
            from: self.cfg.me,
            fence: self.durable.next_seq + 1,
            highest_of_rejoiner: self
                .durable
                .highest_known(dc)
                .max(self.complete_point.known(dc)),
            floor_of_rejoiner: self.complete_point.announced_floor(dc),
            hlc: self.durable.hlc.last(),
        };
        (self.finish_step(Output::default()), facts)
    }

    /// DC `dc` is evicted (docs/protocol.md §7.8): it was out of contact for longer than
    /// this DC keeps history for it, and its directory is refused from now on (the
    /// caller records that durably and calls this again after every restart). From now
    /// on it counts as holding every outcome: what only it had not acknowledged is
    /// retired, and no outcome is pushed to it. It takes part again only once rebuilt
    /// from its peers, which [`Self::peer_rejoined`] notes. Safe at any time: an evicted
    /// DC is one that no longer answers, and a rebuild fences whatever its lost
    /// directory promised; only outcomes every other DC holds are retired.
    pub fn evict(&mut self, dc: DcId) {
        if dc == self.cfg.me || usize::from(dc) >= self.cfg.dcs || !self.evicted.insert(dc) {
            return;
        }
        for a in self.attempts.values_mut() {
            a.informed.insert(dc);
        }
        self.active.extend(self.attempts.keys());
    }

    /// The DCs not heard from lately, as the caller judges (the node: no batch for half a
    /// second). While the others, this DC included, are a majority, an undecided attempt
    /// whose open instances are suspected voters' or hold a value this DC's acceptor
    /// accepted — e.g. a split vote, which with a DC down only that DC's instance can
    /// settle — is recovered after its rank's stagger instead of τ_rec + stagger: the
    /// Phase 1 adopts every value this DC accepted and ABORT fills only the suspected
    /// voters' instances. A stand-in for fencing (docs/protocol.md §7.3). A wrong
    /// suspicion costs at most the suspected DC's vote on such attempts, never safety;
    /// a DC that suspects a majority (it is cut off, or its inbox stalled) starts
    /// nothing early.
    pub fn set_suspected(&mut self, dcs: Vec<DcId>) {
        self.suspected = dcs.into_iter().filter(|d| *d != self.cfg.me).collect();
    }

    /// What the participant holds right now (the node's periodic log line, tests).
    pub fn gauges(&self) -> Gauges {
        Gauges {
            attempts: self.attempts.len(),
            active: self.attempts.len().min(self.active.len()),
            prepared: self.prepared.len(),
            waiting: self.waiting.len(),
            local_waiting: self.local_waiting.len(),
            recovering: self
                .attempts
                .values()
                .filter(|a| a.recovery.is_some())
                .count(),
            committed_index: self.committed.size(),
            records: self.durable.records.len(),
            floor: self.durable.floor,
            complete: self.complete_point.complete(),
        }
    }

    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    /// Protocol records held (not yet retired): a constant-time [`Gauges::records`].
    pub fn records_held(&self) -> usize {
        self.durable.records.len()
    }

    /// Per DC, the attempts held here that it is not known to hold the outcome of: the
    /// history kept for it (§7.8). Walks every attempt.
    pub fn held_for(&self) -> Vec<usize> {
        let mut held = vec![0; self.cfg.dcs];
        for a in self.attempts.values() {
            for (dc, n) in held.iter_mut().enumerate() {
                if dc != usize::from(self.cfg.me) && !a.informed.contains(&(dc as DcId)) {
                    *n += 1;
                }
            }
        }
        held
    }

    /// A_d (§7.6): every committed transaction with a version at or below it has been
    /// handed to the caller to apply.
    pub fn complete(&self) -> Version {
        self.complete_point.complete()
    }

    /// A wound-wait priority for a transaction beginning now (an HLC value).
    pub fn begin(&mut self, now: u64) -> TxnId {
        self.now = now;
        self.issue(0)
    }

    /// The origin commits a transaction that executed here: `reads` observed the
    /// listed versions, `writes` are buffered. The reply comes in this or a later output.
    pub fn commit(
        &mut self,
        now: u64,
        client: u64,
        txn: TxnId,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> Output {
        self.now = now;
        let mut out = Output::default();
        self.try_ship(
            LocalCommit {
                client,
                txn,
                reads,
                writes,
            },
            &mut out,
        );
        self.finish_step(out)
    }

    /// Handles a message from another DC.
    pub fn receive(&mut self, now: u64, env: Envelope) -> Output {
        self.now = now;
        let mut out = Output::default();
        if !self.well_formed(&env) {
            // Not from a peer of this cluster's shape (a misconfigured node, or
            // garbage that decoded): dropped, as a lost message would be.
            return self.finish_step(out);
        }
        let Some(txn) = env.msg.txn() else {
            if let Msg::Closed(closed) = env.msg {
                self.complete_point.announced(env.from, closed);
                self.track_missing();
            }
            return self.finish_step(out);
        };
        if self.durable.is_retired(txn) {
            // Every DC holds its outcome durably: a late message needs no answer, but a
            // DC that pushes the outcome has not heard that this one has it.
            if let Msg::Decision { .. } = env.msg {
                self.send(env.from, Msg::DecisionAck { txn }, &mut out);
            }
            return self.finish_step(out);
        }
        if self.complete_point.heard_of_new(txn) {
            self.track_missing();
        }
        if let Some(outcome) = self.durable.outcomes.get(&txn).copied() {
            self.answer_decided(env, txn, outcome, &mut out);
            return self.finish_step(out);
        }
        if self.durable.is_fenced(txn)
            && matches!(env.msg, Msg::Vote2a { .. } | Msg::Prepare1a { .. })
        {
            // A previous incarnation of this DC may have accepted or promised in it:
            // this one is no acceptor there (it still learns the outcome).
            return self.finish_step(out);
        }
        let a = self.attempt(txn);
        a.depth = a.depth.max(env.depth);
        let from = env.from;
        match env.msg {
            Msg::Record { record } => self.on_record(record, &mut out),
            Msg::Vote2a {
                txn,
                voter,
                ballot,
                vote,
            } => self.on_vote(from, txn, voter, ballot, vote, &mut out),
            Msg::Accepted2b {
                txn,
                voter,
                ballot,
                vote,
            } => {
                self.see_ballot(txn, ballot, true);
                self.learn(txn, voter, from, ballot, vote, &mut out);
            }
            Msg::Reject {
                txn,
                voter: _,
                promised,
            } => {
                self.see_ballot(txn, promised, false);
                let a = self.attempt(txn);
                if a.recovery.as_ref().is_some_and(|r| r.ballot < promised) {
                    a.recovery = None;
                }
            }
            Msg::Prepare1a {
                txn,
                ballot,
                voters,
            } => self.on_prepare(from, txn, ballot, voters, &mut out),
            Msg::Promise1b {
                txn,
                ballot,
                accepted,
                record,
            } => self.on_promise(from, txn, ballot, accepted, record, &mut out),
            Msg::Decision {
                txn,
                outcome,
                record,
            } => {
                if let Some(record) = record {
                    self.keep_record(record);
                }
                // The sender holds the outcome durably: no need to push it back.
                self.attempt(txn).informed.insert(from);
                self.decided(txn, outcome, &mut out);
                // Acknowledged only once held (a COMMIT without its record is not yet:
                // the sender would count this DC as informed and may retire it).
                if self.durable.outcomes.contains_key(&txn) {
                    self.send(from, Msg::DecisionAck { txn }, &mut out);
                }
            }
            Msg::DecisionAck { .. } | Msg::Closed(_) => {}
            Msg::FetchRecord { txn } => {
                if let Some(record) = self.durable.records.get(&txn).cloned() {
                    self.send(from, Msg::Record { record }, &mut out);
                }
            }
        }
        self.finish_step(out)
    }

    /// Time passes: retransmissions, recoveries, commit waits.
    pub fn tick(&mut self, now: u64) -> Output {
        self.now = now;
        let mut out = Output::default();
        while let Some(&(due, key)) = self.parked.first() {
            if due > now {
                break;
            }
            self.parked.pop_first();
            self.active.insert(key);
        }
        let keys: Vec<TxnKey> = self.active.iter().copied().collect();
        for key in keys {
            if !self.attempts.contains_key(&key) {
                self.active.remove(&key);
                continue;
            }
            match self.durable.outcomes.get(&key).copied() {
                Some(outcome) => {
                    self.tick_decided(key, outcome, &mut out);
                    self.park_if_idle(key);
                }
                None => self.tick_undecided(key, &mut out),
            }
        }
        if self.cfg.dcs > 1 && now >= self.closed_at {
            self.closed_at = now + self.cfg.closed_period_us;
            self.raise_floor(&mut out);
            self.retire_settled();
        }
        self.finish_step(out)
    }

    // ---- helpers ----

    /// Parks decided attempt `key` until its next push if nothing else is left to do
    /// for it (see `parked`).
    fn park_if_idle(&mut self, key: TxnKey) {
        let others = self.others().count();
        let Some(a) = self.attempts.get(&key) else {
            return;
        };
        if a.client.is_none() && a.informed.len() < others && a.retransmit_at > self.now {
            self.active.remove(&key);
            self.parked.insert((a.retransmit_at, key));
        }
    }

    fn attempt(&mut self, key: TxnKey) -> &mut Attempt {
        self.active.insert(key);
        let (dcs, rule, now) = (self.cfg.dcs, self.cfg.learn, self.now);
        let retransmit = self.cfg.retransmit_us;
        let evicted = &self.evicted;
        let decided = self.durable.outcomes.contains_key(&key);
        self.attempts.entry(key).or_insert_with(|| Attempt {
            learners: if decided {
                Vec::new()
            } else {
                (0..dcs as DcId)
                    .map(|v| Learner::new(v, dcs, rule))
                    .collect()
            },
            depth: 0,
            max_ballot: None,
            progress_at: now,
            retransmit_at: now + retransmit,
            pushes: 0,
            recovery: None,
            informed: evicted.clone(),
            client: None,
            committed_unacked: None,
        })
    }

    /// Whether every attempt a previous incarnation of this DC may have voted on (those
    /// below the fence, §7.7) has a known outcome here. Until then this DC votes on
    /// nothing, its own commits included: its lost directory may have voted COMMIT on an
    /// attempt it has not even heard of, and a COMMIT vote here on a conflicting record
    /// could then join a quorum that never saw it, while the lost vote completes another.
    fn fence_cleared(&mut self) -> bool {
        for origin in 0..self.cfg.dcs {
            let fence = self.durable.fence.get(origin).copied().unwrap_or(0);
            let next = &mut self.fence_pending[origin];
            while *next < fence {
                let key = TxnKey {
                    origin: origin as DcId,
                    seq: *next,
                };
                if !self.durable.is_retired(key) && !self.durable.outcomes.contains_key(&key) {
                    return false;
                }
                *next += 1;
            }
        }
        true
    }

    /// Notes a ballot. A higher one than seen restarts the recovery timer only when it
    /// is `accepted` (a phase-2 message: the round's proposer heard a quorum of
    /// promises, so it is making progress). A prepare or a rejection naming a higher
    /// promise is not progress: a DC that sends but cannot hear re-prepares at ever
    /// higher ballots that never complete, and must not hold back the DCs that could
    /// recover (their rounds start above its ballots).
    fn see_ballot(&mut self, key: TxnKey, ballot: Ballot, accepted: bool) {
        let now = self.now;
        let a = self.attempt(key);
        if a.max_ballot.is_none_or(|b| ballot > b) {
            a.max_ballot = Some(ballot);
            if ballot.round > 0 && accepted {
                a.progress_at = now;
            }
        }
    }

    /// Keeps a record (durably) and absorbs its version into the HLC, so versions this
    /// DC issues later are above it — unless the version is from beyond the clock bound
    /// ([`Participant::is_beyond_the_clock_bound`]): such a record is voted ABORT, and its
    /// version is absorbed only if it commits all the same (when it is applied).
    fn keep_record(&mut self, record: Record) {
        if !self.is_beyond_the_clock_bound(record.version) {
            self.durable.observe(record.version);
        }
        let key = record.key;
        if let std::collections::btree_map::Entry::Vacant(e) = self.durable.records.entry(key) {
            e.insert(record);
            self.durable.mark(Slot::Record(key));
        }
    }

    /// Whether `version` is further ahead of this DC's clock than any DC within the
    /// clock bound can issue: physical time above now + ε + [`FUTURE_SLACK_US`]. Every
    /// correct clock issues at most its reading (plus the HLC's microsecond steps past
    /// what it observed), so such a version comes from a clock that is off, and
    /// absorbing it would drag this DC's HLC — and every commit wait after it — forward.
    fn is_beyond_the_clock_bound(&self, version: Version) -> bool {
        self.cfg.dcs > 1
            && DcClock::physical(version) > self.now + self.cfg.clock_bound_us + FUTURE_SLACK_US
    }

    /// The next HLC value above `above`, tagged with this DC's id in the low 8 bits.
    fn issue(&mut self, above: Version) -> Version {
        self.durable.mark(Slot::Meta);
        self.durable.hlc.issue(self.cfg.me, self.now, above)
    }

    fn others(&self) -> impl Iterator<Item = DcId> + use<> {
        let me = self.cfg.me;
        (0..self.cfg.dcs as DcId).filter(move |d| *d != me)
    }

    /// Tells every other DC this one accepted `vote` at `ballot` for (key, voter).
    fn broadcast_accepted(
        &mut self,
        key: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
        out: &mut Output,
    ) {
        self.broadcast(
            Msg::Accepted2b {
                txn: key,
                voter,
                ballot,
                vote,
            },
            out,
        );
    }

    /// Sends `msg` to every other DC.
    fn broadcast(&mut self, msg: Msg, out: &mut Output) {
        for to in self.others() {
            self.send(to, msg.clone(), out);
        }
    }

    fn send(&mut self, to: DcId, msg: Msg, out: &mut Output) {
        let depth = msg
            .txn()
            .and_then(|t| self.attempts.get(&t))
            .map_or(0, |a| a.depth)
            + 1;
        out.send.push(Envelope {
            from: self.cfg.me,
            to,
            depth,
            msg,
        });
    }

    /// Whether every DC an envelope names exists, and it is from another DC to this one.
    fn well_formed(&self, env: &Envelope) -> bool {
        let dcs = self.cfg.dcs;
        let dc = |d: &DcId| usize::from(*d) < dcs;
        let names_dcs = match &env.msg {
            Msg::Record { record } => dc(&record.key.origin),
            Msg::Vote2a { txn, voter, .. }
            | Msg::Accepted2b { txn, voter, .. }
            | Msg::Reject { txn, voter, .. } => dc(&txn.origin) && dc(voter),
            Msg::Prepare1a { txn, voters, .. } => dc(&txn.origin) && voters.iter().all(dc),
            Msg::Promise1b { txn, accepted, .. } => {
                dc(&txn.origin) && accepted.iter().all(|(v, _)| dc(v))
            }
            Msg::Decision { txn, .. } | Msg::DecisionAck { txn } | Msg::FetchRecord { txn } => {
                dc(&txn.origin)
            }
            Msg::Closed(closed) => closed.voted_upto.len() == dcs,
        };
        names_dcs && env.to == self.cfg.me && env.from != self.cfg.me && dc(&env.from)
    }

    fn finish_step(&mut self, mut out: Output) -> Output {
        if self.cfg.dcs == 1 {
            self.follow_clock();
        }
        let before = self.complete_point.complete();
        out.complete = self.complete_point.advance(&self.durable.outcomes);
        assert!(
            self.complete_point.complete() >= before,
            "DC {}: the complete point went back from {before} to {}",
            self.cfg.me,
            self.complete_point.complete()
        );
        if self.cfg.dcs == 1 {
            self.retire_applied();
        }
        out.persist = self.durable.take_changes();
        out.forget = self.durable.take_forgotten();
        out
    }
}

#[cfg(test)]
mod tests;
