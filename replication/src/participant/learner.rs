//! The learner (docs/protocol.md §5.5, §7.1): counts acceptances under the learning
//! rule, decides COMMIT iff a majority of vote instances chose Commit, applies and
//! answers the client, and pushes the outcome until every DC acknowledged it.

use super::*;

impl Participant {
    /// Counts acceptor `by`'s acceptance of (ballot, vote) for instance (key, voter).
    pub(super) fn learn(
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
    pub(super) fn try_decide(&mut self, key: TxnKey, out: &mut Output) -> bool {
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
    pub(super) fn decided(&mut self, key: TxnKey, outcome: Outcome, out: &mut Output) {
        if let Some(before) = self.durable.outcomes.get(&key) {
            assert_eq!(
                *before, outcome,
                "DC {}: a second outcome for {key:?}",
                self.cfg.me
            );
            return;
        }
        if let Outcome::Committed { .. } = outcome {
            let Some(record) = self.durable.records.get(&key) else {
                self.broadcast(Msg::FetchRecord { txn: key }, out);
                return;
            };
            let version = record.version;
            self.committed.add(record);
            out.apply.push((version, record.writes.clone()));
            // A version kept without absorbing it (from beyond the clock bound) that
            // committed all the same: later versions issued here must be above it.
            self.durable.observe(version);
        }
        self.durable.outcomes.insert(key, outcome);
        self.durable.mark(Slot::Outcome(key));
        self.prepared.remove(&key);
        self.waiting.remove(&key);
        let a = self.attempt(key);
        a.recovery = None;
        // The votes counted to decide are not needed any more, and they are most of
        // what an attempt holds while it waits (perhaps minutes) for a DC that is out.
        a.learners = Vec::new();
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
    pub(super) fn release_ack(&mut self, key: TxnKey, out: &mut Output) {
        let now = self.now;
        let bound = self.cfg.clock_bound_us;
        let Some(a) = self.attempts.get_mut(&key) else {
            return;
        };
        let (Some(client), Some(version)) = (a.client, a.committed_unacked) else {
            return;
        };
        // Commit wait: the clock must have passed the version by ε (with one data
        // center no other clock can issue a later version that must see it).
        if self.cfg.dcs > 1 && now <= DcClock::physical(version) + bound {
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

    pub(super) fn broadcast_decision(&mut self, key: TxnKey, out: &mut Output) {
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

    /// A message about an attempt already decided here: tell the sender. Once the
    /// attempt's volatile state is gone every DC holds the outcome durably (see
    /// `tick_decided`), so a late message needs no answer beyond acknowledging a push.
    pub(super) fn answer_decided(
        &mut self,
        env: Envelope,
        txn: TxnKey,
        outcome: Outcome,
        out: &mut Output,
    ) {
        let settled = !self.attempts.contains_key(&txn);
        match env.msg {
            Msg::DecisionAck { .. } | Msg::Decision { .. } => {
                if !settled {
                    self.attempt(txn).informed.insert(env.from);
                }
                if matches!(env.msg, Msg::Decision { .. }) {
                    self.send(env.from, Msg::DecisionAck { txn }, out);
                }
            }
            _ if settled => {}
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
    pub(super) fn recheck_waiting(&mut self, out: &mut Output) {
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

    pub(super) fn tick_decided(&mut self, key: TxnKey, outcome: Outcome, out: &mut Output) {
        self.release_ack(key, out);
        let now = self.now;
        let others = self.others().count();
        let retransmit = self.cfg.retransmit_us;
        // A commit above the floor stays: the committed index keeps every version above
        // the floor, and after a restart only what is durable rebuilds it (below the
        // floor each key's newest version is enough, and retirement keeps that).
        let floored = match outcome {
            Outcome::Committed { version } => version <= self.durable.floor,
            Outcome::Aborted => true,
        };
        let a = self.attempt(key);
        if a.informed.len() >= others && a.client.is_none() && floored {
            // Nothing left to do for it: its volatile state goes (a late message about
            // it is answered from the durable outcome), and its durable state once the
            // attempts before it are settled too.
            self.attempts.remove(&key);
            if let Some(settled) = self.settled.get_mut(usize::from(key.origin)) {
                settled.insert(key.seq);
            }
            return;
        }
        if a.informed.len() >= others || now < a.retransmit_at {
            return;
        }
        a.retransmit_at = now + retransmit * (1 << a.pushes.min(PUSH_BACKOFF_MAX_LOG2));
        a.pushes += 1;
        self.broadcast_decision(key, out);
    }
}
