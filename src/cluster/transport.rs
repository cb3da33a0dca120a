//! Messages between data centers: gRPC (tonic, `proto/peer.proto`) carrying
//! postcard-encoded protocol envelopes, with the WAN emulated at the sender.
//!
//! ```text
//!   driver ──send(env)──▶ Outbox ──(WAN delay, loss, cut)──▶ per-peer task ──Deliver──▶
//!   peer's PeerService ──checks cluster, sender, decodes──▶ that node's driver inbox
//! ```
//!
//! Nothing here is reliable and nothing needs to be: the commit protocol retransmits
//! what it still needs, tolerates loss, duplication and reordering, and only releases a
//! message once its state is synced. A peer that is down, slow or speaking garbage costs
//! dropped batches and a log line, never a stuck sender (RPCs have timeouts, each peer
//! has its own task). Before a node sends to a peer it checks with `Hello` that the peer
//! belongs to the same cluster and is the DC it is supposed to be.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replication::DcId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use replication::Envelope;
use tonic::{Request, Response, Status};
use txn::Transport;

use super::identity::{Claim, Identity};
use super::status::PeerHealth;
use super::tls::{endpoint, PeerTls};
use super::topology::{DcSpec, Link, Topology};
use super::wan::{EmulatedClock, Wan};

pub mod proto {
    tonic::include_proto!("meridian.peer");
}

use proto::peer_client::PeerClient;
use proto::peer_server::{Peer, PeerServer};
use proto::{
    Ack, Batch, HelloReply, HelloRequest, Probe, TopologyReply, TopologyRequest, WanReply,
    WanRequest,
};

/// Largest gRPC message accepted: a batch can carry a transaction's whole write set.
pub const MESSAGE_BYTES_MAX: usize = 512 << 20;
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The receiving side: hands decoded envelopes addressed to this DC to its driver.
pub struct PeerService {
    cluster: String,
    me: DcId,
    dcs: usize,
    /// The driver's inbox (bounded: a delivery waits while it is full).
    inbox: mpsc::Sender<Envelope>,
    wan: Arc<Wan>,
    health: Arc<PeerHealth>,
    /// Answers probes (and takes their answers) through the same delay queues.
    outbox: Arc<Outbox>,
    /// This directory's incarnation, and the peers' this node knows.
    identity: Arc<Identity>,
    /// The cluster file, for joining nodes.
    topology: String,
    /// This node's protocol driver, for peers being rebuilt (None: not served).
    driver: Option<txn::DriverHandle>,
}

impl PeerService {
    pub fn server(
        topology: &Topology,
        me: DcId,
        inbox: mpsc::Sender<Envelope>,
        health: Arc<PeerHealth>,
        outbox: Arc<Outbox>,
        identity: Arc<Identity>,
        driver: txn::DriverHandle,
    ) -> PeerServer<PeerService> {
        let wan = health.wan().clone();
        PeerServer::new(PeerService {
            cluster: topology.cluster.clone(),
            me,
            dcs: topology.dcs.len(),
            inbox,
            wan,
            health,
            outbox,
            identity,
            topology: topology.to_toml(),
            driver: Some(driver),
        })
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
    }

    fn check_sender(&self, cluster: &str, from: u32) -> Result<DcId, Status> {
        if cluster != self.cluster {
            return Err(Status::permission_denied(format!(
                "this node belongs to cluster '{}', not '{cluster}'",
                self.cluster
            )));
        }
        match DcId::try_from(from) {
            Ok(dc) if usize::from(dc) < self.dcs && dc != self.me => Ok(dc),
            _ => Err(Status::invalid_argument(format!(
                "no DC {from} can send to DC {} of a {}-DC cluster",
                self.me, self.dcs
            ))),
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    type RejoinStream = super::rejoin::ChunkStream;

    async fn rejoin(
        &self,
        request: Request<proto::RejoinRequest>,
    ) -> Result<Response<Self::RejoinStream>, Status> {
        let r = request.into_inner();
        let hello = r.hello.unwrap_or_default();
        let from = self.check_sender(&hello.cluster, hello.from)?;
        // A DC being rebuilt is not silent, and is not evicted while it is recorded.
        self.health.rejoining(from);
        let _membership = self.health.membership.lock().await;
        super::rejoin::serve(from, &hello, r.copy, &self.identity, self.driver.as_ref()).await
    }

    async fn silence(
        &self,
        request: Request<proto::SilenceRequest>,
    ) -> Result<Response<proto::SilenceReply>, Status> {
        let r = request.into_inner();
        self.check_sender(&r.cluster, r.from)?;
        let dc = DcId::try_from(r.dc)
            .ok()
            .filter(|d| usize::from(*d) < self.dcs)
            .ok_or_else(|| Status::invalid_argument(format!("no DC {}", r.dc)))?;
        // A node out of contact with a majority cannot tell who is out: it abstains
        // (answers 0), as it would not evict anyone itself.
        let silent = if self.health.in_contact_with_majority() {
            self.health.silent_for(dc)
        } else {
            Duration::ZERO
        };
        Ok(Response::new(proto::SilenceReply {
            silent_ms: silent.as_millis() as u64,
        }))
    }

    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let r = request.into_inner();
        let from = self.check_sender(&r.cluster, r.from)?;
        let claim = Claim {
            incarnation: r.incarnation,
            generation: r.generation,
            run: r.run,
        };
        self.identity
            .check_peer(from, claim)
            .map_err(Status::permission_denied)?;
        let mine = self.identity.claim();
        Ok(Response::new(HelloReply {
            cluster: self.cluster.clone(),
            dc: u32::from(self.me),
            incarnation: mine.incarnation,
            generation: mine.generation,
            run: mine.run,
        }))
    }

    async fn deliver(&self, request: Request<Batch>) -> Result<Response<Ack>, Status> {
        let batch = request.into_inner();
        let from = self.check_sender(&batch.cluster, batch.from)?;
        if batch.to_incarnation != 0 && batch.to_incarnation != self.identity.incarnation {
            return Err(Status::permission_denied(format!(
                "the batch is for an earlier data directory of DC {} (incarnation {:x})",
                self.me, batch.to_incarnation
            )));
        }
        let known = self.identity.known(from);
        if self
            .identity
            .is_evicted_directory(from, batch.from_incarnation)
        {
            return Err(Status::permission_denied(super::identity::evicted_refusal(
                from,
            )));
        }
        if batch.from_incarnation != 0 && known != 0 && batch.from_incarnation != known {
            return Err(Status::permission_denied(format!(
                "the batch is from a replaced data directory of DC {from} (incarnation {:x}; \
                 this node knows {known:x})",
                batch.from_incarnation
            )));
        }
        // Decode the whole batch first: a garbled one is refused entirely.
        let mut envelopes = Vec::with_capacity(batch.envelopes.len());
        for bytes in &batch.envelopes {
            let env: Envelope = postcard::from_bytes(bytes)
                .map_err(|e| Status::invalid_argument(format!("undecodable message: {e}")))?;
            if env.from != from || env.to != self.me {
                return Err(Status::invalid_argument(format!(
                    "message from DC {} to DC {} in a batch from DC {from} to DC {}",
                    env.from, env.to, self.me
                )));
            }
            envelopes.push(env);
        }
        self.health.heard(from);
        for probe in batch.probes {
            self.outbox.on_probe(from, probe);
        }
        for env in envelopes {
            // Back-pressure: a driver that falls behind slows its peers' deliveries
            // (each peer has its own sending task) instead of growing this queue.
            if self.inbox.send(env).await.is_err() {
                return Err(Status::unavailable("the node is stopping"));
            }
        }
        Ok(Response::new(Ack {}))
    }

    async fn get_topology(
        &self,
        _request: Request<TopologyRequest>,
    ) -> Result<Response<TopologyReply>, Status> {
        Ok(Response::new(TopologyReply {
            toml: self.topology.clone(),
        }))
    }

    async fn set_wan(&self, request: Request<WanRequest>) -> Result<Response<WanReply>, Status> {
        let r = request.into_inner();
        if r.cluster != self.cluster {
            return Err(Status::permission_denied(format!(
                "this node belongs to cluster '{}', not '{}'",
                self.cluster, r.cluster
            )));
        }
        let dc = |id: u32| match DcId::try_from(id) {
            Ok(dc) if usize::from(dc) < self.dcs => Ok(dc),
            _ => Err(Status::invalid_argument(format!(
                "no DC {id} in a {}-DC cluster",
                self.dcs
            ))),
        };
        if r.set_link {
            if !(0.0..=1.0).contains(&r.loss) {
                return Err(Status::invalid_argument("loss must be between 0 and 1"));
            }
            let between = if r.pair {
                Some((dc(r.a)?, dc(r.b)?))
            } else {
                None
            };
            let link = Link {
                delay_ms: r.delay_ms,
                jitter_ms: r.jitter_ms,
                loss: r.loss,
            };
            self.wan.set_link(between, link);
        }
        if r.set_cut {
            if r.cut && r.deaf {
                self.wan.set_deaf(dc(r.dc)?);
            } else {
                self.wan.set_cut(dc(r.dc)?, r.cut);
            }
        }
        if r.set_clock && dc(r.clock_dc)? == self.me {
            self.wan
                .set_clock_offset_us(r.clock_offset_ms.saturating_mul(1_000));
        }
        let mut settings = self.wan.view().describe();
        let offset = self.wan.clock_offset_us();
        if offset != 0 {
            settings.push_str(&format!("; clock {:+} ms", offset / 1_000));
        }
        tracing::info!(%settings, "WAN emulation changed");
        Ok(Response::new(WanReply { settings }))
    }
}

/// Asks the node at `addr` (a member's peer address) for its cluster file.
pub async fn fetch_topology(addr: SocketAddr) -> anyhow::Result<Topology> {
    let endpoint = endpoint(addr, "", None, RPC_TIMEOUT)?;
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach a member at {addr}"))?;
    let reply = PeerClient::new(channel)
        .get_topology(TopologyRequest {})
        .await
        .with_context(|| format!("the member at {addr} did not send its cluster file"))?;
    let toml = reply.into_inner().toml;
    let topology = Topology::parse(&toml)
        .with_context(|| format!("the member at {addr} sent an invalid cluster file"))?;
    if topology.tls.is_some() {
        anyhow::bail!(
            "cluster '{}' uses TLS: start this node with --cluster FILE, with its \
             certificates on this host",
            topology.cluster
        );
    }
    Ok(topology)
}

/// Sends a WAN change to the node of DC `dc`; returns its settings afterwards.
pub async fn set_wan(
    dc: &DcSpec,
    tls: Option<&PeerTls>,
    request: WanRequest,
) -> anyhow::Result<String> {
    let endpoint = endpoint(dc.peer, &dc.name, tls, RPC_TIMEOUT)?;
    let mut client = PeerClient::new(endpoint.connect().await?);
    let reply = client.set_wan(request).await?;
    Ok(reply.into_inner().settings)
}

/// Encoded messages waiting for one peer (in the delay queue or in RPCs in flight) at
/// most; beyond it new messages to that peer are dropped (the protocol retransmits what
/// it still needs), so a peer that is paused or slow cannot make this node's memory grow
/// without bound.
pub const PEER_QUEUE_BYTES_MAX: usize = 64 << 20;
/// Messages waiting for one peer's sending task at most (the same rule as the bytes).
pub const PEER_QUEUE_MESSAGES_MAX: usize = 65_536;

/// What waits in a peer's delay queue.
enum Item {
    /// An encoded protocol envelope.
    Envelope(Vec<u8>),
    Probe(Probe),
}

/// One peer's sending task and what it holds.
struct PeerQueue {
    tx: mpsc::Sender<(Instant, Item)>,
    queued: Arc<AtomicUsize>,
    dropped: AtomicU64,
    /// Batches delivered (RPCs that succeeded); the sending task logs it.
    #[cfg(test)]
    batches: Arc<AtomicU64>,
}

/// The sending side: one task per peer DC, each with its own delay queue.
pub struct Outbox {
    me: DcId,
    wan: Arc<Wan>,
    peers: Vec<Option<PeerQueue>>,
    /// Where measured round trips and clock offsets go.
    health: Arc<PeerHealth>,
    /// The origin of the monotonic times probes carry.
    start: Instant,
}

impl Outbox {
    /// Starts a sender task for every other DC of `topology`.
    pub fn start(
        topology: &Topology,
        me: DcId,
        tls: Option<&PeerTls>,
        wan: Arc<Wan>,
        health: Arc<PeerHealth>,
        identity: Arc<Identity>,
    ) -> anyhow::Result<Outbox> {
        let mut peers = Vec::new();
        for dc in &topology.dcs {
            if dc.id == me {
                peers.push(None);
                continue;
            }
            let endpoint = endpoint(dc.peer, &dc.name, tls, RPC_TIMEOUT)?;
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
            let queued = Arc::new(AtomicUsize::new(0));
            let batches = Arc::new(AtomicU64::new(0));
            let route = Route {
                cluster: topology.cluster.clone(),
                me,
                to: dc.id,
                addr: dc.peer,
                identity: identity.clone(),
            };
            tokio::spawn(send_loop(
                route,
                endpoint,
                rx,
                queued.clone(),
                batches.clone(),
            ));
            peers.push(Some(PeerQueue {
                tx,
                queued,
                dropped: AtomicU64::new(0),
                #[cfg(test)]
                batches,
            }));
        }
        Ok(Outbox {
            me,
            wan,
            peers,
            health,
            start: Instant::now(),
        })
    }

    /// Sends after the emulated delay, or drops (emulated loss or cut, or the peer's
    /// queue is full).
    pub fn send(&self, env: Envelope) {
        let bytes = postcard::to_allocvec(&env).expect("envelopes encode");
        self.enqueue(env.to, Item::Envelope(bytes));
    }

    /// Probes every peer: each answer gives the round trip (emulated delay and queueing
    /// included) and the peer's clock offset, recorded in [`PeerHealth`].
    pub fn probe(&self) {
        let probe = Probe {
            sent_mono_us: self.start.elapsed().as_micros() as u64,
            sent_wall_us: self.wall_clock_us(),
            answer: false,
            peer_wall_us: 0,
        };
        for to in 0..self.peers.len() {
            self.enqueue(to as DcId, Item::Probe(probe));
        }
    }

    /// A probe from `from`: answers it, or records what an answer measured.
    pub fn on_probe(&self, from: DcId, probe: Probe) {
        if !probe.answer {
            let answer = Probe {
                answer: true,
                peer_wall_us: self.wall_clock_us(),
                ..probe
            };
            self.enqueue(from, Item::Probe(answer));
            return;
        }
        let now = self.start.elapsed().as_micros() as u64;
        let Some(rtt_us) = now.checked_sub(probe.sent_mono_us) else {
            return; // not one of this node's probes (it restarted since)
        };
        // The peer read its clock about half-way: NTP's estimate, off by at most
        // half the round trip's asymmetry.
        let midpoint = probe.sent_wall_us as i64 + (rtt_us / 2) as i64;
        self.health
            .measured(from, rtt_us, probe.peer_wall_us as i64 - midpoint);
    }

    /// Microseconds since the Unix epoch by this node's clock (emulated offset included).
    fn wall_clock_us(&self) -> u64 {
        txn::PhysicalClock::now_micros(&EmulatedClock(self.wan.clone()))
    }

    fn enqueue(&self, to: DcId, item: Item) {
        let Some(Some(peer)) = self.peers.get(usize::from(to)) else {
            return;
        };
        let Some(delay) = self.wan.delay(self.me, to) else {
            return;
        };
        let len = match &item {
            Item::Envelope(bytes) => bytes.len(),
            Item::Probe(_) => 0,
        };
        let full = peer.queued.load(Ordering::Relaxed) + len > PEER_QUEUE_BYTES_MAX;
        // Counted before the send: the sending task subtracts once it has sent.
        if !full {
            peer.queued.fetch_add(len, Ordering::Relaxed);
        }
        if full || peer.tx.try_send((Instant::now() + delay, item)).is_err() {
            if !full {
                peer.queued.fetch_sub(len, Ordering::Relaxed);
            }
            // Logged once per 10 000 drops: a stalled peer drops a lot.
            if peer.dropped.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                tracing::warn!(to, "peer queue full; dropping messages to it");
            }
        }
    }
}

impl Transport for Outbox {
    fn send(&self, env: Envelope) {
        Outbox::send(self, env);
    }
}

/// Who sends to whom, for one sending task.
struct Route {
    cluster: String,
    me: DcId,
    to: DcId,
    addr: SocketAddr,
    identity: Arc<Identity>,
}

/// RPCs in flight to one peer at most. More than one, so that on a real WAN a batch
/// that falls due while another is on the wire leaves at once instead of a round trip
/// later; the protocol tolerates the reordering this allows.
const RPCS_IN_FLIGHT_MAX: usize = 8;

/// How often a sending task reports what it sent (when it sent anything).
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One peer's sending task: holds each message until its emulated delay has passed,
/// then sends every due message in one batch, with up to [`RPCS_IN_FLIGHT_MAX`] batches
/// on the wire. Every wake-up first drains the channel, so the queue's length is what
/// is waiting for its delay, never what the task has not looked at yet.
async fn send_loop(
    route: Route,
    endpoint: Endpoint,
    mut rx: mpsc::Receiver<(Instant, Item)>,
    queued: Arc<AtomicUsize>,
    batches: Arc<AtomicU64>,
) {
    let Route {
        cluster,
        me,
        to,
        addr,
        identity,
    } = route;
    let client = PeerClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX);
    // The peer's incarnation once `Hello` verified it (None: not verified).
    let mut verified: Option<u64> = None;
    let mut refusal_logged = false;
    let mut queue: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut pending = std::collections::HashMap::new();
    let mut seq = 0u64;
    let mut in_flight: JoinSet<Result<(), Status>> = JoinSet::new();
    let mut report = Report::new();
    loop {
        let next_due = queue.peek().map(|Reverse((due, _))| *due);
        let room = in_flight.len() < RPCS_IN_FLIGHT_MAX;
        tokio::select! {
            item = rx.recv() => match item {
                Some((due, env)) => {
                    seq += 1;
                    queue.push(Reverse((due, seq)));
                    pending.insert(seq, env);
                }
                None => return,
            },
            () = sleep_until(next_due), if room => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                match done {
                    Ok(Ok(())) => {
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(status)) => {
                        report.failed += 1;
                        tracing::debug!(to, %addr, %status, "delivery failed; dropped");
                        if status.code() == tonic::Code::PermissionDenied {
                            verified = None;
                        }
                    }
                    Err(e) => tracing::error!(to, "a delivery task failed: {e}"),
                }
            }
        }
        while let Ok((due, env)) = rx.try_recv() {
            seq += 1;
            queue.push(Reverse((due, seq)));
            pending.insert(seq, env);
        }
        report.maybe_log(to, &batches, &queued, in_flight.len());
        if in_flight.len() >= RPCS_IN_FLIGHT_MAX {
            continue;
        }
        let now = Instant::now();
        let (mut due, mut probes) = (Vec::new(), Vec::new());
        while let Some(Reverse((at, id))) = queue.peek().copied() {
            if at > now {
                break;
            }
            queue.pop();
            match pending.remove(&id) {
                Some(Item::Envelope(env)) => due.push(env),
                Some(Item::Probe(probe)) => probes.push(probe),
                None => {}
            }
        }
        if due.is_empty() && probes.is_empty() {
            continue;
        }
        let bytes: usize = due.iter().map(Vec::len).sum();
        if verified.is_some_and(|i| identity.is_evicted_directory(to, i)) {
            verified = None; // evicted since: nothing more goes to it (§7.8)
        }
        if verified.is_none() {
            let route = (cluster.as_str(), me, to, addr);
            verified = hello(client.clone(), route, &identity, &mut refusal_logged).await;
        }
        let Some(to_incarnation) = verified else {
            queued.fetch_sub(bytes, Ordering::Relaxed);
            continue; // dropped; the protocol retransmits
        };
        report.messages += due.len() as u64;
        let batch = Batch {
            cluster: cluster.clone(),
            from: u32::from(me),
            envelopes: due,
            probes,
            to_incarnation,
            from_incarnation: identity.incarnation,
        };
        let (mut client, queued) = (client.clone(), queued.clone());
        in_flight.spawn(async move {
            let delivered = client.deliver(batch).await;
            queued.fetch_sub(bytes, Ordering::Relaxed);
            delivered.map(drop)
        });
    }
}

/// What a sending task logs every [`REPORT_EVERY`].
struct Report {
    at: Instant,
    batches: u64,
    messages: u64,
    failed: u64,
}

impl Report {
    fn new() -> Report {
        Report {
            at: Instant::now(),
            batches: 0,
            messages: 0,
            failed: 0,
        }
    }

    fn maybe_log(&mut self, to: DcId, batches: &AtomicU64, queued: &AtomicUsize, in_flight: usize) {
        if self.at.elapsed() < REPORT_EVERY {
            return;
        }
        let total = batches.load(Ordering::Relaxed);
        if self.messages > 0 || self.failed > 0 {
            tracing::info!(
                to,
                batches = total - self.batches,
                messages = self.messages,
                failed = self.failed,
                queued_kib = queued.load(Ordering::Relaxed) >> 10,
                in_flight,
                "peer link, last 10 s"
            );
        }
        *self = Report {
            batches: total,
            ..Report::new()
        };
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Checks that `addr` is DC `to` of this cluster, under the data directory this node
/// knows for it, and that it accepts this node's; returns the peer's incarnation, or
/// logs why not (a refusal once, as an error: it needs an operator).
async fn hello(
    mut client: PeerClient<Channel>,
    (cluster, me, to, addr): (&str, DcId, DcId, SocketAddr),
    identity: &Identity,
    refusal_logged: &mut bool,
) -> Option<u64> {
    let request = hello_request(cluster, me, identity);
    let mut refused = |why: &str| {
        if !std::mem::replace(refusal_logged, true) {
            tracing::error!(to, %addr, "not sending to the peer: {why}");
        }
        None
    };
    match client.hello(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            if reply.cluster != cluster || reply.dc != u32::from(to) {
                return refused(&format!(
                    "it is DC {} of cluster '{}', expected DC {to} of '{cluster}'",
                    reply.dc, reply.cluster
                ));
            }
            let claim = Claim {
                incarnation: reply.incarnation,
                generation: reply.generation,
                run: reply.run,
            };
            if let Err(why) = identity.check_peer(to, claim) {
                return refused(&why);
            }
            *refusal_logged = false;
            tracing::info!(to, %addr, "connected to peer");
            Some(reply.incarnation)
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            refused(&format!("it refused this node: {}", status.message()))
        }
        Err(status) => {
            tracing::debug!(to, %addr, %status, "peer unreachable");
            None
        }
    }
}

pub(super) fn hello_request(cluster: &str, me: DcId, identity: &Identity) -> HelloRequest {
    let claim = identity.claim();
    HelloRequest {
        cluster: cluster.to_string(),
        from: u32::from(me),
        incarnation: claim.incarnation,
        generation: claim.generation,
        run: claim.run,
    }
}

/// At start: asks every reachable peer whether it accepts this node's data directory
/// (another directory, or an older copy of this one, is refused). Returns the first
/// refusal (the node must not start: it would reuse attempt numbers and vote without
/// the promises its DC made).
pub async fn refused_by_a_peer(
    topology: &Topology,
    me: DcId,
    tls: Option<&PeerTls>,
    identity: &Identity,
) -> anyhow::Result<Option<String>> {
    const ASK: Duration = Duration::from_secs(2);
    for dc in topology.dcs.iter().filter(|d| d.id != me) {
        let endpoint = endpoint(dc.peer, &dc.name, tls, ASK)?;
        let request = hello_request(&topology.cluster, me, identity);
        // The whole exchange is bounded: a peer starting at the same moment has its
        // port bound but serves nothing until its own check is done, and with TLS the
        // handshake is not covered by the connect timeout. Nodes of a cluster started
        // together waited on each other for ever.
        let asked = tokio::time::timeout(2 * ASK, async {
            let channel = endpoint.connect().await.ok()?;
            Some(PeerClient::new(channel).hello(request).await)
        })
        .await;
        // Down, or not serving yet: it refuses this node when it comes back, if it must.
        if let Ok(Some(Err(status))) = asked {
            if status.code() == tonic::Code::PermissionDenied {
                return Ok(Some(format!(
                    "DC {} refuses it: {}",
                    dc.id,
                    status.message()
                )));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::{Learn, DEFAULT_EVICT_AFTER_S, DEFAULT_MAX_HISTORY_RECORDS};
    use replication::{Closed, Msg};

    fn topology() -> Topology {
        let dcs = (0..3u8)
            .map(|i| DcSpec {
                id: i,
                name: format!("dc{i}"),
                sql: SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(i))),
                peer: SocketAddr::from(([127, 0, 0, 1], 2000 + u16::from(i))),
                tls_cert: None,
                tls_key: None,
            })
            .collect();
        Topology {
            cluster: "c".into(),
            learn: Learn::Owner,
            wan: Link::default(),
            evict_after_s: DEFAULT_EVICT_AFTER_S,
            max_history_records: DEFAULT_MAX_HISTORY_RECORDS,
            dcs,
            tls: None,
        }
    }

    fn service() -> (PeerService, mpsc::Receiver<Envelope>) {
        service_with_inbox(16)
    }

    fn service_with_inbox(capacity: usize) -> (PeerService, mpsc::Receiver<Envelope>) {
        node(&topology(), 1, capacity, Link::default())
    }

    /// DC `me`'s receiving side, with an outbox to `topology`'s peers.
    fn node(
        topology: &Topology,
        me: DcId,
        capacity: usize,
        link: Link,
    ) -> (PeerService, mpsc::Receiver<Envelope>) {
        let wan = Arc::new(Wan::new(link));
        let health = Arc::new(PeerHealth::new(topology.clone(), me, wan.clone(), 1_000));
        let identity = identity(me);
        let outbox = Outbox::start(
            topology,
            me,
            None,
            wan.clone(),
            health.clone(),
            identity.clone(),
        )
        .unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        let service = PeerService {
            cluster: "c".into(),
            me,
            dcs: 3,
            inbox: tx,
            wan,
            health,
            outbox: Arc::new(outbox),
            identity,
            topology: String::new(),
            driver: None,
        };
        (service, rx)
    }

    /// A fresh identity of DC `me` of cluster "c", over an in-memory store.
    fn identity(me: DcId) -> Arc<Identity> {
        let store = Arc::new(kv::Store::open(Arc::new(kv::MemoryEngine::new())).unwrap());
        Arc::new(Identity::open(store, "c", me, 3).unwrap())
    }

    /// Binds a peer port on loopback for DC `dc` of `topology`.
    fn listen(topology: &mut Topology, dc: usize) -> tonic::transport::server::TcpIncoming {
        let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())
            .unwrap()
            .with_nodelay(Some(true));
        topology.dcs[dc].peer = incoming.local_addr().unwrap();
        incoming
    }

    /// Probes measure the round trip with the emulated delay in it, both ways, and an
    /// offset near zero between two nodes on one host.
    #[tokio::test]
    async fn probes_measure_the_round_trip_through_the_emulated_wan() {
        let mut topology = topology();
        let incoming = [listen(&mut topology, 0), listen(&mut topology, 1)];
        let link = Link {
            delay_ms: 30,
            jitter_ms: 0,
            loss: 0.0,
        };
        let mut health = Vec::new();
        for (dc, incoming) in incoming.into_iter().enumerate() {
            let (service, rx) = node(&topology, dc as DcId, 16, link);
            health.push((service.health.clone(), service.outbox.clone(), rx));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(PeerServer::new(service))
                    .serve_with_incoming(incoming),
            );
        }
        let (health0, outbox0, _) = &health[0];
        assert_eq!(health0.rtt_us(1), None, "nothing measured yet");
        outbox0.probe();
        let mut waited = 0;
        while health0.rtt_us(1).is_none() && waited < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
        }
        let rtt = health0.rtt_us(1).expect("the probe was answered");
        assert!((60_000..1_000_000).contains(&rtt), "{rtt} µs");
        let offset = health0.offset_us(1).unwrap();
        assert!(
            offset.abs() < 30_000,
            "offset {offset} µs between two local nodes"
        );
        assert_eq!(health0.max_rtt_us(), Some(rtt));
        assert_eq!(health0.rtt_us(2), None, "DC 2 never answered");
    }

    fn closed(from: DcId, to: DcId) -> Vec<u8> {
        let env = Envelope {
            from,
            to,
            depth: 1,
            msg: Msg::Closed(Closed {
                floor: 5,
                voted_upto: vec![0, 0, 0],
            }),
        };
        postcard::to_allocvec(&env).unwrap()
    }

    fn batch(cluster: &str, from: u32, envelopes: Vec<Vec<u8>>) -> Request<Batch> {
        Request::new(Batch {
            cluster: cluster.into(),
            from,
            envelopes,
            probes: vec![],
            to_incarnation: 0,
            from_incarnation: 0,
        })
    }

    #[tokio::test]
    async fn strangers_garbage_and_misaddressed_batches_are_refused_whole() {
        let (service, mut rx) = service();
        let refused = [
            (
                batch("other", 0, vec![closed(0, 1)]),
                tonic::Code::PermissionDenied,
            ),
            (
                batch("c", 1, vec![closed(1, 1)]),
                tonic::Code::InvalidArgument,
            ),
            (
                batch("c", 7, vec![closed(0, 1)]),
                tonic::Code::InvalidArgument,
            ),
            (
                batch("c", 0, vec![closed(0, 1), b"\xff\x00garbage".to_vec()]),
                tonic::Code::InvalidArgument,
            ),
            (
                batch("c", 0, vec![closed(2, 1)]),
                tonic::Code::InvalidArgument,
            ),
            (
                batch("c", 0, vec![closed(0, 2)]),
                tonic::Code::InvalidArgument,
            ),
        ];
        for (request, code) in refused {
            let status = service.deliver(request).await.unwrap_err();
            assert_eq!(status.code(), code, "{status}");
        }
        assert!(
            rx.try_recv().is_err(),
            "nothing of a refused batch is delivered"
        );
        service
            .deliver(batch("c", 0, vec![closed(0, 1), closed(0, 1)]))
            .await
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().from, 0);
        assert_eq!(rx.try_recv().unwrap().from, 0);
        let dc0 = &service.health.statuses()[0];
        assert_eq!(
            dc0.state, "deaf",
            "heard, but it answered no probe of this node's"
        );
    }

    #[tokio::test]
    async fn a_full_inbox_makes_the_delivery_wait_and_loses_nothing() {
        let (service, mut rx) = service_with_inbox(2);
        let service = Arc::new(service);
        let delivering = tokio::spawn({
            let service = service.clone();
            async move {
                service
                    .deliver(batch("c", 0, (0..5).map(|_| closed(0, 1)).collect()))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!delivering.is_finished(), "the delivery waits for room");
        for _ in 0..5 {
            assert_eq!(rx.recv().await.unwrap().from, 0);
        }
        delivering.await.unwrap().unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn hello_names_the_cluster_and_dc_and_refuses_strangers() {
        let (service, _rx) = service();
        let reply = service
            .hello(Request::new(HelloRequest {
                cluster: "c".into(),
                from: 2,
                incarnation: 7,
                generation: 1,
                run: 1,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.cluster.as_str(), reply.dc), ("c", 1));
        assert_eq!(reply.incarnation, service.identity.incarnation);
        let status = service
            .hello(Request::new(HelloRequest {
                cluster: "d".into(),
                from: 2,
                incarnation: 7,
                generation: 1,
                run: 1,
            }))
            .await
            .unwrap_err();
        assert!(status.message().contains("belongs to cluster 'c'"));
    }

    /// Issue 12, item 2: DC 2 restarted from an empty directory (a new incarnation) is
    /// refused, and so is a batch still addressed to this node's predecessor.
    #[tokio::test]
    async fn a_peer_back_with_another_data_directory_is_refused() {
        let (service, mut rx) = service();
        let hello = |incarnation| {
            Request::new(HelloRequest {
                cluster: "c".into(),
                from: 2,
                incarnation,
                generation: 1,
                run: 1,
            })
        };
        service.hello(hello(7)).await.unwrap();
        service.hello(hello(7)).await.unwrap();
        let status = service.hello(hello(8)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(
            status.message().contains("another data directory"),
            "{status}"
        );
        assert_eq!(service.identity.known(2), 7);
        let mut stale = batch("c", 0, vec![closed(0, 1)]);
        stale.get_mut().to_incarnation = service.identity.incarnation + 1;
        let status = service.deliver(stale).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(rx.try_recv().is_err());
    }

    /// Issue 12, item 6: once DC 0 is rebuilt under a new directory, what its lost
    /// directory still sends (a batch in flight, a paused process that resumes) is
    /// refused; the new directory's batches are taken.
    #[tokio::test]
    async fn batches_from_a_replaced_directory_are_refused() {
        let (service, mut rx) = service();
        let from = |incarnation| {
            let mut b = batch("c", 0, vec![closed(0, 1)]);
            b.get_mut().from_incarnation = incarnation;
            b
        };
        service
            .hello(Request::new(HelloRequest {
                cluster: "c".into(),
                from: 0,
                incarnation: 7,
                generation: 1,
                run: 1,
            }))
            .await
            .unwrap();
        service.deliver(from(7)).await.unwrap();
        assert!(rx.try_recv().is_ok());
        let rebuilt = Claim {
            incarnation: 9,
            generation: 1,
            run: 2,
        };
        service.identity.accept_rebuilt(0, rebuilt).unwrap();
        let status = service.deliver(from(7)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("replaced"), "{status}");
        assert!(rx.try_recv().is_err());
        service.deliver(from(9)).await.unwrap();
        assert!(rx.try_recv().is_ok());
    }

    /// Issue 12, item 6: an older copy of DC 2's own directory (same incarnation) starts
    /// with a generation the original already started with, under another run: refused.
    /// The original's later starts, and the same run saying hello again, are accepted.
    #[tokio::test]
    async fn a_peer_back_with_an_older_copy_of_its_directory_is_refused() {
        let (service, _rx) = service();
        let hello = |generation, run| {
            Request::new(HelloRequest {
                cluster: "c".into(),
                from: 2,
                incarnation: 7,
                generation,
                run,
            })
        };
        service.hello(hello(3, 30)).await.unwrap();
        service.hello(hello(3, 30)).await.unwrap();
        for (generation, run) in [(3, 31), (2, 20)] {
            let status = service.hello(hello(generation, run)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            assert!(status.message().contains("older copy"), "{status}");
        }
        service.hello(hello(4, 40)).await.unwrap();
        assert!(service.hello(hello(3, 30)).await.is_err());
    }

    /// Issue 12's wedge: under load at 10 ms the sending task moved one message from its
    /// channel per RPC, so the queue grew without bound and every message arrived later
    /// and later until the protocol's timers fired. A burst must leave in a few batches.
    #[tokio::test]
    async fn a_burst_leaves_in_a_few_batches_and_arrives_whole() {
        let mut topology = topology();
        let incoming = listen(&mut topology, 1);
        let (service, mut rx) = node(&topology, 1, 1 << 16, Link::default());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(service))
                .serve_with_incoming(incoming),
        );
        let wan = Arc::new(Wan::new(Link::default()));
        let health = Arc::new(PeerHealth::new(topology.clone(), 0, wan.clone(), 1_000));
        let outbox = Outbox::start(&topology, 0, None, wan, health, identity(0)).unwrap();
        const BURST: usize = 5_000;
        for _ in 0..BURST {
            let env: Envelope = postcard::from_bytes(&closed(0, 1)).unwrap();
            outbox.send(env);
        }
        for _ in 0..BURST {
            let env = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("every message of the burst arrives")
                .unwrap();
            assert_eq!((env.from, env.to), (0, 1));
        }
        let peer = outbox.peers[1].as_ref().unwrap();
        let batches = peer.batches.load(Ordering::Relaxed);
        assert!(batches <= 100, "{BURST} messages took {batches} batches");
        assert_eq!(peer.dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_peer_that_does_not_drain_costs_at_most_its_queue_cap() {
        // Messages wait a minute for their emulated delay: nothing leaves the queue.
        let wan = Arc::new(Wan::new(Link {
            delay_ms: 60_000,
            jitter_ms: 0,
            loss: 0.0,
        }));
        let health = Arc::new(PeerHealth::new(topology(), 0, wan.clone(), 1_000));
        let outbox = Outbox::start(&topology(), 0, None, wan, health, identity(0)).unwrap();
        let big = replication::Record {
            key: replication::TxnKey { origin: 0, seq: 1 },
            txn: 1,
            version: 1,
            reads: vec![],
            writes: vec![(b"k".to_vec(), Some(vec![7; 1 << 20]))],
        };
        for _ in 0..100 {
            outbox.send(Envelope {
                from: 0,
                to: 1,
                depth: 1,
                msg: Msg::Record {
                    record: big.clone(),
                },
            });
        }
        let peer = outbox.peers[1].as_ref().unwrap();
        let queued = peer.queued.load(Ordering::Relaxed);
        assert!(queued <= PEER_QUEUE_BYTES_MAX, "{queued}");
        assert!(queued > PEER_QUEUE_BYTES_MAX - (2 << 20), "{queued}");
        assert!(peer.dropped.load(Ordering::Relaxed) >= 100 - 64);
    }
}
