//! Latency figures shared by the node runtime, the simulator and the benchmarks.

/// The p-th percentile (nearest rank) of `values`, 0 if empty.
pub fn percentile<T: Copy + Ord + Default>(values: &[T], p: usize) -> T {
    if values.is_empty() {
        return T::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(percentile(&[3u32, 1, 2], 50), 2);
        assert_eq!(percentile(&[1u64, 2, 3, 4], 99), 4);
        assert_eq!(percentile::<u32>(&[], 50), 0);
    }
}
