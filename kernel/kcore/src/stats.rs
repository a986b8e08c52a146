//! Summaries of measured samples: min, median, 99th percentile and max.

use alloc::vec::Vec;

/// A distribution of samples (cycles, instructions, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Distribution {
    /// How many samples.
    pub count: usize,
    /// Smallest.
    pub min: u64,
    /// Middle value (the lower middle for an even count).
    pub median: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Distribution {
    /// Summarizes `samples` (sorted in place). All zero when empty.
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |pct: usize| samples[(n * pct).div_ceil(100).clamp(1, n) - 1];
        Self {
            count: n,
            min: samples[0],
            median: samples[(n - 1) / 2],
            p99: rank(99),
            max: samples[n - 1],
        }
    }

    /// Summarizes samples after mapping each one (e.g. cycles to instructions).
    pub fn of_mapped(samples: &[u64], f: impl Fn(u64) -> u64) -> Self {
        let mut v: Vec<u64> = samples.iter().map(|s| f(*s)).collect();
        Self::of(&mut v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=200).rev().collect();
        let d = Distribution::of(&mut v);
        assert_eq!(
            (d.count, d.min, d.median, d.p99, d.max),
            (200, 1, 100, 198, 200)
        );
        let d = Distribution::of(&mut [7]);
        assert_eq!((d.min, d.median, d.p99, d.max), (7, 7, 7, 7));
        assert_eq!(Distribution::of(&mut []), Distribution::default());
    }
}
