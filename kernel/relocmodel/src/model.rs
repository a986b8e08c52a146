//! An online linear model of a move's benefit: `benefit = w . x` in Q16, trained after every
//! measured move by normalized least mean squares (`w += mu * err * x / (eps + |x|^2)`) with
//! a small ridge decay (`w -= w * lambda`), all in integer arithmetic.

use crate::features::{F, Features, N_FEATURES};
use crate::fixed::{ONE, clamp, div, mul};

/// Bound of every weight.
pub const WEIGHT_BOUND: i64 = 64 * ONE;
/// Bound of a prediction (a benefit is a relative change, within [-1, 1]; some slack).
pub const PREDICTION_BOUND: i64 = 2 * ONE;

/// The model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Weights, Q16, one per feature.
    pub weights: [i64; N_FEATURES],
    /// Step size `mu`, Q16.
    pub step: i64,
    /// Ridge decay per update, Q16.
    pub decay: i64,
    /// Regularizer of the normalization, Q16.
    pub eps: i64,
    /// Outcomes it was trained on.
    pub trained: u64,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            weights: [0; N_FEATURES],
            step: ONE / 2,
            decay: ONE / 2048,
            eps: ONE / 4,
            trained: 0,
        }
    }
}

impl Model {
    /// A model starting from `weights` (a prior belief the outcomes then correct).
    pub fn with_prior(weights: [i64; N_FEATURES]) -> Self {
        Self {
            weights: weights.map(|w| clamp(w, WEIGHT_BOUND)),
            ..Self::default()
        }
    }

    /// The textbook placement rule as a prior: moving off a loaded core, away from the
    /// islands it runs with, onto an idle core with none of them, pays; a hot island gains a
    /// little from a 2 MiB page. `benefit = (load_s - load_t)/2 + (co_s - co_t)/2 + page/8`.
    pub fn placement_prior() -> Self {
        let mut w = [0; N_FEATURES];
        w[F::LoadSource as usize] = ONE / 2;
        w[F::LoadTarget as usize] = -ONE / 2;
        w[F::CoexecSource as usize] = ONE / 2;
        w[F::CoexecTarget as usize] = -ONE / 2;
        w[F::PageChange as usize] = ONE / 8;
        Self::with_prior(w)
    }

    /// Predicted benefit of the move `x` describes, Q16 (clamped to +-2).
    pub fn predict(&self, x: &Features) -> i64 {
        let sum = self
            .weights
            .iter()
            .zip(x.values.iter())
            .map(|(&w, &v)| i128::from(mul(w, v)))
            .sum::<i128>();
        let sum = i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX });
        clamp(sum, PREDICTION_BOUND)
    }

    /// Trains on one measured outcome: the move `x` describes had benefit `measured` (Q16).
    /// Returns the prediction it made before the update.
    pub fn train(&mut self, x: &Features, measured: i64) -> i64 {
        let predicted = self.predict(x);
        let err = clamp(measured, PREDICTION_BOUND) - predicted;
        let scale = div(mul(self.step, err), self.eps + x.norm2());
        for (w, &v) in self.weights.iter_mut().zip(x.values.iter()) {
            let decayed = *w - mul(*w, self.decay);
            *w = clamp(decayed + mul(scale, v), WEIGHT_BOUND);
        }
        self.trained += 1;
        predicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::from_milli;

    /// A small deterministic generator (xorshift), so the tests need no crate.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in [0, 1] as Q16.
        pub(crate) fn unit(&mut self) -> i64 {
            (self.next() % (ONE as u64 + 1)) as i64
        }
    }

    fn sample(rng: &mut Rng) -> (Features, i64) {
        let mut f = Features::default();
        let (ls, lt, cs, ct) = (rng.unit(), rng.unit(), rng.unit(), rng.unit());
        f.set(F::LoadSource, ls)
            .set(F::LoadTarget, lt)
            .set(F::CoexecSource, cs)
            .set(F::CoexecTarget, ct)
            .set(F::HeatNow, rng.unit());
        // The hidden truth: relief at the source minus crowding at the target, a small cost.
        let y = mul(from_milli(400), ls - lt) + mul(from_milli(500), cs - ct) - from_milli(50);
        (f, y)
    }

    fn mae(errors: &[i64]) -> i64 {
        errors.iter().map(|e| e.abs()).sum::<i64>() / errors.len() as i64
    }

    #[test]
    fn error_falls_on_a_learnable_target() {
        let mut m = Model::default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut errors = Vec::new();
        for _ in 0..400 {
            let (f, y) = sample(&mut rng);
            let p = m.train(&f, y);
            errors.push(p - y);
        }
        let first = mae(&errors[..40]);
        let last = mae(&errors[360..]);
        assert!(last * 4 < first, "first {first} last {last}");
        assert!(last < from_milli(40), "last {last}");
        // The weights found the structure: source load helps, target load hurts.
        assert!(m.weights[F::LoadSource as usize] > from_milli(200));
        assert!(m.weights[F::LoadTarget as usize] < -from_milli(200));
        assert!(m.weights[F::CoexecSource as usize] > from_milli(250));
        assert_eq!(m.trained, 400);
    }

    #[test]
    fn a_prior_the_outcomes_contradict_is_unlearned() {
        // The world: moves gain nothing, whatever the loads (plus noise of +-0.2).
        let mut m = Model::placement_prior();
        let mut rng = Rng(42);
        let mut errors = Vec::new();
        for _ in 0..200 {
            let (f, _) = sample(&mut rng);
            let noise = (rng.unit() - ONE / 2) * 2 / 5;
            let p = m.train(&f, noise);
            errors.push(p - noise);
        }
        let first = mae(&errors[..20]);
        let last = mae(&errors[180..]);
        assert!(last * 3 < first * 2, "first {first} last {last}");
        // Down to the noise (uniform +-0.2 has a mean absolute value of 0.1).
        assert!(last < from_milli(130), "last {last}");
        assert!(m.weights[F::LoadSource as usize].abs() < from_milli(150));
    }

    #[test]
    fn noise_does_not_blow_up_the_weights() {
        let mut m = Model::default();
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let (f, y) = sample(&mut rng);
            let noise = (rng.unit() - ONE / 2) / 2;
            m.train(&f, y + noise);
        }
        for w in m.weights {
            assert!(w.abs() < 2 * ONE, "weight {w}");
        }
        let (f, y) = sample(&mut rng);
        assert!((m.predict(&f) - y).abs() < from_milli(200));
    }

    #[test]
    fn extreme_inputs_stay_bounded() {
        let mut m = Model::default();
        let mut f = Features::default();
        for i in 1..N_FEATURES {
            f.values[i] = 4 * ONE;
        }
        for _ in 0..100 {
            m.train(&f, i64::MAX);
        }
        assert!(m.predict(&f) <= PREDICTION_BOUND);
        assert!(m.weights.iter().all(|w| w.abs() <= WEIGHT_BOUND));
    }
}
