//! The baseline: two-phase commit over per-shard Paxos groups (the Spanner shape,
//! docs/protocol.md §8.5), run by the same simulator as Meridian's protocol.
//!
//! Keys are split into D shards (`key mod D`); shard s is a Paxos group with a replica in
//! every DC and a stable leader in DC s (Multi-Paxos in steady state: the leader appends
//! an entry, persists it, sends `Accept` to every replica, and the entry is chosen once a
//! majority, the leader included, has persisted it). A transaction executes at its
//! origin like Meridian's (latest applied versions, recorded as reads); to commit:
//!
//! 1. the origin sends the record to the **coordinator**, the leader of the first shard
//!    it touches (nothing to send if that is the origin);
//! 2. the coordinator sends `Prepare` to each participant shard's leader; a leader
//!    validates its shard's part (every read still current, no prepared transaction on
//!    the same keys — no-wait: conflict ⇒ vote ABORT), picks a prepare timestamp above
//!    its clock, logs the prepare through its group and then answers `Prepared`;
//! 3. the coordinator decides (COMMIT iff every participant prepared; version = the
//!    largest prepare timestamp), logs the decision through its own group, answers the
//!    origin and tells the participants, which log the outcome; every replica applies a
//!    shard's committed writes when it learns the outcome entry is chosen.
//!
//! Fault-free delays with every leader at the origin: 2 (prepare logged) + 2 (decision
//! logged) = 4; each remote leader on the path adds a hop there and back. There is no
//! leader election: a group whose leader is down stalls until it restarts (as a Spanner
//! group would until a new leader's lease), and a coordinator that dies blocks its
//! participants until it is back — the availability Meridian's protocol does not give
//! up. Leaders persist before sending; all handlers are idempotent; everything
//! undecided is retransmitted on ticks.

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;
use replication::{quorum, DcId};
use replication::{ClientResult, DcClock, ReadEntry, Reply, TxnKey, Writes};

/// A transaction's commit request, as the coordinator and participants see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub key: TxnKey,
    pub reads: Vec<ReadEntry>,
    pub writes: Writes,
}

/// An entry of a shard's replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The shard's leader prepared `txn` at `ts` (or refused it: `ts` None) for
    /// `coordinator`; `keys` are locked until the outcome, `writes` are the shard's.
    Prepare {
        txn: TxnKey,
        ts: Option<Version>,
        coordinator: DcId,
        keys: BTreeSet<Vec<u8>>,
        writes: Writes,
    },
    /// The outcome, with this shard's writes when committed.
    Outcome {
        txn: TxnKey,
        version: Option<Version>,
        writes: Writes,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Commit {
        request: Request,
    },
    Prepare {
        request: Request,
    },
    Accept {
        shard: DcId,
        slot: u64,
        entry: Entry,
    },
    Accepted {
        shard: DcId,
        slot: u64,
        txn: TxnKey,
    },
    Chosen {
        shard: DcId,
        slot: u64,
        txn: TxnKey,
    },
    Prepared {
        txn: TxnKey,
        shard: DcId,
        ts: Option<Version>,
    },
    Decide {
        txn: TxnKey,
        version: Option<Version>,
    },
    DecideAck {
        txn: TxnKey,
        shard: DcId,
    },
    Done {
        txn: TxnKey,
        version: Option<Version>,
    },
    DoneAck {
        txn: TxnKey,
    },
    /// The leader of `shard` has every slot up to `upto` chosen.
    ChosenUpTo {
        shard: DcId,
        upto: u64,
    },
    /// A replica lacks `slot` of `shard`'s log.
    Need {
        shard: DcId,
        slot: u64,
    },
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    next_seq: u64,
    hlc: DcClock,
    /// Per shard: the log as this replica has persisted it.
    logs: BTreeMap<DcId, BTreeMap<u64, Entry>>,
    /// Per shard: slots known chosen (learned; re-learned after a restart otherwise).
    chosen: BTreeMap<DcId, BTreeSet<u64>>,
    /// Requests this DC coordinates.
    coordinating: BTreeMap<TxnKey, Request>,
    /// Decisions this DC made as coordinator (also logged in its shard).
    decisions: BTreeMap<TxnKey, Option<Version>>,
}

impl Entry {
    fn txn(&self) -> TxnKey {
        match self {
            Entry::Prepare { txn, .. } | Entry::Outcome { txn, .. } => *txn,
        }
    }
}

impl Durable {
    /// Whether this replica holds `txn`'s decision in the coordinator's (shard's) log.
    pub fn holds_decision(&self, coordinator: DcId, txn: TxnKey) -> bool {
        self.logs.get(&coordinator).is_some_and(|l| {
            l.values()
                .any(|e| matches!(e, Entry::Outcome { txn: t, .. } if *t == txn))
        })
    }

    /// Every outcome entry this replica holds, in any shard's log.
    pub fn outcome_entries(&self) -> Vec<(TxnKey, Option<Version>)> {
        self.logs
            .values()
            .flat_map(|l| l.values())
            .filter_map(|e| match e {
                Entry::Outcome { txn, version, .. } => Some((*txn, *version)),
                Entry::Prepare { .. } => None,
            })
            .collect()
    }

    /// Transactions coordinated here without a decision, or prepared in a log held
    /// here without the outcome entry following.
    pub fn undecided(&self) -> BTreeSet<TxnKey> {
        let mut out: BTreeSet<TxnKey> = self
            .coordinating
            .keys()
            .filter(|k| !self.decisions.contains_key(k))
            .copied()
            .collect();
        for log in self.logs.values() {
            let decided: BTreeSet<TxnKey> = log
                .values()
                .filter_map(|e| match e {
                    Entry::Outcome { txn, .. } => Some(*txn),
                    Entry::Prepare { .. } => None,
                })
                .collect();
            for e in log.values() {
                if let Entry::Prepare {
                    txn, ts: Some(_), ..
                } = e
                {
                    if !decided.contains(txn) {
                        out.insert(*txn);
                    }
                }
            }
        }
        out
    }

    pub fn describe(&self, txn: TxnKey) -> String {
        let entries: Vec<String> = self
            .logs
            .iter()
            .flat_map(|(shard, l)| {
                l.iter().filter_map(move |(slot, e)| {
                    let t = match e {
                        Entry::Prepare { txn, .. } | Entry::Outcome { txn, .. } => *txn,
                    };
                    (t == txn).then(|| format!("shard {shard} slot {slot}: {e:?}"))
                })
            })
            .collect();
        format!(
            "coordinating {}, decision {:?}, entries [{}]",
            self.coordinating.contains_key(&txn),
            self.decisions.get(&txn),
            entries.join("; ")
        )
    }
}

/// Output of a step (same contract as the participant's: release in order, after sync).
#[derive(Debug, Default)]
pub struct Output {
    pub send: Vec<(DcId, u32, Msg)>,
    pub apply: Vec<(Version, Writes)>,
    pub replies: Vec<Reply>,
    pub durable_changed: bool,
}

/// Volatile per-transaction state.
#[derive(Debug, Default)]
struct Txn {
    depth: u32,
    client: Option<u64>,
    /// Coordinator: participants' answers.
    prepared: BTreeMap<DcId, Option<Version>>,
    /// Coordinator: participants that have logged the outcome.
    acked: BTreeSet<DcId>,
    /// Coordinator: the origin has the answer.
    done_acked: bool,
    /// Origin: the request, resent to the coordinator until the answer comes.
    request: Option<Request>,
}

#[derive(Debug)]
pub struct Node {
    me: DcId,
    dcs: usize,
    retransmit: u64,
    /// ε: an origin acknowledges a commit once its clock passed the version by this.
    clock_bound: u64,
    /// Origin: commits learned, waiting for their commit wait.
    commit_waits: BTreeMap<TxnKey, Version>,
    durable: Durable,
    txns: BTreeMap<TxnKey, Txn>,
    /// Leader: per slot of its shard, the replicas that persisted it.
    acks: BTreeMap<u64, BTreeSet<DcId>>,
    /// Leader: keys of prepared, undecided transactions of its shard.
    locked: BTreeMap<TxnKey, BTreeSet<Vec<u8>>>,
    /// Latest committed version per key (from chosen outcome entries).
    committed: BTreeMap<Vec<u8>, Version>,
    /// Per shard: how far chosen entries have been applied (in slot order).
    applied: BTreeMap<DcId, u64>,
    retransmit_at: u64,
    durable_changed: bool,
    now: u64,
}

/// The shard of a user key: its last byte mod D (the simulator's keys end in a u64).
pub fn shard_of(key: &[u8], dcs: usize) -> DcId {
    let tail = key.len().saturating_sub(8);
    let n = key[tail..]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (n % dcs as u64) as DcId
}

impl Node {
    pub fn restart(
        me: DcId,
        dcs: usize,
        retransmit: u64,
        clock_bound: u64,
        durable: Durable,
        now: u64,
    ) -> (Node, Output) {
        let mut n = Node {
            me,
            dcs,
            retransmit,
            clock_bound,
            commit_waits: BTreeMap::new(),
            durable,
            txns: BTreeMap::new(),
            acks: BTreeMap::new(),
            locked: BTreeMap::new(),
            committed: BTreeMap::new(),
            applied: BTreeMap::new(),
            retransmit_at: 0,
            durable_changed: false,
            now,
        };
        let mut out = Output::default();
        // Re-derive locks of the own shard and apply what is chosen.
        let own: Vec<Entry> = n
            .durable
            .logs
            .get(&me)
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        for e in own {
            match e {
                Entry::Prepare {
                    txn,
                    ts: Some(_),
                    keys,
                    ..
                } => {
                    n.locked.insert(txn, keys);
                }
                Entry::Prepare { .. } | Entry::Outcome { .. } => {}
            }
        }
        for shard in 0..dcs as DcId {
            n.apply_chosen(shard, &mut out);
        }
        let out = n.finish(out);
        (n, out)
    }

    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    pub fn me(&self) -> DcId {
        self.me
    }

    pub fn commit(
        &mut self,
        now: u64,
        client: u64,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> Output {
        self.now = now;
        let mut out = Output::default();
        self.durable.next_seq += 1;
        self.durable_changed = true;
        let key = TxnKey {
            origin: self.me,
            seq: self.durable.next_seq,
        };
        let request = Request { key, reads, writes };
        let coordinator = self.participants(&request)[0];
        let t = self.txn(key);
        t.client = Some(client);
        t.request = Some(request.clone());
        if coordinator == self.me {
            self.coordinate(request, &mut out);
        } else {
            self.send(coordinator, Msg::Commit { request }, &mut out);
        }
        self.finish(out)
    }

    pub fn receive(&mut self, now: u64, from: DcId, depth: u32, msg: Msg) -> Output {
        self.now = now;
        let mut out = Output::default();
        if let Some(txn) = msg_txn(&msg) {
            let t = self.txn(txn);
            t.depth = t.depth.max(depth);
        }
        match msg {
            Msg::Commit { request } => self.coordinate(request, &mut out),
            Msg::Prepare { request } => self.prepare(from, request, &mut out),
            Msg::Accept { shard, slot, entry } => {
                let txn = entry.txn();
                self.durable
                    .logs
                    .entry(shard)
                    .or_default()
                    .insert(slot, entry);
                self.durable_changed = true;
                self.send(from, Msg::Accepted { shard, slot, txn }, &mut out);
            }
            Msg::Accepted { shard, slot, txn } => self.accepted(shard, slot, txn, from, &mut out),
            Msg::Chosen { shard, slot, .. } => self.learn_chosen(shard, slot, &mut out),
            Msg::Prepared { txn, shard, ts } => {
                if self.durable.coordinating.contains_key(&txn) {
                    self.txn(txn).prepared.insert(shard, ts);
                    self.try_decide(txn, &mut out);
                }
            }
            Msg::Decide { txn, version } => self.log_outcome(from, txn, version, &mut out),
            Msg::DecideAck { txn, shard } => {
                self.txn(txn).acked.insert(shard);
            }
            Msg::Done { txn, version } => {
                self.done(txn, version, &mut out);
                self.send(from, Msg::DoneAck { txn }, &mut out);
            }
            Msg::DoneAck { txn } => self.txn(txn).done_acked = true,
            Msg::ChosenUpTo { shard, upto } => {
                for slot in 1..=upto {
                    if self.is_chosen(shard, slot) {
                        continue;
                    }
                    if self
                        .durable
                        .logs
                        .get(&shard)
                        .is_some_and(|l| l.contains_key(&slot))
                    {
                        self.learn_chosen(shard, slot, &mut out);
                    } else {
                        self.send(from, Msg::Need { shard, slot }, &mut out);
                        break;
                    }
                }
            }
            Msg::Need { shard, slot } => {
                if let Some(entry) = self
                    .durable
                    .logs
                    .get(&shard)
                    .and_then(|l| l.get(&slot))
                    .cloned()
                {
                    if shard == self.me {
                        self.send(from, Msg::Accept { shard, slot, entry }, &mut out);
                    }
                }
            }
        }
        self.finish(out)
    }

    pub fn tick(&mut self, now: u64) -> Output {
        self.now = now;
        let mut out = Output::default();
        let waited: Vec<(TxnKey, Version)> = self
            .commit_waits
            .iter()
            .filter(|(_, v)| now > DcClock::physical(**v) + self.clock_bound)
            .map(|(t, v)| (*t, *v))
            .collect();
        for (txn, v) in waited {
            self.done(txn, Some(v), &mut out);
        }
        if now >= self.retransmit_at {
            self.retransmit_at = now + self.retransmit;
            // Leader: resend every entry of its shard to the replicas that have not
            // acknowledged it (they answer `Accepted`, and get `Chosen` if it is).
            let me = self.me;
            let missing: Vec<(u64, Entry, Vec<DcId>)> = self
                .durable
                .logs
                .get(&me)
                .map(|l| {
                    l.iter()
                        .filter_map(|(slot, e)| {
                            let acked = self.acks.get(slot);
                            let to: Vec<DcId> = self
                                .others()
                                .filter(|d| !acked.is_some_and(|a| a.contains(d)))
                                .collect();
                            (!to.is_empty()).then(|| (*slot, e.clone(), to))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (slot, entry, to) in missing {
                for d in to {
                    self.send(
                        d,
                        Msg::Accept {
                            shard: me,
                            slot,
                            entry: entry.clone(),
                        },
                        &mut out,
                    );
                }
            }
            // Leader: tell the replicas how far its log is chosen (they fetch gaps).
            let upto = self.chosen_prefix(me);
            if upto > 0 {
                for to in self.others() {
                    self.send(to, Msg::ChosenUpTo { shard: me, upto }, &mut out);
                }
            }
            // Origin: resend requests still unanswered.
            let pending: Vec<Request> = self
                .txns
                .values()
                .filter(|t| t.client.is_some())
                .filter_map(|t| t.request.clone())
                .collect();
            for request in pending {
                let coordinator = self.participants(&request)[0];
                if coordinator != me {
                    self.send(coordinator, Msg::Commit { request }, &mut out);
                }
            }
            // Coordinator: re-drive undecided and unacknowledged transactions.
            let coordinating: Vec<TxnKey> = self.durable.coordinating.keys().copied().collect();
            for txn in coordinating {
                self.redrive(txn, &mut out);
            }
        }
        self.finish(out)
    }

    // ---- coordinator ----

    fn coordinate(&mut self, request: Request, out: &mut Output) {
        let key = request.key;
        if let std::collections::btree_map::Entry::Vacant(e) = self.durable.coordinating.entry(key)
        {
            e.insert(request);
            self.durable_changed = true;
        }
        self.redrive(key, out);
    }

    fn redrive(&mut self, txn: TxnKey, out: &mut Output) {
        let Some(request) = self.durable.coordinating.get(&txn).cloned() else {
            return;
        };
        let participants = self.participants(&request);
        match self.durable.decisions.get(&txn).copied() {
            None => {
                let answered: BTreeSet<DcId> = self.txn(txn).prepared.keys().copied().collect();
                for p in participants {
                    if answered.contains(&p) {
                        continue;
                    }
                    let msg = Msg::Prepare {
                        request: request.clone(),
                    };
                    if p == self.me {
                        let me = self.me;
                        self.prepare(me, request.clone(), out);
                    } else {
                        self.send(p, msg, out);
                    }
                }
            }
            Some(version) => {
                // Decided: the decision entry must be chosen before anyone is told.
                if !self.decision_chosen(txn) {
                    return;
                }
                let acked = self.txn(txn).acked.clone();
                for p in participants {
                    if acked.contains(&p) {
                        continue;
                    }
                    if p == self.me {
                        let me = self.me;
                        self.log_outcome(me, txn, version, out);
                    } else {
                        self.send(p, Msg::Decide { txn, version }, out);
                    }
                }
                if txn.origin == self.me {
                    self.done(txn, version, out);
                } else if !self.txn(txn).done_acked {
                    self.send(txn.origin, Msg::Done { txn, version }, out);
                }
            }
        }
    }

    fn try_decide(&mut self, txn: TxnKey, out: &mut Output) {
        if self.durable.decisions.contains_key(&txn) {
            return;
        }
        let Some(request) = self.durable.coordinating.get(&txn).cloned() else {
            return;
        };
        let participants = self.participants(&request);
        let t = self.txn(txn);
        let votes: Vec<Option<Version>> = participants
            .iter()
            .filter_map(|p| t.prepared.get(p).copied())
            .collect();
        let decision = if votes.iter().any(Option::is_none) {
            None
        } else if votes.len() == participants.len() {
            votes.iter().flatten().max().copied()
        } else {
            return; // still waiting for some participant
        };
        self.durable.decisions.insert(txn, decision);
        if let Some(v) = decision {
            self.durable.hlc.observe(v);
        }
        self.durable_changed = true;
        // Log the decision through the coordinator's group; participants and the origin
        // are told once it is chosen (redrive after `accepted`).
        let writes = self.shard_writes(&request, self.me);
        self.append(
            Entry::Outcome {
                txn,
                version: decision,
                writes,
            },
            out,
        );
    }

    fn decision_chosen(&self, txn: TxnKey) -> bool {
        self.durable.logs.get(&self.me).is_some_and(|l| {
            l.iter().any(|(slot, e)| {
                matches!(e, Entry::Outcome { txn: t, .. } if *t == txn)
                    && self.is_chosen(self.me, *slot)
            })
        })
    }

    // ---- participant leader ----

    fn prepare(&mut self, coordinator: DcId, request: Request, out: &mut Output) {
        let txn = request.key;
        let me = self.me;
        // Already answered (durably): answer again.
        let logged = self.durable.logs.get(&me).and_then(|l| {
            l.iter().find_map(|(slot, e)| match e {
                Entry::Prepare { txn: t, ts, .. } if *t == txn => Some((*slot, *ts)),
                _ => None,
            })
        });
        if let Some((slot, ts)) = logged {
            if self.is_chosen(me, slot) {
                self.answer_prepared(coordinator, txn, ts, out);
            }
            return;
        }
        if self.outcome_logged(txn) {
            return;
        }
        let keys = self.request_keys_of(&request);
        let mut ok = !self
            .locked
            .iter()
            .any(|(t, k)| *t != txn && !k.is_disjoint(&keys));
        let mut above = 0;
        for r in &request.reads {
            if shard_of(&r.span.start, self.dcs) != me {
                continue;
            }
            let latest = self.committed.get(&r.span.start).copied().unwrap_or(0);
            ok &= latest == r.lo;
            above = above.max(r.lo);
        }
        for (k, _) in &request.writes {
            if shard_of(k, self.dcs) == me {
                above = above.max(self.committed.get(k).copied().unwrap_or(0));
            }
        }
        let ts = ok.then(|| self.issue(above));
        if ok {
            self.locked.insert(txn, keys.clone());
        }
        let writes = self.shard_writes(&request, me);
        self.append(
            Entry::Prepare {
                txn,
                ts,
                coordinator,
                keys,
                writes,
            },
            out,
        );
    }

    fn answer_prepared(
        &mut self,
        coordinator: DcId,
        txn: TxnKey,
        ts: Option<Version>,
        out: &mut Output,
    ) {
        let me = self.me;
        if coordinator == me {
            if self.durable.coordinating.contains_key(&txn) {
                self.txn(txn).prepared.insert(me, ts);
                self.try_decide(txn, out);
            }
        } else {
            self.send(coordinator, Msg::Prepared { txn, shard: me, ts }, out);
        }
    }

    /// A participant leader logs the outcome in its group, then acknowledges.
    fn log_outcome(
        &mut self,
        coordinator: DcId,
        txn: TxnKey,
        version: Option<Version>,
        out: &mut Output,
    ) {
        if let Some(v) = version {
            self.durable.hlc.observe(v);
        }
        let me = self.me;
        if self.outcome_logged(txn) {
            if coordinator == me {
                self.txn(txn).acked.insert(me);
            } else {
                self.send(coordinator, Msg::DecideAck { txn, shard: me }, out);
            }
            return;
        }
        // The shard's writes, from its own prepare entry (none if it never prepared).
        let writes = self
            .durable
            .logs
            .get(&me)
            .and_then(|l| {
                l.values().find_map(|e| match e {
                    Entry::Prepare { txn: t, writes, .. } if *t == txn => Some(writes.clone()),
                    _ => None,
                })
            })
            .unwrap_or_default();
        self.append(
            Entry::Outcome {
                txn,
                version,
                writes,
            },
            out,
        );
        if coordinator == me {
            self.txn(txn).acked.insert(me);
        } else {
            self.send(coordinator, Msg::DecideAck { txn, shard: me }, out);
        }
    }

    fn outcome_logged(&self, txn: TxnKey) -> bool {
        self.durable.logs.get(&self.me).is_some_and(|l| {
            l.values()
                .any(|e| matches!(e, Entry::Outcome { txn: t, .. } if *t == txn))
        })
    }

    // ---- replication of the own shard's log ----

    fn append(&mut self, entry: Entry, out: &mut Output) {
        let me = self.me;
        let log = self.durable.logs.entry(me).or_default();
        let slot = log.keys().next_back().map_or(1, |s| s + 1);
        log.insert(slot, entry.clone());
        self.durable_changed = true;
        self.acks.entry(slot).or_default().insert(me);
        for to in self.others() {
            self.send(
                to,
                Msg::Accept {
                    shard: me,
                    slot,
                    entry: entry.clone(),
                },
                out,
            );
        }
        self.check_chosen(slot, out);
    }

    fn accepted(&mut self, shard: DcId, slot: u64, txn: TxnKey, from: DcId, out: &mut Output) {
        if shard != self.me {
            return;
        }
        self.acks.entry(slot).or_default().insert(from);
        if self.is_chosen(shard, slot) {
            self.send(from, Msg::Chosen { shard, slot, txn }, out);
        }
        self.check_chosen(slot, out);
    }

    fn check_chosen(&mut self, slot: u64, out: &mut Output) {
        let me = self.me;
        if self.is_chosen(me, slot) {
            return;
        }
        // The leader's own acceptance counts once persisted: after a restart it is
        // re-counted from the durable log.
        let mut count = self.acks.get(&slot).map_or(0, BTreeSet::len);
        if !self.acks.get(&slot).is_some_and(|a| a.contains(&me))
            && self
                .durable
                .logs
                .get(&me)
                .is_some_and(|l| l.contains_key(&slot))
        {
            count += 1;
            self.acks.entry(slot).or_default().insert(me);
        }
        if count < quorum(self.dcs) {
            return;
        }
        let Some(entry) = self
            .durable
            .logs
            .get(&me)
            .and_then(|l| l.get(&slot))
            .cloned()
        else {
            return;
        };
        let txn = entry.txn();
        for to in self.others() {
            self.send(
                to,
                Msg::Chosen {
                    shard: me,
                    slot,
                    txn,
                },
                out,
            );
        }
        self.learn_chosen(me, slot, out);
        // What the chosen entry unblocks at the leader.
        match entry {
            Entry::Prepare {
                txn,
                ts,
                coordinator,
                ..
            } => self.answer_prepared(coordinator, txn, ts, out),
            Entry::Outcome { txn, .. } => {
                if self.durable.coordinating.contains_key(&txn) {
                    self.redrive(txn, out);
                }
            }
        }
    }

    fn learn_chosen(&mut self, shard: DcId, slot: u64, out: &mut Output) {
        if self.durable.chosen.entry(shard).or_default().insert(slot) {
            self.durable_changed = true;
        }
        self.apply_chosen(shard, out);
    }

    /// The highest slot s of `shard` such that every slot up to s is chosen here.
    fn chosen_prefix(&self, shard: DcId) -> u64 {
        let Some(chosen) = self.durable.chosen.get(&shard) else {
            return 0;
        };
        let mut upto = 0;
        for slot in chosen {
            if *slot != upto + 1 {
                break;
            }
            upto = *slot;
        }
        upto
    }

    fn is_chosen(&self, shard: DcId, slot: u64) -> bool {
        self.durable
            .chosen
            .get(&shard)
            .is_some_and(|c| c.contains(&slot))
    }

    /// Applies the shard's chosen outcome entries, in slot order, as far as contiguous.
    fn apply_chosen(&mut self, shard: DcId, out: &mut Output) {
        loop {
            let next = self.applied.get(&shard).copied().unwrap_or(0) + 1;
            if !self.is_chosen(shard, next) {
                return;
            }
            let Some(entry) = self
                .durable
                .logs
                .get(&shard)
                .and_then(|l| l.get(&next))
                .cloned()
            else {
                return; // chosen but not held here yet: the leader resends it
            };
            self.applied.insert(shard, next);
            if shard == self.me {
                // A leader keeps a transaction's keys locked until its outcome is
                // applied here: a prepare in between would validate against stale data.
                if let Entry::Outcome { txn, .. } = &entry {
                    self.locked.remove(txn);
                }
            }
            if let Entry::Outcome {
                version: Some(v),
                writes,
                ..
            } = entry
            {
                for (k, _) in &writes {
                    let c = self.committed.entry(k.clone()).or_default();
                    *c = (*c).max(v);
                }
                if !writes.is_empty() {
                    out.apply.push((v, writes));
                }
            }
        }
    }

    // ---- origin ----

    fn done(&mut self, txn: TxnKey, version: Option<Version>, out: &mut Output) {
        if let Some(v) = version {
            // Commit wait, as Spanner's (and Meridian's, §5.6).
            if self.now <= DcClock::physical(v) + self.clock_bound {
                self.commit_waits.insert(txn, v);
                return;
            }
            self.commit_waits.remove(&txn);
        }
        let t = self.txn(txn);
        let depth = t.depth;
        let Some(client) = t.client.take() else {
            return;
        };
        out.replies.push(Reply {
            client,
            result: match version {
                Some(version) => ClientResult::Committed {
                    key: txn,
                    version,
                    wan_delays: depth,
                },
                None => ClientResult::Aborted {
                    reason: "2PC: a participant refused to prepare".into(),
                },
            },
        });
    }

    // ---- helpers ----

    /// Shards the request touches, in order (the first coordinates).
    fn participants(&self, r: &Request) -> Vec<DcId> {
        let mut shards: Vec<DcId> = r
            .reads
            .iter()
            .map(|e| shard_of(&e.span.start, self.dcs))
            .chain(r.writes.iter().map(|(k, _)| shard_of(k, self.dcs)))
            .collect();
        let first = shards.first().copied();
        shards.sort_unstable();
        shards.dedup();
        if let Some(f) = first {
            shards.retain(|s| *s != f);
            shards.insert(0, f);
        }
        shards
    }

    fn request_keys_of(&self, r: &Request) -> BTreeSet<Vec<u8>> {
        r.reads
            .iter()
            .map(|e| e.span.start.clone())
            .chain(r.writes.iter().map(|(k, _)| k.clone()))
            .filter(|k| shard_of(k, self.dcs) == self.me)
            .collect()
    }

    fn shard_writes(&self, r: &Request, shard: DcId) -> Writes {
        r.writes
            .iter()
            .filter(|(k, _)| shard_of(k, self.dcs) == shard)
            .cloned()
            .collect()
    }

    fn txn(&mut self, key: TxnKey) -> &mut Txn {
        self.txns.entry(key).or_default()
    }

    fn issue(&mut self, above: Version) -> Version {
        self.durable_changed = true;
        self.durable.hlc.issue(self.me, self.now, above)
    }

    fn others(&self) -> impl Iterator<Item = DcId> + use<> {
        let me = self.me;
        (0..self.dcs as DcId).filter(move |d| *d != me)
    }

    fn send(&mut self, to: DcId, msg: Msg, out: &mut Output) {
        let depth = msg_txn(&msg)
            .and_then(|t| self.txns.get(&t))
            .map_or(0, |t| t.depth)
            + 1;
        out.send.push((to, depth, msg));
    }

    fn finish(&mut self, mut out: Output) -> Output {
        out.durable_changed = std::mem::take(&mut self.durable_changed);
        out
    }
}

fn msg_txn(msg: &Msg) -> Option<TxnKey> {
    match msg {
        Msg::Commit { request } | Msg::Prepare { request } => Some(request.key),
        Msg::Accept { entry, .. } => Some(entry.txn()),
        Msg::Prepared { txn, .. }
        | Msg::Decide { txn, .. }
        | Msg::DecideAck { txn, .. }
        | Msg::Done { txn, .. }
        | Msg::DoneAck { txn }
        | Msg::Accepted { txn, .. }
        | Msg::Chosen { txn, .. } => Some(*txn),
        Msg::ChosenUpTo { .. } | Msg::Need { .. } => None,
    }
}
