//! What a DC's participant must not lose (docs/protocol.md §2.2, §7.4), and how it
//! reaches a disk.
//!
//! [`Durable`] is the state a crash keeps: the attempt sequence, the clock's high-water,
//! the vote floor, records, this DC's own votes, acceptor states and outcomes. Every
//! change marks its slot; the participant turns the marked slots of one step into
//! [`DurableEntry`]s (`Output::persist`), which a runtime writes under their
//! [`DurableEntry::slot_key`] — a later entry for a slot replaces the earlier one — and
//! syncs before releasing the step's messages. [`Durable::from_entries`] rebuilds the
//! state from whatever was synced. The simulator keeps whole `Durable` copies instead.

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;
use serde::{Deserialize, Serialize};

use crate::clock::DcClock;
use crate::instance::{Acceptor, DcId, Vote};
use crate::record::{Outcome, Record, TxnKey};

/// One piece of durable state; the unit a runtime persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DurableEntry {
    Meta {
        next_seq: u64,
        hlc: Version,
        floor: Version,
    },
    Record(Record),
    OwnVote(TxnKey, Vote),
    Acceptor(TxnKey, DcId, Acceptor),
    Outcome(TxnKey, Outcome),
    /// Per origin: attempts 1..=n are decided, applied and forgotten ([`Durable::retire`]).
    Retired(Vec<u64>),
}

impl DurableEntry {
    /// The entry's storage key: one per slot, ordered by attempt within a kind.
    pub fn slot_key(&self) -> Vec<u8> {
        let (tag, key, voter) = match self {
            DurableEntry::Meta { .. } => return vec![b'm'],
            DurableEntry::Retired(_) => return vec![b'x'],
            DurableEntry::Record(r) => (b'r', r.key, None),
            DurableEntry::OwnVote(k, _) => (b'o', *k, None),
            DurableEntry::Acceptor(k, v, _) => (b'a', *k, Some(*v)),
            DurableEntry::Outcome(k, _) => (b'd', *k, None),
        };
        let mut buf = vec![tag, key.origin];
        buf.extend_from_slice(&key.seq.to_be_bytes());
        buf.extend(voter);
        buf
    }
}

/// A slot of [`Durable`] changed since the last [`Durable::take_changes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    Meta,
    Record(TxnKey),
    OwnVote(TxnKey),
    Acceptor(TxnKey, DcId),
    Outcome(TxnKey),
    Retired,
}

/// The state a crash does not lose.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub(crate) next_seq: u64,
    /// Highest HLC value issued or observed.
    pub(crate) hlc: DcClock,
    pub(crate) records: BTreeMap<TxnKey, Record>,
    /// This DC's own vote per attempt (cast as owner of its instance).
    pub(crate) own_votes: BTreeMap<TxnKey, Vote>,
    pub(crate) acceptors: BTreeMap<(TxnKey, DcId), Acceptor>,
    pub(crate) outcomes: BTreeMap<TxnKey, Outcome>,
    /// F: this DC votes ABORT on records at or below this version (C0, §7.6).
    pub(crate) floor: Version,
    /// Per origin: attempts 1..=n were decided and applied, and their state dropped.
    pub(crate) retired: Vec<u64>,
    /// Slots changed and not yet handed out as entries.
    dirty: BTreeSet<Slot>,
}

impl Durable {
    /// Rebuilds the state from persisted entries (later entries of a slot win).
    pub fn from_entries(entries: impl IntoIterator<Item = DurableEntry>) -> Durable {
        let mut d = Durable::default();
        for entry in entries {
            match entry {
                DurableEntry::Meta {
                    next_seq,
                    hlc,
                    floor,
                } => {
                    d.next_seq = next_seq;
                    d.hlc = DcClock::starting_at(hlc);
                    d.floor = floor;
                }
                DurableEntry::Record(r) => {
                    d.records.insert(r.key, r);
                }
                DurableEntry::OwnVote(k, v) => {
                    d.own_votes.insert(k, v);
                }
                DurableEntry::Acceptor(k, voter, a) => {
                    d.acceptors.insert((k, voter), a);
                }
                DurableEntry::Outcome(k, o) => {
                    d.outcomes.insert(k, o);
                }
                DurableEntry::Retired(r) => d.retired = r,
            }
        }
        d
    }

    /// Every outcome this DC has learned.
    pub fn outcomes(&self) -> &BTreeMap<TxnKey, Outcome> {
        &self.outcomes
    }

    /// This DC's own vote per attempt.
    pub fn own_votes(&self) -> &BTreeMap<TxnKey, Vote> {
        &self.own_votes
    }

    /// Every attempt this DC holds a record of.
    pub fn records(&self) -> &BTreeMap<TxnKey, Record> {
        &self.records
    }

    /// Attempts this DC knows of in any way (records, acceptor state, outcomes).
    pub fn known(&self) -> BTreeSet<TxnKey> {
        self.records
            .keys()
            .chain(self.outcomes.keys())
            .copied()
            .chain(self.acceptors.keys().map(|(t, _)| *t))
            .collect()
    }

    /// The vote floor F.
    pub fn floor(&self) -> Version {
        self.floor
    }

    /// Per origin, the attempts retired (decided, applied, forgotten).
    pub fn retired(&self) -> &[u64] {
        &self.retired
    }

    /// Absorbs a version found elsewhere (the store's newest, at start), so every
    /// version issued later is above it.
    pub fn observe(&mut self, version: Version) {
        if self.hlc.observe(version) {
            self.mark(Slot::Meta);
        }
    }

    /// Drops every decided attempt whose writes are applied, keeping only that they
    /// were: with one data center, nobody will ask about them again. The caller
    /// guarantees that every attempt of origin `origin` up to `upto` is decided and
    /// applied no later than the step that persists this.
    pub(crate) fn retire(&mut self, origin: DcId, upto: u64) {
        let slot = usize::from(origin);
        if self.retired.len() <= slot {
            self.retired.resize(slot + 1, 0);
        }
        if self.retired[slot] >= upto {
            return;
        }
        self.retired[slot] = upto;
        let gone = |k: &TxnKey| k.origin == origin && k.seq <= upto;
        self.records.retain(|k, _| !gone(k));
        self.own_votes.retain(|k, _| !gone(k));
        self.acceptors.retain(|(k, _), _| !gone(k));
        self.outcomes.retain(|k, _| !gone(k));
        self.mark(Slot::Retired);
    }

    pub(crate) fn mark(&mut self, slot: Slot) {
        self.dirty.insert(slot);
    }

    /// The entries of every slot changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<DurableEntry> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|slot| {
                Some(match slot {
                    Slot::Meta => DurableEntry::Meta {
                        next_seq: self.next_seq,
                        hlc: self.hlc.last(),
                        floor: self.floor,
                    },
                    Slot::Record(k) => DurableEntry::Record(self.records.get(&k)?.clone()),
                    Slot::OwnVote(k) => DurableEntry::OwnVote(k, *self.own_votes.get(&k)?),
                    Slot::Acceptor(k, v) => {
                        DurableEntry::Acceptor(k, v, *self.acceptors.get(&(k, v))?)
                    }
                    Slot::Outcome(k) => DurableEntry::Outcome(k, *self.outcomes.get(&k)?),
                    Slot::Retired => DurableEntry::Retired(self.retired.clone()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Ballot;

    #[test]
    fn entries_rebuild_the_state_and_later_entries_win() {
        let key = TxnKey { origin: 1, seq: 7 };
        let mut d = Durable {
            next_seq: 3,
            floor: 40,
            ..Default::default()
        };
        d.hlc.observe(99);
        d.own_votes.insert(key, Vote::Commit);
        let mut a = Acceptor::default();
        a.accept(Ballot::own(1), Vote::Commit).unwrap();
        d.acceptors.insert((key, 1), a);
        d.outcomes.insert(key, Outcome::Aborted);
        for slot in [
            Slot::Meta,
            Slot::OwnVote(key),
            Slot::Acceptor(key, 1),
            Slot::Outcome(key),
            Slot::Record(key), // absent: no entry
        ] {
            d.mark(slot);
        }
        let entries = d.take_changes();
        assert_eq!(entries.len(), 4);
        assert!(d.take_changes().is_empty());
        let keys: BTreeSet<Vec<u8>> = entries.iter().map(DurableEntry::slot_key).collect();
        assert_eq!(keys.len(), 4, "one slot key each");
        let older = DurableEntry::Meta {
            next_seq: 1,
            hlc: 5,
            floor: 0,
        };
        let back = Durable::from_entries(std::iter::once(older).chain(entries));
        assert_eq!(back.next_seq, 3);
        assert_eq!(back.floor, 40);
        assert_eq!(back.hlc.last(), 99);
        assert_eq!(back.own_votes, d.own_votes);
        assert_eq!(back.acceptors, d.acceptors);
        assert_eq!(back.outcomes, d.outcomes);
    }
}
