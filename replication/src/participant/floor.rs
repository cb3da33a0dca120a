//! Vote floors and the complete point (docs/protocol.md §7.6): raising the floor behind
//! the clock, announcing it in `Closed`, tracking attempts heard of out of order.

use super::*;

impl Participant {
    /// Raises the floor behind the clock, never past a record still waiting to be
    /// voted on, and announces it.
    pub(super) fn raise_floor(&mut self, out: &mut Output) {
        let mut target = DcClock::latest_at(self.now.saturating_sub(self.cfg.floor_lag_us));
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
        let closed = self.complete_point.raise(self.durable.floor);
        self.broadcast_closed(closed, out);
    }

    /// One data center: every attempt is decided in the step that ships it, so the
    /// floor — and with it the complete point — follows the clock's last value at the
    /// end of every step: each version issued so far is decided and, once the step is
    /// synced, applied.
    pub(super) fn follow_clock(&mut self) {
        let target = self.durable.hlc.last();
        if target > self.durable.floor {
            self.durable.floor = target;
            self.durable.mark(Slot::Meta);
        }
        self.complete_point.raise(self.durable.floor);
    }

    /// One data center: drops the state of the attempts this step decided (their
    /// writes are in this step's output) and prunes the committed index down to the
    /// read horizon, so memory stays bounded by the live transactions.
    pub(super) fn retire_applied(&mut self) {
        let upto = self.durable.next_seq;
        assert!(
            self.prepared.is_empty()
                && self.waiting.is_empty()
                && self.local_waiting.is_empty()
                && self.durable.outcomes.len() == self.durable.records.len(),
            "one data center decides every attempt in the step that ships it"
        );
        self.durable.retire(self.cfg.me, upto, false);
        self.attempts.clear();
        self.active.clear();
        self.parked.clear();
        let horizon = self.read_horizon.unwrap_or(0).min(self.durable.floor);
        self.committed.prune_local(self.durable.floor, horizon);
    }

    /// Several data centers: retires each origin's longest run of settled attempts
    /// (decided and applied here, outcome durable at every DC, no client waiting), so
    /// the protocol state held stays bounded by the attempts in flight.
    pub(super) fn retire_settled(&mut self) {
        for origin in 0..self.cfg.dcs {
            let settled = &mut self.settled[origin];
            let Some(&first) = settled.first() else {
                continue;
            };
            let mut upto = self.durable.retired().get(origin).copied().unwrap_or(0);
            if first != upto + 1 {
                continue;
            }
            while settled.remove(&(upto + 1)) {
                upto += 1;
            }
            let origin = origin as DcId;
            assert!(
                self.complete_point.prefix(origin) >= upto,
                "DC {}: retiring attempts of DC {origin} up to {upto} beyond the resolved prefix",
                self.cfg.me
            );
            self.durable.retire(origin, upto, true);
        }
    }

    pub(super) fn broadcast_closed(&mut self, closed: Closed, out: &mut Output) {
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
    pub(super) fn track_missing(&mut self) {
        for key in self.complete_point.missing() {
            if !self.durable.outcomes.contains_key(&key) {
                self.attempt(key);
            }
        }
    }
}
