//! The origin (docs/protocol.md §5.1, §6): checks its own transaction against its
//! committed and prepared state, parks it behind older prepared attempts (rule E0),
//! chooses its version above its floor and ships the record with its own vote.

use super::*;

impl Participant {
    /// Checks a local commit; ships it, answers ABORT, or parks it (E0).
    pub(super) fn try_ship(&mut self, c: LocalCommit, out: &mut Output) {
        if !self.fence_cleared() {
            // Rebuilt and still learning what its lost directory voted on (§7.7).
            self.local_waiting.push(c);
            return;
        }
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
        assert!(
            version > self.durable.floor,
            "DC {}: version {version} issued at or below the floor {}",
            self.cfg.me,
            self.durable.floor
        );
        let key = TxnKey {
            origin: self.cfg.me,
            seq: self.durable.next_seq + 1,
        };
        let LocalCommit {
            client,
            txn,
            reads,
            writes,
        } = c;
        let record = Record {
            key,
            txn,
            version,
            reads,
            writes,
        };
        match self.verdict(&record, Checker::Origin) {
            Verdict::Abort(reason) => out.replies.push(Reply {
                client,
                result: ClientResult::Aborted { reason },
            }),
            Verdict::Wait(_) => self.local_waiting.push(LocalCommit {
                client,
                txn,
                reads: record.reads,
                writes: record.writes,
            }),
            Verdict::Commit => {
                self.durable.next_seq += 1;
                if self.cfg.dcs > 1 {
                    self.broadcast(
                        Msg::Record {
                            record: record.clone(),
                        },
                        out,
                    );
                }
                self.durable.records.insert(key, record);
                self.durable.mark(Slot::Meta);
                self.durable.mark(Slot::Record(key));
                let a = self.attempt(key);
                a.client = Some(client);
                self.cast_own_vote(key, Vote::Commit, out);
            }
        }
    }
}
