//! The transaction manager: the transaction interface the SQL layer uses.
//!
//! ```text
//!   begin ──▶ read_version = the DC's complete point A_d (every commit ≤ it is applied)
//!   get/scan ──▶ snapshot reads at read_version, spans recorded     (no locks)
//!   get_for_update/put/delete ──▶ exclusive lock (wound-wait), latest value, buffered write
//!   commit ──▶ reads (span, version seen) + writes ──▶ the protocol driver
//!          ──▶ decided, durable, applied ──▶ release locks ──▶ acknowledge
//! ```
//!
//! Execution happens here, at the transaction's origin, under wound-wait; the decision
//! is the commit protocol's (the `replication` crate, through [`crate::driver`]), which
//! checks the reads against everything committed and chooses the version — with one
//! data center in the same step, with several after the votes of the others.
//!
//! Isolation is serializable, and strictly so: a read-write transaction is serialized at
//! its commit version (its locked keys cannot change before it; its snapshot reads are
//! checked to be unchanged up to it), a read-only transaction on a *fresh* snapshot —
//! one that holds every commit acknowledged anywhere before it began — at its read
//! version. With one data center every snapshot is fresh (a commit is acknowledged only
//! after the complete point passed it); with several, [`TxnManager::begin_fresh`] waits
//! for the complete point to pass the clock bound, and a read-only transaction on an
//! older snapshot, or one that took locks, commits through the protocol like any other.
//!
//! The manager owns one mutex around the lock table and the live transactions. The
//! oldest live snapshot (the read horizon) is handed to the driver as transactions end,
//! so the protocol's committed index forgets what no live transaction can conflict with.
//!
//! Wounds: when an older transaction wounds a younger one, the younger one is aborted on the
//! spot — its locks are released immediately (its writes are only buffered, so nothing needs
//! undoing) and its next operation fails with [`Error::Wounded`]. A transaction that has
//! entered its commit cannot be wounded; the older one waits for it, which is bounded.
//!
//! Caveats: old versions are never garbage-collected yet.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use kv::{Store, Version};
use parking_lot::Mutex;
use replication::{Config, DcClock, ReadEntry, ReadSpan};
use tokio::sync::oneshot;

use crate::clock::PhysicalClock;
use crate::commit::{CommitReply, CommitTrace, DcStatus};
use crate::driver::{self, DriverHandle, DriverTask};
use crate::error::{Error, Result};
use crate::locks::{Acquire, LockMode, LockTable, TxnId};

/// Upper bound on one transaction's buffered writes (keys + values), in bytes.
pub const WRITE_SET_BYTES_MAX: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Committing,
    Wounded,
}

struct Entry {
    status: Status,
    read_version: Version,
    /// Wakes the transaction's pending lock request (granted or wounded).
    waker: Option<oneshot::Sender<()>>,
}

struct Core {
    /// Wound-wait priorities (tagged with the DC in `begin`, so they compare across DCs).
    clock: DcClock,
    locks: LockTable,
    txns: HashMap<TxnId, Entry>,
    /// Read versions of live transactions (a multiset): the read horizon.
    live_reads: BTreeMap<Version, usize>,
}

impl Core {
    /// Aborts a wounded transaction unless it is already committing.
    fn wound(&mut self, victim: TxnId) {
        let Some(entry) = self.txns.get_mut(&victim) else {
            return;
        };
        if entry.status != Status::Active {
            return;
        }
        entry.status = Status::Wounded;
        let waker = entry.waker.take();
        let granted = self.locks.release_all(victim);
        if let Some(waker) = waker {
            let _ = waker.send(());
        }
        self.wake(granted);
    }

    fn wake(&mut self, granted: Vec<TxnId>) {
        for txn in granted {
            if let Some(waker) = self.txns.get_mut(&txn).and_then(|e| e.waker.take()) {
                let _ = waker.send(());
            }
        }
    }

    fn status(&self, txn: TxnId) -> Status {
        self.txns.get(&txn).map_or(Status::Wounded, |e| e.status)
    }

    /// Removes a finished transaction, releasing its locks.
    fn finish(&mut self, txn: TxnId) {
        if let Some(entry) = self.txns.remove(&txn) {
            if let Some(n) = self.live_reads.get_mut(&entry.read_version) {
                *n -= 1;
                if *n == 0 {
                    self.live_reads.remove(&entry.read_version);
                }
            }
        }
        let granted = self.locks.release_all(txn);
        self.wake(granted);
    }
}

/// Counters for tests, `SHOW` and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxnStats {
    pub committed: u64,
    pub aborted: u64,
    pub wounded: u64,
}

/// Begins, runs and commits transactions against one node's store.
pub struct TxnManager {
    store: Arc<Store>,
    physical: Arc<dyn PhysicalClock>,
    core: Mutex<Core>,
    driver: DriverHandle,
    committed: AtomicU64,
    aborted: AtomicU64,
    wounded: AtomicU64,
}

impl TxnManager {
    /// A manager whose commits go through `driver` (module docs).
    pub fn new(
        store: Arc<Store>,
        physical: Arc<dyn PhysicalClock>,
        driver: DriverHandle,
    ) -> Arc<Self> {
        Arc::new(TxnManager {
            store,
            core: Mutex::new(Core {
                clock: DcClock::default(),
                locks: LockTable::new(),
                txns: HashMap::new(),
                live_reads: BTreeMap::new(),
            }),
            physical,
            driver,
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            wounded: AtomicU64::new(0),
        })
    }

    /// A single-data-center manager over `store`, with its driver; the caller runs the
    /// task (`task.run(None)`), which only logs figures.
    pub fn start_single(
        store: Arc<Store>,
        physical: Arc<dyn PhysicalClock>,
    ) -> Result<(Arc<Self>, DriverTask)> {
        let (handle, task) = driver::open(
            Config::single(),
            store.clone(),
            physical.clone(),
            None,
            None,
        )?;
        Ok((TxnManager::new(store, physical, handle), task))
    }

    /// The cluster's data centers as this node sees them (None: a single-DC node).
    pub fn data_centers(&self) -> Option<Vec<DcStatus>> {
        self.driver.data_centers()
    }

    /// The protocol driver this manager commits through.
    pub fn driver(&self) -> &DriverHandle {
        &self.driver
    }

    /// Waits until the complete point passes every commit acknowledged anywhere so far.
    /// Refused while this node's clock is off its peers' (a fresh point read from it
    /// could be below a commit acknowledged elsewhere).
    async fn catch_up_to_now(&self) -> Result<()> {
        if let Some(why) = self.driver.clock_refusal() {
            return Err(Error::ClockOffset(why));
        }
        let point = self.driver.fresh_point();
        if self.driver.complete() < point {
            self.driver
                .wait_complete(point)
                .await
                .map_err(|_| Error::OutcomeUnknown)?;
        }
        Ok(())
    }

    /// Begins a transaction whose snapshot holds every commit acknowledged anywhere
    /// before the call (with several DCs this waits for the complete point to pass it).
    pub async fn begin_fresh(self: &Arc<Self>) -> Result<Txn> {
        self.catch_up_to_now().await?;
        let mut txn = self.begin();
        txn.fresh = true;
        Ok(txn)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Begins a transaction reading the snapshot of every acknowledged commit.
    pub fn begin(self: &Arc<Self>) -> Txn {
        let mut core = self.core.lock();
        // Read under the lock that also computes the read horizon (`end`), so no
        // snapshot starts below a horizon already handed to the driver.
        let read_version = self.driver.complete();
        // Priorities are compared across DCs (rule E3): DC clock values, like versions.
        let now = self.physical.now_micros();
        let id = core.clock.issue(self.driver.dc(), now, 0);
        core.txns.insert(
            id,
            Entry {
                status: Status::Active,
                read_version,
                waker: None,
            },
        );
        *core.live_reads.entry(read_version).or_default() += 1;
        Txn {
            id,
            read_version,
            manager: self.clone(),
            state: Mutex::new(TxnState::default()),
            finished: AtomicBool::new(false),
            trace: OnceLock::new(),
            fresh: self.driver.dcs() == 1,
        }
    }

    pub fn stats(&self) -> TxnStats {
        TxnStats {
            committed: self.committed.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            wounded: self.wounded.load(Ordering::Relaxed),
        }
    }

    /// Whether transaction `txn` is waiting for a lock.
    pub fn is_waiting(&self, txn: TxnId) -> bool {
        self.core.lock().locks.is_waiting(txn)
    }

    /// Number of keys with lock holders or waiters.
    pub fn locked_keys(&self) -> usize {
        self.core.lock().locks.len()
    }

    fn check_active(&self, txn: TxnId) -> Result<()> {
        match self.core.lock().status(txn) {
            Status::Active => Ok(()),
            Status::Wounded => Err(Error::Wounded),
            Status::Committing => Err(Error::Aborted),
        }
    }

    async fn lock(&self, txn: TxnId, key: &[u8], mode: LockMode) -> Result<()> {
        let rx = {
            let mut core = self.core.lock();
            match core.status(txn) {
                Status::Active => {}
                Status::Wounded => return Err(Error::Wounded),
                Status::Committing => return Err(Error::Aborted),
            }
            match core.locks.acquire(txn, key, mode) {
                Acquire::Granted => return Ok(()),
                Acquire::Queued { wound } => {
                    for victim in wound {
                        self.wounded.fetch_add(1, Ordering::Relaxed);
                        core.wound(victim);
                    }
                    if !core.locks.is_waiting(txn) {
                        return Ok(());
                    }
                    let (tx, rx) = oneshot::channel();
                    core.txns
                        .get_mut(&txn)
                        .expect("active txn has an entry")
                        .waker = Some(tx);
                    rx
                }
            }
        };
        // If this future is dropped (statement cancelled), withdraw the request.
        let guard = WaitGuard { manager: self, txn };
        let _ = rx.await;
        std::mem::forget(guard);
        let core = self.core.lock();
        match core.status(txn) {
            Status::Active => {
                debug_assert!(!core.locks.is_waiting(txn));
                Ok(())
            }
            _ => Err(Error::Wounded),
        }
    }

    fn end(&self, txn: TxnId, committed: bool) {
        let mut core = self.core.lock();
        if core.status(txn) == Status::Wounded {
            self.aborted.fetch_add(1, Ordering::Relaxed);
        } else if committed {
            self.committed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.aborted.fetch_add(1, Ordering::Relaxed);
        }
        core.finish(txn);
        let horizon = core
            .live_reads
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX)
            .min(self.driver.complete());
        drop(core);
        self.driver.set_read_horizon(horizon);
    }
}

/// Withdraws a pending lock request when its waiting future is dropped.
struct WaitGuard<'a> {
    manager: &'a TxnManager,
    txn: TxnId,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut core = self.manager.core.lock();
        if let Some(entry) = core.txns.get_mut(&self.txn) {
            entry.waker = None;
        }
        let granted = core.locks.cancel_wait(self.txn);
        core.wake(granted);
    }
}

#[derive(Default)]
struct TxnState {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    write_bytes: usize,
    reads: Vec<ReadSpan>,
    locked_reads: bool,
    /// Locked reads with the version each observed (0: absent), for the cross-DC
    /// protocol's validation.
    observed: BTreeMap<Vec<u8>, Version>,
}

/// One chunk of a scan.
#[derive(Debug, Default)]
pub struct ScanChunk {
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where to continue, if the range may hold more rows.
    pub resume: Option<Vec<u8>>,
}

/// A transaction. Cheap to share (`Arc<Txn>`) between the tasks of one statement.
/// Dropping it without committing rolls it back.
pub struct Txn {
    id: TxnId,
    read_version: Version,
    manager: Arc<TxnManager>,
    state: Mutex<TxnState>,
    finished: AtomicBool,
    /// How the commit went through the cross-DC protocol (set once it committed).
    trace: OnceLock<CommitTrace>,
    /// The snapshot holds every commit acknowledged before the transaction began.
    fresh: bool,
}

impl Txn {
    pub fn id(&self) -> TxnId {
        self.id
    }

    pub fn read_version(&self) -> Version {
        self.read_version
    }

    /// Whether the snapshot holds every commit acknowledged before the transaction began
    /// (always, with one data center).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// How a committed write went through the cross-DC protocol (None with one DC, or
    /// before the commit).
    pub fn commit_trace(&self) -> Option<CommitTrace> {
        self.trace.get().copied()
    }

    /// Fails with [`Error::Wounded`] if an older transaction has aborted this one.
    pub fn check_active(&self) -> Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(Error::Aborted);
        }
        self.manager.check_active(self.id)
    }

    /// Snapshot read of one key (own writes first).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_active()?;
        if let Some(own) = self.state.lock().writes.get(key) {
            return Ok(own.clone());
        }
        let found = self.manager.store.mvcc().get(key, self.read_version)?;
        self.state.lock().reads.push(ReadSpan::point(key));
        Ok(found.and_then(|c| c.value))
    }

    /// Snapshot scan of `[start, end)` merged with own writes, at most `limit` rows.
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<ScanChunk> {
        assert!(limit > 0, "scan limit must be positive");
        self.check_active()?;
        let rows = self
            .manager
            .store
            .mvcc()
            .scan(start, end, self.read_version, limit)?;
        // The part of the range this chunk has examined.
        let store_full = rows.len() == limit;
        let examined_end: Option<Vec<u8>> = if store_full {
            let mut next = rows.last().expect("limit > 0").0.clone();
            next.push(0);
            Some(next)
        } else {
            end.map(<[u8]>::to_vec)
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            rows.into_iter().map(|(k, _, v)| (k, v)).collect();
        let mut state = self.state.lock();
        let upper = match &examined_end {
            Some(e) => Bound::Excluded(e.clone()),
            None => Bound::Unbounded,
        };
        for (key, value) in state.writes.range((Bound::Included(start.to_vec()), upper)) {
            match value {
                Some(v) => merged.insert(key.clone(), v.clone()),
                None => merged.remove(key),
            };
        }
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = merged.into_iter().collect();
        let (span_end, resume) = if rows.len() > limit {
            rows.truncate(limit);
            let mut next = rows.last().expect("limit > 0").0.clone();
            next.push(0);
            (Some(next.clone()), Some(next))
        } else if store_full {
            (examined_end.clone(), examined_end)
        } else {
            (examined_end, None)
        };
        state.reads.push(ReadSpan {
            start: start.to_vec(),
            end: span_end,
        });
        Ok(ScanChunk { rows, resume })
    }

    /// Locks `key` exclusively and reads its latest committed value (own writes first).
    /// Fails with a conflict if the key changed after this transaction's snapshot and the
    /// transaction already looked at it unlocked (its earlier reads would be stale).
    pub async fn get_for_update(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.lock_key(key, LockMode::Exclusive).await?;
        {
            let mut state = self.state.lock();
            state.locked_reads = true;
            if let Some(own) = state.writes.get(key) {
                return Ok(own.clone());
            }
        }
        let latest = self.manager.store.mvcc().latest(key)?;
        if let Some(c) = &latest {
            let seen = self.state.lock().reads.iter().any(|s| s.contains(key));
            if c.version > self.read_version && seen {
                return Err(Error::Conflict);
            }
        }
        self.state
            .lock()
            .observed
            .entry(key.to_vec())
            .or_insert(latest.as_ref().map_or(0, |c| c.version));
        Ok(latest.and_then(|c| c.value))
    }

    /// Acquires a lock on `key` until the transaction ends.
    pub async fn lock_key(&self, key: &[u8], mode: LockMode) -> Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(Error::Aborted);
        }
        self.manager.lock(self.id, key, mode).await
    }

    /// Buffers a write of `key` (None deletes), locking it exclusively first.
    pub async fn put(&self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        self.lock_key(key, LockMode::Exclusive).await?;
        let mut state = self.state.lock();
        let size = key.len() + value.as_ref().map_or(0, Vec::len);
        if state.write_bytes + size > WRITE_SET_BYTES_MAX {
            return Err(Error::WriteSetTooLarge {
                limit_bytes: WRITE_SET_BYTES_MAX,
            });
        }
        state.write_bytes += size;
        state.writes.insert(key.to_vec(), value);
        Ok(())
    }

    /// Whether the transaction has buffered writes in `[start, end)`.
    pub fn has_write_in(&self, start: &[u8], end: &[u8]) -> bool {
        self.state
            .lock()
            .writes
            .range(start.to_vec()..end.to_vec())
            .next()
            .is_some()
    }

    /// Whether the transaction has buffered writes.
    pub fn has_writes(&self) -> bool {
        !self.state.lock().writes.is_empty()
    }

    /// Commits. Returns the commit version, or None for a transaction that wrote nothing.
    /// On error the transaction is rolled back.
    pub async fn commit(&self) -> Result<Option<Version>> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Err(Error::Aborted);
        }
        let state = std::mem::take(&mut *self.state.lock());
        if let Err(e) = self.manager.check_active(self.id) {
            self.manager.end(self.id, false);
            return Err(e);
        }
        let read_only = state.writes.is_empty();
        if read_only && !state.locked_reads && (self.fresh || state.reads.is_empty()) {
            // A read-only snapshot transaction on a fresh snapshot is serialized at its
            // read version; one that read nothing at all, anywhere.
            self.manager.end(self.id, true);
            return Ok(None);
        }
        let mut reads: Vec<ReadEntry> = state
            .reads
            .into_iter()
            .map(|span| ReadEntry {
                span,
                lo: self.read_version,
            })
            .collect();
        reads.extend(state.observed.into_iter().map(|(key, lo)| ReadEntry {
            span: ReadSpan::point(&key),
            lo,
        }));
        {
            let mut core = self.manager.core.lock();
            if core.status(self.id) != Status::Active {
                drop(core);
                self.manager.end(self.id, false);
                return Err(Error::Wounded);
            }
            core.txns.get_mut(&self.id).expect("entry").status = Status::Committing;
        }
        let answer = self
            .manager
            .driver
            .commit(self.id, reads, state.writes.into_iter().collect())
            .await;
        let result = match answer {
            Ok(CommitReply::At { version, trace }) => {
                let _ = self.trace.set(trace);
                Ok((!read_only).then_some(version))
            }
            Ok(CommitReply::Aborted { reason }) => {
                tracing::debug!(txn = self.id, %reason, "the commit protocol aborted");
                Err(Error::Conflict)
            }
            Err(e) => Err(e),
        };
        self.manager.end(self.id, result.is_ok());
        result
    }

    /// Aborts the transaction, discarding its writes and releasing its locks.
    pub fn rollback(&self) {
        if !self.finished.swap(true, Ordering::AcqRel) {
            self.manager.end(self.id, false);
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        self.rollback();
    }
}
