//! When islands are merged and split, and which parts.
//!
//! An island *wants* the shared 2 MiB page when its hottest function is hot: at least
//! [`RegroupPolicy::hot`] of the calls of the hottest function that ran in the window (heat is
//! relative, so what counts as hot changes with the workload's phase). Per function, because a
//! merged island's parts may want different things.
//!
//! - **Merge** two islands of one module that call each other directly and run together
//!   (co-execution: an exponentially weighted fraction of the windows in which either ran
//!   where both did, at least [`RegroupPolicy::merge_coexec`] over at least
//!   [`RegroupPolicy::min_windows`] such windows), when every function of both wants the same
//!   page, and has for [`RegroupPolicy::stable_windows`] windows in a row, and the merged code
//!   stays under [`RegroupPolicy::max_bytes`]: one move then carries them, laid out
//!   contiguously. The caller comes first (`into`), the callee after it.
//! - **Split** an island whose functions want different pages (part hot, part cold: the cold
//!   part wastes the large page, or the hot part misses it) for `stable_windows` windows in a
//!   row in which it ran (islands are contiguous runs, so a part is a prefix or a suffix): at
//!   the cut between a prefix and a suffix whose functions agree within each side, else after
//!   the longer agreeing prefix or suffix ([`best_cut`]; the rest may be cut again later).
//! - After a merge or split the pair or island waits [`RegroupPolicy::cooldown_windows`]
//!   windows before it is reshaped again; an island busy with a move (awaiting its measurement)
//!   is never reshaped. At most one reshape per window.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::fixed::{ONE, ratio};

/// Thresholds of the merge and split rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegroupPolicy {
    /// Co-execution (Q16) at or above which a calling pair runs together.
    pub merge_coexec: i64,
    /// Windows in which either of a pair ran before its co-execution counts.
    pub min_windows: u32,
    /// Heat (Q16, of the hottest function) at or above which a function wants the 2 MiB page.
    pub hot: i64,
    /// Windows in a row a merge or split condition must hold.
    pub stable_windows: u32,
    /// Largest merged island.
    pub max_bytes: u32,
    /// Windows a merged pair or a split island waits before the next reshape of it.
    pub cooldown_windows: u64,
}

impl Default for RegroupPolicy {
    fn default() -> Self {
        Self {
            merge_coexec: ONE * 3 / 4,
            min_windows: 4,
            hot: ONE / 2,
            stable_windows: 2,
            max_bytes: 16 * 1024,
            cooldown_windows: 8,
        }
    }
}

/// One island over one window, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegroupObs {
    /// Island id.
    pub id: u32,
    /// Its module (islands of different modules never merge: no direct calls between them).
    pub module: u32,
    /// Code bytes.
    pub bytes: u32,
    /// Its functions in code order, with their calls in the window.
    pub parts: Vec<(u32, u64)>,
    /// Islands it calls directly.
    pub calls_islands: Vec<u32>,
    /// A move of it awaits its measurement: not reshaped now.
    pub busy: bool,
}

impl RegroupObs {
    fn ran(&self) -> bool {
        self.parts.iter().any(|p| p.1 > 0)
    }
}

/// Why a reshape was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegroupReason {
    /// They call each other and ran together; both want this page.
    RunTogether {
        /// Co-execution, Q16.
        coexec: i64,
        /// Both want the 2 MiB page (else both 4 KiB pages).
        hot: bool,
    },
    /// The functions before the cut want one page, those after it the other.
    HotAndCold {
        /// The part before the cut is the hot one.
        head_hot: bool,
        /// Heat of the hottest function of the hot part, Q16.
        hot_heat: i64,
        /// Heat of the hottest function of the cold part, Q16.
        cold_heat: i64,
    },
}

impl fmt::Display for RegroupReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let milli = crate::fixed::to_milli;
        match *self {
            Self::RunTogether { coexec, hot } => write!(
                f,
                "run together (co-execution {}/1000, call edge), both want {} pages",
                milli(coexec),
                if hot { "2 MiB" } else { "4 KiB" }
            ),
            Self::HotAndCold {
                head_hot,
                hot_heat,
                cold_heat,
            } => write!(
                f,
                "part hot, part cold: {} part heat {}/1000 wants the 2 MiB page, {} part heat {}/1000 wants 4 KiB pages",
                if head_hot { "first" } else { "second" },
                milli(hot_heat),
                if head_hot { "second" } else { "first" },
                milli(cold_heat)
            ),
        }
    }
}

/// A reshape to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regroup {
    /// `absorbed`'s code joins `into`'s, after it, in one new place.
    Merge {
        /// The island that stays (the caller).
        into: u32,
        /// The island that joins it.
        absorbed: u32,
        /// Why.
        reason: RegroupReason,
    },
    /// `island`'s functions from the `at`-th on become an island of their own.
    Split {
        /// The island.
        island: u32,
        /// Index of the first function of the second part.
        at: usize,
        /// Why (which part is hot).
        reason: RegroupReason,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    coexec: i64,
    windows: u32,
    agree: u32,
}

/// The rules' memory across windows.
#[derive(Debug, Default)]
pub struct Regrouper {
    /// The thresholds.
    pub policy: RegroupPolicy,
    pairs: BTreeMap<(u32, u32), Pair>,
    split_streak: BTreeMap<u32, (u32, usize)>,
    cooldown: BTreeMap<u32, u64>,
    window: u64,
}

/// Whether each function of `parts` wants the 2 MiB page, against `max_calls`.
pub fn wants_large(parts: &[(u32, u64)], max_calls: u64, hot: i64) -> Vec<bool> {
    parts
        .iter()
        .map(|&(_, c)| max_calls > 0 && ratio(c.min(max_calls), max_calls) >= hot)
        .collect()
}

/// The cut between a prefix and a suffix that agree within each side and differ from each
/// other (`None` if all agree or no such cut exists).
pub fn clean_cut(wants: &[bool]) -> Option<usize> {
    let at = wants.iter().position(|&w| w != wants[0])?;
    wants[at..].iter().all(|&w| w == wants[at]).then_some(at)
}

/// Where to cut an island whose functions want `wants`: the clean cut when there is one, else
/// after the longer of the agreeing prefix and the agreeing suffix (one side then agrees, the
/// other still mixes and may be cut again later). `None` when all agree.
pub fn best_cut(wants: &[bool]) -> Option<usize> {
    let first = wants.first()?;
    let prefix = wants.iter().take_while(|&w| w == first).count();
    if prefix == wants.len() {
        return None;
    }
    if let Some(at) = clean_cut(wants) {
        return Some(at);
    }
    let last = wants.last()?;
    let suffix = wants.iter().rev().take_while(|&w| w == last).count();
    Some(if prefix >= suffix {
        prefix
    } else {
        wants.len() - suffix
    })
}

impl Regrouper {
    /// Rules with these thresholds.
    pub fn new(policy: RegroupPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Co-execution of a pair (Q16), 0 if not tracked.
    pub fn coexec(&self, a: u32, b: u32) -> i64 {
        self.pairs.get(&key(a, b)).map_or(0, |p| p.coexec)
    }

    /// One window: updates co-execution and streaks, and returns the reshape to make, if any.
    pub fn window(&mut self, islands: &[RegroupObs]) -> Option<Regroup> {
        self.window += 1;
        let p = self.policy;
        let max_calls = islands
            .iter()
            .flat_map(|i| i.parts.iter().map(|x| x.1))
            .max()
            .unwrap_or(0);
        let by_id: BTreeMap<u32, &RegroupObs> = islands.iter().map(|i| (i.id, i)).collect();
        let wants: BTreeMap<u32, Vec<bool>> = islands
            .iter()
            .map(|i| (i.id, wants_large(&i.parts, max_calls, p.hot)))
            .collect();
        // Splits first: an island whose parts disagree.
        let mut split = None;
        for i in islands.iter().filter(|i| i.ran() && i.parts.len() > 1) {
            let cut = best_cut(&wants[&i.id]);
            let streak = match (cut, self.split_streak.get(&i.id)) {
                (Some(at), Some(&(n, prev))) if prev == at => n + 1,
                (Some(_), _) => 1,
                (None, _) => 0,
            };
            match cut {
                Some(at) => self.split_streak.insert(i.id, (streak, at)),
                None => self.split_streak.remove(&i.id),
            };
            if let Some(at) = cut
                && split.is_none()
                && streak >= p.stable_windows
                && !i.busy
                && self.cooled(i.id)
            {
                let heat = |r: &[(u32, u64)]| {
                    ratio(r.iter().map(|x| x.1).max().unwrap_or(0), max_calls.max(1))
                };
                let (h, t) = (heat(&i.parts[..at]), heat(&i.parts[at..]));
                // With a mixed side, "hot" is the side holding the hottest function.
                let head_hot = h >= t;
                split = Some(Regroup::Split {
                    island: i.id,
                    at,
                    reason: RegroupReason::HotAndCold {
                        head_hot,
                        hot_heat: if head_hot { h } else { t },
                        cold_heat: if head_hot { t } else { h },
                    },
                });
            }
        }
        // Co-execution of every calling pair of one module.
        let mut merge = None;
        let mut seen = Vec::new();
        for a in islands {
            for &b in &a.calls_islands {
                let Some(bo) = by_id.get(&b) else { continue };
                if bo.module != a.module || a.id == b || seen.contains(&key(a.id, b)) {
                    continue;
                }
                seen.push(key(a.id, b));
                let (ra, rb) = (a.ran(), bo.ran());
                if !ra && !rb {
                    continue;
                }
                let wa = &wants[&a.id];
                let wb = &wants[&b];
                let all_same = wa.iter().chain(wb).all(|&w| Some(&w) == wa.first());
                let e = self.pairs.entry(key(a.id, b)).or_default();
                let both = if ra && rb { ONE } else { 0 };
                e.coexec += (both - e.coexec) / 4;
                e.windows += 1;
                e.agree = if ra && rb && all_same { e.agree + 1 } else { 0 };
                let e = *e;
                let cooled = self.cooled(a.id) && self.cooled(b);
                let ok = e.coexec >= p.merge_coexec
                    && e.windows >= p.min_windows
                    && e.agree >= p.stable_windows
                    && !a.busy
                    && !bo.busy
                    && a.bytes.saturating_add(bo.bytes) <= p.max_bytes;
                if ok && merge.is_none() && cooled {
                    merge = Some(Regroup::Merge {
                        into: a.id,
                        absorbed: b,
                        reason: RegroupReason::RunTogether {
                            coexec: e.coexec,
                            hot: wa.first().copied().unwrap_or(false),
                        },
                    });
                }
            }
        }
        split.or(merge)
    }

    fn cooled(&self, id: u32) -> bool {
        self.cooldown
            .get(&id)
            .is_none_or(|&until| self.window >= until)
    }

    /// `absorbed` was merged into `into`: its pairs are forgotten, `into` cools down.
    pub fn merged(&mut self, into: u32, absorbed: u32) {
        self.pairs
            .retain(|&(a, b), _| a != absorbed && b != absorbed && a != into && b != into);
        self.split_streak.remove(&absorbed);
        self.split_streak.remove(&into);
        self.cooldown.remove(&absorbed);
        self.cooldown
            .insert(into, self.window + self.policy.cooldown_windows);
    }

    /// `island` was split, its second part is `new`: both cool down, the pair starts over.
    pub fn split(&mut self, island: u32, new: u32) {
        self.pairs
            .retain(|&(a, b), _| a != island && b != island && a != new && b != new);
        self.split_streak.remove(&island);
        let until = self.window + self.policy.cooldown_windows;
        self.cooldown.insert(island, until);
        self.cooldown.insert(new, until);
    }
}

fn key(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

#[cfg(test)]
mod tests;
