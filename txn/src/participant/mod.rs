//! The participant: one data center's side of the cross-DC commit protocol
//! (docs/protocol.md §5–§7), as a deterministic state machine.
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
//! Vote floors and the complete point (§7.6, [`horizon`]): the participant raises its
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

pub mod check;
pub mod durable;
pub mod horizon;
pub mod record;

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;
use replication::{decide, Acceptor, Ballot, DcId, LearnRule, Learner, Recovery, Vote};

use self::check::{Checker, CommittedIndex, Verdict};
use self::durable::Slot;
pub use self::durable::{Durable, DurableEntry};
pub use self::horizon::Closed;
use self::horizon::Horizon;
pub use self::record::{Envelope, Msg, Outcome, ReadEntry, Record, TxnKey, Writes};
use crate::clock::DcClock;
use crate::locks::TxnId;

/// Tunables, all in microseconds of the caller's clock.
#[derive(Clone, Debug)]
pub struct Config {
    pub dcs: usize,
    pub me: DcId,
    pub learn: LearnRule,
    /// τ_retx: resend what an undecided attempt is waiting on.
    pub retransmit: u64,
    /// τ_rec: start recovering an attempt after this long without progress.
    pub recovery: u64,
    /// τ_stagger: added per rank, so the lowest-ranked live DC recovers first.
    pub stagger: u64,
    /// ε: clock offset bound; a commit is acknowledged once the clock passes its
    /// version by this much (commit wait, §5.6).
    pub clock_bound: u64,
    /// L_floor: the vote floor trails the clock by this much (§7.6). Records that take
    /// longer to arrive are voted ABORT; must exceed the one-way delay plus ε.
    pub floor_lag: u64,
    /// How often the floor is raised and announced (`Closed`).
    pub closed_period: u64,
}

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
    committed: CommittedIndex,
    /// Attempts this DC voted COMMIT on whose outcome it does not know.
    prepared: BTreeSet<TxnKey>,
    /// Remote records waiting for older prepared attempts.
    waiting: BTreeSet<TxnKey>,
    /// Local commits waiting for prepared attempts (not shipped yet).
    local_waiting: Vec<LocalCommit>,
    horizon: Horizon,
    /// When the floor is next raised and announced.
    closed_at: u64,
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
        self.cfg.retransmit = cfg.retransmit;
        self.cfg.recovery = cfg.recovery;
        self.cfg.stagger = cfg.stagger;
        self.cfg.clock_bound = cfg.clock_bound;
        self.cfg.floor_lag = cfg.floor_lag;
        self.cfg.closed_period = cfg.closed_period;
    }

    /// Rebuilds the volatile state from `durable` after a crash (§7.4).
    pub fn restart(cfg: Config, durable: Durable, now: u64) -> (Participant, Output) {
        let mut p = Participant {
            durable,
            attempts: BTreeMap::new(),
            committed: CommittedIndex::default(),
            prepared: BTreeSet::new(),
            waiting: BTreeSet::new(),
            local_waiting: Vec::new(),
            horizon: Horizon::new(cfg.dcs, cfg.me),
            closed_at: now,
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
                None if p.durable.records.contains_key(&key) => {
                    p.waiting.insert(key);
                }
                None => {}
            }
        }
        for (key, vote) in &p.durable.own_votes {
            if let (Vote::Commit, Some(record)) = (vote, p.durable.records.get(key)) {
                p.horizon
                    .voted_commit(*key, record.version, p.durable.floor);
            }
            p.horizon.heard_of(*key);
        }
        for key in p.durable.known() {
            p.horizon.heard_of(key);
        }
        p.track_missing();
        p.recheck_waiting(&mut out);
        let out = p.finish_step(out);
        (p, out)
    }

    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    /// A_d (§7.6): every committed transaction with a version at or below it has been
    /// handed to the caller to apply.
    pub fn complete(&self) -> Version {
        self.horizon.complete()
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
        let Some(txn) = env.msg.txn() else {
            if let Msg::Closed(closed) = env.msg {
                self.horizon.announced(env.from, closed);
                self.track_missing();
            }
            return self.finish_step(out);
        };
        if self.horizon.heard_of_new(txn) {
            self.track_missing();
        }
        if let Some(outcome) = self.durable.outcomes.get(&txn).copied() {
            self.answer_decided(env, txn, outcome, &mut out);
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
                self.see_ballot(txn, ballot);
                self.learn(txn, voter, from, ballot, vote, &mut out);
            }
            Msg::Reject {
                txn,
                voter: _,
                promised,
            } => {
                self.see_ballot(txn, promised);
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
                self.send(from, Msg::DecisionAck { txn }, &mut out);
                self.decided(txn, outcome, &mut out);
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
        let keys: Vec<TxnKey> = self.attempts.keys().copied().collect();
        for key in keys {
            match self.durable.outcomes.get(&key).copied() {
                Some(outcome) => self.tick_decided(key, outcome, &mut out),
                None => self.tick_undecided(key, &mut out),
            }
        }
        if now >= self.closed_at {
            self.closed_at = now + self.cfg.closed_period;
            self.raise_floor(&mut out);
        }
        self.finish_step(out)
    }

    // ---- floors and the complete point (§7.6) ----

    /// Raises the floor behind the clock, never past a record still waiting to be
    /// voted on, and announces it.
    fn raise_floor(&mut self, out: &mut Output) {
        let mut target = DcClock::latest_at(self.now.saturating_sub(self.cfg.floor_lag));
        for key in &self.waiting {
            if let Some(r) = self.durable.records.get(key) {
                target = target.min(r.version - 1);
            }
        }
        if target > self.durable.floor {
            self.durable.floor = target;
            self.durable.mark(Slot::Meta);
            self.committed.prune(target);
        }
        let closed = self.horizon.raise(self.durable.floor);
        self.broadcast_closed(closed, out);
    }

    fn broadcast_closed(&mut self, closed: Closed, out: &mut Output) {
        for to in self.others() {
            out.send.push(Envelope {
                from: self.cfg.me,
                to,
                depth: 0,
                msg: Msg::Closed(closed.clone()),
            });
        }
    }

    /// Tracks every attempt known to exist without a known outcome, so that one nobody
    /// pushes here is recovered (§7.5).
    fn track_missing(&mut self) {
        for key in self.horizon.missing() {
            if !self.durable.outcomes.contains_key(&key) {
                self.attempt(key);
            }
        }
    }

    // ---- origin ----

    /// Checks a local commit; ships it, answers ABORT, or parks it (E0).
    fn try_ship(&mut self, c: LocalCommit, out: &mut Output) {
        let mut above = 0;
        for r in &c.reads {
            above = above.max(r.lo);
        }
        for (k, _) in &c.writes {
            above = above.max(self.committed.latest(k));
        }
        // Above the floor too (C0 at the origin): a wall clock that stepped back, or a
        // restart on a slow clock, must not issue a version the floor already passed —
        // the complete point and the pruned committed index both rely on it.
        let version = self.issue(above.max(self.durable.floor));
        let key = TxnKey {
            origin: self.cfg.me,
            seq: self.durable.next_seq + 1,
        };
        let record = Record {
            key,
            txn: c.txn,
            version,
            reads: c.reads.clone(),
            writes: c.writes.clone(),
        };
        match self.verdict(&record, Checker::Origin) {
            Verdict::Abort(reason) => out.replies.push(Reply {
                client: c.client,
                result: ClientResult::Aborted { reason },
            }),
            Verdict::Wait(_) => self.local_waiting.push(c),
            Verdict::Commit => {
                self.durable.next_seq += 1;
                self.durable.records.insert(key, record.clone());
                self.durable.mark(Slot::Meta);
                self.durable.mark(Slot::Record(key));
                let a = self.attempt(key);
                a.client = Some(c.client);
                self.broadcast(
                    Msg::Record {
                        record: record.clone(),
                    },
                    out,
                );
                self.cast_own_vote(key, Vote::Commit, out);
            }
        }
    }

    // ---- voter ----

    fn on_record(&mut self, record: Record, out: &mut Output) {
        let key = record.key;
        self.keep_record(record);
        if self.try_decide(key, out) {
            return;
        }
        match self.durable.own_votes.get(&key).copied() {
            Some(vote) => self.send_own_vote(key, vote, out),
            None => self.vote_on(key, out),
        }
    }

    /// Checks a received record and votes, or parks it (E3).
    fn vote_on(&mut self, key: TxnKey, out: &mut Output) {
        let Some(record) = self.durable.records.get(&key).cloned() else {
            return;
        };
        if record.version <= self.durable.floor {
            // C0: the floor has passed this version (it arrived too late).
            self.cast_own_vote(key, Vote::Abort, out);
            return;
        }
        match self.verdict(&record, Checker::Remote) {
            Verdict::Commit => self.cast_own_vote(key, Vote::Commit, out),
            Verdict::Abort(_) => self.cast_own_vote(key, Vote::Abort, out),
            Verdict::Wait(_) => {
                self.waiting.insert(key);
            }
        }
    }

    fn verdict(&self, record: &Record, checker: Checker) -> Verdict {
        let prepared = self
            .prepared
            .iter()
            .filter_map(|k| self.durable.records.get(k));
        check::check(record, &self.committed, prepared, checker)
    }

    /// Votes as owner of this DC's instance at its own ballot, unless a recoverer's
    /// higher ballot got there first (then the instance is decided without this vote).
    fn cast_own_vote(&mut self, key: TxnKey, vote: Vote, out: &mut Output) {
        self.waiting.remove(&key);
        let me = self.cfg.me;
        let ballot = Ballot::own(me);
        let acceptor = self.durable.acceptors.entry((key, me)).or_default();
        if acceptor.accept(ballot, vote).is_err() {
            return;
        }
        self.durable.own_votes.insert(key, vote);
        self.durable.mark(Slot::OwnVote(key));
        self.durable.mark(Slot::Acceptor(key, me));
        if vote == Vote::Commit {
            self.prepared.insert(key);
            if let Some(r) = self.durable.records.get(&key) {
                self.horizon
                    .voted_commit(key, r.version, self.durable.floor);
            }
        }
        self.send_own_vote(key, vote, out);
        self.learn(key, me, me, ballot, vote, out);
    }

    fn send_own_vote(&mut self, key: TxnKey, vote: Vote, out: &mut Output) {
        let me = self.cfg.me;
        self.broadcast(
            Msg::Vote2a {
                txn: key,
                voter: me,
                ballot: Ballot::own(me),
                vote,
            },
            out,
        );
    }

    // ---- acceptor ----

    fn on_vote(
        &mut self,
        from: DcId,
        key: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
        out: &mut Output,
    ) {
        self.see_ballot(key, ballot);
        let acceptor = self.durable.acceptors.entry((key, voter)).or_default();
        match acceptor.accept(ballot, vote) {
            Ok(()) => {
                self.durable.mark(Slot::Acceptor(key, voter));
                self.broadcast_accepted(key, voter, ballot, vote, out);
                let me = self.cfg.me;
                // The owner's acceptance, implied by its Vote2a (owner-counting only;
                // the learner ignores it under the conservative rule when it is the
                // voter's own ballot).
                self.learn(key, voter, ballot.owner, ballot, vote, out);
                self.learn(key, voter, me, ballot, vote, out);
            }
            Err(rejected) => self.send(
                from,
                Msg::Reject {
                    txn: key,
                    voter,
                    promised: rejected.promised,
                },
                out,
            ),
        }
    }

    fn on_prepare(
        &mut self,
        from: DcId,
        key: TxnKey,
        ballot: Ballot,
        voters: Vec<DcId>,
        out: &mut Output,
    ) {
        self.see_ballot(key, ballot);
        // All or nothing: a promise for some instances of the round is useless to it.
        for &voter in &voters {
            let promised = self
                .durable
                .acceptors
                .get(&(key, voter))
                .and_then(Acceptor::promised);
            if let Some(promised) = promised.filter(|p| *p > ballot) {
                self.send(
                    from,
                    Msg::Reject {
                        txn: key,
                        voter,
                        promised,
                    },
                    out,
                );
                return;
            }
        }
        let mut accepted = Vec::with_capacity(voters.len());
        for voter in voters {
            let acceptor = self.durable.acceptors.entry((key, voter)).or_default();
            if let Ok(a) = acceptor.prepare(ballot) {
                accepted.push((voter, a));
            }
            self.durable.mark(Slot::Acceptor(key, voter));
        }
        let record = self.durable.records.get(&key).cloned();
        self.send(
            from,
            Msg::Promise1b {
                txn: key,
                ballot,
                accepted,
                record,
            },
            out,
        );
    }

    // ---- learner ----

    /// Counts acceptor `by`'s acceptance of (ballot, vote) for instance (key, voter).
    fn learn(
        &mut self,
        key: TxnKey,
        voter: DcId,
        by: DcId,
        ballot: Ballot,
        vote: Vote,
        out: &mut Output,
    ) {
        let a = self.attempt(key);
        let Some(learner) = a.learners.get_mut(usize::from(voter)) else {
            return;
        };
        if learner.on_accepted(by, ballot, vote).is_some() {
            self.try_decide(key, out);
        }
    }

    /// Decides from the chosen votes if a majority agrees; true once decided.
    fn try_decide(&mut self, key: TxnKey, out: &mut Output) -> bool {
        if self.durable.outcomes.contains_key(&key) {
            return true;
        }
        let Some(a) = self.attempts.get(&key) else {
            return false;
        };
        let chosen: Vec<Option<Vote>> = a.learners.iter().map(Learner::chosen).collect();
        match decide(&chosen) {
            Some(Vote::Abort) => {
                self.decided(key, Outcome::Aborted, out);
                true
            }
            Some(Vote::Commit) => match self.durable.records.get(&key) {
                Some(r) => {
                    let version = r.version;
                    self.decided(key, Outcome::Committed { version }, out);
                    true
                }
                None => {
                    // Every commit quorum holds the record: ask everyone.
                    self.broadcast(Msg::FetchRecord { txn: key }, out);
                    false
                }
            },
            None => false,
        }
    }

    /// Records and acts on a learned outcome.
    fn decided(&mut self, key: TxnKey, outcome: Outcome, out: &mut Output) {
        if self.durable.outcomes.contains_key(&key) {
            return;
        }
        if let Outcome::Committed { .. } = outcome {
            let Some(record) = self.durable.records.get(&key) else {
                self.broadcast(Msg::FetchRecord { txn: key }, out);
                return;
            };
            self.committed.add(record);
            out.apply.push((record.version, record.writes.clone()));
        }
        self.durable.outcomes.insert(key, outcome);
        self.durable.mark(Slot::Outcome(key));
        self.prepared.remove(&key);
        self.waiting.remove(&key);
        let a = self.attempt(key);
        a.recovery = None;
        match (outcome, a.client) {
            (Outcome::Committed { version }, Some(_)) => a.committed_unacked = Some(version),
            (Outcome::Aborted, Some(client)) => {
                a.client = None;
                out.replies.push(Reply {
                    client,
                    result: ClientResult::Aborted {
                        reason: "the commit protocol decided ABORT".into(),
                    },
                });
            }
            _ => {}
        }
        self.release_ack(key, out);
        self.broadcast_decision(key, out);
        self.recheck_waiting(out);
    }

    /// Answers the client of a committed attempt once commit wait has passed.
    fn release_ack(&mut self, key: TxnKey, out: &mut Output) {
        let now = self.now;
        let bound = self.cfg.clock_bound;
        let Some(a) = self.attempts.get_mut(&key) else {
            return;
        };
        let (Some(client), Some(version)) = (a.client, a.committed_unacked) else {
            return;
        };
        // Commit wait: the clock must have passed the version by ε.
        if now <= DcClock::physical(version) + bound {
            return;
        }
        a.client = None;
        a.committed_unacked = None;
        out.replies.push(Reply {
            client,
            result: ClientResult::Committed {
                key,
                version,
                wan_delays: a.depth,
            },
        });
    }

    fn broadcast_decision(&mut self, key: TxnKey, out: &mut Output) {
        let Some(outcome) = self.durable.outcomes.get(&key).copied() else {
            return;
        };
        let record = match outcome {
            Outcome::Committed { .. } => self.durable.records.get(&key).cloned(),
            Outcome::Aborted => None,
        };
        let informed = self.attempt(key).informed.clone();
        for to in self.others() {
            if !informed.contains(&to) {
                self.send(
                    to,
                    Msg::Decision {
                        txn: key,
                        outcome,
                        record: record.clone(),
                    },
                    out,
                );
            }
        }
    }

    /// A message about an attempt already decided here: tell the sender.
    fn answer_decided(&mut self, env: Envelope, txn: TxnKey, outcome: Outcome, out: &mut Output) {
        match env.msg {
            Msg::DecisionAck { .. } | Msg::Decision { .. } => {
                self.attempt(txn).informed.insert(env.from);
                if matches!(env.msg, Msg::Decision { .. }) {
                    self.send(env.from, Msg::DecisionAck { txn }, out);
                }
            }
            Msg::FetchRecord { .. } => {
                if let Some(record) = self.durable.records.get(&txn).cloned() {
                    self.send(env.from, Msg::Record { record }, out);
                }
            }
            _ => {
                let record = match outcome {
                    Outcome::Committed { .. } => self.durable.records.get(&txn).cloned(),
                    Outcome::Aborted => None,
                };
                self.send(
                    env.from,
                    Msg::Decision {
                        txn,
                        outcome,
                        record,
                    },
                    out,
                );
            }
        }
    }

    /// Re-checks records and local commits that were waiting for prepared attempts.
    fn recheck_waiting(&mut self, out: &mut Output) {
        let waiting: Vec<TxnKey> = self.waiting.iter().copied().collect();
        for key in waiting {
            if !self.durable.outcomes.contains_key(&key)
                && !self.durable.own_votes.contains_key(&key)
            {
                self.vote_on(key, out);
            } else {
                self.waiting.remove(&key);
            }
        }
        let local = std::mem::take(&mut self.local_waiting);
        for c in local {
            self.try_ship(c, out);
        }
    }

    // ---- recovery (§7.2) ----

    fn tick_undecided(&mut self, key: TxnKey, out: &mut Output) {
        let now = self.now;
        let rank = (usize::from(self.cfg.me) + self.cfg.dcs - usize::from(key.origin)) as u64
            % self.cfg.dcs as u64;
        let deadline = self.cfg.recovery + rank * self.cfg.stagger;
        let (retransmit, stagger) = (self.cfg.retransmit, self.cfg.stagger);
        let a = self.attempt(key);
        if now >= a.retransmit_at {
            a.retransmit_at = now + retransmit;
            self.retransmit(key, out);
            // A decision that only lacks the record asks for it again.
            if self.try_decide(key, out) {
                return;
            }
        }
        let a = self.attempt(key);
        let stale_round = a
            .recovery
            .as_ref()
            .is_some_and(|r| now >= r.started_at + stagger);
        if now >= a.progress_at + deadline && (a.recovery.is_none() || stale_round) {
            self.start_recovery(key, out);
        }
    }

    fn retransmit(&mut self, key: TxnKey, out: &mut Output) {
        let me = self.cfg.me;
        if key.origin == me {
            if let Some(record) = self.durable.records.get(&key).cloned() {
                self.broadcast(
                    Msg::Record {
                        record: record.clone(),
                    },
                    out,
                );
            }
        }
        if let Some(vote) = self.durable.own_votes.get(&key).copied() {
            self.send_own_vote(key, vote, out);
        }
        let accepted: Vec<(DcId, Ballot, Vote)> = self
            .durable
            .acceptors
            .range((key, 0)..=(key, DcId::MAX))
            .filter_map(|((_, voter), a)| a.accepted().map(|(b, v)| (*voter, b, v)))
            .collect();
        for (voter, ballot, vote) in accepted {
            self.broadcast_accepted(key, voter, ballot, vote, out);
        }
    }

    fn start_recovery(&mut self, key: TxnKey, out: &mut Output) {
        let me = self.cfg.me;
        let dcs = self.cfg.dcs;
        let a = self.attempt(key);
        let undecided: Vec<DcId> = (0..dcs as DcId)
            .filter(|v| a.learners[usize::from(*v)].chosen().is_none())
            .collect();
        // Above every round this DC promised or saw (durable promises survive restarts).
        let mut round = a.max_ballot.map_or(0, |b| b.round);
        for v in 0..dcs as DcId {
            if let Some(p) = self
                .durable
                .acceptors
                .get(&(key, v))
                .and_then(Acceptor::promised)
            {
                round = round.max(p.round);
            }
        }
        let ballot = Ballot {
            round: round + 1,
            owner: me,
        };
        let mut proposers = BTreeMap::new();
        let mut accepted = Vec::new();
        for &v in &undecided {
            let acceptor = self.durable.acceptors.entry((key, v)).or_default();
            let Ok(a) = acceptor.prepare(ballot) else {
                return;
            };
            accepted.push((v, a));
            proposers.insert(v, Recovery::new(ballot, dcs));
            self.durable.mark(Slot::Acceptor(key, v));
        }
        let now = self.now;
        let a = self.attempt(key);
        a.max_ballot = Some(ballot);
        a.progress_at = now;
        a.recovery = Some(RecoveryRound {
            ballot,
            started_at: now,
            proposers,
        });
        self.broadcast(
            Msg::Prepare1a {
                txn: key,
                ballot,
                voters: undecided.clone(),
            },
            out,
        );
        let record = self.durable.records.get(&key).cloned();
        self.on_promise(me, key, ballot, accepted, record, out);
    }

    fn on_promise(
        &mut self,
        from: DcId,
        key: TxnKey,
        ballot: Ballot,
        accepted: Vec<(DcId, Option<(Ballot, Vote)>)>,
        record: Option<Record>,
        out: &mut Output,
    ) {
        if let Some(record) = record {
            self.keep_record(record);
        }
        let a = self.attempt(key);
        let Some(round) = a.recovery.as_mut().filter(|r| r.ballot == ballot) else {
            return;
        };
        let mut proposals = Vec::new();
        for (voter, acc) in accepted {
            if let Some(p) = round.proposers.get_mut(&voter) {
                if let Some(vote) = p.on_promise(from, acc) {
                    proposals.push((voter, vote));
                    round.proposers.remove(&voter);
                }
            }
        }
        for (voter, vote) in proposals {
            self.propose(key, voter, ballot, vote, out);
        }
    }

    /// Phase 2a of a recovery ballot this DC owns: accept here first (the owner's
    /// acceptance, which other learners count from the `Vote2a`, must exist and be
    /// durable before the message leaves), then propose to everyone.
    fn propose(&mut self, key: TxnKey, voter: DcId, ballot: Ballot, vote: Vote, out: &mut Output) {
        let acceptor = self.durable.acceptors.entry((key, voter)).or_default();
        if acceptor.accept(ballot, vote).is_err() {
            // A higher ballot overtook this round here.
            self.attempt(key).recovery = None;
            return;
        }
        self.durable.mark(Slot::Acceptor(key, voter));
        let me = self.cfg.me;
        self.broadcast(
            Msg::Vote2a {
                txn: key,
                voter,
                ballot,
                vote,
            },
            out,
        );
        self.broadcast_accepted(key, voter, ballot, vote, out);
        self.learn(key, voter, me, ballot, vote, out);
    }

    // ---- decided attempts ----

    fn tick_decided(&mut self, key: TxnKey, _outcome: Outcome, out: &mut Output) {
        self.release_ack(key, out);
        let now = self.now;
        let others = self.others().count();
        let retransmit = self.cfg.retransmit;
        let a = self.attempt(key);
        if a.informed.len() >= others && a.client.is_none() {
            // Nothing left to do for it: its volatile state goes (a late message about
            // it is answered from the durable outcome).
            self.attempts.remove(&key);
            return;
        }
        if a.informed.len() >= others || now < a.retransmit_at {
            return;
        }
        a.retransmit_at = now + retransmit * (1 << a.pushes.min(PUSH_BACKOFF_MAX_LOG2));
        a.pushes += 1;
        self.broadcast_decision(key, out);
    }

    // ---- helpers ----

    fn attempt(&mut self, key: TxnKey) -> &mut Attempt {
        let (dcs, rule, now) = (self.cfg.dcs, self.cfg.learn, self.now);
        let retransmit = self.cfg.retransmit;
        self.attempts.entry(key).or_insert_with(|| Attempt {
            learners: (0..dcs as DcId)
                .map(|v| Learner::new(v, dcs, rule))
                .collect(),
            depth: 0,
            max_ballot: None,
            progress_at: now,
            retransmit_at: now + retransmit,
            pushes: 0,
            recovery: None,
            informed: BTreeSet::new(),
            client: None,
            committed_unacked: None,
        })
    }

    /// Notes a ballot; a higher one than seen is progress (restarts the recovery timer).
    fn see_ballot(&mut self, key: TxnKey, ballot: Ballot) {
        let now = self.now;
        let a = self.attempt(key);
        if a.max_ballot.is_none_or(|b| ballot > b) {
            a.max_ballot = Some(ballot);
            if ballot.round > 0 {
                a.progress_at = now;
            }
        }
    }

    /// Keeps a record (durably) and absorbs its version into the HLC, so versions this
    /// DC issues later are above it.
    fn keep_record(&mut self, record: Record) {
        if self.durable.hlc.observe(record.version) {
            self.durable.mark(Slot::Meta);
        }
        let key = record.key;
        if let std::collections::btree_map::Entry::Vacant(e) = self.durable.records.entry(key) {
            e.insert(record);
            self.durable.mark(Slot::Record(key));
        }
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

    fn finish_step(&mut self, mut out: Output) -> Output {
        out.persist = self.durable.take_changes();
        out.complete = self.horizon.advance(&self.durable.outcomes);
        out
    }
}

#[cfg(test)]
mod tests;
