//! The predictive execution analyzer: a probability map of segments, and the refresh policy.
//!
//! For every run of a task the kernel reports which segments the run reached (an init
//! export's entry block counter was nonzero in that run's instance). A task's *path* is the
//! segments reached in at least [`PATH_PERMILLE`] of its runs, in the chunk's export order. A
//! segment's *weight* is the probability that a request reaches it: the sum, over tasks, of
//! the task's share of requests times the share of its runs that reached the segment.
//!
//! The refresh policy drops snapshots whose segment's weight fell below a threshold (and
//! everything built on them), then the lightest until the library fits its byte budget, and
//! asks for snapshots of segments whose weight rose above another threshold and have none.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::SnapId;
use crate::library::Library;

/// A segment is on a task's path when at least this share of its runs reached it.
pub const PATH_PERMILLE: u32 = 500;

#[derive(Debug, Default, Clone)]
struct Reach {
    runs: u64,
    reached: BTreeMap<String, u64>,
}

/// Per task: runs, and how many reached each segment.
#[derive(Debug, Default, Clone)]
pub struct Analyzer {
    tasks: BTreeMap<String, Reach>,
}

impl Analyzer {
    /// An analyzer with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one run of `task` that reached `segments`.
    pub fn record(&mut self, task: &str, segments: &[&str]) {
        let r = self.tasks.entry(task.into()).or_default();
        r.runs += 1;
        for s in segments {
            *r.reached.entry((*s).into()).or_default() += 1;
        }
    }

    /// Runs recorded for `task`.
    pub fn runs(&self, task: &str) -> u64 {
        self.tasks.get(task).map_or(0, |r| r.runs)
    }

    /// Share of `task`'s runs that reached `segment`, in permille.
    pub fn reach_permille(&self, task: &str, segment: &str) -> u32 {
        let Some(r) = self.tasks.get(task) else {
            return 0;
        };
        if r.runs == 0 {
            return 0;
        }
        (r.reached.get(segment).copied().unwrap_or(0) * 1000 / r.runs) as u32
    }

    /// `task`'s predicted path: the segments of `order` (the chunk's init exports in export
    /// order) its runs reach often enough.
    pub fn path(&self, task: &str, order: &[String]) -> Vec<String> {
        order
            .iter()
            .filter(|s| self.reach_permille(task, s) >= PATH_PERMILLE)
            .cloned()
            .collect()
    }

    /// Every segment's weight in permille, from each task's request count (`frequencies`:
    /// task, count; tasks never recorded here reach nothing).
    pub fn weights(&self, frequencies: &[(String, u64)]) -> BTreeMap<String, u32> {
        let total: u64 = frequencies.iter().map(|(_, n)| n).sum();
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        if total == 0 {
            return BTreeMap::new();
        }
        for (task, n) in frequencies {
            let Some(r) = self.tasks.get(task) else {
                continue;
            };
            for seg in r.reached.keys() {
                let reach = u64::from(self.reach_permille(task, seg));
                *out.entry(seg.clone()).or_default() += n * reach;
            }
        }
        out.into_iter()
            .map(|(s, v)| (s, (v / total).min(1000) as u32))
            .collect()
    }

    /// Every task recorded, with its runs.
    pub fn tasks(&self) -> Vec<(String, u64)> {
        self.tasks
            .iter()
            .map(|(t, r)| (t.clone(), r.runs))
            .collect()
    }

    /// Every segment any run reached.
    pub fn segments(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .tasks
            .values()
            .flat_map(|r| r.reached.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Thresholds of the refresh policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Segments at least this likely get a snapshot.
    pub take_permille: u32,
    /// Snapshots of segments below this are dropped.
    pub drop_permille: u32,
    /// The library's byte budget.
    pub budget_bytes: u64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            take_permille: 100,
            drop_permille: 30,
            budget_bytes: 16 << 20,
        }
    }
}

/// What a refresh should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshPlan {
    /// Snapshots to drop (each with what is built on it).
    pub drop: Vec<SnapId>,
    /// Segments to snapshot, most likely first.
    pub take: Vec<String>,
}

/// Plans a refresh of `library` under `policy` with the current `weights` (it also stores
/// them as the layers' weights).
pub fn plan_refresh<P>(
    library: &mut Library<P>,
    weights: &BTreeMap<String, u32>,
    policy: RefreshPolicy,
) -> RefreshPlan {
    let weight = |s: &str| weights.get(s).copied().unwrap_or(0);
    for seg in library.segments() {
        library.set_weight(&seg, weight(&seg));
    }
    let mut plan = RefreshPlan::default();
    let mut kept: Vec<(SnapId, Option<SnapId>, u32, u64)> = library
        .iter()
        .map(|l| (l.id, l.parent, l.weight_permille, l.size_bytes()))
        .collect();
    // Below the drop threshold, with descendants.
    let mut doomed: Vec<SnapId> = kept
        .iter()
        .filter(|k| k.2 < policy.drop_permille)
        .map(|k| k.0)
        .collect();
    loop {
        let more: Vec<SnapId> = kept
            .iter()
            .filter(|k| !doomed.contains(&k.0) && k.1.is_some_and(|p| doomed.contains(&p)))
            .map(|k| k.0)
            .collect();
        if more.is_empty() {
            break;
        }
        doomed.extend(more);
    }
    kept.retain(|k| !doomed.contains(&k.0));
    // Over budget: the lightest leaves (nothing built on them) first; their segments are not
    // taken again in this plan (that would only evict something else).
    let mut evicted: Vec<String> = Vec::new();
    while kept.iter().map(|k| k.3).sum::<u64>() > policy.budget_bytes {
        let leaf = kept
            .iter()
            .filter(|k| !kept.iter().any(|o| o.1 == Some(k.0)))
            .min_by_key(|k| (k.2, k.0))
            .map(|k| k.0);
        let Some(leaf) = leaf else { break };
        if let Some(l) = library.get(leaf) {
            evicted.push(l.segment.clone());
        }
        doomed.push(leaf);
        kept.retain(|k| k.0 != leaf);
    }
    // Report roots of dropped subtrees only (removing one removes its descendants).
    let parent_of = |id: SnapId| library.get(id).and_then(|l| l.parent);
    plan.drop = doomed
        .iter()
        .copied()
        .filter(|&id| parent_of(id).is_none_or(|p| !doomed.contains(&p)))
        .collect();
    plan.drop.sort_unstable();
    let have: Vec<String> = kept
        .iter()
        .filter_map(|k| library.get(k.0).map(|l| l.segment.clone()))
        .collect();
    let mut take: Vec<(&String, u32)> = weights
        .iter()
        .filter(|(s, w)| **w >= policy.take_permille && !have.contains(s) && !evicted.contains(s))
        .map(|(s, w)| (s, *w))
        .collect();
    take.sort_by_key(|(s, w)| (core::cmp::Reverse(*w), (*s).clone()));
    plan.take = take.into_iter().map(|(s, _)| s.clone()).collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use alloc::vec;

    fn freq(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(t, n)| ((*t).into(), *n)).collect()
    }

    #[test]
    fn path_keeps_segments_reached_in_most_runs_in_export_order() {
        let mut a = Analyzer::new();
        for i in 0..10 {
            let mut segs = vec!["lex.primes_init", "lex.lex_init"];
            if i >= 3 {
                segs.pop();
            }
            a.record("lex.query", &segs);
        }
        assert_eq!(a.reach_permille("lex.query", "lex.primes_init"), 1000);
        assert_eq!(a.reach_permille("lex.query", "lex.lex_init"), 300);
        let order = vec!["lex.lex_init".to_string(), "lex.primes_init".to_string()];
        assert_eq!(a.path("lex.query", &order), vec!["lex.primes_init"]);
        a.record("lex.other", &["lex.lex_init"]);
        assert_eq!(a.path("lex.other", &order), vec!["lex.lex_init"]);
        assert!(a.path("never.ran", &order).is_empty());
    }

    #[test]
    fn weights_are_request_shares_times_reach() {
        let mut a = Analyzer::new();
        a.record("c.lookup", &["c.init"]);
        a.record("c.lookup", &["c.init"]);
        a.record("c.stats", &[]);
        a.record("c.stats", &["c.init"]);
        // lookup: 60% of requests, reach 100%; stats: 40%, reach 50%: 600 + 200.
        let w = a.weights(&freq(&[("c.lookup", 60), ("c.stats", 40)]));
        assert_eq!(w["c.init"], 800);
        assert!(a.weights(&[]).is_empty());
    }

    fn lib_with(segs: &[(&str, Option<SnapId>, usize)]) -> Library<u8> {
        let mut lib = Library::new();
        for (s, parent, pages) in segs {
            let id = lib.reserve_id();
            let mut l = Layer::new(id, (*s).into(), *parent, 1);
            for p in 0..*pages {
                l.pages.insert(p as u32, 0);
            }
            lib.insert(l).unwrap();
        }
        lib
    }

    #[test]
    fn refresh_drops_cold_segments_with_their_chains_and_takes_hot_ones() {
        let mut lib = lib_with(&[
            ("c.cold", None, 1),
            ("c.hot", Some(1), 1),
            ("c.warm", None, 1),
        ]);
        let weights: BTreeMap<String, u32> = [
            ("c.cold", 10),
            ("c.hot", 900),
            ("c.warm", 500),
            ("c.new", 400),
            ("c.rare", 50),
        ]
        .into_iter()
        .map(|(s, w)| (s.to_string(), w))
        .collect();
        let plan = plan_refresh(&mut lib, &weights, RefreshPolicy::default());
        assert_eq!(
            plan.drop,
            vec![1],
            "c.cold and (through it) c.hot's chained layer"
        );
        assert_eq!(plan.take, vec!["c.hot".to_string(), "c.new".to_string()]);
        assert_eq!(lib.get(3).unwrap().weight_permille, 500, "weights stored");
    }

    #[test]
    fn refresh_keeps_the_library_within_its_budget_lightest_first() {
        let mut lib = lib_with(&[("c.a", None, 3), ("c.b", None, 3), ("c.c", None, 3)]);
        let weights: BTreeMap<String, u32> = [("c.a", 500), ("c.b", 200), ("c.c", 800)]
            .into_iter()
            .map(|(s, w)| (s.to_string(), w))
            .collect();
        let policy = RefreshPolicy {
            budget_bytes: 6 * crate::PAGE_BYTES as u64,
            ..RefreshPolicy::default()
        };
        let plan = plan_refresh(&mut lib, &weights, policy);
        assert_eq!(plan.drop, vec![2], "c.b is the lightest");
        assert!(plan.take.is_empty(), "every hot segment still has one");
    }
}
