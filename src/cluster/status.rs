//! What a node knows about every data center of its cluster, for `SHOW DATA CENTERS`
//! and the protocol's timers: the topology, the emulated WAN from here, when each peer
//! was last heard from (any delivered batch; live peers send `Closed` every few
//! milliseconds, so silence means down, paused or cut off), and the round trip and
//! clock offset to each peer as probes measured them ([`super::transport::Outbox::probe`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use replication::DcId;
use txn::{ClusterView, DcStatus};

use super::topology::Topology;
use super::wan::Wan;

/// A peer heard from within this long is `up`.
const UP_WITHIN: Duration = Duration::from_secs(2);

/// Round trips older than this no longer count towards [`PeerHealth::max_rtt_us`].
pub const RTT_WINDOW: Duration = Duration::from_secs(10);

/// Round trips kept per peer at most (probes go every 100 ms: 10 s of them).
const RTT_SAMPLES_MAX: usize = 128;

/// What probes measured of one peer.
#[derive(Default)]
struct Measured {
    /// (when, round trip µs), oldest first.
    rtts: VecDeque<(Instant, u64)>,
    /// The peer's clock minus this node's, µs (last probe).
    offset_us: Option<i64>,
}

pub struct PeerHealth {
    topology: Topology,
    me: DcId,
    wan: Arc<Wan>,
    start: Instant,
    /// Per DC: µs after `start` of the last delivery from it, plus one (0: never).
    heard: Vec<AtomicU64>,
    measured: Vec<Mutex<Measured>>,
    /// ε, the offset bound commit wait assumes: a peer provably further away stops
    /// this node from coordinating commits.
    clock_bound_us: u64,
    /// Whether the last check found such a peer (to log changes once).
    offset_refused: std::sync::atomic::AtomicBool,
}

impl PeerHealth {
    pub fn new(topology: Topology, me: DcId, wan: Arc<Wan>, clock_bound_us: u64) -> PeerHealth {
        let heard = topology.dcs.iter().map(|_| AtomicU64::new(0)).collect();
        let measured = topology.dcs.iter().map(|_| Mutex::default()).collect();
        PeerHealth {
            topology,
            me,
            wan,
            start: Instant::now(),
            heard,
            measured,
            clock_bound_us,
            offset_refused: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A probe of `dc` came back after `rtt_us` and found its clock `offset_us` ahead.
    pub fn measured(&self, dc: DcId, rtt_us: u64, offset_us: i64) {
        let Some(m) = self.measured.get(usize::from(dc)) else {
            return;
        };
        let mut m = m.lock();
        if m.rtts.len() == RTT_SAMPLES_MAX {
            m.rtts.pop_front();
        }
        m.rtts.push_back((Instant::now(), rtt_us));
        m.offset_us = Some(offset_us);
        drop(m);
        let refusal = self.offset_refusal();
        if self
            .offset_refused
            .swap(refusal.is_some(), Ordering::AcqRel)
            != refusal.is_some()
        {
            match refusal {
                Some(why) => tracing::error!("{why}"),
                None => {
                    tracing::warn!("clock offsets are within the bound again: coordinating commits")
                }
            }
        }
    }

    /// How far beyond ε `dc`'s clock provably is (µs): the measured offset less half the
    /// round trip it was measured over (the estimate's uncertainty), if that exceeds ε.
    fn offset_beyond_bound(&self, dc: DcId) -> Option<u64> {
        let m = self.measured.get(usize::from(dc))?.lock();
        let (at, rtt) = *m.rtts.back()?;
        if at.elapsed() > RTT_WINDOW {
            return None; // too old to say
        }
        let provable = m.offset_us?.unsigned_abs().saturating_sub(rtt / 2);
        (provable > self.clock_bound_us).then_some(provable)
    }

    fn offset_refusal(&self) -> Option<String> {
        self.topology.dcs.iter().find_map(|dc| {
            let beyond = self.offset_beyond_bound(dc.id)?;
            Some(format!(
                "this node's clock is at least {:.1} ms off DC {}'s, beyond the bound of \
                 {:.1} ms that commit wait assumes: it coordinates no commits until the \
                 clocks agree again (fix the clock sync of one of them)",
                beyond as f64 / 1000.0,
                dc.id,
                self.clock_bound_us as f64 / 1000.0
            ))
        })
    }

    /// The last round trip measured to `dc`.
    pub fn rtt_us(&self, dc: DcId) -> Option<u64> {
        let m = self.measured.get(usize::from(dc))?.lock();
        m.rtts.back().map(|(_, rtt)| *rtt)
    }

    /// `dc`'s clock minus this node's, as the last probe measured it.
    pub fn offset_us(&self, dc: DcId) -> Option<i64> {
        self.measured.get(usize::from(dc))?.lock().offset_us
    }

    /// The round trip the protocol's timers allow for: per peer, the median of its
    /// probes within the last [`RTT_WINDOW`], and the longest of those. A median, not
    /// the maximum: probes that waited out a peer's pause or a partition come back
    /// seconds late, and timers scaled to them (a recovery timeout of 12 one-way delays,
    /// a vote floor 1.5 behind) would stall every commit for the whole window. None
    /// until a probe came back.
    pub fn max_rtt_us(&self) -> Option<u64> {
        self.measured
            .iter()
            .filter_map(|m| {
                let m = m.lock();
                let mut recent: Vec<u64> = m
                    .rtts
                    .iter()
                    .filter(|(at, _)| at.elapsed() <= RTT_WINDOW)
                    .map(|(_, rtt)| *rtt)
                    .collect();
                if recent.is_empty() {
                    return None;
                }
                let mid = recent.len() / 2;
                Some(*recent.select_nth_unstable(mid).1)
            })
            .max()
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
                } else if self.offset_beyond_bound(dc.id).is_some() {
                    "clock offset"
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
                    rtt_ms: self.rtt_us(dc.id).map(|us| us as f64 / 1000.0),
                    clock_offset_ms: self.offset_us(dc.id).map(|us| us as f64 / 1000.0),
                }
            })
            .collect()
    }
}

impl ClusterView for PeerHealth {
    fn data_centers(&self) -> Vec<DcStatus> {
        self.statuses()
    }

    fn commit_refusal(&self) -> Option<String> {
        self.offset_refusal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::{DcSpec, Learn, Link};

    fn health(clock_bound_us: u64) -> PeerHealth {
        let dcs = (0..3u8)
            .map(|i| DcSpec {
                id: i,
                name: format!("dc{i}"),
                sql: ([127, 0, 0, 1], 1000 + u16::from(i)).into(),
                peer: ([127, 0, 0, 1], 2000 + u16::from(i)).into(),
                tls_cert: None,
                tls_key: None,
            })
            .collect();
        let topology = Topology {
            cluster: "c".into(),
            learn: Learn::Owner,
            wan: Link::default(),
            dcs,
            tls: None,
        };
        PeerHealth::new(
            topology,
            0,
            Arc::new(Wan::new(Link::default())),
            clock_bound_us,
        )
    }

    /// Issue 12, item 5: a peer whose clock is provably further than ε stops this node
    /// from coordinating commits, and shows in SHOW DATA CENTERS; an offset within the
    /// measurement's uncertainty does not.
    #[test]
    fn a_peer_clock_provably_beyond_the_bound_stops_commits() {
        let h = health(1_000);
        h.measured(1, 20_000, 9_000);
        assert_eq!(
            h.commit_refusal(),
            None,
            "9 ms measured over a 20 ms round trip"
        );
        h.measured(2, 20_000, -40_000);
        let why = h.commit_refusal().expect("40 ms off, ±10 ms");
        assert!(why.contains("at least 30.0 ms off DC 2"), "{why}");
        assert_eq!(h.statuses()[2].state, "clock offset");
        assert_eq!(h.statuses()[2].clock_offset_ms, Some(-40.0));
        h.measured(2, 20_000, 500);
        assert_eq!(h.commit_refusal(), None, "back within the bound");
        assert_eq!(h.max_rtt_us(), Some(20_000));
    }

    /// Probes that waited out a pause do not stretch the timers: the estimate is each
    /// peer's median round trip, the longest across peers.
    #[test]
    fn the_round_trip_estimate_ignores_probes_held_up_by_a_pause() {
        let h = health(1_000);
        for _ in 0..9 {
            h.measured(1, 20_000, 0);
            h.measured(2, 30_000, 0);
        }
        for late in [3_000_000, 2_000_000, 1_000_000] {
            h.measured(1, late, 0);
        }
        assert_eq!(h.max_rtt_us(), Some(30_000));
        for _ in 0..20 {
            h.measured(1, 80_000, 0);
        }
        assert_eq!(h.max_rtt_us(), Some(80_000), "a longer path is followed");
    }
}
