//! The acceptor (docs/protocol.md §5.4, §7.2): accepts votes for every vote instance
//! (Paxos Commit Phase 2) and answers recovery's Phase 1 with what it accepted.

use super::*;

impl Participant {
    pub(super) fn on_vote(
        &mut self,
        from: DcId,
        key: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
        out: &mut Output,
    ) {
        self.see_ballot(key, ballot, true);
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

    pub(super) fn on_prepare(
        &mut self,
        from: DcId,
        key: TxnKey,
        ballot: Ballot,
        voters: Vec<DcId>,
        out: &mut Output,
    ) {
        self.see_ballot(key, ballot, false);
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
}
