//! Environment selection: the candidate moves of one island, each with the reason it is
//! considered and the features the model scores it by.
//!
//! - **Cores** (islands that carry their threads: task entry points): every other work core,
//!   because it is less loaded, or because fewer of the islands the island runs with (now or
//!   in the coming phase) live there.
//! - **Page size**: a hot island in 4 KiB pages into the shared 2 MiB page; an island gone
//!   cold (not hot now, not expected hot in the next phase) from the 2 MiB page back to 4 KiB.
//! - **NUMA**: code whose memory is on another node than its home core's, to that node.

use alloc::vec::Vec;
use core::fmt;

use crate::features::{F, Features};
use crate::fixed::{ONE, log2};

/// A target environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Core `n` (its node's memory, the same page size; the island's threads follow).
    Core(u32),
    /// A slot in the shared 2 MiB page.
    Large,
    /// Fresh 4 KiB pages.
    Small,
    /// NUMA node `n`'s memory.
    Node(u32),
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Core(n) => write!(f, "core {n}"),
            Self::Large => f.write_str("large"),
            Self::Small => f.write_str("small"),
            Self::Node(n) => write!(f, "node {n}"),
        }
    }
}

/// Why a candidate is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The target core is less loaded (loads in thousandths).
    LessLoaded {
        /// Source core load.
        source_milli: i64,
        /// Target core load.
        target_milli: i64,
    },
    /// Fewer of the islands it runs with live on the target core (co-execution, thousandths).
    FewerCoRunners {
        /// Co-execution at the source core.
        source_milli: i64,
        /// At the target core.
        target_milli: i64,
    },
    /// Hot: into the 2 MiB page.
    Hot,
    /// Cold: back to 4 KiB pages.
    Cold,
    /// Its code is on another node than its home core's.
    NodeLocal,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LessLoaded {
                source_milli,
                target_milli,
            } => write!(
                f,
                "less loaded core (load {target_milli}/1000 vs {source_milli}/1000)"
            ),
            Self::FewerCoRunners {
                source_milli,
                target_milli,
            } => write!(
                f,
                "fewer co-running islands (co-execution {target_milli}/1000 vs {source_milli}/1000)"
            ),
            Self::Hot => f.write_str("hot: into the shared 2 MiB page"),
            Self::Cold => f.write_str("cold: back to 4 KiB pages"),
            Self::NodeLocal => f.write_str("code memory on its home core's node"),
        }
    }
}

/// One island as the engine observed it over the last window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IslandObs {
    /// Island id.
    pub id: u32,
    /// Tasks enter through it, so its threads follow it to another core.
    pub entry: bool,
    /// The core its threads run on (home core, or where its samples fell).
    pub core: Option<u32>,
    /// Its code is in the 2 MiB page.
    pub large_page: bool,
    /// Calls per second over the hottest island's, Q16 (0..1).
    pub heat_now: i64,
    /// The same, one window earlier.
    pub heat_prev: i64,
    /// Remembered heat in the next phase, same scale.
    pub heat_next: i64,
    /// Sampled cycles per call.
    pub cycles_per_call: Option<u64>,
    /// Mean measured benefit of its earlier moves, Q16.
    pub history: i64,
    /// Node of the memory its code is in.
    pub memory_node: Option<u32>,
    /// Node of its home core.
    pub home_node: Option<u32>,
}

/// One core over the last window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreObs {
    /// Core number.
    pub core: u32,
    /// Busy fraction, Q16 (0..1).
    pub load: i64,
    /// Islands whose threads run there.
    pub islands: Vec<u32>,
}

/// What candidate generation needs besides the island.
pub struct Context<'a> {
    /// The cores moves may target (not the console's).
    pub cores: &'a [CoreObs],
    /// Co-execution of two islands, now or in the coming phase (Q16, 0..1).
    pub coexec: &'a dyn Fn(u32, u32) -> i64,
    /// How far the current phase has run against its remembered length (Q16, 0..1).
    pub phase_position: i64,
    /// Heat at which an island counts as hot (Q16).
    pub hot: i64,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("cores", &self.cores)
            .field("phase_position", &self.phase_position)
            .field("hot", &self.hot)
            .finish_non_exhaustive()
    }
}

/// A candidate move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The island.
    pub island: u32,
    /// Where to.
    pub target: TargetKind,
    /// Why.
    pub reason: Reason,
    /// What the model sees.
    pub features: Features,
    /// A fixed heuristic score (relief minus crowding) that picks exploration moves while the
    /// model is untrained; the decision itself uses the model.
    pub prior: i64,
}

fn coexec_on(island: u32, core: &CoreObs, coexec: &dyn Fn(u32, u32) -> i64) -> i64 {
    core.islands
        .iter()
        .filter(|&&j| j != island)
        .map(|&j| coexec(island, j))
        .sum::<i64>()
        .min(ONE)
}

fn base_features(i: &IslandObs, ctx: &Context<'_>) -> Features {
    let mut f = Features::default();
    f.set(F::HeatNow, i.heat_now)
        .set(F::HeatNextPhase, i.heat_next)
        .set(F::Trend, i.heat_now - i.heat_prev)
        .set(F::History, i.history)
        .set(F::PhasePosition, ctx.phase_position)
        .set(F::CyclesPerCall, log2(i.cycles_per_call.unwrap_or(0)) / 32);
    f
}

/// The candidate moves of island `i`.
pub fn candidates(i: &IslandObs, ctx: &Context<'_>) -> Vec<Candidate> {
    let mut out = Vec::new();
    let hot_now = i.heat_now >= ctx.hot;
    let hot_next = i.heat_next >= ctx.hot;
    let source = i.core.and_then(|c| ctx.cores.iter().find(|o| o.core == c));
    if i.entry && (hot_now || hot_next) {
        let (src_load, src_co) =
            source.map_or((ONE, ONE), |s| (s.load, coexec_on(i.id, s, ctx.coexec)));
        for t in ctx.cores.iter().filter(|o| Some(o.core) != i.core) {
            let tgt_co = coexec_on(i.id, t, ctx.coexec);
            let mut f = base_features(i, ctx);
            f.set(F::LoadSource, src_load)
                .set(F::LoadTarget, t.load)
                .set(F::CoexecSource, src_co)
                .set(F::CoexecTarget, tgt_co);
            let reason = if src_co - tgt_co >= src_load - t.load {
                Reason::FewerCoRunners {
                    source_milli: crate::fixed::to_milli(src_co),
                    target_milli: crate::fixed::to_milli(tgt_co),
                }
            } else {
                Reason::LessLoaded {
                    source_milli: crate::fixed::to_milli(src_load),
                    target_milli: crate::fixed::to_milli(t.load),
                }
            };
            out.push(Candidate {
                island: i.id,
                target: TargetKind::Core(t.core),
                reason,
                features: f,
                prior: (src_load - t.load) / 2 + (src_co - tgt_co) / 2,
            });
        }
    }
    if hot_now && !i.large_page {
        let mut f = base_features(i, ctx);
        f.set(F::PageChange, ONE);
        out.push(Candidate {
            island: i.id,
            target: TargetKind::Large,
            reason: Reason::Hot,
            features: f,
            prior: i.heat_now / 8,
        });
    }
    if !hot_now && !hot_next && i.large_page {
        let mut f = base_features(i, ctx);
        f.set(F::PageChange, -ONE);
        out.push(Candidate {
            island: i.id,
            target: TargetKind::Small,
            reason: Reason::Cold,
            features: f,
            prior: 0,
        });
    }
    if let (Some(mem), Some(home)) = (i.memory_node, i.home_node)
        && mem != home
    {
        out.push(Candidate {
            island: i.id,
            target: TargetKind::Node(home),
            reason: Reason::NodeLocal,
            features: base_features(i, ctx),
            prior: ONE / 8,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores() -> Vec<CoreObs> {
        alloc::vec![
            CoreObs {
                core: 1,
                load: ONE,
                islands: alloc::vec![10, 11],
            },
            CoreObs {
                core: 2,
                load: ONE / 8,
                islands: alloc::vec![12],
            },
        ]
    }

    fn island(id: u32) -> IslandObs {
        IslandObs {
            id,
            entry: true,
            core: Some(1),
            heat_now: ONE,
            ..IslandObs::default()
        }
    }

    #[test]
    fn a_hot_entry_island_on_a_crowded_core_may_go_to_the_idle_one_or_a_large_page() {
        let cores = cores();
        let co = |a: u32, b: u32| if a + b == 21 { ONE } else { 0 };
        let ctx = Context {
            cores: &cores,
            coexec: &co,
            phase_position: ONE / 2,
            hot: ONE / 4,
        };
        let c = candidates(&island(10), &ctx);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].target, TargetKind::Core(2));
        assert_eq!(c[0].features.get(F::CoexecSource), ONE);
        assert_eq!(c[0].features.get(F::CoexecTarget), 0);
        assert_eq!(c[0].features.get(F::LoadTarget), ONE / 8);
        assert!(c[0].prior > ONE / 2);
        assert!(matches!(c[0].reason, Reason::FewerCoRunners { .. }));
        assert_eq!(c[1].target, TargetKind::Large);
        assert_eq!(c[1].reason, Reason::Hot);
        assert_eq!(c[1].features.get(F::PageChange), ONE);
    }

    #[test]
    fn cold_islands_go_back_to_small_pages_and_non_entries_do_not_change_cores() {
        let cores = cores();
        let co = |_: u32, _: u32| 0;
        let ctx = Context {
            cores: &cores,
            coexec: &co,
            phase_position: 0,
            hot: ONE / 4,
        };
        let cold = IslandObs {
            heat_now: 0,
            large_page: true,
            ..island(10)
        };
        let c = candidates(&cold, &ctx);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].target, TargetKind::Small);
        let upcoming = IslandObs {
            heat_next: ONE,
            ..cold
        };
        assert!(
            candidates(&upcoming, &ctx)
                .iter()
                .all(|c| c.target == TargetKind::Core(2)),
            "hot in the next phase: stays in the large page, may move ahead of the phase"
        );
        let helper = IslandObs {
            entry: false,
            ..island(11)
        };
        assert!(
            candidates(&helper, &ctx)
                .iter()
                .all(|c| c.target == TargetKind::Large)
        );
        let remote = IslandObs {
            memory_node: Some(0),
            home_node: Some(1),
            heat_now: 0,
            ..island(12)
        };
        assert_eq!(candidates(&remote, &ctx)[0].target, TargetKind::Node(1));
    }
}
