//! The measured benefit of a move: the throughput of the island's threads (its calls per
//! second) in the window after the move against a baseline, as a relative change in [-1, 1]:
//! `(after - baseline) / max(after, baseline)`. The baseline is the window before the move
//! when the island ran in it; an island moved ahead of a phase was idle before, so its
//! baseline is its remembered heat in the phase it is measured in (its last run there, in the
//! old place). Cycles per call before and after are reported beside it.

use crate::fixed::{ONE, ratio};

/// Calls fewer than this in a window do not make a baseline (the island barely ran).
pub const MIN_ACTIVE_CALLS: u64 = 2;

/// What one island did over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowRate {
    /// Calls in the window.
    pub calls: u64,
    /// Sampled cycles in the window.
    pub cycles: u64,
    /// Length of the window, in clock ticks.
    pub elapsed_ticks: u64,
    /// Clock ticks per second.
    pub ticks_per_second: u64,
}

impl WindowRate {
    /// Calls per second.
    pub fn calls_per_second(&self) -> u64 {
        if self.elapsed_ticks == 0 {
            return 0;
        }
        let v = u128::from(self.calls) * u128::from(self.ticks_per_second)
            / u128::from(self.elapsed_ticks);
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// Sampled cycles per call, when it was called.
    pub fn cycles_per_call(&self) -> Option<u64> {
        self.cycles.checked_div(self.calls)
    }

    /// Whether it ran enough to be a baseline.
    pub fn active(&self) -> bool {
        self.calls >= MIN_ACTIVE_CALLS
    }
}

/// How a baseline was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The window before the move.
    Before,
    /// The island's remembered heat in the phase of the window after the move.
    Seasonal,
    /// Neither: the island had never run there, the benefit is taken as 0.
    None,
}

/// A measured move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Benefit, Q16 in [-1, 1].
    pub benefit: i64,
    /// Baseline calls per second.
    pub baseline_cps: u64,
    /// Calls per second after the move.
    pub after_cps: u64,
    /// Cycles per call before (when it ran) and after.
    pub cycles_per_call_before: Option<u64>,
    /// Cycles per call after.
    pub cycles_per_call_after: Option<u64>,
    /// Where the baseline came from.
    pub baseline: Baseline,
}

/// Measures a move from the windows around it and the island's remembered heat in the phase
/// of `after` (if any).
pub fn measure(before: WindowRate, after: WindowRate, seasonal_cps: Option<u64>) -> Measured {
    let after_cps = after.calls_per_second();
    let (baseline_cps, baseline) = if before.active() {
        (before.calls_per_second(), Baseline::Before)
    } else {
        match seasonal_cps.filter(|&s| s > 0) {
            Some(s) => (s, Baseline::Seasonal),
            None => (after_cps, Baseline::None),
        }
    };
    let benefit = if after_cps >= baseline_cps {
        ratio(after_cps - baseline_cps, after_cps.max(1))
    } else {
        -ratio(baseline_cps - after_cps, baseline_cps)
    };
    Measured {
        benefit: benefit.clamp(-ONE, ONE),
        baseline_cps,
        after_cps,
        cycles_per_call_before: before.cycles_per_call(),
        cycles_per_call_after: after.cycles_per_call(),
        baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(calls: u64, cycles: u64) -> WindowRate {
        WindowRate {
            calls,
            cycles,
            elapsed_ticks: 1000,
            ticks_per_second: 1000,
        }
    }

    #[test]
    fn doubling_is_half_and_halving_is_minus_half() {
        let m = measure(w(10, 1000), w(20, 1800), None);
        assert_eq!(m.benefit, ONE / 2);
        assert_eq!(m.baseline, Baseline::Before);
        assert_eq!(m.cycles_per_call_before, Some(100));
        assert_eq!(m.cycles_per_call_after, Some(90));
        let m = measure(w(20, 0), w(10, 0), None);
        assert_eq!(m.benefit, -ONE / 2);
        assert_eq!(measure(w(5, 0), w(5, 0), None).benefit, 0);
    }

    #[test]
    fn idle_before_uses_the_phase_memory() {
        let m = measure(w(0, 0), w(30, 0), Some(15));
        assert_eq!(m.baseline, Baseline::Seasonal);
        assert_eq!(m.benefit, ONE / 2);
        let m = measure(w(1, 0), w(30, 0), None);
        assert_eq!(m.baseline, Baseline::None);
        assert_eq!(m.benefit, 0);
        let m = measure(w(0, 0), w(0, 0), Some(40));
        assert_eq!(m.benefit, -ONE, "it stopped running entirely");
    }
}
