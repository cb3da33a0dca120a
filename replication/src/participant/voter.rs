//! The voter (docs/protocol.md §5.3, §6): checks a shipped record (C0 floor, C1 stale
//! reads, C2 prepared conflicts), waits for older prepared attempts, and proposes its
//! own vote as owner of its vote instance (ballot 0).

use super::*;

impl Participant {
    pub(super) fn on_record(&mut self, record: Record, out: &mut Output) {
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
    pub(super) fn vote_on(&mut self, key: TxnKey, out: &mut Output) {
        let Some(record) = self.durable.records.get(&key).cloned() else {
            return;
        };
        if self.durable.is_fenced(key) {
            // A previous incarnation of this DC may have voted on it (§7.7): the others
            // decide it without this DC.
            return;
        }
        if !self.fence_cleared() {
            self.waiting.insert(key);
            return;
        }
        if record.version <= self.durable.floor {
            // C0: the floor has passed this version (it arrived too late).
            self.cast_own_vote(key, Vote::Abort, out);
            return;
        }
        if self.is_beyond_the_clock_bound(record.version) {
            // C0': issued by a clock ahead of this one by more than ε.
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

    pub(super) fn verdict(&self, record: &Record, checker: Checker) -> Verdict {
        let prepared = self
            .prepared
            .iter()
            .filter_map(|k| self.durable.records.get(k));
        check::check(record, &self.committed, prepared, checker)
    }

    /// Votes as owner of this DC's instance at its own ballot, unless a recoverer's
    /// higher ballot got there first (then the instance is decided without this vote).
    pub(super) fn cast_own_vote(&mut self, key: TxnKey, vote: Vote, out: &mut Output) {
        self.waiting.remove(&key);
        let me = self.cfg.me;
        let ballot = Ballot::own(me);
        let acceptor = self.durable.acceptors.entry((key, me)).or_default();
        if acceptor.accept(ballot, vote).is_err() {
            return;
        }
        if let Some(before) = self.durable.own_votes.insert(key, vote) {
            assert_eq!(
                before, vote,
                "DC {me}: its own vote on {key:?} changed from {before:?} to {vote:?}"
            );
        }
        self.durable.mark(Slot::OwnVote(key));
        self.durable.mark(Slot::Acceptor(key, me));
        if vote == Vote::Commit {
            self.prepared.insert(key);
            if let Some(r) = self.durable.records.get(&key) {
                self.complete_point
                    .voted_commit(key, r.version, self.durable.floor);
            }
        }
        self.send_own_vote(key, vote, out);
        self.learn(key, me, me, ballot, vote, out);
    }

    pub(super) fn send_own_vote(&mut self, key: TxnKey, vote: Vote, out: &mut Output) {
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
}
