//! One simulated run of the production stack: D data centers, each the code a node runs
//! — a `kv::Store` on a `MemoryEngine` disk, the protocol driver (`txn::driver`, opened
//! and restarted through `driver::open` as a node does, stepped by its
//! [`DriverTask::turn`]) and the real `TxnManager` — over a seeded network and nemesis,
//! with closed-loop clients running interactive list-append transactions (snapshot reads,
//! locked reads, appends, fresh read-only transactions, think time between statements,
//! wound-wait between them). Everything runs on the deterministic [`Executor`] in
//! simulated time from one event queue, so a seed replays exactly.
//!
//! ```text
//!   event queue ──▶ deliver / tick ──▶ DC's driver loop (turn: step, submit batch)
//!               ──▶ sync(dc) ─────────▶ the stepped committer writes its queue to the
//!                                       disk: waiting turns and commits go on
//!               ──▶ client / timer ───▶ a session's transaction runs its next statement
//!   after each event: run every woken future, then collect what they produced —
//!   messages (with delay, jitter, loss, duplication, partitions), timers, syncs to
//!   schedule, complete points published, clients' outcomes
//! ```
//!
//! Durability model: a DC's batches wait in its stepped committer until a `Sync` event
//! one sync latency later writes them to its engine; a crash drops the DC's futures and
//! its committer queue (an unsynced write is lost), and the restart opens a new store and
//! driver on the same engine. Faults: message loss and duplication, crashes, isolation
//! both ways, one-way partitions (a DC that hears nothing, or whose messages are lost),
//! clock jumps beyond the offset bound ε, and disks wiped or replaced by an older copy
//! (the restart goes through the production identity check, which must refuse it; the
//! operator then rebuilds the DC from its peers — at once, half the time, while what its
//! lost directory took part in is still undecided — through `Participant::peer_rejoined`
//! at every peer, the donor's `export_copy` and `txn::driver::Rebuild`, and it is
//! checked like any DC from then on; one directory is lost per run, docs/protocol.md
//! §7.7). Every DC probes its peers
//! every 100 ms as a node does, and the node's rule ([`OffsetCheck`]) decides whether it
//! may coordinate commits and serve fresh reads; a jump is probed at once (a real node
//! sees it within a probe period, and acts on the old bound until then).
//!
//! Checked while running (besides the final checks of [`super::verify`]): agreement on
//! every outcome as it is synced, a quorum of durable COMMIT votes behind every
//! acknowledged write, the complete-point invariant (§7.6), and progress — while a DC
//! that is up and connected has work, some transaction commits within the settling
//! bound (a recovery round with room for retries), checked every simulated second.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::Waker;

use futures::channel::mpsc;
use futures::StreamExt;
use kv::keys::{decode_version_key, protocol_span};
use kv::{Engine, MemoryEngine, MvccStore, Store, Version, WriteBatch};
use parking_lot::Mutex;
use replication::{quorum, DcId, DurableEntry, Envelope, Outcome, RejoinFacts, TxnKey};
use txn::driver::{export_copy, Rebuild};
use txn::{ClusterView, DriverTask, PhysicalClock, Transport, TxnManager};

use super::executor::{Executor, SimClock, SimTime};
use super::node::DurableState;
use super::world::{
    decode_list, deliveries, encode_list, fault_windows, pick_keys, user_key, Rng, RunConfig,
    RunResult,
};
use crate::cluster::identity::Identity;
use crate::cluster::status::OffsetCheck;
use crate::elle::{Op, Status, TxnObs};

/// The simulated disk's sync latency.
const SYNC_US: u64 = 1_000;
/// How often progress is checked.
const CHECK_EVERY_US: u64 = 1_000_000;
/// How often every DC probes its peers' round trips and clocks (as a node does).
const PROBE_EVERY_US: u64 = 100_000;

enum Event {
    /// An envelope, with its sender's directory when it was sent.
    Deliver(Envelope, u32),
    Tick(DcId),
    Sync {
        dc: DcId,
        incarnation: u32,
    },
    Wake(Waker),
    Check,
    Probe,
    ClientNext(usize),
    Fault(Fault),
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Crash(DcId),
    Restart(DcId),
    /// Cut off both ways.
    Isolate(DcId),
    /// Hears nothing; what it sends arrives.
    Deafen(DcId),
    /// What it sends is lost; it hears everything.
    Mute(DcId),
    /// Ends an isolation, deafness or muteness.
    Heal(DcId),
    /// The DC's clock jumps beyond the offset bound ε, ahead or behind.
    Skew(DcId),
    /// The DC's clock comes back to its normal offset.
    Unskew(DcId),
    /// The DC's process dies and its disk is replaced, by an empty one or by an older
    /// copy of itself (a backup restored): its restart must be refused.
    Wipe(DcId),
    /// The operator rebuilds a refused DC from its peers (`meridian node --rejoin` on an
    /// empty directory): every other DC is told and answers with its facts.
    Rebuild(DcId),
    /// The rebuild's copy arrives: the DC's directory is written from the donor's
    /// copy and the facts, and the node starts.
    RebuildCopy(DcId),
    /// A DC down past the eviction period (docs/protocol.md §7.8): every running peer
    /// evicts it (refuses its directory from now on and keeps no history for it). Its
    /// restart is then refused and the operator rebuilds it.
    Evict(DcId),
}

/// A DC being rebuilt: its new (empty, claimed) disk, and the facts its peers answered
/// so far.
type Rebuilding = (Arc<MemoryEngine>, Rc<RefCell<Vec<RejoinFacts>>>);

/// An input of a DC's driver loop.
enum Input {
    /// An envelope, with the sender's directory when it was sent.
    Envelope(Envelope, u32),
    Tick,
}

/// The driver's transport: envelopes wait here until the world puts them on the network.
struct SimOutbox(Arc<Mutex<Vec<Envelope>>>);

impl Transport for SimOutbox {
    fn send(&self, env: Envelope) {
        self.0.lock().push(env);
    }
}

/// The DC's view of its cluster, for the driver: only the clock check, the production
/// rule ([`OffsetCheck`]) over the probes the world computes.
struct SimView {
    offsets: Arc<Mutex<OffsetCheck>>,
    time: Arc<SimTime>,
    me: DcId,
    /// Per DC, the DCs it cannot hear: down, cut off, or mute; all of them if it is deaf.
    unheard: Arc<Mutex<Vec<Vec<DcId>>>>,
}

impl ClusterView for SimView {
    fn data_centers(&self) -> Vec<txn::DcStatus> {
        Vec::new()
    }

    fn commit_refusal(&self) -> Option<String> {
        self.offsets.lock().refusal(self.time.now())
    }

    fn suspected(&self) -> Vec<DcId> {
        self.unheard.lock()[usize::from(self.me)].clone()
    }
}

/// A running DC process.
struct Running {
    store: Arc<Store>,
    manager: Arc<TxnManager>,
    inputs: mpsc::UnboundedSender<Input>,
    outbox: Arc<Mutex<Vec<Envelope>>>,
    offsets: Arc<Mutex<OffsetCheck>>,
    identity: Arc<Identity>,
}

struct Dc {
    /// The disk: survives crashes; holds only what was synced.
    engine: Arc<MemoryEngine>,
    /// A copy of the disk taken before one of its restarts (what a wipe may restore).
    backup: Option<Arc<MemoryEngine>>,
    /// The disk a wipe replaced: what the DC had made durable before the operator's
    /// mistake still counts as having backed the commits it voted for.
    wiped: Option<Arc<MemoryEngine>>,
    running: Option<Running>,
    incarnation: u32,
    sync_scheduled: bool,
    /// The machine's clock (survives crashes) and its offset when healthy.
    clock: Arc<SimClock>,
    clock_offset_us: i64,
    /// The complete point as last seen published (volatile).
    complete: Version,
    /// When each version was first written here.
    applied_at: BTreeMap<Version, u64>,
    /// Every (time, complete point) published.
    published: Vec<(u64, Version)>,
}

/// A statement of a planned transaction.
#[derive(Clone, Copy)]
enum Access {
    /// Read at the transaction's snapshot.
    Snapshot,
    /// Lock and read the latest (SELECT … FOR UPDATE).
    Locked,
    /// Lock, read the latest, append the value.
    Append(u64),
}

struct Plan {
    /// A read-only transaction on a fresh snapshot (`begin_fresh`).
    fresh: bool,
    statements: Vec<(u64, Access, u64)>,
}

/// What a finished transaction reports to the world.
struct Finished {
    client: usize,
    status: Status,
    /// For a write committed: its version; and its WAN delays.
    version: Option<Version>,
    wan_delays: Option<u32>,
}

/// Where a client's transaction is, for reports: waiting for a fresh snapshot, running
/// its statements, or committing (since when).
#[derive(Clone, Copy, Debug, Default)]
enum Phase {
    #[default]
    Beginning,
    Statements,
    Committing(u64),
}

struct Client {
    dc: DcId,
    /// The transaction in flight: its history index and its phase.
    current: Option<(usize, Rc<Cell<Phase>>)>,
}

pub struct Cluster {
    cfg: RunConfig,
    rng: Rng,
    time: Arc<SimTime>,
    start: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    executor: Executor,
    dcs: Vec<Dc>,
    down: BTreeSet<DcId>,
    isolated: BTreeSet<DcId>,
    deaf: BTreeSet<DcId>,
    mute: BTreeSet<DcId>,
    skewed: BTreeSet<DcId>,
    /// DCs whose restart their peers refused (a wiped or restored directory): down
    /// until rebuilt from their peers; one not rebuilt by the end is left out of the
    /// final checks.
    refused: BTreeSet<DcId>,
    /// Per DC being rebuilt, its new (empty, claimed) disk and the facts its peers
    /// answered so far.
    rebuilding: BTreeMap<DcId, Rebuilding>,
    /// Per DC, which of its directories is current (a rebuild replaces it): what it
    /// sent from an earlier one is dropped.
    directories: Rc<RefCell<Vec<u32>>>,
    /// Per DC, the DCs it cannot hear (what its view suspects).
    unheard: Arc<Mutex<Vec<Vec<DcId>>>>,
    /// DCs rebuilt from a peer.
    rebuilt: usize,
    /// DCs evicted by their peers.
    evicted: usize,
    /// A directory was lost in this run.
    wiped_once: bool,
    /// The DC whose directory was lost and is not rebuilt yet.
    lost_directory: Option<DcId>,
    clients: Vec<Client>,
    history: Rc<RefCell<Vec<TxnObs>>>,
    finished: Rc<RefCell<Vec<Finished>>>,
    commits: Vec<(u32, u64)>,
    violations: Vec<String>,
    decided: BTreeMap<TxnKey, (DcId, Option<Version>)>,
    /// The attempt behind each committed version, from the outcomes synced.
    committed_by_version: BTreeMap<Version, TxnKey>,
    committed_during_faults: usize,
    issued: usize,
    next_value: u64,
    loss: f64,
    duplication: f64,
    last_commit_at: u64,
    workload_done: bool,
}

impl Cluster {
    pub fn new(cfg: RunConfig) -> Cluster {
        let mut rng = Rng::new(cfg.seed);
        let cfg_dcs = cfg.dcs;
        let start = 1_000_000_000;
        let time = Arc::new(SimTime::default());
        time.set(start);
        let dcs = (0..cfg.dcs)
            .map(|_| {
                let offset = rng.below(cfg.clock_skew_us + 1) as i64;
                (
                    offset,
                    Arc::new(SimClock {
                        time: time.clone(),
                        offset_us: AtomicI64::new(offset),
                        drift_ppm: 0,
                        start,
                    }),
                )
            })
            .map(|(clock_offset_us, clock)| Dc {
                engine: Arc::new(MemoryEngine::new()),
                backup: None,
                wiped: None,
                running: None,
                incarnation: 0,
                sync_scheduled: false,
                clock,
                clock_offset_us,
                complete: 0,
                applied_at: BTreeMap::new(),
                published: Vec::new(),
            })
            .collect();
        let clients = (0..cfg.dcs * cfg.clients_per_dc)
            .map(|i| Client {
                dc: (i % cfg.dcs) as DcId,
                current: None,
            })
            .collect();
        let (loss, duplication) = if cfg.faults { (0.02, 0.02) } else { (0.0, 0.0) };
        Cluster {
            cfg,
            rng,
            time,
            start,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            executor: Executor::default(),
            dcs,
            down: BTreeSet::new(),
            isolated: BTreeSet::new(),
            deaf: BTreeSet::new(),
            mute: BTreeSet::new(),
            skewed: BTreeSet::new(),
            refused: BTreeSet::new(),
            rebuilding: BTreeMap::new(),
            directories: Rc::new(RefCell::new(vec![0; cfg_dcs])),
            unheard: Arc::new(Mutex::new(vec![Vec::new(); cfg_dcs])),
            rebuilt: 0,
            evicted: 0,
            wiped_once: false,
            lost_directory: None,
            clients,
            history: Rc::new(RefCell::new(Vec::new())),
            finished: Rc::new(RefCell::new(Vec::new())),
            commits: Vec::new(),
            violations: Vec::new(),
            decided: BTreeMap::new(),
            committed_by_version: BTreeMap::new(),
            committed_during_faults: 0,
            issued: 0,
            next_value: 1,
            loss,
            duplication,
            last_commit_at: start,
            workload_done: false,
        }
    }

    fn now(&self) -> u64 {
        self.time.now()
    }

    fn wan(&self) -> u64 {
        self.cfg.wan_delay_us.max(1_000)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    /// The protocol's timers as a node would set them, its probes having measured the
    /// simulated delay (jitter included).
    fn protocol_config(&self, me: DcId) -> replication::Config {
        let one_way = self.cfg.wan_delay_us + self.cfg.wan_delay_us / 10;
        crate::cluster::protocol_config(
            self.cfg.dcs,
            me,
            self.cfg.learn,
            self.cfg.clock_skew_us,
            one_way,
        )
    }

    /// Starts DC `d`'s process on its disk, through the path a node takes: its
    /// identity first, checked with every running peer both ways (the `Hello` of
    /// `cluster::transport`), then the driver and the transaction manager. False if a
    /// peer refused it (the node stops at start).
    fn boot(&mut self, d: DcId) -> bool {
        let config = self.protocol_config(d);
        let store = Arc::new(
            Store::open_stepped(self.dcs[usize::from(d)].engine.clone() as Arc<dyn Engine>)
                .expect("the in-memory engine opens"),
        );
        let identity = Arc::new(
            Identity::open(store.clone(), "sim", d, self.cfg.dcs)
                .expect("a simulated directory belongs to its DC"),
        );
        for peer in self.dcs.iter().filter_map(|p| p.running.as_ref()) {
            let peer_dc = peer.identity.me();
            let checked = peer
                .identity
                .check_peer(d, identity.claim())
                .and_then(|()| identity.check_peer(peer_dc, peer.identity.claim()));
            if checked.is_err() {
                return false;
            }
        }
        let dc = &mut self.dcs[usize::from(d)];
        let clock = dc.clock.clone();
        let outbox = Arc::new(Mutex::new(Vec::new()));
        let offsets = Arc::new(Mutex::new(OffsetCheck::new(
            d,
            self.cfg.dcs,
            self.cfg.clock_skew_us,
        )));
        let view = Arc::new(SimView {
            offsets: offsets.clone(),
            time: self.time.clone(),
            me: d,
            unheard: self.unheard.clone(),
        });
        let (handle, task) = txn::driver::open(
            config,
            store.clone(),
            clock.clone(),
            Some(Box::new(SimOutbox(outbox.clone()))),
            Some(view),
        )
        .expect("the protocol state the simulation wrote loads");
        for evicted in identity.evicted() {
            handle.evict(evicted);
        }
        let manager = TxnManager::new(store.clone(), clock, handle);
        let (inputs, rx) = mpsc::unbounded();
        self.executor
            .spawn(d, driver_loop(task, rx, self.directories.clone()));
        dc.running = Some(Running {
            store,
            manager,
            inputs,
            outbox,
            offsets,
            identity,
        });
        true
    }

    /// Runs the workload (with the nemesis if asked), heals everything, lets the
    /// protocol settle, and returns what was observed.
    pub fn run(mut self) -> RunResult {
        for d in 0..self.cfg.dcs as DcId {
            assert!(self.boot(d), "a first start is accepted");
            let at = self.now() + self.rng.below(txn::driver::TICK.as_micros() as u64);
            self.schedule(at, Event::Tick(d));
        }
        self.settle_futures();
        for c in 0..self.clients.len() {
            let at = self.now() + self.rng.below(5_000);
            self.schedule(at, Event::ClientNext(c));
        }
        self.schedule(self.now() + CHECK_EVERY_US, Event::Check);
        self.schedule(self.now() + PROBE_EVERY_US, Event::Probe);
        let wan = self.wan();
        let deadline = self.now() + (self.cfg.txns as u64 + 10) * 40 * wan + 60_000_000;
        if self.cfg.faults {
            self.schedule_nemesis(deadline);
        }
        while self.now() < deadline {
            if self.issued >= self.cfg.txns && self.clients.iter().all(|c| c.current.is_none()) {
                break;
            }
            if !self.step() {
                break;
            }
        }
        self.workload_done = true;
        // Heal: everything back up and connected, no more loss; faults still queued
        // would strike during the settling phase, whose checks assume a healthy cluster.
        self.loss = 0.0;
        self.duplication = 0.0;
        self.events.retain(|_, e| !matches!(e, Event::Fault(_)));
        for d in 0..self.cfg.dcs as DcId {
            self.fault(Fault::Heal(d));
            self.fault(Fault::Unskew(d));
            self.fault(Fault::Restart(d));
        }
        self.settle_futures();
        let settle = self.now() + settle_time(&self.protocol_config(0), self.cfg.dcs, wan);
        while self.now() < settle && self.step() {}
        self.finish()
    }

    /// Processes the next event; false when none is left.
    fn step(&mut self) -> bool {
        let Some(Reverse((at, seq))) = self.queue.pop() else {
            return false;
        };
        self.time.set(at);
        let Some(event) = self.events.remove(&seq) else {
            return true;
        };
        match event {
            Event::Deliver(env, tag) => self.deliver(env, tag),
            Event::Tick(d) => {
                if let Some(r) = &self.dcs[usize::from(d)].running {
                    let _ = r.inputs.unbounded_send(Input::Tick);
                }
                let at = self.now() + txn::driver::TICK.as_micros() as u64;
                self.schedule(at, Event::Tick(d));
            }
            Event::Sync { dc, incarnation } => self.sync(dc, incarnation),
            Event::Wake(waker) => waker.wake(),
            Event::Check => self.check_progress(),
            Event::Probe => {
                self.probe();
                self.schedule(self.now() + PROBE_EVERY_US, Event::Probe);
            }
            Event::ClientNext(c) => self.client_next(c),
            Event::Fault(f) => self.fault(f),
        }
        self.settle_futures();
        true
    }

    /// Runs every woken future, then collects what they produced.
    fn settle_futures(&mut self) {
        self.executor.run_until_stalled();
        for (at, waker) in self.time.take_timers() {
            self.schedule(at, Event::Wake(waker));
        }
        let now = self.now();
        for d in 0..self.dcs.len() {
            let Some(r) = &self.dcs[d].running else {
                continue;
            };
            let sent = std::mem::take(&mut *r.outbox.lock());
            let queued = r.store.committer().queued() > 0;
            let complete = r.manager.driver().complete();
            let dc = &mut self.dcs[d];
            if complete > dc.complete {
                dc.complete = complete;
                dc.published.push((now, complete));
            }
            if queued && !dc.sync_scheduled {
                dc.sync_scheduled = true;
                let incarnation = dc.incarnation;
                self.schedule(
                    now + SYNC_US,
                    Event::Sync {
                        dc: d as DcId,
                        incarnation,
                    },
                );
            }
            for env in sent {
                self.send(env);
            }
        }
        let finished = std::mem::take(&mut *self.finished.borrow_mut());
        for f in finished {
            self.client_done(f);
        }
    }

    fn deliver(&mut self, env: Envelope, tag: u32) {
        let (from, to) = (env.from, env.to);
        // Sent by a directory since replaced: its peers refuse it (as the transport
        // refuses a batch from a replaced directory).
        if self.directories.borrow()[usize::from(from)] != tag
            || self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.mute.contains(&from)
            || self.deaf.contains(&to)
        {
            return;
        }
        if let Some(r) = &self.dcs[usize::from(to)].running {
            let _ = r.inputs.unbounded_send(Input::Envelope(env, tag));
        }
    }

    fn send(&mut self, env: Envelope) {
        let (network, now) = (
            (self.loss, self.duplication, self.cfg.wan_delay_us),
            self.now(),
        );
        let tag = self.directories.borrow()[usize::from(env.from)];
        for at in deliveries(&mut self.rng, network, now) {
            self.schedule(at, Event::Deliver(env.clone(), tag));
        }
    }

    /// The DC's disk completes a sync: its queued batches become durable, and what they
    /// hold is checked (agreement) and noted (first application of each version).
    fn sync(&mut self, d: DcId, incarnation: u32) {
        let now = self.now();
        let dc = &mut self.dcs[usize::from(d)];
        if dc.incarnation != incarnation {
            return;
        }
        dc.sync_scheduled = false;
        let Some(r) = &dc.running else {
            return;
        };
        let batches = r.store.committer().sync_queued();
        let (protocol_start, protocol_end) = protocol_span();
        let applied_key = MvccStore::last_committed_key();
        let mut outcomes = Vec::new();
        for (key, value) in batches.iter().flat_map(|b: &WriteBatch| &b.ops) {
            let Some(value) = value else { continue };
            if *key >= protocol_start && *key < protocol_end {
                if let Ok(DurableEntry::Outcome(k, o)) = postcard::from_bytes(value) {
                    outcomes.push((
                        k,
                        match o {
                            Outcome::Committed { version } => Some(version),
                            Outcome::Aborted => None,
                        },
                    ));
                }
            } else if *key == applied_key {
                if let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) {
                    dc.applied_at
                        .entry(Version::from_be_bytes(bytes))
                        .or_insert(now);
                }
            }
        }
        for (key, outcome) in outcomes {
            if let Some(version) = outcome {
                self.committed_by_version.insert(version, key);
            }
            let (first_dc, first) = *self.decided.entry(key).or_insert((d, outcome));
            if first != outcome {
                self.violations.push(format!(
                    "agreement: {key:?} is {first:?} at DC {first_dc}, {outcome:?} at DC {d}"
                ));
            }
        }
    }

    fn fault(&mut self, fault: Fault) {
        self.apply(fault);
        let dcs = self.cfg.dcs as DcId;
        let hears = |i: DcId, j: DcId| {
            !self.down.contains(&j)
                && !self.isolated.contains(&i)
                && !self.isolated.contains(&j)
                && !self.deaf.contains(&i)
                && !self.mute.contains(&j)
        };
        let unheard = (0..dcs)
            .map(|i| (0..dcs).filter(|j| *j != i && !hears(i, *j)).collect())
            .collect();
        *self.unheard.lock() = unheard;
    }

    fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(d) => self.crash(d),
            Fault::Restart(d) => {
                if self.refused.contains(&d) || !self.down.remove(&d) {
                    return;
                }
                let dc = &mut self.dcs[usize::from(d)];
                if dc.backup.is_none() && self.rng.chance(0.5) {
                    dc.backup = Some(Arc::new(dc.engine.snapshot()));
                }
                if !self.boot(d) {
                    // Down until the operator rebuilds it; the f it used stays used, so
                    // no new faults start (those under way still end).
                    self.down.insert(d);
                    self.refused.insert(d);
                    self.hold_faults();
                    let at = self.now() + self.fault_unit();
                    self.schedule(at, Event::Fault(Fault::Rebuild(d)));
                }
            }
            // A second lost directory: until the first rebuilt DC has learned every
            // attempt its lost directory may have taken part in, the instances those
            // attempts hold have lost two acceptors' state (more than f with three DCs),
            // and nothing can decide them safely. The nemesis loses one directory per run.
            Fault::Wipe(d) if self.wiped_once => self.crash(d),
            Fault::Wipe(d) => {
                self.wiped_once = true;
                self.lost_directory = Some(d);
                self.crash(d);
                let dc = &mut self.dcs[usize::from(d)];
                let replacement = match dc.backup.take() {
                    Some(old) if self.rng.chance(0.5) => old,
                    _ => Arc::new(MemoryEngine::new()),
                };
                dc.wiped = Some(std::mem::replace(&mut dc.engine, replacement));
            }
            // Evicting is losing the directory for the cluster: one per run, as wipes.
            Fault::Evict(d)
                if self.wiped_once || !self.down.contains(&d) || self.refused.contains(&d) => {}
            Fault::Evict(d) => {
                self.wiped_once = true;
                self.lost_directory = Some(d);
                self.evicted += 1;
                for r in self.dcs.iter().filter_map(|p| p.running.as_ref()) {
                    r.identity
                        .evict(d)
                        .expect("a simulated peer records an eviction");
                    r.manager.driver().evict(d);
                }
            }
            Fault::Rebuild(d) => self.rebuild(d),
            Fault::RebuildCopy(d) => self.rebuild_copy(d),
            Fault::Isolate(d) => {
                self.isolated.insert(d);
            }
            Fault::Deafen(d) => {
                self.deaf.insert(d);
            }
            Fault::Mute(d) => {
                self.mute.insert(d);
            }
            Fault::Heal(d) => {
                self.isolated.remove(&d);
                self.deaf.remove(&d);
                self.mute.remove(&d);
            }
            Fault::Skew(d) => {
                // Provably beyond ε over a probe's round trip, by up to 300 ms more.
                let wan = self.cfg.wan_delay_us;
                let beyond =
                    (self.cfg.clock_skew_us + wan + wan / 10 + 5_000 + self.rng.below(300_000))
                        as i64;
                let sign = if self.rng.chance(0.5) { 1 } else { -1 };
                let dc = &self.dcs[usize::from(d)];
                dc.clock
                    .offset_us
                    .store(dc.clock_offset_us + sign * beyond, Ordering::Release);
                self.skewed.insert(d);
                // Seen at once (module docs): the probes run now.
                self.probe();
            }
            Fault::Unskew(d) => {
                let dc = &self.dcs[usize::from(d)];
                dc.clock
                    .offset_us
                    .store(dc.clock_offset_us, Ordering::Release);
                self.skewed.remove(&d);
                self.probe();
            }
        }
    }

    /// Whether DC `d` is up and its links work both ways.
    fn reachable(&self, d: DcId) -> bool {
        !self.down.contains(&d)
            && !self.isolated.contains(&d)
            && !self.deaf.contains(&d)
            && !self.mute.contains(&d)
    }

    /// Every running DC probes every peer it can reach both ways, as a node's transport
    /// does: the round trip is two simulated delays, the offset the peer's clock minus
    /// its own (read at the same simulated instant, so exact).
    fn probe(&mut self) {
        let now = self.now();
        let reachable = |d: &DcId| self.reachable(*d);
        for i in 0..self.cfg.dcs as DcId {
            if !reachable(&i) {
                continue;
            }
            let Some(r) = &self.dcs[usize::from(i)].running else {
                continue;
            };
            let mine = self.dcs[usize::from(i)].clock.now_micros() as i64;
            let mut offsets = r.offsets.lock();
            for j in (0..self.cfg.dcs as DcId).filter(|j| *j != i && reachable(j)) {
                let theirs = self.dcs[usize::from(j)].clock.now_micros() as i64;
                let rtt = 2 * self.cfg.wan_delay_us + self.cfg.wan_delay_us / 10;
                offsets.measured(now, j, rtt, theirs - mine);
            }
        }
    }

    /// Cancels every fault not started yet (those under way still end): a DC is down
    /// past its fault window, and the f it uses stays used.
    fn hold_faults(&mut self) {
        self.events.retain(|_, e| {
            !matches!(
                e,
                Event::Fault(
                    Fault::Crash(_)
                        | Fault::Isolate(_)
                        | Fault::Deafen(_)
                        | Fault::Mute(_)
                        | Fault::Skew(_)
                        | Fault::Wipe(_)
                )
            )
        });
    }

    /// The operator runs `--rejoin` for refused DC `d`: once every other DC is up and
    /// reachable, each is told (through its driver, as the node's `Rejoin` RPC does)
    /// and answers with its facts once they are durable; the copy follows a round trip
    /// later. Until every DC can be reached, the operator tries again.
    fn rebuild(&mut self, d: DcId) {
        if self.lost_directory != Some(d) {
            // Its directory is whole (the wipe became a crash): a plain restart.
            return self.fault(Fault::Restart(d));
        }
        if self.dcs[usize::from(d)].running.is_some() || self.rebuilding.contains_key(&d) {
            return;
        }
        let unit = self.fault_unit();
        let others: Vec<DcId> = (0..self.cfg.dcs as DcId).filter(|p| *p != d).collect();
        if !others.iter().all(|p| self.reachable(*p)) {
            // Down past its window: start no new faults, so at most f stay out.
            self.hold_faults();
            self.schedule(self.now() + unit, Event::Fault(Fault::Rebuild(d)));
            return;
        }
        // The new directory is claimed, and every peer records it in place of the
        // lost one (what answering `Rejoin` does first): from now on what the lost
        // directory sent is refused.
        let engine = Arc::new(MemoryEngine::new());
        let store = Arc::new(
            Store::open_stepped(engine.clone() as Arc<dyn Engine>)
                .expect("the in-memory engine opens"),
        );
        let identity =
            Identity::open(store, "sim", d, self.cfg.dcs).expect("an empty directory is claimed");
        self.directories.borrow_mut()[usize::from(d)] += 1;
        let facts = Rc::new(RefCell::new(Vec::new()));
        for p in others {
            let Some(r) = &self.dcs[usize::from(p)].running else {
                continue;
            };
            r.identity
                .accept_rebuilt(d, identity.claim())
                .expect("a peer records the rebuilt DC");
            let driver = r.manager.driver().clone();
            let facts = facts.clone();
            self.executor.spawn(p, async move {
                if let Ok(f) = driver.peer_rejoined(d).await {
                    facts.borrow_mut().push(f);
                }
            });
        }
        self.rebuilding.insert(d, (engine, facts));
        let at = self.now() + 2 * self.wan() + 10_000;
        self.schedule(at, Event::Fault(Fault::RebuildCopy(d)));
    }

    /// The copy reaches `d`: the donor's copy and the facts are written into its new
    /// directory through [`Rebuild`], and the node starts as any node does. If a peer
    /// failed to answer (it crashed), the rebuild starts over.
    fn rebuild_copy(&mut self, d: DcId) {
        let Some((engine, facts)) = self.rebuilding.remove(&d) else {
            return;
        };
        let facts = facts.borrow().clone();
        let donor = (0..self.cfg.dcs as DcId)
            .find(|p| *p != d && self.reachable(*p) && self.dcs[usize::from(*p)].running.is_some());
        let (Some(donor), true) = (donor, facts.len() + 1 == self.cfg.dcs) else {
            let at = self.now() + self.fault_unit();
            self.schedule(at, Event::Fault(Fault::Rebuild(d)));
            return;
        };
        let store = Store::open_stepped(engine.clone() as Arc<dyn Engine>)
            .expect("the in-memory engine opens");
        let mut rebuild = Rebuild::start(&store).expect("an empty directory");
        let mut versions = Vec::new();
        export_copy(&*self.dcs[usize::from(donor)].engine, &mut |k, v| {
            if let Ok((_, version)) = decode_version_key(k) {
                versions.push(version);
            }
            rebuild
                .add(k, v)
                .map_err(|e| kv::Error::Corruption(e.to_string()))
        })
        .expect("the donor's copy is written");
        rebuild
            .finish(d, self.cfg.dcs, &facts)
            .expect("every peer's facts are there");
        drop(store);
        // Every version the donor applied is in the copy (commits without writes too:
        // they left only the donor's last-committed mark).
        let now = self.now();
        versions.extend(self.dcs[usize::from(donor)].applied_at.keys().copied());
        let dc = &mut self.dcs[usize::from(d)];
        let old = std::mem::replace(&mut dc.engine, engine);
        // An evicted DC's directory was whole: what it voted still backs acknowledgements.
        dc.wiped.get_or_insert(old);
        dc.backup = None;
        dc.applied_at = versions.into_iter().map(|v| (v, now)).collect();
        dc.published.clear();
        self.refused.remove(&d);
        self.down.remove(&d);
        if self.boot(d) {
            self.rebuilt += 1;
            self.lost_directory = None;
            // Until it has learned every attempt its lost directory took part in, those
            // attempts have one acceptor fewer: another DC out then is more than f.
            self.hold_faults();
        } else {
            self.violations.push(format!(
                "rebuild: DC {d}'s peers refused it after its rebuild"
            ));
            self.down.insert(d);
            self.refused.insert(d);
        }
    }

    /// The DC's process dies: its futures and unsynced batches are gone; its clients
    /// lose their connection (a transaction that reached its commit has an unknown
    /// outcome; one that had not is aborted).
    fn crash(&mut self, d: DcId) {
        if !self.down.insert(d) {
            return;
        }
        self.executor.kill(d);
        let dc = &mut self.dcs[usize::from(d)];
        dc.running = None;
        dc.incarnation += 1;
        dc.sync_scheduled = false;
        dc.complete = 0;
        dc.engine.crash();
        let wan = self.wan();
        for c in 0..self.clients.len() {
            if self.clients[c].dc != d {
                continue;
            }
            if let Some((i, phase)) = self.clients[c].current.take() {
                if !matches!(phase.get(), Phase::Committing(_)) {
                    self.history.borrow_mut()[i].status = Status::Aborted;
                }
            }
            self.schedule(self.now() + wan, Event::ClientNext(c));
        }
    }

    /// Fault windows are measured in units of the WAN delay or a twelfth of the
    /// recovery timeout, whichever is longer, so faults outlast the protocol's timers.
    fn fault_unit(&self) -> u64 {
        self.wan().max(self.protocol_config(0).recovery_us / 12)
    }

    fn schedule_nemesis(&mut self, deadline: u64) {
        let wan = self.wan();
        // Fault windows are measured in units of the WAN delay or a twelfth of the
        // recovery timeout, whichever is longer, so faults outlast the protocol's
        // timers at every delay: each takes one DC out (crash, isolation, deafness or
        // muteness) for 5–40 units; one in eight is a long outage of 10–30 s. At most
        // f DCs are out at once.
        let unit = self.fault_unit();
        let horizon = self.now()
            + (self.cfg.txns as u64 * 30 * wan) / self.clients.len().max(1) as u64
            + 20 * unit;
        let span = (self.now() + 10 * wan, horizon.min(deadline));
        let windows = fault_windows(&mut self.rng, self.cfg.dcs, span, unit, |rng, t| {
            let end = if rng.chance(0.125) {
                t + 10_000_000 + rng.below(20_000_000)
            } else {
                t + (5 + rng.below(36)) * unit
            };
            (end, rng.below(21))
        });
        for (t, mut end, d, kind) in windows {
            let (start, stop) = match kind {
                // Half the time the operator rebuilds the wiped DC at once, while what
                // its lost directory took part in is still undecided; otherwise the
                // node is restarted on the wrong directory, refused, then rebuilt.
                0 if self.rng.chance(0.5) => {
                    end = t + 1_000 + self.rng.below(2 * wan);
                    (Fault::Wipe(d), Fault::Rebuild(d))
                }
                0 => (Fault::Wipe(d), Fault::Restart(d)),
                1..=4 => {
                    // A quarter of the crashes outlast the eviction period (scaled down
                    // with the rest of the nemesis: the DC's own attempts may still be
                    // undecided when it is evicted).
                    if self.rng.chance(0.25) {
                        self.schedule(t + (end - t) / 2, Event::Fault(Fault::Evict(d)));
                    }
                    (Fault::Crash(d), Fault::Restart(d))
                }
                5..=8 => (Fault::Isolate(d), Fault::Heal(d)),
                9..=12 => (Fault::Deafen(d), Fault::Heal(d)),
                13..=16 => (Fault::Mute(d), Fault::Heal(d)),
                _ => (Fault::Skew(d), Fault::Unskew(d)),
            };
            self.schedule(t, Event::Fault(start));
            self.schedule(end, Event::Fault(stop));
        }
    }

    /// Progress: while a DC that is up and connected has work (a transaction in flight,
    /// or more to issue), some transaction commits in every window of the progress
    /// bound. The nemesis takes out at most f DCs at once, so a majority always is.
    fn check_progress(&mut self) {
        if self.workload_done {
            return;
        }
        let able = |d: &DcId| self.reachable(*d) && !self.skewed.contains(d);
        let busy: Vec<(usize, Phase)> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| able(&c.dc))
            .filter_map(|(i, c)| c.current.as_ref().map(|(_, p)| (i, p.get())))
            .collect();
        if busy.is_empty() && self.issued >= self.cfg.txns {
            // Nothing left to do where the network lets it be done.
            self.last_commit_at = self.now();
        }
        let bound = progress_bound(&self.protocol_config(0), self.cfg.dcs, self.wan());
        let silent = self.now() - self.last_commit_at;
        if silent > bound {
            let doing: Vec<String> = busy
                .iter()
                .map(|(c, p)| format!("client {c} at DC {}: {p:?}", self.clients[*c].dc))
                .collect();
            self.violations.push(format!(
                "progress: nothing committed for {} ms (bound {} ms) at {} s; down {:?}, \
                 isolated {:?}, deaf {:?}, mute {:?}, clock off {:?}; {}",
                silent / 1000,
                bound / 1000,
                (self.now() - self.start) / 1_000_000,
                self.down,
                self.isolated,
                self.deaf,
                self.mute,
                self.skewed,
                doing.join(", ")
            ));
            self.last_commit_at = self.now(); // one report per silent window
        }
        self.schedule(self.now() + CHECK_EVERY_US, Event::Check);
    }

    // ---- clients ----

    fn client_next(&mut self, c: usize) {
        if self.issued >= self.cfg.txns || self.clients[c].current.is_some() {
            return;
        }
        let dc = self.clients[c].dc;
        let Some(running) = &self.dcs[usize::from(dc)].running else {
            let at = self.now() + self.wan();
            self.schedule(at, Event::ClientNext(c));
            return;
        };
        let manager = running.manager.clone();
        self.issued += 1;
        let plan = self.plan(dc);
        let id = {
            let mut history = self.history.borrow_mut();
            let id = history.len();
            history.push(TxnObs {
                id: id as u64,
                status: Status::Unknown,
                begin: self.now(),
                end: None,
                ops: Vec::new(),
            });
            id
        };
        let phase = Rc::new(Cell::new(Phase::Beginning));
        self.clients[c].current = Some((id, phase.clone()));
        let (time, history, finished) = (
            self.time.clone(),
            self.history.clone(),
            self.finished.clone(),
        );
        self.executor.spawn(dc, async move {
            let (status, version, wan_delays) =
                transaction(manager, &time, plan, &history, id, &phase).await;
            finished.borrow_mut().push(Finished {
                client: c,
                status,
                version,
                wan_delays,
            });
        });
    }

    /// 1–3 distinct keys; a tenth of the transactions are fresh read-only ones, the
    /// rest read at their snapshot, read locked, or append, with 0–2 ms between
    /// statements.
    fn plan(&mut self, dc: DcId) -> Plan {
        let keys = pick_keys(&mut self.rng, &self.cfg, dc);
        let fresh = self.rng.chance(0.1);
        let statements = keys
            .into_iter()
            .map(|k| {
                let access = match (fresh, self.rng.below(4)) {
                    (true, _) | (false, 0) => Access::Snapshot,
                    (false, 1) => Access::Locked,
                    _ => {
                        self.next_value += 1;
                        Access::Append(self.next_value)
                    }
                };
                (k, access, self.rng.below(2_000))
            })
            .collect();
        Plan { fresh, statements }
    }

    fn client_done(&mut self, f: Finished) {
        let Some((i, phase)) = self.clients[f.client].current.take() else {
            return;
        };
        let now = self.now();
        {
            let mut history = self.history.borrow_mut();
            history[i].status = f.status;
            history[i].end = Some(now);
        }
        if f.status == Status::Committed {
            self.last_commit_at = now;
            let latency = match phase.get() {
                Phase::Committing(at) => now - at,
                _ => 0,
            };
            if let Some(delays) = f.wan_delays {
                self.commits.push((delays, latency));
            }
            if (0..self.cfg.dcs as DcId).any(|d| !self.reachable(d) || self.skewed.contains(&d)) {
                self.committed_during_faults += 1;
            }
            if let Some(version) = f.version {
                self.check_durable(self.clients[f.client].dc, version);
            }
        }
        let at = now + self.rng.below(2_000);
        self.schedule(at, Event::ClientNext(f.client));
    }

    /// At the moment of an acknowledgement, the commit's outcome was synced somewhere and
    /// a quorum of DCs durably backs it: they voted COMMIT and hold its record (or
    /// retired it) — on their disk, or on the disk a wipe replaced (that loss is the
    /// fault, not the protocol's).
    fn check_durable(&mut self, origin: DcId, version: Version) {
        let disks = |d: &Dc| {
            d.wiped
                .iter()
                .chain([&d.engine])
                .cloned()
                .collect::<Vec<_>>()
        };
        let durable: Vec<Vec<DurableState>> = self
            .dcs
            .iter()
            .map(|d| {
                disks(d)
                    .iter()
                    .map(|e| DurableState::Meridian(load(e)))
                    .collect()
            })
            .collect();
        let Some(&key) = self.committed_by_version.get(&version) else {
            self.violations.push(format!(
                "durability: DC {origin} acknowledged version {version} with no durable outcome"
            ));
            return;
        };
        let voters = durable
            .iter()
            .filter(|disks| disks.iter().any(|d| d.backs_commit(key, origin)))
            .count();
        if voters < quorum(self.cfg.dcs) {
            self.violations.push(format!(
                "durability: {key:?} acknowledged with {voters} durable COMMIT votes"
            ));
        }
    }

    /// Every committed transaction at or below a published complete point was applied
    /// at that DC by then (docs/protocol.md §7.6).
    fn check_complete_points(&mut self, durable: &[DurableState]) {
        let mut committed: Vec<Version> = durable
            .iter()
            .flat_map(|d| d.outcomes().into_iter().filter_map(|(_, v)| v))
            .chain(self.decided.values().filter_map(|(_, v)| *v))
            .collect();
        committed.sort_unstable();
        committed.dedup();
        for (dc, d) in self.dcs.iter().enumerate() {
            let mut applied_by = Vec::with_capacity(committed.len());
            let mut latest = 0;
            for v in &committed {
                latest = latest.max(d.applied_at.get(v).copied().unwrap_or(u64::MAX));
                applied_by.push(latest);
            }
            for &(at, complete) in &d.published {
                let n = committed.partition_point(|v| *v <= complete);
                if n > 0 && applied_by[n - 1] > at {
                    let missing = committed[..n]
                        .iter()
                        .find(|v| d.applied_at.get(v).is_none_or(|t| *t > at));
                    self.violations.push(format!(
                        "complete point: DC {dc} published {complete} at {at} before \
                         applying committed version {missing:?}"
                    ));
                    break;
                }
            }
        }
    }

    fn finish(mut self) -> RunResult {
        let unanswered = self.clients.iter().filter(|c| c.current.is_some()).count();
        // A DC still refused (never rebuilt): its disk is not the cluster's any more.
        let kept: Vec<&Dc> = self
            .dcs
            .iter()
            .enumerate()
            .filter(|(d, _)| !self.refused.contains(&(*d as DcId)))
            .map(|(_, dc)| dc)
            .collect();
        let final_lists = kept
            .iter()
            .map(|d| {
                let store = MvccStore::new(d.engine.clone() as Arc<dyn Engine>);
                (0..self.cfg.keys)
                    .filter_map(|k| {
                        let c = store.latest(&user_key(k)).expect("in-memory read")?;
                        Some((k, decode_list(c.value.as_deref().unwrap_or(&[]))))
                    })
                    .collect()
            })
            .collect();
        let durable: Vec<DurableState> = kept
            .iter()
            .map(|d| DurableState::Meridian(load(&d.engine)))
            .collect();
        self.check_complete_points(&durable);
        // Stop every process before the history is handed out.
        for d in 0..self.cfg.dcs as DcId {
            self.executor.kill(d);
        }
        let history = std::mem::take(&mut *self.history.borrow_mut());
        RunResult {
            history,
            commits: self.commits,
            final_lists,
            durable,
            unanswered,
            violations: self.violations,
            committed_during_faults: self.committed_during_faults,
            rebuilt: self.rebuilt,
            evicted: self.evicted,
        }
    }
}

/// A DC's driver loop: each turn takes every input already queued.
async fn driver_loop(
    task: DriverTask,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    directories: Rc<RefCell<Vec<u32>>>,
) {
    while let Some(first) = inputs.next().await {
        let mut envelopes = Vec::new();
        let mut ticked = false;
        let mut input = Some(first);
        while let Some(i) = input {
            match i {
                // Queued before its sender's directory was replaced: dropped, as the
                // node drops what its transport took from a replaced directory.
                Input::Envelope(env, tag) => {
                    if directories.borrow()[usize::from(env.from)] == tag {
                        envelopes.push(env);
                    }
                }
                Input::Tick => ticked = true,
            }
            input = inputs.try_recv().ok();
        }
        if task.turn(envelopes, ticked, None).await.is_err() {
            return;
        }
    }
}

/// Runs one planned transaction through the manager, recording what it observes.
/// Returns its status, and for a committed write its version and WAN delays.
async fn transaction(
    manager: Arc<TxnManager>,
    time: &Arc<SimTime>,
    plan: Plan,
    history: &RefCell<Vec<TxnObs>>,
    id: usize,
    phase: &Cell<Phase>,
) -> (Status, Option<Version>, Option<u32>) {
    let txn = if plan.fresh {
        match manager.begin_fresh().await {
            Ok(txn) => txn,
            Err(_) => return (Status::Aborted, None, None),
        }
    } else {
        manager.begin()
    };
    phase.set(Phase::Statements);
    for (k, access, think_us) in plan.statements {
        time.sleep(think_us).await;
        let key = user_key(k);
        let read = match access {
            Access::Snapshot => txn.get(&key),
            Access::Locked | Access::Append(_) => txn.get_for_update(&key).await,
        };
        let Ok(read) = read else {
            return (Status::Aborted, None, None);
        };
        let list = read.as_deref().map(decode_list).unwrap_or_default();
        let mut ops = vec![Op::Read {
            key: k,
            list: list.clone(),
        }];
        if let Access::Append(value) = access {
            let mut new = list;
            new.push(value);
            if txn.put(&key, Some(encode_list(&new))).await.is_err() {
                return (Status::Aborted, None, None);
            }
            ops.push(Op::Append { key: k, value });
        }
        history.borrow_mut()[id].ops.extend(ops);
    }
    phase.set(Phase::Committing(time.now()));
    match txn.commit().await {
        Ok(version) => (
            Status::Committed,
            version,
            txn.commit_trace().map(|t| t.wan_delays),
        ),
        Err(txn::Error::OutcomeUnknown | txn::Error::Storage(_)) => (Status::Unknown, None, None),
        Err(_) => (Status::Aborted, None, None),
    }
}

fn load(engine: &MemoryEngine) -> replication::Durable {
    txn::driver::load(engine).expect("the simulation's protocol state decodes")
}

/// Time after the heal within which every attempt must be decided everywhere: the
/// recovery bound of docs/protocol.md §6.4 with room for retries.
fn settle_time(c: &replication::Config, dcs: usize, wan: u64) -> u64 {
    4 * (c.recovery_us + dcs as u64 * c.stagger_us + 8 * wan + c.retransmit_us)
}

/// The longest a healthy majority may go without a commit: the settling bound (a
/// recovery round — timeout, staggered starts, prepare and accept — with room for
/// retries).
fn progress_bound(c: &replication::Config, dcs: usize, wan: u64) -> u64 {
    settle_time(c, dcs, wan)
}
