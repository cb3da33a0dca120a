//! What a node knows about every data center of its cluster, for `SHOW DATA CENTERS`:
//! the topology, the emulated WAN from here, and when each peer was last heard from
//! (any delivered batch; live peers send `Closed` every few milliseconds, so silence
//! means down, paused or cut off).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use replication::DcId;
use txn::{ClusterView, DcStatus};

use super::topology::Topology;
use super::wan::Wan;

/// A peer heard from within this long is `up`.
const UP_WITHIN: Duration = Duration::from_secs(2);

pub struct PeerHealth {
    topology: Topology,
    me: DcId,
    wan: Arc<Wan>,
    start: Instant,
    /// Per DC: µs after `start` of the last delivery from it, plus one (0: never).
    heard: Vec<AtomicU64>,
}

impl PeerHealth {
    pub fn new(topology: Topology, me: DcId, wan: Arc<Wan>) -> PeerHealth {
        let heard = topology.dcs.iter().map(|_| AtomicU64::new(0)).collect();
        PeerHealth {
            topology,
            me,
            wan,
            start: Instant::now(),
            heard,
        }
    }

    /// A batch from `dc` arrived.
    pub fn heard(&self, dc: DcId) {
        if let Some(at) = self.heard.get(usize::from(dc)) {
            at.store(
                self.start.elapsed().as_micros() as u64 + 1,
                Ordering::Relaxed,
            );
        }
    }

    pub fn statuses(&self) -> Vec<DcStatus> {
        let now = self.start.elapsed();
        self.topology
            .dcs
            .iter()
            .map(|dc| {
                let local = dc.id == self.me;
                let (link, cut) = self.wan.link(self.me, dc.id);
                let heard = self.heard[usize::from(dc.id)].load(Ordering::Relaxed);
                let ago = (!local && heard > 0)
                    .then(|| now.saturating_sub(Duration::from_micros(heard - 1)));
                let state = if local {
                    "local"
                } else if cut {
                    "cut"
                } else if ago.is_some_and(|a| a <= UP_WITHIN) {
                    "up"
                } else {
                    "unreachable"
                };
                DcStatus {
                    id: dc.id,
                    name: dc.name.clone(),
                    sql_addr: dc.sql.to_string(),
                    peer_addr: dc.peer.to_string(),
                    local,
                    state,
                    delay_ms: if local { 0 } else { link.delay_ms },
                    jitter_ms: if local { 0 } else { link.jitter_ms },
                    loss: if local { 0.0 } else { link.loss },
                    last_heard_ms: ago.map(|a| a.as_millis() as u64),
                }
            })
            .collect()
    }
}

impl ClusterView for PeerHealth {
    fn data_centers(&self) -> Vec<DcStatus> {
        self.statuses()
    }
}
