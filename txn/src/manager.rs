//! The transaction manager: the transaction interface the SQL layer uses.
//!
//! ```text
//!   begin ──▶ read_version = durable watermark (every acknowledged commit is ≤ it)
//!   get/scan ──▶ snapshot reads at read_version, spans recorded     (no locks)
//!   get_for_update/put/delete ──▶ exclusive lock (wound-wait), latest value, buffered write
//!   commit ──▶ sequencer: validate spans ▸ choose version ▸ record ▸ submit to group commit
//!          ──▶ await fdatasync ──▶ advance watermark ──▶ release locks ──▶ acknowledge
//! ```
//!
//! Isolation is serializable, and strictly so: a read-write transaction is serialized at
//! its commit version (its locked keys cannot change before it; its snapshot reads are
//! validated to be unchanged up to it), a read-only transaction at its read version (a
//! snapshot that holds every commit acknowledged before it began).
//!
//! The manager owns one mutex around the pure cores: the [`LockTable`], the
//! [`RecentWrites`] used for validation and the [`HybridClock`]. Decisions (validate,
//! choose version, record, submit) happen under it, so they are totally ordered, and
//! batches reach the group committer in version order; hence the durable watermark is
//! simply the highest version whose commit has resolved.
//!
//! Wounds: when an older transaction wounds a younger one, the younger one is aborted on the
//! spot — its locks are released immediately (its writes are only buffered, so nothing needs
//! undoing) and its next operation fails with [`Error::Wounded`]. A transaction that has
//! entered its commit cannot be wounded; the older one waits for it, which is bounded.
//!
//! Several data centers ([`TxnManager::new_replicated`]): execution is the same, under
//! wound-wait at the origin, but snapshots are taken at the DC's complete point, a
//! locked read records the version it observed, and `commit` hands the reads and writes
//! to the cross-DC protocol through the [`Replicator`] instead of deciding locally; the
//! runtime reports every applied commit ([`TxnManager::applied`]) and each new complete
//! point ([`TxnManager::set_complete`]). A read-only transaction whose snapshot was not
//! fresh waits at commit until the complete point passes its commit time and checks its
//! reads against what was applied since its snapshot.
//!
//! Caveats: old versions are never garbage-collected yet; a storage error during a commit
//! is returned to that client but leaves the node's state for the operator.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use kv::{Store, Version};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::clock::{HybridClock, PhysicalClock};
use crate::commit::{decide, CommitRecord, Outcome, Vote};
use crate::error::{Error, Result};
use crate::locks::{Acquire, LockMode, LockTable, TxnId};
use crate::participant::ReadEntry;
use crate::replicated::{CommitTrace, Committed, DcStatus, Replicator};
use crate::validation::{ReadSpan, RecentWrites};

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
    clock: HybridClock,
    locks: LockTable,
    recent: RecentWrites,
    txns: HashMap<TxnId, Entry>,
    /// Read versions of live transactions (a multiset), for pruning `recent`.
    live_reads: BTreeMap<Version, usize>,
    /// The highest commit version decided so far.
    last_decided: Version,
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
    /// Highest version such that every commit at or below it is durable and visible.
    watermark: AtomicU64,
    committed: AtomicU64,
    aborted: AtomicU64,
    wounded: AtomicU64,
    /// The cross-DC commit path; None with one data center.
    replicator: Option<Arc<dyn Replicator>>,
}

impl TxnManager {
    /// A manager whose commits go through the cross-DC protocol (module docs).
    pub fn new_replicated(
        store: Arc<Store>,
        physical: Arc<dyn PhysicalClock>,
        replicator: Arc<dyn Replicator>,
    ) -> Result<Arc<Self>> {
        let mut manager = Self::build(store, physical)?;
        // Priorities only (versions come from the protocol): physical time, tagged with
        // the DC in `begin`.
        manager.core.get_mut().clock = HybridClock::new(manager.physical.now_micros());
        manager.watermark = AtomicU64::new(replicator.complete());
        manager.replicator = Some(replicator);
        Ok(Arc::new(manager))
    }

    /// The cluster's data centers as this node sees them (None: a single-DC node).
    pub fn data_centers(&self) -> Option<Vec<DcStatus>> {
        self.replicator.as_ref().map(|r| r.data_centers())
    }

    /// Waits until the complete point passes every commit acknowledged anywhere so far.
    async fn catch_up_to_now(&self, replicator: &dyn Replicator) -> Result<()> {
        let point = replicator.fresh_point();
        if self.watermark.load(Ordering::Acquire) < point {
            replicator
                .wait_complete(point)
                .await
                .map_err(|_| Error::OutcomeUnknown)?;
        }
        Ok(())
    }

    /// A commit of any DC was applied to this node's store.
    pub fn applied(&self, version: Version, keys: Vec<Vec<u8>>) {
        self.core.lock().recent.record(version, keys);
    }

    /// The complete point moved: new snapshots read at `complete`.
    pub fn set_complete(&self, complete: Version) {
        self.watermark.fetch_max(complete, Ordering::AcqRel);
    }

    /// Begins a transaction whose snapshot holds every commit acknowledged anywhere
    /// before the call (with several DCs this waits for the complete point to pass it).
    pub async fn begin_fresh(self: &Arc<Self>) -> Result<Txn> {
        let Some(replicator) = &self.replicator else {
            return Ok(self.begin());
        };
        self.catch_up_to_now(&**replicator).await?;
        let mut txn = self.begin();
        txn.fresh = true;
        Ok(txn)
    }

    pub fn new(store: Arc<Store>, physical: Arc<dyn PhysicalClock>) -> Result<Arc<Self>> {
        Ok(Arc::new(Self::build(store, physical)?))
    }

    fn build(store: Arc<Store>, physical: Arc<dyn PhysicalClock>) -> Result<Self> {
        let last = store.mvcc().last_committed_version()?;
        Ok(TxnManager {
            store,
            core: Mutex::new(Core {
                clock: HybridClock::new(last.max(physical.now_micros())),
                locks: LockTable::new(),
                recent: RecentWrites::new(),
                txns: HashMap::new(),
                live_reads: BTreeMap::new(),
                last_decided: last,
            }),
            physical,
            watermark: AtomicU64::new(last),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            wounded: AtomicU64::new(0),
            replicator: None,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Begins a transaction reading the snapshot of every acknowledged commit.
    pub fn begin(self: &Arc<Self>) -> Txn {
        let read_version = self.watermark.load(Ordering::Acquire);
        let mut core = self.core.lock();
        let mut id = core.clock.tick(self.physical.now_micros());
        if let Some(r) = &self.replicator {
            // Priorities are compared across DCs (rule E3): tag them like versions.
            id = (id << 8) | TxnId::from(r.dc());
        }
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
            fresh: self.replicator.is_none(),
        }
    }

    pub fn stats(&self) -> TxnStats {
        TxnStats {
            committed: self.committed.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            wounded: self.wounded.load(Ordering::Relaxed),
        }
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

    /// The sequencer step: validate, choose a version, record, submit.
    fn decide_and_submit(
        &self,
        record: CommitRecord,
    ) -> Result<Option<(Version, oneshot::Receiver<kv::Result<()>>)>> {
        let mut core = self.core.lock();
        match core.status(record.txn) {
            Status::Active => {}
            _ => return Err(Error::Wounded),
        }
        let vote = match core.recent.validate(&record.reads, record.read_version) {
            Err(conflict) => Vote::Abort {
                reason: format!(
                    "key {:?} changed at version {}",
                    conflict.key, conflict.version
                ),
            },
            Ok(()) => Vote::Commit {
                version: core.clock.tick(self.physical.now_micros()),
            },
        };
        match decide(&[vote], 1).expect("one vote decides one data center") {
            Outcome::Aborted { reason } => {
                tracing::debug!(txn = record.txn, %reason, "validation failed");
                Err(Error::Conflict)
            }
            Outcome::Committed { .. } if record.writes.is_empty() => Ok(None),
            Outcome::Committed { version } => {
                assert!(
                    version > record.read_version && version > core.last_decided,
                    "commit version {version} must be above everything read or written"
                );
                core.last_decided = version;
                core.txns.get_mut(&record.txn).expect("entry").status = Status::Committing;
                let keys = record.writes.iter().map(|(k, _)| k.clone()).collect();
                core.recent.record(version, keys);
                let rx = self.store.commit(version, record.writes);
                Ok(Some((version, rx)))
            }
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
            .min(self.watermark.load(Ordering::Acquire));
        core.recent.prune(horizon);
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
        if let Some(replicator) = self.manager.replicator.clone() {
            return self.commit_replicated(&*replicator, state).await;
        }
        if state.writes.is_empty() && !state.locked_reads {
            // A read-only snapshot transaction is serialized at its read version.
            let active = self.manager.check_active(self.id);
            self.manager.end(self.id, active.is_ok());
            return active.map(|_| None);
        }
        let record = CommitRecord {
            txn: self.id,
            read_version: self.read_version,
            reads: state.reads,
            writes: state.writes.into_iter().collect(),
        };
        let decided = self.manager.decide_and_submit(record);
        let (version, rx) = match decided {
            Ok(Some(pending)) => pending,
            Ok(None) => {
                self.manager.end(self.id, true);
                return Ok(None);
            }
            Err(e) => {
                self.manager.end(self.id, false);
                return Err(e);
            }
        };
        let durable = rx.await.unwrap_or(Err(kv::Error::Closed));
        if durable.is_ok() {
            self.manager.watermark.fetch_max(version, Ordering::AcqRel);
        }
        self.manager.end(self.id, durable.is_ok());
        durable?;
        Ok(Some(version))
    }

    /// Commits through the cross-DC protocol (module docs).
    async fn commit_replicated(
        &self,
        replicator: &dyn Replicator,
        state: TxnState,
    ) -> Result<Option<Version>> {
        if let Err(e) = self.manager.check_active(self.id) {
            self.manager.end(self.id, false);
            return Err(e);
        }
        if state.writes.is_empty() {
            let result = self.check_read_only(replicator, &state).await;
            self.manager.end(self.id, result.is_ok());
            return result.map(|_| None);
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
        let answer = replicator
            .commit(self.id, reads, state.writes.into_iter().collect())
            .await;
        let result = match answer {
            Ok(Committed::At { version, trace }) => {
                let _ = self.trace.set(trace);
                Ok(Some(version))
            }
            Ok(Committed::Aborted { reason }) => {
                tracing::debug!(txn = self.id, %reason, "the commit protocol aborted");
                Err(Error::Conflict)
            }
            Err(_) => Err(Error::OutcomeUnknown),
        };
        self.manager.end(self.id, result.is_ok());
        result
    }

    /// A read-only transaction: a fresh snapshot needs nothing more; otherwise wait
    /// until every commit up to now is applied here and check that none of them
    /// touched what was read after the snapshot (or after a locked read's version).
    async fn check_read_only(&self, replicator: &dyn Replicator, state: &TxnState) -> Result<()> {
        if self.fresh || (state.reads.is_empty() && state.observed.is_empty()) {
            return Ok(());
        }
        self.manager.catch_up_to_now(replicator).await?;
        let core = self.manager.core.lock();
        if core
            .recent
            .validate(&state.reads, self.read_version)
            .is_err()
        {
            return Err(Error::Conflict);
        }
        for (key, lo) in &state.observed {
            if core.recent.validate(&[ReadSpan::point(key)], *lo).is_err() {
                return Err(Error::Conflict);
            }
        }
        Ok(())
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
