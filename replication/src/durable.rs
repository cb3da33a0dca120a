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
    /// A key's newest version written by a retired committed attempt (several DCs):
    /// what the committed index keeps of it, rebuilt from these at restart.
    RetiredWrite(Vec<u8>, Version),
    /// Per origin: attempts below this number belong to a previous incarnation of this
    /// DC's directory, which a state transfer replaced ([`Durable::rebuilt`]).
    Fence(Vec<u64>),
}

impl DurableEntry {
    /// The entry's storage key: one per slot, ordered by attempt within a kind.
    pub fn slot_key(&self) -> Vec<u8> {
        let (tag, key, voter) = match self {
            DurableEntry::Meta { .. } => return vec![b'm'],
            DurableEntry::Retired(_) => return vec![b'x'],
            DurableEntry::Fence(_) => return vec![b'f'],
            DurableEntry::RetiredWrite(key, _) => {
                let mut buf = vec![b'w'];
                buf.extend_from_slice(key);
                return buf;
            }
            DurableEntry::Record(r) => (b'r', r.key, None),
            DurableEntry::OwnVote(k, _) => (b'o', *k, None),
            DurableEntry::Acceptor(k, v, _) => (b'a', *k, Some(*v)),
            DurableEntry::Outcome(k, _) => (b'd', *k, None),
        };
        slot_key(tag, key, voter)
    }
}

/// The storage key of a slot: `[tag, origin, seq (big-endian), voter?]`, one per slot,
/// ordered by attempt within a kind.
fn slot_key(tag: u8, key: TxnKey, voter: Option<DcId>) -> Vec<u8> {
    let mut buf = vec![tag, key.origin];
    buf.extend_from_slice(&key.seq.to_be_bytes());
    buf.extend(voter);
    buf
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

impl Slot {
    /// The storage key of an attempt's slot ([`DurableEntry::slot_key`]).
    fn key(&self) -> Vec<u8> {
        match *self {
            Slot::Record(k) => slot_key(b'r', k, None),
            Slot::OwnVote(k) => slot_key(b'o', k, None),
            Slot::Acceptor(k, v) => slot_key(b'a', k, Some(v)),
            Slot::Outcome(k) => slot_key(b'd', k, None),
            Slot::Meta => vec![b'm'],
            Slot::Retired => vec![b'x'],
        }
    }
}

/// What one DC tells a DC that rejoins by state transfer (docs/protocol.md §7.7),
/// made durable before it is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejoinFacts {
    /// The DC answering.
    pub from: DcId,
    /// Its attempts numbered below this were shipped before the rejoin (the rejoining
    /// DC takes no part in them).
    pub fence: u64,
    /// The highest attempt number of the rejoining DC it holds anything of.
    pub highest_of_rejoiner: u64,
    /// The highest floor it heard the rejoining DC announce.
    pub floor_of_rejoiner: Version,
    /// Its clock's high-water.
    pub hlc: Version,
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
    /// Per key, the newest version a retired committed attempt wrote (several DCs only;
    /// bounded by the keyspace, as the committed index is).
    pub(crate) retired_writes: BTreeMap<Vec<u8>, Version>,
    /// Per origin: attempts numbered below this were seen (perhaps voted on, accepted,
    /// recovered) by a previous incarnation of this DC whose state was lost; this one
    /// takes no part in them but learns their outcomes (empty: no rejoin).
    pub(crate) fence: Vec<u64>,
    /// Keys of `retired_writes` changed and not yet handed out.
    dirty_writes: BTreeSet<Vec<u8>>,
    /// Slots changed and not yet handed out as entries.
    dirty: BTreeSet<Slot>,
    /// Storage keys of retired slots not yet handed out for deletion.
    forgotten: Vec<Vec<u8>>,
}

/// Removes the entries with keys in `lo..=hi` from `map`; yields their keys.
fn take_range<K: Ord + Copy, V>(
    map: &mut BTreeMap<K, V>,
    lo: K,
    hi: K,
) -> impl Iterator<Item = K> + use<K, V> {
    let mut above = map.split_off(&lo);
    let mut beyond = above.split_off(&hi);
    // split_off keeps `hi` itself in `beyond`: move it back to the range.
    if let Some(v) = beyond.remove(&hi) {
        above.insert(hi, v);
    }
    map.append(&mut beyond);
    above.into_keys()
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
                DurableEntry::RetiredWrite(k, v) => {
                    d.retired_writes.insert(k, v);
                }
                DurableEntry::Fence(f) => d.fence = f,
            }
        }
        // A retirement deletes its slots in the batch that persists it; this only
        // guards against entries left by an older version.
        if d.retired.iter().any(|n| *n > 0) {
            let retired = d.retired.clone();
            let live = |k: &TxnKey| {
                retired
                    .get(usize::from(k.origin))
                    .is_none_or(|n| k.seq > *n)
            };
            d.records.retain(|k, _| live(k));
            d.own_votes.retain(|k, _| live(k));
            d.outcomes.retain(|k, _| live(k));
            d.acceptors.retain(|(k, _), _| live(k));
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

    /// Whether `key` belongs to a previous incarnation of this DC (see `fence`).
    pub fn is_fenced(&self, key: TxnKey) -> bool {
        self.fence
            .get(usize::from(key.origin))
            .is_some_and(|f| key.seq < *f)
    }

    /// The highest attempt number of `origin` this DC holds anything of.
    pub fn highest_known(&self, origin: DcId) -> u64 {
        let retired = self.retired.get(usize::from(origin)).copied().unwrap_or(0);
        let mut known = self.known().into_iter().filter(|k| k.origin == origin);
        retired.max(known.next_back().map_or(0, |k| k.seq))
    }

    /// The state of DC `me` rebuilt from a donor's copy (`self`) by a state transfer
    /// (docs/protocol.md §7.7), with the answers of every other DC (`facts`, the donor's
    /// among them). What the donor learned stays: records, outcomes, retired attempts
    /// and their newest writes (the store copied with it holds their writes). What was
    /// the donor's own goes: its votes and acceptor states. What the lost directory
    /// promised is fenced: every attempt a previous incarnation of `me` could have
    /// voted on, accepted or recovered (each origin's attempts below the number it
    /// reported, and `me`'s own below the highest any DC heard of) is left to the
    /// others; `me`'s attempts continue above that number; the floor and clock start
    /// above every floor the DCs heard `me` announce.
    pub fn rebuilt(mut self, me: DcId, dcs: usize, facts: &[RejoinFacts]) -> Durable {
        self.own_votes.clear();
        self.acceptors.clear();
        let mut fence = vec![0; dcs];
        let mut last_own = self.highest_known(me);
        for f in facts {
            if let Some(slot) = fence.get_mut(usize::from(f.from)) {
                *slot = (*slot).max(f.fence);
            }
            last_own = last_own.max(f.highest_of_rejoiner);
            self.floor = self.floor.max(f.floor_of_rejoiner);
            self.hlc.observe(f.hlc);
        }
        fence[usize::from(me)] = last_own + 1;
        self.next_seq = last_own;
        self.fence = fence;
        self.hlc.observe(self.floor);
        self.dirty.clear();
        self.dirty_writes.clear();
        self.forgotten.clear();
        self
    }

    /// Every slot, as entries (to write a rebuilt state into an empty store).
    pub fn entries(&self) -> Vec<DurableEntry> {
        let slots = [Slot::Meta, Slot::Retired]
            .into_iter()
            .chain(self.records.keys().copied().map(Slot::Record))
            .chain(self.own_votes.keys().copied().map(Slot::OwnVote))
            .chain(self.acceptors.keys().map(|(k, v)| Slot::Acceptor(*k, *v)))
            .chain(self.outcomes.keys().copied().map(Slot::Outcome));
        slots
            .filter_map(|slot| self.entry(slot))
            .chain([DurableEntry::Fence(self.fence.clone())])
            .chain(
                self.retired_writes
                    .iter()
                    .map(|(k, v)| DurableEntry::RetiredWrite(k.clone(), *v)),
            )
            .collect()
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

    /// Whether `key` is among the retired attempts of its origin.
    pub fn is_retired(&self, key: TxnKey) -> bool {
        self.retired
            .get(usize::from(key.origin))
            .is_some_and(|n| key.seq <= *n)
    }

    /// Drops every attempt of `origin` up to `upto`, keeping only that they were. The
    /// caller guarantees that each of them is decided and applied here no later than
    /// the step that persists this, and that nobody will need their state again: with
    /// one data center nobody asks; with several, every DC holds the outcome durably,
    /// so no DC recovers them and late messages about them are dropped. `persisted`:
    /// their slots may be on disk (with one data center they are retired in the step
    /// that creates them, so they never are); the slot keys to delete are then
    /// returned by [`Durable::take_forgotten`].
    pub(crate) fn retire(&mut self, origin: DcId, upto: u64, persisted: bool) {
        let slot = usize::from(origin);
        if self.retired.len() <= slot {
            self.retired.resize(slot + 1, 0);
        }
        let from = self.retired[slot];
        if from >= upto {
            return;
        }
        self.retired[slot] = upto;
        self.mark(Slot::Retired);
        let lo = TxnKey { origin, seq: 0 };
        let hi = TxnKey { origin, seq: upto };
        let mut gone: Vec<Slot> = Vec::new();
        if persisted {
            // What the committed index needs of them after a restart: each key's newest
            // committed version (the caller retires committed attempts only at or below
            // the floor, where the index keeps nothing else).
            let range = (std::ops::Bound::Included(lo), std::ops::Bound::Included(hi));
            for (key, outcome) in self.outcomes.range(range) {
                let (Outcome::Committed { version }, Some(record)) =
                    (outcome, self.records.get(key))
                else {
                    continue;
                };
                for (k, _) in &record.writes {
                    let newest = self.retired_writes.entry(k.clone()).or_default();
                    if *newest < *version {
                        *newest = *version;
                        self.dirty_writes.insert(k.clone());
                    }
                }
            }
        }
        gone.extend(take_range(&mut self.records, lo, hi).map(Slot::Record));
        gone.extend(take_range(&mut self.own_votes, lo, hi).map(Slot::OwnVote));
        gone.extend(take_range(&mut self.outcomes, lo, hi).map(Slot::Outcome));
        gone.extend(
            take_range(&mut self.acceptors, (lo, 0), (hi, DcId::MAX))
                .map(|(k, v)| Slot::Acceptor(k, v)),
        );
        for slot in &gone {
            self.dirty.remove(slot);
        }
        if persisted {
            self.forgotten.extend(gone.iter().map(Slot::key));
        }
    }

    /// Storage keys of slots retired since the last call, for the runtime to delete in
    /// the same batch as the step's entries.
    pub(crate) fn take_forgotten(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.forgotten)
    }

    pub(crate) fn mark(&mut self, slot: Slot) {
        self.dirty.insert(slot);
    }

    /// The entry of `slot` (None: the slot is empty).
    fn entry(&self, slot: Slot) -> Option<DurableEntry> {
        Some(match slot {
            Slot::Meta => DurableEntry::Meta {
                next_seq: self.next_seq,
                hlc: self.hlc.last(),
                floor: self.floor,
            },
            Slot::Record(k) => DurableEntry::Record(self.records.get(&k)?.clone()),
            Slot::OwnVote(k) => DurableEntry::OwnVote(k, *self.own_votes.get(&k)?),
            Slot::Acceptor(k, v) => DurableEntry::Acceptor(k, v, *self.acceptors.get(&(k, v))?),
            Slot::Outcome(k) => DurableEntry::Outcome(k, *self.outcomes.get(&k)?),
            Slot::Retired => DurableEntry::Retired(self.retired.clone()),
        })
    }

    /// The entries of every slot changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<DurableEntry> {
        let dirty = std::mem::take(&mut self.dirty);
        let writes: Vec<DurableEntry> = std::mem::take(&mut self.dirty_writes)
            .into_iter()
            .filter_map(|k| {
                let v = *self.retired_writes.get(&k)?;
                Some(DurableEntry::RetiredWrite(k, v))
            })
            .collect();
        dirty
            .into_iter()
            .filter_map(|slot| self.entry(slot))
            .chain(writes)
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

        // A rebuilt state (§7.7) drops the donor's own votes and acceptor states, fences,
        // and round-trips whole through `entries`.
        let facts = [RejoinFacts {
            from: 1,
            fence: 9,
            highest_of_rejoiner: 12,
            floor_of_rejoiner: 50,
            hlc: 120,
        }];
        let rebuilt = d.clone().rebuilt(0, 3, &facts);
        assert!(rebuilt.own_votes.is_empty() && rebuilt.acceptors.is_empty());
        assert_eq!((rebuilt.next_seq, rebuilt.floor), (12, 50));
        assert_eq!(rebuilt.fence, vec![13, 9, 0]);
        assert!(rebuilt.is_fenced(key) && !rebuilt.is_fenced(TxnKey { origin: 1, seq: 9 }));
        let back = Durable::from_entries(rebuilt.entries());
        assert_eq!(back.fence, rebuilt.fence);
        assert_eq!((back.next_seq, back.floor, back.hlc.last()), (12, 50, 120));
        assert_eq!(back.outcomes, d.outcomes);
        assert!(back.own_votes.is_empty() && back.acceptors.is_empty());
    }
}
