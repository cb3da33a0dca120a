//! The protocol driver: where one data center's participant (`replication::Participant`)
//! meets real IO. Every node has one, whatever the number of data centers: with one DC
//! the participant decides each commit in the step that takes it, with several it talks
//! to its peers through a [`Transport`].
//!
//! ```text
//!   session commit ─┐                     ┌─▶ one RocksDB write batch: changed durable
//!   peer envelopes ─┼─▶ participant step ─┤   state (`p` keys) + committed writes,
//!   ticks (5 ms)   ─┘   (under one lock)  │   submitted to the group committer in step order
//!                                         └─▶ after its sync: publish the complete point,
//!                                             send messages, answer sessions
//! ```
//!
//! Each input is stepped by the task that brings it — a session's commit by the session
//! itself, envelopes and ticks by the [`DriverTask`] — so a single-DC commit costs one
//! lock, one step and one group-committed sync, as a local commit would, with no hop
//! through another task. Steps and submissions happen under one mutex, so batches reach
//! the committer in step order; the committer makes them durable in that order, so once
//! a step's batch is synced every earlier step's is too, and its outputs may be released
//! (the protocol's output contract, docs/protocol.md §2.3: nothing leaves the node before
//! the state it reflects is durable). A step that persists nothing but has something to
//! release submits an empty batch, a barrier that costs no sync of its own.
//!
//! A failed sync stops the driver: every waiting session learns that the outcome is
//! unknown, later commits are refused, and [`DriverTask::run`] returns the error so the
//! node stops (its memory may be ahead of its disk). On open the participant is rebuilt
//! from the `p` keys and what that yields (committed writes to re-apply, undecided work
//! to resend) is made durable and released before anything else runs.
//!
//! Every commit's reply carries where its time went ([`CommitTrace`]); the task logs the
//! figures every [`STATS_PERIOD`] ([`stats`]).

pub mod gc;
mod rejoin;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv::keys::{protocol_span, Key};
use kv::{Engine, Store, Version, WriteBatch};

pub use self::gc::GcSettings;
pub use self::rejoin::{export_copy, rebuild_interrupted, Rebuild};
use parking_lot::Mutex;
use replication::{
    ClientResult, Config, DcClock, DcId, Durable, DurableEntry, Envelope, Gauges, Output,
    Participant, ReadEntry, TxnId, Writes,
};
use tokio::sync::{mpsc, oneshot, Notify};

use self::stats::Stats;
use crate::clock::PhysicalClock;
use crate::commit::{CommitReply, CommitTrace, DcStatus};
use crate::error::{Error, Result};

/// How often the task ticks the participant (retransmissions, recovery, floors).
pub const TICK: Duration = Duration::from_millis(5);
/// How often the driver logs its latency figures (when anything happened).
pub const STATS_PERIOD: Duration = Duration::from_secs(10);
/// Envelopes folded into one step batch at most.
const BATCH_ENVELOPES_MAX: usize = 4096;

/// Carries envelopes to other data centers (the node runtime's outbox). Must not block:
/// a peer that cannot keep up loses messages, which the protocol retransmits.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, env: Envelope);
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, env: Envelope) {
        (**self).send(env);
    }
}

/// The cluster as this node sees it, for `SHOW DATA CENTERS`.
pub trait ClusterView: Send + Sync + 'static {
    fn data_centers(&self) -> Vec<DcStatus>;

    /// Why this node must not coordinate commits or serve fresh reads right now (its
    /// clock is too far from its peers'), if it must not.
    fn commit_refusal(&self) -> Option<String> {
        None
    }

    /// The DCs this node has not heard from lately (down, paused or cut off): attempts
    /// waiting only for their votes are recovered at once
    /// ([`replication::Participant::set_suspected`]).
    fn suspected(&self) -> Vec<DcId> {
        Vec::new()
    }
}

/// What the task needs to talk to other data centers.
pub struct Peers {
    /// Envelopes from other DCs (bounded by the runtime).
    pub inbox: mpsc::Receiver<Envelope>,
    /// Asked every tick: new protocol timers, when the (emulated) WAN changed.
    pub retime: Box<dyn FnMut() -> Option<Config> + Send>,
}

/// A session's commit the participant is working on.
struct Pending {
    reply: oneshot::Sender<CommitReply>,
    submitted: Instant,
    taken: Instant,
}

/// One step's outputs, submitted for durability and waiting to be released.
#[must_use = "outputs must be released once synced"]
struct Submitted {
    outputs: Vec<Output>,
    synced: Option<oneshot::Receiver<kv::Result<()>>>,
    bytes: usize,
    at: Instant,
}

/// State shared by the sessions' handles and the task.
struct Shared {
    dc: DcId,
    dcs: usize,
    clock_bound_us: u64,
    store: Arc<Store>,
    clock: Arc<dyn PhysicalClock>,
    participant: Mutex<Participant>,
    clients: Mutex<HashMap<u64, Pending>>,
    next_client: AtomicU64,
    complete: AtomicU64,
    /// The oldest snapshot a live local transaction reads at (see
    /// `Participant::set_read_horizon`), handed over at the next step.
    read_horizon: AtomicU64,
    /// Sessions waiting for the complete point to reach a version.
    waiters: Mutex<Vec<(Version, oneshot::Sender<()>)>>,
    transport: Option<Box<dyn Transport>>,
    view: Option<Arc<dyn ClusterView>>,
    stats: Mutex<Stats>,
    /// A sync failed: nothing more is stepped or answered.
    failed: AtomicBool,
    /// Wakes the task when a sync failed.
    stopped: Notify,
}

/// The handle the transaction manager uses. Cheap to clone.
#[derive(Clone)]
pub struct DriverHandle {
    shared: Arc<Shared>,
}

/// The task that steps envelopes and ticks; run it with [`DriverTask::run`].
pub struct DriverTask {
    shared: Arc<Shared>,
    gc: GcSettings,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens the driver of DC `cfg.me`: loads the participant's durable state from `store`,
/// rebuilds it, and makes what the restart yields durable before returning.
pub fn open(
    cfg: Config,
    store: Arc<Store>,
    clock: Arc<dyn PhysicalClock>,
    transport: Option<Box<dyn Transport>>,
    view: Option<Arc<dyn ClusterView>>,
) -> Result<(DriverHandle, DriverTask)> {
    if rebuild_interrupted(&**store.engine())? {
        return Err(Error::Rejoin(
            "a rebuild of this data directory from a peer was interrupted; run the node \
             with --rejoin to start it again"
                .into(),
        ));
    }
    let mut durable = load(&**store.engine())?;
    // Versions issued from now on are above everything the store holds (a data
    // directory written before the protocol kept its own clock there).
    durable.observe(store.mvcc().last_committed_version()?);
    let (dc, dcs, clock_bound_us) = (cfg.me, cfg.dcs, cfg.clock_bound_us);
    let (participant, restart) = Participant::restart(cfg, durable, clock.now_micros());
    let shared = Arc::new(Shared {
        dc,
        dcs,
        clock_bound_us,
        store,
        clock,
        participant: Mutex::new(participant),
        clients: Mutex::new(HashMap::new()),
        next_client: AtomicU64::new(1),
        complete: AtomicU64::new(0),
        read_horizon: AtomicU64::new(0),
        waiters: Mutex::new(Vec::new()),
        transport,
        view,
        stats: Mutex::new(Stats::default()),
        failed: AtomicBool::new(false),
        stopped: Notify::new(),
    });
    let batch = shared.batch_of(std::slice::from_ref(&restart));
    if !batch.is_empty() {
        shared.store.engine().write(&batch, true)?;
    }
    shared.carry_out(vec![restart]);
    Ok((
        DriverHandle {
            shared: shared.clone(),
        },
        DriverTask {
            shared,
            gc: GcSettings::default(),
        },
    ))
}

impl DriverHandle {
    /// This data center.
    pub fn dc(&self) -> DcId {
        self.shared.dc
    }

    /// The number of data centers in the cluster.
    pub fn dcs(&self) -> usize {
        self.shared.dcs
    }

    /// Why this node must not coordinate commits or serve fresh reads now (its clock is
    /// too far from its peers'), if it must not.
    pub fn clock_refusal(&self) -> Option<String> {
        self.shared.view.as_ref().and_then(|v| v.commit_refusal())
    }

    /// Every DC of the cluster as this node sees it (None: a single-DC node).
    pub fn data_centers(&self) -> Option<Vec<DcStatus>> {
        self.shared.view.as_ref().map(|v| v.data_centers())
    }

    /// A_d now: every commit at or below it is applied here.
    pub fn complete(&self) -> Version {
        self.shared.complete.load(Ordering::Acquire)
    }

    /// A version above every commit acknowledged anywhere so far: the complete point
    /// itself with one DC (each commit is acknowledged after its step published it),
    /// otherwise the DC clock now plus the clock bound ε.
    pub fn fresh_point(&self) -> Version {
        if self.shared.dcs == 1 {
            return self.complete();
        }
        DcClock::latest_at(self.shared.clock.now_micros() + self.shared.clock_bound_us)
    }

    /// Resolves once A_d ≥ `version`; dropped (an error) if the driver stops first.
    pub fn wait_complete(&self, version: Version) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.shared.waiters.lock();
        if self.complete() >= version {
            let _ = tx.send(());
        } else if !self.shared.failed.load(Ordering::Acquire) {
            waiters.push((version, tx));
        }
        rx
    }

    /// Every live local snapshot is at or above `horizon`, and so is every later one.
    pub fn set_read_horizon(&self, horizon: Version) {
        self.shared
            .read_horizon
            .fetch_max(horizon, Ordering::AcqRel);
    }

    /// What the participant holds right now.
    pub fn gauges(&self) -> Gauges {
        self.shared.participant.lock().gauges()
    }

    /// The history kept for each DC ([`replication::Participant::held_for`]), or None
    /// while the participant holds at most `bound` records in all (the walk is skipped).
    pub fn held_for_past(&self, bound: usize) -> Option<Vec<usize>> {
        let participant = self.shared.participant.lock();
        (participant.records_held() > bound).then(|| participant.held_for())
    }

    /// Commits a transaction that executed here through the protocol. The error means
    /// the outcome is unknown (the driver stopped).
    pub async fn commit(
        &self,
        txn: TxnId,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> Result<CommitReply> {
        let shared = &self.shared;
        if let Some(why) = self.clock_refusal() {
            return Err(Error::ClockOffset(why));
        }
        let submitted = Instant::now();
        let (reply, answer) = oneshot::channel();
        let client = shared.next_client.fetch_add(1, Ordering::Relaxed);
        let step = {
            let mut participant = shared.participant.lock();
            if shared.failed.load(Ordering::Acquire) {
                return Err(Error::OutcomeUnknown);
            }
            shared.clients.lock().insert(
                client,
                Pending {
                    reply,
                    submitted,
                    taken: Instant::now(),
                },
            );
            participant.set_read_horizon(shared.read_horizon.load(Ordering::Acquire));
            let now = shared.clock.now_micros();
            let out = participant.commit(now, client, txn, reads, writes);
            shared.submit(vec![out])
        };
        shared.release(step).await?;
        answer.await.map_err(|_| Error::OutcomeUnknown)
    }
}

impl DriverTask {
    /// Keeps old versions for `settings.ttl` instead of the default.
    pub fn with_gc(mut self, settings: GcSettings) -> DriverTask {
        self.gc = settings;
        self
    }

    /// Steps envelopes from `peers` and ticks, a [`DriverTask::turn`] at a time, until
    /// the inbox closes (or, with no peers, until a sync fails); returns an error once a
    /// sync failed.
    pub async fn run(self, peers: Option<Peers>) -> Result<()> {
        let shared = self.shared.clone();
        // Collects old versions alongside; stopped with the task.
        let _collector = AbortOnDrop(tokio::spawn(gc::run(shared.clone(), self.gc)));
        let mut last_stats = Instant::now();
        let Some(mut peers) = peers else {
            // One DC: nothing arrives from outside and nothing waits on timers; the
            // task logs the figures and ends when a sync failed.
            loop {
                tokio::select! {
                    () = shared.stopped.notified() => return Err(Error::OutcomeUnknown),
                    () = tokio::time::sleep(STATS_PERIOD) => {
                        shared.stats.lock().log(STATS_PERIOD.as_secs());
                    }
                }
            }
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let task = self;
        loop {
            if last_stats.elapsed() >= STATS_PERIOD {
                task.log_gauges(peers.inbox.len());
                last_stats = Instant::now();
            }
            let mut envelopes = Vec::new();
            let mut ticked = false;
            tokio::select! {
                env = peers.inbox.recv() => match env {
                    Some(e) => envelopes.push(e),
                    None => return Ok(()),
                },
                _ = tick.tick() => ticked = true,
            }
            while envelopes.len() < BATCH_ENVELOPES_MAX {
                match peers.inbox.try_recv() {
                    Ok(e) => envelopes.push(e),
                    Err(_) => break,
                }
            }
            let retimed = if ticked { (peers.retime)() } else { None };
            task.turn(envelopes, ticked, retimed).await?;
        }
    }

    /// One turn of the driver loop, whoever waits for its inputs (the node's [`run`],
    /// the simulator's event queue): new timers, the envelopes and a tick stepped under
    /// the participant's lock, their durable state and writes submitted as one batch,
    /// and once it is synced, the complete point published, messages sent and sessions
    /// answered. Returns an error once a sync failed (the driver has stopped).
    ///
    /// [`run`]: DriverTask::run
    pub async fn turn(
        &self,
        envelopes: Vec<Envelope>,
        ticked: bool,
        retimed: Option<Config>,
    ) -> Result<()> {
        let shared = &self.shared;
        let step = {
            let mut participant = shared.participant.lock();
            if shared.failed.load(Ordering::Acquire) {
                return Err(Error::OutcomeUnknown);
            }
            if let Some(cfg) = retimed {
                participant.set_timers(&cfg);
            }
            participant.set_read_horizon(shared.read_horizon.load(Ordering::Acquire));
            if ticked {
                if let Some(view) = &shared.view {
                    participant.set_suspected(view.suspected());
                }
            }
            let now = shared.clock.now_micros();
            let mut outputs: Vec<Output> = envelopes
                .into_iter()
                .map(|env| participant.receive(now, env))
                .collect();
            if ticked {
                outputs.push(participant.tick(now));
            }
            shared.submit(outputs)
        };
        shared.release(step).await
    }

    /// Logs the latency figures and what the participant holds.
    fn log_gauges(&self, inbox: usize) {
        let shared = &self.shared;
        shared.stats.lock().log(STATS_PERIOD.as_secs());
        let g = shared.participant.lock().gauges();
        let now = DcClock::latest_at(shared.clock.now_micros());
        let lag_ms = |v: Version| DcClock::physical(now.saturating_sub(v)) / 1000;
        tracing::info!(
            attempts = g.attempts,
            active = g.active,
            prepared = g.prepared,
            waiting = g.waiting,
            local_waiting = g.local_waiting,
            recovering = g.recovering,
            committed_index = g.committed_index,
            records = g.records,
            store_keys = shared.store.engine().estimated_keys().unwrap_or(0),
            store_memory_mib = shared.store.engine().memory_bytes().unwrap_or(0) >> 20,
            inbox,
            floor_lag_ms = lag_ms(g.floor),
            complete_lag_ms = lag_ms(g.complete),
            "participant"
        );
    }
}

impl Shared {
    /// Submits the outputs' durable state and writes (under the participant's lock, so
    /// in step order).
    fn submit(&self, outputs: Vec<Output>) -> Submitted {
        let batch = self.batch_of(&outputs);
        let bytes = batch.size_bytes();
        let releases = outputs
            .iter()
            .any(|o| !o.send.is_empty() || !o.replies.is_empty() || o.complete.is_some());
        let synced = (!batch.is_empty() || releases).then(|| self.store.committer().submit(batch));
        Submitted {
            outputs,
            synced,
            bytes,
            at: Instant::now(),
        }
    }

    fn batch_of(&self, outputs: &[Output]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for out in outputs {
            for entry in &out.persist {
                let value = postcard::to_allocvec(entry).expect("durable entries encode");
                batch.put(Key::Protocol(&entry.slot_key()).encode(), value);
            }
            for slot in &out.forget {
                batch.delete(Key::Protocol(slot).encode());
            }
            for (version, writes) in &out.apply {
                batch.extend(self.store.mvcc().batch_for(*version, writes));
            }
        }
        batch
    }

    /// Waits for the step's sync, then carries its outputs out.
    async fn release(&self, step: Submitted) -> Result<()> {
        if let Some(synced) = step.synced {
            let result = synced.await.unwrap_or(Err(kv::Error::Closed));
            if let Err(e) = result {
                self.fail(&e);
                return Err(Error::Storage(e));
            }
            if step.bytes > 0 {
                let us = step.at.elapsed().as_micros() as u64;
                self.stats.lock().synced(us, step.bytes);
            }
        }
        self.carry_out(step.outputs);
        Ok(())
    }

    /// Publishes complete points, sends messages and answers sessions (all durable).
    fn carry_out(&self, outputs: Vec<Output>) {
        // Asked once per release, and only if something committed.
        let mut clock_refusal: Option<Option<String>> = None;
        for out in outputs {
            if let Some(complete) = out.complete {
                self.publish(complete);
            }
            if let Some(transport) = &self.transport {
                for env in out.send {
                    transport.send(env);
                }
            }
            for reply in out.replies {
                let Some(pending) = self.clients.lock().remove(&reply.client) else {
                    continue;
                };
                // Commit wait ran on this node's clock; if that clock is now known to be
                // off its peers', the wait proved nothing: the commit stands, but it is
                // not acknowledged (the session learns its outcome is unknown).
                if matches!(reply.result, ClientResult::Committed { .. }) {
                    let refusal = clock_refusal
                        .get_or_insert_with(|| self.view.as_ref().and_then(|v| v.commit_refusal()));
                    if let Some(why) = refusal {
                        tracing::warn!(
                            client = reply.client,
                            "a commit is not acknowledged: its commit wait ran on a clock \
                             found off: {why}"
                        );
                        continue;
                    }
                }
                let protocol_us = pending.taken.elapsed().as_micros() as u64;
                let answer = match reply.result {
                    ClientResult::Committed {
                        version,
                        wan_delays,
                        ..
                    } => {
                        self.stats.lock().committed(protocol_us, wan_delays);
                        let trace = CommitTrace {
                            wan_delays,
                            queued_us: (pending.taken - pending.submitted).as_micros() as u64,
                            protocol_us,
                        };
                        CommitReply::At { version, trace }
                    }
                    ClientResult::Aborted { reason } => {
                        self.stats.lock().aborted();
                        CommitReply::Aborted { reason }
                    }
                };
                let _ = pending.reply.send(answer);
            }
        }
    }

    fn publish(&self, complete: Version) {
        self.complete.fetch_max(complete, Ordering::AcqRel);
        let mut waiters = self.waiters.lock();
        if waiters.is_empty() {
            return;
        }
        let (ready, rest): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(v, _)| *v <= complete);
        *waiters = rest;
        for (_, tx) in ready {
            let _ = tx.send(());
        }
    }

    /// A sync failed: refuse everything from now on and tell every waiting session
    /// its outcome is unknown (by dropping its reply).
    fn fail(&self, err: &kv::Error) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(%err, "cannot sync the commit protocol's state; the driver stops");
        }
        self.clients.lock().clear();
        self.waiters.lock().clear();
        // A stored permit: the task wakes even if it is not waiting right now.
        self.stopped.notify_one();
    }
}

/// Reads every persisted protocol entry (what a restart rebuilds the participant from;
/// the simulator's checks read it too).
pub fn load(engine: &dyn Engine) -> Result<Durable> {
    let (start, end) = protocol_span();
    let entries = engine
        .scan(&start, Some(&end), usize::MAX)?
        .into_iter()
        .map(|(key, value)| {
            postcard::from_bytes::<DurableEntry>(&value).map_err(|e| {
                Error::Storage(kv::Error::Corruption(format!(
                    "protocol state under key {key:02x?}: {e}"
                )))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Durable::from_entries(entries))
}
