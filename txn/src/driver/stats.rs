//! The driver's latency figures: commits, the protocol phase, WAN delays per commit and
//! syncs, kept in fixed-size histograms and logged every [`super::STATS_PERIOD`] in
//! which anything happened.

use hdrhistogram::Histogram;

/// Counters and histograms since the last log line. Memory is fixed: a histogram's size
/// depends on its range and precision, not on the number of samples.
pub(super) struct Stats {
    committed: u64,
    aborted: u64,
    protocol_us: Histogram<u64>,
    wan_delays: Histogram<u64>,
    sync_us: Histogram<u64>,
    synced_bytes: u64,
}

/// Longest latency recorded exactly, µs (longer ones are clamped): one hour.
const LATENCY_US_MAX: u64 = 3_600_000_000;

fn histogram(max: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max, 2).expect("constant histogram bounds are valid")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            committed: 0,
            aborted: 0,
            protocol_us: histogram(LATENCY_US_MAX),
            wan_delays: histogram(1 << 16),
            sync_us: histogram(LATENCY_US_MAX),
            synced_bytes: 0,
        }
    }
}

impl Stats {
    pub(super) fn committed(&mut self, protocol_us: u64, wan_delays: u32) {
        self.committed += 1;
        self.protocol_us.saturating_record(protocol_us);
        self.wan_delays.saturating_record(u64::from(wan_delays));
    }

    pub(super) fn aborted(&mut self) {
        self.aborted += 1;
    }

    pub(super) fn synced(&mut self, sync_us: u64, bytes: usize) {
        self.sync_us.saturating_record(sync_us);
        self.synced_bytes += bytes as u64;
    }

    /// Logs and resets the figures, if anything happened.
    pub(super) fn log(&mut self, period_s: u64) {
        if self.committed + self.aborted + self.sync_us.len() == 0 {
            return;
        }
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        tracing::info!(
            committed = self.committed,
            aborted = self.aborted,
            protocol_ms_p50 = ms(&self.protocol_us, 0.5),
            protocol_ms_p99 = ms(&self.protocol_us, 0.99),
            wan_delays_p50 = self.wan_delays.value_at_quantile(0.5),
            syncs = self.sync_us.len(),
            sync_ms_p50 = ms(&self.sync_us, 0.5),
            sync_ms_p99 = ms(&self.sync_us, 0.99),
            synced_kib = self.synced_bytes / 1024,
            "commit protocol, last {period_s} s"
        );
        *self = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_reset_after_each_log_line() {
        let mut stats = Stats::default();
        stats.committed(1_500, 2);
        stats.committed(u64::MAX, 3); // clamped, not dropped
        stats.synced(700, 4096);
        assert_eq!(stats.protocol_us.len(), 2);
        assert_eq!(stats.wan_delays.value_at_quantile(0.5), 2);
        stats.log(10);
        assert_eq!(stats.committed + stats.sync_us.len(), 0);
    }
}
