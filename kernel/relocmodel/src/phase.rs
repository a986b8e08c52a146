//! What the engine remembers between windows: each island's heat in each phase of a repeating
//! workload ([`PhaseMemory`], a seasonal memory: the engine can see a phase coming), and which
//! islands run in the same windows ([`CoExec`]).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::fixed::{ONE, ratio};

/// Heat (calls per second while it runs) of each island in each phase of the workload, and
/// each phase's length in windows: exponentially weighted means (a new window's rate counts a
/// quarter, a new occurrence's length half).
#[derive(Debug, Clone, Default)]
pub struct PhaseMemory {
    phases: u32,
    heat: BTreeMap<(u32, u32), u64>,
    length_windows: Vec<u32>,
    seen: Vec<u32>,
}

impl PhaseMemory {
    /// Phases of the workload it remembers (0: none announced).
    pub fn phases(&self) -> u32 {
        self.phases
    }

    /// A workload with `phases` phases starts: a different count forgets everything.
    pub fn set_phases(&mut self, phases: u32) {
        if phases != self.phases {
            *self = Self {
                phases,
                length_windows: alloc::vec![0; phases as usize],
                seen: alloc::vec![0; phases as usize],
                ..Self::default()
            };
        }
    }

    /// In phase `phase`, `island` ran at `calls_per_second` over one window (the caller
    /// reports only windows in which it ran).
    pub fn observe(&mut self, phase: u32, island: u32, calls_per_second: u64) {
        if phase >= self.phases {
            return;
        }
        self.heat
            .entry((island, phase))
            .and_modify(|h| *h = (*h * 3 + calls_per_second) / 4)
            .or_insert(calls_per_second);
    }

    /// An occurrence of `phase` ended after `windows` windows.
    pub fn end_phase(&mut self, phase: u32, windows: u32) {
        let Some(len) = self.length_windows.get_mut(phase as usize) else {
            return;
        };
        *len = if *len == 0 {
            windows
        } else {
            (*len + windows).div_ceil(2)
        };
        if let Some(s) = self.seen.get_mut(phase as usize) {
            *s += 1;
        }
    }

    /// Times `phase` has been seen to its end.
    pub fn seen(&self, phase: u32) -> u32 {
        self.seen.get(phase as usize).copied().unwrap_or(0)
    }

    /// The heat `island` is expected to have in `phase` (`None`: never observed there).
    pub fn expected(&self, island: u32, phase: u32) -> Option<u64> {
        self.heat.get(&(island, phase)).copied()
    }

    /// Remembered length of `phase` in windows (0: never seen to its end).
    pub fn length_windows(&self, phase: u32) -> u32 {
        self.length_windows
            .get(phase as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The phase after `phase`.
    pub fn next(&self, phase: u32) -> u32 {
        if self.phases == 0 {
            0
        } else {
            (phase + 1) % self.phases
        }
    }

    /// Whether `a` and `b` are both hot in `phase` (each at least a quarter of the hottest
    /// island remembered there): they will run together.
    pub fn co_hot(&self, phase: u32, a: u32, b: u32) -> bool {
        let max = self.hottest(phase);
        if max == 0 {
            return false;
        }
        let hot = |i| self.expected(i, phase).is_some_and(|h| h * 4 >= max);
        hot(a) && hot(b)
    }

    /// The hottest island's remembered heat in `phase`.
    pub fn hottest(&self, phase: u32) -> u64 {
        self.heat
            .iter()
            .filter(|((_, p), _)| *p == phase)
            .map(|(_, &h)| h)
            .max()
            .unwrap_or(0)
    }
}

/// Co-execution: for each pair of islands, an exponentially weighted fraction of windows in
/// which both ran (Q16, 0..1; each window moves it a quarter of the way).
#[derive(Debug, Clone, Default)]
pub struct CoExec {
    pairs: BTreeMap<(u32, u32), i64>,
}

impl CoExec {
    /// One window closed; `active` lists the islands that ran in it.
    pub fn record_window(&mut self, active: &[u32]) {
        for v in self.pairs.values_mut() {
            *v -= *v / 4;
        }
        for (i, &a) in active.iter().enumerate() {
            for &b in &active[i + 1..] {
                if a == b {
                    continue;
                }
                let v = self.pairs.entry(key(a, b)).or_insert(0);
                *v += ONE / 4;
            }
        }
        self.pairs.retain(|_, v| *v > ONE / 256);
    }

    /// Co-execution of `a` and `b` (Q16).
    pub fn of(&self, a: u32, b: u32) -> i64 {
        if a == b {
            return 0;
        }
        self.pairs.get(&key(a, b)).copied().unwrap_or(0)
    }

    /// Pairs with co-execution at least `threshold`, strongest first.
    pub fn strongest(&self, threshold: i64) -> Vec<(u32, u32, i64)> {
        let mut v: Vec<_> = self
            .pairs
            .iter()
            .filter(|(_, v)| **v >= threshold)
            .map(|(&(a, b), &v)| (a, b, v))
            .collect();
        v.sort_by_key(|&(a, b, v)| (core::cmp::Reverse(v), a, b));
        v
    }
}

fn key(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

/// `rate` against `max` as a Q16 fraction (0 when `max` is 0).
pub fn heat_fraction(rate: u64, max: u64) -> i64 {
    ratio(rate.min(max), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_memory_remembers_heat_and_lengths() {
        let mut m = PhaseMemory::default();
        m.set_phases(3);
        m.observe(0, 7, 100);
        m.observe(0, 7, 500);
        m.observe(1, 8, 50);
        m.observe(5, 9, 1);
        assert_eq!(m.expected(7, 0), Some(200));
        assert_eq!(m.expected(7, 1), None);
        assert_eq!(m.expected(9, 5), None, "phase out of range ignored");
        m.end_phase(0, 10);
        m.end_phase(0, 6);
        assert_eq!(m.length_windows(0), 8);
        assert_eq!(m.seen(0), 2);
        assert_eq!(m.next(2), 0);
        m.observe(0, 8, 60);
        assert!(m.co_hot(0, 7, 8));
        m.observe(0, 9, 10);
        assert!(!m.co_hot(0, 7, 9), "9 is far colder than 7");
        m.set_phases(3);
        assert_eq!(m.expected(7, 0), Some(200), "same count keeps memory");
        m.set_phases(4);
        assert_eq!(m.expected(7, 0), None, "a new workload forgets");
    }

    #[test]
    fn coexec_rises_together_and_fades_apart() {
        let mut c = CoExec::default();
        for _ in 0..8 {
            c.record_window(&[1, 2]);
        }
        let together = c.of(2, 1);
        assert!(together > ONE / 2, "{together}");
        assert_eq!(c.of(1, 3), 0);
        assert_eq!(c.of(1, 1), 0);
        for _ in 0..8 {
            c.record_window(&[1, 3]);
        }
        assert!(c.of(1, 2) < together / 4);
        assert!(c.of(1, 3) > ONE / 2);
        assert_eq!(c.strongest(ONE / 2)[0].1, 3);
    }
}
