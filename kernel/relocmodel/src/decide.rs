//! The decision rules. Each window the engine hands over every candidate move; the decider
//! scores them with the model and picks the moves to make:
//!
//! - **Threshold with hysteresis**: an island is *armed* when its best candidate's predicted
//!   benefit reaches `enter`, and stays armed until it falls below `exit` (< `enter`), so a
//!   prediction hovering at the threshold does not flip a decision every window. A move
//!   disarms the island.
//! - **Budget**: a token bucket of `moves_per_second` (at most `burst` saved up); a move takes
//!   one token.
//! - **One measurement between two moves of an island**: a moved island is *pending* until the
//!   engine measured the outcome and called [`Decider::measured`]; no candidate of a pending
//!   island is taken.
//! - **Exploration**: the model learns only from moves it makes, so while it has been trained
//!   on fewer than `warmup` outcomes, and then every `explore_every` windows, a window with no
//!   predicted move may take the candidate with the best heuristic prior (marked `Explore`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::fixed::{ONE, from_milli};
use crate::model::Model;
use crate::select::Candidate;

/// The knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Predicted benefit that arms an island (Q16).
    pub enter: i64,
    /// Predicted benefit below which it is disarmed again (Q16).
    pub exit: i64,
    /// Moves per second the budget refills.
    pub moves_per_second: u32,
    /// Tokens the budget holds at most.
    pub burst: u32,
    /// Outcomes below which the model counts as untrained (explore when nothing is predicted).
    pub warmup: u64,
    /// After the warm-up, windows between two exploration moves (0: never).
    pub explore_every: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enter: from_milli(150),
            exit: from_milli(80),
            moves_per_second: 20,
            burst: 2,
            warmup: 8,
            explore_every: 12,
        }
    }
}

/// How a move was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceKind {
    /// The model predicted a benefit over the threshold.
    Predicted,
    /// An exploration move (model untrained or due).
    Explore,
}

/// A move to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The candidate.
    pub candidate: Candidate,
    /// The model's prediction for it (Q16).
    pub predicted: i64,
    /// How it was chosen.
    pub kind: ChoiceKind,
}

/// Why candidates were not taken, counted per island and window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts {
    /// Not armed (prediction under the threshold).
    pub below_threshold: u64,
    /// Armed, but its last move is not measured yet.
    pub awaiting_measurement: u64,
    /// Armed, but the budget was spent.
    pub over_budget: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    armed: bool,
    pending: bool,
}

/// The decider.
#[derive(Debug, Clone)]
pub struct Decider {
    /// Its policy.
    pub policy: Policy,
    tokens: i64,
    islands: BTreeMap<u32, State>,
    /// Skips so far.
    pub skips: SkipCounts,
    window: u64,
    last_explore: u64,
    /// Moves chosen by prediction and by exploration.
    pub chosen: (u64, u64),
}

impl Decider {
    /// A decider with a full budget.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            tokens: i64::from(policy.burst) * ONE,
            islands: BTreeMap::new(),
            skips: SkipCounts::default(),
            window: 0,
            last_explore: 0,
            chosen: (0, 0),
        }
    }

    /// `elapsed_us` microseconds passed: the budget refills.
    pub fn refill(&mut self, elapsed_us: u64) {
        let add =
            i128::from(self.policy.moves_per_second) * i128::from(ONE) * i128::from(elapsed_us)
                / 1_000_000;
        let cap = i64::from(self.policy.burst) * ONE;
        self.tokens = (i128::from(self.tokens) + add).min(i128::from(cap)) as i64;
    }

    /// Whole moves the budget allows now.
    pub fn budget(&self) -> i64 {
        self.tokens / ONE
    }

    /// Whether `island` has a move awaiting measurement.
    pub fn pending(&self, island: u32) -> bool {
        self.islands.get(&island).is_some_and(|s| s.pending)
    }

    /// Whether `island` is armed.
    pub fn armed(&self, island: u32) -> bool {
        self.islands.get(&island).is_some_and(|s| s.armed)
    }

    /// Islands with a move awaiting measurement.
    pub fn pending_count(&self) -> usize {
        self.islands.values().filter(|s| s.pending).count()
    }

    /// The outcome of `island`'s last move was measured (or the move failed): it may move again.
    pub fn measured(&mut self, island: u32) {
        if let Some(s) = self.islands.get_mut(&island) {
            s.pending = false;
        }
    }

    /// One window: scores `candidates` with `model` and returns the moves to make (at most one
    /// per island), marking their islands pending and taking their budget.
    pub fn decide(&mut self, candidates: &[Candidate], model: &Model) -> Vec<Choice> {
        self.window += 1;
        // The best candidate of each island.
        let mut best: BTreeMap<u32, (Candidate, i64)> = BTreeMap::new();
        for c in candidates {
            let p = model.predict(&c.features);
            let better = best
                .get(&c.island)
                .is_none_or(|(b, bp)| (p, c.prior) > (*bp, b.prior));
            if better {
                best.insert(c.island, (*c, p));
            }
        }
        let mut ranked: Vec<(Candidate, i64)> = best.into_values().collect();
        ranked.sort_by_key(|(c, p)| (core::cmp::Reverse(*p), c.island));
        let mut out = Vec::new();
        for (c, p) in &ranked {
            let s = self.islands.entry(c.island).or_default();
            if *p >= self.policy.enter {
                s.armed = true;
            } else if *p < self.policy.exit {
                s.armed = false;
            }
            if !s.armed {
                self.skips.below_threshold += 1;
                continue;
            }
            if s.pending {
                self.skips.awaiting_measurement += 1;
                continue;
            }
            if self.tokens < ONE {
                self.skips.over_budget += 1;
                continue;
            }
            self.tokens -= ONE;
            s.pending = true;
            s.armed = false;
            self.chosen.0 += 1;
            out.push(Choice {
                candidate: *c,
                predicted: *p,
                kind: ChoiceKind::Predicted,
            });
        }
        let due = model.trained < self.policy.warmup
            || (self.policy.explore_every > 0
                && self.window - self.last_explore >= self.policy.explore_every);
        if out.is_empty() && due && self.tokens >= ONE {
            let pick = candidates
                .iter()
                .filter(|c| c.prior > 0 && !self.pending(c.island))
                .max_by_key(|c| (c.prior, core::cmp::Reverse(c.island)));
            if let Some(c) = pick {
                self.tokens -= ONE;
                self.last_explore = self.window;
                let s = self.islands.entry(c.island).or_default();
                s.pending = true;
                s.armed = false;
                self.chosen.1 += 1;
                out.push(Choice {
                    candidate: *c,
                    predicted: model.predict(&c.features),
                    kind: ChoiceKind::Explore,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{F, Features};
    use crate::select::{Reason, TargetKind};

    /// A model whose prediction is the `HeatNow` feature itself.
    fn echo_model(trained: u64) -> Model {
        let mut m = Model::default();
        m.weights[F::HeatNow as usize] = ONE;
        m.trained = trained;
        m
    }

    fn cand(island: u32, predicted_milli: i64, prior: i64) -> Candidate {
        let mut f = Features::default();
        f.set(F::HeatNow, from_milli(predicted_milli));
        Candidate {
            island,
            target: TargetKind::Core(1),
            reason: Reason::Hot,
            features: f,
            prior,
        }
    }

    fn policy() -> Policy {
        Policy {
            enter: from_milli(300),
            exit: from_milli(100),
            moves_per_second: 2,
            burst: 2,
            warmup: 0,
            explore_every: 0,
        }
    }

    #[test]
    fn hysteresis_arms_above_enter_and_disarms_below_exit() {
        let m = echo_model(100);
        let mut d = Decider::new(policy());
        // 200 is under `enter`: not armed, nothing moves.
        assert!(d.decide(&[cand(1, 200, 0)], &m).is_empty());
        assert!(!d.armed(1));
        // Pending blocks the move, but arming still follows the prediction.
        d.islands.entry(1).or_default().pending = true;
        assert!(d.decide(&[cand(1, 400, 0)], &m).is_empty());
        assert!(d.armed(1));
        assert_eq!(d.skips.awaiting_measurement, 1);
        // Between exit and enter it stays armed.
        assert!(d.decide(&[cand(1, 200, 0)], &m).is_empty());
        assert!(d.armed(1));
        d.measured(1);
        // Still armed at 200 once measured: it moves now (hysteresis, not the 300 bar).
        let c = d.decide(&[cand(1, 200, 0)], &m);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ChoiceKind::Predicted);
        assert!(!d.armed(1), "a move disarms");
        d.measured(1);
        assert!(d.decide(&[cand(1, 200, 0)], &m).is_empty(), "must re-arm");
        assert!(d.decide(&[cand(1, 50, 0)], &m).is_empty());
        assert!(!d.armed(1));
    }

    #[test]
    fn never_two_moves_of_one_island_without_a_measurement() {
        let m = echo_model(100);
        let mut d = Decider::new(Policy {
            moves_per_second: 1000,
            burst: 100,
            ..policy()
        });
        let mut moves = 0;
        for w in 0..50 {
            d.refill(1_000_000);
            let c = d.decide(&[cand(7, 900, 0), cand(7, 800, 0)], &m);
            assert!(c.len() <= 1, "one move per island per window");
            moves += c.len();
            if w % 10 == 9 {
                d.measured(7);
            }
        }
        assert_eq!(moves, 5, "one move per measurement");
    }

    #[test]
    fn the_budget_bounds_moves_per_second() {
        let m = echo_model(100);
        let mut d = Decider::new(policy());
        let mut moves = 0u64;
        // 10 simulated seconds in 10 ms windows, 20 islands always worth moving, every move
        // measured at once.
        for _ in 0..1000 {
            d.refill(10_000);
            let cands: Vec<Candidate> = (0..20).map(|i| cand(i, 900, 0)).collect();
            for c in d.decide(&cands, &m) {
                moves += 1;
                d.measured(c.candidate.island);
            }
        }
        // 2 per second over 10 s, plus the initial burst of 2.
        assert!((20..=22).contains(&moves), "{moves}");
        assert!(d.skips.over_budget > 0);
        assert!(d.budget() <= 2);
    }

    #[test]
    fn exploration_only_while_untrained_or_when_due() {
        let mut d = Decider::new(Policy {
            warmup: 3,
            explore_every: 0,
            moves_per_second: 1000,
            burst: 10,
            ..policy()
        });
        let cands = [cand(1, 0, ONE / 2), cand(2, 0, ONE), cand(3, 0, -ONE)];
        let m = echo_model(0);
        let c = d.decide(&cands, &m);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ChoiceKind::Explore);
        assert_eq!(c[0].candidate.island, 2, "the best prior");
        let c = d.decide(&cands, &m);
        assert_eq!(c[0].candidate.island, 1, "2 is pending");
        assert!(d.decide(&cands, &m).is_empty(), "3 has no positive prior");
        d.measured(1);
        d.measured(2);
        assert!(
            d.decide(&cands, &echo_model(3)).is_empty(),
            "trained: no exploration"
        );
        assert_eq!(d.chosen, (0, 2));
    }
}
