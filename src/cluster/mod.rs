//! The multi-DC node runtime: one node per data center, each a full copy, committing
//! across DCs with the protocol of docs/protocol.md.
//!
//! ```text
//!   psql ──▶ sql::serve ──▶ planner ──▶ TxnManager (wound-wait at the origin)
//!                                          │ commit: reads + writes
//!                                          ▼
//!   peers ◀──gRPC── transport::Outbox ◀── txn::driver ──▶ RocksDB (protocol state +
//!   peers ──gRPC──▶ transport::PeerService ──▶ │           committed writes, synced)
//! ```
//!
//! The driver (`txn::driver`, the same one a single-DC node runs) steps this DC's
//! participant (`replication::Participant`); this module gives it a [`transport`]
//! (an [`Outbox`] out, a bounded inbox in, with back-pressure on the peers' RPCs), a
//! view of the peers' health ([`status`]) and timers that follow the round trips probes
//! measure to the peers. The topology comes from a TOML file ([`topology`]); a WAN delay
//! can be emulated by each sender ([`wan`]), on top of the real network's, and the
//! protocol is told nothing of it.
//! A data directory remembers the cluster and DC it belongs to; a node refuses one of
//! another cluster or DC.

pub mod demo;
mod evict;
pub mod identity;
pub mod local;
mod rejoin;
pub mod status;
pub mod tls;
pub mod topology;
pub mod transport;
pub mod wan;

pub use self::identity::cluster_identity;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use replication::{Config, DcId, LearnRule};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use txn::{ClusterView, Peers, Transport, TxnManager};

use self::identity::Identity;
use self::status::PeerHealth;
use self::tls::PeerTls;
use self::topology::Topology;
use self::transport::{Outbox, PeerService};
use self::wan::{EmulatedClock, Wan};

/// Envelopes from peers waiting for the driver at most; a full inbox makes the peers'
/// deliveries wait (back-pressure), it loses nothing.
pub const INBOX_ENVELOPES_MAX: usize = 65_536;

pub struct ClusterNodeConfig {
    pub topology: Topology,
    pub dc: DcId,
    pub data_dir: PathBuf,
    pub query_memory_bytes: usize,
    pub block_cache_bytes: usize,
    /// ε: the bound on clock offsets between DCs (commit wait).
    pub clock_bound_us: u64,
    /// Rebuild this DC's empty directory from its peers first (`--rejoin`).
    pub rejoin: bool,
}

/// The protocol's timers, scaled to the longest one-way delay to a peer (µs).
pub fn participant_config(
    topology: &Topology,
    me: DcId,
    clock_bound_us: u64,
    one_way_us: u64,
) -> Config {
    protocol_config(
        topology.dcs.len(),
        me,
        topology.learn.rule(),
        clock_bound_us,
        one_way_us,
    )
}

/// The protocol's timers for `dcs` data centers whose longest one-way delay is
/// `one_way_us` (the node's, and the simulator's with its WAN delay as if measured).
pub fn protocol_config(
    dcs: usize,
    me: DcId,
    learn: LearnRule,
    clock_bound_us: u64,
    one_way_us: u64,
) -> Config {
    let one_way = one_way_us.max(1_000);
    Config {
        dcs,
        me,
        learn,
        retransmit_us: 4 * one_way + 20_000,
        recovery_us: (12 * one_way).max(500_000),
        stagger_us: (6 * one_way).max(200_000),
        clock_bound_us,
        floor_lag_us: one_way * 3 / 2 + clock_bound_us + 25_000,
        closed_period_us: 10_000,
    }
}

/// The one-way delay the timers assume until the first probe comes back.
const ASSUMED_ONE_WAY_US: u64 = 100_000;

/// How often every peer is probed for its round trip and clock offset.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The protocol's timers follow what probes measure, never what the WAN emulation is
/// set to (the emulation is only part of what they measure, as a real network's delay
/// would be): half the round trip [`PeerHealth::max_rtt_us`] estimates (the longest of
/// the peers' median round trips over the last [`status::RTT_WINDOW`], queueing
/// included). A longer delay retimes at once; a
/// shorter one only when it is shorter by a quarter, so jitter does not churn them.
struct Retimer {
    topology: Topology,
    me: DcId,
    clock_bound_us: u64,
    health: Arc<PeerHealth>,
    one_way_us: u64,
    /// When the estimate was last looked at: once per probe period, not every tick.
    checked: std::time::Instant,
}

impl Retimer {
    fn retime(&mut self) -> Option<Config> {
        if self.checked.elapsed() < PROBE_EVERY {
            return None;
        }
        self.checked = std::time::Instant::now();
        let one_way = (self.health.max_rtt_us()? / 2).max(1_000);
        let current = self.one_way_us;
        let longer = one_way * 10 > current * 11;
        let shorter = one_way * 4 < current * 3;
        if !longer && !shorter {
            return None;
        }
        self.one_way_us = one_way;
        let cfg = participant_config(&self.topology, self.me, self.clock_bound_us, one_way);
        tracing::info!(
            one_way_ms = one_way / 1000,
            retransmit_ms = cfg.retransmit_us / 1000,
            recovery_ms = cfg.recovery_us / 1000,
            floor_lag_ms = cfg.floor_lag_us / 1000,
            "measured round trips changed: protocol timers rescaled"
        );
        Some(cfg)
    }
}

/// Runs this DC's node until SIGINT or SIGTERM.
pub async fn run(config: ClusterNodeConfig) -> anyhow::Result<()> {
    let topology = config.topology;
    let me = topology.dc(config.dc)?.clone();
    let dcs = topology.dcs.len();
    // Both addresses first: a second node started for this DC fails here, before it
    // touches a data directory.
    let taken = |what: &str, addr| {
        format!(
            "cannot listen for {what} on {addr} (is another node of DC {} running, \
             or is this not DC {}'s host?)",
            me.id, me.id
        )
    };
    let sql = TcpListener::bind(me.sql)
        .await
        .with_context(|| taken("SQL", me.sql))?;
    // The peer port is bound here, before anything can report the node ready, so a
    // peer (or a test) that connects once SQL answers is never refused.
    // TCP_NODELAY as tonic sets it when it binds itself: without it every Deliver
    // reply waits for Nagle and delayed ACKs, and each peer's sender (a few RPCs at a
    // time) falls behind under load.
    let peer_incoming = tonic::transport::server::TcpIncoming::bind(me.peer)
        .with_context(|| taken("peers", me.peer))?
        .with_nodelay(Some(true));
    let store = crate::node::open_store(&config.data_dir, config.block_cache_bytes)?;
    let identity = Arc::new(Identity::open(
        store.clone(),
        &topology.cluster,
        me.id,
        dcs,
    )?);

    let wan = Arc::new(Wan::new(topology.wan));
    let health = Arc::new(PeerHealth::new(
        topology.clone(),
        me.id,
        wan.clone(),
        config.clock_bound_us,
    ));
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_ENVELOPES_MAX);
    let cfg = participant_config(&topology, me.id, config.clock_bound_us, ASSUMED_ONE_WAY_US);
    let mut retimer = Retimer {
        topology: topology.clone(),
        me: me.id,
        clock_bound_us: config.clock_bound_us,
        health: health.clone(),
        one_way_us: ASSUMED_ONE_WAY_US,
        checked: std::time::Instant::now(),
    };
    let tls = PeerTls::load(&topology, Some(me.id))?;
    if config.rejoin {
        rejoin::rebuild(&topology, me.id, tls.as_ref(), &identity, &store).await?;
    }
    if let Some(why) =
        transport::refused_by_a_peer(&topology, me.id, tls.as_ref(), &identity).await?
    {
        if identity.fresh {
            bail!("this DC's data directory is new, but its cluster knows another: {why}");
        }
        bail!("this DC's data directory is refused by its cluster: {why}");
    }
    let outbox = Arc::new(Outbox::start(
        &topology,
        me.id,
        tls.as_ref(),
        wan.clone(),
        health.clone(),
        identity.clone(),
    )?);
    let (handle, driver) = txn::driver::open(
        cfg,
        store.clone(),
        Arc::new(EmulatedClock(wan.clone())),
        Some(Box::new(outbox.clone()) as Box<dyn Transport>),
        Some(health.clone() as Arc<dyn ClusterView>),
    )?;
    for dc in identity.evicted() {
        handle.evict(dc);
        health.set_evicted(dc);
    }
    tokio::spawn(
        evict::Watch {
            topology: topology.clone(),
            me: me.id,
            tls: tls.clone(),
            health: health.clone(),
            identity: identity.clone(),
            driver: handle.clone(),
        }
        .run(),
    );
    let handle_for_peers = handle.clone();
    let txns = TxnManager::new(store, Arc::new(EmulatedClock(wan.clone())), handle);
    let engine = planner::Planner::new(txns, config.query_memory_bytes);

    let service = PeerService::server(
        &topology,
        me.id,
        inbox_tx,
        health,
        outbox.clone(),
        identity,
        handle_for_peers,
    );
    tokio::spawn(async move {
        loop {
            outbox.probe();
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
    let (stop_peers, peers_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server())
            .context("invalid TLS configuration")?;
    }
    let peer_server = tokio::spawn(server.add_service(service).serve_with_incoming_shutdown(
        peer_incoming,
        async {
            let _ = peers_stopped.await;
        },
    ));
    let driver = driver.with_gc(crate::node::gc_settings()?);
    let driver = tokio::spawn(driver.run(Some(Peers {
        inbox: inbox_rx,
        retime: Box::new(move || retimer.retime()),
    })));

    tracing::info!(cluster = %topology.cluster, dc = me.id, name = %me.name, sql = %me.sql,
        peer = %me.peer, "meridian node started");
    println!(
        "Meridian DC {} ({}) of cluster '{}' is ready. Connect with:\n  psql postgres://{}/postgres",
        me.id, me.name, topology.cluster, me.sql
    );
    tokio::select! {
        () = sql::serve(sql, engine, crate::node::shutdown_signal()) => {}
        result = driver => {
            result.context("the protocol driver panicked")??;
            bail!("the protocol driver stopped");
        }
        result = peer_server => {
            result.context("the peer server panicked")?
                .with_context(|| format!("the peer server on {} failed", me.peer))?;
        }
    }
    let _ = stop_peers.send(());
    tracing::info!("shutting down");
    Ok(())
}
