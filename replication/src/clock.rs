//! The data centers' hybrid logical clock (docs/protocol.md §1.2).
//!
//! Versions, transaction ids and vote floors are values of one clock shape: physical µs
//! × 2⁸ + the issuing DC's id. Pure: the caller passes physical time in.

/// A hybrid logical clock for several data centers (docs/protocol.md §1.2): a value is
/// physical µs × 2⁸ + the issuing DC's id, so values issued by different DCs never tie,
/// and each issued value is above the clock, above everything observed and above the
/// caller's floor. Pure: time is passed in.
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

/// Shows a version as `µs.dc` (physical time, issuing DC), the way logs, errors and
/// golden scripts print them; 0 (nothing) prints as `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowVersion(pub u64);

impl std::fmt::Display for ShowVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        write!(f, "{}.{}", DcClock::physical(self.0), self.0 & 0xff)
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
}
