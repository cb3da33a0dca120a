//! Physical time, fed to the pure cores by the runtime: the node reads the system clock,
//! the simulator and the history scripts pass their own. Timestamps themselves are the
//! data centers' hybrid clock, `replication::DcClock`.

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
