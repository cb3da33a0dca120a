//! `meridian demo`: a local geo-distributed cluster on one machine — one node per DC,
//! each a separate OS process, with the WAN emulated between them.
//!
//! It writes `<data-dir>/cluster.toml` (DC i serves SQL on base-port + i and talks to
//! peers on base-port + 1000 + i), starts `meridian node` for each DC with its log in
//! `<data-dir>/dc<i>.log`, waits until every node accepts SQL connections, prints one
//! `postgres://` URL and process id per DC, writes the same to `<data-dir>/demo.json`,
//! and runs until Ctrl-C or SIGTERM, then stops its children (SIGTERM, then SIGKILL
//! after a grace period).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use super::local::LocalCluster;
use super::topology::{DcSpec, Learn, Link, Topology};

const NAMES: [&str; 7] = [
    "frankfurt",
    "virginia",
    "tokyo",
    "sydney",
    "saopaulo",
    "mumbai",
    "oregon",
];

pub struct DemoConfig {
    pub dcs: usize,
    pub wan_delay_ms: u64,
    pub base_port: u16,
    pub data_dir: PathBuf,
    pub learn: Learn,
    /// A DC out of contact this long is evicted (docs/protocol.md §7.8).
    pub evict_after_s: u64,
    /// Or once its peers hold this many records of history for it.
    pub max_history_records: u64,
}

pub fn topology(cfg: &DemoConfig) -> anyhow::Result<Topology> {
    if cfg.dcs == 0 || cfg.dcs.is_multiple_of(2) || cfg.dcs > NAMES.len() {
        bail!(
            "--dcs must be odd and at most {}, got {}",
            NAMES.len(),
            cfg.dcs
        );
    }
    let port = |offset: usize| -> anyhow::Result<u16> {
        u16::try_from(usize::from(cfg.base_port) + offset)
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| {
                format!(
                    "--base-port {} leaves no room for {} DCs",
                    cfg.base_port, cfg.dcs
                )
            })
    };
    let dcs = (0..cfg.dcs)
        .map(|i| {
            Ok(DcSpec {
                id: i as u8,
                name: NAMES[i].to_string(),
                sql: SocketAddr::from((Ipv4Addr::LOCALHOST, port(i)?)),
                peer: SocketAddr::from((Ipv4Addr::LOCALHOST, port(1000 + i)?)),
                tls_cert: None,
                tls_key: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let topology = Topology {
        cluster: "demo".into(),
        learn: cfg.learn,
        wan: Link {
            delay_ms: cfg.wan_delay_ms,
            jitter_ms: 0,
            loss: 0.0,
        },
        evict_after_s: cfg.evict_after_s,
        max_history_records: cfg.max_history_records,
        dcs,
        tls: None,
    };
    topology.validate()?;
    Ok(topology)
}

pub async fn run(cfg: DemoConfig) -> anyhow::Result<()> {
    let topology = topology(&cfg)?;
    let mut cluster = LocalCluster::create(topology, &cfg.data_dir)?;
    cluster.start_all()?;
    for dc in 0..cluster.topology.dcs.len() {
        cluster.wait_ready(dc, Duration::from_secs(60)).await?;
    }
    let (topology, data_dir, cluster_file) =
        (&cluster.topology, &cluster.dir, &cluster.cluster_file);
    let entries: Vec<serde_json::Value> = topology
        .dcs
        .iter()
        .map(|dc| {
            json!({
                "dc": dc.id,
                "name": dc.name,
                "url": format!("postgres://{}/postgres", dc.sql),
                "pid": cluster.pid(usize::from(dc.id)),
                "peer": dc.peer.to_string(),
            })
        })
        .collect();
    // Written whole, then renamed: a reader never sees half a file.
    let tmp = data_dir.join("demo.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&entries)?)?;
    std::fs::rename(&tmp, data_dir.join("demo.json"))?;
    println!(
        "Meridian demo: {} data centers, {} ms one-way between them (cluster file {}).",
        topology.dcs.len(),
        cfg.wan_delay_ms,
        cluster_file.display()
    );
    for dc in &topology.dcs {
        println!(
            "  DC {} {:<10} psql postgres://{}/postgres   (pid {})",
            dc.id,
            dc.name,
            dc.sql,
            cluster.pid(usize::from(dc.id)).unwrap_or(0)
        );
    }
    println!(
        "Change the WAN while it runs: meridian wan --cluster {} --delay-ms 80 | --cut DC | --heal DC",
        cluster_file.display()
    );
    println!("Ctrl-C stops the cluster.");
    crate::node::shutdown_signal().await;
    println!("stopping the nodes");
    drop(cluster);
    Ok(())
}
