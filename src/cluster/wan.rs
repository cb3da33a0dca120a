//! WAN emulation in the transport (this kernel has no `tc netem`): per DC pair a one-way
//! delay, jitter and loss rate, and DCs cut off from every other DC. Applied by the
//! sender to protocol messages between different DCs, changeable while running
//! (`meridian wan`). Messages within a DC are never delayed. The delay is added to the
//! real network's and the protocol is told nothing of it: its timers follow the round
//! trips probes measure ([`super::status::PeerHealth`]), which include both. So on real
//! data centers leave it at 0: setting it to the real delay would double it.
//!
//! It also sets this node's clock off by an emulated offset ([`EmulatedClock`], `meridian
//! wan --clock-offset-ms N --clock-dc D`), which the protocol, the transaction manager and
//! the probes all read: the clock check of [`super::status::OffsetCheck`] exercised on
//! real processes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::Rng;
use replication::DcId;

use txn::{PhysicalClock, SystemClock};

use super::topology::Link;

#[derive(Debug)]
struct State {
    default: Link,
    pairs: BTreeMap<(DcId, DcId), Link>,
    cut: BTreeSet<DcId>,
    /// DCs that send but hear nothing: what is sent to them is lost.
    deaf: BTreeSet<DcId>,
}

/// The emulated network between this node's DC and the others, and the emulated offset
/// of this node's clock (tests of the clock check on real processes).
#[derive(Debug)]
pub struct Wan {
    state: RwLock<State>,
    clock_offset_us: AtomicI64,
}

/// This node's clock as the protocol and the probes read it: the system clock plus the
/// emulated offset.
pub struct EmulatedClock(pub Arc<Wan>);

impl PhysicalClock for EmulatedClock {
    fn now_micros(&self) -> u64 {
        SystemClock
            .now_micros()
            .saturating_add_signed(self.0.clock_offset_us())
    }
}

/// A description of the current settings, for `SHOW` and the admin command.
#[derive(Debug, Clone, PartialEq)]
pub struct WanView {
    pub default: Link,
    pub pairs: Vec<((DcId, DcId), Link)>,
    pub cut: Vec<DcId>,
    pub deaf: Vec<DcId>,
}

impl Wan {
    pub fn new(default: Link) -> Wan {
        Wan {
            state: RwLock::new(State {
                default,
                pairs: BTreeMap::new(),
                cut: BTreeSet::new(),
                deaf: BTreeSet::new(),
            }),
            clock_offset_us: AtomicI64::new(0),
        }
    }

    /// How far this node's clock is set off the system clock (µs).
    pub fn clock_offset_us(&self) -> i64 {
        self.clock_offset_us.load(Ordering::Acquire)
    }

    pub fn set_clock_offset_us(&self, offset_us: i64) {
        self.clock_offset_us.store(offset_us, Ordering::Release);
    }

    /// How long a message from `from` to `to` travels; None if it is lost.
    pub fn delay(&self, from: DcId, to: DcId) -> Option<Duration> {
        if from == to {
            return Some(Duration::ZERO);
        }
        let state = self.state.read();
        if state.cut.contains(&from) || state.cut.contains(&to) || state.deaf.contains(&to) {
            return None;
        }
        let link = state.pairs.get(&pair(from, to)).unwrap_or(&state.default);
        let mut rng = rand::rng();
        if link.loss > 0.0 && rng.random_bool(link.loss.min(1.0)) {
            return None;
        }
        let jitter = if link.jitter_ms > 0 {
            rng.random_range(0..=link.jitter_ms * 1_000)
        } else {
            0
        };
        Some(Duration::from_micros(link.delay_ms * 1_000 + jitter))
    }

    /// The link between `a` and `b` and whether either is cut off (both ways; a deaf
    /// DC is not: it shows as such by answering no probe).
    pub fn link(&self, a: DcId, b: DcId) -> (Link, bool) {
        let state = self.state.read();
        let link = *state.pairs.get(&pair(a, b)).unwrap_or(&state.default);
        (link, state.cut.contains(&a) || state.cut.contains(&b))
    }

    /// Sets the link between `a` and `b`, or the default for every pair (None).
    pub fn set_link(&self, between: Option<(DcId, DcId)>, link: Link) {
        let mut state = self.state.write();
        match between {
            Some((a, b)) => {
                state.pairs.insert(pair(a, b), link);
            }
            None => {
                state.default = link;
                state.pairs.clear();
            }
        }
    }

    /// Cuts `dc` off from every other DC (true), or heals it (false), both ways.
    pub fn set_cut(&self, dc: DcId, cut: bool) {
        let mut state = self.state.write();
        state.deaf.remove(&dc);
        if cut {
            state.cut.insert(dc);
        } else {
            state.cut.remove(&dc);
        }
    }

    /// Makes `dc` deaf: what any DC sends it is lost, what it sends arrives (healed by
    /// [`Self::set_cut`] with false).
    pub fn set_deaf(&self, dc: DcId) {
        let mut state = self.state.write();
        state.cut.remove(&dc);
        state.deaf.insert(dc);
    }

    pub fn view(&self) -> WanView {
        let state = self.state.read();
        WanView {
            default: state.default,
            pairs: state.pairs.iter().map(|(k, v)| (*k, *v)).collect(),
            cut: state.cut.iter().copied().collect(),
            deaf: state.deaf.iter().copied().collect(),
        }
    }
}

impl WanView {
    /// One line, e.g. `default 50±5 ms loss 0; 0-2 120±0 ms loss 0; cut: 1`.
    pub fn describe(&self) -> String {
        let link = |l: &Link| format!("{}±{} ms loss {}", l.delay_ms, l.jitter_ms, l.loss);
        let mut parts = vec![format!("default {}", link(&self.default))];
        for ((a, b), l) in &self.pairs {
            parts.push(format!("{a}-{b} {}", link(l)));
        }
        if !self.cut.is_empty() {
            let cut: Vec<String> = self.cut.iter().map(ToString::to_string).collect();
            parts.push(format!("cut: {}", cut.join(",")));
        }
        if !self.deaf.is_empty() {
            let deaf: Vec<String> = self.deaf.iter().map(ToString::to_string).collect();
            parts.push(format!("deaf: {}", deaf.join(",")));
        }
        parts.join("; ")
    }
}

fn pair(a: DcId, b: DcId) -> (DcId, DcId) {
    (a.min(b), a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_per_pair_cuts_and_local_traffic() {
        let wan = Wan::new(Link {
            delay_ms: 50,
            jitter_ms: 0,
            loss: 0.0,
        });
        assert_eq!(wan.delay(0, 1), Some(Duration::from_millis(50)));
        assert_eq!(wan.delay(2, 2), Some(Duration::ZERO));
        wan.set_link(
            Some((2, 0)),
            Link {
                delay_ms: 120,
                jitter_ms: 10,
                loss: 0.0,
            },
        );
        let d = wan.delay(0, 2).unwrap();
        assert!(d >= Duration::from_millis(120) && d <= Duration::from_millis(130));
        wan.set_cut(1, true);
        assert_eq!(wan.delay(0, 1), None);
        assert_eq!(wan.delay(1, 2), None);
        assert_eq!(wan.delay(1, 1), Some(Duration::ZERO));
        wan.set_cut(1, false);
        assert!(wan.delay(0, 1).is_some());
        wan.set_deaf(1);
        assert_eq!(wan.delay(0, 1), None, "a deaf DC hears nothing");
        assert!(wan.delay(1, 0).is_some(), "what a deaf DC sends arrives");
        wan.set_cut(1, false);
        assert!(wan.delay(0, 1).is_some());
        wan.set_link(
            None,
            Link {
                delay_ms: 0,
                jitter_ms: 0,
                loss: 1.0,
            },
        );
        assert_eq!(wan.delay(0, 2), None, "the default replaces pair settings");
    }
}
