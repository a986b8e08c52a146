//! What the model sees of one candidate move: Q16 values, clamped to [-4, 4].

use crate::fixed::{ONE, clamp};

/// Number of features (the bias included).
pub const N_FEATURES: usize = 12;

/// Feature names, in order (for `model --json`).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "bias",
    "heat_now",
    "heat_next_phase",
    "trend",
    "coexec_source",
    "coexec_target",
    "load_source",
    "load_target",
    "page_change",
    "history",
    "phase_position",
    "cycles_per_call_log2",
];

/// Index of each feature in [`Features::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum F {
    /// Always 1.
    Bias = 0,
    /// The island's calls per second in the last window over the hottest island's (0..1).
    HeatNow,
    /// Its calls per second remembered for the next phase of the workload, same scale.
    HeatNextPhase,
    /// Heat now minus heat in the window before (-1..1): is it heating up?
    Trend,
    /// Co-execution with the islands that live on (or run on) the island's current core (0..1).
    CoexecSource,
    /// Co-execution with the islands at the target core (0..1).
    CoexecTarget,
    /// Load of the source core over the last window (0..1).
    LoadSource,
    /// Load of the target core (0..1).
    LoadTarget,
    /// +1 for a move into a 2 MiB page, -1 back to 4 KiB pages, 0 otherwise.
    PageChange,
    /// Mean measured benefit of the island's earlier moves (-1..1), 0 if none.
    History,
    /// How far the current workload phase has run against its remembered length (0..1).
    PhasePosition,
    /// log2 of sampled cycles per call, over 32.
    CyclesPerCall,
}

/// One candidate's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Q16 values, indexed by [`F`].
    pub values: [i64; N_FEATURES],
}

impl Default for Features {
    fn default() -> Self {
        let mut values = [0; N_FEATURES];
        values[F::Bias as usize] = ONE;
        Self { values }
    }
}

impl Features {
    /// Sets feature `f` to `v` (clamped to [-4, 4]).
    pub fn set(&mut self, f: F, v: i64) -> &mut Self {
        if f != F::Bias {
            self.values[f as usize] = clamp(v, 4 * ONE);
        }
        self
    }

    /// Feature `f`.
    pub fn get(&self, f: F) -> i64 {
        self.values[f as usize]
    }

    /// Sum of squares, in Q16.
    pub fn norm2(&self) -> i64 {
        self.values
            .iter()
            .map(|&x| crate::fixed::mul(x, x))
            .sum::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_is_fixed_and_values_are_clamped() {
        let mut f = Features::default();
        f.set(F::Bias, 0)
            .set(F::Trend, 100 * ONE)
            .set(F::LoadSource, -9 * ONE);
        assert_eq!(f.get(F::Bias), ONE);
        assert_eq!(f.get(F::Trend), 4 * ONE);
        assert_eq!(f.get(F::LoadSource), -4 * ONE);
        assert_eq!(f.norm2(), ONE + 16 * ONE + 16 * ONE);
        assert_eq!(
            FEATURE_NAMES[F::CyclesPerCall as usize],
            "cycles_per_call_log2"
        );
    }
}
