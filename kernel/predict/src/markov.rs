//! An order-k Markov model of task sequences with back-off.
//!
//! For every context of the last `j` tasks (`j` = 0..=k) the model counts which task came next.
//! A prediction uses the longest context of the current history that has been seen at least
//! [`Markov::min_support`] times, and falls back to shorter ones (down to order 0, the plain
//! task frequencies) when it has not. Counts of a context are halved when they pass
//! [`Markov::age_limit`], so a workload whose pattern changes is followed within a few dozen
//! observations instead of being outvoted by its whole history.
//!
//! Probabilities and confidence are in permille (integers only: the kernel may predict in
//! contexts where the FPU is not to be touched).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// A task's index in the model's name table.
pub type TaskId = u16;

/// What followed one context: counts per next task and their sum.
#[derive(Debug, Clone, Default)]
struct Counts {
    next: BTreeMap<TaskId, u64>,
    total: u64,
}

impl Counts {
    fn add(&mut self, task: TaskId, n: u64, age_limit: u64) {
        *self.next.entry(task).or_insert(0) += n;
        self.total += n;
        if self.total > age_limit {
            self.total = 0;
            self.next.retain(|_, c| {
                *c /= 2;
                *c > 0
            });
            self.total = self.next.values().sum();
        }
    }
}

/// One predicted next task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Task name (`chunk.export`).
    pub task: String,
    /// Probability in permille.
    pub permille: u32,
}

/// The model's answer for the current history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prediction {
    /// The order of the context used (0 = plain frequencies); `None` when the model knows
    /// nothing yet.
    pub order: Option<usize>,
    /// How many observations that context has.
    pub support: u64,
    /// Next tasks, most likely first.
    pub candidates: Vec<Candidate>,
    /// Confidence in the first candidate, permille: its probability scaled down when the
    /// context has few observations (`p * support / (support + 2)`), and by half again when
    /// the model had to back off below the order it was asked for.
    pub confidence: u32,
    /// Whether the model backed off below the order the history allowed.
    pub backed_off: bool,
}

impl Prediction {
    /// Confidence in candidate `i` (permille), by the same rule as [`Prediction::confidence`]
    /// for the first.
    pub fn confidence_of(&self, i: usize) -> u32 {
        let Some(c) = self.candidates.get(i) else {
            return 0;
        };
        let mut v = u64::from(c.permille) * self.support / (self.support + 2);
        if self.backed_off {
            v /= 2;
        }
        v as u32
    }

    /// The most likely next task.
    pub fn top(&self) -> Option<&str> {
        self.candidates.first().map(|c| c.task.as_str())
    }

    /// Whether `task` is among the first `n` candidates.
    pub fn in_top(&self, task: &str, n: usize) -> bool {
        self.candidates.iter().take(n).any(|c| c.task == task)
    }
}

/// The model.
#[derive(Debug, Clone)]
pub struct Markov {
    k: usize,
    /// A context needs this many observations before a prediction trusts it.
    pub min_support: u64,
    /// A context's counts are halved when their sum passes this.
    pub age_limit: u64,
    names: Vec<String>,
    contexts: BTreeMap<Vec<TaskId>, Counts>,
    history: Vec<TaskId>,
}

/// The highest order the model accepts.
pub const MAX_ORDER: usize = 8;

impl Markov {
    /// An empty model of order `k` (clamped to 0..=[`MAX_ORDER`]).
    pub fn new(k: usize) -> Self {
        Self {
            k: k.min(MAX_ORDER),
            min_support: 2,
            age_limit: 256,
            names: Vec::new(),
            contexts: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    /// The model's order.
    pub fn order(&self) -> usize {
        self.k
    }

    /// Changes the order; what was learned for orders up to the new one is kept.
    pub fn set_order(&mut self, k: usize) {
        self.k = k.min(MAX_ORDER);
        let k = self.k;
        self.contexts.retain(|ctx, _| ctx.len() <= k);
        let keep = self.history.len().saturating_sub(k);
        self.history.drain(..keep);
    }

    fn id(&mut self, task: &str) -> Option<TaskId> {
        if let Some(i) = self.names.iter().position(|n| n == task) {
            return Some(i as TaskId);
        }
        if self.names.len() >= usize::from(TaskId::MAX) {
            return None;
        }
        self.names.push(task.into());
        Some((self.names.len() - 1) as TaskId)
    }

    fn lookup(&self, task: &str) -> Option<TaskId> {
        self.names
            .iter()
            .position(|n| n == task)
            .map(|i| i as TaskId)
    }

    /// Seeds the model with `count` observations of `from` followed by `to` (order 1), e.g.
    /// from an image's recorded profile.
    pub fn seed_transition(&mut self, from: &str, to: &str, count: u64) {
        let (Some(f), Some(t)) = (self.id(from), self.id(to)) else {
            return;
        };
        if self.k >= 1 {
            let limit = self.age_limit;
            self.contexts
                .entry(alloc::vec![f])
                .or_default()
                .add(t, count, limit);
        }
    }

    /// Seeds the order-0 frequencies with `count` runs of `task`.
    pub fn seed_frequency(&mut self, task: &str, count: u64) {
        let Some(t) = self.id(task) else { return };
        let limit = self.age_limit;
        self.contexts
            .entry(Vec::new())
            .or_default()
            .add(t, count, limit);
    }

    /// Records that `task` ran next: every context of the history (orders 0..=k) learns it,
    /// then it joins the history.
    pub fn observe(&mut self, task: &str) {
        let Some(t) = self.id(task) else { return };
        let limit = self.age_limit;
        for j in 0..=self.k.min(self.history.len()) {
            let ctx = self.history[self.history.len() - j..].to_vec();
            self.contexts.entry(ctx).or_default().add(t, 1, limit);
        }
        self.history.push(t);
        if self.history.len() > self.k {
            self.history.remove(0);
        }
    }

    /// Forgets the history (not what was learned): the next prediction starts from order 0.
    pub fn reset_history(&mut self) {
        self.history.clear();
    }

    /// The tasks of the current history, oldest first.
    pub fn history(&self) -> Vec<&str> {
        self.history
            .iter()
            .map(|&t| self.names[usize::from(t)].as_str())
            .collect()
    }

    /// The next-task distribution after the current history.
    pub fn predict(&self) -> Prediction {
        self.predict_after(&self.history)
    }

    /// The distribution after a given history of task names (unknown names end the usable
    /// context there).
    pub fn predict_after_names(&self, history: &[&str]) -> Prediction {
        let mut ids = Vec::new();
        for name in history.iter().rev().take(self.k) {
            match self.lookup(name) {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        ids.reverse();
        self.predict_after(&ids)
    }

    fn predict_after(&self, history: &[TaskId]) -> Prediction {
        let wanted = self.k.min(history.len());
        for j in (0..=wanted).rev() {
            let ctx = &history[history.len() - j..];
            let Some(counts) = self.contexts.get(ctx) else {
                continue;
            };
            if counts.total < self.min_support && j > 0 {
                continue;
            }
            if counts.total == 0 {
                continue;
            }
            let mut next: Vec<(TaskId, u64)> = counts.next.iter().map(|(&t, &c)| (t, c)).collect();
            next.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let candidates: Vec<Candidate> = next
                .iter()
                .map(|&(t, c)| Candidate {
                    task: self.names[usize::from(t)].clone(),
                    permille: (c * 1000 / counts.total) as u32,
                })
                .collect();
            let mut p = Prediction {
                order: Some(j),
                support: counts.total,
                candidates,
                confidence: 0,
                backed_off: j < wanted,
            };
            p.confidence = p.confidence_of(0);
            return p;
        }
        Prediction::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(m: &mut Markov, seq: &[&str], times: usize) {
        for _ in 0..times {
            for t in seq {
                m.observe(t);
            }
        }
    }

    #[test]
    fn empty_model_predicts_nothing() {
        let m = Markov::new(2);
        let p = m.predict();
        assert_eq!(p.order, None);
        assert!(p.candidates.is_empty());
        assert_eq!(p.confidence, 0);
    }

    #[test]
    fn order_two_separates_what_order_one_cannot() {
        // After `b`, the next task depends on what came before `b`: a b c / d b e.
        let mut m = Markov::new(2);
        feed(&mut m, &["a", "b", "c", "d", "b", "e"], 20);
        let p = m.predict_after_names(&["a", "b"]);
        assert_eq!(p.order, Some(2));
        assert_eq!(p.top(), Some("c"));
        assert_eq!(p.candidates[0].permille, 1000);
        let p = m.predict_after_names(&["d", "b"]);
        assert_eq!(p.top(), Some("e"));
        // Order 1 alone sees a coin toss after `b`.
        let mut m1 = Markov::new(1);
        feed(&mut m1, &["a", "b", "c", "d", "b", "e"], 20);
        let p = m1.predict_after_names(&["b"]);
        assert_eq!(p.order, Some(1));
        assert_eq!(p.candidates[0].permille, 500);
        assert!(p.confidence < 500);
    }

    #[test]
    fn backs_off_to_lower_orders_for_unseen_contexts() {
        let mut m = Markov::new(3);
        feed(&mut m, &["a", "b"], 10);
        // `x b` was never seen as an order-2 context, but `b` was (order 1).
        let mut m2 = m.clone();
        m2.observe("x");
        m2.observe("b");
        let p = m2.predict();
        assert_eq!(p.order, Some(1), "{p:?}");
        assert_eq!(p.top(), Some("a"));
        // Backing off halves the confidence against a full-order answer.
        let full = m.predict_after_names(&["a", "b", "a"]);
        assert_eq!(full.order, Some(3));
        assert!(p.confidence < full.confidence, "{p:?} vs {full:?}");
        // A task never seen at all: only the frequencies are left.
        let p = m.predict_after_names(&["nope"]);
        assert_eq!(p.order, Some(0));
    }

    #[test]
    fn confidence_grows_with_support() {
        let mut m = Markov::new(1);
        m.min_support = 1;
        feed(&mut m, &["a", "b"], 1);
        let low = m.predict_after_names(&["a"]).confidence;
        feed(&mut m, &["a", "b"], 30);
        let high = m.predict_after_names(&["a"]).confidence;
        assert!(low < high, "{low} < {high}");
        assert!(high > 900);
        let p = m.predict_after_names(&["a"]);
        assert_eq!(p.confidence, p.confidence_of(0));
        assert_eq!(p.confidence_of(5), 0);
    }

    #[test]
    fn ageing_follows_a_changed_pattern() {
        let mut m = Markov::new(1);
        m.age_limit = 32;
        feed(&mut m, &["a", "b"], 200);
        assert_eq!(m.predict_after_names(&["a"]).top(), Some("b"));
        feed(&mut m, &["a", "c"], 30);
        assert_eq!(m.predict_after_names(&["a"]).top(), Some("c"));
    }

    #[test]
    fn seeds_from_a_profile() {
        let mut m = Markov::new(2);
        m.seed_frequency("a", 10);
        m.seed_frequency("b", 30);
        m.seed_transition("a", "c", 9);
        m.seed_transition("a", "b", 1);
        assert_eq!(m.predict().top(), Some("b"));
        let p = m.predict_after_names(&["a"]);
        assert_eq!((p.order, p.top()), (Some(1), Some("c")));
        assert_eq!(p.candidates[0].permille, 900);
    }

    #[test]
    fn set_order_keeps_lower_orders() {
        let mut m = Markov::new(3);
        feed(&mut m, &["a", "b", "c"], 10);
        m.set_order(1);
        assert_eq!(m.order(), 1);
        assert_eq!(m.history().len(), 1);
        let p = m.predict_after_names(&["b"]);
        assert_eq!((p.order, p.top()), (Some(1), Some("c")));
    }
}
