//! Group commit: many commits, one fdatasync.
//!
//! An fsync costs milliseconds; a commit must be durable before it is acknowledged. The
//! committer owns one OS thread that turns a queue of batches into few synced writes:
//!
//! ```text
//!   submit(b1) ─┐                     ┌─▶ reply(b1)
//!   submit(b2) ─┼─▶ queue ─▶ thread: drain ─▶ b1++b2++b3 ─▶ write(sync=true) ─┼─▶ reply(b2)
//!   submit(b3) ─┘                     └─▶ reply(b3)
//! ```
//!
//! While one sync is in flight, new submissions queue up; the next round takes all of them
//! (up to [`GROUP_BATCHES_MAX`] batches or [`GROUP_BYTES_MAX`] bytes) as one engine batch.
//! Batches are applied in submission order, so a later batch's writes win over an earlier
//! one's, and each waiter is answered only after the sync covering its batch returned.
//!
//! An empty batch is a barrier: it is answered once every batch submitted before it is
//! durable, and a group of nothing but empty batches costs no write and no sync.
//!
//! Failure: if a synced write fails, the durability of everything since the last good sync
//! is unknown (the fsync-failure lesson of PostgreSQL). The committer answers that group
//! with the error and then refuses every later batch with [`Error::Closed`]: the node must
//! restart and recover rather than acknowledge writes on a disk it cannot trust.
//!
//! Shutdown: dropping the committer closes the queue; the thread commits everything
//! already queued, answers it, and exits; drop joins it.
//!
//! The simulator runs a *stepped* committer instead ([`GroupCommitter::stepped`]): no
//! thread; batches queue until the simulation decides a sync completes
//! ([`GroupCommitter::sync_queued`]), and dropping it (a crash) loses what is queued,
//! as a power loss loses an unsynced write. Its waiters then learn the write is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};

/// Most batches merged into one synced write.
pub const GROUP_BATCHES_MAX: usize = 4096;
/// Most key+value bytes merged into one synced write (a single larger batch still goes
/// through, alone).
pub const GROUP_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Counters of the committer's work since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitterStats {
    /// Synced engine writes issued.
    pub syncs: u64,
    /// Submitted batches made durable (or failed) by those writes.
    pub batches: u64,
}

struct Pending {
    batch: WriteBatch,
    reply: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    batches: AtomicU64,
}

/// The group committer of one engine.
pub struct GroupCommitter {
    queue: Option<mpsc::Sender<Pending>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Stepped mode: the engine and the batches waiting for [`Self::sync_queued`].
    stepped: Option<Stepped>,
}

/// A stepped committer's engine and queue.
type Stepped = (Arc<dyn Engine>, parking_lot::Mutex<Vec<Pending>>);

impl GroupCommitter {
    /// Starts the committer thread for `engine`.
    pub fn start(engine: Arc<dyn Engine>) -> GroupCommitter {
        let (queue, inbox) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("kv-group-commit".into())
            .spawn(move || run(engine, inbox, thread_counters))
            .expect("spawn group commit thread");
        GroupCommitter {
            queue: Some(queue),
            thread: Some(thread),
            counters,
            stepped: None,
        }
    }

    /// A committer without a thread, for deterministic simulation: batches wait until
    /// [`Self::sync_queued`] writes them; dropping it loses them (module docs).
    pub fn stepped(engine: Arc<dyn Engine>) -> GroupCommitter {
        GroupCommitter {
            queue: None,
            thread: None,
            counters: Arc::new(Counters::default()),
            stepped: Some((engine, parking_lot::Mutex::new(Vec::new()))),
        }
    }

    /// Stepped mode: the number of batches waiting for a sync (0 in threaded mode).
    pub fn queued(&self) -> usize {
        self.stepped.as_ref().map_or(0, |(_, q)| q.lock().len())
    }

    /// Stepped mode: writes every queued batch as one synced group, answers their
    /// waiters, and returns the batches written (what the disk now holds in addition).
    pub fn sync_queued(&self) -> Vec<WriteBatch> {
        let Some((engine, queue)) = &self.stepped else {
            return Vec::new();
        };
        let mut group = std::mem::take(&mut *queue.lock());
        if group.is_empty() {
            return Vec::new();
        }
        let batches: Vec<WriteBatch> = group.iter().map(|p| p.batch.clone()).collect();
        let result = if batches.iter().all(WriteBatch::is_empty) {
            Ok(())
        } else {
            self.counters.syncs.fetch_add(1, Ordering::AcqRel);
            commit_group(&**engine, &mut group)
        };
        self.counters
            .batches
            .fetch_add(group.len() as u64, Ordering::AcqRel);
        for pending in group {
            let _ = pending.reply.send(result.clone());
        }
        batches
    }

    /// Queue an engine batch; the receiver resolves once it is durable (written with
    /// sync=true). Batches are written in submission order.
    pub fn submit(&self, batch: WriteBatch) -> oneshot::Receiver<Result<()>> {
        let (reply, receiver) = oneshot::channel();
        if let Some((_, queue)) = &self.stepped {
            queue.lock().push(Pending { batch, reply });
            return receiver;
        }
        let queue = self.queue.as_ref().expect("queue lives until drop");
        if let Err(mpsc::SendError(pending)) = queue.send(Pending { batch, reply }) {
            // The thread is gone (it panicked); nothing will ever make this durable.
            let _ = pending.reply.send(Err(Error::Closed));
        }
        receiver
    }

    pub fn stats(&self) -> CommitterStats {
        CommitterStats {
            syncs: self.counters.syncs.load(Ordering::Acquire),
            batches: self.counters.batches.load(Ordering::Acquire),
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("group commit thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The committer thread: one group per round until the queue is closed and empty.
fn run(engine: Arc<dyn Engine>, inbox: mpsc::Receiver<Pending>, counters: Arc<Counters>) {
    let mut carried: Option<Pending> = None;
    let mut failed = false;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match inbox.recv() {
                Ok(pending) => pending,
                Err(mpsc::RecvError) => return, // closed and drained
            },
        };
        let mut group = next_group(first, &inbox, &mut carried);
        let result = if failed {
            Err(Error::Closed)
        } else if group.iter().all(|p| p.batch.is_empty()) {
            // Barriers only: everything before them is already durable.
            Ok(())
        } else {
            counters.syncs.fetch_add(1, Ordering::AcqRel);
            commit_group(&*engine, &mut group)
        };
        if let Err(err) = &result {
            if !failed {
                tracing::error!(%err, batches = group.len(), "group commit failed; refusing further writes");
            }
            failed = true;
        }
        // Counted before anyone is answered, so a waiter sees its batch in stats().
        counters
            .batches
            .fetch_add(group.len() as u64, Ordering::AcqRel);
        for pending in group {
            // The waiter may have given up; that does not undo the write.
            let _ = pending.reply.send(result.clone());
        }
    }
}

/// Takes `first` plus whatever is queued now, within the group bounds. A batch that would
/// overflow the byte bound is left in `carried` for the next round.
fn next_group(
    first: Pending,
    inbox: &mpsc::Receiver<Pending>,
    carried: &mut Option<Pending>,
) -> Vec<Pending> {
    let mut bytes = first.batch.size_bytes();
    let mut group = vec![first];
    while group.len() < GROUP_BATCHES_MAX {
        let Ok(pending) = inbox.try_recv() else { break };
        let size = pending.batch.size_bytes();
        if bytes + size > GROUP_BYTES_MAX {
            *carried = Some(pending);
            break;
        }
        bytes += size;
        group.push(pending);
    }
    group
}

/// Writes the group as one synced engine batch (moving the operations out of it).
fn commit_group(engine: &dyn Engine, group: &mut [Pending]) -> Result<()> {
    let mut merged = WriteBatch::new();
    merged
        .ops
        .reserve(group.iter().map(|p| p.batch.len()).sum());
    for pending in group.iter_mut() {
        merged.ops.append(&mut pending.batch.ops);
    }
    engine.write(&merged, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEngine;
    use crate::rocks::{RocksEngine, RocksOptions};

    fn one_put(key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        batch
    }

    #[test]
    fn empty_batches_are_barriers_that_cost_no_sync() {
        let committer = GroupCommitter::start(Arc::new(MemoryEngine::new()));
        let mut first = committer.submit(one_put(b"k", b"v"));
        let barrier = committer.submit(WriteBatch::new());
        barrier.blocking_recv().unwrap().unwrap();
        // Answered no later than the barrier after it.
        assert_eq!(
            first.try_recv().expect("answered before the barrier"),
            Ok(())
        );
        let syncs = committer.stats().syncs;
        let lone = committer.submit(WriteBatch::new());
        lone.blocking_recv().unwrap().unwrap();
        assert_eq!(
            committer.stats().syncs,
            syncs,
            "a lone barrier syncs nothing"
        );
    }

    #[test]
    fn concurrent_commits_share_syncs() {
        const THREADS: usize = 8;
        const COMMITS_PER_THREAD: usize = 40;
        let dir = tempfile::tempdir().unwrap();
        let engine: Arc<dyn Engine> =
            Arc::new(RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap());
        let committer = GroupCommitter::start(engine.clone());
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let committer = &committer;
                scope.spawn(move || {
                    for i in 0..COMMITS_PER_THREAD {
                        let key = format!("t{t}-{i:03}");
                        let done = committer.submit(one_put(key.as_bytes(), b"v"));
                        done.blocking_recv().unwrap().unwrap();
                    }
                });
            }
        });
        let stats = committer.stats();
        let total = (THREADS * COMMITS_PER_THREAD) as u64;
        assert_eq!(stats.batches, total);
        assert!(stats.syncs < stats.batches, "no grouping: {stats:?}");
        assert_eq!(
            engine.scan(b"", None, usize::MAX).unwrap().len(),
            total as usize
        );
    }

    #[test]
    fn batches_apply_in_submission_order() {
        let engine = Arc::new(MemoryEngine::new());
        let committer = GroupCommitter::start(engine.clone());
        let receivers: Vec<_> = (0..100u32)
            .map(|i| committer.submit(one_put(b"k", &i.to_be_bytes())))
            .collect();
        for receiver in receivers {
            receiver.blocking_recv().unwrap().unwrap();
        }
        assert_eq!(
            engine.get(b"k").unwrap(),
            Some(99u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            engine.unsynced_batches(),
            0,
            "everything was written with sync"
        );
        let stats = committer.stats();
        assert_eq!(stats.batches, 100);
        assert!(stats.syncs >= 1 && stats.syncs <= 100);
    }

    #[test]
    fn drop_finishes_queued_work() {
        let engine = Arc::new(MemoryEngine::new());
        let committer = GroupCommitter::start(engine.clone());
        let receivers: Vec<_> = (0..50u32)
            .map(|i| committer.submit(one_put(&i.to_be_bytes(), b"v")))
            .collect();
        drop(committer);
        for receiver in receivers {
            receiver.blocking_recv().unwrap().unwrap();
        }
        engine.crash();
        assert_eq!(engine.scan(b"", None, usize::MAX).unwrap().len(), 50);
    }

    #[test]
    fn a_stepped_committer_writes_only_when_told_and_loses_its_queue_when_dropped() {
        let engine = Arc::new(MemoryEngine::new());
        let committer = GroupCommitter::stepped(engine.clone());
        let mut first = committer.submit(one_put(b"a", b"1"));
        assert_eq!(committer.queued(), 1);
        assert!(first.try_recv().is_err(), "not answered before its sync");
        assert_eq!(engine.get(b"a").unwrap(), None);
        let written = committer.sync_queued();
        assert_eq!(written, vec![one_put(b"a", b"1")]);
        assert_eq!(first.try_recv().expect("answered at the sync"), Ok(()));
        let mut lost = committer.submit(one_put(b"b", b"1"));
        drop(committer);
        assert!(lost.try_recv().is_err(), "a dropped queue answers nothing");
        engine.crash();
        assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(b"b").unwrap(), None);
    }

    /// Fails every synced write.
    struct BrokenDisk;

    impl Engine for BrokenDisk {
        fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }

        fn scan(&self, _: &[u8], _: Option<&[u8]>, _: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            Ok(Vec::new())
        }

        fn write(&self, _: &WriteBatch, _: bool) -> Result<()> {
            Err(Error::Io("fdatasync: EIO".into()))
        }

        fn export(&self, _: &[u8], _: &[u8], _: &mut crate::ExportSink<'_>) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_sync_poisons_the_committer() {
        let committer = GroupCommitter::start(Arc::new(BrokenDisk));
        let first = committer
            .submit(one_put(b"a", b"1"))
            .blocking_recv()
            .unwrap();
        assert_eq!(first, Err(Error::Io("fdatasync: EIO".into())));
        let second = committer
            .submit(one_put(b"b", b"1"))
            .blocking_recv()
            .unwrap();
        assert_eq!(second, Err(Error::Closed));
    }

    #[test]
    fn groups_respect_the_byte_bound() {
        let big = vec![0u8; GROUP_BYTES_MAX / 2];
        let (queue, inbox) = mpsc::channel();
        let pending = |value: &[u8]| {
            let (reply, _) = oneshot::channel();
            Pending {
                batch: one_put(b"k", value),
                reply,
            }
        };
        let first = pending(&big);
        for value in [&big[..], b"small"] {
            queue.send(pending(value)).unwrap();
        }
        let mut carried = None;
        let group = next_group(first, &inbox, &mut carried);
        assert_eq!(group.len(), 1, "two halves plus keys exceed the bound");
        let group = next_group(carried.take().unwrap(), &inbox, &mut carried);
        assert_eq!(group.len(), 2, "the small batch joins the carried one");
        assert!(carried.is_none());
    }
}
