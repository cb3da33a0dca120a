//! The nemesis: every interval it picks a fault and a DC (seeded), holds the fault for
//! part of the interval, then undoes it — one DC at a time, so a majority is always up
//! and the cluster must keep committing:
//! - `kill`: `kill -9` the node, restart it from its data directory (recovery, catch-up);
//! - `pause`: SIGSTOP, then SIGCONT (a node that stops answering but keeps its state);
//! - `partition`: the transport cuts the DC off from every other DC, then heals it.
//!
//! Each action is recorded in the history as an operation of process `"nemesis"`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::history::{Body, Entry};
use super::Run;
use crate::cluster::local::LocalCluster;
use crate::cluster::transport::{proto::WanRequest, set_wan};
use crate::elle::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Pause,
    Partition,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        match s {
            "kill" => Ok(Fault::Kill),
            "pause" => Ok(Fault::Pause),
            "partition" => Ok(Fault::Partition),
            other => Err(format!("unknown fault '{other}' (kill, pause, partition)")),
        }
    }
}

/// `kill,pause` → the faults; `none` → no fault.
pub fn parse_faults(list: &str) -> Result<Vec<Fault>, String> {
    if list == "none" {
        return Ok(vec![]);
    }
    list.split(',').map(|f| f.trim().parse()).collect()
}

/// Runs until `stop`; returns the number of faults injected. Every fault is undone
/// before it returns.
pub(super) async fn run(
    cluster: Arc<tokio::sync::Mutex<LocalCluster>>,
    faults: Vec<Fault>,
    interval: Duration,
    seed: u64,
    stop: Arc<AtomicBool>,
    log: Arc<Run>,
) -> anyhow::Result<usize> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let mut events = 0;
    if faults.is_empty() {
        return Ok(0);
    }
    loop {
        // Healthy for the first half of each interval.
        if sleep_unless_stopped(interval / 2, &stop).await {
            return Ok(events);
        }
        let fault = faults[rng.random_range(0..faults.len())];
        let mut cluster = cluster.lock().await;
        let dc = rng.random_range(0..cluster.topology.dcs.len());
        let begin_ns = log.now_ns();
        let hold = interval / 4 + interval.mul_f64(rng.random_range(0.0..0.25));
        match fault {
            Fault::Kill => {
                cluster.kill(dc)?;
                tokio::time::sleep(hold).await;
                cluster.start(dc)?;
                cluster.wait_ready(dc, Duration::from_secs(60)).await?;
            }
            Fault::Pause => {
                cluster.signal(dc, "STOP")?;
                tokio::time::sleep(hold).await;
                cluster.signal(dc, "CONT")?;
            }
            Fault::Partition => {
                cut(&cluster, dc, true).await?;
                tokio::time::sleep(hold).await;
                cut(&cluster, dc, false).await?;
            }
        }
        events += 1;
        let f = format!("{fault:?}").to_lowercase();
        tracing::info!(fault = %f, dc, "nemesis: fault injected and undone");
        log.entries.lock().push(Entry {
            process: json!("nemesis"),
            begin_ns,
            end_ns: log.now_ns(),
            status: Status::Committed,
            body: Body::Nemesis {
                f,
                value: json!({"dc": dc, "held_ms": hold.as_millis() as u64}),
            },
            error: None,
        });
    }
}

/// Sleeps; true if `stop` was raised meanwhile.
async fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(50);
    let mut left = duration;
    while !left.is_zero() {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        let d = left.min(step);
        tokio::time::sleep(d).await;
        left -= d;
    }
    stop.load(Ordering::Acquire)
}

/// Cuts DC `dc` off (or heals it) at every node, retrying a node that does not answer.
async fn cut(cluster: &LocalCluster, dc: usize, cut: bool) -> anyhow::Result<()> {
    let request = WanRequest {
        cluster: cluster.topology.cluster.clone(),
        set_cut: true,
        dc: dc as u32,
        cut,
        ..WanRequest::default()
    };
    for node in &cluster.topology.dcs {
        let mut tries = 0;
        loop {
            match set_wan(node, None, request.clone()).await {
                Ok(_) => break,
                Err(e) if tries >= 20 => {
                    return Err(e).with_context(|| format!("cannot reach DC {}", node.id))
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
    Ok(())
}
