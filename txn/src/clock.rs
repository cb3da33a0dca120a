//! Timestamps: a hybrid logical clock fed by the runtime (the data centers' clock,
//! `replication::DcClock`, lives with the protocol).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_even_if_time_goes_back() {
        let mut c = HybridClock::new(100);
        assert_eq!(c.tick(50), 101);
        assert_eq!(c.tick(500), 500);
        assert_eq!(c.tick(400), 501);
        assert_eq!(c.last(), 501);
    }
}
