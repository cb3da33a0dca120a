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

/// A peer not heard from for this long is suspected by the protocol
/// (`replication::Participant::set_suspected`): live peers send `Closed` every few
/// milliseconds.
const SUSPECT_AFTER: Duration = Duration::from_millis(500);

/// Round trips older than this no longer count towards [`PeerHealth::max_rtt_us`].
pub const RTT_WINDOW: Duration = Duration::from_secs(10);

/// Round trips kept per peer at most (probes go every 100 ms: 10 s of them).
const RTT_SAMPLES_MAX: usize = 128;

/// Which peers to evict (docs/protocol.md §7.8): those silent for `after` or longer
/// (`heard_ago[d]`: how long since DC d was last heard, None: not since this node
/// started `uptime` ago), as long as this node hears a majority of DCs, itself
/// included, within [`UP_WITHIN`]. A node cut off from the others evicts nobody: it
/// cannot tell who is out, and it retires nothing meanwhile anyway.
pub fn due_for_eviction(
    me: DcId,
    heard_ago: &[Option<Duration>],
    uptime: Duration,
    after: Duration,
) -> Vec<DcId> {
    if !in_contact_with_majority(me, heard_ago) {
        return Vec::new();
    }
    (0..heard_ago.len())
        .filter(|d| *d != usize::from(me) && heard_ago[*d].unwrap_or(uptime) >= after)
        .map(|d| d as DcId)
        .collect()
}

/// Whether a majority of DCs, `me` included, were heard within [`UP_WITHIN`].
fn in_contact_with_majority(me: DcId, heard_ago: &[Option<Duration>]) -> bool {
    let in_contact = heard_ago
        .iter()
        .enumerate()
        .filter(|(d, ago)| *d == usize::from(me) || ago.is_some_and(|a| a <= UP_WITHIN))
        .count();
    in_contact > heard_ago.len() / 2
}

/// What probes measured of one peer's round trips.
#[derive(Default)]
struct Measured {
    /// (when, round trip µs), oldest first.
    rtts: VecDeque<(Instant, u64)>,
}

/// Whether this node's clock agrees with enough of its peers' for it to coordinate
/// commits and serve fresh reads: commit wait and fresh snapshots assume every clock
/// within ε of every other. A peer's clock is *provably* off when the offset a probe
/// measured, less half the probe's round trip (the estimate's uncertainty), exceeds ε.
/// The node refuses when it cannot count a majority of DCs — itself and the peers
/// provably within ε — while some peer is provably off: the node whose clock is the
/// outlier stops, the others go on (CockroachDB's rule: a node off from a majority of
/// its peers quits). Pure: time is the caller's (µs on any monotonic scale), so the
/// simulator drives the same rule over its simulated probes.
pub struct OffsetCheck {
    me: DcId,
    dcs: usize,
    bound_us: u64,
    /// Per DC: (when, round trip µs, the peer's clock minus this node's µs), last probe.
    last: Vec<Option<(u64, u64, i64)>>,
}

impl OffsetCheck {
    pub fn new(me: DcId, dcs: usize, bound_us: u64) -> OffsetCheck {
        OffsetCheck {
            me,
            dcs,
            bound_us,
            last: vec![None; dcs],
        }
    }

    /// A probe of `dc` came back at `at_us` after `rtt_us` and found its clock
    /// `offset_us` ahead of this node's.
    pub fn measured(&mut self, at_us: u64, dc: DcId, rtt_us: u64, offset_us: i64) {
        if let Some(last) = self.last.get_mut(usize::from(dc)) {
            *last = Some((at_us, rtt_us, offset_us));
        }
    }

    /// The peer's clock minus this node's, as the last probe measured it.
    pub fn offset_us(&self, dc: DcId) -> Option<i64> {
        self.last.get(usize::from(dc))?.map(|(_, _, o)| o)
    }

    /// How far beyond ε `dc`'s clock provably is (µs), if it is: None when within, or
    /// when the last measurement is older than [`RTT_WINDOW`] (too old to say).
    pub fn beyond_bound(&self, now_us: u64, dc: DcId) -> Option<u64> {
        let (_, rtt, offset) = self.recent(now_us, dc)?;
        let provable = offset.unsigned_abs().saturating_sub(rtt / 2);
        (provable > self.bound_us).then_some(provable)
    }

    fn recent(&self, now_us: u64, dc: DcId) -> Option<(u64, u64, i64)> {
        let last = (*self.last.get(usize::from(dc))?)?;
        (now_us.saturating_sub(last.0) <= RTT_WINDOW.as_micros() as u64).then_some(last)
    }

    /// Why this node must not coordinate commits or serve fresh reads now, if it must not.
    pub fn refusal(&self, now_us: u64) -> Option<String> {
        let mut far = Vec::new();
        let mut near = 0;
        for dc in (0..self.dcs as DcId).filter(|d| *d != self.me) {
            if self.recent(now_us, dc).is_none() {
                continue;
            }
            match self.beyond_bound(now_us, dc) {
                Some(beyond) => far.push(format!(
                    "DC {dc} by at least {:.1} ms",
                    beyond as f64 / 1000.0
                )),
                None => near += 1,
            }
        }
        if far.is_empty() || 1 + near >= replication::quorum(self.dcs) {
            return None;
        }
        Some(format!(
            "this node's clock is off {} beyond the bound of {:.1} ms that commit wait \
             assumes, and no majority of DCs agrees with it: it coordinates no commits and \
             serves no fresh reads until the clocks agree again (fix the clock sync)",
            far.join(", "),
            self.bound_us as f64 / 1000.0
        ))
    }
}

pub struct PeerHealth {
    topology: Topology,
    me: DcId,
    wan: Arc<Wan>,
    start: Instant,
    /// Per DC: µs after `start` of the last delivery from it, plus one (0: never).
    heard: Vec<AtomicU64>,
    /// Per DC: the same for the last answer to one of this node's probes: it heard us.
    answered: Vec<AtomicU64>,
    /// Per DC: it asked to be rebuilt (`Rejoin`) and has sent nothing since.
    rebuilding: Vec<std::sync::atomic::AtomicBool>,
    measured: Vec<Mutex<Measured>>,
    /// Clock offsets against ε (time: µs since `start`).
    offsets: Mutex<OffsetCheck>,
    /// Whether the last check found such a peer (to log changes once).
    offset_refused: std::sync::atomic::AtomicBool,
    /// Held while a peer is evicted or recorded as rebuilt, so the two never interleave
    /// (an eviction that lands after a rebuild's `Rejoin` would evict the new directory).
    pub membership: tokio::sync::Mutex<()>,
    /// Per DC: evicted by this node, and not heard from since (a rebuilt DC is).
    evicted: Vec<std::sync::atomic::AtomicBool>,
}

impl PeerHealth {
    /// The WAN emulation this node sends through (and measures).
    pub fn wan(&self) -> &Arc<Wan> {
        &self.wan
    }

    pub fn new(topology: Topology, me: DcId, wan: Arc<Wan>, clock_bound_us: u64) -> PeerHealth {
        let heard = topology.dcs.iter().map(|_| AtomicU64::new(0)).collect();
        let answered = topology.dcs.iter().map(|_| AtomicU64::new(0)).collect();
        let measured = topology.dcs.iter().map(|_| Mutex::default()).collect();
        let evicted = topology.dcs.iter().map(|_| Default::default()).collect();
        let rebuilding = topology.dcs.iter().map(|_| Default::default()).collect();
        let offsets = Mutex::new(OffsetCheck::new(me, topology.dcs.len(), clock_bound_us));
        PeerHealth {
            topology,
            me,
            wan,
            start: Instant::now(),
            heard,
            answered,
            rebuilding,
            measured,
            offsets,
            offset_refused: std::sync::atomic::AtomicBool::new(false),
            membership: tokio::sync::Mutex::new(()),
            evicted,
        }
    }

    /// A probe of `dc` came back after `rtt_us` and found its clock `offset_us` ahead.
    pub fn measured(&self, dc: DcId, rtt_us: u64, offset_us: i64) {
        let Some(m) = self.measured.get(usize::from(dc)) else {
            return;
        };
        self.stamp(&self.answered, dc);
        let mut m = m.lock();
        if m.rtts.len() == RTT_SAMPLES_MAX {
            m.rtts.pop_front();
        }
        m.rtts.push_back((Instant::now(), rtt_us));
        drop(m);
        self.offsets
            .lock()
            .measured(self.now_us(), dc, rtt_us, offset_us);
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

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn offset_beyond_bound(&self, dc: DcId) -> Option<u64> {
        self.offsets.lock().beyond_bound(self.now_us(), dc)
    }

    fn offset_refusal(&self) -> Option<String> {
        self.offsets.lock().refusal(self.now_us())
    }

    /// The last round trip measured to `dc`.
    pub fn rtt_us(&self, dc: DcId) -> Option<u64> {
        let m = self.measured.get(usize::from(dc))?.lock();
        m.rtts.back().map(|(_, rtt)| *rtt)
    }

    /// `dc`'s clock minus this node's, as the last probe measured it.
    pub fn offset_us(&self, dc: DcId) -> Option<i64> {
        self.offsets.lock().offset_us(dc)
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

    /// Peers out of contact for `after` or longer that are not evicted yet
    /// ([`due_for_eviction`]). Contact is both ways: a peer heard but not answering
    /// probes (deaf: it sends, hears nothing) is out of contact, since it acknowledges
    /// nothing and its history grows as if it were down.
    pub fn due_for_eviction(&self, after: Duration) -> Vec<DcId> {
        due_for_eviction(self.me, &self.contacts_ago(), self.start.elapsed(), after)
            .into_iter()
            .filter(|d| !self.evicted[usize::from(*d)].load(Ordering::Relaxed))
            .collect()
    }

    /// How long `dc` has been out of contact, both ways (what `Silence` answers a
    /// peer): since its last batch or its last answer to a probe, whichever is older,
    /// or since this node started.
    pub fn silent_for(&self, dc: DcId) -> Duration {
        self.contact_ago(dc).unwrap_or_else(|| self.start.elapsed())
    }

    /// How long ago `dc` was last heard (None: not since this node started).
    fn heard_ago(&self, dc: DcId) -> Option<Duration> {
        self.ago(&self.heard, dc)
    }

    /// How long ago this node and `dc` last heard each other (None: not both since this
    /// node started).
    fn contact_ago(&self, dc: DcId) -> Option<Duration> {
        Some(
            self.ago(&self.heard, dc)?
                .max(self.ago(&self.answered, dc)?),
        )
    }

    /// [`Self::contact_ago`] of every DC.
    fn contacts_ago(&self) -> Vec<Option<Duration>> {
        (0..self.heard.len() as DcId)
            .map(|d| self.contact_ago(d))
            .collect()
    }

    fn ago(&self, stamps: &[AtomicU64], dc: DcId) -> Option<Duration> {
        match stamps.get(usize::from(dc))?.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                self.start
                    .elapsed()
                    .saturating_sub(Duration::from_micros(at - 1)),
            ),
        }
    }

    /// Records now as the last time of `stamps` for `dc`.
    fn stamp(&self, stamps: &[AtomicU64], dc: DcId) {
        if let Some(at) = stamps.get(usize::from(dc)) {
            at.store(
                self.start.elapsed().as_micros() as u64 + 1,
                Ordering::Relaxed,
            );
        }
    }

    /// This node evicted `dc` (shown in `SHOW DATA CENTERS` until `dc` is heard again,
    /// which only a rebuilt directory can be).
    pub fn set_evicted(&self, dc: DcId) {
        if let Some(e) = self.evicted.get(usize::from(dc)) {
            e.store(true, Ordering::Relaxed);
        }
    }

    /// A batch from `dc` arrived.
    pub fn heard(&self, dc: DcId) {
        for flag in [&self.evicted, &self.rebuilding] {
            if let Some(f) = flag.get(usize::from(dc)) {
                f.store(false, Ordering::Relaxed);
            }
        }
        self.stamp(&self.heard, dc);
    }

    /// `dc` asked to be rebuilt: it counts as in contact both ways now, and until it
    /// sends again (once its copy is written and it runs) it is being rebuilt, which
    /// the eviction period allows for ([`super::evict::eviction_period`]).
    pub fn rejoining(&self, dc: DcId) {
        self.heard(dc);
        self.stamp(&self.answered, dc);
        if let Some(f) = self.rebuilding.get(usize::from(dc)) {
            f.store(true, Ordering::Relaxed);
        }
    }

    /// Whether `dc` asked to be rebuilt and has sent nothing since.
    pub fn is_rebuilding(&self, dc: DcId) -> bool {
        self.rebuilding
            .get(usize::from(dc))
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Whether this node is in contact, both ways, with a majority of DCs (itself
    /// included): only then does it judge who is out (see [`due_for_eviction`]).
    pub fn in_contact_with_majority(&self) -> bool {
        in_contact_with_majority(self.me, &self.contacts_ago())
    }

    pub fn statuses(&self) -> Vec<DcStatus> {
        self.topology
            .dcs
            .iter()
            .map(|dc| {
                let local = dc.id == self.me;
                let (link, cut) = self.wan.link(self.me, dc.id);
                let ago = if local { None } else { self.heard_ago(dc.id) };
                let state = if local {
                    "local"
                } else if self.evicted[usize::from(dc.id)].load(Ordering::Relaxed) {
                    "evicted"
                } else if self.offset_beyond_bound(dc.id).is_some() {
                    "clock offset"
                } else if cut {
                    "cut"
                } else if ago.is_some_and(|a| a <= UP_WITHIN) {
                    if self.contact_ago(dc.id).is_some_and(|a| a <= UP_WITHIN) {
                        "up"
                    } else {
                        "deaf" // heard, but it answers no probe: it does not hear us
                    }
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

    /// Peers not heard for [`SUSPECT_AFTER`]. One way only: a probe's answer takes a
    /// round trip, which on a long link nears the threshold, so a deaf peer is not
    /// suspected (its split votes wait τ_rec).
    fn suspected(&self) -> Vec<DcId> {
        (0..self.heard.len() as DcId)
            .filter(|d| {
                *d != self.me
                    && self.heard_ago(*d).unwrap_or_else(|| self.start.elapsed()) >= SUSPECT_AFTER
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::{
        DcSpec, Learn, Link, DEFAULT_EVICT_AFTER_S, DEFAULT_MAX_HISTORY_RECORDS,
    };

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
            evict_after_s: DEFAULT_EVICT_AFTER_S,
            max_history_records: DEFAULT_MAX_HISTORY_RECORDS,
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

    /// Issue 12, item 5: a node whose clock is provably further than ε from a majority
    /// stops coordinating commits; a peer provably off shows in SHOW DATA CENTERS; an
    /// offset within the measurement's uncertainty counts as agreeing.
    #[test]
    fn a_clock_provably_off_from_a_majority_stops_commits() {
        let h = health(1_000);
        h.measured(1, 20_000, 9_000);
        assert_eq!(
            h.commit_refusal(),
            None,
            "9 ms measured over a 20 ms round trip"
        );
        h.measured(2, 20_000, -40_000);
        assert_eq!(
            h.commit_refusal(),
            None,
            "DC 2 is the outlier: this node and DC 1 agree"
        );
        assert_eq!(h.statuses()[2].state, "clock offset");
        assert_eq!(h.statuses()[2].clock_offset_ms, Some(-40.0));
        h.measured(1, 20_000, -45_000);
        let why = h
            .commit_refusal()
            .expect("off from both peers: this node is the outlier");
        assert!(why.contains("DC 1 by at least 35.0 ms"), "{why}");
        assert!(why.contains("DC 2 by at least 30.0 ms"), "{why}");
        h.measured(1, 20_000, 500);
        assert_eq!(h.commit_refusal(), None, "DC 1 agrees again");
        assert_eq!(h.max_rtt_us(), Some(20_000));
    }

    #[test]
    fn an_old_measurement_says_nothing_and_a_lone_far_peer_with_no_other_refuses() {
        let mut c = OffsetCheck::new(0, 3, 1_000);
        c.measured(0, 1, 2_000, 50_000);
        assert!(
            c.refusal(1_000).is_some(),
            "DC 1 provably off, DC 2 not heard: no majority agrees"
        );
        let later = RTT_WINDOW.as_micros() as u64 + 1_000;
        assert_eq!(c.beyond_bound(later, 1), None, "too old to say");
        assert_eq!(c.refusal(later), None);
        let mut five = OffsetCheck::new(0, 5, 1_000);
        for dc in [1, 2] {
            five.measured(0, dc, 2_000, 50_000);
        }
        for dc in [3, 4] {
            five.measured(0, dc, 2_000, 0);
        }
        assert_eq!(five.refusal(10), None, "three of five agree");
    }

    /// Issue 12, item 7: a peer silent for the eviction period is evicted, but only by a
    /// node that hears a majority; nobody is evicted by a node cut off from the rest.
    #[test]
    fn a_peer_silent_past_the_period_is_evicted_by_a_node_in_a_majority() {
        let s = |secs| Some(Duration::from_secs(secs));
        let (after, up) = (Duration::from_secs(600), Duration::from_secs(650));
        let none = Vec::<DcId>::new();
        assert_eq!(
            due_for_eviction(0, &[None, s(1), s(700)], up, after),
            vec![2]
        );
        assert_eq!(due_for_eviction(0, &[None, s(1), None], up, after), vec![2]);
        let early = Duration::from_secs(500);
        assert_eq!(due_for_eviction(0, &[None, s(1), None], early, after), none);
        assert_eq!(due_for_eviction(0, &[None, s(1), s(599)], up, after), none);
        assert_eq!(
            due_for_eviction(0, &[None, s(700), s(700)], up, after),
            none,
            "cut off from both peers: it cannot tell who is out"
        );
        assert_eq!(due_for_eviction(0, &[None, s(3), None], up, after), none);
        let five = [s(0), None, s(1), s(900), s(700)];
        assert_eq!(due_for_eviction(1, &five, up, after), vec![3, 4]);
        let h = health(1_000);
        let after = Duration::from_millis(30);
        std::thread::sleep(2 * after);
        assert_eq!(
            h.due_for_eviction(after),
            Vec::<DcId>::new(),
            "nobody heard"
        );
        h.heard(1);
        assert_eq!(
            h.due_for_eviction(after),
            Vec::<DcId>::new(),
            "heard, but DC 1 never answered a probe: no contact with a majority"
        );
        h.measured(1, 1_000, 0);
        assert_eq!(h.due_for_eviction(after), vec![2], "silent since the start");
        h.set_evicted(2);
        assert_eq!(h.due_for_eviction(after), Vec::<DcId>::new());
        assert_eq!(h.statuses()[2].state, "evicted");
        h.rejoining(2);
        assert_eq!(h.statuses()[2].state, "up", "a rebuilt directory is heard");
        assert_eq!(h.due_for_eviction(after), Vec::<DcId>::new());
        assert!(h.is_rebuilding(2), "until it sends: its copy may take long");
        h.heard(2);
        assert!(!h.is_rebuilding(2));
    }

    /// A deaf peer (it sends, hears nothing) is heard but answers no probe: it is out
    /// of contact, and evicted as a silent one would be, since it acknowledges nothing.
    #[test]
    fn a_peer_heard_but_answering_no_probe_is_out_of_contact() {
        let h = health(1_000);
        let after = Duration::from_millis(30);
        for dc in [1, 2] {
            h.heard(dc);
            h.measured(dc, 1_000, 0);
        }
        std::thread::sleep(2 * after);
        for dc in [1, 2] {
            h.heard(dc);
        }
        h.measured(1, 1_000, 0);
        assert_eq!(h.due_for_eviction(after), vec![2]);
        assert!(h.silent_for(2) >= 2 * after && h.silent_for(1) < after);
        assert_eq!(h.suspected(), Vec::<DcId>::new(), "suspicion is one way");
        h.measured(2, 1_000, 0);
        assert_eq!(h.due_for_eviction(after), Vec::<DcId>::new());
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
