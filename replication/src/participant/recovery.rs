//! Recovery (docs/protocol.md §7.2): any DC finishes an attempt whose outcome it has
//! not learned after a ranked timeout, with a higher ballot per vote instance; a voter
//! that never voted is proposed Abort.

use super::*;

impl Participant {
    pub(super) fn tick_undecided(&mut self, key: TxnKey, out: &mut Output) {
        let now = self.now;
        let rank = (usize::from(self.cfg.me) + self.cfg.dcs - usize::from(key.origin)) as u64
            % self.cfg.dcs as u64;
        let waits_only_for_suspected = self.waits_only_for_suspected(key);
        let deadline = if waits_only_for_suspected {
            rank * self.cfg.stagger_us
        } else {
            self.cfg.recovery_us + rank * self.cfg.stagger_us
        };
        let (retransmit, stagger) = (self.cfg.retransmit_us, self.cfg.stagger_us);
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
        let fenced = self.durable.is_fenced(key);
        let a = self.attempt(key);
        if now >= a.progress_at + deadline && (a.recovery.is_none() || stale_round) && !fenced {
            self.start_recovery(key, out);
        }
    }

    /// Whether undecided attempt `key` waits only for suspected voters (see
    /// [`Participant::set_suspected`]): the DCs not suspected, this one included, are a
    /// majority; no recovery round is under way (starting early would only preempt it);
    /// some suspected voter's instance is open; and every other open instance has a
    /// value accepted by this DC's own acceptor — which is in any quorum this DC's
    /// Phase 1 hears, so the round adopts it and proposes ABORT only for suspected
    /// voters.
    fn waits_only_for_suspected(&mut self, key: TxnKey) -> bool {
        let dcs = self.cfg.dcs;
        if self.suspected.is_empty() || dcs - self.suspected.len() < quorum(dcs) {
            return false;
        }
        self.attempt(key);
        let Some(a) = self.attempts.get(&key) else {
            return false;
        };
        if a.max_ballot.is_some_and(|b| b.round > 0) {
            return false;
        }
        let mut open = a.learners.iter().filter(|l| l.chosen().is_none());
        let accepted_here = |voter: DcId| {
            self.durable
                .acceptors
                .get(&(key, voter))
                .is_some_and(|acc| acc.accepted().is_some())
        };
        open.clone().any(|l| self.suspected.contains(&l.voter()))
            && open.all(|l| self.suspected.contains(&l.voter()) || accepted_here(l.voter()))
    }

    pub(super) fn retransmit(&mut self, key: TxnKey, out: &mut Output) {
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

    pub(super) fn start_recovery(&mut self, key: TxnKey, out: &mut Output) {
        let me = self.cfg.me;
        let dcs = self.cfg.dcs;
        let a = self.attempt(key);
        debug_assert!(!a.learners.is_empty(), "recovering a decided attempt");
        let undecided: Vec<DcId> = (0..dcs as DcId)
            .filter(|v| {
                a.learners
                    .get(usize::from(*v))
                    .is_some_and(|l| l.chosen().is_none())
            })
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

    pub(super) fn on_promise(
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
    pub(super) fn propose(
        &mut self,
        key: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
        out: &mut Output,
    ) {
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
}
