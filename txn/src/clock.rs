//! Timestamps: a hybrid logical clock fed by the runtime.
//!
//! Begin timestamps (the wound-wait priority and transaction id) and commit versions come
//! from one [`HybridClock`]: `max(physical now, last issued + 1)`. It never goes backwards,
//! never issues a value twice, and is seeded at start-up above the store's last committed
//! version, so versions keep increasing across restarts even if the wall clock does not.
//! The clock is pure: the physical time is passed in by the caller (the runtime reads the
//! system clock; the simulator passes simulated time).

/// Source of physical time in microseconds. Implemented by the runtime and the simulator.
pub trait PhysicalClock: Send + Sync {
    fn now_micros(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_micros(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A hybrid logical clock.
#[derive(Debug, Clone, Copy)]
pub struct HybridClock {
    last: u64,
}

impl HybridClock {
    /// A clock that will issue values above `floor`.
    pub fn new(floor: u64) -> Self {
        HybridClock { last: floor }
    }

    /// The next timestamp given the physical time `now`.
    pub fn tick(&mut self, now: u64) -> u64 {
        self.last = now.max(self.last + 1);
        self.last
    }

    /// The last value issued.
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// A hybrid logical clock for several data centers (docs/protocol.md §1.2): a value is
/// physical µs × 2⁸ + the issuing DC's id, so values issued by different DCs never tie,
/// and each issued value is above the clock, above everything observed and above the
/// caller's floor. Pure, like [`HybridClock`]: time is passed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DcClock {
    last: u64,
}

impl DcClock {
    /// The next value of DC `dc` at physical time `now`, above `above`.
    pub fn issue(&mut self, dc: u8, now: u64, above: u64) -> u64 {
        let phys = now
            .max(DcClock::physical(above) + 1)
            .max(DcClock::physical(self.last) + 1);
        self.last = (phys << 8) | u64::from(dc);
        self.last
    }

    /// Absorbs a value seen from elsewhere; true if the clock moved.
    pub fn observe(&mut self, v: u64) -> bool {
        let moved = v > self.last;
        self.last = self.last.max(v);
        moved
    }

    /// A clock whose high-water is `last` (restored from disk).
    pub fn starting_at(last: u64) -> DcClock {
        DcClock { last }
    }

    /// The highest value issued or observed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The largest value any DC can issue at physical time `phys` (µs).
    pub fn latest_at(phys: u64) -> u64 {
        (phys << 8) | 0xff
    }

    /// The physical time (µs) a value was issued at.
    pub fn physical(v: u64) -> u64 {
        v >> 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_clock_values_are_tagged_unique_and_above_what_was_seen() {
        let mut a = DcClock::default();
        let v1 = a.issue(1, 100, 0);
        assert_eq!((DcClock::physical(v1), v1 & 0xff), (100, 1));
        // Time going back, or a floor above the clock: still increasing.
        let v2 = a.issue(1, 50, 0);
        assert!(v2 > v1);
        let floor = (500 << 8) | 2;
        assert!(a.issue(1, 100, floor) > floor);
        let mut b = DcClock::default();
        assert!(b.observe(v2));
        assert!(!b.observe(v1));
        let w = b.issue(2, 0, 0);
        assert!(w > v2 && w & 0xff == 2);
    }

    #[test]
    fn strictly_increasing_even_if_time_goes_back() {
        let mut c = HybridClock::new(100);
        assert_eq!(c.tick(50), 101);
        assert_eq!(c.tick(500), 500);
        assert_eq!(c.tick(400), 501);
        assert_eq!(c.last(), 501);
    }
}
