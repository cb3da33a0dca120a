//! The lock table: strict two-phase locking with wound-wait, as a pure state machine.
//!
//! Every key a transaction writes (and every key it reads "for update") is locked until the
//! transaction ends. Deadlocks are prevented, not detected, by **wound-wait** (Rosenkrantz,
//! Stearns & Lewis 1978): each transaction has a priority, its begin timestamp, and
//!
//! * an **older** requester (smaller timestamp) that conflicts with a younger holder
//!   *wounds* it: the caller aborts the holder (unless it is already committing) and the
//!   requester waits for the lock to be released;
//! * a **younger** requester waits.
//!
//! Wait-for edges therefore only point from younger to older transactions (edges the other
//! way are broken by wounds), so there is no cycle. Waiters are queued oldest first, so an
//! older waiter is never stuck behind a younger one either.
//!
//! The table decides; it never blocks, sleeps or notifies. [`LockTable::acquire`] answers
//! `Granted` or `Queued` plus the transactions to wound; [`LockTable::release_all`] and
//! [`LockTable::cancel_wait`] return the waiters that have just been granted. The
//! [`crate::manager`] turns those answers into wake-ups and aborts.
//!
//! Invariants (checked by `debug_assert`s and the tests): holders of one key are either one
//! exclusive holder or any number of shared holders; a transaction waits for at most one
//! key at a time; a granted waiter is removed from the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use replication::TxnId;

/// How a key is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl LockMode {
    fn compatible(self, other: LockMode) -> bool {
        self == LockMode::Shared && other == LockMode::Shared
    }
}

/// The answer to a lock request.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The lock is held now.
    Granted,
    /// The requester is queued; `wound` lists younger conflicting holders to abort.
    Queued { wound: Vec<TxnId> },
}

#[derive(Default, Debug)]
struct KeyLock {
    holders: Vec<(TxnId, LockMode)>,
    /// Waiters ordered by priority: oldest first.
    waiters: BTreeMap<TxnId, LockMode>,
}

impl KeyLock {
    /// Whether `txn` may hold `mode` given the other holders.
    fn grantable(&self, txn: TxnId, mode: LockMode) -> bool {
        self.holders
            .iter()
            .all(|&(holder, held)| holder == txn || mode.compatible(held))
    }

    fn grant(&mut self, txn: TxnId, mode: LockMode) {
        if let Some(entry) = self.holders.iter_mut().find(|(h, _)| *h == txn) {
            if mode == LockMode::Exclusive {
                entry.1 = LockMode::Exclusive;
            }
        } else {
            self.holders.push((txn, mode));
        }
        debug_assert!(
            self.holders.len() == 1 || self.holders.iter().all(|(_, m)| *m == LockMode::Shared),
            "exclusive lock shared: {:?}",
            self.holders
        );
    }

    /// Grants queued waiters in priority order while they are compatible.
    fn grant_waiters(&mut self) -> Vec<TxnId> {
        let mut granted = Vec::new();
        while let Some((&txn, &mode)) = self.waiters.iter().next() {
            if !self.grantable(txn, mode) {
                break;
            }
            self.waiters.remove(&txn);
            self.grant(txn, mode);
            granted.push(txn);
        }
        granted
    }

    fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty()
    }
}

/// All locks of one node.
#[derive(Default, Debug)]
pub struct LockTable {
    keys: HashMap<Vec<u8>, KeyLock>,
    /// Keys each transaction holds, to release them at the end (ordered: waiters are
    /// granted in the same order on every run, which the simulator's replay needs).
    held: HashMap<TxnId, BTreeSet<Vec<u8>>>,
    /// The key each transaction waits for, if any.
    waiting: HashMap<TxnId, Vec<u8>>,
}

impl LockTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests `mode` on `key` for `txn`. Re-requesting a held lock (or a weaker mode) is
    /// granted at once; a shared holder asking for exclusive is an upgrade.
    pub fn acquire(&mut self, txn: TxnId, key: &[u8], mode: LockMode) -> Acquire {
        assert!(
            !self.waiting.contains_key(&txn),
            "transaction {txn} requested a lock while waiting for another"
        );
        let lock = self.keys.entry(key.to_vec()).or_default();
        let held = lock
            .holders
            .iter()
            .find(|(h, _)| *h == txn)
            .map(|(_, m)| *m);
        if held == Some(LockMode::Exclusive) || (held.is_some() && mode == LockMode::Shared) {
            return Acquire::Granted;
        }
        // Older waiters go first; younger waiters are overtaken.
        let older_waiting = lock.waiters.range(..txn).any(|(_, &m)| !m.compatible(mode));
        if lock.grantable(txn, mode) && !older_waiting {
            lock.grant(txn, mode);
            self.held.entry(txn).or_default().insert(key.to_vec());
            return Acquire::Granted;
        }
        let wound = lock
            .holders
            .iter()
            .filter(|&&(holder, held)| holder > txn && !(mode.compatible(held)))
            .map(|&(holder, _)| holder)
            .collect();
        lock.waiters.insert(txn, mode);
        self.waiting.insert(txn, key.to_vec());
        Acquire::Queued { wound }
    }

    /// Releases every lock of `txn` and withdraws its wait; returns the waiters granted.
    pub fn release_all(&mut self, txn: TxnId) -> Vec<TxnId> {
        let mut granted = self.cancel_wait(txn);
        for key in self.held.remove(&txn).unwrap_or_default() {
            let Some(lock) = self.keys.get_mut(&key) else {
                continue;
            };
            lock.holders.retain(|(h, _)| *h != txn);
            let now = lock.grant_waiters();
            self.note_granted(&key, &now);
            granted.extend(now);
        }
        granted
    }

    /// Withdraws `txn`'s pending request, if any; returns the waiters granted because of it.
    pub fn cancel_wait(&mut self, txn: TxnId) -> Vec<TxnId> {
        let Some(key) = self.waiting.remove(&txn) else {
            return Vec::new();
        };
        let Some(lock) = self.keys.get_mut(&key) else {
            return Vec::new();
        };
        lock.waiters.remove(&txn);
        // A withdrawn older waiter may have been the only thing blocking younger ones.
        let granted = lock.grant_waiters();
        self.note_granted(&key, &granted);
        granted
    }

    /// Whether `txn` is waiting for a lock.
    pub fn is_waiting(&self, txn: TxnId) -> bool {
        self.waiting.contains_key(&txn)
    }

    /// The mode `txn` holds on `key`, if any.
    pub fn held_mode(&self, txn: TxnId, key: &[u8]) -> Option<LockMode> {
        self.keys
            .get(key)?
            .holders
            .iter()
            .find(|(h, _)| *h == txn)
            .map(|(_, m)| *m)
    }

    /// Number of keys with holders or waiters (for tests and metrics).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn note_granted(&mut self, key: &[u8], granted: &[TxnId]) {
        for &txn in granted {
            self.waiting.remove(&txn);
            self.held.entry(txn).or_default().insert(key.to_vec());
        }
        if self.keys.get(key).is_some_and(KeyLock::is_empty) {
            self.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::*;

    #[test]
    fn shared_locks_share_exclusive_excludes() {
        let mut t = LockTable::new();
        assert_eq!(t.acquire(1, b"k", Shared), Acquire::Granted);
        assert_eq!(t.acquire(2, b"k", Shared), Acquire::Granted);
        // Younger requester waits, wounds no one.
        assert_eq!(
            t.acquire(3, b"k", Exclusive),
            Acquire::Queued { wound: vec![] }
        );
        assert!(t.release_all(1).is_empty());
        assert_eq!(t.release_all(2), vec![3]);
        assert_eq!(t.held_mode(3, b"k"), Some(Exclusive));
    }

    #[test]
    fn older_requester_wounds_younger_holder() {
        let mut t = LockTable::new();
        assert_eq!(t.acquire(5, b"k", Exclusive), Acquire::Granted);
        assert_eq!(
            t.acquire(2, b"k", Shared),
            Acquire::Queued { wound: vec![5] }
        );
        // The wounded holder is aborted by the caller: its release grants the older waiter.
        assert_eq!(t.release_all(5), vec![2]);
        assert!(!t.is_waiting(2));
    }

    #[test]
    fn older_waiter_overtakes_younger_waiters() {
        let mut t = LockTable::new();
        assert_eq!(t.acquire(1, b"k", Exclusive), Acquire::Granted);
        assert!(matches!(
            t.acquire(9, b"k", Exclusive),
            Acquire::Queued { .. }
        ));
        assert!(matches!(
            t.acquire(4, b"k", Exclusive),
            Acquire::Queued { .. }
        ));
        assert_eq!(t.release_all(1), vec![4]);
        assert_eq!(t.release_all(4), vec![9]);
        assert_eq!(t.release_all(9), Vec::<TxnId>::new());
        assert!(t.is_empty());
    }

    #[test]
    fn upgrade_of_sole_shared_holder_is_immediate() {
        let mut t = LockTable::new();
        assert_eq!(t.acquire(1, b"k", Shared), Acquire::Granted);
        assert_eq!(t.acquire(1, b"k", Exclusive), Acquire::Granted);
        assert_eq!(t.held_mode(1, b"k"), Some(Exclusive));
        assert_eq!(t.acquire(1, b"k", Shared), Acquire::Granted);
        assert_eq!(t.held_mode(1, b"k"), Some(Exclusive));
    }

    #[test]
    fn cancelled_wait_unblocks_younger_waiters() {
        let mut t = LockTable::new();
        assert_eq!(t.acquire(1, b"k", Shared), Acquire::Granted);
        assert!(matches!(
            t.acquire(2, b"k", Exclusive),
            Acquire::Queued { .. }
        ));
        // 3 wants shared: compatible with holder 1, but older waiter 2 conflicts.
        assert!(matches!(t.acquire(3, b"k", Shared), Acquire::Queued { .. }));
        assert_eq!(t.cancel_wait(2), vec![3]);
    }

    /// Random schedules: no cycle can form, so repeatedly aborting wounded transactions and
    /// releasing finished ones always drains the table.
    #[test]
    fn random_schedules_always_drain() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut t = LockTable::new();
            let mut wounded = std::collections::HashSet::new();
            let txns: Vec<TxnId> = (1..=6).collect();
            for _ in 0..40 {
                let txn = txns[(next() % 6) as usize];
                if t.is_waiting(txn) || wounded.contains(&txn) {
                    continue;
                }
                let key = [(next() % 4) as u8];
                let mode = if next() % 2 == 0 { Shared } else { Exclusive };
                if let Acquire::Queued { wound } = t.acquire(txn, &key, mode) {
                    for w in wound {
                        wounded.insert(w);
                        t.release_all(w);
                    }
                }
            }
            // Finish: transactions not waiting complete (oldest first), releasing locks.
            for _ in 0..20 {
                for &txn in &txns {
                    if !t.is_waiting(txn) {
                        t.release_all(txn);
                    }
                }
            }
            assert!(t.is_empty(), "lock table did not drain: {t:?}");
        }
    }
}
