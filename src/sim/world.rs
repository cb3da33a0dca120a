//! One simulated run of the 2PC baseline (Meridian runs on the production stack in
//! [`super::cluster`]): D data centers, each a model [`Node`] over its own in-memory
//! `kv` store, a seeded network and nemesis, and closed-loop clients whose transactions
//! execute instantly at commit (list-append). Everything happens in simulated time from
//! one event queue, so a seed replays exactly. Also home of what both worlds share: the
//! run's configuration and result, the seeded generator, the key and list encodings.
//!
//! Durability model: a participant step that changed durable state is *released* one
//! sync latency later (group commit): only then do its messages leave, its writes reach
//! the store and its client replies go out, and its durable state becomes what a crash
//! restarts from. A crash before the release loses the step entirely, as a lost
//! unsynced batch would.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use kv::{Engine, MemoryEngine, MvccStore};
use replication::{quorum, DcId, LearnRule};
use replication::{ClientResult, ReadEntry, ReadSpan, Reply};

use super::node::{DurableState, Node, Protocol, Step, Wire};
use crate::elle::{Op, Status, TxnObs};

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub dcs: usize,
    pub seed: u64,
    pub wan_delay_us: u64,
    pub faults: bool,
    pub keys: u64,
    pub txns: usize,
    pub clients_per_dc: usize,
    pub learn: LearnRule,
    pub protocol: Protocol,
    /// Clients touch only keys `k` with `k mod D` = their DC: the keys whose 2PC shard
    /// leader is local (the baseline's best case; Meridian has no leaders).
    pub local_placement: bool,
    /// Each DC's clock runs ahead of true time by a seeded offset in `0..=clock_skew_us`;
    /// commit wait (docs/protocol.md §5.6) uses it as its bound ε.
    pub clock_skew_us: u64,
}

/// What a run observed.
pub struct RunResult {
    pub history: Vec<TxnObs>,
    /// WAN delays and latency (µs) of each acknowledged commit.
    pub commits: Vec<(u32, u64)>,
    /// Final list of every key at every DC.
    pub final_lists: Vec<BTreeMap<u64, Vec<u64>>>,
    pub durable: Vec<DurableState>,
    /// Clients still waiting for an answer from a live DC after the heal.
    pub unanswered: usize,
    /// Invariants checked while running (durable COMMIT votes behind every ack).
    pub violations: Vec<String>,
    /// Commits acknowledged while some DC was down or cut off.
    pub committed_during_faults: usize,
    /// DCs rebuilt from a peer after their directory was lost.
    pub rebuilt: usize,
    /// DCs evicted by their peers (out of contact past the eviction period).
    pub evicted: usize,
}

/// splitmix64: a small, seedable, portable generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / ((1u64 << 53) as f64) < p
    }
}

enum Event {
    Deliver(Wire),
    Release {
        dc: DcId,
        incarnation: u32,
        durable: Option<Box<DurableState>>,
        out: Step,
    },
    Tick(DcId),
    ClientNext(usize),
    Crash(DcId),
    Restart(DcId),
    Isolate(DcId),
    Heal(DcId),
}

struct Dc {
    participant: Option<Node>,
    /// What a crash restarts from: the durable state of the last released step.
    synced: DurableState,
    incarnation: u32,
    /// When the DC's last pending step is released.
    release_at: u64,
    store: MvccStore,
    engine: Arc<MemoryEngine>,
}

struct Client {
    dc: DcId,
    /// Index into the history of the transaction awaiting its answer.
    current: Option<usize>,
    commit_at: u64,
    /// The shard of the current transaction's first key (the 2PC coordinator).
    coordinator: DcId,
}

pub struct World {
    cfg: RunConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    dcs: Vec<Dc>,
    isolated: BTreeSet<DcId>,
    down: BTreeSet<DcId>,
    /// Per DC: how far its clock runs ahead of the simulation's true time.
    offsets: Vec<u64>,
    clients: Vec<Client>,
    history: Vec<TxnObs>,
    commits: Vec<(u32, u64)>,
    violations: Vec<String>,
    committed_during_faults: usize,
    issued: usize,
    next_value: u64,
    tick_us: u64,
    sync_us: u64,
    loss: f64,
    duplication: f64,
}

impl World {
    pub fn new(cfg: RunConfig) -> World {
        let wan = cfg.wan_delay_us.max(1_000);
        let dcs = (0..cfg.dcs as DcId)
            .map(|d| {
                let engine = Arc::new(MemoryEngine::new());
                let node = Node::start(&cfg, d, None, 0).0;
                Dc {
                    synced: node.durable(),
                    participant: Some(node),
                    incarnation: 0,
                    release_at: 0,
                    store: MvccStore::new(engine.clone() as Arc<dyn Engine>),
                    engine,
                }
            })
            .collect();
        let clients = (0..cfg.dcs * cfg.clients_per_dc)
            .map(|i| Client {
                dc: (i % cfg.dcs) as DcId,
                current: None,
                commit_at: 0,
                coordinator: 0,
            })
            .collect();
        let (loss, duplication) = if cfg.faults { (0.02, 0.02) } else { (0.0, 0.0) };
        let mut rng = Rng::new(cfg.seed);
        let offsets = (0..cfg.dcs)
            .map(|_| rng.below(cfg.clock_skew_us + 1))
            .collect();
        World {
            rng,
            offsets,
            cfg,
            now: 1_000_000_000,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            dcs,
            isolated: BTreeSet::new(),
            down: BTreeSet::new(),
            clients,
            history: Vec::new(),
            commits: Vec::new(),
            violations: Vec::new(),
            committed_during_faults: 0,
            issued: 0,
            next_value: 1,
            tick_us: (wan / 5).max(1_000),
            sync_us: 1_000,
            loss,
            duplication,
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    /// Runs the workload (with the nemesis if asked), heals everything, lets the
    /// protocol settle, and returns what was observed.
    pub fn run(mut self) -> RunResult {
        for d in 0..self.cfg.dcs as DcId {
            let at = self.now + self.rng.below(self.tick_us);
            self.schedule(at, Event::Tick(d));
        }
        for c in 0..self.clients.len() {
            let at = self.now + self.rng.below(5_000);
            self.schedule(at, Event::ClientNext(c));
        }
        let wan = self.cfg.wan_delay_us.max(1_000);
        // Generous upper bound on the workload phase; the run stops earlier once every
        // transaction is issued and answered.
        let deadline = self.now + (self.cfg.txns as u64 + 10) * 40 * wan + 60_000_000;
        if self.cfg.faults {
            self.schedule_nemesis(deadline);
        }
        while self.now < deadline {
            if self.issued >= self.cfg.txns && self.clients.iter().all(|c| c.current.is_none()) {
                break;
            }
            if !self.step() {
                break;
            }
        }
        // Heal: everything back up and connected, no more loss; then let the protocol
        // finish every attempt within its recovery bound (docs/protocol.md §6.4).
        self.loss = 0.0;
        self.duplication = 0.0;
        // Faults scheduled past the workload would strike during the settling phase,
        // whose checks assume every DC is up and connected: they are cancelled.
        self.events.retain(|_, e| {
            !matches!(
                e,
                Event::Crash(_) | Event::Restart(_) | Event::Isolate(_) | Event::Heal(_)
            )
        });
        for d in 0..self.cfg.dcs as DcId {
            self.isolated.remove(&d);
            if self.down.contains(&d) {
                self.restart(d);
            }
        }
        let settle = self.now + settle_time(&self.cfg);
        while self.now < settle && self.step() {}
        self.finish()
    }

    /// Processes the next event; false when none is left.
    fn step(&mut self) -> bool {
        let Some(Reverse((at, seq))) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        let Some(event) = self.events.remove(&seq) else {
            return true;
        };
        match event {
            Event::Deliver(env) => self.deliver(env),
            Event::Release {
                dc,
                incarnation,
                durable,
                out,
            } => self.release(dc, incarnation, durable, out),
            Event::Tick(d) => {
                if let Some(p) = self.dcs[usize::from(d)].participant.as_mut() {
                    let out = p.tick(self.now + self.offsets[usize::from(d)]);
                    self.absorb(d, out);
                }
                let at = self.now + self.tick_us;
                self.schedule(at, Event::Tick(d));
            }
            Event::ClientNext(c) => self.client_next(c),
            Event::Crash(d) => self.crash(d),
            Event::Restart(d) => self.restart(d),
            Event::Isolate(d) => {
                self.isolated.insert(d);
            }
            Event::Heal(d) => {
                self.isolated.remove(&d);
            }
        }
        true
    }

    fn deliver(&mut self, env: Wire) {
        if self.isolated.contains(&env.from) || self.isolated.contains(&env.to) {
            return;
        }
        let to = env.to;
        if let Some(p) = self.dcs[usize::from(to)].participant.as_mut() {
            let out = p.receive(self.now + self.offsets[usize::from(to)], env);
            self.absorb(to, out);
        }
    }

    /// Holds a step's effects until its durable state, and that of every earlier step
    /// of the DC, is synced: outputs are released in order.
    fn absorb(&mut self, dc: DcId, out: Step) {
        let now = self.now;
        let sync = self.sync_us;
        let d = &mut self.dcs[usize::from(dc)];
        let incarnation = d.incarnation;
        let durable = if out.durable_changed {
            d.release_at = d.release_at.max(now + sync);
            d.participant.as_ref().map(|p| Box::new(p.durable()))
        } else {
            None
        };
        if d.release_at <= now {
            self.release(dc, incarnation, durable, out);
        } else {
            let at = d.release_at;
            self.schedule(
                at,
                Event::Release {
                    dc,
                    incarnation,
                    durable,
                    out,
                },
            );
        }
    }

    fn release(
        &mut self,
        dc: DcId,
        incarnation: u32,
        durable: Option<Box<DurableState>>,
        out: Step,
    ) {
        let d = &mut self.dcs[usize::from(dc)];
        if d.incarnation != incarnation {
            return; // crashed before the sync: the step never happened
        }
        if let Some(durable) = durable {
            d.synced = *durable;
        }
        let d = &mut self.dcs[usize::from(dc)];
        for (version, writes) in &out.apply {
            let batch = d.store.batch_for(*version, writes);
            d.engine
                .write(&batch, true)
                .expect("the in-memory engine does not fail");
        }
        for env in out.send {
            self.send(env);
        }
        for reply in out.replies {
            self.client_reply(reply);
        }
    }

    fn send(&mut self, env: Wire) {
        let network = (self.loss, self.duplication, self.cfg.wan_delay_us);
        for at in deliveries(&mut self.rng, network, self.now) {
            self.schedule(at, Event::Deliver(env.clone()));
        }
    }

    fn crash(&mut self, d: DcId) {
        let dc = &mut self.dcs[usize::from(d)];
        dc.participant = None;
        dc.incarnation += 1;
        dc.release_at = 0;
        self.down.insert(d);
        // Clients connected there lose their connection: outcome unknown. They
        // reconnect once the DC is back.
        let wan = self.cfg.wan_delay_us.max(1_000);
        let lost: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].dc == d)
            .collect();
        for c in lost {
            self.clients[c].current = None;
            self.schedule(self.now + wan, Event::ClientNext(c));
        }
    }

    fn restart(&mut self, d: DcId) {
        if !self.down.remove(&d) {
            return;
        }
        let durable = self.dcs[usize::from(d)].synced.clone();
        let clock = self.now + self.offsets[usize::from(d)];
        let (p, out) = Node::start(&self.cfg, d, Some(durable), clock);
        self.dcs[usize::from(d)].participant = Some(p);
        self.absorb(d, out);
    }

    fn schedule_nemesis(&mut self, deadline: u64) {
        let wan = self.cfg.wan_delay_us.max(1_000);
        // Fault windows: each takes one DC out (crash or isolation) for 5–40 WAN delays.
        let horizon = self.now
            + (self.cfg.txns as u64 * 30 * wan) / self.clients.len().max(1) as u64
            + 20 * wan;
        let span = (self.now + 10 * wan, horizon.min(deadline));
        let windows = fault_windows(&mut self.rng, self.cfg.dcs, span, wan, |rng, t| {
            (t + (5 + rng.below(36)) * wan, rng.chance(0.5))
        });
        for (t, end, d, crash) in windows {
            if crash {
                self.schedule(t, Event::Crash(d));
                self.schedule(end, Event::Restart(d));
            } else {
                self.schedule(t, Event::Isolate(d));
                self.schedule(end, Event::Heal(d));
            }
        }
    }

    // ---- clients ----

    fn client_next(&mut self, c: usize) {
        if self.issued >= self.cfg.txns || self.clients[c].current.is_some() {
            return;
        }
        let dc = self.clients[c].dc;
        if self.down.contains(&dc) {
            let at = self.now + self.cfg.wan_delay_us.max(1_000);
            self.schedule(at, Event::ClientNext(c));
            return;
        }
        self.issued += 1;
        let keys = pick_keys(&mut self.rng, &self.cfg, dc);
        let store = self.dcs[usize::from(dc)].store.clone();
        let mut ops = Vec::new();
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        for k in keys {
            let key = user_key(k);
            let append = self.rng.chance(0.5);
            let read = store.latest(&key).expect("in-memory read");
            let lo = read.as_ref().map_or(0, |c| c.version);
            let list =
                read.map_or_else(Vec::new, |c| decode_list(c.value.as_deref().unwrap_or(&[])));
            reads.push(ReadEntry {
                span: ReadSpan::point(&key),
                lo,
            });
            if append {
                let value = self.next_value;
                self.next_value += 1;
                let mut new = list.clone();
                new.push(value);
                ops.push(Op::Read { key: k, list });
                ops.push(Op::Append { key: k, value });
                writes.push((key, Some(encode_list(&new))));
            } else {
                ops.push(Op::Read { key: k, list });
            }
        }
        let id = self.history.len() as u64;
        self.history.push(TxnObs {
            id,
            status: Status::Unknown,
            begin: self.now,
            end: None,
            ops,
        });
        let client = &mut self.clients[c];
        client.current = Some(id as usize);
        client.commit_at = self.now;
        client.coordinator = reads.first().map_or(0, |r: &ReadEntry| {
            super::twopc::shard_of(&r.span.start, self.cfg.dcs)
        });
        let now = self.now + self.offsets[usize::from(dc)];
        let p = self.dcs[usize::from(dc)]
            .participant
            .as_mut()
            .expect("checked up above");
        let out = p.commit(now, c as u64, reads, writes);
        self.absorb(dc, out);
    }

    fn client_reply(&mut self, reply: Reply) {
        let c = reply.client as usize;
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        let Some(i) = client.current.take() else {
            return;
        };
        let latency = self.now - client.commit_at;
        let obs = &mut self.history[i];
        obs.end = Some(self.now);
        obs.status = match reply.result {
            ClientResult::Committed {
                wan_delays, key, ..
            } => {
                self.commits.push((wan_delays, latency));
                if !self.down.is_empty() || !self.isolated.is_empty() {
                    self.committed_during_faults += 1;
                }
                // Validity and durability at the moment of the ack: a majority of DCs
                // durably back it (Meridian: voted COMMIT and hold the record; 2PC:
                // hold the coordinator's decision entry).
                let coordinator = self.clients[c].coordinator;
                let voters = self
                    .dcs
                    .iter()
                    .filter(|d| d.synced.backs_commit(key, coordinator))
                    .count();
                if voters < quorum(self.cfg.dcs) {
                    self.violations.push(format!(
                        "durability: {key:?} acknowledged with {voters} durable COMMIT votes"
                    ));
                }
                Status::Committed
            }
            ClientResult::Aborted { .. } => Status::Aborted,
        };
        let at = self.now + self.rng.below(2_000);
        self.schedule(at, Event::ClientNext(c));
    }

    fn finish(self) -> RunResult {
        let unanswered = self.clients.iter().filter(|c| c.current.is_some()).count();
        let final_lists = self
            .dcs
            .iter()
            .map(|d| {
                (0..self.cfg.keys)
                    .filter_map(|k| {
                        let c = d.store.latest(&user_key(k)).expect("in-memory read")?;
                        Some((k, decode_list(c.value.as_deref().unwrap_or(&[]))))
                    })
                    .collect()
            })
            .collect();
        let durable = self
            .dcs
            .iter()
            .map(|d| match &d.participant {
                Some(p) => p.durable().clone(),
                None => d.synced.clone(),
            })
            .collect::<Vec<_>>();
        RunResult {
            history: self.history,
            commits: self.commits,
            final_lists,
            durable,
            unanswered,
            violations: self.violations,
            committed_during_faults: self.committed_during_faults,
            rebuilt: 0,
            evicted: 0,
        }
    }
}

/// Time after the heal within which every transaction must be decided everywhere: the
/// baseline's retransmission and leader timeouts with room for retries.
fn settle_time(cfg: &RunConfig) -> u64 {
    let wan = cfg.wan_delay_us.max(1_000);
    4 * ((20 + 6 * cfg.dcs as u64) * wan + 8 * wan)
}

/// A nemesis's fault windows from `span.0` until `span.1`: every 2–21 `unit`s a window
/// on a random DC not already out, while fewer than f = (D − 1)/2 are out; `window`
/// draws each window's end and kind from its start. Returns (start, end, DC, kind).
pub fn fault_windows<K>(
    rng: &mut Rng,
    dcs: usize,
    (from, until): (u64, u64),
    unit: u64,
    mut window: impl FnMut(&mut Rng, u64) -> (u64, K),
) -> Vec<(u64, u64, DcId, K)> {
    let f = (dcs - 1) / 2;
    let mut t = from;
    let mut busy: Vec<(u64, DcId)> = Vec::new();
    let mut windows = Vec::new();
    while t < until {
        busy.retain(|(end, _)| *end > t);
        if busy.len() < f {
            let d = rng.below(dcs as u64) as DcId;
            if !busy.iter().any(|(_, b)| *b == d) {
                let (end, kind) = window(rng, t);
                windows.push((t, end, d, kind));
                busy.push((end, d));
            }
        }
        t += (2 + rng.below(20)) * unit;
    }
    windows
}

/// When a message sent at `now` arrives over a network of (loss rate, duplication rate,
/// one-way delay µs, 10% jitter): never, once, or twice.
pub fn deliveries(rng: &mut Rng, (loss, duplication, wan): (f64, f64, u64), now: u64) -> Vec<u64> {
    if rng.chance(loss) {
        return Vec::new();
    }
    let copies = if rng.chance(duplication) { 2 } else { 1 };
    (0..copies)
        .map(|_| now + wan + rng.below(wan / 10 + 1))
        .collect()
}

/// A transaction's 1–3 distinct keys; with local placement only keys k with k mod D =
/// the client's DC.
pub fn pick_keys(rng: &mut Rng, cfg: &RunConfig, dc: DcId) -> Vec<u64> {
    let count = 1 + rng.below(3) as usize;
    let (stride, first) = if cfg.local_placement {
        (cfg.dcs as u64, u64::from(dc))
    } else {
        (1, 0)
    };
    let choices = (cfg.keys - first).div_ceil(stride);
    let mut keys: Vec<u64> = Vec::new();
    while keys.len() < count.min(choices as usize) {
        let k = first + stride * rng.below(choices);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

pub fn user_key(k: u64) -> Vec<u8> {
    let mut key = b"k".to_vec();
    key.extend_from_slice(&k.to_be_bytes());
    key
}

pub fn encode_list(list: &[u64]) -> Vec<u8> {
    list.iter().flat_map(|v| v.to_be_bytes()).collect()
}

pub fn decode_list(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("chunks of 8")))
        .collect()
}
