//! The participant driver: the one task that owns this DC's protocol core
//! (`txn::participant::Participant`) and carries its outputs out with real IO.
//!
//! ```text
//!   inputs (commit requests from SQL sessions, envelopes from peers, 5 ms ticks)
//!     ──▶ one batch of participant steps
//!     ──▶ one RocksDB write batch: changed durable state (`p` keys) + committed writes
//!         (MVCC), fdatasync'd once for the whole batch (group commit)
//!     ──▶ only then, in step order: tell the transaction manager what was applied and
//!         the new complete point, send messages, answer sessions
//! ```
//!
//! That order is the protocol's output contract (docs/protocol.md §2.3): nothing leaves
//! the node before the state it reflects is durable. A failed sync stops the node (its
//! memory may be ahead of its disk). On start the driver rebuilds the participant from
//! the `p` keys and replays what that yields (re-applies committed writes, resends
//! undecided work).
//!
//! Every commit's reply carries where its time went ([`txn::CommitTrace`]); the driver
//! also logs, every [`STATS_PERIOD`] with activity, the commit count, the latency of
//! the protocol phase and of the syncs (p50/p99) and the WAN delays per commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kv::keys::{protocol_span, Key};
use kv::{Engine, Store, Version, WriteBatch};
use parking_lot::Mutex;
use replication::DcId;
use tokio::sync::{mpsc, oneshot};
use txn::participant::{
    ClientResult, Config, Durable, DurableEntry, Envelope, Output, Participant, ReadEntry, Writes,
};
use txn::{
    CommitTrace, Committed, DcClock, DcStatus, PhysicalClock, Replicator, SystemClock, TxnId,
    TxnManager,
};

use super::status::PeerHealth;
use super::transport::Outbox;
use super::wan::Wan;
use crate::sim::percentile;

const TICK: Duration = Duration::from_millis(5);
/// Inputs folded into one synced batch at most.
const BATCH_INPUTS_MAX: usize = 4096;
/// How often the driver logs its latency figures (when anything happened).
pub const STATS_PERIOD: Duration = Duration::from_secs(10);

/// How the driver keeps the protocol's timers in step with the emulated WAN: when `wan`
/// changes, `config` (given the longest one-way delay in µs) yields the new timers.
pub struct Retime {
    pub wan: Arc<Wan>,
    pub config: Box<dyn Fn(u64) -> Config + Send + Sync>,
}

/// A session's commit, handed to the protocol.
struct Input {
    txn: TxnId,
    reads: Vec<ReadEntry>,
    writes: Writes,
    reply: oneshot::Sender<Committed>,
    submitted: Instant,
}

/// A commit the participant is working on.
struct Pending {
    reply: oneshot::Sender<Committed>,
    submitted: Instant,
    taken: Instant,
}

/// Latency samples since the last stats line.
#[derive(Default)]
struct Stats {
    committed: usize,
    aborted: usize,
    protocol_us: Vec<u64>,
    wan_delays: Vec<u64>,
    sync_us: Vec<u64>,
    batch_bytes: u64,
}

impl Stats {
    fn log(&mut self) {
        if self.committed + self.aborted + self.sync_us.len() == 0 {
            return;
        }
        let ms = |v: &[u64], p: usize| percentile(v, p) as f64 / 1000.0;
        tracing::info!(
            committed = self.committed,
            aborted = self.aborted,
            protocol_ms_p50 = ms(&self.protocol_us, 50),
            protocol_ms_p99 = ms(&self.protocol_us, 99),
            wan_delays_p50 = percentile(&self.wan_delays, 50),
            syncs = self.sync_us.len(),
            sync_ms_p50 = ms(&self.sync_us, 50),
            sync_ms_p99 = ms(&self.sync_us, 99),
            synced_kib = self.batch_bytes / 1024,
            "commit protocol, last {} s",
            STATS_PERIOD.as_secs()
        );
        *self = Stats::default();
    }
}

/// State shared between the driver task and the sessions' [`Replicator`] handle.
struct Shared {
    dc: DcId,
    health: Arc<PeerHealth>,
    clock_bound_us: u64,
    complete: AtomicU64,
    /// Sessions waiting for the complete point to reach a version.
    waiters: Mutex<Vec<(Version, oneshot::Sender<()>)>>,
}

impl Shared {
    fn publish(&self, complete: Version) {
        self.complete.fetch_max(complete, Ordering::AcqRel);
        let mut waiters = self.waiters.lock();
        let (ready, rest): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(v, _)| *v <= complete);
        *waiters = rest;
        for (_, tx) in ready {
            let _ = tx.send(());
        }
    }
}

/// The handle sessions use (through the transaction manager).
pub struct DriverHandle {
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Shared>,
}

impl Replicator for DriverHandle {
    fn dc(&self) -> DcId {
        self.shared.dc
    }

    fn data_centers(&self) -> Vec<DcStatus> {
        self.shared.health.statuses()
    }

    fn complete(&self) -> Version {
        self.shared.complete.load(Ordering::Acquire)
    }

    fn fresh_point(&self) -> Version {
        DcClock::latest_at(SystemClock.now_micros() + self.shared.clock_bound_us)
    }

    fn wait_complete(&self, version: Version) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.shared.waiters.lock();
        if self.complete() >= version {
            let _ = tx.send(());
        } else {
            waiters.push((version, tx));
        }
        rx
    }

    fn commit(
        &self,
        txn: TxnId,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> oneshot::Receiver<Committed> {
        let (reply, rx) = oneshot::channel();
        let _ = self.inputs.send(Input {
            txn,
            reads,
            writes,
            reply,
            submitted: Instant::now(),
        });
        rx
    }
}

/// The driver before it runs: built first so the transaction manager can hold its
/// handle, then started with that manager.
pub struct Driver {
    participant: Participant,
    restart_output: Output,
    inputs: mpsc::UnboundedReceiver<Input>,
    inbox: mpsc::UnboundedReceiver<Envelope>,
    shared: Arc<Shared>,
    store: Arc<Store>,
    retime: Retime,
    /// The WAN settings the timers were computed for.
    wan_generation: u64,
}

impl Driver {
    /// Loads the durable protocol state from `store` and rebuilds the participant.
    pub fn open(
        cfg: Config,
        store: Arc<Store>,
        inbox: mpsc::UnboundedReceiver<Envelope>,
        health: Arc<PeerHealth>,
        retime: Retime,
    ) -> anyhow::Result<(Driver, DriverHandle)> {
        let durable = load(&**store.engine())?;
        let shared = Arc::new(Shared {
            dc: cfg.me,
            health,
            clock_bound_us: cfg.clock_bound,
            complete: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
        });
        let (participant, restart_output) =
            Participant::restart(cfg, durable, SystemClock.now_micros());
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = DriverHandle {
            inputs: tx,
            shared: shared.clone(),
        };
        Ok((
            Driver {
                participant,
                restart_output,
                inputs: rx,
                inbox,
                shared,
                store,
                wan_generation: retime.wan.generation(),
                retime,
            },
            handle,
        ))
    }

    /// Runs until every session handle and the peer service are gone.
    pub async fn run(mut self, txns: Arc<TxnManager>, outbox: Outbox) -> anyhow::Result<()> {
        let mut clients: HashMap<u64, Pending> = HashMap::new();
        let mut next_client = 0u64;
        let mut stats = Stats::default();
        let mut last_stats = Instant::now();
        let first = std::mem::take(&mut self.restart_output);
        self.release(vec![first], &txns, &outbox, &mut clients, &mut stats)
            .await?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if last_stats.elapsed() >= STATS_PERIOD {
                stats.log();
                last_stats = Instant::now();
            }
            let mut inputs = Vec::new();
            let mut envelopes = Vec::new();
            let mut ticked = false;
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(i) => inputs.push(i),
                    None => return Ok(()),
                },
                env = self.inbox.recv() => match env {
                    Some(e) => envelopes.push(e),
                    None => return Ok(()),
                },
                _ = tick.tick() => ticked = true,
            }
            while inputs.len() + envelopes.len() < BATCH_INPUTS_MAX {
                if let Ok(i) = self.inputs.try_recv() {
                    inputs.push(i);
                } else if let Ok(e) = self.inbox.try_recv() {
                    envelopes.push(e);
                } else {
                    break;
                }
            }
            let now = SystemClock.now_micros();
            let taken = Instant::now();
            let mut outputs = Vec::new();
            for env in envelopes {
                outputs.push(self.participant.receive(now, env));
            }
            for input in inputs {
                let Input {
                    txn,
                    reads,
                    writes,
                    reply,
                    submitted,
                } = input;
                next_client += 1;
                clients.insert(
                    next_client,
                    Pending {
                        reply,
                        submitted,
                        taken,
                    },
                );
                outputs.push(
                    self.participant
                        .commit(now, next_client, txn, reads, writes),
                );
            }
            if ticked {
                self.retime_if_wan_changed();
                outputs.push(self.participant.tick(now));
            }
            self.release(outputs, &txns, &outbox, &mut clients, &mut stats)
                .await?;
        }
    }

    fn retime_if_wan_changed(&mut self) {
        let generation = self.retime.wan.generation();
        if generation == self.wan_generation {
            return;
        }
        self.wan_generation = generation;
        let one_way = self.retime.wan.max_one_way();
        let cfg = (self.retime.config)(one_way.as_micros() as u64);
        tracing::info!(
            one_way_ms = one_way.as_millis() as u64,
            retransmit_ms = cfg.retransmit / 1000,
            recovery_ms = cfg.recovery / 1000,
            floor_lag_ms = cfg.floor_lag / 1000,
            "WAN changed: protocol timers rescaled"
        );
        self.participant.set_timers(&cfg);
    }

    /// Makes the outputs' durable state and writes stable with one sync, then carries
    /// out their effects in order.
    async fn release(
        &self,
        outputs: Vec<Output>,
        txns: &TxnManager,
        outbox: &Outbox,
        clients: &mut HashMap<u64, Pending>,
        stats: &mut Stats,
    ) -> anyhow::Result<()> {
        let mut batch = WriteBatch::new();
        for out in &outputs {
            for entry in &out.persist {
                let value = postcard::to_allocvec(entry).expect("durable entries encode");
                batch.put(Key::Protocol(&entry.slot_key()).encode(), value);
            }
            for (version, writes) in &out.apply {
                batch.extend(self.store.mvcc().batch_for(*version, writes));
            }
        }
        if !batch.is_empty() {
            let engine = self.store.engine().clone();
            let started = Instant::now();
            stats.batch_bytes += batch.size_bytes() as u64;
            tokio::task::spawn_blocking(move || engine.write(&batch, true))
                .await
                .context("the sync task failed")?
                .context("cannot sync the commit protocol's state; stopping")?;
            stats.sync_us.push(started.elapsed().as_micros() as u64);
        }
        for out in outputs {
            for (version, writes) in out.apply {
                txns.applied(version, writes.into_iter().map(|(k, _)| k).collect());
            }
            if let Some(complete) = out.complete {
                txns.set_complete(complete);
                self.shared.publish(complete);
            }
            for env in out.send {
                outbox.send(env);
            }
            for reply in out.replies {
                let Some(pending) = clients.remove(&reply.client) else {
                    continue;
                };
                let protocol_us = pending.taken.elapsed().as_micros() as u64;
                let answer = match reply.result {
                    ClientResult::Committed {
                        version,
                        wan_delays,
                        ..
                    } => {
                        stats.committed += 1;
                        stats.protocol_us.push(protocol_us);
                        stats.wan_delays.push(u64::from(wan_delays));
                        let trace = CommitTrace {
                            wan_delays,
                            queued_us: (pending.taken - pending.submitted).as_micros() as u64,
                            protocol_us,
                        };
                        tracing::debug!(version, ?trace, "committed");
                        Committed::At { version, trace }
                    }
                    ClientResult::Aborted { reason } => {
                        stats.aborted += 1;
                        Committed::Aborted { reason }
                    }
                };
                let _ = pending.reply.send(answer);
            }
        }
        Ok(())
    }
}

/// Reads every persisted protocol entry.
fn load(engine: &dyn Engine) -> anyhow::Result<Durable> {
    let (start, end) = protocol_span();
    let entries = engine
        .scan(&start, Some(&end), usize::MAX)?
        .into_iter()
        .map(|(key, value)| {
            postcard::from_bytes::<DurableEntry>(&value)
                .with_context(|| format!("corrupt protocol state under key {key:02x?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Durable::from_entries(entries))
}
