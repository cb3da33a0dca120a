//! The node runtime: wires storage, transactions, planner and the SQL server together and
//! owns every piece of IO (disk, sockets, clock, signals).
//!
//! Start-up: open RocksDB in the data directory (bounded block cache and memtables), open
//! the store (shard map, group committer), open the commit protocol's driver as a
//! one-DC cluster (its clock above the last committed version), bind the SQL listener,
//! serve. A failed sync stops the driver, and with it the node. Shutdown (SIGINT/SIGTERM): stop
//! accepting, let the group committer finish what is queued, close RocksDB. Nothing is
//! acknowledged before it is synced, so `kill -9` loses no acknowledged commit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kv::rocks::{RocksEngine, RocksOptions};
use kv::Store;
use planner::Planner;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use txn::{DriverTask, GcSettings, SystemClock, TxnManager};

pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub sql_addr: SocketAddr,
    pub query_memory_bytes: usize,
    pub block_cache_bytes: usize,
}

/// Opens (creating if needed) the RocksDB store in `data_dir`.
pub fn open_store(data_dir: &Path, block_cache_bytes: usize) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let options = RocksOptions {
        block_cache_bytes,
        ..RocksOptions::default()
    };
    let engine = RocksEngine::open(&data_dir.join("rocksdb"), &options).with_context(|| {
        format!(
            "cannot open the store in {} (is another node using it?)",
            data_dir.display()
        )
    })?;
    Ok(Arc::new(Store::open(Arc::new(engine))?))
}

/// Opens the node's storage, transaction manager and planner; the driver task is the
/// caller's to run.
fn open(config: &NodeConfig) -> anyhow::Result<(Arc<Planner>, DriverTask)> {
    let store = open_store(&config.data_dir, config.block_cache_bytes)?;
    if let Some(owner) = crate::cluster::cluster_identity(&store)? {
        anyhow::bail!(
            "{} belongs to a multi-DC cluster ({owner}: cluster/DC/DCs); run it with `meridian node`",
            config.data_dir.display()
        );
    }
    let (txns, driver) = TxnManager::start_single(store, Arc::new(SystemClock))?;
    Ok((
        Planner::new(txns, config.query_memory_bytes),
        driver.with_gc(gc_settings()?),
    ))
}

/// How long old versions are kept: 4 hours, or `MERIDIAN_GC_TTL_S` seconds (soaks and
/// tests set it short).
pub fn gc_settings() -> anyhow::Result<GcSettings> {
    let mut settings = GcSettings::default();
    if let Ok(value) = std::env::var("MERIDIAN_GC_TTL_S") {
        let secs: u64 = value.trim().parse().with_context(|| {
            format!("MERIDIAN_GC_TTL_S must be a number of seconds, not '{value}'")
        })?;
        settings.ttl = std::time::Duration::from_secs(secs);
    }
    Ok(settings)
}

/// Runs a node in the foreground until SIGINT or SIGTERM.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let (engine, driver) = open(&config)?;
    let listener = TcpListener::bind(config.sql_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.sql_addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), %addr, "meridian node started");
    println!("Meridian is ready. Connect with:\n  psql postgres://{addr}/postgres");
    tokio::select! {
        () = sql::serve(listener, engine, shutdown_signal()) => {}
        stopped = driver.run(None) => {
            stopped.context("the commit driver stopped")?;
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A node serving in the background of this process (tests and tools).
pub struct Started {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Started {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub async fn start_background(config: NodeConfig) -> anyhow::Result<Started> {
    let (engine, driver) = open(&config)?;
    let listener = TcpListener::bind(config.sql_addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = sql::serve(listener, engine, async {
            let _ = stopped.await;
        });
        tokio::select! {
            () = serve => {}
            stopped = driver.run(None) => {
                if let Err(e) = stopped {
                    tracing::error!(%e, "the commit driver stopped");
                }
            }
        }
    });
    Ok(Started { addr, stop, task })
}
